//! The seeds' response envelope `{code, message, data}` and the mapping from gRPC statuses to
//! HTTP: 400 malformed request, 401 missing or bad token, 403 missing permission, 404 not
//! found, 409 an illegal state change, 422 validation, 429 a quota, 503 a service down.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use tonic::Code;

/// A JSON reply in the seeds' envelope.
pub struct Reply {
    status: StatusCode,
    message: String,
    data: Value,
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
        }
    }

    pub fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply {
            status,
            message: message.into(),
            data: Value::Null,
        }
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
        let body = json!({
            "code": self.status.as_u16(),
            "message": self.message,
            "data": self.data,
        });
        (self.status, Json(body)).into_response()
    }
}
