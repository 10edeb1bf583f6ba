//! Work phones as a provider (`mobile` lines), speaking seed 003's protocol:
//! - the app binds with the QR's one-time token (`POST /api/v1/calls/device/bind`) and gets its
//!   own token and the WebSocket URL;
//! - over the WebSocket (`GET /ws` or `/api/v1/calls/ws`, `Authorization: Bearer <token>` or
//!   `?token=`) messages are `{type, messageId, timestamp, data}`: to the app `DIAL_COMMAND`,
//!   `CANCEL_DIAL`, `HEARTBEAT_ACK`, `DEVICE_UNBIND`; from it `DEVICE_ONLINE`, `DEVICE_OFFLINE`,
//!   `CALL_STATUS`, `CALL_END`, `HEARTBEAT`, `RECORDING_UPLOAD`;
//! - the app may report over HTTP instead (`POST /api/v1/calls/mobile/status`, `/mobile/end`,
//!   `/mobile/recording/upload` multipart), with its token and `X-Device-Id`.
//!
//! A dial command is kept (`provider_device_commands`) until the phone reports on the call: a
//! phone offline when it was made gets it when it connects, one that reconnects gets again what
//! it has not reported on, with the same `messageId` (the app drops a messageId it has seen), and
//! one that stays away longer than `device_dial_wait_s` has the call released (41,
//! `mobile:device-offline`). The player of the call is the cloud player ([`crate::cloud`]): the
//! phone's reports go to the same inbox as a cloud provider's callbacks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        ConnectInfo, DefaultBodyLimit, Multipart, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;
use waihu_bus::Bus;
use waihu_events::{pb, Event};
use waihu_provider_core::{
    cloud::BoxFuture, ApiError, CloudApi, Hook, HookError, HookReply, LineConfig, Placed, Report,
    Signal,
};
use waihu_runtime::ApiError as Api;
use waihu_telephony::hangup;

use crate::{
    adapter::{announce_report, Playing},
    cloud::Calls,
    devices::{BindRequest, DeviceRow, Devices},
    lines::LineCache,
};

/// Largest recording a phone may upload (200 MiB).
const MAX_RECORDING: usize = 200 * 1024 * 1024;
/// Largest JSON message or report (64 KiB).
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a phone that took a dial command may stay silent about it before the call is given
/// up (its app died with the command).
const REPORT_WAIT: Duration = Duration::from_secs(600);
/// Recording uploads at once, per adapter.
const UPLOADS: usize = 4;
/// The recording formats phones upload, by file extension.
const RECORDING_EXTENSIONS: &[&str] = &["wav", "mp3", "m4a", "aac", "amr", "ogg", "opus", "3gp"];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A message to the app.
fn message(kind: &str, message_id: &str, data: Value) -> String {
    json!({"type": kind, "messageId": message_id, "timestamp": now_ms(), "data": data}).to_string()
}

/// What the connection of a phone is told to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Nudge {
    /// Send the commands not yet delivered.
    Flush,
    /// The phone was unbound: tell it and close.
    Unbind,
}

/// A connected phone: its connection's generation, and what tells that connection.
type Connected = HashMap<i64, (u64, mpsc::Sender<Nudge>)>;

/// The phones connected to this adapter, by device number.
#[derive(Clone, Default)]
pub struct Hub(Arc<Mutex<Connected>>);

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connected> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nudge(&self, device: i64, n: Nudge) {
        if let Some((_, tx)) = self.lock().get(&device) {
            let _ = tx.try_send(n);
        }
    }
}

/// Everything the phones' endpoints and the `mobile` provider share.
#[derive(Clone)]
pub struct Mobile {
    pub devices: Devices,
    pub calls: Calls,
    pub lines: LineCache,
    pub bus: Bus,
    pub playing: Playing,
    pub hub: Hub,
    /// Where phones connect (the QR's serverUrl) and bind.
    pub websocket_url: String,
    pub bind_url: String,
    pub recordings: std::path::PathBuf,
    /// Recording uploads in progress (at most [`UPLOADS`]).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

/// The upload slots of a new [`Mobile`].
pub fn upload_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(UPLOADS))
}

fn subject(bus: &Bus, device: i64) -> String {
    format!("{}.ctl.device.{device}", bus.prefix())
}

