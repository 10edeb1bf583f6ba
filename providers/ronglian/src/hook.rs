//! Ronglian's notifications, XML posted to the URL given when dialing:
//!
//! - voice notification (`LandingCalls`) result to `respUrl`:
//!   `<Request><action>SellingCall</action><callSid>..</callSid><number>..</number>
//!   <state>0|1|2</state><duration>..</duration><userData>..</userData></Request>`
//!   (doc.yuntongxun.com/p/5a5342c83b8496dd00dce13d; `state` through `landing_states.tsv`);
//! - two-way callback hangup CDR to `hangupCdrUrl`: `action=Hangup` with `callSid`,
//!   `byetype` (through `causes.tsv`), `talkDuration` (seconds), `recordurl`, `userData`. This
//!   field list is as public integrations quote it; the exact list is UNVERIFIED.
//!
//! Other actions (`CallAuth`, `CallEstablish`, ...) say nothing about the call's end and are
//! acknowledged without a report. Field names are matched without regard to case, and the
//! root may be `Request` or `request`.
//!
//! A notification names the call by `userData` when it carries our call id (we set it when
//! dialing, so a notification that arrives before the dial request's reply still finds its
//! call): `waihu-call:<our call id>`; otherwise by `callSid`.

use waihu_provider_core::{
    cloud::{HookError, Report, OUR_CALL_PREFIX},
    Signal,
};

use crate::causes;

/// The flat fields of a notification: (name, text), in document order.
pub fn fields(body: &[u8]) -> Result<Vec<(String, String)>, HookError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| HookError::Malformed(format!("body is not UTF-8: {e}")))?;
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| HookError::Malformed(format!("body is not XML: {e}")))?;
    let root = doc.root_element();
    if !root.tag_name().name().eq_ignore_ascii_case("request") {
        return Err(HookError::Malformed(format!(
            "root element <{}> is not <Request>",
            root.tag_name().name().chars().take(40).collect::<String>()
        )));
    }
    Ok(root
        .children()
        .filter(roxmltree::Node::is_element)
        .map(|n| {
            (
                n.tag_name().name().to_string(),
                n.text().unwrap_or_default().trim().to_string(),
            )
        })
        .collect())
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Seconds as the notifications write them; anything else is 0.
fn seconds(v: Option<&str>) -> u64 {
    v.and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0)
}

