//! The dispatcher: a dial command (`CallRequested`) goes to the provider of its line, which
//! reports through the call's ledger. This build has one provider type, the simulator, and every
//! line is served by it; lines as entities with their provider type come with the lines issue.

use waihu_bus::{Bus, Delivery, HandlerError, MessageHandler};
use waihu_provider_core::{CallLedger, Provider};
use waihu_provider_sim::SimProvider;

pub struct Dispatcher {
    pub bus: Bus,
    pub sim: SimProvider,
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
        let mut ledger = CallLedger::open(&self.bus, &d).await?;
        self.sim.place(req, &mut ledger).await
    }
}
