//! How the driver's and the pool's errors become [`StoreError`]s: a database that could not be
//! reached is `Unavailable`, anything else `Internal`.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::StoreError;

/// The full text of an error and its causes: a driver error's `Display` leaves out the server's
/// message.
pub(super) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether an error means the database could not be reached (rather than that it refused the
/// request): errors without a SQLSTATE come from the connection itself.
fn is_connection_error(code: Option<&SqlState>) -> bool {
    match code {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = format!("postgres: {}", describe(&e));
        if is_connection_error(e.code()) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Internal(text)
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => {
                StoreError::Unavailable(format!("connecting to postgres: {}", describe(&e)))
            }
            e @ PoolError::NoRuntimeSpecified => {
                StoreError::Internal(format!("postgres pool: {e}"))
            }
            other => StoreError::Unavailable(format!("postgres pool: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable_and_others_internal() {
        assert!(is_connection_error(None));
        assert!(is_connection_error(Some(&SqlState::CONNECTION_FAILURE)));
        assert!(is_connection_error(Some(&SqlState::ADMIN_SHUTDOWN)));
        assert!(!is_connection_error(Some(&SqlState::UNIQUE_VIOLATION)));
        assert!(!is_connection_error(Some(&SqlState::SYNTAX_ERROR)));
    }
}