impl Mobile {
    /// Tells whichever adapter holds the phone's connection (this one or another) to act.
    async fn tell(&self, device: i64, n: Nudge) {
        self.hub.nudge(device, n);
        let body = match n {
            Nudge::Flush => "flush",
            Nudge::Unbind => "unbind",
        };
        if let Err(e) = self
            .bus
            .client()
            .publish(subject(&self.bus, device), body.into())
            .await
        {
            tracing::debug!(device, error = %e, "phone not nudged; it gets its commands when it reconnects");
        }
    }

    /// Forgets commands done more than a day ago.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "DELETE FROM provider_device_commands WHERE done_at < now() - interval '1 day'",
        )
        .execute(&self.devices.pool)
        .await?
        .rows_affected())
    }

    pub async fn unbound(&self, device: i64) {
        self.tell(device, Nudge::Unbind).await;
    }

    /// Hears nudges for phones connected here from other adapters until `stop`.
    pub async fn hear(self, stop: tokio_util::sync::CancellationToken) -> Result<(), String> {
        let wildcard = format!("{}.ctl.device.*", self.bus.prefix());
        let mut sub = self
            .bus
            .client()
            .subscribe(wildcard.clone())
            .await
            .map_err(|e| format!("cannot subscribe to {wildcard}: {e}"))?;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                m = sub.next() => {
                    let Some(m) = m else { return Err(format!("{wildcard}: subscription closed")) };
                    let Some(device) = m.subject.rsplit('.').next().and_then(|d| d.parse::<i64>().ok()) else { continue };
                    let n = if m.payload.as_ref() == b"unbind" { Nudge::Unbind } else { Nudge::Flush };
                    self.hub.nudge(device, n);
                }
            }
        }
    }

    fn device_of(line: &LineConfig) -> Result<i64, ApiError> {
        line.setting("device")?
            .parse::<i64>()
            .map_err(|_| ApiError::Config(format!("line {} device is not a number", line.line_id)))
    }

    async fn live_device(&self, line: &LineConfig) -> Result<DeviceRow, ApiError> {
        let id = Self::device_of(line)?;
        match self.devices.get(&line.tenant_id, id).await {
            Ok(Some(d)) if d.unbound_at.is_none() => Ok(d),
            Ok(_) => Err(ApiError::Refused {
                cause: hangup::cause(41, "mobile:device-unbound"),
                message: format!("device {id} is not bound"),
            }),
            Err(e) => Err(ApiError::Transient(e.to_string())),
        }
    }

    async fn dial_inner(
        &self,
        line: &LineConfig,
        req: &pb::CallRequested,
    ) -> Result<Placed, ApiError> {
        let device = self.live_device(line).await?;
        let message_id = format!("msg_{}", Uuid::now_v7().simple());
        let phone = waihu_telephony::phone::mainland_national(&req.phone)
            .unwrap_or_else(|| req.phone.clone());
        let data = json!({
            "callId": req.call_id,
            "customerPhone": phone,
            "customerName": req.customer_name,
            "customerId": req.customer_id,
            "orderId": req.order_id,
        });
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(self.devices.timings.dial_wait)
                .map_err(|e| ApiError::Config(e.to_string()))?;
        let call = Uuid::parse_str(&req.call_id)
            .map_err(|_| ApiError::Config(format!("call id {:?} is not a UUID", req.call_id)))?;
        // The command and the call's provider id in one transaction: an adapter that dies
        // after it finds the call placed (and follows it), never a command nobody follows.
        let keep = async {
            let mut tx = self.devices.pool.begin().await?;
            sqlx::query(
                "INSERT INTO provider_device_commands
                     (message_id, device, call_id, task_id, contact_no, kind, body, expires_at)
                 VALUES ($1, $2, $3, $4, $5, 'DIAL_COMMAND', $6, $7)",
            )
            .bind(&message_id)
            .bind(device.id)
            .bind(call)
            .bind(&req.task_id)
            .bind(req.contact_no as i32)
            .bind(sqlx::types::Json(&data))
            .bind(expires)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE provider_calls SET provider_call_id = $2 WHERE call_id = $1")
                .bind(call)
                .bind(&message_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        keep.await
            .map_err(|e| ApiError::Transient(format!("command not kept: {e}")))?;
        self.tell(device.id, Nudge::Flush).await;
        let mut raw = format!(
            "DIAL_COMMAND {message_id} for device {} ({}{})",
            device.id,
            device.os_type,
            if device.online {
                ", online"
            } else {
                ", offline: it waits"
            }
        );
        if device.is_ios() {
            raw.push_str(
                "; iOS: the app cannot dial by itself (the user confirms the call) and cannot \
                 record it",
            );
        }
        Ok(Placed {
            provider_call_id: message_id,
            raw,
        })
    }

    async fn status_inner(&self, message_id: &str) -> Result<Vec<Report>, ApiError> {
        // A dial the phone never got in time: given up. One it got but never said a word
        // about for REPORT_WAIT (the app died with it): given up too.
        let silent: Option<(i64,)> = sqlx::query_as(
            "UPDATE provider_device_commands SET done_at = now()
             WHERE message_id = $1 AND done_at IS NULL AND delivered_at IS NOT NULL
               AND delivered_at < now() - make_interval(secs => $2)
             RETURNING device",
        )
        .bind(message_id)
        .bind(REPORT_WAIT.as_secs_f64())
        .fetch_optional(&self.devices.pool)
        .await
        .map_err(|e| ApiError::Transient(e.to_string()))?;
        if let Some((device,)) = silent {
            return Ok(vec![Report {
                provider_call_id: message_id.to_string(),
                signal: Signal::unanswered(hangup::cause(41, "mobile:no-report")),
                raw: format!(
                    "device {device} took the dial command and said nothing for {} s",
                    REPORT_WAIT.as_secs()
                ),
            }]);
        }
        let expired: Option<(i64,)> = sqlx::query_as(
            "UPDATE provider_device_commands SET done_at = now()
             WHERE message_id = $1 AND done_at IS NULL AND delivered_at IS NULL
               AND expires_at < now()
             RETURNING device",
        )
        .bind(message_id)
        .fetch_optional(&self.devices.pool)
        .await
        .map_err(|e| ApiError::Transient(e.to_string()))?;
        if expired.is_none() {
            // A phone unbound while the call was out never reports on it.
            let unbound: Option<(i64,)> = sqlx::query_as(
                "SELECT d.id FROM provider_device_commands c
                 JOIN provider_devices d ON d.id = c.device
                 WHERE c.message_id = $1 AND d.unbound_at IS NOT NULL",
            )
            .bind(message_id)
            .fetch_optional(&self.devices.pool)
            .await
            .map_err(|e| ApiError::Transient(e.to_string()))?;
            if let Some((device,)) = unbound {
                return Ok(vec![Report {
                    provider_call_id: message_id.to_string(),
                    signal: Signal::unanswered(hangup::cause(41, "mobile:device-unbound")),
                    raw: format!("device {device} was unbound while the call was out"),
                }]);
            }
        }
        Ok(match expired {
            Some((device,)) => vec![Report {
                provider_call_id: message_id.to_string(),
                signal: Signal::unanswered(hangup::cause(41, "mobile:device-offline")),
                raw: format!(
                    "device {device} was offline for {} s: the dial command was withdrawn",
                    self.devices.timings.dial_wait.as_secs()
                ),
            }],
            None => vec![],
        })
    }

    async fn hang_up_inner(&self, message_id: &str) -> Result<(), ApiError> {
        let row: Option<(i64, Option<Uuid>, bool)> = sqlx::query_as(
            "UPDATE provider_device_commands SET done_at = coalesce(done_at, now())
             WHERE message_id = $1 RETURNING device, call_id, delivered_at IS NOT NULL",
        )
        .bind(message_id)
        .fetch_optional(&self.devices.pool)
        .await
        .map_err(|e| ApiError::Transient(e.to_string()))?;
        let Some((device, Some(call), true)) = row else {
            return Ok(()); // never delivered: nothing to cancel on the phone
        };
        let cancel_id = format!("msg_{}", Uuid::now_v7().simple());
        sqlx::query(
            "INSERT INTO provider_device_commands
                 (message_id, device, call_id, kind, body, expires_at)
             VALUES ($1, $2, $3, 'CANCEL_DIAL', $4, now() + interval '10 minutes')",
        )
        .bind(&cancel_id)
        .bind(device)
        .bind(call)
        .bind(sqlx::types::Json(json!({"callId": call.to_string()})))
        .execute(&self.devices.pool)
        .await
        .map_err(|e| ApiError::Transient(e.to_string()))?;
        self.tell(device, Nudge::Flush).await;
        Ok(())
    }

    /// Turns a phone's report on one of its calls into the call's provider reports: kept in the
    /// inbox, the player woken. Err(status, why) when it cannot be taken.
    async fn report(
        &self,
        device: &DeviceRow,
        kind: &str,
        data: &Value,
    ) -> Result<(), (StatusCode, String)> {
        let call_id = data
            .get("callId")
            .and_then(Value::as_str)
            .ok_or((StatusCode::BAD_REQUEST, "callId: is required".to_string()))?;
        let call = Uuid::parse_str(call_id).map_err(|_| {
            (
                StatusCode::NOT_FOUND,
                format!("call {call_id:?}: not one of this phone's"),
            )
        })?;
        let status = data.get("status").and_then(Value::as_str).unwrap_or("");
        let signal = match (kind, status) {
            ("CALL_STATUS", "ringing" | "dialing" | "alerting") => Signal::Ringing,
            ("CALL_STATUS", "connected" | "offhook") => Signal::Answered,
            ("CALL_STATUS", _) => return Ok(()), // "ended" and others: CALL_END says how
            ("CALL_END", s) => {
                let secs = data.get("duration").and_then(Value::as_u64).unwrap_or(0);
                let (q850, answered) = match s {
                    "connected" => (16, true),
                    "missed" | "no_answer" => (19, false),
                    "busy" => (17, false),
                    "rejected" => (21, false),
                    "failed" => (41, false),
                    _ => (31, false),
                };
                Signal::Released {
                    cause: hangup::cause(
                        q850,
                        format!("mobile:{}", if s.is_empty() { "ended" } else { s }),
                    ),
                    answered,
                    ring_ms: 0,
                    talk_ms: if answered { secs.min(86_400) * 1000 } else { 0 },
                }
            }
            _ => return Ok(()),
        };
        // The phone must still be bound (an open WebSocket outlives nothing).
        let owner: Option<(String, String)> = sqlx::query_as(
            "SELECT c.tenant_id, c.line_id FROM provider_device_commands d
             JOIN provider_calls c ON c.call_id = d.call_id
             JOIN provider_devices p ON p.id = d.device AND p.unbound_at IS NULL
             WHERE d.call_id = $1 AND d.device = $2 AND d.kind = 'DIAL_COMMAND'",
        )
        .bind(call)
        .bind(device.id)
        .fetch_optional(&self.devices.pool)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let Some((tenant, line_id)) = owner else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("call {call_id}: not one of this phone's"),
            ));
        };
        let Some(line) = self
            .lines
            .get(&tenant, &line_id)
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e))?
        else {
            return Err((StatusCode::NOT_FOUND, format!("line {line_id} is gone")));
        };
        let report = Report {
            provider_call_id: String::new(),
            signal,
            raw: crate::cloud::keep(&line, &format!("{kind} {data}")),
        };
        self.calls
            .save(call, &line, &[report])
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        // The phone has the command: never sent again.
        sqlx::query(
            "UPDATE provider_device_commands SET done_at = coalesce(done_at, now()),
                 delivered_at = coalesce(delivered_at, now())
             WHERE call_id = $1 AND device = $2 AND kind = 'DIAL_COMMAND'",
        )
        .bind(call)
        .bind(device.id)
        .execute(&self.devices.pool)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        announce_report(&self.bus, &self.playing, call).await;
        Ok(())
    }

    /// Sends the phone its open commands (all of them after a (re)connect, else those not yet
    /// delivered), marking them delivered.
    async fn flush(&self, device: i64, socket: &mut WebSocket, all: bool) -> Result<(), String> {
        // Claimed (marked delivered) before it is sent, in one statement: a hang-up or the
        // dial's expiry racing the send sees it delivered and cancels it on the phone rather
        // than releasing a call the phone is about to dial. A cancel needs no report: done
        // once claimed. What the phone has not reported on goes again on a reconnect, for a
        // day at most.
        let rows: Vec<(String, String, sqlx::types::Json<Value>)> = sqlx::query_as(
            "UPDATE provider_device_commands c
             SET delivered_at = coalesce(c.delivered_at, now()),
                 done_at = CASE WHEN c.kind = 'CANCEL_DIAL' THEN now() ELSE c.done_at END
             FROM (SELECT message_id FROM provider_device_commands
                   WHERE device = $1 AND done_at IS NULL AND ($2 OR delivered_at IS NULL)
                     AND created_at > now() - interval '1 day'
                     AND (kind <> 'DIAL_COMMAND' OR delivered_at IS NOT NULL OR expires_at > now())
                   ORDER BY created_at LIMIT 100
                   FOR UPDATE) open
             WHERE c.message_id = open.message_id
             RETURNING c.message_id, c.kind, c.body",
        )
        .bind(device)
        .bind(all)
        .fetch_all(&self.devices.pool)
        .await
        .map_err(|e| e.to_string())?;
        for (id, kind, body) in rows {
            socket
                .send(Message::Text(message(&kind, &id, body.0).into()))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Keeps an uploaded recording (written to `temp`, `len` bytes) of one of the phone's
    /// calls, once the call is over, and announces it. Once per call.
    async fn keep_recording(
        &self,
        device: &DeviceRow,
        call: Uuid,
        file_name: &str,
        content_type: &str,
        temp: &std::path::Path,
        len: u64,
    ) -> Result<String, (StatusCode, String)> {
        let row: Option<(String, i32, String)> = sqlx::query_as(
            "SELECT d.task_id, d.contact_no, c.tenant_id FROM provider_device_commands d
             JOIN provider_calls c ON c.call_id = d.call_id
             JOIN provider_devices p ON p.id = d.device AND p.unbound_at IS NULL
             WHERE d.call_id = $1 AND d.device = $2 AND d.kind = 'DIAL_COMMAND'",
        )
        .bind(call)
        .bind(device.id)
        .fetch_optional(&self.devices.pool)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let Some((task_id, contact_no, tenant)) = row else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("call {call}: not one of this phone's"),
            ));
        };
        let ext = std::path::Path::new(file_name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .filter(|e| RECORDING_EXTENSIONS.contains(&e.as_str()))
            .ok_or_else(|| {
                (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "file: the file name must end in one of .{}",
                        RECORDING_EXTENSIONS.join(", .")
                    ),
                )
            })?;
        let path = self.recordings.join(format!("{call}.{ext}"));
        // Once: a file already kept for the call is not replaced (its event says where it is).
        let mut kept = false;
        for e in RECORDING_EXTENSIONS {
            kept |= tokio::fs::try_exists(self.recordings.join(format!("{call}.{e}")))
                .await
                .unwrap_or(false);
        }
        if kept {
            return Err((
                StatusCode::CONFLICT,
                format!("call {call}: its recording was uploaded already"),
            ));
        }
        tokio::fs::rename(temp, &path).await.map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("recording not kept: {e}"),
            )
        })?;
        let uri = waihu_provider_core::file_uri(&path);
        let event = Event::RecordingAvailable(pb::RecordingAvailable {
            call_id: call.to_string(),
            task_id,
            contact_no: contact_no.max(0) as u32,
            uri: uri.clone(),
            content_type: content_type.to_string(),
            duration_ms: 0,
            bytes: len,
            codec: String::new(),
            source: crate::devices::KIND.into(),
        });
        match waihu_provider_core::attach_to_call(&self.bus, &tenant, call, "recording", event)
            .await
        {
            Ok(()) => Ok(uri),
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(match e {
                    waihu_bus::HandlerError::Permanent(why) => (StatusCode::CONFLICT, why),
                    other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
                })
            }
        }
    }
}

