//! Telemetry of the suite: [`traces`] sets up logs and OpenTelemetry traces for every binary,
//! [`propagation`] carries W3C trace context across gRPC calls, and [`metrics`] / [`scrape`]
//! are the Prometheus metrics of the gRPC servers and the scraper the rollout orchestrator reads
//! them with.
//!
//! [`metrics`] records every gRPC call a tonic server finishes — a counter of calls by status
//! code and a latency histogram, labelled with the serving version — and answers `GET /metrics`
//! on the gRPC port itself, as etcd does, so whoever can call an instance can also scrape it:
//!
//! ```no_run
//! # async fn run(routes: tonic::service::Routes, listener: tokio::net::TcpListener) -> Result<(), tonic::transport::Error> {
//! use flotilla_telemetry::metrics::ServerMetrics;
//!
//! let metrics = ServerMetrics::new("1.1.0");
//! tonic::transport::Server::builder()
//!     .accept_http1(true) // Prometheus scrapes over HTTP/1.1; gRPC keeps HTTP/2
//!     .layer(metrics.layer())
//!     .add_routes(routes)
//!     .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
//!     .await
//! # }
//! ```
//!
//! [`scrape`] reads that exposition back ([`scrape::fetch`], [`scrape::parse`]) and sums it into
//! [`scrape::CallStats`]: requests, server errors and the latency histogram of one version, whose
//! difference between two scrapes gives the error ratio and a PromQL-style quantile of the calls
//! in between.

pub mod metrics;
pub mod propagation;
pub mod scrape;
pub mod snapshot_gauges;
pub mod traces;