/// The call a notification names: our call id from `userData` when it is one, else `callSid`.
pub fn call_ref(user_data: Option<&str>, call_sid: Option<&str>) -> Option<String> {
    if let Some(ours) = user_data.and_then(|u| uuid::Uuid::parse_str(u.trim()).ok()) {
        return Some(format!("{OUR_CALL_PREFIX}{}", ours.hyphenated()));
    }
    call_sid
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The release a voice notification `state` (or a call result's) means.
pub fn landing_release(state: &str, duration_s: u64) -> Signal {
    let answered = state.trim() == "0";
    Signal::Released {
        cause: causes::landing_cause(state),
        answered,
        ring_ms: 0,
        talk_ms: if answered {
            duration_s.saturating_mul(1000)
        } else {
            0
        },
    }
}

/// The release a hangup CDR's `byetype` means: answered when the code is one of the table's
/// normal clearings (Q.850 16, a call that was connected).
pub fn hangup_release(byetype: &str, talk_s: u64) -> Signal {
    let cause = causes::cause(byetype);
    let answered = cause.q850 == 16;
    Signal::Released {
        cause,
        answered,
        ring_ms: 0,
        talk_ms: if answered {
            talk_s.saturating_mul(1000)
        } else {
            0
        },
    }
}

/// Reads a notification body into reports (at most one, the call's end).
pub fn parse(body: &[u8]) -> Result<Vec<Report>, HookError> {
    let f = fields(body)?;
    let action = get(&f, "action")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| HookError::Malformed("no <action>".into()))?;
    let id = call_ref(get(&f, "userData"), get(&f, "callSid"))
        .ok_or_else(|| HookError::Malformed("neither <callSid> nor our <userData>".into()))?;
    let signal = if action.eq_ignore_ascii_case("SellingCall") {
        let state = get(&f, "state")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| HookError::Malformed("SellingCall without <state>".into()))?;
        landing_release(state, seconds(get(&f, "duration")))
    } else if action.eq_ignore_ascii_case("Hangup") {
        let byetype = get(&f, "byetype")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| HookError::Malformed("Hangup without <byetype>".into()))?;
        hangup_release(byetype, seconds(get(&f, "talkDuration")))
    } else {
        return Err(HookError::Ignored {
            provider_call_id: id,
            why: format!("action {:?}", action.chars().take(40).collect::<String>()),
        });
    };
    Ok(vec![Report {
        provider_call_id: id,
        signal,
        raw: String::from_utf8_lossy(body).into_owned(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "0190a6b2-7c1d-7e3f-8a4b-5c6d7e8f9a0b";

    fn released(r: &Report) -> (u32, String, bool, u64) {
        match &r.signal {
            Signal::Released {
                cause,
                answered,
                talk_ms,
                ..
            } => (cause.q850, cause.raw.clone(), *answered, *talk_ms),
            other => panic!("not a release: {other:?}"),
        }
    }

    #[test]
    fn a_voice_notification_result_is_read() {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Request>\n  <action>SellingCall</action>\n  \
             <callSid>ff8080813d2d5ee5013d2d9c3ac90003</callSid><number>13800000000</number>\n  \
             <state>0</state><duration>17</duration><userData>{OURS}</userData>\n</Request>"
        );
        let r = parse(body.as_bytes()).expect("read");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].provider_call_id, format!("waihu-call:{OURS}"));
        assert_eq!(
            released(&r[0]),
            (16, "ronglian:state:0".into(), true, 17_000)
        );
        assert_eq!(r[0].raw, body);
        // Without our user data it is named by its callSid; lower-case root and tags.
        let r = parse(
            b"<request><ACTION>sellingcall</ACTION><callsid> CS1 </callsid><state>1</state>\
              <duration>9</duration><userData>crm-77</userData></request>",
        )
        .expect("read");
        assert_eq!(r[0].provider_call_id, "CS1");
        assert_eq!(released(&r[0]), (19, "ronglian:state:1".into(), false, 0));
        let r = parse(b"<Request><action>SellingCall</action><callSid>CS2</callSid><state>2</state></Request>")
            .expect("read");
        assert_eq!(released(&r[0]), (41, "ronglian:state:2".into(), false, 0));
    }

    #[test]
    fn a_hangup_cdr_is_read_through_the_byetype_table() {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request><action>Hangup</action>\
             <callSid>CS9</callSid><byetype>4</byetype><talkDuration>42</talkDuration>\
             <recordurl></recordurl><userData>{OURS}</userData></Request>"
        );
        let r = parse(body.as_bytes()).expect("read");
        assert_eq!(r[0].provider_call_id, format!("waihu-call:{OURS}"));
        assert_eq!(
            released(&r[0]),
            (16, "ronglian:byetype:4".into(), true, 42_000)
        );
        for (byetype, q850) in [("-2", 19), ("-9", 21), ("-14", 487), ("-1", 41), ("77", 31)] {
            let body = format!(
                "<Request><action>Hangup</action><callSid>CS9</callSid><byetype>{byetype}</byetype>\
                 <talkDuration>5</talkDuration></Request>"
            );
            let r = parse(body.as_bytes()).expect("read");
            let (q, raw, answered, talk) = released(&r[0]);
            assert_eq!((q, answered, talk), (q850, false, 0), "{byetype}");
            assert_eq!(raw, format!("ronglian:byetype:{byetype}"));
        }
    }

    #[test]
    fn other_actions_are_acknowledged_without_a_report() {
        let e = parse(b"<Request><action>CallEstablish</action><callSid>CS3</callSid></Request>")
            .expect_err("ignored");
        assert!(
            matches!(&e, HookError::Ignored { provider_call_id, .. } if provider_call_id == "CS3"),
            "{e:?}"
        );
    }

    #[test]
    fn malformed_bodies_are_refused_never_panicking() {
        let cases: &[&[u8]] = &[
            b"",
            b"not xml",
            b"\xff\xfe<Request/>",
            b"<Response><action>Hangup</action><callSid>x</callSid></Response>",
            b"<Request><callSid>x</callSid><state>0</state></Request>",
            b"<Request><action>SellingCall</action><state>0</state></Request>",
            b"<Request><action>SellingCall</action><callSid>x</callSid></Request>",
            b"<Request><action>Hangup</action><callSid>x</callSid><byetype></byetype></Request>",
            b"<Request><action>Hangup</action><callSid>x</callSid>",
            b"<!DOCTYPE r [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><Request>&b;</Request>",
            b"<Request><action>SellingCall</action><callSid></callSid><userData>nope</userData><state>0</state></Request>",
        ];
        for body in cases {
            assert!(
                matches!(parse(body), Err(HookError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // Arbitrary bytes never panic.
        const ALPHABET: &[u8] = b"<>/Request actionHangupcallSid=\"' &;0-9\n";
        let mut seed = 7u64;
        for len in 0..400 {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ALPHABET[(seed >> 33) as usize % ALPHABET.len()]
                })
                .collect();
            let _ = parse(&body);
        }
    }

    #[test]
    fn durations_that_are_not_numbers_count_as_zero() {
        let r = parse(b"<Request><action>SellingCall</action><callSid>x</callSid><state>0</state><duration>12.5</duration></Request>")
            .expect("read");
        assert_eq!(released(&r[0]).3, 0);
        let r = parse(b"<Request><action>SellingCall</action><callSid>x</callSid><state>0</state><duration>99999999999999999999</duration></Request>")
            .expect("read");
        assert_eq!(released(&r[0]).3, 0);
        assert_eq!(seconds(Some(" 7 ")), 7);
        let Signal::Released { talk_ms, .. } = landing_release("0", u64::MAX) else {
            panic!("release")
        };
        assert_eq!(talk_ms, u64::MAX);
    }
}
