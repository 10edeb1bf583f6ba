//! The task service's errors are the shared [`ApiError`] (one mapping to `tonic::Status`); an
//! illegal state change of the domain is FAILED_PRECONDITION.

use waihu_runtime::ApiError;

use crate::domain::Rejection;

pub type TaskError = ApiError;

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::FailedPrecondition(r.to_string())
    }
}

/// NOT_FOUND for a task this tenant cannot see.
pub fn task_not_found(task_id: uuid::Uuid) -> ApiError {
    ApiError::NotFound(format!("task {task_id}"))
}
