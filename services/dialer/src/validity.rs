//! Numbers screened invalid (seed 004): the provider adapter's screening jobs announce each
//! batch's results (`NumbersScreened`) and operators' overrides (`NumberValidityOverridden`);
//! the dialer keeps the tenant's invalid numbers and finishes a due contact of one as
//! INVALID_NUMBER without calling it.

use std::collections::HashSet;

use waihu_events::{pb, Event, RecordedEvent};
use waihu_store::Tx;

use crate::db::{Db, DialerError};

/// Which of these (tenant, number) pairs are known invalid.
pub async fn invalid_many(
    tx: &mut Tx<'_>,
    tenants: &[&str],
    phones: &[&str],
) -> Result<HashSet<(String, String)>, DialerError> {
    if tenants.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(sqlx::query_as::<_, (String, String)>(
        "SELECT DISTINCT x.t, x.p FROM UNNEST($1::text[], $2::text[]) AS x(t, p)
         JOIN dialer_invalid_numbers i ON i.phone = x.p AND i.tenant_id = x.t",
    )
    .bind(tenants)
    .bind(phones)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect())
}

impl Db {
    /// Applies screening results and overrides, in order: invalid numbers join the list,
    /// valid ones leave it; an unknown result changes nothing, an override to unknown clears.
    pub async fn apply_screening_events(
        &self,
        events: &[&RecordedEvent],
    ) -> Result<(), DialerError> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            let tenant = e.meta.tenant_id.as_str();
            let (invalid, clear, source): (Vec<&str>, Vec<&str>, String) = match &e.event {
                Event::NumbersScreened(s) => {
                    let mut invalid = Vec::new();
                    let mut valid = Vec::new();
                    for n in &s.numbers {
                        match pb::NumberValidity::try_from(n.validity) {
                            Ok(pb::NumberValidity::Invalid) => invalid.push(n.phone.as_str()),
                            Ok(pb::NumberValidity::Valid) => valid.push(n.phone.as_str()),
                            _ => {}
                        }
                    }
                    (invalid, valid, format!("screening:{}", s.screening_id))
                }
                Event::NumberValidityOverridden(o) => {
                    let phones: Vec<&str> = o.phones.iter().map(String::as_str).collect();
                    match pb::NumberValidity::try_from(o.validity) {
                        Ok(pb::NumberValidity::Invalid) => (phones, vec![], "override".into()),
                        _ => (vec![], phones, "override".into()),
                    }
                }
                _ => continue,
            };
            if !invalid.is_empty() {
                sqlx::query(
                    "INSERT INTO dialer_invalid_numbers (tenant_id, phone, source, since)
                     SELECT $1, p, $3, $4 FROM UNNEST($2::text[]) AS u(p) ORDER BY p
                     ON CONFLICT (phone, tenant_id) DO UPDATE
                     SET source = EXCLUDED.source, since = EXCLUDED.since",
                )
                .bind(tenant)
                .bind(&invalid)
                .bind(&source)
                .bind(e.meta.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            if !clear.is_empty() {
                sqlx::query(
                    "DELETE FROM dialer_invalid_numbers
                     WHERE tenant_id = $1 AND phone = ANY($2::text[])",
                )
                .bind(tenant)
                .bind(&clear)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