impl CloudApi for Mobile {
    fn kind(&self) -> &'static str {
        crate::devices::KIND
    }

    fn requires(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["device"], &[])
    }

    fn dial<'a>(
        &'a self,
        line: &'a LineConfig,
        req: &'a pb::CallRequested,
        _callback_url: &'a str,
    ) -> BoxFuture<'a, Result<Placed, ApiError>> {
        Box::pin(self.dial_inner(line, req))
    }

    fn status<'a>(
        &'a self,
        _line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Report>, ApiError>> {
        Box::pin(self.status_inner(provider_call_id))
    }

    /// A phone's command names its device: the line adds nothing.
    fn hang_up<'a>(
        &'a self,
        _line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(self.hang_up_inner(provider_call_id))
    }

    fn test<'a>(&'a self, line: &'a LineConfig) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let d = self.live_device(line).await?;
            if d.online {
                Ok(format!("device {} is online ({})", d.id, d.os_type))
            } else {
                Err(ApiError::Transient(format!("device {} is offline", d.id)))
            }
        })
    }

    fn parse_hook(&self, _hook: &Hook<'_>) -> Result<Vec<Report>, HookError> {
        Err(HookError::Malformed(
            "work phones report to /api/v1/calls/mobile/* or over their WebSocket".into(),
        ))
    }

    fn verify_hook(&self, _line: &LineConfig, _hook: &Hook<'_>) -> bool {
        false
    }

    fn hook_reply(&self) -> HookReply {
        HookReply::json(r#"{"success":true}"#)
    }
}

