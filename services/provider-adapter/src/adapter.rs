//! The dispatcher: a dial command (`CallRequested`) goes to the provider of its line (read from
//! this adapter's lines, cached for a few seconds): the simulator, or a cloud provider driven by
//! [`crate::cloud`], each reporting through the call's ledger.
//!
//! Hang-ups: `DialerService.Hangup` records the call's release itself and says so on
//! `<prefix>.ctl.hangup.<call>`; every adapter hears it, and the one playing the call has its
//! provider drop it at once (one that has the request queued remembers the word for ten
//! minutes and starts the call hung up). One that misses the word (down, reconnecting) stops
//! at the call's next report, which the recorded release refuses.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waihu_bus::{Bus, Delivery, HandlerError, MessageHandler};
use waihu_provider_core::{CallLedger, LineConfig, Provider, Signal};
use waihu_provider_sim::SimProvider;

use crate::{
    cloud::{Calls, CloudPlayer, Polling, Providers},
    lines::LineCache,
};

/// Hang-ups heard for calls this adapter was not playing (yet): a call whose request is still
/// queued here starts already hung up. Kept for [`EARLY_TTL`], at most [`EARLY_MAX`].
const EARLY_TTL: std::time::Duration = std::time::Duration::from_secs(600);
const EARLY_MAX: usize = 10_000;

#[derive(Default)]
struct Registry {
    /// Call → (generation, hang-up token, report bell): a redelivery playing the same call gets
    /// its own entry, and only the attempt that made an entry removes it.
    playing: HashMap<Uuid, (u64, CancellationToken, Arc<Notify>)>,
    next: u64,
    early: HashMap<Uuid, std::time::Instant>,
}

/// The calls this adapter is playing, by call id: what hangs each up.
#[derive(Clone, Default)]
pub struct Playing(Arc<Mutex<Registry>>);

impl Playing {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an attempt at `call`: its generation, hang-up token (already cancelled when a
    /// hang-up for it came first) and the bell rung when a provider report for it arrives.
    fn start(&self, call: Uuid) -> (u64, CancellationToken, Arc<Notify>) {
        let mut r = self.lock();
        let token = CancellationToken::new();
        if r.early.remove(&call).is_some() {
            token.cancel();
        }
        r.next += 1;
        let generation = r.next;
        let bell = Arc::new(Notify::new());
        r.playing
            .insert(call, (generation, token.clone(), bell.clone()));
        (generation, token, bell)
    }

    /// Ends the attempt `generation` at `call` (a later attempt's entry stays).
    fn end(&self, call: Uuid, generation: u64) {
        let mut r = self.lock();
        if r.playing
            .get(&call)
            .is_some_and(|(g, _, _)| *g == generation)
        {
            r.playing.remove(&call);
        }
    }

    /// Rings the bell of `call` if it is played here: a provider report for it is waiting.
    pub fn poke(&self, call: Uuid) -> bool {
        let r = self.lock();
        match r.playing.get(&call) {
            Some((_, _, bell)) => {
                bell.notify_one();
                true
            }
            None => false,
        }
    }

    fn hang_up(&self, call: Uuid) -> bool {
        let mut r = self.lock();
        if let Some((_, t, _)) = r.playing.get(&call) {
            t.cancel();
            return true;
        }
        let now = std::time::Instant::now();
        if r.early.len() >= EARLY_MAX {
            r.early.retain(|_, at| now.duration_since(*at) < EARLY_TTL);
        }
        if r.early.len() < EARLY_MAX {
            r.early.insert(call, now);
        }
        false
    }
}

/// What cloud calls need: the clients, the provider call table, where callbacks go, polling.
pub struct Cloud {
    pub registry: Providers,
    pub calls: Calls,
    /// The adapter's public URL (`[provider] public_url`): callbacks go to
    /// `<public_url>/api/v1/calls/webhook/<provider>/status`.
    pub public_url: String,
    pub polling: Polling,
}

pub struct Dispatcher {
    pub bus: Bus,
    pub sim: SimProvider,
    pub playing: Playing,
    pub lines: LineCache,
    /// The SIP user agent (None when the adapter has no `sip_bind`).
    pub sip: Option<waihu_provider_sip::SipProvider>,
    pub cloud: Cloud,
    /// Calls handed over in provider campaigns go here instead of being placed.
    pub campaigns: crate::campaign::Campaigns,
}

impl Dispatcher {
    async fn play(
        &self,
        line: &LineConfig,
        req: &waihu_events::pb::CallRequested,
        ledger: &mut CallLedger,
        bell: Arc<Notify>,
    ) -> Result<(), HandlerError> {
        if line.provider == "sim" {
            return self.sim.place(line, req, ledger).await;
        }
        if line.provider == waihu_provider_sip::KIND {
            let Some(sip) = &self.sip else {
                tracing::error!(line = %line.line_id, "a sip line, but this adapter has no SIP (provider.sip_bind is empty)");
                return ledger
                    .record(released(41, "waihu:no-sip-here".into()))
                    .await;
            };
            return sip.place(line, req, ledger).await;
        }
        let Some(api) = self.cloud.registry.get(&line.provider) else {
            tracing::error!(line = %line.line_id, provider = %line.provider, "no such provider in this build");
            return ledger
                .record(released(41, format!("waihu:no-provider:{}", line.provider)))
                .await;
        };
        CloudPlayer {
            calls: &self.cloud.calls,
            api: api.as_ref(),
            callback_url: format!(
                "{}/api/v1/calls/webhook/{}/status",
                self.cloud.public_url.trim_end_matches('/'),
                api.kind()
            ),
            polling: self.cloud.polling,
            wake: bell,
        }
        .play(line, req, ledger)
        .await
    }
}

fn released(q850: u32, raw: String) -> Signal {
    Signal::unanswered(waihu_telephony::hangup::cause(q850, raw))
}

impl MessageHandler for Dispatcher {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let waihu_events::Event::CallRequested(req) = &d.event.event else {
            return Ok(());
        };
        tracing::debug!(
            call_id = %req.call_id,
            phone = %waihu_telephony::phone::mask(&req.phone),
            line = %req.line_id,
            attempt = req.attempt,
            "placing a call"
        );
        if !req.campaign_id.is_empty() {
            return self.campaigns.collect(&d, req).await;
        }
        let mut ledger = CallLedger::open(&self.bus, &d).await?;
        let Some(line) = self
            .lines
            .get(&d.event.meta.tenant_id, &req.line_id)
            .await
            .map_err(HandlerError::Transient)?
        else {
            tracing::error!(line = %req.line_id, "a call on a line this adapter does not have");
            return ledger
                .record(released(41, "waihu:no-such-line".into()))
                .await;
        };
        let call = ledger.call_id();
        let (generation, hangup, bell) = self.playing.start(call);
        let mut ledger = ledger.with_hangup(hangup);
        let done = self.play(&line, req, &mut ledger, bell).await;
        self.playing.end(call, generation);
        done
    }
}

