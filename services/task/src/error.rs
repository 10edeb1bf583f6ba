use tonic::Status;

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
        waihu_runtime::ApiError::from(e).into()
    }
}

impl From<TaskError> for waihu_runtime::ApiError {
    fn from(e: TaskError) -> Self {
        use waihu_runtime::ApiError;
        match e {
            TaskError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            TaskError::NotFound(id) => ApiError::NotFound(format!("task {id}")),
            TaskError::Rejected(r) => ApiError::FailedPrecondition(r.to_string()),
            TaskError::Store(inner) => ApiError::Store(inner),
        }
    }
}
