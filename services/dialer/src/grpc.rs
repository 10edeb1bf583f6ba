//! `DialerService`: what the dialer counts, read from the database (every replica answers).

use tonic::{Request, Response, Status};
use waihu_proto::v1::{self as pb, dialer_service_server::DialerService};
use waihu_runtime::{tenant, ApiError};

use crate::{
    calls::{self, CallError},
    db::{Db, DialerError, RoundRules},
    dnc,
    manual::{ManualDial, Refused},
};

pub struct DialerApi {
    pub db: Db,
    /// Calls' own subjects: their live state, and where hang-ups go.
    pub bus: waihu_bus::Bus,
    /// Manual dials in progress on this replica at most (each waits for the dial round's
    /// lock holding a database connection: a burst must not take the pool from the dialer).
    pub dial_gate: std::sync::Arc<tokio::sync::Semaphore>,
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

fn call_status(e: CallError) -> Status {
    match e {
        CallError::NotFound(c) => ApiError::NotFound(format!("call {c}")).into(),
        CallError::Busy(_) | CallError::Bus(_) => Status::unavailable(e.to_string()),
        CallError::Unreadable(m) => Status::internal(m),
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

    async fn dial(&self, req: Request<pb::DialRequest>) -> Result<Response<pb::DialReply>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let anytime = req
            .extensions()
            .get::<waihu_auth::Principal>()
            .is_some_and(|p| p.has_any(&[waihu_auth::perms::CALL_DIAL_ANYTIME]));
        let r = req.into_inner();
        if r.phone.trim().is_empty() {
            return Err(ApiError::invalid("phone", "is required").into());
        }
        let phone = waihu_telephony::PhoneNumber::parse(&r.phone)
            .map_err(|e| ApiError::invalid("phone", e))?;
        if !r.line_id.is_empty() && !waihu_telephony::valid_line_id(&r.line_id) {
            return Err(ApiError::invalid(
                "line_id",
                "1-64 letters, digits, '-', '_' or '.' (or empty: the nearest line)",
            )
            .into());
        }
        for (field, value) in [
            ("customer_id", &r.customer_id),
            ("customer_name", &r.customer_name),
            ("order_id", &r.order_id),
        ] {
            waihu_runtime::check_text(field, value, 128)?;
        }
        let _permit = self
            .dial_gate
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the dialer is stopping"))?;
        let placed = self
            .db
            .dial_manual(
                &ManualDial {
                    tenant: &tenant,
                    phone: phone.as_str(),
                    line_id: &r.line_id,
                    customer_id: &r.customer_id,
                    customer_name: &r.customer_name,
                    order_id: &r.order_id,
                    requested_by: &actor,
                    anytime,
                },
                &self.rules,
            )
            .await
            .map_err(|e| match e {
                Refused::Rule(m) => ApiError::FailedPrecondition(m).into(),
                Refused::Busy(m) => ApiError::ResourceExhausted(m).into(),
                Refused::NoLine(m) => ApiError::NotFound(m).into(),
                Refused::Db(e) => status(e),
            })?;
        tracing::info!(call = %placed.call_id, line = %placed.line_id, %actor, "manual call placed");
        Ok(Response::new(pb::DialReply {
            call_id: placed.call_id.to_string(),
            line_id: placed.line_id,
            phone: phone.as_str().to_string(),
        }))
    }

    async fn hangup(
        &self,
        req: Request<pb::HangupRequest>,
    ) -> Result<Response<pb::HangupReply>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let call = waihu_runtime::parse_uuid("call_id", &req.get_ref().call_id)?;
        let ended = calls::hang_up(&self.db, &self.bus, &tenant, call, &actor)
            .await
            .map_err(call_status)?;
        Ok(Response::new(pb::HangupReply {
            call_id: call.to_string(),
            ended,
        }))
    }

    async fn get_call_status(
        &self,
        req: Request<pb::GetCallStatusRequest>,
    ) -> Result<Response<pb::CallStatus>, Status> {
        let tenant = tenant(req.metadata())?;
        let call = waihu_runtime::parse_uuid("call_id", &req.get_ref().call_id)?;
        Ok(Response::new(
            calls::status(&self.db, &self.bus, &tenant, call)
                .await
                .map_err(call_status)?,
        ))
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
