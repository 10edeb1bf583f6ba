//! Tencent CCC call detail records (`TelCdrInfo`) as reports. A CDR comes once per session, when
//! it is over, whether pushed (`?action=cdr&version=1`) or read back with `DescribeTelCdr`; CCC
//! sends no separate ringing or answered events, so one CDR gives every step it saw: ringing
//! (a `RingTimestamp`), answered (an `AcceptTimestamp`, or `EndStatus` 1 `ok`) and the release,
//! its cause from `EndStatus` (or, when only that is given, `EndStatusString`) through the
//! crate's cause table.

use serde_json::Value;
use waihu_events::pb;
use waihu_provider_core::{cloud::OUR_CALL_PREFIX, Report, Signal};

use crate::causes;

/// `EndStatus` 1, `ok`: a call that was answered and ended normally.
pub const END_STATUS_OK: i64 = 1;

/// A whole number field, given as a JSON number or a string of digits; `None` when absent,
/// null or not a whole number.
pub fn int_field(v: &Value, name: &str) -> Option<i64> {
    match v.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string field, trimmed; `None` when absent, null, empty or not a string.
pub fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Our reference echoed back: the CDR's `UUI` (or the deprecated `Uui`) when it is
/// `waihu-call:<our call id>`, as dialing set it.
pub fn our_reference(cdr: &Value) -> Option<String> {
    ["UUI", "Uui"]
        .into_iter()
        .filter_map(|k| str_field(cdr, k))
        .find(|s| s.len() > OUR_CALL_PREFIX.len() && s.starts_with(OUR_CALL_PREFIX))
        .map(str::to_string)
}

/// The CDR's `EndStatus` code: the number when given, else the code its `EndStatusString`
/// stands for.
pub fn end_status_code(cdr: &Value) -> Option<i64> {
    int_field(cdr, "EndStatus")
        .or_else(|| str_field(cdr, "EndStatusString").and_then(causes::code_of_string))
}

/// The normalised cause of the CDR's end; `None` when it gives neither `EndStatus` nor
/// `EndStatusString`.
pub fn cause(cdr: &Value) -> Option<pb::HangupCause> {
    match int_field(cdr, "EndStatus") {
        Some(code) => Some(causes::cause(code)),
        None => str_field(cdr, "EndStatusString").map(causes::cause_of_string),
    }
}

/// A positive timestamp field (Tencent gives 0 for a step that did not happen).
fn stamp(cdr: &Value, name: &str) -> Option<i64> {
    int_field(cdr, name).filter(|t| *t > 0)
}

/// Seconds between two stamps as milliseconds, never negative.
fn span_ms(from: i64, to: i64) -> u64 {
    u64::try_from(to.saturating_sub(from))
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// What one CDR says of the call `provider_call_id`: ringing when it rang, answered when it was
/// answered, then the release. `None` when it names no end (not a finished CDR).
pub fn reports(provider_call_id: &str, cdr: &Value, raw: &str) -> Option<Vec<Report>> {
    let cause = cause(cdr)?;
    let ring = stamp(cdr, "RingTimestamp");
    let accept = stamp(cdr, "AcceptTimestamp");
    let ended = stamp(cdr, "EndedTimestamp");
    let answered = accept.is_some() || end_status_code(cdr) == Some(END_STATUS_OK);
    // `Duration` is EndedTimestamp - AcceptTimestamp; worked out from the stamps when absent.
    let talk_ms = if answered {
        match int_field(cdr, "Duration") {
            Some(d) => u64::try_from(d).unwrap_or(0).saturating_mul(1000),
            None => match (accept, ended) {
                (Some(a), Some(e)) => span_ms(a, e),
                _ => 0,
            },
        }
    } else {
        0
    };
    let ring_ms = match (ring, accept.or(ended)) {
        (Some(r), Some(until)) => span_ms(r, until),
        _ => 0,
    };
    let report = |signal| Report {
        provider_call_id: provider_call_id.to_string(),
        signal,
        raw: raw.to_string(),
    };
    let mut out = Vec::with_capacity(3);
    if ring.is_some() || answered {
        out.push(report(Signal::Ringing));
    }
    if answered {
        out.push(report(Signal::Answered));
    }
    out.push(report(Signal::Released {
        cause,
        answered,
        ring_ms,
        talk_ms,
    }));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn released(r: &[Report]) -> (u32, String, bool, u64, u64) {
        match &r.last().expect("a report").signal {
            Signal::Released {
                cause,
                answered,
                ring_ms,
                talk_ms,
            } => (cause.q850, cause.raw.clone(), *answered, *ring_ms, *talk_ms),
            other => panic!("last report is a release, not {other:?}"),
        }
    }

    fn stages(r: &[Report]) -> Vec<waihu_provider_core::Stage> {
        r.iter().map(|r| r.signal.stage()).collect()
    }

    #[test]
    fn an_answered_cdr_rings_answers_and_releases_with_its_duration() {
        let cdr = json!({
            "SessionId": "s-1", "UUI": "waihu-call:0c5b", "EndStatus": 1, "EndStatusString": "ok",
            "StartTimestamp": 1000, "RingTimestamp": 1002, "AcceptTimestamp": 1010,
            "EndedTimestamp": 1042, "Duration": 32
        });
        let r = reports("t-1", &cdr, "raw").expect("a finished CDR");
        use waihu_provider_core::Stage::*;
        assert_eq!(stages(&r), vec![Ringing, Answered, Released]);
        assert_eq!(released(&r), (16, "tencent:1".into(), true, 8_000, 32_000));
        assert!(r
            .iter()
            .all(|r| r.provider_call_id == "t-1" && r.raw == "raw"));
        assert_eq!(our_reference(&cdr).as_deref(), Some("waihu-call:0c5b"));
    }

    #[test]
    fn unanswered_cdrs_ring_only_when_they_rang() {
        use waihu_provider_core::Stage::*;
        let no_answer = json!({"EndStatus": 202, "RingTimestamp": 5, "EndedTimestamp": 35,
                               "AcceptTimestamp": 0, "Duration": 0});
        let r = reports("t", &no_answer, "").expect("finished");
        assert_eq!(stages(&r), vec![Ringing, Released]);
        assert_eq!(released(&r), (19, "tencent:202".into(), false, 30_000, 0));
        let empty = json!({"EndStatus": "205", "RingTimestamp": 0, "EndedTimestamp": 7});
        let r = reports("t", &empty, "").expect("finished");
        assert_eq!(stages(&r), vec![Released]);
        assert_eq!(released(&r).0, 1);
    }

    #[test]
    fn the_string_alone_names_the_end() {
        let busy = json!({"EndStatusString": "busy"});
        let r = reports("t", &busy, "").expect("finished");
        assert_eq!(released(&r), (17, "tencent:206".into(), false, 0, 0));
        let ok = json!({"EndStatusString": "ok", "AcceptTimestamp": 0, "Duration": 4});
        let r = reports("t", &ok, "").expect("finished");
        assert_eq!(released(&r), (16, "tencent:1".into(), true, 0, 4_000));
        let newer = json!({"EndStatusString": "voiceMailReached"});
        assert_eq!(
            released(&reports("t", &newer, "").expect("finished")),
            (31, "tencent:voiceMailReached".into(), false, 0, 0)
        );
    }

    #[test]
    fn odd_cdrs_never_panic() {
        for cdr in [
            json!({}),
            json!([]),
            json!("x"),
            json!(null),
            json!({"EndStatus": null}),
            json!({"EndStatus": {}, "EndStatusString": 3}),
            json!({"EndStatus": 1.5}),
        ] {
            assert!(reports("t", &cdr, "").is_none(), "{cdr}");
        }
        // Stamps out of order or absurd give zero spans, not a panic.
        let weird = json!({"EndStatus": 1, "RingTimestamp": i64::MAX, "AcceptTimestamp": i64::MIN,
                           "EndedTimestamp": -5, "Duration": -3});
        let r = reports("t", &weird, "").expect("finished");
        assert_eq!(released(&r), (16, "tencent:1".into(), true, 0, 0));
        let huge = json!({"EndStatus": 1, "AcceptTimestamp": 1, "Duration": i64::MAX});
        assert_eq!(
            released(&reports("t", &huge, "").expect("finished")).4,
            u64::MAX
        );
    }

    #[test]
    fn only_our_prefix_is_our_reference() {
        assert_eq!(our_reference(&json!({"UUI": "foobar"})), None);
        assert_eq!(our_reference(&json!({"UUI": "waihu-call:"})), None);
        assert_eq!(
            our_reference(&json!({"Uui": " waihu-call:abc "})).as_deref(),
            Some("waihu-call:abc")
        );
        assert_eq!(our_reference(&json!({"UUI": 7})), None);
    }
}
