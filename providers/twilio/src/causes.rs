//! Twilio's call statuses: the progress ones become signals, the final ones a normalised cause
//! from `causes.tsv` (a failed call's SIP response code, when the callback gives one, through
//! the SIP table instead).

use std::sync::LazyLock;

use waihu_events::pb;
use waihu_provider_core::Signal;
use waihu_telephony::hangup::{self, CauseTable};

/// The statuses that say a call is on its way, and what each means for its lifecycle.
pub const PROGRESS: &[&str] = &["queued", "initiated", "ringing", "in-progress"];

static TABLE: LazyLock<CauseTable> = LazyLock::new(|| {
    CauseTable::parse(include_str!("../causes.tsv")).expect("causes.tsv is checked by its tests")
});

pub fn table() -> &'static CauseTable {
    &TABLE
}

/// What a call's status (with, for a final one, its duration and SIP response code) says.
/// `None` for a status that moves nothing (queued, initiated) or one Twilio does not document.
pub fn signal(status: &str, duration_s: u64, sip_code: Option<u16>) -> Option<Signal> {
    match status {
        "ringing" => Some(Signal::Ringing),
        "in-progress" | "answered" => Some(Signal::Answered),
        final_status => {
            let row = table().get(final_status)?;
            let answered = final_status == "completed";
            let cause = match (final_status, sip_code) {
                ("failed" | "busy" | "no-answer", Some(sip)) if sip >= 300 => {
                    let mut c = hangup::from_sip(sip);
                    c.raw = format!("twilio:{final_status}/sip:{sip}");
                    c
                }
                _ => hangup::cause(row.q850, format!("twilio:{final_status}")),
            };
            Some(Signal::Released {
                cause,
                answered,
                ring_ms: 0,
                talk_ms: if answered { duration_s * 1000 } else { 0 },
            })
        }
    }
}

/// The normalised cause of a final status.
pub fn cause(status: &str) -> Option<pb::HangupCause> {
    match signal(status, 0, None)? {
        Signal::Released { cause, .. } => Some(cause),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_provider_core::vectors;

    #[test]
    fn every_status_of_the_vector_is_a_progress_step_or_a_row_of_the_table() {
        let mut seen = Vec::new();
        for row in vectors::tsv_rows("twilio_call_status.tsv") {
            let [status, meaning] = &row[..] else {
                panic!("vector row {row:?} has two columns");
            };
            let status = status.as_str();
            seen.push(status.to_string());
            if PROGRESS.contains(&status) {
                assert!(table().get(status).is_none(), "{status} is progress");
                continue;
            }
            let row = table()
                .get(status)
                .unwrap_or_else(|| panic!("{status} has no row"));
            assert_eq!(&row.meaning, meaning, "meaning of {status}");
            let c = cause(status).expect("final");
            assert_eq!(c.raw, format!("twilio:{status}"));
            assert_eq!(c.q850, row.q850);
        }
        for row in table().rows() {
            assert!(
                seen.contains(&row.code),
                "{} is not in the vector",
                row.code
            );
        }
        assert_eq!(seen.len(), 8);
        // The decisions, spelled out.
        let q = |s: &str| cause(s).expect("final").q850;
        assert_eq!(
            [
                q("completed"),
                q("busy"),
                q("no-answer"),
                q("failed"),
                q("canceled")
            ],
            [16, 17, 19, 41, 487]
        );
        assert_eq!(signal("ringing", 0, None), Some(Signal::Ringing));
        assert_eq!(signal("in-progress", 0, None), Some(Signal::Answered));
        assert_eq!(signal("queued", 0, None), None);
        let Some(Signal::Released { cause, .. }) = signal("failed", 0, Some(404)) else {
            panic!("released");
        };
        assert_eq!(
            (cause.q850, cause.raw.as_str()),
            (1, "twilio:failed/sip:404")
        );
        let Some(Signal::Released {
            talk_ms, answered, ..
        }) = signal("completed", 42, None)
        else {
            panic!("released");
        };
        assert_eq!((talk_ms, answered), (42_000, true));
    }
}
