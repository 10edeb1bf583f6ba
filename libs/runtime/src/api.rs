//! What every gRPC handler shares: one error type with one mapping to `tonic::Status` (the right
//! code, internal detail logged and never leaked), and one page-token codec.

use chrono::{DateTime, Utc};
use tonic::Status;
use uuid::Uuid;
use waihu_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// INVALID_ARGUMENT, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    /// An illegal state change or an operation the current state refuses.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    /// The caller may not do this (an entitlement it lacks), naming what.
    #[error("{0}")]
    PermissionDenied(String),
    /// A quota is used up, naming it.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A required UUID field: INVALID_ARGUMENT naming `field` when empty or malformed.
pub fn parse_uuid(field: &str, s: &str) -> Result<Uuid, ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(s).map_err(|_| ApiError::invalid(field, format!("{s:?} is not a UUID")))
}

/// An optional UUID filter: None when empty, INVALID_ARGUMENT naming `field` when malformed.
pub fn parse_optional_uuid(field: &str, s: &str) -> Result<Option<Uuid>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    parse_uuid(field, s).map(Some)
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Store(e.into())
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Invalid { .. } => Status::invalid_argument(e.to_string()),
            ApiError::NotFound(_) => Status::not_found(e.to_string()),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ApiError::Store(StoreError::EventTooLarge { .. } | StoreError::BadEvent(_)) => {
                tracing::error!(error = %e, "refused to write an event");
                Status::internal("the change could not be recorded")
            }
            ApiError::Store(inner) => {
                tracing::error!(error = %inner, "store failure");
                if inner.is_transient() {
                    Status::unavailable("storage is unavailable; retry")
                } else {
                    Status::internal("internal storage error")
                }
            }
        }
    }
}

/// Page tokens for lists ordered by (time, id) descending: the last item's time and id.
pub mod page_token {
    use super::*;

    pub fn encode(at: DateTime<Utc>, id: Uuid) -> String {
        format!("{}_{id}", at.timestamp_micros())
    }

    /// None for the first page (an empty token); INVALID_ARGUMENT for one this service did not
    /// issue.
    pub fn decode(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || ApiError::invalid("page_token", "not a token this service issued");
        let (micros, id) = token.split_once('_').ok_or_else(bad)?;
        let at = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?;
        Ok(Some((at, Uuid::parse_str(id).map_err(|_| bad())?)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn tokens_round_trip_and_foreign_ones_are_invalid_argument() {
            let at = DateTime::from_timestamp_micros(1_763_700_000_123_456).expect("time");
            let id = Uuid::new_v4();
            assert_eq!(decode(&encode(at, id)).ok().flatten(), Some((at, id)));
            assert_eq!(decode("").ok().flatten(), None);
            for bad in ["x", "1_notauuid", "notanumber_0", "99999999999999999999_x"] {
                assert!(
                    matches!(decode(bad), Err(ApiError::Invalid { .. })),
                    "{bad}"
                );
            }
        }
    }
}
