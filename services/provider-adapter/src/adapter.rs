//! The dispatcher: a dial command (`CallRequested`) goes to the provider of its line, which
//! reports through the call's ledger. This build has one provider type, the simulator, and every
//! line is served by it; routing by the line's provider type comes with the provider issues.
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
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waihu_bus::{Bus, Delivery, HandlerError, MessageHandler};
use waihu_provider_core::{CallLedger, Provider};
use waihu_provider_sim::SimProvider;

/// Hang-ups heard for calls this adapter was not playing (yet): a call whose request is still
/// queued here starts already hung up. Kept for [`EARLY_TTL`], at most [`EARLY_MAX`].
const EARLY_TTL: std::time::Duration = std::time::Duration::from_secs(600);
const EARLY_MAX: usize = 10_000;

#[derive(Default)]
struct Registry {
    /// Call → (generation, token): a redelivery playing the same call gets its own entry, and
    /// only the attempt that made an entry removes it.
    playing: HashMap<Uuid, (u64, CancellationToken)>,
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

    /// Registers an attempt at `call`: its generation and token (already cancelled when a
    /// hang-up for it came first).
    fn start(&self, call: Uuid) -> (u64, CancellationToken) {
        let mut r = self.lock();
        let token = CancellationToken::new();
        if r.early.remove(&call).is_some() {
            token.cancel();
        }
        r.next += 1;
        let generation = r.next;
        r.playing.insert(call, (generation, token.clone()));
        (generation, token)
    }

    /// Ends the attempt `generation` at `call` (a later attempt's entry stays).
    fn end(&self, call: Uuid, generation: u64) {
        let mut r = self.lock();
        if r.playing.get(&call).is_some_and(|(g, _)| *g == generation) {
            r.playing.remove(&call);
        }
    }

    fn hang_up(&self, call: Uuid) -> bool {
        let mut r = self.lock();
        if let Some((_, t)) = r.playing.get(&call) {
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

pub struct Dispatcher {
    pub bus: Bus,
    pub sim: SimProvider,
    pub playing: Playing,
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
        let ledger = CallLedger::open(&self.bus, &d).await?;
        let call = ledger.call_id();
        let (generation, hangup) = self.playing.start(call);
        let mut ledger = ledger.with_hangup(hangup);
        let done = self.sim.place(req, &mut ledger).await;
        self.playing.end(call, generation);
        done
    }
}

/// Hears hang-ups (`<prefix>.ctl.hangup.*`) until `stop`, ending the calls this adapter plays.
pub async fn hear_hangups(
    bus: Bus,
    playing: Playing,
    stop: CancellationToken,
) -> Result<(), String> {
    let subject = format!("{}.ctl.hangup.*", bus.prefix());
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
                let Some(call) = m.subject.rsplit('.').next().and_then(|c| Uuid::parse_str(c).ok())
                else {
                    continue;
                };
                if playing.hang_up(call) {
                    tracing::info!(%call, "call hung up: provider drops it");
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
        let (gen1, first) = p.start(a);
        // A redelivery of the same call while the first attempt is still winding down.
        let (gen2, second) = p.start(a);
        p.end(a, gen1);
        assert!(p.hang_up(a), "the second attempt is still registered");
        assert!(second.is_cancelled());
        assert!(!first.is_cancelled());
        p.end(a, gen2);
        // Heard before the call started here: it starts hung up, once.
        assert!(!p.hang_up(b));
        let (_, t) = p.start(b);
        assert!(t.is_cancelled());
        let (_, again) = p.start(b);
        assert!(!again.is_cancelled());
    }
}
