//! Do-not-call lists: each tenant's and the platform's. Entries change through `DialerService`
//! (each change with its audit record, never naming a number); the dial round checks every due
//! contact against both lists and finishes a listed one as DO_NOT_CALL.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use waihu_bus::Expect;
use waihu_events::{pb, timestamp};
use waihu_runtime::ApiError;
use waihu_store::Tx;

use crate::db::{Db, DialerError};

/// The scope of the platform-wide list (never a tenant id, which allows no `*`).
pub const GLOBAL: &str = "*";
/// Numbers one request may carry.
pub const MAX_PHONES: usize = 10_000;
const MAX_REASON: usize = 200;

/// Numbers of a request, normalised, with the entries refused.
pub struct Checked {
    pub phones: Vec<String>,
    pub rejected: Vec<pb::RejectedPhone>,
    pub rejected_total: u32,
}

/// Checks a request's numbers (INVALID_ARGUMENT for a request too big or a bad reason; bad
/// numbers are reported, the rest go ahead).
pub fn check(req: &pb::DoNotCallRequest) -> Result<Checked, ApiError> {
    if req.phones.is_empty() {
        return Err(ApiError::invalid("phones", "name one or more numbers"));
    }
    if req.phones.len() > MAX_PHONES {
        return Err(ApiError::invalid(
            "phones",
            format!("at most {MAX_PHONES} a request (import larger lists in chunks)"),
        ));
    }
    waihu_runtime::check_text("reason", &req.reason, MAX_REASON)?;
    let (mut rejected, mut rejected_total) = (Vec::new(), 0);
    let mut phones =
        waihu_telephony::phone::parse_many(&req.phones, 0, &mut rejected, &mut rejected_total);
    let mut seen = HashSet::new();
    phones.retain(|p| seen.insert(p.clone()));
    let out = Checked {
        phones,
        rejected,
        rejected_total,
    };
    Ok(out)
}

/// Which of these (tenant, number) pairs are on the tenant's list or the global one.
pub async fn listed_many(
    tx: &mut Tx<'_>,
    tenants: &[&str],
    phones: &[&str],
) -> Result<HashSet<(String, String)>, DialerError> {
    if tenants.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(sqlx::query_as::<_, (String, String)>(
        // One index probe per number, however long the lists (the LIMIT keeps the planner
        // from hashing a whole list).
        "SELECT DISTINCT x.t, x.p FROM UNNEST($1::text[], $2::text[]) AS x(t, p)
         CROSS JOIN LATERAL (SELECT 1 FROM dialer_dnc d
                             WHERE d.phone = x.p AND d.scope IN (x.t, '*') LIMIT 1) l",
    )
    .bind(tenants)
    .bind(phones)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect())
}

impl Db {
    /// Adds (`add`) or removes numbers of the list of `scope` (a tenant, or [`GLOBAL`]), with
    /// the audit record of `actor`'s `action` in `tenant`: (changed, unchanged).
    pub async fn change_dnc(
        &self,
        scope: &str,
        phones: &[String],
        reason: &str,
        add: bool,
        audit: (&str, &str, &str),
    ) -> Result<(u32, u32), DialerError> {
        let mut tx = self.pool.begin().await?;
        let changed = if add {
            sqlx::query(
                "INSERT INTO dialer_dnc (scope, phone, reason, added_at)
                 SELECT $1, p, $3, now() FROM UNNEST($2::text[]) AS u(p) ORDER BY p
                 ON CONFLICT DO NOTHING",
            )
            .bind(scope)
            .bind(phones)
            .bind(reason)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            sqlx::query("DELETE FROM dialer_dnc WHERE scope = $1 AND phone = ANY($2)")
                .bind(scope)
                .bind(phones)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        };
        let (tenant, actor, action) = audit;
        let list = if scope == GLOBAL {
            "the global do-not-call list".to_string()
        } else {
            "the do-not-call list".to_string()
        };
        let detail = format!(
            "{} {changed} numbers{}",
            if add { "added" } else { "removed" },
            if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            }
        );
        let e = waihu_events::audit(tenant, actor, action, &list, &detail);
        self.outbox.push(&mut tx, &[(e, Expect::Any)]).await?;
        tx.commit().await?;
        self.outbox.wake();
        let changed = changed as u32;
        Ok((changed, phones.len() as u32 - changed))
    }

    /// Whether `phone` (normalised) is on `tenant`'s list or the global one.
    pub async fn check_dnc(
        &self,
        tenant: &str,
        phone: &str,
    ) -> Result<pb::CheckDoNotCallReply, DialerError> {
        let row: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT scope, reason, added_at FROM dialer_dnc
             WHERE scope IN ($1, '*') AND phone = $2
             ORDER BY scope = '*' LIMIT 1",
        )
        .bind(tenant)
        .bind(phone)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((scope, reason, added_at)) => pb::CheckDoNotCallReply {
                phone: phone.to_string(),
                listed: true,
                scope: if scope == GLOBAL { "global" } else { "tenant" }.into(),
                reason,
                added_at: Some(timestamp(added_at)),
            },
            None => pb::CheckDoNotCallReply {
                phone: phone.to_string(),
                ..Default::default()
            },
        })
    }
}
