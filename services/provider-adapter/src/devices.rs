//! Work phones (seed 003, 方案一): binding a user's phone by a one-time QR token, the phone's own
//! token, its online state, and the commands waiting for it. Each bound phone gets a line,
//! `mobile-<id>` (provider `mobile`, one call at a time, the phone's number as caller number),
//! through which campaigns and click-to-dial reach it; unbinding disables that line. Bind and
//! unbind are events (`DeviceBound`, `DeviceUnbound`), with an audit record each.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::rand::SecureRandom;
use sqlx::PgPool;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_runtime::ApiError;

use crate::lines::{Audit, Lines};

/// The provider type of work-phone lines.
pub const KIND: &str = "mobile";

/// A bound phone's line id.
pub fn line_id(device: i64) -> String {
    format!("mobile-{device}")
}

/// How phones are kept track of (`[provider] device_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceTimings {
    /// A phone not heard from (heartbeat or any message) for this long is offline.
    pub offline_after: Duration,
    /// ... and for this long is disconnected.
    pub disconnect_after: Duration,
    /// How long a dial command waits for an offline phone before the call is released.
    pub dial_wait: Duration,
    /// How long a binding token (the QR code) is valid.
    pub bind_ttl: Duration,
}

impl Default for DeviceTimings {
    fn default() -> Self {
        DeviceTimings {
            offline_after: Duration::from_secs(60),
            disconnect_after: Duration::from_secs(90),
            dial_wait: Duration::from_secs(60),
            bind_ttl: Duration::from_secs(300),
        }
    }
}

/// A bound phone as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub tenant_id: String,
    pub user_id: String,
    pub device_id: String,
    pub phone_number: String,
    pub device_name: String,
    pub device_model: String,
    pub os_type: String,
    pub os_version: String,
    pub app_version: String,
    pub bound_at: DateTime<Utc>,
    pub unbound_at: Option<DateTime<Utc>>,
    pub online: bool,
    pub last_heartbeat: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, tenant_id, user_id, device_id, phone_number, device_name, device_model, \
                       os_type, os_version, app_version, bound_at, unbound_at, online, last_heartbeat";

impl DeviceRow {
    pub fn to_pb(&self) -> pb::Device {
        pb::Device {
            id: self.id as u64,
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            phone_number: self.phone_number.clone(),
            device_name: self.device_name.clone(),
            device_model: self.device_model.clone(),
            os_type: self.os_type.clone(),
            os_version: self.os_version.clone(),
            app_version: self.app_version.clone(),
            online: self.online && self.unbound_at.is_none(),
            last_heartbeat: self.last_heartbeat.map(waihu_events::timestamp),
            bound_at: Some(waihu_events::timestamp(self.bound_at)),
            unbound_at: self.unbound_at.map(waihu_events::timestamp),
            line_id: line_id(self.id),
        }
    }

    pub fn is_ios(&self) -> bool {
        self.os_type == "ios"
    }
}

/// What a phone sends to bind itself (seed 003 `POST /calls/device/bind`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BindRequest {
    pub token: String,
    pub device_id: String,
    pub phone_number: String,
    pub device_name: String,
    pub device_model: String,
    pub os_type: String,
    pub os_version: String,
    pub app_version: String,
}

/// A random token (32 bytes, base64url) and its SHA-256.
pub fn new_token() -> Result<(String, Vec<u8>), ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Unavailable("no randomness for a token".into()))?;
    use base64::Engine;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

fn db(e: sqlx::Error) -> ApiError {
    waihu_store::StoreError::from(e).into()
}

fn text(field: &str, v: &str, max: usize, required: bool) -> Result<String, ApiError> {
    let v = v.trim();
    if required && v.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    waihu_runtime::check_text(field, v, max)?;
    Ok(v.to_string())
}

/// The phones of the adapter's tenants.
#[derive(Clone)]
pub struct Devices {
    pub pool: PgPool,
    pub lines: Lines,
    pub timings: DeviceTimings,
}

