//! The task write model in PostgreSQL. Every change locks the task row, decides with the pure
//! domain functions, and commits the new state together with its events (outbox).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{pb, timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_runtime::{page_token::Page, IdOrNumber};
use waihu_store::{Outbox, Tx};

use crate::{
    domain::{self, Command, Status, TaskState},
    TaskError,
};

pub const PRODUCER: &str = "task";

/// Encoded size a `ContactsAdded` event aims to stay under (one contact is at most
/// [`crate::grpc::MAX_ROW_BYTES`], so an event is never much larger).
pub const CONTACTS_EVENT_BYTES: usize = 128 * 1024;

/// Splits contacts into runs whose encoded size stays under `max` bytes (a single contact larger
/// than that gets a run of its own).
pub fn split_by_size(contacts: Vec<pb::Contact>, max: usize) -> Vec<Vec<pb::Contact>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for c in contacts {
        // Field tag and length prefix of the repeated field: a few bytes more than the message.
        let n = c.encoded_len() + 8;
        if !current.is_empty() && size + n > max {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += n;
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub task_id: Uuid,
    pub tenant_id: String,
    pub spec: Vec<u8>,
    pub status: i16,
    pub contacts_total: i32,
    pub contacts_finished: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub task_no: i64,
    pub created_by: Option<String>,
}

const COLUMNS: &str = "task_id, tenant_id, spec, status, contacts_total, contacts_finished, \
                       version, created_at, updated_at, completed_at, task_no, created_by";

impl TaskRow {
    pub fn status(&self) -> Status {
        Status::from_code(self.status).unwrap_or(Status::Pending)
    }

    fn state(&self) -> TaskState {
        TaskState {
            status: self.status(),
            contacts_total: self.contacts_total as u32,
            contacts_finished: self.contacts_finished as u32,
        }
    }

    pub fn to_pb(&self) -> pb::Task {
        pb::Task {
            task_id: self.task_id.to_string(),
            tenant_id: self.tenant_id.clone(),
            spec: pb::TaskSpec::decode(self.spec.as_slice()).ok(),
            status: self.status().to_pb() as i32,
            contacts_total: self.contacts_total as u32,
            contacts_finished: self.contacts_finished as u32,
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            completed_at: self.completed_at.map(timestamp),
            number: self.task_no.max(0) as u64,
            created_by: self.created_by.clone().unwrap_or_default(),
        }
    }
}

/// Which tasks a listing shows.
#[derive(Debug, Default)]
pub struct TaskFilter {
    pub status: Option<Status>,
    pub name_contains: String,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub oldest_first: bool,
}

/// A validated contact row ready to store.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub name: String,
    pub phone: String,
    pub external_id: String,
    pub variables: std::collections::HashMap<String, String>,
}

/// Result of storing one chunk of contacts.
/// Who asked for a change and what they called it (for the audit record written with it).
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
}

impl Audit<'_> {
    /// The audit event of this command on `task_id`, for the outbox (its own stream: no
    /// sequence to expect).
    fn event(&self, tenant: &str, task_id: Uuid, detail: &str) -> (RecordedEvent, Expect) {
        let e = waihu_events::audit(
            tenant,
            self.actor,
            self.action,
            &format!("task {task_id}"),
            detail,
        );
        (e, Expect::Any)
    }
}

/// A contact as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub contact_no: i32,
    pub phone: String,
    pub finished_outcome: Option<i16>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub added_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct Added {
    pub accepted: u64,
    /// Indexes (into the chunk) of rows whose number the task already had.
    pub duplicates: Vec<usize>,
    pub contacts_total: u32,
}

#[derive(Clone)]
pub struct Db {
    pub pool: PgPool,
    pub outbox: Outbox,
}

