//! Twilio Programmable Voice behind [`CloudApi`]: `Calls.json` create with a `StatusCallback`
//! for `initiated ringing answered completed`, the call resource polled for its status, `Status=
//! completed` to hang up, the account resource to test a line, and the status callbacks checked
//! by `X-Twilio-Signature` ([`sign`]). Statuses map to causes by [`causes`].
//!
//! A line's `provider_config`: `account_sid` (required), `base_url` (default
//! `https://api.twilio.com`), `twiml` or `twiml_url` (what an answered call hears; default a
//! short pause), `timeout` (ring seconds, default 30). Credentials: `auth_token`.

pub mod causes;
pub mod sign;

use std::time::Duration;

use waihu_events::pb;
use waihu_provider_core::cloud::{
    self, url_form, ApiError, BoxFuture, CloudApi, Hook, HookError, HookReply, LineConfig, Placed,
    Report,
};
use waihu_telephony::hangup;

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// What an answered call hears when the line names nothing.
pub const DEFAULT_TWIML: &str = "<Response><Pause length=\"2\"/></Response>";

/// The Twilio client.
#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
}

impl Twilio {
    pub fn new(http: reqwest::Client) -> Self {
        Twilio { http }
    }
}

fn base(line: &LineConfig) -> String {
    line.setting_or("base_url", DEFAULT_BASE_URL)
        .trim_end_matches('/')
        .to_string()
}

/// A Twilio error reply (`{"code": 21211, "message": "...", "status": 400}`) as an [`ApiError`].
fn refusal(status: u16, body: &str) -> ApiError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let code = v["code"].as_u64().unwrap_or(0);
    let message = format!(
        "twilio {status} {code}: {}",
        v["message"]
            .as_str()
            .unwrap_or("(no message)")
            .chars()
            .take(200)
            .collect::<String>()
    );
    let refused = |q850: u32| ApiError::Refused {
        cause: hangup::cause(q850, format!("twilio:error:{code}")),
        message: message.clone(),
    };
    match (status, code) {
        (429, _) | (500..=599, _) => ApiError::Transient(message),
        // Invalid 'To' number; 'To' cannot be reached; 'To' blocked or on the do-not-call list.
        (_, 21211) => refused(28),
        (_, 21214) => refused(3),
        (_, 21216) | (_, 21610) => refused(21),
        _ => ApiError::Config(message),
    }
}

impl Twilio {
    /// Sends a request to `path` under the account, form-encoded when `form` is given; the
    /// reply's body on 2xx.
    async fn send(
        &self,
        line: &LineConfig,
        path: &str,
        form: Option<Vec<(&str, String)>>,
    ) -> Result<String, ApiError> {
        let sid = line.setting("account_sid")?;
        let token = line.secret("auth_token")?;
        let url = format!("{}/2010-04-01/Accounts/{sid}{path}", base(line));
        let req = match form {
            Some(pairs) => {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &pairs {
                    ser.append_pair(k, v);
                }
                self.http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(ser.finish())
            }
            None => self.http.get(&url),
        };
        let req = req
            .basic_auth(sid, Some(token))
            .timeout(Duration::from_secs(10));
        let (status, body) = cloud::send("twilio", req).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(refusal(status, &line.scrub(&body)))
        }
    }
}

fn json(body: &str) -> Result<serde_json::Value, ApiError> {
    serde_json::from_str(body).map_err(|e| ApiError::Unknown(format!("twilio reply: {e}")))
}

/// A report of a call resource's (or a callback's) status.
fn report(sid: &str, status: &str, duration: u64, sip: Option<u16>, raw: String) -> Option<Report> {
    causes::signal(status, duration, sip).map(|signal| Report {
        provider_call_id: sid.to_string(),
        signal,
        raw,
    })
}

