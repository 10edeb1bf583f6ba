//! Cloud providers, driven one way for all: the intent to call is written before the request
//! (a redelivered dial command never places a second call), the provider's call id is kept
//! beside ours, and what the provider says of the call, from callbacks ([`crate::webhook`]) or
//! from polling its API, lands in one inbox (`provider_reports`, one row per call and stage, so
//! duplicates collapse) that the call's player turns into events through the call ledger, in
//! lifecycle order whatever order the reports came in. A call the provider never reports on is
//! polled with backoff, then given up to the dialer's watchdog.

use std::{collections::HashMap, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;
use waihu_bus::HandlerError;
use waihu_events::pb;
use waihu_provider_core::{
    cloud::{ApiError, CloudApi, LineConfig, Report},
    CallLedger, Signal, Stage,
};
use waihu_telephony::hangup;

/// The most of a provider's words kept on an event.
pub const MAX_RAW: usize = 4096;

/// The cloud providers this build has, by the type lines name.
#[derive(Clone)]
pub struct Providers {
    apis: HashMap<&'static str, Arc<dyn CloudApi>>,
    /// Work phones (`mobile`), set once the adapter's phone hub exists (it needs the lines,
    /// which need this registry).
    mobile: Arc<std::sync::OnceLock<Arc<dyn CloudApi>>>,
}

impl Providers {
    pub fn new(http: reqwest::Client) -> Self {
        let apis: Vec<Arc<dyn CloudApi>> = vec![
            Arc::new(waihu_provider_twilio::Twilio::new(http.clone())),
            Arc::new(waihu_provider_aliyun::Aliyun::new(http.clone())),
            Arc::new(waihu_provider_tencent::Tencent::new(http.clone())),
            Arc::new(waihu_provider_ronglian::Ronglian::new(http.clone())),
        ];
        Providers {
            apis: apis.into_iter().map(|a| (a.kind(), a)).collect(),
            mobile: Arc::default(),
        }
    }

    /// Sets the `mobile` provider (once).
    pub fn set_mobile(&self, api: Arc<dyn CloudApi>) {
        let _ = self.mobile.set(api);
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn CloudApi>> {
        if kind == crate::devices::KIND {
            return self.mobile.get().cloned();
        }
        self.apis.get(kind).cloned()
    }

    /// The provider types lines may name: the simulator, `sip` and every cloud provider here.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self.apis.keys().copied().collect();
        k.push(waihu_provider_sip::KIND);
        k.push(crate::devices::KIND);
        k.sort();
        k.insert(0, "sim");
        k
    }
}

/// How the player polls a call the provider is quiet about.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// First poll after this long without a report; doubling up to `max`.
    pub initial: Duration,
    pub max: Duration,
    /// After this long the call is given up (the dialer's watchdog settles it).
    pub give_up: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
            give_up: Duration::from_secs(4 * 3600),
        }
    }
}

fn db(e: sqlx::Error) -> HandlerError {
    HandlerError::Transient(format!("provider calls: {e}"))
}

/// Bounds and scrubs what a provider said before it is kept.
pub fn keep(line: &LineConfig, raw: &str) -> String {
    let mut s = line.scrub(raw);
    s.truncate(s.floor_char_boundary(MAX_RAW));
    s
}

fn stage_no(stage: Stage) -> i16 {
    match stage {
        Stage::Requested => 0,
        Stage::Dialing => 1,
        Stage::Ringing => 2,
        Stage::Answered => 3,
        Stage::Released => 4,
    }
}

/// What the provider call table says of a call before placing it.
pub enum Intent {
    /// Nothing yet: the intent is now recorded, go on and call.
    New,
    /// Placed earlier (a redelivery): go on with it.
    Placed(String),
    /// An earlier attempt sent the request and never learnt its outcome.
    Unknown,
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    stage: i16,
    q850: i32,
    cause_raw: String,
    answered: bool,
    ring_ms: i64,
    talk_ms: i64,
    raw: String,
}

impl ReportRow {
    fn signal(&self) -> Option<Signal> {
        Some(match self.stage {
            2 => Signal::Ringing,
            3 => Signal::Answered,
            4 => Signal::Released {
                cause: hangup::cause(self.q850.max(0) as u32, self.cause_raw.clone()),
                answered: self.answered,
                ring_ms: self.ring_ms.max(0) as u64,
                talk_ms: self.talk_ms.max(0) as u64,
            },
            _ => return None,
        })
    }
}

/// The provider call table and the reports inbox.
#[derive(Clone)]
pub struct Calls {
    pub pool: PgPool,
}

/// A call a provider call id belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Owner {
    pub call_id: Uuid,
    pub tenant_id: String,
    pub line_id: String,
}