/// An event of the task aggregate; its id is derived from (task, version), so a decision can
/// never be announced twice under two ids.
fn task_event(tenant: &str, task_id: Uuid, version: i64, event: Event) -> (RecordedEvent, Expect) {
    let meta = EventMeta::new(tenant, Aggregate::Task(task_id), version as u64)
        .with_deterministic_id(&format!("task/{task_id}/{version}"))
        .with_task(task_id);
    (RecordedEvent::new(meta, event), Expect::Any)
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Db {
            pool,
            outbox: Outbox::new(PRODUCER),
        }
    }

    pub async fn create(
        &self,
        tenant: &str,
        audit: Audit<'_>,
        spec: pb::TaskSpec,
    ) -> Result<TaskRow, TaskError> {
        let created_by = audit.actor;
        let task_id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        crate::tenants::check_create(&mut tx, tenant).await?;
        let row: TaskRow = sqlx::query_as(&format!(
            "INSERT INTO task_tasks (task_id, tenant_id, name, spec, status, version, created_at, updated_at, created_by)
             VALUES ($1, $2, $3, $4, $5, 1, now(), now(), $6) RETURNING {COLUMNS}"
        ))
        .bind(task_id)
        .bind(tenant)
        .bind(&spec.name)
        .bind(spec.encode_to_vec())
        .bind(Status::Pending.code())
        .bind((!created_by.is_empty()).then_some(created_by))
        .fetch_one(&mut *tx)
        .await?;
        let event = Event::TaskCreated(pb::TaskCreated {
            task_id: task_id.to_string(),
            spec: Some(spec),
            created_by: created_by.to_string(),
        });
        self.outbox
            .push(
                &mut tx,
                &[
                    task_event(tenant, task_id, 1, event),
                    audit.event(tenant, task_id, ""),
                ],
            )
            .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(row)
    }

    /// The task a request names: by UUID, or by number (decimal digits) within the tenant.
    pub async fn resolve(&self, tenant: &str, field: &str, s: &str) -> Result<Uuid, TaskError> {
        let number = match waihu_runtime::parse_id_or_number(field, "task", s)? {
            IdOrNumber::Id(id) => return Ok(id),
            IdOrNumber::Number(n) => n,
        };
        sqlx::query_scalar("SELECT task_id FROM task_tasks WHERE task_no = $1 AND tenant_id = $2")
            .bind(number)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| TaskError::NotFound(format!("task {number}")))
    }

    pub async fn get(&self, tenant: &str, task_id: Uuid) -> Result<TaskRow, TaskError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM task_tasks WHERE task_id = $1 AND tenant_id = $2"
        ))
        .bind(task_id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| crate::error::task_not_found(task_id))
    }

    async fn lock(tx: &mut Tx<'_>, tenant: &str, task_id: Uuid) -> Result<TaskRow, TaskError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM task_tasks WHERE task_id = $1 AND tenant_id = $2 FOR UPDATE"
        ))
        .bind(task_id)
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| crate::error::task_not_found(task_id))
    }

    /// Applies a lifecycle command; FAILED_PRECONDITION (from the domain's `Rejection`) if illegal.
    pub async fn transition(
        &self,
        tenant: &str,
        task_id: Uuid,
        command: Command,
        audit: Option<Audit<'_>>,
    ) -> Result<TaskRow, TaskError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock(&mut tx, tenant, task_id).await?;
        if matches!(command, Command::Start | Command::Resume) {
            crate::tenants::check_dialing(&mut tx, tenant).await?;
        }
        let mut state = row.state();
        let mut version = row.version;
        let mut events = Vec::new();
        let (status, event) = domain::decide(state, &task_id.to_string(), &command)?;
        version += 1;
        events.push(task_event(tenant, task_id, version, event));
        state.status = status;
        // Contacts may all have finished while the task was paused: resuming completes it.
        if let Ok((status, event)) = domain::decide(state, &task_id.to_string(), &Command::Complete)
        {
            version += 1;
            events.push(task_event(tenant, task_id, version, event));
            state.status = status;
        }
        let row = self
            .save_status(&mut tx, task_id, state.status, version)
            .await?;
        if let Some(a) = audit {
            events.push(a.event(tenant, task_id, &format!("now {}", state.status.name())));
        }
        self.outbox.push(&mut tx, &events).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(row)
    }

    async fn save_status(
        &self,
        tx: &mut Tx<'_>,
        task_id: Uuid,
        status: Status,
        version: i64,
    ) -> Result<TaskRow, TaskError> {
        Ok(sqlx::query_as(&format!(
            "UPDATE task_tasks SET status = $2, version = $3, updated_at = now(),
                    completed_at = CASE WHEN $2 IN ({}, {}) THEN now() ELSE completed_at END
             WHERE task_id = $1 RETURNING {COLUMNS}",
            Status::Completed.code(),
            Status::Cancelled.code()
        ))
        .bind(task_id)
        .bind(status.code())
        .bind(version)
        .fetch_one(&mut **tx)
        .await?)
    }

    /// Stores a chunk of valid, chunk-unique contacts; numbers the task already has are
    /// duplicates. One `ContactsAdded` event announces the accepted ones.
    pub async fn add_contacts(
        &self,
        tenant: &str,
        task_id: Uuid,
        rows: Vec<NewContact>,
        audit: Audit<'_>,
    ) -> Result<Added, TaskError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock(&mut tx, tenant, task_id).await?;
        if !domain::accepts_contacts(row.status()) {
            return Err(domain::Rejection::IllegalTransition {
                status: row.status(),
                verb: "given contacts",
            }
            .into());
        }
        let phones: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
        let existing: HashSet<String> = sqlx::query_scalar(
            "SELECT phone FROM task_contacts WHERE task_id = $1 AND phone = ANY($2)",
        )
        .bind(task_id)
        .bind(&phones)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut added = Added::default();
        let mut next_no = row.contacts_total as u32;
        let mut contacts = Vec::with_capacity(rows.len());
        for (i, r) in rows.into_iter().enumerate() {
            if existing.contains(&r.phone) {
                added.duplicates.push(i);
                continue;
            }
            next_no += 1;
            contacts.push(pb::Contact {
                contact_no: next_no,
                name: r.name,
                phone: r.phone,
                external_id: r.external_id,
                variables: r.variables,
            });
        }
        added.accepted = contacts.len() as u64;
        added.contacts_total = next_no;
        if contacts.is_empty() {
            return Ok(added);
        }
        let nos: Vec<i32> = contacts.iter().map(|c| c.contact_no as i32).collect();
        let phones: Vec<&str> = contacts.iter().map(|c| c.phone.as_str()).collect();
        let optional = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let names: Vec<Option<String>> = contacts.iter().map(|c| optional(&c.name)).collect();
        let external: Vec<Option<String>> =
            contacts.iter().map(|c| optional(&c.external_id)).collect();
        sqlx::query(
            "INSERT INTO task_contacts (task_id, contact_no, phone, name, external_id, added_at)
             SELECT $1, n, p, nm, x, now()
             FROM UNNEST($2::int[], $3::text[], $4::text[], $5::text[]) AS u(n, p, nm, x)",
        )
        .bind(task_id)
        .bind(&nos)
        .bind(&phones)
        .bind(&names)
        .bind(&external)
        .execute(&mut *tx)
        .await?;
        // One event per slice of at most CONTACTS_EVENT_BYTES: a wide CRM export must never
        // make an event the bus refuses.
        let mut version = row.version;
        let mut events = Vec::new();
        for slice in split_by_size(contacts, CONTACTS_EVENT_BYTES) {
            version += 1;
            let event = Event::ContactsAdded(pb::ContactsAdded {
                task_id: task_id.to_string(),
                contacts: slice,
            });
            events.push(task_event(tenant, task_id, version, event));
        }
        sqlx::query("UPDATE task_tasks SET contacts_total = $2, version = $3, updated_at = now() WHERE task_id = $1")
            .bind(task_id)
            .bind(next_no as i32)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        events.push(audit.event(
            tenant,
            task_id,
            &format!("contacts added: {}", added.accepted),
        ));
        self.outbox.push(&mut tx, &events).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(added)
    }

    /// Tasks newest first; `after` is the (created_at, task_id) of the previous page's last task.
    /// One page of the tenant's tasks matching `filter`, newest first (or oldest first), and,
    /// when paging by number, how many match in all.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &TaskFilter,
        page: &Page,
        limit: u32,
    ) -> Result<(Vec<TaskRow>, Option<u64>), TaskError> {
        let pattern = format!(
            "%{}%",
            filter
                .name_contains
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let where_ = |b: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>| {
            b.push(" FROM task_tasks WHERE tenant_id = ")
                .push_bind(tenant.to_string())
                .push(" AND name ILIKE ")
                .push_bind(pattern.clone());
            if let Some(s) = filter.status {
                b.push(" AND status = ").push_bind(s.code());
            }
            if let Some(f) = filter.created_from {
                b.push(" AND created_at >= ").push_bind(f);
            }
            if let Some(t) = filter.created_to {
                b.push(" AND created_at < ").push_bind(t);
            }
        };
        let (cmp, dir) = if filter.oldest_first {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let mut b = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS}"));
        where_(&mut b);
        if let Page::After(Some((at, id))) = page {
            b.push(format!(" AND (created_at, task_id) {cmp} ("))
                .push_bind(*at)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        b.push(format!(" ORDER BY created_at {dir}, task_id {dir} LIMIT "))
            .push_bind(limit as i64);
        if let Page::Number(n) = page {
            b.push(" OFFSET ")
                .push_bind((*n as i64 - 1).max(0) * (limit as i64 - 1));
        }
        let rows: Vec<TaskRow> = b.build_query_as().fetch_all(&self.pool).await?;
        let total = match page {
            Page::Number(_) => {
                let mut c = sqlx::QueryBuilder::new("SELECT count(*)");
                where_(&mut c);
                let n: i64 = c.build_query_scalar().fetch_one(&self.pool).await?;
                Some(n.max(0) as u64)
            }
            Page::After(_) => None,
        };
        Ok((rows, total))
    }

    /// A page of a task's contacts after `after` (contact number): (number, phone, outcome).
    pub async fn contacts(
        &self,
        tenant: &str,
        task_id: Uuid,
        after: u32,
        limit: u32,
    ) -> Result<Vec<ContactRow>, TaskError> {
        self.get(tenant, task_id).await?;
        Ok(sqlx::query_as(
            "SELECT contact_no, phone, finished_outcome, name, external_id, added_at
             FROM task_contacts
             WHERE task_id = $1 AND contact_no > $2 ORDER BY contact_no LIMIT $3",
        )
        .bind(task_id)
        .bind(after.min(i32::MAX as u32) as i32)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks contacts finished (idempotently) and completes tasks whose last contact finished.
    pub async fn contacts_finished(&self, items: &[(Uuid, u32, i16)]) -> Result<(), TaskError> {
        let mut tx = self.pool.begin().await?;
        let tasks: Vec<Uuid> = items.iter().map(|i| i.0).collect();
        let nos: Vec<i32> = items.iter().map(|i| i.1 as i32).collect();
        let outcomes: Vec<i16> = items.iter().map(|i| i.2).collect();
        let newly: Vec<Uuid> = sqlx::query_scalar(
            // Rows are locked in key order first, so replicas handling overlapping
            // redeliveries cannot deadlock.
            "WITH todo AS (
                 SELECT c.task_id, c.contact_no, u.o
                 FROM task_contacts c
                 JOIN UNNEST($1::uuid[], $2::int[], $3::smallint[]) AS u(t, n, o)
                   ON c.task_id = u.t AND c.contact_no = u.n
                 WHERE c.finished_outcome IS NULL
                 ORDER BY c.task_id, c.contact_no
                 FOR UPDATE OF c
             )
             UPDATE task_contacts c SET finished_outcome = todo.o FROM todo
             WHERE c.task_id = todo.task_id AND c.contact_no = todo.contact_no
             RETURNING c.task_id",
        )
        .bind(&tasks)
        .bind(&nos)
        .bind(&outcomes)
        .fetch_all(&mut *tx)
        .await?;
        let mut per_task: BTreeMap<Uuid, i32> = BTreeMap::new();
        for t in newly {
            *per_task.entry(t).or_default() += 1;
        }
        let (ids, counts): (Vec<Uuid>, Vec<i32>) = per_task.into_iter().unzip();
        // Every task's count in one statement, its rows locked in key order first (as above).
        let mut rows: Vec<TaskRow> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(&format!(
                "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::int[]) AS u(id, n)),
                 lk AS (SELECT t.task_id AS locked FROM task_tasks t JOIN u ON t.task_id = u.id
                        ORDER BY t.task_id FOR UPDATE OF t)
                 UPDATE task_tasks t
                 SET contacts_finished = t.contacts_finished + u.n, updated_at = now()
                 FROM u JOIN lk ON lk.locked = u.id
                 WHERE t.task_id = u.id
                 RETURNING {COLUMNS}"
            ))
            .bind(&ids)
            .bind(&counts)
            .fetch_all(&mut *tx)
            .await?
        };
        rows.sort_by_key(|r| r.task_id);
        let mut events = Vec::new();
        for row in rows {
            let task_id = row.task_id;
            if let Ok((status, event)) =
                domain::decide(row.state(), &task_id.to_string(), &Command::Complete)
            {
                let version = row.version + 1;
                self.save_status(&mut tx, task_id, status, version).await?;
                events.push(task_event(&row.tenant_id, task_id, version, event));
            }
        }
        self.outbox.push(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.outbox.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use waihu_events::pb;

    use super::split_by_size;

    #[test]
    fn contacts_are_split_into_events_under_the_size_limit_in_order() {
        let wide = |no: u32| pb::Contact {
            contact_no: no,
            phone: format!("+86138{no:08}"),
            variables: (0..12)
                .map(|k| (format!("备注{k}"), "客户说下周再联系，需要发资料".repeat(4)))
                .collect(),
            ..Default::default()
        };
        let contacts: Vec<pb::Contact> = (1..=3000).map(wide).collect();
        let total: usize = contacts.iter().map(|c| c.encoded_len()).sum();
        assert!(
            total > 1024 * 1024,
            "the list is over 1 MiB ({total} bytes)"
        );
        let parts = split_by_size(contacts, 128 * 1024);
        assert!(parts.len() > 8);
        let mut next = 1;
        for p in &parts {
            let event = pb::ContactsAdded {
                task_id: "t".into(),
                contacts: p.clone(),
            };
            assert!(event.encoded_len() <= 128 * 1024 + 64);
            for c in p {
                assert_eq!(c.contact_no, next);
                next += 1;
            }
        }
        assert_eq!(next, 3001);
    }
}
