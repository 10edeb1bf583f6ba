//! Numbers screened invalid (seed 004): the provider adapter's screening jobs announce each
//! batch's results (`NumbersScreened`) and operators' overrides (`NumberValidityOverridden`);
//! the dialer keeps the tenant's invalid numbers and finishes a due contact of one as
//! INVALID_NUMBER without calling it.

use std::collections::HashMap;

use waihu_events::{pb, Event, RecordedEvent};
use waihu_store::Tx;

use crate::db::{Db, DialerError};

/// The due numbers that finish without a call, over every task of a dial round in one query:
/// on the tenant's or the global do-not-call list (DO_NOT_CALL, which wins), or screened
/// invalid (INVALID_NUMBER).
pub async fn not_to_call(
    tx: &mut Tx<'_>,
    tenants: &[&str],
    phones: &[&str],
) -> Result<HashMap<(String, String), pb::ContactOutcome>, DialerError> {
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        // One index probe per number and list, however long the lists (the LIMITs keep the
        // planner from hashing a whole list).
        "SELECT DISTINCT x.t, x.p, d.listed IS NOT NULL
         FROM UNNEST($1::text[], $2::text[]) AS x(t, p)
         LEFT JOIN LATERAL (SELECT true AS listed FROM dialer_dnc d
                            WHERE d.phone = x.p AND d.scope IN (x.t, '*') LIMIT 1) d ON true
         LEFT JOIN LATERAL (SELECT true AS invalid FROM dialer_invalid_numbers i
                            WHERE i.phone = x.p AND i.tenant_id = x.t AND i.invalid) i ON true
         WHERE d.listed OR i.invalid",
    )
    .bind(tenants)
    .bind(phones)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, p, listed)| {
            let outcome = if listed {
                pb::ContactOutcome::DoNotCall
            } else {
                pb::ContactOutcome::InvalidNumber
            };
            ((t, p), outcome)
        })
        .collect())
}

impl Db {
    /// Applies screening results and overrides: each number's change applies only over an
    /// older version (events of different jobs and overrides may arrive in any order). Invalid
    /// numbers are not dialed; valid or unknown ones are.
    pub async fn apply_screening_events(
        &self,
        events: &[&RecordedEvent],
    ) -> Result<(), DialerError> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            let tenant = e.meta.tenant_id.as_str();
            // (phone, invalid, version) of every change the event carries.
            let (changes, source): (Vec<(&str, bool, i64)>, String) = match &e.event {
                Event::NumbersScreened(s) => (
                    s.numbers
                        .iter()
                        .filter(|n| n.version > 0)
                        .filter_map(|n| match pb::NumberValidity::try_from(n.validity) {
                            Ok(pb::NumberValidity::Invalid) => {
                                Some((n.phone.as_str(), true, n.version as i64))
                            }
                            Ok(pb::NumberValidity::Valid) => {
                                Some((n.phone.as_str(), false, n.version as i64))
                            }
                            _ => None,
                        })
                        .collect(),
                    format!("screening:{}", s.screening_id),
                ),
                Event::NumberValidityOverridden(o) => {
                    if o.versions.len() != o.phones.len() {
                        return Err(DialerError::Bad(format!(
                            "NumberValidityOverridden with {} phones and {} versions",
                            o.phones.len(),
                            o.versions.len()
                        )));
                    }
                    let invalid = o.validity == pb::NumberValidity::Invalid as i32;
                    (
                        o.phones
                            .iter()
                            .zip(&o.versions)
                            .map(|(p, v)| (p.as_str(), invalid, *v as i64))
                            .collect(),
                        "override".into(),
                    )
                }
                _ => continue,
            };
            if changes.is_empty() {
                continue;
            }
            let mut changes = changes;
            // One order for every writer of these rows.
            changes.sort_unstable();
            let phones: Vec<&str> = changes.iter().map(|c| c.0).collect();
            let invalid: Vec<bool> = changes.iter().map(|c| c.1).collect();
            let versions: Vec<i64> = changes.iter().map(|c| c.2).collect();
            sqlx::query(
                "INSERT INTO dialer_invalid_numbers
                     (tenant_id, phone, invalid, version, source, since)
                 SELECT $1, p, i, v, $5, $6
                 FROM UNNEST($2::text[], $3::bool[], $4::int8[]) AS u(p, i, v)
                 ON CONFLICT (phone, tenant_id) DO UPDATE
                 SET invalid = EXCLUDED.invalid, version = EXCLUDED.version,
                     source = EXCLUDED.source, since = EXCLUDED.since
                 WHERE dialer_invalid_numbers.version < EXCLUDED.version",
            )
            .bind(tenant)
            .bind(&phones)
            .bind(&invalid)
            .bind(&versions)
            .bind(&source)
            .bind(e.meta.occurred_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
