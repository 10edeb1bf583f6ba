//! The dispatcher: a dial command (`CallRequested`) goes to the provider of its line, which
//! reports through the call's ledger. This build has one provider type, the simulator, and every
//! line is served by it; routing by the line's provider type comes with the provider issues.
//!
//! Hang-ups: `DialerService.Hangup` records the call's release itself and says so on
//! `<prefix>.ctl.hangup.<call>`; every adapter hears it, and the one playing the call has its
//! provider drop it at once. One that misses the word stops at the call's next report, which
//! the recorded release refuses.

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

/// The calls this adapter is playing, by call id: what hangs each up.
#[derive(Clone, Default)]
pub struct Playing(Arc<Mutex<HashMap<Uuid, CancellationToken>>>);

impl Playing {
    fn start(&self, call: Uuid) -> CancellationToken {
        let token = CancellationToken::new();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call, token.clone());
        token
    }

    fn end(&self, call: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&call);
    }

    fn hang_up(&self, call: Uuid) -> bool {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&call) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
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
        let mut ledger = ledger.with_hangup(self.playing.start(call));
        let done = self.sim.place(req, &mut ledger).await;
        self.playing.end(call);
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