fn fail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"success": false, "message": message}))).into_response()
}

fn api_fail(e: Api) -> Response {
    match e {
        Api::Invalid { field, reason } => {
            fail(StatusCode::BAD_REQUEST, &format!("{field}: {reason}"))
        }
        Api::PermissionDenied(m) => fail(StatusCode::UNAUTHORIZED, &m),
        Api::NotFound(m) => fail(StatusCode::NOT_FOUND, &format!("{m} not found")),
        Api::FailedPrecondition(m) | Api::AlreadyExists(m) => fail(StatusCode::CONFLICT, &m),
        other => fail(StatusCode::SERVICE_UNAVAILABLE, &other.to_string()),
    }
}

/// The phone's token: `Authorization: Bearer`, else `?token=`.
fn bearer(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .or_else(|| query.get("token").cloned())
        .filter(|t| !t.is_empty())
}

async fn authenticate(
    m: &Mobile,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<DeviceRow, Response> {
    let Some(token) = bearer(headers, query) else {
        return Err(fail(
            StatusCode::UNAUTHORIZED,
            "the device token is required (Authorization: Bearer)",
        ));
    };
    let device = match m.devices.authenticate(&token).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "unknown or unbound device token",
            ))
        }
        Err(e) => return Err(api_fail(e)),
    };
    // X-Device-Id, when sent, must be the phone's own.
    if let Some(id) = headers.get("x-device-id").and_then(|v| v.to_str().ok()) {
        if id != device.device_id {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "X-Device-Id is not this token's device",
            ));
        }
    }
    Ok(device)
}