impl CloudApi for Twilio {
    fn kind(&self) -> &'static str {
        "twilio"
    }

    fn requires(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["account_sid"], &["auth_token"])
    }

    fn dial<'a>(
        &'a self,
        line: &'a LineConfig,
        req: &'a pb::CallRequested,
        callback_url: &'a str,
    ) -> BoxFuture<'a, Result<Placed, ApiError>> {
        Box::pin(async move {
            let from = line.caller_for(req).to_string();
            let mut form = vec![
                ("To", req.phone.clone()),
                ("From", from),
                ("StatusCallback", callback_url.to_string()),
                ("StatusCallbackMethod", "POST".to_string()),
                ("Timeout", line.setting_or("timeout", "30").to_string()),
            ];
            for e in ["initiated", "ringing", "answered", "completed"] {
                form.push(("StatusCallbackEvent", e.to_string()));
            }
            match line.config.get("twiml_url").filter(|u| !u.is_empty()) {
                Some(u) => form.push(("Url", u.clone())),
                None => form.push(("Twiml", line.setting_or("twiml", DEFAULT_TWIML).into())),
            }
            let body = self.send(line, "/Calls.json", Some(form)).await?;
            let v = json(&body)?;
            let sid = v["sid"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiError::Unknown("twilio reply has no sid".into()))?;
            Ok(Placed {
                provider_call_id: sid.to_string(),
                raw: body,
            })
        })
    }

    fn status<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Report>, ApiError>> {
        Box::pin(async move {
            let body = self
                .send(line, &format!("/Calls/{provider_call_id}.json"), None)
                .await?;
            let v = json(&body)?;
            let status = v["status"].as_str().unwrap_or_default();
            // `duration` is a string of seconds (null until the call ends).
            let duration = match &v["duration"] {
                serde_json::Value::String(s) => s.parse().unwrap_or(0),
                serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
                _ => 0,
            };
            Ok(report(provider_call_id, status, duration, None, body)
                .into_iter()
                .collect())
        })
    }

    fn hang_up<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            self.send(
                line,
                &format!("/Calls/{provider_call_id}.json"),
                Some(vec![("Status", "completed".into())]),
            )
            .await
            .map(|_| ())
        })
    }

    fn test<'a>(&'a self, line: &'a LineConfig) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let body = self.send(line, ".json", None).await?;
            let v = json(&body)?;
            Ok(format!(
                "account {} is {}",
                v["friendly_name"].as_str().unwrap_or("?"),
                v["status"].as_str().unwrap_or("?")
            ))
        })
    }

    fn parse_hook(&self, hook: &Hook<'_>) -> Result<Vec<Report>, HookError> {
        let is_json = hook
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"));
        let fields: Vec<(String, String)> = if is_json {
            let v: serde_json::Value = serde_json::from_slice(hook.body)
                .map_err(|e| HookError::Malformed(format!("JSON body: {e}")))?;
            v.as_object()
                .ok_or_else(|| HookError::Malformed("JSON body is not an object".into()))?
                .iter()
                .map(|(k, v)| {
                    let s = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                    (k.clone(), s)
                })
                .collect()
        } else {
            url_form(hook.body)
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let sid = get("CallSid")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| HookError::Malformed("CallSid missing".into()))?;
        let status = get("CallStatus")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| HookError::Malformed("CallStatus missing".into()))?;
        let duration = get("CallDuration")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let sip = get("SipResponseCode").and_then(|c| c.parse().ok());
        let raw = String::from_utf8_lossy(hook.body).into_owned();
        match report(sid, status, duration, sip, raw) {
            Some(r) => Ok(vec![r]),
            None => Err(HookError::Ignored {
                provider_call_id: sid.to_string(),
                why: format!("status {status:?}"),
            }),
        }
    }

    fn verify_hook(&self, line: &LineConfig, hook: &Hook<'_>) -> bool {
        let (Some(given), Ok(token)) =
            (hook.header("x-twilio-signature"), line.secret("auth_token"))
        else {
            return false;
        };
        if hook
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            sign::validate_json(token, hook.url, hook.body, given)
        } else {
            sign::validate_form(token, hook.url, &url_form(hook.body), given)
        }
    }

    fn hook_reply(&self) -> HookReply {
        HookReply::xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_sorted_into_the_call_the_line_and_later() {
        let r = |s, b: &str| refusal(s, b);
        assert!(matches!(
            r(400, r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#),
            ApiError::Refused { cause, .. } if cause.q850 == 28 && cause.raw == "twilio:error:21211"
        ));
        assert!(matches!(r(401, r#"{"code":20003}"#), ApiError::Config(_)));
        assert!(matches!(r(429, "{}"), ApiError::Transient(_)));
        assert!(matches!(r(503, "not json"), ApiError::Transient(_)));
    }

    #[test]
    fn callbacks_are_read_and_odd_ones_refused_or_ignored() {
        let t = Twilio::new(reqwest::Client::new());
        let hook = |body: &'static [u8]| Hook {
            path: "/status",
            query: "",
            headers: &[],
            body,
            url: "http://x/status",
        };
        let r = t
            .parse_hook(&hook(b"CallSid=CA1&CallStatus=completed&CallDuration=12"))
            .expect("read");
        assert_eq!(r[0].provider_call_id, "CA1");
        assert!(matches!(
            r[0].signal,
            waihu_provider_core::Signal::Released {
                talk_ms: 12_000,
                ..
            }
        ));
        assert!(matches!(
            t.parse_hook(&hook(b"CallStatus=completed")),
            Err(HookError::Malformed(_))
        ));
        assert!(matches!(
            t.parse_hook(&hook(b"CallSid=CA1&CallStatus=initiated")),
            Err(HookError::Ignored { .. })
        ));
    }
}
