use std::collections::HashSet;

use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;
use waihu_proto::v1::{self as pb, task_service_server::TaskService};
use waihu_runtime::tenant;
use waihu_telephony::phone::PhoneNumber;

use crate::{
    db::{Audit, Db, NewContact, TaskFilter},
    domain::{Command, Status as TaskStatus},
    TaskError,
};

/// A task's recalls by cause: at most 20 rules, each naming retryable causes (or CALL_REJECTED
/// 21) not named by another, with at most 20 tries at most 7 days apart.
fn check_retry(retry: &pb::RetryPolicy) -> Result<(), TaskError> {
    use waihu_telephony::hangup::{CALL_REJECTED, RETRYABLE_Q850};
    if retry.rules.len() > 20 {
        return Err(TaskError::invalid("spec.retry.rules", "at most 20 rules"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, rule) in retry.rules.iter().enumerate() {
        let field = |f: &str| format!("spec.retry.rules[{i}].{f}");
        if rule.causes.is_empty() {
            return Err(TaskError::invalid(
                field("causes"),
                "name one or more causes",
            ));
        }
        for c in &rule.causes {
            if !RETRYABLE_Q850.contains(c) && *c != CALL_REJECTED {
                return Err(TaskError::invalid(
                    field("causes"),
                    format!("{c} is not a retryable cause ({RETRYABLE_Q850:?}, or 21 rejected)"),
                ));
            }
            if !seen.insert(*c) {
                return Err(TaskError::invalid(
                    field("causes"),
                    format!("{c} is named by an earlier rule"),
                ));
            }
        }
        if rule.tries > 20 {
            return Err(TaskError::invalid(field("tries"), "at most 20"));
        }
        if rule.interval_seconds > 7 * 24 * 3600 {
            return Err(TaskError::invalid(
                field("interval_seconds"),
                "at most 7 days (604800)",
            ));
        }
    }
    Ok(())
}

/// Rejected rows listed in an `AddContacts` reply at most (all are counted).
pub const MAX_LISTED_REJECTIONS: usize = 10_000;
pub const MAX_ROWS_PER_MESSAGE: usize = 10_000;
/// Rows one `AddContacts` stream may carry (limit `max_rows_per_stream`).
pub const MAX_ROWS_PER_STREAM: u64 = 2_000_000;
/// Variables one row may carry (limit `max_variables_per_row`).
pub const MAX_VARIABLES_PER_ROW: usize = 50;
/// Bytes of one field value (limit `max_field_bytes`).
pub const MAX_FIELD_BYTES: usize = 4096;
/// Encoded bytes of one whole row (limit `max_row_bytes`).
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Characters of a rejected row's phone echoed back.
const ECHO_CHARS: usize = 64;

pub struct TaskApi {
    pub db: Db,
}

/// Checks a text field: at most `max` characters and no control characters (line breaks and
/// tabs are allowed; NUL and the rest cannot be stored or shown safely).
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), TaskError> {
    text_problem(value, max).map_or(Ok(()), |reason| Err(TaskError::invalid(field, reason)))
}

fn text_problem(value: &str, max: usize) -> Option<String> {
    if value.chars().count() > max {
        return Some(format!("at most {max} characters"));
    }
    value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .map(|c| format!("contains the control character {c:?}"))
}

/// Validates a task spec (the seeds' task fields).
pub fn validate_spec(spec: &mut pb::TaskSpec) -> Result<(), TaskError> {
    spec.name = spec.name.trim().to_string();
    if spec.name.is_empty() {
        return Err(TaskError::invalid("spec.name", "is required"));
    }
    check_len("spec.name", &spec.name, 100)?;
    check_len("spec.description", &spec.description, 2000)?;
    check_len("spec.script_id", &spec.script_id, 100)?;
    check_len("spec.caller_line", &spec.caller_line, 2000)?;
    let lines = spec.caller_line.trim();
    if !lines.is_empty() && !lines.eq_ignore_ascii_case("any") {
        for id in lines.split(',').map(str::trim) {
            if !waihu_telephony::valid_line_id(id) {
                return Err(TaskError::invalid(
                    "spec.caller_line",
                    format!(
                        "{:?} is not a line id (1-64 characters of A-Z a-z 0-9 - _ .); name one \
                         line, several separated by commas, or \"any\"",
                        id.chars().take(70).collect::<String>()
                    ),
                ));
            }
        }
    }
    check_len("spec.source", &spec.source, 100)?;
    if let Some(w) = &spec.window {
        waihu_telephony::window::Window::parse(w)
            .map_err(|e| TaskError::invalid(format!("spec.window.{}", e.field), e.reason))?;
    }
    check_len("spec.call_script", &spec.call_script, 20_000)?;
    check_len("spec.caller_id", &spec.caller_id, 32)?;
    if spec.device_ids.len() > 100 {
        return Err(TaskError::invalid("spec.device_ids", "at most 100"));
    }
    if spec.priority > 2 {
        return Err(TaskError::invalid(
            "spec.priority",
            "must be 0, 1 or 2 (higher dials first)",
        ));
    }
    if spec.campaign_size > MAX_CAMPAIGN_SIZE {
        return Err(TaskError::invalid(
            "spec.campaign_size",
            format!("at most {MAX_CAMPAIGN_SIZE} calls a provider campaign (0 = dial each call)"),
        ));
    }
    if spec.recall_count > 20 {
        return Err(TaskError::invalid("spec.recall_count", "at most 20"));
    }
    if spec.recall_interval_seconds > 7 * 24 * 3600 {
        return Err(TaskError::invalid(
            "spec.recall_interval_seconds",
            "at most 7 days (604800)",
        ));
    }
    if let Some(retry) = &spec.retry {
        check_retry(retry)?;
    }
    if spec.tags.len() > 20 {
        return Err(TaskError::invalid("spec.tags", "at most 20 tags"));
    }
    for t in &spec.tags {
        if t.trim().is_empty() {
            return Err(TaskError::invalid("spec.tags", "a tag is empty"));
        }
        check_len("spec.tags", t, 50)?;
    }
    if let Some(ts) = &spec.scheduled_start {
        if waihu_events::from_timestamp(ts).is_none() {
            return Err(TaskError::invalid(
                "spec.scheduled_start",
                "out of range (nanos must be 0..999999999)",
            ));
        }
    }
    Ok(())
}

/// Calls a provider campaign hands over at most (`TaskSpec.campaign_size`).
pub const MAX_CAMPAIGN_SIZE: u32 = 10_000;

fn validate_row(row: pb::ContactRow) -> Result<NewContact, String> {
    use prost::Message;
    if row.phone.len() > MAX_FIELD_BYTES {
        return Err(format!(
            "phone: longer than {MAX_FIELD_BYTES} bytes (limit max_field_bytes)"
        ));
    }
    let phone = PhoneNumber::parse(&row.phone)?;
    if let Some(p) = text_problem(&row.name, 100) {
        return Err(format!("name: {p}"));
    }
    if let Some(p) = text_problem(&row.external_id, 64) {
        return Err(format!("external_id: {p}"));
    }
    if row.variables.len() > MAX_VARIABLES_PER_ROW {
        return Err(format!(
            "variables: at most {MAX_VARIABLES_PER_ROW} (limit max_variables_per_row)"
        ));
    }
    for (k, v) in &row.variables {
        if k.is_empty() {
            return Err("variables: a key is empty".into());
        }
        if let Some(p) = text_problem(k, 64) {
            return Err(format!("variables: key {:?}: {p}", echo(k)));
        }
        if v.len() > MAX_FIELD_BYTES {
            return Err(format!(
                "variables: value of {k:?} is longer than {MAX_FIELD_BYTES} bytes (limit max_field_bytes)"
            ));
        }
        if let Some(p) = text_problem(v, 1024) {
            return Err(format!("variables: value of {k:?}: {p}"));
        }
    }
    if row.encoded_len() > MAX_ROW_BYTES {
        return Err(format!(
            "the row is larger than {MAX_ROW_BYTES} bytes (limit max_row_bytes)"
        ));
    }
    Ok(NewContact {
        name: row.name.trim().to_string(),
        phone: phone.into_string(),
        external_id: row.external_id,
        variables: row.variables,
    })
}

/// A bounded copy of what the caller sent, for error messages.
fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(ECHO_CHARS).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn create_task(
        &self,
        req: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let tenant = tenant(req.metadata())?;
        let user = waihu_runtime::actor(&req);
        let mut spec = req
            .into_inner()
            .spec
            .ok_or_else(|| TaskError::invalid("spec", "is required"))?;
        validate_spec(&mut spec)?;
        let audit = Audit {
            actor: &user,
            action: "TaskService/CreateTask",
        };
        let row = self.db.create(&tenant, audit, spec).await?;
        tracing::info!(task_id = %row.task_id, %tenant, "task created");
        Ok(Response::new(row.to_pb()))
    }

    async fn add_contacts(
        &self,
        req: Request<Streaming<pb::AddContactsRequest>>,
    ) -> Result<Response<pb::AddContactsResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let mut stream = req.into_inner();
        let mut task: Option<Uuid> = None;
        // How the first message named the task: later messages naming it the same way are not
        // looked up again.
        let mut named = String::new();
        let mut reply = pb::AddContactsResponse::default();
        // Memory stays bounded by one message: numbers repeated within a message are caught
        // here, across messages and earlier imports by the database (one number per task).
        while let Some(msg) = stream.message().await? {
            let id = match task {
                Some(t) if msg.task_id == named => t,
                _ => self.db.resolve(&tenant, "task_id", &msg.task_id).await?,
            };
            if task.is_none() {
                named = msg.task_id.clone();
            }
            match task {
                None => task = Some(id),
                Some(t) if t != id => {
                    return Err(TaskError::invalid(
                        "task_id",
                        "must name the same task in every message",
                    )
                    .into())
                }
                Some(_) => {}
            }
            if msg.rows.len() > MAX_ROWS_PER_MESSAGE {
                return Err(TaskError::invalid(
                    "rows",
                    format!("at most {MAX_ROWS_PER_MESSAGE} per message"),
                )
                .into());
            }
            if reply.received + msg.rows.len() as u64 > MAX_ROWS_PER_STREAM {
                return Err(TaskError::invalid(
                    "rows",
                    format!(
                        "at most {MAX_ROWS_PER_STREAM} rows per AddContacts stream (limit \
                         max_rows_per_stream); the first {} rows were imported, send the rest \
                         in another stream",
                        reply.received
                    ),
                )
                .into());
            }
            let mut seen: HashSet<String> = HashSet::with_capacity(msg.rows.len());
            let mut valid = Vec::with_capacity(msg.rows.len());
            for row in msg.rows {
                reply.received += 1;
                let n = reply.received;
                let raw_phone = echo(&row.phone);
                match validate_row(row) {
                    Err(reason) => {
                        reply.rejected_total += 1;
                        if reply.rejected.len() < MAX_LISTED_REJECTIONS {
                            reply.rejected.push(pb::RejectedRow {
                                row: n,
                                phone: raw_phone,
                                reason,
                            });
                        }
                    }
                    Ok(c) if !seen.insert(c.phone.clone()) => reply.duplicates += 1,
                    Ok(c) => valid.push(c),
                }
            }
            if valid.is_empty() {
                continue;
            }
            let audit = Audit {
                actor: &actor,
                action: "TaskService/AddContacts",
            };
            let added = self.db.add_contacts(&tenant, id, valid, audit).await?;
            reply.accepted += added.accepted;
            reply.duplicates += added.duplicates.len() as u64;
            reply.contacts_total = added.contacts_total;
        }
        match task {
            None => Err(TaskError::invalid("task_id", "no message named a task").into()),
            Some(id) => {
                if reply.accepted == 0 {
                    // Nothing stored: still report the task's own total (and that it exists).
                    reply.contacts_total = self.db.get(&tenant, id).await?.contacts_total as u32;
                }
                tracing::info!(task_id = %id, received = reply.received, accepted = reply.accepted,
                               duplicates = reply.duplicates, rejected = reply.rejected_total, "contacts imported");
                Ok(Response::new(reply))
            }
        }
    }

    async fn start_task(&self, req: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        self.command(&req, &req.get_ref().task_id, Command::Start)
            .await
    }

    async fn pause_task(&self, req: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        self.command(&req, &req.get_ref().task_id, Command::Pause)
            .await
    }

    async fn resume_task(&self, req: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        self.command(&req, &req.get_ref().task_id, Command::Resume)
            .await
    }

    async fn cancel_task(
        &self,
        req: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let r = req.get_ref();
        check_len("reason", &r.reason, 500)?;
        let cmd = Command::Cancel {
            reason: r.reason.clone(),
        };
        self.command(&req, &r.task_id, cmd).await
    }

    async fn get_task(&self, req: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        let tenant = tenant(req.metadata())?;
        let id = self
            .db
            .resolve(&tenant, "task_id", &req.get_ref().task_id)
            .await?;
        Ok(Response::new(self.db.get(&tenant, id).await?.to_pb()))
    }

    async fn list_contacts(
        &self,
        req: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let id = self.db.resolve(&tenant, "task_id", &r.task_id).await?;
        let size = match r.page_size {
            0 => 100,
            n if n > 1000 => return Err(TaskError::invalid("page_size", "at most 1000").into()),
            n => n,
        };
        let rows = self
            .db
            .contacts(&tenant, id, r.after_contact_no, size + 1)
            .await?;
        let more = rows.len() > size as usize;
        let contacts: Vec<pb::ListedContact> = rows
            .into_iter()
            .take(size as usize)
            .map(|c| pb::ListedContact {
                contact_no: c.contact_no.max(0) as u32,
                phone: c.phone,
                outcome: c.finished_outcome.map_or(0, i32::from),
                name: c.name.unwrap_or_default(),
                external_id: c.external_id.unwrap_or_default(),
                added_at: c.added_at.map(waihu_events::timestamp),
            })
            .collect();
        let next_after_contact_no = match (more, contacts.last()) {
            (true, Some(last)) => last.contact_no,
            _ => 0,
        };
        Ok(Response::new(pb::ListContactsResponse {
            contacts,
            next_after_contact_no,
        }))
    }

    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let status = match pb::TaskStatus::try_from(r.status) {
            Ok(pb::TaskStatus::Unspecified) => None,
            Ok(s) => TaskStatus::from_code(s as i16),
            Err(_) => {
                return Err(TaskError::invalid(
                    "status",
                    format!("{} is not a task status", r.status),
                )
                .into())
            }
        };
        let size = match r.page_size {
            0 => 50,
            n if n > 500 => return Err(TaskError::invalid("page_size", "at most 500").into()),
            n => n,
        };
        check_len("name_contains", &r.name_contains, 100)?;
        let filter = TaskFilter {
            status,
            name_contains: r.name_contains.trim().to_string(),
            created_from: waihu_runtime::parse_time("created_from", &r.created_from)?,
            created_to: waihu_runtime::parse_time("created_to", &r.created_to)?,
            oldest_first: r.oldest_first,
        };
        let page = waihu_runtime::page_token::page(r.page_number, &r.page_token)?;
        // One more than the page, to know whether another follows.
        let (rows, total) = self.db.list(&tenant, &filter, &page, size + 1).await?;
        let more = rows.len() > size as usize;
        let rows = &rows[..rows.len().min(size as usize)];
        let next_page_token = match (more, rows.last(), &page) {
            (true, Some(last), waihu_runtime::page_token::Page::After(_)) => {
                waihu_runtime::page_token::encode(last.created_at, last.task_id)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListTasksResponse {
            tasks: rows.iter().map(|r| r.to_pb()).collect(),
            next_page_token,
            total: total.unwrap_or(0),
        }))
    }
}

impl TaskApi {
    async fn command<T>(
        &self,
        req: &Request<T>,
        task_id: &str,
        command: Command,
    ) -> Result<Response<pb::Task>, Status> {
        let tenant = tenant(req.metadata())?;
        let id = self.db.resolve(&tenant, "task_id", task_id).await?;
        let verb = command.verb();
        let actor = waihu_runtime::actor(req);
        let action = match command {
            Command::Start => "TaskService/StartTask",
            Command::Pause | Command::Suspend { .. } => "TaskService/PauseTask",
            Command::Resume => "TaskService/ResumeTask",
            Command::Cancel { .. } => "TaskService/CancelTask",
            Command::Complete => "TaskService/CompleteTask",
        };
        let audit = Audit {
            actor: &actor,
            action,
        };
        let row = self
            .db
            .transition(&tenant, id, command, Some(audit))
            .await?;
        tracing::info!(task_id = %id, status = row.status().name(), "task {verb}");
        Ok(Response::new(row.to_pb()))
    }
}