pub fn router(m: Mobile) -> Router {
    Router::new()
        .route("/api/v1/calls/device/bind", post(bind))
        .route("/ws", get(websocket))
        .route("/api/v1/calls/ws", get(websocket))
        .route("/api/v1/calls/mobile/status", post(mobile_status))
        .route("/api/v1/calls/mobile/end", post(mobile_end))
        .route(
            "/api/v1/calls/mobile/recording/upload",
            post(upload).layer(DefaultBodyLimit::max(MAX_RECORDING + 64 * 1024)),
        )
        .layer(DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(m)
}

async fn bind(
    State(m): State<Mobile>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<BindRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return fail(
            StatusCode::BAD_REQUEST,
            "the body must be the seed's JSON: token, deviceId, phoneNumber, osType, ...",
        );
    };
    match m.devices.bind(&req, &peer.ip().to_string()).await {
        Ok((d, token, earlier)) => {
            if let Some(old) = earlier {
                m.unbound(old).await;
            }
            Json(json!({
                "success": true,
                "websocketUrl": m.websocket_url,
                "userId": d.user_id,
                "authToken": token,
                "id": d.id,
                "lineId": crate::devices::line_id(d.id),
            }))
            .into_response()
        }
        Err(e) => api_fail(e),
    }
}

async fn mobile_status(
    State(m): State<Mobile>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    http_report(&m, &headers, &q, "CALL_STATUS", body).await
}

