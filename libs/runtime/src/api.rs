//! What every gRPC handler shares: one error type with one mapping to `tonic::Status` (the right
//! code, internal detail logged and never leaked), one page-token codec and paging choice, one
//! timestamp conversion, and ids given as a UUID or a number.

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
    /// Something with this id is already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
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

/// A one-line text field (a name, an id, a reason): INVALID_ARGUMENT naming `field` when it is
/// longer than `max` characters or holds a control character (NUL cannot be stored; line
/// breaks do not belong in it).
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} characters, no control characters"),
        ));
    }
    Ok(())
}

/// A required UUID field: INVALID_ARGUMENT naming `field` when empty or malformed.
pub fn parse_uuid(field: &str, s: &str) -> Result<Uuid, ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(s).map_err(|_| ApiError::invalid(field, format!("{s:?} is not a UUID")))
}

/// An optional time field: None when unset, INVALID_ARGUMENT naming `field` when out of range.
pub fn parse_time(
    field: &str,
    t: &Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    t.as_ref()
        .map(|t| {
            waihu_events::from_timestamp(t).ok_or_else(|| ApiError::invalid(field, "out of range"))
        })
        .transpose()
}

/// How a request names an entity that has both a UUID and a number (tasks, call records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrNumber {
    Id(Uuid),
    Number(i64),
}

/// `s` as a UUID or, when it is all decimal digits, a number; INVALID_ARGUMENT naming `field`
/// (and `what` it should name) otherwise.
pub fn parse_id_or_number(field: &str, what: &str, s: &str) -> Result<IdOrNumber, ApiError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(IdOrNumber::Number)
            .map_err(|_| ApiError::invalid(field, format!("{what} number {s} is out of range")));
    }
    parse_uuid(field, s).map(IdOrNumber::Id).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{s:?} is neither a {what} UUID nor a {what} number"),
        )
    })
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
            ApiError::AlreadyExists(_) => Status::already_exists(e.to_string()),
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

    /// Where a listing page starts: after the (time, id) a page token carries (None for the
    /// first page), or at a 1-based page number.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Page {
        After(Option<(DateTime<Utc>, Uuid)>),
        Number(u32),
    }

    /// The page a request asks for by `page_token` or `page_number` (not both):
    /// INVALID_ARGUMENT naming the field otherwise.
    pub fn page(page_number: u32, page_token: &str) -> Result<Page, ApiError> {
        match (page_number, page_token.is_empty()) {
            (0, _) => Ok(Page::After(decode(page_token)?)),
            (_, false) => Err(ApiError::invalid(
                "page_number",
                "cannot be used together with page_token",
            )),
            (n, true) if n > 1_000_000 => Err(ApiError::invalid("page_number", "at most 1000000")),
            (n, true) => Ok(Page::Number(n)),
        }
    }

    pub fn encode(at: DateTime<Utc>, id: Uuid) -> String {
        encode_key(at.timestamp_micros(), id)
    }

    /// A token for lists ordered by (an integer key, id): the last item's key and id.
    pub fn encode_key(key: i64, id: Uuid) -> String {
        format!("{key}_{id}")
    }

    /// The (key, id) of an [`encode_key`] token; None for the first page (an empty token).
    pub fn decode_key(token: &str) -> Result<Option<(i64, Uuid)>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || ApiError::invalid("page_token", "not a token this service issued");
        let (key, id) = token.split_once('_').ok_or_else(bad)?;
        let key = key.parse().map_err(|_| bad())?;
        Ok(Some((key, Uuid::parse_str(id).map_err(|_| bad())?)))
    }

    /// None for the first page (an empty token); INVALID_ARGUMENT for one this service did not
    /// issue.
    pub fn decode(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || ApiError::invalid("page_token", "not a token this service issued");
        let Some((micros, id)) = decode_key(token)? else {
            return Ok(None);
        };
        let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        Ok(Some((at, id)))
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
