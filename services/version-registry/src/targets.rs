//! Prometheus HTTP service discovery: `GET /prometheus/targets` on the gRPC port lists every
//! live instance of every service, so a Prometheus server pointed at the registry scrapes exactly
//! the instances callers are sent to, labelled with what they serve.
//!
//! The format is <https://prometheus.io/docs/prometheus/latest/http_sd/>: one target group per
//! instance, since each carries labels of its own.

use bytes::Bytes;
use flotilla_model::{Instance, ServiceName, Timestamp};
use flotilla_store::{RegistryStore, StoreError};
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// Where the discovery document is served.
pub const TARGETS_PATH: &str = "/prometheus/targets";
/// The target labels every group carries.
pub const SERVICE_LABEL: &str = "flotilla_service";
pub const VERSION_LABEL: &str = "flotilla_version";
pub const INSTANCE_LABEL: &str = "flotilla_instance";

/// Services read per store call.
const PAGE: u32 = 500;

/// The target groups of every live instance at `now`, by service, then version and address.
pub async fn target_groups(
    store: &dyn RegistryStore,
    now: Timestamp,
) -> Result<Vec<Value>, StoreError> {
    let mut groups = Vec::new();
    let mut after: Option<ServiceName> = None;
    loop {
        let services = store.list_services(after.as_ref(), PAGE).await?;
        for service in &services {
            let instances = store.list_instances(&service.name, None, now).await?;
            groups.extend(instances.iter().map(group));
        }
        if services.len() < PAGE as usize {
            return Ok(groups);
        }
        after = services.last().map(|s| s.name.clone());
    }
}

fn group(instance: &Instance) -> Value {
    json!({
        "targets": [instance.address],
        "labels": {
            SERVICE_LABEL: instance.service.to_string(),
            VERSION_LABEL: instance.version.to_string(),
            INSTANCE_LABEL: instance.id.to_string(),
        },
    })
}

/// The answer to `GET /prometheus/targets`. A store error is a 503: Prometheus then keeps the
/// targets it last discovered rather than dropping them all.
pub async fn answer(store: &dyn RegistryStore) -> Response<Bytes> {
    let (status, content_type, body) = match target_groups(store, Timestamp::now()).await {
        Ok(groups) => (
            StatusCode::OK,
            "application/json",
            Value::Array(groups).to_string(),
        ),
        Err(error) => {
            tracing::warn!(%error, "listing Prometheus targets failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("listing instances: {error}\n"),
            )
        }
    };
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