async fn mobile_end(
    State(m): State<Mobile>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    http_report(&m, &headers, &q, "CALL_END", body).await
}

async fn http_report(
    m: &Mobile,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    kind: &str,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let device = match authenticate(m, headers, q).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Ok(Json(data)) = body else {
        return fail(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    match m.report(&device, kind, &data).await {
        Ok(()) => Json(json!({"success": true})).into_response(),
        Err((s, why)) => fail(s, &why),
    }
}

async fn upload(
    State(m): State<Mobile>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    mut form: Multipart,
) -> Response {
    let device = match authenticate(&m, &headers, &q).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Ok(_slot) = m.uploads.clone().try_acquire_owned() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many uploads at once: try again shortly",
        );
    };
    if let Err(e) = tokio::fs::create_dir_all(&m.recordings).await {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("recordings directory: {e}"),
        );
    }
    // The file goes to disk as it arrives (bounded memory), under a temporary name until the
    // call it belongs to is known and checked.
    let temp = m.recordings.join(format!(".upload-{}", Uuid::new_v4()));
    let result = receive_upload(&m, &device, &mut form, &temp).await;
    let _ = tokio::fs::remove_file(&temp).await;
    match result {
        Ok(url) => Json(json!({"success": true, "recordingUrl": url})).into_response(),
        Err((s, why)) => fail(s, &why),
    }
}

