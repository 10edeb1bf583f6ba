//! `DialerService`: what the dialer counts, read from the database (every replica answers).

use tonic::{Request, Response, Status};
use waihu_proto::v1::{self as pb, dialer_service_server::DialerService};
use waihu_runtime::{tenant, ApiError};

use crate::db::{Db, DialerError};

pub struct DialerApi {
    pub db: Db,
}

/// Line ids one usage request may name.
const MAX_IDS: usize = 1000;

fn status(e: DialerError) -> Status {
    match e {
        DialerError::Store(s) => ApiError::Store(s).into(),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl DialerService for DialerApi {
    async fn get_line_usage(
        &self,
        req: Request<pb::GetLineUsageRequest>,
    ) -> Result<Response<pb::GetLineUsageResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let ids = req.into_inner().line_ids;
        if ids.len() > MAX_IDS {
            return Err(ApiError::invalid("line_ids", format!("at most {MAX_IDS}")).into());
        }
        if let Some(i) = ids.iter().position(|id| id.is_empty() || id.len() > 64) {
            return Err(ApiError::invalid(format!("line_ids[{i}]"), "1-64 characters").into());
        }
        let lines = self.db.line_usage(&tenant, &ids).await.map_err(status)?;
        Ok(Response::new(pb::GetLineUsageResponse { lines }))
    }
}