/// Says on `<prefix>.ctl.report.<call>` that a provider report for `call` is waiting, so the
/// adapter playing it (this one or another) reads it at once.
pub async fn announce_report(bus: &Bus, playing: &Playing, call: Uuid) {
    if playing.poke(call) {
        return;
    }
    let subject = format!("{}.ctl.report.{call}", bus.prefix());
    if let Err(e) = bus.client().publish(subject, bytes::Bytes::new()).await {
        // The player's poll finds the report anyway.
        tracing::debug!(%call, error = %e, "report not announced");
    }
}

/// Hears hang-ups (`<prefix>.ctl.hangup.*`) and report announcements (`<prefix>.ctl.report.*`)
/// until `stop`, ending or waking the calls this adapter plays.
pub async fn hear_hangups(
    bus: Bus,
    playing: Playing,
    stop: CancellationToken,
) -> Result<(), String> {
    let subject = format!("{}.ctl.*.*", bus.prefix());
    let mut sub = bus
        .client()
        .subscribe(subject.clone())
        .await
        .map_err(|e| format!("cannot subscribe to {subject}: {e}"))?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = sub.next() => {
                let Some(m) = m else {
                    return Err(format!("{subject}: subscription closed"));
                };
                let mut parts = m.subject.rsplit('.');
                let (Some(call), Some(kind)) = (
                    parts.next().and_then(|c| Uuid::parse_str(c).ok()),
                    parts.next(),
                ) else {
                    continue;
                };
                match kind {
                    "hangup" if playing.hang_up(call) => {
                        tracing::info!(%call, "call hung up: provider drops it");
                    }
                    "report" => {
                        playing.poke(call);
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_up_reaches_the_attempt_playing_and_one_heard_first_waits_for_it() {
        let p = Playing::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (gen1, first, _) = p.start(a);
        // A redelivery of the same call while the first attempt is still winding down.
        let (gen2, second, _) = p.start(a);
        p.end(a, gen1);
        assert!(p.hang_up(a), "the second attempt is still registered");
        assert!(second.is_cancelled());
        assert!(!first.is_cancelled());
        p.end(a, gen2);
        // Heard before the call started here: it starts hung up, once.
        assert!(!p.hang_up(b));
        let (_, t, _) = p.start(b);
        assert!(t.is_cancelled());
        let (_, again, _) = p.start(b);
        assert!(!again.is_cancelled());
    }
}