impl Calls {
    /// Records the intent to place `call` (or finds what an earlier attempt did).
    pub async fn intend(&self, call: Uuid, line: &LineConfig) -> Result<Intent, HandlerError> {
        let inserted = sqlx::query(
            "INSERT INTO provider_calls (call_id, tenant_id, line_id, provider)
             VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call)
        .bind(&line.tenant_id)
        .bind(&line.line_id)
        .bind(&line.provider)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Intent::New);
        }
        Ok(match self.provider_call_id(call).await? {
            Some(id) => Intent::Placed(id),
            None => Intent::Unknown,
        })
    }

    pub async fn provider_call_id(&self, call: Uuid) -> Result<Option<String>, HandlerError> {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT provider_call_id FROM provider_calls WHERE call_id = $1",
        )
        .bind(call)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
        .map(Option::flatten)
    }

    async fn placed(&self, call: Uuid, provider_call_id: &str) -> Result<(), HandlerError> {
        sqlx::query("UPDATE provider_calls SET provider_call_id = $2 WHERE call_id = $1")
            .bind(call)
            .bind(provider_call_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Forgets an intent whose request did not get through (it is sent again on redelivery).
    async fn forget(&self, call: Uuid) -> Result<(), HandlerError> {
        sqlx::query("DELETE FROM provider_calls WHERE call_id = $1 AND provider_call_id IS NULL")
            .bind(call)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Whose call the provider's `provider_call_id` is. A provider that echoes our reference
    /// instead (a user-data field set when dialing) reports `waihu-call:<our call id>`
    /// ([`waihu_provider_core::cloud::OUR_CALL_PREFIX`]); that is looked up among this
    /// provider's calls by our id.
    pub async fn owner(
        &self,
        provider: &str,
        provider_call_id: &str,
    ) -> Result<Option<Owner>, sqlx::Error> {
        if let Some(ours) =
            provider_call_id.strip_prefix(waihu_provider_core::cloud::OUR_CALL_PREFIX)
        {
            let Ok(call) = Uuid::parse_str(ours) else {
                return Ok(None);
            };
            return sqlx::query_as(
                "SELECT call_id, tenant_id, line_id FROM provider_calls
                 WHERE call_id = $1 AND provider = $2",
            )
            .bind(call)
            .bind(provider)
            .fetch_optional(&self.pool)
            .await;
        }
        sqlx::query_as(
            "SELECT call_id, tenant_id, line_id FROM provider_calls
             WHERE provider = $1 AND provider_call_id = $2",
        )
        .bind(provider)
        .bind(provider_call_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Keeps reports of `call` (one per stage; a repeated one is dropped). Returns how many
    /// were new.
    pub async fn save(
        &self,
        call: Uuid,
        line: &LineConfig,
        reports: &[Report],
    ) -> Result<u64, sqlx::Error> {
        let mut new = 0;
        for r in reports {
            let (q850, cause_raw, answered, ring_ms, talk_ms) = match &r.signal {
                Signal::Released {
                    cause,
                    answered,
                    ring_ms,
                    talk_ms,
                } => (
                    cause.q850 as i32,
                    cause.raw.clone(),
                    *answered,
                    (*ring_ms).min(i64::MAX as u64) as i64,
                    (*talk_ms).min(i64::MAX as u64) as i64,
                ),
                _ => (0, String::new(), false, 0, 0),
            };
            // A report of a call already over (late, or repeated) is not kept again.
            new += sqlx::query(
                "INSERT INTO provider_reports
                     (call_id, stage, q850, cause_raw, answered, ring_ms, talk_ms, raw)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8
                 WHERE NOT EXISTS (SELECT 1 FROM provider_calls
                                   WHERE call_id = $1 AND settled_at IS NOT NULL)
                 ON CONFLICT DO NOTHING",
            )
            .bind(call)
            .bind(stage_no(r.signal.stage()))
            .bind(q850)
            .bind(cause_raw)
            .bind(answered)
            .bind(ring_ms)
            .bind(talk_ms)
            .bind(keep(line, &r.raw))
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(new)
    }

    async fn reports(&self, call: Uuid) -> Result<Vec<ReportRow>, HandlerError> {
        sqlx::query_as(
            "SELECT stage, q850, cause_raw, answered, ring_ms, talk_ms, raw
             FROM provider_reports WHERE call_id = $1 ORDER BY stage",
        )
        .bind(call)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    /// The call is over: its reports go (late callbacks for it are still recognised). One
    /// statement, one round trip.
    async fn settle(&self, call: Uuid) -> Result<(), HandlerError> {
        sqlx::query(
            "WITH gone AS (DELETE FROM provider_reports WHERE call_id = $1)
             UPDATE provider_calls SET settled_at = now() WHERE call_id = $1",
        )
        .bind(call)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Forgets calls settled more than `age` ago, and reports left for calls long gone.
    pub async fn prune(&self, age: Duration) -> Result<u64, sqlx::Error> {
        let secs = age.as_secs_f64();
        let calls = sqlx::query(
            "DELETE FROM provider_calls
             WHERE settled_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM provider_reports WHERE received_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.pool)
        .await?;
        Ok(calls)
    }
}

/// Plays a call through a cloud provider.
pub struct CloudPlayer<'a> {
    pub calls: &'a Calls,
    pub api: &'a dyn CloudApi,
    pub callback_url: String,
    pub polling: Polling,
    /// Poked when a report for the call arrived.
    pub wake: Arc<Notify>,
}

impl CloudPlayer<'_> {
    /// Places the call (unless an earlier attempt did), then turns reports into events until it
    /// is released, hung up or given up.
    pub async fn play(
        &self,
        line: &LineConfig,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
    ) -> Result<(), HandlerError> {
        let call = ledger.call_id();
        let provider_call_id = if ledger.reached() == Stage::Requested {
            match self.place(line, req, ledger).await? {
                Some(id) => id,
                None => {
                    self.calls.settle(call).await?;
                    return Ok(());
                }
            }
        } else {
            match self.calls.provider_call_id(call).await? {
                Some(id) => id,
                None => {
                    // Dialing was recorded, yet the id was not kept: nothing to follow.
                    ledger
                        .record(Signal::unanswered(hangup::cause(
                            41,
                            "waihu:provider-call-lost",
                        )))
                        .await?;
                    return Ok(());
                }
            }
        };
        let started = tokio::time::Instant::now();
        let mut wait = self.polling.initial;
        loop {
            for row in self.calls.reports(call).await? {
                if let Some(signal) = row.signal() {
                    ledger.record_report(signal, row.raw).await?;
                }
            }
            if ledger.reached() == Stage::Released {
                if ledger.ended_elsewhere() {
                    // Released from outside (a hang-up heard while we were placing it, the
                    // watchdog): the provider may still have the call up.
                    self.drop_call(line, call, &provider_call_id).await;
                }
                self.calls.settle(call).await?;
                return Ok(());
            }
            if started.elapsed() > self.polling.give_up {
                tracing::warn!(%call, provider = self.api.kind(), "no final report: left to the watchdog");
                return Ok(());
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {
                    wait = (wait * 2).min(self.polling.max);
                    match self.api.status(line, &provider_call_id).await {
                        Ok(reports) => {
                            self.calls.save(call, line, &reports).await.map_err(db)?;
                        }
                        Err(e) => tracing::warn!(%call, provider = self.api.kind(), error = %e, "status poll failed"),
                    }
                }
                _ = ledger.hung_up() => {
                    // The release is recorded by whoever hung up; the provider drops the call.
                    self.drop_call(line, call, &provider_call_id).await;
                    self.calls.settle(call).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Asks the provider to end a call released on our side (best effort: logged when it fails).
    async fn drop_call(&self, line: &LineConfig, call: Uuid, provider_call_id: &str) {
        if let Err(e) = self.api.hang_up(line, provider_call_id).await {
            tracing::warn!(%call, provider = self.api.kind(), error = %e, "provider hang-up failed");
        }
    }

    /// Records the intent and sends the request; the provider's call id once it is placed,
    /// `None` when the call ended there (refused, or an earlier attempt's outcome unknown).
    async fn place(
        &self,
        line: &LineConfig,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
    ) -> Result<Option<String>, HandlerError> {
        let call = ledger.call_id();
        match self.calls.intend(call, line).await? {
            Intent::Placed(id) => {
                ledger
                    .record(Signal::Dialing {
                        provider_call_id: id.clone(),
                    })
                    .await?;
                return Ok(Some(id));
            }
            Intent::Unknown => {
                // An earlier attempt sent the request and died before it heard back: calling
                // again could ring the person twice, so the call ends here (and is recalled by
                // the task's rules).
                tracing::warn!(%call, provider = self.api.kind(), "earlier attempt's outcome unknown: not calling again");
                ledger
                    .record(Signal::unanswered(hangup::cause(
                        41,
                        "waihu:outcome-unknown",
                    )))
                    .await?;
                return Ok(None);
            }
            Intent::New => {}
        }
        match self.api.dial(line, req, &self.callback_url).await {
            Ok(placed) => {
                self.calls.placed(call, &placed.provider_call_id).await?;
                ledger
                    .record_report(
                        Signal::Dialing {
                            provider_call_id: placed.provider_call_id.clone(),
                        },
                        keep(line, &placed.raw),
                    )
                    .await?;
                Ok(Some(placed.provider_call_id))
            }
            Err(ApiError::Refused { cause, message }) => {
                tracing::info!(%call, provider = self.api.kind(), %message, "provider refused the call");
                ledger.record(Signal::unanswered(cause)).await?;
                Ok(None)
            }
            Err(ApiError::Config(message)) => {
                tracing::error!(%call, line = %line.line_id, provider = self.api.kind(), %message, "line misconfigured: call not placed");
                ledger
                    .record(Signal::unanswered(hangup::cause(
                        41,
                        format!("{}:line-configuration", self.api.kind()),
                    )))
                    .await?;
                Ok(None)
            }
            Err(ApiError::Transient(message)) => {
                self.calls.forget(call).await?;
                Err(HandlerError::Transient(message))
            }
            Err(ApiError::Unknown(message)) => {
                tracing::warn!(%call, provider = self.api.kind(), %message, "call request outcome unknown");
                ledger
                    .record(Signal::unanswered(hangup::cause(
                        41,
                        "waihu:outcome-unknown",
                    )))
                    .await?;
                Ok(None)
            }
        }
    }
}
