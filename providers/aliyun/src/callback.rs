//! Callbacks at seed 003 §3.4.2's paths and in its shapes (not found in Aliyun's own docs, see
//! the crate docs): `POST .../webhook/aliyun/status` with a JSON body `{instanceId, callId,
//! jobId, event: Dialing|Ringing|Answered|Released, eventTime, caller, callee, agentId,
//! releaseReason, duration, tags}`, and `POST .../webhook/aliyun/recording` with `{instanceId,
//! callId, recordingUrl, recordingDuration, recordingSize, recordingTime}` (acknowledged,
//! nothing kept). Both are authenticated by a shared secret in the URL the operator configures:
//! `?token=<the line's webhook_token>`. The reply is seed 003's `{"success":true}`.

use serde_json::{Map, Value};
use waihu_provider_core::cloud::{
    constant_time_eq, Hook, HookError, HookReply, LineConfig, Report, OUR_CALL_PREFIX,
};
use waihu_provider_core::Signal;

use crate::{api, release_reason_cause};

/// The query parameter carrying the shared secret.
pub const TOKEN_PARAM: &str = "token";
/// The line credential the token must equal.
pub const TOKEN_CREDENTIAL: &str = "webhook_token";

/// Seed 003's reply to every callback.
pub fn reply() -> HookReply {
    HookReply::json(r#"{"success":true}"#)
}

/// Whether the callback's `token` equals the line's `webhook_token` (compared in constant time;
/// a line without one takes no callbacks).
pub fn verify(line: &LineConfig, hook: &Hook<'_>) -> bool {
    let (Some(given), Ok(token)) = (hook.query_param(TOKEN_PARAM), line.secret(TOKEN_CREDENTIAL))
    else {
        return false;
    };
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Reads a callback; see the module docs for the shapes.
pub fn parse(hook: &Hook<'_>) -> Result<Vec<Report>, HookError> {
    let body = object(hook.body)?;
    match hook.path.trim_end_matches('/') {
        "" | "/status" => status(&body, hook.body),
        "/recording" => Err(HookError::Ignored {
            provider_call_id: call_ref(&body)?,
            why: "recording callback: recordings are not kept".into(),
        }),
        other => Err(HookError::Malformed(format!(
            "no aliyun callback at {:?}",
            other.chars().take(60).collect::<String>()
        ))),
    }
}

fn object(body: &[u8]) -> Result<Map<String, Value>, HookError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(HookError::Malformed("JSON body is not an object".into())),
        Err(e) => Err(HookError::Malformed(format!("JSON body: {e}"))),
    }
}

/// A field as text: a string as it is, a number written out; None when absent, null or empty.
fn text(body: &Map<String, Value>, name: &str) -> Option<String> {
    match body.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Our call id in the callback's `tags` (MakeCall's `Tags` came back), as a report names it:
/// `waihu-call:<uuid>`.
pub fn ours_in_tags(tags: &str) -> Option<String> {
    let at = tags.find(OUR_CALL_PREFIX)?;
    let rest = &tags[at + OUR_CALL_PREFIX.len()..];
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    let id = uuid::Uuid::parse_str(&id).ok()?;
    Some(format!("{OUR_CALL_PREFIX}{id}"))
}

/// Which call a callback is about: its `jobId` (the id MakeCall gave), else our id from its
/// `tags`, else its `callId`.
fn call_ref(body: &Map<String, Value>) -> Result<String, HookError> {
    text(body, "jobId")
        .or_else(|| text(body, "tags").and_then(|t| ours_in_tags(&t)))
        .or_else(|| text(body, "callId"))
        .ok_or_else(|| HookError::Malformed("no jobId, callId or tags naming the call".into()))
}

