use tonic::Status;
use tracing::error;

use crate::domain::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("task {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("store: {0}")]
    Store(#[from] waihu_store::StoreError),
}

impl TaskError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TaskError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for TaskError {
    fn from(e: sqlx::Error) -> Self {
        TaskError::Store(e.into())
    }
}

impl From<TaskError> for Status {
    fn from(e: TaskError) -> Status {
        match e {
            TaskError::Invalid { .. } => Status::invalid_argument(e.to_string()),
            TaskError::NotFound(_) => Status::not_found(e.to_string()),
            TaskError::Rejected(r) => Status::failed_precondition(r.to_string()),
            TaskError::Store(inner) => {
                error!(error = %inner, "task store failure");
                if inner.is_transient() {
                    Status::unavailable("storage is unavailable; retry")
                } else {
                    Status::internal("internal storage error")
                }
            }
        }
    }
}
