//! `flotilla health ADDRESS`: a grpc.health.v1 Check, for container health checks and scripts
//! (what grpc_health_probe does, without another binary in the image).

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::cli::HealthArgs;

/// Why a health check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{address:?} is not an address: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot reach {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("{address} answered {code}: {message}")]
    Refused {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

/// The answer, as an exit status: 0 SERVING, 1 anything else.
pub async fn check(args: &HealthArgs) -> Result<ServingStatus, HealthError> {
    let url = if args.address.contains("://") {
        args.address.clone()
    } else {
        format!("http://{}", args.address)
    };
    let endpoint =
        tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| HealthError::Address {
            address: args.address.clone(),
            reason: e.to_string(),
        })?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let channel = endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| HealthError::Unreachable {
            address: url.clone(),
            reason: e.to_string(),
        })?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|status| HealthError::Refused {
            address: url,
            code: status.code(),
            message: status.message().to_owned(),
        })?;
    Ok(ServingStatus::try_from(reply.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// Runs the check and prints the status; the exit status is 0 only for SERVING.
pub fn main(args: &HealthArgs) -> Result<u8, HealthError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HealthError::Unreachable {
            address: args.address.clone(),
            reason: format!("no runtime: {e}"),
        })?;
    let status = runtime.block_on(check(args))?;
    println!("{}", status.as_str_name());
    Ok(if status == ServingStatus::Serving {
        0
    } else {
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(address: &str, service: &str) -> HealthArgs {
        HealthArgs {
            address: address.into(),
            service: service.into(),
            timeout_ms: 2_000,
        }
    }

    #[tokio::test]
    async fn reports_what_a_real_health_service_says() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("up", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("down", tonic_health::ServingStatus::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        assert_eq!(
            check(&args(&address, "up")).await.unwrap(),
            ServingStatus::Serving
        );
        assert_eq!(
            check(&args(&address, "down")).await.unwrap(),
            ServingStatus::NotServing
        );
        let unknown = check(&args(&address, "nope")).await.unwrap_err();
        assert!(
            matches!(
                unknown,
                HealthError::Refused {
                    code: tonic::Code::NotFound,
                    ..
                }
            ),
            "{unknown}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_address_is_an_error_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let error = check(&args(&address, "")).await.unwrap_err();
        assert!(error.to_string().contains(&address), "{error}");
    }
}