async fn receive_upload(
    m: &Mobile,
    device: &DeviceRow,
    form: &mut Multipart,
    temp: &std::path::Path,
) -> Result<String, (StatusCode, String)> {
    use tokio::io::AsyncWriteExt;
    let bad = |why: String| (StatusCode::BAD_REQUEST, why);
    let mut call: Option<String> = None;
    let mut file: Option<(String, String, u64)> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(bad(format!("not a multipart form: {e}"))),
        };
        match field.name().unwrap_or("") {
            "callId" => {
                let mut field = field;
                let mut text = Vec::new();
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| bad(format!("callId: {e}")))?
                {
                    text.extend_from_slice(&chunk);
                    if text.len() > 64 {
                        return Err(bad("callId: too long for a call id".into()));
                    }
                }
                call = Some(String::from_utf8_lossy(&text).trim().to_string());
            }
            "file" => {
                let name = field.file_name().unwrap_or("recording").to_string();
                let ct = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let mut field = field;
                let mut out = tokio::fs::File::create(temp)
                    .await
                    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                let mut len = 0u64;
                while let Some(chunk) =
                    field.chunk().await.map_err(|e| bad(format!("file: {e}")))?
                {
                    len += chunk.len() as u64;
                    if len > MAX_RECORDING as u64 {
                        return Err((
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("file: at most {MAX_RECORDING} bytes"),
                        ));
                    }
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                }
                out.flush()
                    .await
                    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                file = Some((name, ct, len));
            }
            _ => {} // other fields are skipped
        }
    }
    let call = call
        .and_then(|c| Uuid::parse_str(&c).ok())
        .ok_or_else(|| bad("callId: is required (a call id)".into()))?;
    let (name, ct, len) = file
        .filter(|f| f.2 > 0)
        .ok_or_else(|| bad("file: is required".into()))?;
    m.keep_recording(device, call, &name, &ct, temp, len).await
}

