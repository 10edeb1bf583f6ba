//! The seeds' response envelopes (seed 002's `{code, message, data}`, seed 000's `{err_no,
//! err_msg, err_inner, results}`) and the mapping from gRPC statuses to HTTP: 400 malformed
//! request, 401 missing or bad token, 403 missing permission, 404 not found, 409 an illegal
//! state change, 422 validation, 429 a quota, 503 a service down.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use tonic::Code;

/// Which seed's envelope a reply is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// Seed 002: `{code, message, data}`, `code` the HTTP status.
    #[default]
    CodeMessageData,
    /// Seed 000: `{err_no, err_msg, err_inner, results}`, `err_no` 0 on success and the HTTP
    /// status otherwise.
    ErrNo,
    /// Seed 003: the answer's own object; a failure is `{success: false, message}`.
    Bare,
}

/// A JSON reply in a seed's envelope.
pub struct Reply {
    status: StatusCode,
    message: String,
    data: Value,
    envelope: Envelope,
}

impl Reply {
    pub fn ok(data: Value) -> Reply {
        Reply::with(StatusCode::OK, data)
    }

    pub fn with(status: StatusCode, data: Value) -> Reply {
        Reply {
            status,
            message: "操作成功".into(),
            data,
            envelope: Envelope::default(),
        }
    }

    pub fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply {
            status,
            message: message.into(),
            data: Value::Null,
            envelope: Envelope::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The same reply in `envelope`.
    pub fn in_envelope(mut self, envelope: Envelope) -> Reply {
        self.envelope = envelope;
        self
    }

    /// 422 naming the field.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Reply {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {reason}"),
        )
    }

    /// A gRPC failure as the seeds' HTTP status.
    pub fn from_status(s: &tonic::Status) -> Reply {
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = ?s.code(), message = s.message(), "backend failure");
            "internal error".to_string()
        } else if status == StatusCode::SERVICE_UNAVAILABLE && s.message().is_empty() {
            "a backend service is unavailable; retry".to_string()
        } else {
            s.message().to_string()
        };
        Reply::error(status, message)
    }
}

impl From<tonic::Status> for Reply {
    fn from(s: tonic::Status) -> Reply {
        Reply::from_status(&s)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = match self.envelope {
            Envelope::CodeMessageData => json!({
                "code": self.status.as_u16(),
                "message": self.message,
                "data": self.data,
            }),
            Envelope::ErrNo => {
                let ok = self.status.is_success();
                json!({
                    "err_no": if ok { 0 } else { self.status.as_u16() },
                    "err_msg": if ok { String::new() } else { self.message },
                    "err_inner": "",
                    "results": self.data,
                })
            }
            Envelope::Bare if self.status.is_success() => self.data,
            Envelope::Bare => json!({"success": false, "message": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}
