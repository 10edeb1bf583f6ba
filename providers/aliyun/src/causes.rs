//! Aliyun CCC hangup causes. A call detail record's `ReleaseReason` is a SIP final response code
//! followed by text (`487-Request Terminated`); the code is mapped to Q.850 through the shared
//! SIP table ([`waihu_telephony::hangup::sip_to_q850`]).
//!
//! This crate has no `causes.tsv`: no non-SIP reason is documented. A reason without a usable
//! SIP code (empty, text only, or a provisional/redirect code the SIP table maps to 0) ends as
//! NORMAL_CLEARING (16) if the call was answered and NORMAL_UNSPECIFIED (31) if not.

use waihu_events::pb;
use waihu_telephony::hangup::{cause, sip_to_q850};

/// The longest reason kept in the raw code, in characters.
pub const RAW_MAX_CHARS: usize = 120;

/// The normalised cause of a `ReleaseReason`; raw `aliyun:<reason, trimmed, at most 120
/// characters>`. `answered` decides the cause of a reason without a usable SIP code.
pub fn release_reason_cause(reason: &str, answered: bool) -> pb::HangupCause {
    let reason = reason.trim();
    let q850 = match leading_sip_code(reason).map(sip_to_q850) {
        Some(q850) if q850 != 0 => q850,
        _ if answered => 16,
        _ => 31,
    };
    let raw: String = reason.chars().take(RAW_MAX_CHARS).collect();
    cause(q850, format!("aliyun:{raw}"))
}

/// The SIP status code `reason` starts with: exactly three ASCII digits, then the end of the
/// text or a non-digit (`-`, a space, ...).
fn leading_sip_code(reason: &str) -> Option<u16> {
    let digits = reason.bytes().take_while(u8::is_ascii_digit).count();
    if digits != 3 {
        return None;
    }
    reason.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_provider_core::vectors;

    #[test]
    fn every_sip_vector_row_maps_through_the_release_reason() {
        let mut rows = 0;
        for cols in vectors::tsv_rows("sip_to_q850.tsv") {
            let sip: u16 = cols[0].parse().expect("sip code");
            let q850: u32 = cols[1].parse().expect("q850");
            let reason = format!("{sip}-Text");
            let got = release_reason_cause(&reason, false);
            assert_eq!(got.q850, q850, "SIP {sip}");
            assert_eq!(got.name, cols[2], "name of SIP {sip}");
            assert_eq!(got.raw, format!("aliyun:{reason}"));
            rows += 1;
        }
        assert!(rows >= 30, "the vector file has its rows ({rows})");
    }

    #[test]
    fn the_documented_example() {
        let c = release_reason_cause("487-Request Terminated", true);
        assert_eq!((c.q850, c.name.as_str()), (487, "ORIGINATOR_CANCEL"));
        assert_eq!(c.raw, "aliyun:487-Request Terminated");
    }

    #[test]
    fn reasons_without_a_sip_code_depend_on_the_answer() {
        for reason in [
            "",
            "   ",
            "Request Terminated",
            "4870-x",
            "48-x",
            "180-Ringing",
            "302 Moved",
        ] {
            assert_eq!(release_reason_cause(reason, true).q850, 16, "{reason:?}");
            assert_eq!(release_reason_cause(reason, false).q850, 31, "{reason:?}");
        }
        assert_eq!(release_reason_cause("", false).raw, "aliyun:");
    }

    #[test]
    fn other_separators_and_unlisted_codes() {
        assert_eq!(release_reason_cause(" 486 Busy Here ", false).q850, 17);
        assert_eq!(
            release_reason_cause(" 486 Busy Here ", false).raw,
            "aliyun:486 Busy Here"
        );
        assert_eq!(release_reason_cause("603", false).q850, 21);
        // Unlisted final responses fall back by class, as the SIP table does.
        assert_eq!(release_reason_cause("499-Odd", false).q850, 41);
    }

    #[test]
    fn long_reasons_are_cut_at_120_characters() {
        let reason = format!("503-{}", "未".repeat(300));
        let c = release_reason_cause(&reason, false);
        assert_eq!(c.q850, 41);
        assert_eq!(
            c.raw.strip_prefix("aliyun:").map(|r| r.chars().count()),
            Some(120)
        );
    }
}