async fn websocket(
    State(m): State<Mobile>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let device = match authenticate(&m, &headers, &q).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let id = device.id;
            if let Err(e) = m.connection(device, socket).await {
                tracing::debug!(device = id, error = %e, "phone connection ended");
            }
        })
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Mobile {
    /// One phone's connection, until it closes, goes quiet past `disconnect_after` or is
    /// unbound.
    async fn connection(&self, device: DeviceRow, mut socket: WebSocket) -> Result<(), String> {
        let id = device.id;
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut nudges) = mpsc::channel(16);
        if let Some((_, old)) = self.hub.lock().insert(id, (generation, tx)) {
            // A newer connection of the same phone replaces the old one.
            drop(old);
        }
        let result = self.converse(&device, &mut socket, &mut nudges).await;
        let current = {
            let mut hub = self.hub.lock();
            let current = hub.get(&id).is_some_and(|(g, _)| *g == generation);
            if current {
                hub.remove(&id);
            }
            current
        };
        // A connection replaced by a newer one leaves the phone's state to that one.
        if current {
            if let Err(e) = self.devices.seen(id, false).await {
                tracing::warn!(device = id, error = %e, "offline state not kept");
            }
        }
        let _ = socket.close().await;
        result
    }

    async fn converse(
        &self,
        device: &DeviceRow,
        socket: &mut WebSocket,
        nudges: &mut mpsc::Receiver<Nudge>,
    ) -> Result<(), String> {
        let id = device.id;
        let t = self.devices.timings;
        if !self
            .devices
            .seen(id, true)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err("the phone is no longer bound".into());
        }
        self.flush(id, socket, true).await?;
        let mut heard = tokio::time::Instant::now();
        let mut online = true;
        let mut seen_ids: std::collections::VecDeque<String> = Default::default();
        let mut tick = tokio::time::interval(Duration::from_millis(
            (t.offline_after.as_millis() as u64 / 4).clamp(50, 5000),
        ));
        loop {
            tokio::select! {
                n = nudges.recv() => match n {
                    Some(Nudge::Flush) => self.flush(id, socket, false).await?,
                    Some(Nudge::Unbind) => {
                        let _ = socket
                            .send(Message::Text(message("DEVICE_UNBIND", &format!("msg_{}", Uuid::now_v7().simple()), json!({"deviceId": device.device_id})).into()))
                            .await;
                        return Ok(());
                    }
                    None => return Ok(()), // replaced by a newer connection
                },
                _ = tick.tick() => {
                    let quiet = heard.elapsed();
                    if quiet >= t.disconnect_after {
                        return Err(format!("no heartbeat for {} s: disconnected", quiet.as_secs()));
                    }
                    if online && quiet >= t.offline_after {
                        online = false;
                        self.devices.seen(id, false).await.map_err(|e| e.to_string())?;
                    }
                }
                msg = socket.recv() => {
                    let text = match msg {
                        None => return Ok(()),
                        Some(Err(e)) => return Err(e.to_string()),
                        Some(Ok(Message::Text(t))) => t.to_string(),
                        Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(_)) => continue, // ping, pong (answered by the server), binary
                    };
                    heard = tokio::time::Instant::now();
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        tracing::debug!(device = id, "a message that is not JSON: ignored");
                        continue;
                    };
                    let kind = v.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                    let message_id = v.get("messageId").and_then(Value::as_str).unwrap_or("").to_string();
                    // A message sent again (after a reconnect, say) is taken once: its id is
                    // remembered once it was taken.
                    if !message_id.is_empty() && seen_ids.contains(&message_id) {
                        continue;
                    }
                    let data = v.get("data").cloned().unwrap_or(Value::Null);
                    match kind.as_str() {
                        "HEARTBEAT" => {
                            socket
                                .send(Message::Text(message("HEARTBEAT_ACK", &message_id, json!({"serverTime": now_ms()})).into()))
                                .await
                                .map_err(|e| e.to_string())?;
                            online = true;
                            if !self.devices.seen(id, true).await.map_err(|e| e.to_string())? {
                                return Err("the phone is no longer bound".into());
                            }
                        }
                        "DEVICE_ONLINE" => {
                            online = true;
                            if !self.devices.seen(id, true).await.map_err(|e| e.to_string())? {
                                return Err("the phone is no longer bound".into());
                            }
                            self.flush(id, socket, false).await?;
                        }
                        "DEVICE_OFFLINE" => {
                            online = false;
                            self.devices.seen(id, false).await.map_err(|e| e.to_string())?;
                        }
                        "CALL_STATUS" | "CALL_END" => {
                            if let Err((status, why)) = self.report(device, &kind, &data).await {
                                tracing::warn!(device = id, %kind, %why, "phone report not taken");
                                if status == StatusCode::SERVICE_UNAVAILABLE {
                                    // Not taken for now: the same message may come again.
                                    continue;
                                }
                            }
                        }
                        "RECORDING_UPLOAD" => {
                            tracing::debug!(device = id, "phone says a recording was uploaded");
                        }
                        other => tracing::debug!(device = id, kind = %other, "unknown message type: ignored"),
                    }
                    if !message_id.is_empty() {
                        seen_ids.push_back(message_id);
                        if seen_ids.len() > 256 {
                            seen_ids.pop_front();
                        }
                    }
                }
            }
        }
    }
}
