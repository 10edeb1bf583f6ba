//! Lines (trunks) as managed entities: `ProviderService`. Each change commits with its event
//! (LineCreated, LineUpdated, LineDisabled, LineEnabled, carrying the whole line) and its audit
//! record in the outbox; the dialer follows the events. Every call acts within the caller's
//! tenant: another tenant's line is NOT_FOUND.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use waihu_bus::Expect;
use waihu_events::{pb, timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_proto::v1::{
    dialer_service_client::DialerServiceClient, provider_service_server::ProviderService,
};
use waihu_runtime::{tenant, ApiError};
use waihu_store::{Outbox, Tx};

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use waihu_provider_core::{Credentials, LineConfig};

use crate::{
    cloud::Providers,
    vault::{Sealed, Vault},
};

/// Settings and credentials one line may have, and their sizes.
const MAX_CONFIG_ENTRIES: usize = 32;
const MAX_CONFIG_VALUE: usize = 2048;
const MAX_SECRET_VALUE: usize = 4096;
/// Lines one tenant may have.
pub const MAX_LINES: i64 = 1000;
/// Concurrent calls one line may carry at most.
pub const MAX_CONCURRENT: u32 = 100_000;
/// Calls per second one line may start at most.
pub const MAX_CPS: f64 = 10_000.0;
const MAX_NAME: usize = 100;
const MAX_REASON: usize = 500;

pub const PRODUCER: &str = "provider";

pub use waihu_telephony::valid_line_id;

fn check_line_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if !valid_line_id(id) {
        return Err(ApiError::invalid(
            field,
            "1-64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    Ok(())
}

/// A name of a setting or credential: 1-64 characters of a-z 0-9 _.
fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::invalid(
            field,
            "names are 1-64 characters of a-z 0-9 _",
        ));
    }
    Ok(())
}

