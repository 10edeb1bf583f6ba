//! The simulator's batch screening API (seed 004): a batch of numbers is accepted at once and
//! its results are ready `delay` later. Like the call model it keeps no state: a batch's
//! reference carries when it was accepted, and each number's screening call is a pure function
//! of (seed, number), so a query after a restart of the adapter (or of the "provider") answers
//! the same.

use std::time::Duration;

use waihu_events::pb;

use crate::{Outcome, Simulator};

/// The simulated batch API of one adapter.
#[derive(Debug, Clone)]
pub struct SimBatchApi {
    pub sim: Simulator,
    /// How long after acceptance a batch's results are ready.
    pub delay: Duration,
}

/// What the screening call to one number found (seed 004 call_filter_send_queryres).
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenCall {
    pub phone: String,
    /// "answered", "no_answer", "busy", "rejected", "unallocated" or "failed".
    pub call_status: &'static str,
    pub answered: bool,
    pub cause: pb::HangupCause,
    /// Ring time before answer or release (seed wait_time), and talk time (billsec), in ms.
    pub wait_ms: u64,
    pub billsec_ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("not a reference of the simulator's batch API: {0:?}")]
pub struct BadReference(pub String);

impl SimBatchApi {
    /// Accepts batch `name` at `now_ms` (Unix ms): its reference.
    pub fn submit(&self, name: &str, now_ms: i64) -> String {
        format!("sim:{now_ms}:{name}")
    }

    /// The results of the batch `reference` names, whose numbers are `phones`: None while
    /// they are not ready at `now_ms`.
    pub fn query(
        &self,
        reference: &str,
        phones: &[String],
        now_ms: i64,
    ) -> Result<Option<Vec<ScreenCall>>, BadReference> {
        let accepted: i64 = reference
            .strip_prefix("sim:")
            .and_then(|r| r.split_once(':'))
            .and_then(|(at, _)| at.parse().ok())
            .ok_or_else(|| BadReference(reference.chars().take(80).collect()))?;
        if now_ms < accepted.saturating_add(self.delay.as_millis() as i64) {
            return Ok(None);
        }
        Ok(Some(phones.iter().map(|p| self.sim.screen(p)).collect()))
    }
}

impl Simulator {
    /// The screening call to `phone`: drawn apart from the campaign calls' outcomes (a number
    /// screened busy may answer its campaign call), but from the same mix.
    pub fn screen(&self, phone: &str) -> ScreenCall {
        let probe = Simulator {
            seed: self.seed ^ 0x5c2e_e000,
            ..self.clone()
        };
        let o = probe.outcome(phone, 1);
        let (cause, answered) = o.cause();
        let call_status = match o {
            Outcome::Answered { .. } => "answered",
            Outcome::NoAnswer { .. } => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Unallocated => "unallocated",
            Outcome::TemporaryFailure => "failed",
        };
        ScreenCall {
            phone: phone.to_string(),
            call_status,
            answered,
            cause,
            wait_ms: o.ring_ms(),
            // A screening call hangs up once answered.
            billsec_ms: if answered { 1_000 } else { 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_ready_after_the_delay_and_the_same_after_a_restart() {
        let api = SimBatchApi {
            sim: Simulator::default(),
            delay: Duration::from_secs(2),
        };
        let phones: Vec<String> = (0..200).map(|i| format!("+8613800{i:06}")).collect();
        let r = api.submit("job-1", 1_000);
        assert_eq!(api.query(&r, &phones, 2_999).expect("ref"), None);
        let a = api.query(&r, &phones, 3_000).expect("ref").expect("ready");
        let again = SimBatchApi {
            sim: Simulator::default(),
            delay: Duration::from_secs(2),
        };
        assert_eq!(
            again.query(&r, &phones, 9_000).expect("ref"),
            Some(a.clone())
        );
        // The default mix leaves some numbers unallocated and most reachable.
        let unallocated = a.iter().filter(|c| c.call_status == "unallocated").count();
        assert!((1..40).contains(&unallocated), "{unallocated}");
        assert!(api.query("tencent:1", &phones, 0).is_err());
        assert!(api.query("sim:x:y", &phones, 0).is_err());
    }
}