impl Devices {
    /// A one-time binding token for `user` of `tenant`, valid for `bind_ttl`.
    pub async fn create_binding(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let user = text("user_id", user, 128, true)?;
        let (token, hash) = new_token()?;
        let expires = Utc::now()
            + chrono::Duration::from_std(self.timings.bind_ttl)
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        sqlx::query(
            "INSERT INTO provider_device_binds (token_hash, tenant_id, user_id, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&hash)
        .bind(tenant)
        .bind(&user)
        .bind(expires)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        // Expired tokens of anyone go; they can never be used.
        sqlx::query(
            "DELETE FROM provider_device_binds WHERE expires_at < now() - interval '1 day'",
        )
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok((token, expires))
    }

    /// Binds a phone with a binding token: its row and its own token. The token must be
    /// unused and unexpired (else UNAUTHENTICATED); a phone bound before under the same
    /// `deviceId` is unbound first.
    /// Also returns the number of the phone's earlier binding, ended by this one.
    pub async fn bind(
        &self,
        req: &BindRequest,
        ip: &str,
    ) -> Result<(DeviceRow, String, Option<i64>), ApiError> {
        let device_id = text("deviceId", &req.device_id, 100, true)?;
        let phone = waihu_telephony::PhoneNumber::parse(req.phone_number.trim())
            .map_err(|e| ApiError::invalid("phoneNumber", e))?
            .into_string();
        let os_type = req.os_type.trim().to_ascii_lowercase();
        if os_type != "android" && os_type != "ios" {
            return Err(ApiError::invalid("osType", "must be android or ios"));
        }
        let name = text("deviceName", &req.device_name, 100, false)?;
        let model = text("deviceModel", &req.device_model, 100, false)?;
        let os_version = text("osVersion", &req.os_version, 32, false)?;
        let app_version = text("appVersion", &req.app_version, 32, false)?;
        if req.token.trim().is_empty() {
            return Err(ApiError::invalid("token", "is required"));
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        let bound: Option<(String, String)> = sqlx::query_as(
            "UPDATE provider_device_binds SET used_at = now()
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
             RETURNING tenant_id, user_id",
        )
        .bind(token_hash(req.token.trim()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((tenant, user)) = bound else {
            return Err(ApiError::PermissionDenied(
                "the binding token is unknown, used or expired: scan a new QR code".into(),
            ));
        };
        // The same phone bound again: its earlier binding ends here.
        let earlier: Option<DeviceRow> = sqlx::query_as(&format!(
            "UPDATE provider_devices SET unbound_at = now(), online = false
             WHERE tenant_id = $1 AND device_id = $2 AND unbound_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(&tenant)
        .bind(&device_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(old) = &earlier {
            self.close_out(&mut tx, &tenant, old, &user).await?;
        }
        let (token, hash) = new_token()?;
        let row: DeviceRow = sqlx::query_as(&format!(
            "INSERT INTO provider_devices (tenant_id, user_id, device_id, phone_number,
                 device_name, device_model, os_type, os_version, app_version, token_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (tenant_id, device_id) WHERE unbound_at IS NULL DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(&tenant)
        .bind(&user)
        .bind(&device_id)
        .bind(&phone)
        .bind(&name)
        .bind(&model)
        .bind(&os_type)
        .bind(&os_version)
        .bind(&app_version)
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .map(Ok)
        .unwrap_or_else(|| {
            Err(ApiError::FailedPrecondition(
                "this phone was bound at the same moment by another request".into(),
            ))
        })?;
        let event = Event::DeviceBound(pb::DeviceBound {
            id: row.id as u64,
            user_id: user.clone(),
            device_id: device_id.clone(),
            phone_number: phone.clone(),
            device_name: name,
            device_model: model,
            os_type: os_type.clone(),
            os_version,
            app_version,
            bind_type: "qrcode".into(),
            ip_address: ip.to_string(),
        });
        self.push(&mut tx, &tenant, row.id, 1, event, &user, "device/bind")
            .await?;
        tx.commit().await.map_err(db)?;
        self.lines.outbox.wake();
        if let Some(old) = &earlier {
            self.disable_line(&tenant, old.id, &user, "bound again")
                .await;
        }
        let line = pb::Line {
            line_id: line_id(row.id),
            name: format!("{} ({})", row.device_name, row.phone_number)
                .trim()
                .chars()
                .take(100)
                .collect(),
            provider: KIND.into(),
            caller_number: phone,
            max_concurrent: 1,
            enabled: true,
            provider_config: [("device".to_string(), row.id.to_string())].into(),
            ..Default::default()
        };
        let audit = Audit {
            actor: user.clone(),
            action: "device/bind",
        };
        if let Err(e) = self
            .lines
            .create(&tenant, audit, line, &Default::default())
            .await
        {
            // A phone without its line could never be dialed: the binding is undone.
            tracing::error!(device = row.id, error = %e, "the phone's line was not created; binding undone");
            if let Err(u) = self
                .unbind(&tenant, row.id, &user, "its line could not be created")
                .await
            {
                tracing::error!(device = row.id, error = %u, "binding not undone");
            }
            return Err(e);
        }
        Ok((row, token, earlier.map(|d| d.id)))
    }

    /// Ends a binding in `tx`: its commands are dropped and `DeviceUnbound` is recorded.
    async fn close_out(
        &self,
        tx: &mut waihu_store::Tx<'_>,
        tenant: &str,
        row: &DeviceRow,
        actor: &str,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE provider_device_commands SET done_at = now()
             WHERE device = $1 AND done_at IS NULL",
        )
        .bind(row.id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        let event = Event::DeviceUnbound(pb::DeviceUnbound {
            id: row.id as u64,
            user_id: row.user_id.clone(),
            device_id: row.device_id.clone(),
            phone_number: row.phone_number.clone(),
            actor: actor.to_string(),
        });
        self.push(tx, tenant, row.id, 2, event, actor, "device/unbind")
            .await
    }

    /// Disables an unbound phone's line (logged when it cannot be).
    async fn disable_line(&self, tenant: &str, id: i64, actor: &str, reason: &str) {
        let audit = Audit {
            actor: actor.to_string(),
            action: "device/unbind",
        };
        if let Err(e) = self
            .lines
            .set_enabled(tenant, audit, &line_id(id), false, reason)
            .await
        {
            tracing::warn!(device = id, error = %e, "the unbound phone's line was not disabled");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn push(
        &self,
        tx: &mut waihu_store::Tx<'_>,
        tenant: &str,
        device: i64,
        version: u64,
        event: Event,
        actor: &str,
        action: &str,
    ) -> Result<(), ApiError> {
        let meta = EventMeta::new(tenant, Aggregate::device(tenant, device as u64), version);
        let audit = waihu_events::audit(tenant, actor, action, &format!("device {device}"), "");
        self.lines
            .outbox
            .push(
                tx,
                &[
                    (RecordedEvent::new(meta, event), Expect::Any),
                    (audit, Expect::Any),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn get(&self, tenant: &str, id: i64) -> Result<Option<DeviceRow>, ApiError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM provider_devices WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    /// The tenant's live phones (one user's, when given), newest first, at most 1,000.
    pub async fn list(&self, tenant: &str, user: &str) -> Result<Vec<DeviceRow>, ApiError> {
        // A filter the database cannot hold (a NUL) is the request's fault, not a 500.
        let user = text("user_id", user, 128, false)?;
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM provider_devices
             WHERE tenant_id = $1 AND unbound_at IS NULL AND ($2 = '' OR user_id = $2)
             ORDER BY id DESC LIMIT 1000"
        ))
        .bind(tenant)
        .bind(&user)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    /// Unbinds a phone: its token stops working, its commands are dropped, its line disabled.
    pub async fn unbind(
        &self,
        tenant: &str,
        id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<DeviceRow, ApiError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row: Option<DeviceRow> = sqlx::query_as(&format!(
            "UPDATE provider_devices SET unbound_at = now(), online = false
             WHERE tenant_id = $1 AND id = $2 AND unbound_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return match self.get(tenant, id).await? {
                Some(r) => Ok(r),
                None => Err(ApiError::NotFound(format!("device {id}"))),
            };
        };
        self.close_out(&mut tx, tenant, &row, actor).await?;
        tx.commit().await.map_err(db)?;
        self.lines.outbox.wake();
        self.disable_line(tenant, id, actor, reason).await;
        Ok(row)
    }

    /// The live phone a token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Option<DeviceRow>, ApiError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM provider_devices WHERE token_hash = $1 AND unbound_at IS NULL"
        ))
        .bind(token_hash(token.trim()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    /// Marks a phone heard from now (online), or offline; false when it is no longer bound.
    pub async fn seen(&self, id: i64, online: bool) -> Result<bool, ApiError> {
        let n = sqlx::query(
            "UPDATE provider_devices
             SET online = $2, last_heartbeat = CASE WHEN $2 THEN now() ELSE last_heartbeat END
             WHERE id = $1 AND unbound_at IS NULL",
        )
        .bind(id)
        .bind(online)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n > 0)
    }
}