fn status(body: &Map<String, Value>, raw: &[u8]) -> Result<Vec<Report>, HookError> {
    let id = call_ref(body)?;
    let event = body
        .get("event")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| HookError::Malformed("event missing or not a string".into()))?;
    let signal = match event.to_ascii_lowercase().as_str() {
        "ringing" => Signal::Ringing,
        "answered" => Signal::Answered,
        "released" => {
            // Seed 003: a release with a duration was a conversation.
            let talk_s = body.get("duration").map(api::whole).unwrap_or(0);
            let answered = talk_s > 0;
            let reason = text(body, "releaseReason").unwrap_or_default();
            Signal::Released {
                cause: release_reason_cause(&reason, answered),
                answered,
                ring_ms: 0,
                talk_ms: talk_s.saturating_mul(1000),
            }
        }
        _ => {
            return Err(HookError::Ignored {
                provider_call_id: id,
                why: format!(
                    "event {:?} moves nothing",
                    event.chars().take(40).collect::<String>()
                ),
            })
        }
    };
    Ok(vec![Report {
        provider_call_id: id,
        signal,
        raw: String::from_utf8_lossy(raw).into_owned(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use waihu_provider_core::Credentials;

    fn hook<'a>(path: &'a str, query: &'a str, body: &'a [u8]) -> Hook<'a> {
        Hook {
            path,
            query,
            headers: &[],
            body,
            url: "http://x/api/v1/calls/webhook/aliyun/status",
        }
    }

    fn one(body: &str) -> Report {
        let mut r = parse(&hook("/status", "", body.as_bytes())).expect("read");
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    #[test]
    fn status_callbacks_become_reports() {
        let r = one(
            r#"{"instanceId":"ccc-1","callId":"job-1","jobId":"job-1","event":"Ringing","eventTime":"2024-01-01T00:00:00.000Z"}"#,
        );
        assert_eq!(
            (r.provider_call_id.as_str(), &r.signal),
            ("job-1", &Signal::Ringing)
        );
        let r = one(r#"{"jobId":"job-1","event":"Answered"}"#);
        assert_eq!(r.signal, Signal::Answered);
        let r =
            one(r#"{"jobId":"job-1","event":"Released","releaseReason":"200-OK","duration":42}"#);
        match r.signal {
            Signal::Released {
                cause,
                answered: true,
                talk_ms: 42_000,
                ..
            } => assert_eq!(cause.q850, 16),
            other => panic!("{other:?}"),
        }
        let r = one(
            r#"{"jobId":"job-1","event":"Released","releaseReason":"486-Busy Here","duration":"0"}"#,
        );
        match r.signal {
            Signal::Released {
                cause,
                answered: false,
                talk_ms: 0,
                ..
            } => assert_eq!(
                (cause.q850, cause.raw.as_str()),
                (17, "aliyun:486-Busy Here")
            ),
            other => panic!("{other:?}"),
        }
        // A bare webhook path is the status one.
        assert!(parse(&hook("", "", br#"{"jobId":"j","event":"Ringing"}"#)).is_ok());
    }

    #[test]
    fn a_callback_without_a_job_id_names_our_call_by_its_tags() {
        let r =
            one(r#"{"event":"Ringing","tags":"waihu-call:6F1C1D3E-8a4b-4c5d-9e6f-0a1b2c3d4e5f"}"#);
        assert_eq!(
            r.provider_call_id,
            "waihu-call:6f1c1d3e-8a4b-4c5d-9e6f-0a1b2c3d4e5f"
        );
        assert_eq!(ours_in_tags("a=b,waihu-call:nonsense"), None);
        assert_eq!(ours_in_tags("{}"), None);
        let r = one(r#"{"event":"Ringing","callId":"c-9","tags":"{\"x\":1}"}"#);
        assert_eq!(r.provider_call_id, "c-9");
    }

    #[test]
    fn dialing_unknown_events_and_recordings_are_acknowledged_only() {
        for body in [
            r#"{"jobId":"job-1","event":"Dialing"}"#,
            r#"{"jobId":"job-1","event":"Transferred"}"#,
        ] {
            assert!(matches!(
                parse(&hook("/status", "", body.as_bytes())),
                Err(HookError::Ignored { provider_call_id, .. }) if provider_call_id == "job-1"
            ));
        }
        let rec = br#"{"instanceId":"ccc-1","callId":"job-1","recordingUrl":"https://x/r.wav","recordingDuration":12}"#;
        assert!(matches!(
            parse(&hook("/recording", "", rec)),
            Err(HookError::Ignored { provider_call_id, .. }) if provider_call_id == "job-1"
        ));
    }

    #[test]
    fn malformed_callbacks_are_refused_never_a_panic() {
        let bad: Vec<&[u8]> = vec![
            b"",
            b"not json",
            b"[1,2]",
            b"null",
            b"{\"event\":\"Released\"}",
            b"{\"jobId\":\"job-1\"}",
            b"{\"jobId\":\"\",\"event\":\"Ringing\"}",
            b"{\"jobId\":\"job-1\",\"event\":7}",
            b"{\"jobId\":{},\"event\":\"Ringing\"}",
            b"\xff\xfe{",
            b"{\"jobId\":\"job-1\",\"event\":\"Ringing\"",
        ];
        for body in bad {
            assert!(
                matches!(
                    parse(&hook("/status", "", body)),
                    Err(HookError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse(&hook(
                "/elsewhere",
                "",
                br#"{"jobId":"j","event":"Ringing"}"#
            )),
            Err(HookError::Malformed(_))
        ));
        // Odd but readable values do not panic either.
        for body in [
            r#"{"jobId":"j","event":"Released","duration":-5}"#,
            r#"{"jobId":"j","event":"Released","duration":1e300}"#,
            r#"{"jobId":"j","event":"Released","duration":"x","releaseReason":"99999999999"}"#,
        ] {
            let r = one(body);
            assert!(matches!(r.signal, Signal::Released { .. }), "{body}");
        }
        // Arbitrary bytes: read or refused, never a panic.
        let pool = b"{}[]\":,0123 jobIdeventReleased\\";
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    pool[(seed % pool.len() as u64) as usize]
                })
                .collect();
            let _ = parse(&hook("/status", "", &bytes));
        }
    }

    fn line(token: Option<&str>) -> LineConfig {
        let mut creds = BTreeMap::from([("access_key_secret".to_string(), "s".to_string())]);
        if let Some(t) = token {
            creds.insert(TOKEN_CREDENTIAL.to_string(), t.to_string());
        }
        LineConfig {
            credentials: Credentials::new(creds),
            ..Default::default()
        }
    }

    #[test]
    fn callbacks_are_authenticated_by_the_token_in_their_url() {
        let body = br#"{"jobId":"j","event":"Ringing"}"#;
        let l = line(Some("tok+en/1"));
        assert!(verify(&l, &hook("/status", "token=tok%2Ben%2F1", body)));
        assert!(verify(&l, &hook("/status", "a=1&token=tok%2Ben%2F1", body)));
        assert!(!verify(&l, &hook("/status", "token=tok+en/1", body)));
        assert!(!verify(&l, &hook("/status", "token=tok%2Ben%2F2", body)));
        assert!(!verify(&l, &hook("/status", "", body)));
        assert!(!verify(&line(None), &hook("/status", "token=", body)));
        assert_eq!(reply().body, r#"{"success":true}"#);
    }
}