/// The provider settings of a line: bounded, and every one the provider needs present.
fn check_config(
    provider: &str,
    config: &std::collections::HashMap<String, String>,
    registry: &Providers,
) -> Result<BTreeMap<String, String>, ApiError> {
    if config.len() > MAX_CONFIG_ENTRIES {
        return Err(ApiError::invalid(
            "line.provider_config",
            format!("at most {MAX_CONFIG_ENTRIES} settings"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in config {
        check_name("line.provider_config", k)?;
        waihu_runtime::check_text(&format!("line.provider_config.{k}"), v, MAX_CONFIG_VALUE)?;
        out.insert(k.clone(), v.trim().to_string());
    }
    if provider == waihu_provider_sip::KIND {
        waihu_provider_sip::Trunk::from_config(&out)
            .map_err(|e| ApiError::invalid(format!("line.provider_config.{}", e.field), e.why))?;
    }
    if let Some(api) = registry.get(provider) {
        for need in api.requires().0 {
            if out.get(*need).is_none_or(|v| v.is_empty()) {
                return Err(ApiError::invalid(
                    format!("line.provider_config.{need}"),
                    format!("is required for a {provider} line"),
                ));
            }
        }
    }
    Ok(out)
}

/// The credentials given for a line: bounded, named, and (when `complete`) every one its
/// provider needs present. The simulator takes none.
fn check_credentials(
    provider: &str,
    creds: &std::collections::HashMap<String, String>,
    registry: &Providers,
    complete: bool,
) -> Result<BTreeMap<String, String>, ApiError> {
    let api = registry.get(provider);
    if provider == waihu_provider_sip::KIND {
        // Only the digest password, and only with a username (checked with the settings).
        if let Some(k) = creds
            .keys()
            .find(|k| !waihu_provider_sip::CREDENTIALS.contains(&k.as_str()))
        {
            return Err(ApiError::invalid(
                format!("credentials.{k}"),
                "a sip line takes only the credential password",
            ));
        }
    } else if api.is_none() && !creds.is_empty() {
        return Err(ApiError::invalid(
            "credentials",
            format!("a {provider} line takes none"),
        ));
    }
    if creds.len() > MAX_CONFIG_ENTRIES {
        return Err(ApiError::invalid(
            "credentials",
            format!("at most {MAX_CONFIG_ENTRIES}"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in creds {
        check_name("credentials", k)?;
        if v.is_empty() || v.len() > MAX_SECRET_VALUE || v.contains('\0') {
            // The field is named, never the value.
            return Err(ApiError::invalid(
                format!("credentials.{k}"),
                format!("1 to {MAX_SECRET_VALUE} bytes, no NUL"),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    if let (Some(api), true) = (api, complete) {
        for need in api.requires().1 {
            if !out.contains_key(*need) {
                return Err(ApiError::invalid(
                    format!("credentials.{need}"),
                    format!("is required for a {provider} line"),
                ));
            }
        }
    }
    Ok(out)
}

/// A line's settings as given, checked and normalised (caller number to E.164, time zone
/// named): INVALID_ARGUMENT naming the field.
pub fn check(line: &pb::Line, registry: &Providers) -> Result<pb::Line, ApiError> {
    check_line_id("line.line_id", &line.line_id)?;
    let name = line.name.trim();
    waihu_runtime::check_text("line.name", name, MAX_NAME)?;
    let kinds = registry.kinds();
    if !kinds.contains(&line.provider.as_str()) {
        return Err(ApiError::invalid(
            "line.provider",
            format!(
                "{:?} is not a provider this build has ({})",
                line.provider.chars().take(40).collect::<String>(),
                kinds.join(", ")
            ),
        ));
    }
    let provider_config = check_config(&line.provider, &line.provider_config, registry)?;
    if line.caller_number.trim().is_empty() {
        return Err(ApiError::invalid("line.caller_number", "is required"));
    }
    let caller = waihu_telephony::PhoneNumber::parse(&line.caller_number)
        .map_err(|e| ApiError::invalid("line.caller_number", e))?;
    if line.provider == crate::devices::KIND && line.max_concurrent != 1 {
        return Err(ApiError::invalid(
            "line.max_concurrent",
            "a mobile line (a work phone) places one call at a time: 1",
        ));
    }
    if line.max_concurrent == 0 || line.max_concurrent > MAX_CONCURRENT {
        return Err(ApiError::invalid(
            "line.max_concurrent",
            format!("1 to {MAX_CONCURRENT}"),
        ));
    }
    if !(line.cps.is_finite() && (0.0..=MAX_CPS).contains(&line.cps)) {
        return Err(ApiError::invalid(
            "line.cps",
            format!("0 (no limit) to {MAX_CPS} calls per second"),
        ));
    }
    if line.daily_cap > i32::MAX as u32 {
        return Err(ApiError::invalid(
            "line.daily_cap",
            format!("at most {}", i32::MAX),
        ));
    }
    let zone = waihu_telephony::zone::parse(&line.time_zone)
        .map_err(|e| ApiError::invalid("line.time_zone", e))?;
    Ok(pb::Line {
        line_id: line.line_id.clone(),
        name: name.to_string(),
        provider: line.provider.clone(),
        caller_number: caller.into_string(),
        max_concurrent: line.max_concurrent,
        cps: line.cps,
        daily_cap: line.daily_cap,
        time_zone: zone.name().to_string(),
        enabled: line.enabled,
        version: line.version,
        created_at: None,
        updated_at: None,
        region: None,
        provider_config: provider_config.into_iter().collect(),
        credential_names: vec![],
    })
}

/// Where a caller number is, when the data tells.
pub fn region(caller_number: &str) -> Option<pb::Region> {
    waihu_telephony::region::region_of(caller_number).map(|r| pb::Region {
        province: r.province.to_string(),
        city: r.city.to_string(),
        area_code: r.area_code.to_string(),
    })
}

#[derive(sqlx::FromRow)]
struct Row {
    line_id: String,
    name: String,
    provider: String,
    caller_number: String,
    max_concurrent: i32,
    cps: f64,
    daily_cap: i32,
    time_zone: String,
    enabled: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    provider_config: sqlx::types::Json<BTreeMap<String, String>>,
    credential_names: Vec<String>,
}

const COLUMNS: &str = "line_id, name, provider, caller_number, max_concurrent, cps, daily_cap, \
     time_zone, enabled, version, created_at, updated_at, provider_config, \
     COALESCE((SELECT c.names FROM provider_line_credentials c \
               WHERE c.tenant_id = provider_lines.tenant_id \
                 AND c.line_id = provider_lines.line_id), '{}') AS credential_names";

impl Row {
    fn to_pb(&self) -> pb::Line {
        pb::Line {
            line_id: self.line_id.clone(),
            name: self.name.clone(),
            provider: self.provider.clone(),
            caller_number: self.caller_number.clone(),
            max_concurrent: self.max_concurrent.max(0) as u32,
            cps: self.cps,
            daily_cap: self.daily_cap.max(0) as u32,
            time_zone: self.time_zone.clone(),
            enabled: self.enabled,
            version: self.version.max(0) as u64,
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            region: region(&self.caller_number),
            provider_config: self.provider_config.0.clone().into_iter().collect(),
            credential_names: self.credential_names.clone(),
        }
    }
}

/// The event of a line change, its id derived from (tenant, line, version) so one change is
/// never announced under two ids.
fn line_event(tenant: &str, line: &pb::Line, event: Event) -> (RecordedEvent, Expect) {
    let meta = EventMeta::new(tenant, Aggregate::line(tenant, &line.line_id), line.version)
        .with_deterministic_id(&format!("line/{tenant}/{}/{}", line.line_id, line.version));
    (RecordedEvent::new(meta, event), Expect::Any)
}

#[derive(Clone)]
pub struct Lines {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub vault: Arc<Vault>,
    pub registry: Providers,
}

/// Who asked, for the audit record written with a change.
pub(crate) struct Audit {
    pub actor: String,
    pub action: &'static str,
}

fn store_err(e: sqlx::Error) -> ApiError {
    waihu_store::StoreError::from(e).into()
}

impl Lines {
    pub fn new(pool: PgPool, vault: Arc<Vault>, registry: Providers) -> Self {
        Lines {
            pool,
            outbox: Outbox::new(PRODUCER),
            vault,
            registry,
        }
    }

    /// Seals and stores a line's credentials (replacing any).
    async fn store_credentials(
        &self,
        tx: &mut Tx<'_>,
        tenant: &str,
        line: &str,
        creds: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let sealed = self
            .vault
            .seal(tenant, line, creds)
            .map_err(ApiError::FailedPrecondition)?;
        let names: Vec<&String> = creds.keys().collect();
        sqlx::query(
            "INSERT INTO provider_line_credentials (tenant_id, line_id, names, key_id, sealed)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, line_id) DO UPDATE
             SET names = $3, key_id = $4, sealed = $5, updated_at = now()",
        )
        .bind(tenant)
        .bind(line)
        .bind(names)
        .bind(&sealed.key_id)
        .bind(&sealed.bytes)
        .execute(&mut **tx)
        .await
        .map_err(store_err)?;
        Ok(())
    }

    /// A line as its provider needs it (settings and opened credentials), if the tenant has it.
    pub async fn config(&self, tenant: &str, line: &str) -> Result<Option<LineConfig>, String> {
        #[derive(sqlx::FromRow)]
        struct ConfigRow {
            provider: String,
            caller_number: String,
            provider_config: sqlx::types::Json<BTreeMap<String, String>>,
            key_id: Option<String>,
            sealed: Option<Vec<u8>>,
        }
        let row: Option<ConfigRow> = sqlx::query_as(
            "SELECT l.provider, l.caller_number, l.provider_config, c.key_id, c.sealed
             FROM provider_lines l LEFT JOIN provider_line_credentials c
               ON c.tenant_id = l.tenant_id AND c.line_id = l.line_id
             WHERE l.tenant_id = $1 AND l.line_id = $2",
        )
        .bind(tenant)
        .bind(line)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| format!("line {line}: {e}"))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let credentials = match (r.key_id, r.sealed) {
            (Some(key_id), Some(bytes)) => {
                self.vault.open(tenant, line, &Sealed { key_id, bytes })?
            }
            _ => BTreeMap::new(),
        };
        Ok(Some(LineConfig {
            tenant_id: tenant.to_string(),
            line_id: line.to_string(),
            provider: r.provider,
            caller_number: r.caller_number,
            config: r.provider_config.0,
            credentials: Credentials::new(credentials),
        }))
    }

    /// Re-seals, under the current key, credentials sealed under an old one (key rotation).
    /// Returns how many were re-sealed.
    pub async fn reseal_stale(&self) -> Result<u64, String> {
        let Some(current) = self.vault.current_id() else {
            return Ok(0);
        };
        let stale: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT tenant_id, line_id, key_id, sealed FROM provider_line_credentials
             WHERE key_id <> $1",
        )
        .bind(current)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| format!("credentials: {e}"))?;
        let mut n = 0;
        for (tenant, line, key_id, bytes) in stale {
            let values = self.vault.open(&tenant, &line, &Sealed { key_id, bytes })?;
            let sealed = self.vault.seal(&tenant, &line, &values)?;
            sqlx::query(
                "UPDATE provider_line_credentials SET key_id = $3, sealed = $4, updated_at = now()
                 WHERE tenant_id = $1 AND line_id = $2",
            )
            .bind(&tenant)
            .bind(&line)
            .bind(&sealed.key_id)
            .bind(&sealed.bytes)
            .execute(&self.pool)
            .await
            .map_err(|e| format!("credentials: {e}"))?;
            n += 1;
        }
        Ok(n)
    }

    async fn commit(
        &self,
        mut tx: Tx<'_>,
        tenant: &str,
        audit: &Audit,
        line: &pb::Line,
        event: Event,
        detail: &str,
    ) -> Result<(), ApiError> {
        let audit = waihu_events::audit(
            tenant,
            &audit.actor,
            audit.action,
            &format!("line {}", line.line_id),
            detail,
        );
        self.outbox
            .push(
                &mut tx,
                &[line_event(tenant, line, event), (audit, Expect::Any)],
            )
            .await?;
        tx.commit().await.map_err(waihu_store::StoreError::from)?;
        self.outbox.wake();
        Ok(())
    }

    pub(crate) async fn create(
        &self,
        tenant: &str,
        audit: Audit,
        line: pb::Line,
        credentials: &std::collections::HashMap<String, String>,
    ) -> Result<pb::Line, ApiError> {
        let line = check(&line, &self.registry)?;
        let creds = check_credentials(&line.provider, credentials, &self.registry, true)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(waihu_store::StoreError::from)?;
        // Serialises a tenant's creations, so the count below holds.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('provider-lines/' || $1, 0))")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(waihu_store::StoreError::from)?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM provider_lines WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await
                .map_err(waihu_store::StoreError::from)?;
        if count >= MAX_LINES {
            return Err(ApiError::ResourceExhausted(format!(
                "tenant {tenant} has {count} lines, the most one tenant may have"
            )));
        }
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM provider_lines WHERE tenant_id = $1 AND line_id = $2)",
        )
        .bind(tenant)
        .bind(&line.line_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_err)?;
        if exists {
            return Err(ApiError::AlreadyExists(format!("line {}", line.line_id)));
        }
        if !creds.is_empty() {
            self.store_credentials(&mut tx, tenant, &line.line_id, &creds)
                .await?;
        }
        let row: Option<Row> = sqlx::query_as(&format!(
            "INSERT INTO provider_lines (tenant_id, line_id, name, provider, caller_number,
                 max_concurrent, cps, daily_cap, time_zone, enabled, version, created_at, updated_at,
                 provider_config)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, true, 1, now(), now(), $10)
             ON CONFLICT (tenant_id, line_id) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(&line.line_id)
        .bind(&line.name)
        .bind(&line.provider)
        .bind(&line.caller_number)
        .bind(line.max_concurrent as i32)
        .bind(line.cps)
        .bind(line.daily_cap as i32)
        .bind(&line.time_zone)
        .bind(sqlx::types::Json(&line.provider_config))
        .fetch_optional(&mut *tx)
        .await
        .map_err(waihu_store::StoreError::from)?;
        let Some(row) = row else {
            return Err(ApiError::AlreadyExists(format!("line {}", line.line_id)));
        };
        let line = row.to_pb();
        let event = Event::LineCreated(pb::LineCreated {
            line: Some(line.clone()),
        });
        self.commit(tx, tenant, &audit, &line, event, "").await?;
        Ok(line)
    }

    async fn locked(&self, tx: &mut Tx<'_>, tenant: &str, id: &str) -> Result<Row, ApiError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM provider_lines WHERE tenant_id = $1 AND line_id = $2 FOR UPDATE"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(waihu_store::StoreError::from)?
        .ok_or_else(|| ApiError::NotFound(format!("line {id}")))
    }

    async fn update(
        &self,
        tenant: &str,
        audit: Audit,
        line: pb::Line,
        expected_version: u64,
        credentials: &std::collections::HashMap<String, String>,
    ) -> Result<pb::Line, ApiError> {
        let line = check(&line, &self.registry)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(waihu_store::StoreError::from)?;
        let old = self.locked(&mut tx, tenant, &line.line_id).await?;
        if expected_version > 0 && old.version as u64 != expected_version {
            return Err(ApiError::FailedPrecondition(format!(
                "line {} is at version {}, not {expected_version}",
                line.line_id, old.version
            )));
        }
        // A line moved to another provider needs that provider's credentials now.
        let moved = old.provider != line.provider;
        let creds = check_credentials(&line.provider, credentials, &self.registry, moved)?;
        if !creds.is_empty() {
            self.store_credentials(&mut tx, tenant, &line.line_id, &creds)
                .await?;
        } else if moved {
            sqlx::query(
                "DELETE FROM provider_line_credentials WHERE tenant_id = $1 AND line_id = $2",
            )
            .bind(tenant)
            .bind(&line.line_id)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        }
        let row: Row = sqlx::query_as(&format!(
            "UPDATE provider_lines SET name = $3, provider = $4, caller_number = $5,
                 max_concurrent = $6, cps = $7, daily_cap = $8, time_zone = $9,
                 provider_config = $10, version = version + 1, updated_at = now()
             WHERE tenant_id = $1 AND line_id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(&line.line_id)
        .bind(&line.name)
        .bind(&line.provider)
        .bind(&line.caller_number)
        .bind(line.max_concurrent as i32)
        .bind(line.cps)
        .bind(line.daily_cap as i32)
        .bind(&line.time_zone)
        .bind(sqlx::types::Json(&line.provider_config))
        .fetch_one(&mut *tx)
        .await
        .map_err(waihu_store::StoreError::from)?;
        let line = row.to_pb();
        let event = Event::LineUpdated(pb::LineUpdated {
            line: Some(line.clone()),
        });
        self.commit(tx, tenant, &audit, &line, event, "").await?;
        Ok(line)
    }

    /// Switches a line off or on; a line already so is returned as it is (no event).
    pub(crate) async fn set_enabled(
        &self,
        tenant: &str,
        audit: Audit,
        id: &str,
        enabled: bool,
        reason: &str,
    ) -> Result<pb::Line, ApiError> {
        check_line_id("line_id", id)?;
        if reason.chars().count() > MAX_REASON || reason.contains('\0') {
            return Err(ApiError::invalid(
                "reason",
                format!("at most {MAX_REASON} characters"),
            ));
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(waihu_store::StoreError::from)?;
        let old = self.locked(&mut tx, tenant, id).await?;
        if old.enabled == enabled {
            return Ok(old.to_pb());
        }
        let row: Row = sqlx::query_as(&format!(
            "UPDATE provider_lines SET enabled = $3, version = version + 1, updated_at = now()
             WHERE tenant_id = $1 AND line_id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(id)
        .bind(enabled)
        .fetch_one(&mut *tx)
        .await
        .map_err(waihu_store::StoreError::from)?;
        let line = row.to_pb();
        let event = if enabled {
            Event::LineEnabled(pb::LineEnabled {
                line: Some(line.clone()),
            })
        } else {
            Event::LineDisabled(pb::LineDisabled {
                line: Some(line.clone()),
                reason: reason.to_string(),
            })
        };
        self.commit(tx, tenant, &audit, &line, event, reason)
            .await?;
        Ok(line)
    }

    async fn get(&self, tenant: &str, id: &str) -> Result<pb::Line, ApiError> {
        check_line_id("line_id", id)?;
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM provider_lines WHERE tenant_id = $1 AND line_id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(waihu_store::StoreError::from)?;
        row.map(|r| r.to_pb())
            .ok_or_else(|| ApiError::NotFound(format!("line {id}")))
    }

    async fn list(&self, tenant: &str) -> Result<Vec<pb::Line>, ApiError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM provider_lines WHERE tenant_id = $1 ORDER BY line_id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(waihu_store::StoreError::from)?;
        Ok(rows.iter().map(Row::to_pb).collect())
    }
}

/// `ProviderService` over [`Lines`]; line status asks the dialer over `dialer`, one channel
/// made at start-up and connected on first use (and again after a failure).
pub struct ProviderApi {
    pub lines: Lines,
    pub dialer: tonic::transport::Channel,
    /// The SIP user agent, which tests `sip` lines (None when the adapter has no SIP).
    pub sip: Option<waihu_provider_sip::SipProvider>,
    /// Work phones.
    pub mobile: Option<crate::mobile::Mobile>,
}

impl ProviderApi {
    /// An API asking the dialer at `dialer_url` (checked as a URI when the settings load).
    pub fn new(
        lines: Lines,
        dialer_url: &str,
        sip: Option<waihu_provider_sip::SipProvider>,
    ) -> Result<Self, String> {
        let dialer = tonic::transport::Endpoint::from_shared(dialer_url.to_string())
            .map_err(|e| format!("provider.dialer_url {dialer_url:?}: {e}"))?
            .connect_lazy();
        Ok(ProviderApi {
            lines,
            dialer,
            sip,
            mobile: None,
        })
    }
}

fn audit<T>(req: &Request<T>, action: &'static str) -> Audit {
    Audit {
        actor: waihu_runtime::actor(req),
        action,
    }
}

/// Metadata a call to the dialer carries on the caller's behalf: its token, else (development
/// mode) its tenant.
fn forwarded<T>(from: &Request<T>, to: &mut tonic::metadata::MetadataMap) {
    for key in ["authorization", "x-tenant-id"] {
        if let Some(v) = from.metadata().get(key) {
            to.insert(key, v.clone());
        }
    }
}

#[tonic::async_trait]
impl ProviderService for ProviderApi {
    async fn create_line(
        &self,
        req: Request<pb::CreateLineRequest>,
    ) -> Result<Response<pb::Line>, Status> {
        let tenant = tenant(req.metadata())?;
        let audit = audit(&req, "ProviderService/CreateLine");
        let r = req.into_inner();
        let line = r
            .line
            .ok_or_else(|| ApiError::invalid("line", "is required"))?;
        Ok(Response::new(
            self.lines
                .create(&tenant, audit, line, &r.credentials)
                .await?,
        ))
    }

    async fn update_line(
        &self,
        req: Request<pb::UpdateLineRequest>,
    ) -> Result<Response<pb::Line>, Status> {
        let tenant = tenant(req.metadata())?;
        let audit = audit(&req, "ProviderService/UpdateLine");
        let r = req.into_inner();
        let line = r
            .line
            .ok_or_else(|| ApiError::invalid("line", "is required"))?;
        Ok(Response::new(
            self.lines
                .update(&tenant, audit, line, r.expected_version, &r.credentials)
                .await?,
        ))
    }

    async fn disable_line(
        &self,
        req: Request<pb::DisableLineRequest>,
    ) -> Result<Response<pb::Line>, Status> {
        let tenant = tenant(req.metadata())?;
        let audit = audit(&req, "ProviderService/DisableLine");
        let r = req.into_inner();
        Ok(Response::new(
            self.lines
                .set_enabled(&tenant, audit, &r.line_id, false, &r.reason)
                .await?,
        ))
    }

    async fn enable_line(
        &self,
        req: Request<pb::LineRequest>,
    ) -> Result<Response<pb::Line>, Status> {
        let tenant = tenant(req.metadata())?;
        let audit = audit(&req, "ProviderService/EnableLine");
        let r = req.into_inner();
        Ok(Response::new(
            self.lines
                .set_enabled(&tenant, audit, &r.line_id, true, "")
                .await?,
        ))
    }

    async fn list_lines(
        &self,
        req: Request<pb::ListLinesRequest>,
    ) -> Result<Response<pb::ListLinesResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        Ok(Response::new(pb::ListLinesResponse {
            lines: self.lines.list(&tenant).await?,
        }))
    }

    async fn get_line(&self, req: Request<pb::LineRequest>) -> Result<Response<pb::Line>, Status> {
        let tenant = tenant(req.metadata())?;
        Ok(Response::new(
            self.lines.get(&tenant, &req.get_ref().line_id).await?,
        ))
    }

    async fn get_line_status(
        &self,
        req: Request<pb::LineRequest>,
    ) -> Result<Response<pb::LineStatus>, Status> {
        let tenant = tenant(req.metadata())?;
        let line = self.lines.get(&tenant, &req.get_ref().line_id).await?;
        let mut ask = Request::new(pb::GetLineUsageRequest {
            line_ids: vec![line.line_id.clone()],
        });
        forwarded(&req, ask.metadata_mut());
        let unavailable = |e: &dyn std::fmt::Display| Status::unavailable(format!("dialer: {e}"));
        let usage = DialerServiceClient::new(waihu_runtime::telemetry::traced(self.dialer.clone()))
            .get_line_usage(ask)
            .await
            .map_err(|s| unavailable(&s.message()))?
            .into_inner()
            .lines
            .into_iter()
            .find(|u| u.line_id == line.line_id)
            .unwrap_or_default();
        Ok(Response::new(pb::LineStatus {
            line: Some(line),
            in_flight: usage.in_flight,
            today_calls: usage.today_calls,
            cps_10s: usage.cps_10s,
        }))
    }

    async fn create_device_binding(
        &self,
        req: Request<pb::CreateDeviceBindingRequest>,
    ) -> Result<Response<pb::DeviceBinding>, Status> {
        let tenant = tenant(req.metadata())?;
        let m = self.phones()?;
        let actor = waihu_runtime::actor(&req);
        let user = match req.get_ref().user_id.trim() {
            "" => actor,
            u => u.to_string(),
        };
        let (token, expires) = m.devices.create_binding(&tenant, &user).await?;
        let qr = serde_json::json!({
            "action": "bind_device",
            "serverUrl": m.websocket_url,
            "token": token,
            "userId": user,
            "timestamp": chrono::Utc::now().timestamp_millis(),
        });
        Ok(Response::new(pb::DeviceBinding {
            token,
            qr_payload: qr.to_string(),
            expires_at: Some(waihu_events::timestamp(expires)),
            bind_url: m.bind_url.clone(),
            websocket_url: m.websocket_url.clone(),
        }))
    }

    async fn list_devices(
        &self,
        req: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let m = self.phones()?;
        let rows = m.devices.list(&tenant, &req.get_ref().user_id).await?;
        Ok(Response::new(pb::ListDevicesResponse {
            devices: rows.iter().map(|d| d.to_pb()).collect(),
        }))
    }

    async fn get_device(
        &self,
        req: Request<pb::DeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let tenant = tenant(req.metadata())?;
        let m = self.phones()?;
        let id = device_id(req.get_ref().id)?;
        let d = m
            .devices
            .get(&tenant, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("device {id}")))?;
        Ok(Response::new(d.to_pb()))
    }

    async fn unbind_device(
        &self,
        req: Request<pb::DeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let tenant = tenant(req.metadata())?;
        let m = self.phones()?;
        let actor = waihu_runtime::actor(&req);
        let id = device_id(req.get_ref().id)?;
        let d = m
            .devices
            .unbind(&tenant, id, &actor, "device unbound")
            .await?;
        m.unbound(id).await;
        Ok(Response::new(d.to_pb()))
    }

    async fn test_line(
        &self,
        req: Request<pb::LineRequest>,
    ) -> Result<Response<pb::TestLineResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let id = &req.get_ref().line_id;
        check_line_id("line_id", id)?;
        let line = self
            .lines
            .config(&tenant, id)
            .await
            .map_err(Status::unavailable)?
            .ok_or_else(|| ApiError::NotFound(format!("line {id}")))?;
        if line.provider == waihu_provider_sip::KIND {
            let started = Instant::now();
            let result = match &self.sip {
                Some(sip) => sip.probe(&line, std::time::Duration::from_secs(10)).await,
                None => Err("this adapter has no SIP (provider.sip_bind is empty)".into()),
            };
            let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
            let (success, message) = match result {
                Ok(m) => (true, m),
                Err(e) => (false, e),
            };
            return Ok(Response::new(pb::TestLineResponse {
                success,
                latency_ms,
                message: line.scrub(&message),
            }));
        }
        let Some(api) = self.lines.registry.get(&line.provider) else {
            return Ok(Response::new(pb::TestLineResponse {
                success: true,
                latency_ms: 0,
                message: "the simulator needs no test".into(),
            }));
        };
        let started = Instant::now();
        let result = api.test(&line).await;
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let (success, message) = match result {
            Ok(m) => (true, m),
            Err(e) => (false, e.to_string()),
        };
        Ok(Response::new(pb::TestLineResponse {
            success,
            latency_ms,
            message: line.scrub(&message),
        }))
    }
}

fn device_id(id: u64) -> Result<i64, ApiError> {
    if id == 0 || id > i64::MAX as u64 {
        return Err(ApiError::invalid(
            "id",
            "a device number (from ListDevices)",
        ));
    }
    Ok(id as i64)
}

impl ProviderApi {
    fn phones(&self) -> Result<&crate::mobile::Mobile, ApiError> {
        self.mobile
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("work phones are not served here".into()))
    }
}

/// Lines as the dispatcher reads them, kept a few seconds (a changed line is seen within
/// [`LINE_TTL`]).
#[derive(Clone)]
pub struct LineCache {
    lines: Lines,
    cache: Arc<Mutex<HashMap<LineKey, Cached>>>,
}

/// (tenant, line id), and a line read at a time.
type LineKey = (String, String);
type Cached = (Instant, Arc<LineConfig>);

pub const LINE_TTL: Duration = Duration::from_secs(5);
const LINE_CACHE_MAX: usize = 10_000;

impl LineCache {
    pub fn new(lines: Lines) -> Self {
        LineCache {
            lines,
            cache: Arc::default(),
        }
    }

    /// (tenant, line) of the lines of `provider` whose setting `setting` is `value` (at most 20):
    /// where a callback naming no call may come from.
    pub async fn matching(
        &self,
        provider: &str,
        setting: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT tenant_id, line_id FROM provider_lines
             WHERE provider = $1 AND provider_config ->> $2 = $3
             ORDER BY tenant_id, line_id LIMIT 20",
        )
        .bind(provider)
        .bind(setting)
        .bind(value)
        .fetch_all(&self.lines.pool)
        .await
    }

    pub async fn get(&self, tenant: &str, line: &str) -> Result<Option<Arc<LineConfig>>, String> {
        let key = (tenant.to_string(), line.to_string());
        {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, l)) = c.get(&key) {
                if at.elapsed() < LINE_TTL {
                    return Ok(Some(l.clone()));
                }
            }
        }
        let Some(found) = self.lines.config(tenant, line).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= LINE_CACHE_MAX {
            c.clear();
        }
        c.insert(key, (Instant::now(), found.clone()));
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> pb::Line {
        pb::Line {
            line_id: "sim-1".into(),
            name: " 主线路 ".into(),
            provider: "sim".into(),
            caller_number: "0592-1234567".into(),
            max_concurrent: 10,
            cps: 5.0,
            ..Default::default()
        }
    }

    fn field(r: Result<pb::Line, ApiError>) -> String {
        match r {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!(
                "expected INVALID_ARGUMENT, got {:?}",
                other.map(|l| l.line_id)
            ),
        }
    }

    #[test]
    fn a_line_is_normalised_and_each_bad_field_is_named() {
        let reg = Providers::new(reqwest::Client::new());
        let ok = check(&line(), &reg).expect("valid");
        assert_eq!(ok.caller_number, "+865921234567");
        assert_eq!(ok.time_zone, "Asia/Shanghai");
        assert_eq!(ok.name, "主线路");
        let xiamen = region(&ok.caller_number).expect("a Xiamen landline");
        assert_eq!(
            (xiamen.city.as_str(), xiamen.area_code.as_str()),
            ("厦门市", "592")
        );
        assert_eq!(region("+12125550100"), None);
        let bad = |f: fn(&mut pb::Line)| {
            let mut l = line();
            f(&mut l);
            field(check(&l, &reg))
        };
        assert_eq!(bad(|l| l.line_id = "a b".into()), "line.line_id");
        assert_eq!(bad(|l| l.line_id.clear()), "line.line_id");
        assert_eq!(bad(|l| l.provider = "pstn".into()), "line.provider");
        assert_eq!(bad(|l| l.caller_number = "12".into()), "line.caller_number");
        assert_eq!(bad(|l| l.caller_number.clear()), "line.caller_number");
        assert_eq!(bad(|l| l.max_concurrent = 0), "line.max_concurrent");
        assert_eq!(bad(|l| l.cps = f64::NAN), "line.cps");
        assert_eq!(bad(|l| l.cps = -1.0), "line.cps");
        assert_eq!(bad(|l| l.daily_cap = u32::MAX), "line.daily_cap");
        assert_eq!(bad(|l| l.time_zone = "Mars/Base".into()), "line.time_zone");
        assert_eq!(bad(|l| l.name = "a\u{0}b".into()), "line.name");
        assert_eq!(
            bad(|l| {
                l.provider = "twilio".into();
            }),
            "line.provider_config.account_sid"
        );
        assert_eq!(
            bad(|l| {
                l.provider_config.insert("Bad Name".into(), "x".into());
            }),
            "line.provider_config"
        );
        let creds = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let cfield = |provider: &str, c: &[(&str, &str)]| match check_credentials(
            provider,
            &creds(c),
            &reg,
            true,
        ) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        };
        assert_eq!(cfield("twilio", &[]), "credentials.auth_token");
        assert_eq!(
            cfield("twilio", &[("auth_token", "")]),
            "credentials.auth_token"
        );
        assert_eq!(cfield("sim", &[("auth_token", "x")]), "credentials");
        let ok = check_credentials("twilio", &creds(&[("auth_token", "t0k")]), &reg, true)
            .expect("complete");
        assert_eq!(ok.len(), 1);
    }
}
