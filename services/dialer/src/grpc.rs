//! `DialerService`: what the dialer counts, read from the database (every replica answers).

use tonic::{Request, Response, Status};
use waihu_proto::v1::{self as pb, dialer_service_server::DialerService};
use waihu_runtime::{tenant, ApiError};

use crate::{
    db::{Db, DialerError, RoundRules},
    dnc,
};

pub struct DialerApi {
    pub db: Db,
    /// The rules the dial loop applies (ExplainContact applies them alike).
    pub rules: RoundRules,
}

/// Line ids one usage request may name.
const MAX_IDS: usize = 1000;

fn status(e: DialerError) -> Status {
    match e {
        DialerError::Store(s) => ApiError::Store(s).into(),
        other => Status::internal(other.to_string()),
    }
}

impl DialerApi {
    async fn change(
        &self,
        req: Request<pb::DoNotCallRequest>,
        global: bool,
        add: bool,
        action: &str,
    ) -> Result<Response<pb::DoNotCallReply>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let r = req.into_inner();
        let checked = dnc::check(&r)?;
        let scope = if global { dnc::GLOBAL } else { tenant.as_str() };
        let (changed, unchanged) = if checked.phones.is_empty() {
            (0, 0)
        } else {
            self.db
                .change_dnc(
                    scope,
                    &checked.phones,
                    &r.reason,
                    add,
                    (&tenant, &actor, action),
                )
                .await
                .map_err(status)?
        };
        Ok(Response::new(pb::DoNotCallReply {
            changed,
            unchanged,
            rejected: checked.rejected,
            rejected_total: checked.rejected_total,
        }))
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

    async fn add_do_not_call(
        &self,
        req: Request<pb::DoNotCallRequest>,
    ) -> Result<Response<pb::DoNotCallReply>, Status> {
        self.change(req, false, true, "DialerService/AddDoNotCall")
            .await
    }

    async fn remove_do_not_call(
        &self,
        req: Request<pb::DoNotCallRequest>,
    ) -> Result<Response<pb::DoNotCallReply>, Status> {
        self.change(req, false, false, "DialerService/RemoveDoNotCall")
            .await
    }

    async fn add_global_do_not_call(
        &self,
        req: Request<pb::DoNotCallRequest>,
    ) -> Result<Response<pb::DoNotCallReply>, Status> {
        self.change(req, true, true, "DialerService/AddGlobalDoNotCall")
            .await
    }

    async fn remove_global_do_not_call(
        &self,
        req: Request<pb::DoNotCallRequest>,
    ) -> Result<Response<pb::DoNotCallReply>, Status> {
        self.change(req, true, false, "DialerService/RemoveGlobalDoNotCall")
            .await
    }

    async fn explain_contact(
        &self,
        req: Request<pb::ExplainContactRequest>,
    ) -> Result<Response<pb::ContactExplanation>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let task = waihu_runtime::parse_uuid("task_id", &r.task_id)?;
        if r.contact_no == 0 || r.contact_no > i32::MAX as u32 {
            return Err(ApiError::invalid("contact_no", "a contact number from 1").into());
        }
        match self
            .db
            .explain(&tenant, task, r.contact_no as i32, &self.rules)
            .await
            .map_err(status)?
        {
            Some(e) => Ok(Response::new(e)),
            None => Err(ApiError::NotFound(format!(
                "contact {} of task {}",
                r.contact_no, r.task_id
            ))
            .into()),
        }
    }

    async fn check_do_not_call(
        &self,
        req: Request<pb::CheckDoNotCallRequest>,
    ) -> Result<Response<pb::CheckDoNotCallReply>, Status> {
        let tenant = tenant(req.metadata())?;
        let raw = &req.get_ref().phone;
        if raw.trim().is_empty() {
            return Err(ApiError::invalid("phone", "is required").into());
        }
        let phone =
            waihu_telephony::PhoneNumber::parse(raw).map_err(|e| ApiError::invalid("phone", e))?;
        Ok(Response::new(
            self.db
                .check_dnc(&tenant, phone.as_str())
                .await
                .map_err(status)?,
        ))
    }
}
