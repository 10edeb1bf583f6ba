//! The simulator provider: every call's outcome and timings are a pure function of
//! (seed, phone, attempt) ([`model`]), played in (scaled) real time through the call ledger.

pub mod model;

pub use model::{Mix, MsRange, Outcome, Simulator};
use waihu_bus::HandlerError;
use waihu_events::pb;
use waihu_provider_core::{CallLedger, LineConfig, Provider, Signal, Stage};

/// The simulator behind the [`Provider`] trait.
#[derive(Debug, Clone)]
pub struct SimProvider {
    pub sim: Simulator,
}

/// A call's signals as the simulator plays them, each after its (simulated) delay.
fn script(sim: &Simulator, req: &pb::CallRequested, call_id: &str) -> Vec<(u64, Signal)> {
    let outcome = sim.outcome(&req.phone, req.attempt);
    let setup = sim.setup_ms(&req.phone, req.attempt);
    let (cause, answered) = outcome.cause();
    let mut plan = vec![(
        0,
        Signal::Dialing {
            provider_call_id: format!("sim-{call_id}"),
        },
    )];
    if matches!(
        outcome,
        Outcome::Answered { .. } | Outcome::NoAnswer { .. } | Outcome::Rejected { .. }
    ) {
        plan.push((setup, Signal::Ringing));
    }
    if answered {
        plan.push((outcome.ring_ms(), Signal::Answered));
    }
    let last_wait = match outcome {
        Outcome::Answered { talk_ms, .. } => talk_ms,
        Outcome::NoAnswer { ring_ms } | Outcome::Rejected { ring_ms } => ring_ms,
        _ => setup,
    };
    plan.push((
        last_wait,
        Signal::Released {
            cause,
            answered,
            ring_ms: outcome.ring_ms(),
            talk_ms: outcome.talk_ms(),
        },
    ));
    plan
}

impl Provider for SimProvider {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn place(
        &self,
        _line: &LineConfig,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
    ) -> Result<(), HandlerError> {
        for (after_ms, signal) in script(&self.sim, req, &ledger.call_id().to_string()) {
            // Steps an earlier attempt already announced are not played (nor waited for) again.
            if signal.stage() <= ledger.reached() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.sim.wall(after_ms)) => {}
                // Hung up: the release is recorded; nothing more to play.
                _ = ledger.hung_up() => return Ok(()),
            }
            ledger.record(signal).await?;
            if ledger.reached() == Stage::Released {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_follow_the_lifecycle_and_end_released() {
        let sim = Simulator::default();
        for i in 0..200u32 {
            let req = pb::CallRequested {
                phone: format!("+86138{i:08}"),
                attempt: 1 + i % 3,
                ..Default::default()
            };
            let s = script(&sim, &req, "c");
            let stages: Vec<Stage> = s.iter().map(|(_, sig)| sig.stage()).collect();
            assert!(stages.windows(2).all(|w| w[0] < w[1]), "{stages:?}");
            assert_eq!(stages.first(), Some(&Stage::Dialing));
            assert_eq!(stages.last(), Some(&Stage::Released));
        }
    }
}
