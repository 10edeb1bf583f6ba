//! The Ronglian REST client behind [`CloudApi`] (see the crate docs for the line's settings).

use std::time::Duration;

use serde_json::{json, Value};
use waihu_events::pb;
use waihu_provider_core::cloud::{
    self, constant_time_eq, ApiError, BoxFuture, CloudApi, Hook, HookError, HookReply, LineConfig,
    Placed, Report,
};

use crate::{codes, hook, sign};

/// The official endpoint.
pub const DEFAULT_BASE_URL: &str = "https://app.cloopen.com:8883";
/// The REST version every path starts with.
pub const VERSION: &str = "2013-12-26";
/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The reply Ronglian expects to a notification.
pub const HOOK_REPLY: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><statuscode>000000</statuscode></Response>";
/// The query parameter of the notification URL that carries the line's `webhook_token`.
pub const TOKEN_PARAM: &str = "token";

/// What a line places: a voice notification (no agent) or a two-way callback from an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Accounts/{sid}/Calls/LandingCalls`, signed with the main account.
    Notify,
    /// `SubAccounts/{sub}/Calls/Callback`, signed with the sub-account.
    Callback,
}

impl Mode {
    pub fn of(line: &LineConfig) -> Result<Mode, ApiError> {
        match line.setting_or("mode", "notify") {
            "notify" => Ok(Mode::Notify),
            "callback" => Ok(Mode::Callback),
            other => Err(ApiError::Config(format!(
                "line {}: provider_config mode {:?} is neither \"notify\" nor \"callback\"",
                line.line_id,
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// Who signs a request: the main account (`Accounts/...`) or the sub-account
/// (`SubAccounts/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    Main,
    Sub,
}

/// A request ready to send: where, with which headers and body. Built apart from sending so
/// that tests can look at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub method: reqwest::Method,
    pub url: String,
    pub authorization: String,
    pub body: Option<String>,
}

/// An account id as it may stand in a URL path: letters and digits.
fn account_id<'a>(line: &LineConfig, name: &str, v: &'a str) -> Result<&'a str, ApiError> {
    if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(v)
    } else {
        Err(ApiError::Config(format!(
            "line {}: provider_config {name} must be letters and digits",
            line.line_id
        )))
    }
}

/// Builds a signed request to `path` under the signer's account, at `batch` time.
pub fn prepare(
    line: &LineConfig,
    signer: Signer,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
    batch: &str,
) -> Result<Prepared, ApiError> {
    let (segment, sid, token) = match signer {
        Signer::Main => (
            "Accounts",
            account_id(line, "account_sid", line.setting("account_sid")?)?,
            line.secret("auth_token")?,
        ),
        Signer::Sub => (
            "SubAccounts",
            account_id(line, "sub_account_sid", line.setting("sub_account_sid")?)?,
            line.secret("sub_account_token")?,
        ),
    };
    let base = line
        .setting_or("base_url", DEFAULT_BASE_URL)
        .trim_end_matches('/');
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("sig", &sign::sig(sid, token, batch));
    for (k, v) in query {
        q.append_pair(k, v);
    }
    Ok(Prepared {
        method,
        url: format!("{base}/{VERSION}/{segment}/{sid}/{path}?{}", q.finish()),
        authorization: sign::authorization(sid, batch),
        body: body.map(Value::to_string),
    })
}

/// A reply's `statusCode` (a string, sometimes a number).
fn status_code(v: &Value) -> Option<String> {
    match v.get("statusCode")? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(format!("{:06}", n.as_u64()?)),
        _ => None,
    }
}

/// Sorts a reply: `Ok(json)` on statusCode 000000, else the error its code means. `pending`
/// lets a "nothing yet" code through as `Ok(None)`.
pub fn read_reply(
    line: &LineConfig,
    http_status: u16,
    body: &str,
    pending: bool,
) -> Result<Option<Value>, ApiError> {
    let body = line.scrub(body);
    if http_status == 429 || http_status >= 500 {
        return Err(ApiError::Transient(format!(
            "ronglian HTTP {http_status}: {}",
            body.chars().take(200).collect::<String>()
        )));
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        let text = format!(
            "ronglian HTTP {http_status}, not JSON: {}",
            body.chars().take(200).collect::<String>()
        );
        return Err(if (200..300).contains(&http_status) {
            ApiError::Unknown(text)
        } else {
            ApiError::Config(text)
        });
    };
    let Some(code) = status_code(&v) else {
        return Err(ApiError::Unknown(format!(
            "ronglian HTTP {http_status}: reply without statusCode"
        )));
    };
    match codes::kind(&code) {
        codes::Kind::Ok => Ok(Some(v)),
        codes::Kind::Pending if pending => Ok(None),
        _ => Err(codes::error(
            &code,
            v.get("statusMsg").and_then(Value::as_str).unwrap_or(""),
        )),
    }
}

/// The first `callSid` anywhere in a reply (under `LandingCall`, `CallBack`, ...).
pub fn find_call_sid(v: &Value) -> Option<String> {
    fn walk(v: &Value, depth: u8) -> Option<String> {
        let obj = v.as_object()?;
        if let Some(s) = obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("callSid"))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            return Some(s.to_string());
        }
        if depth == 0 {
            return None;
        }
        obj.values().find_map(|v| walk(v, depth - 1))
    }
    walk(v, 3)
}

/// A member of a reply object found without regard to case (`CallResult`, `Account`).
fn member<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A field as text, whether the reply wrote it as a string or a number.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number as Ronglian dials it: mainland numbers national (mobiles as they are, fixed lines
/// with their trunk 0), others with the international prefix 00.
pub fn national(e164: &str) -> String {
    let s = e164.trim();
    if let Some(n) = waihu_telephony::phone::mainland_national(s) {
        n
    } else if let Some(rest) = s.strip_prefix('+') {
        format!("00{rest}")
    } else {
        s.to_string()
    }
}

/// The notification URL for a call: the adapter's callback URL with the line's
/// `webhook_token` as `?token=` (what [`CloudApi::verify_hook`] checks).
pub fn notify_url(line: &LineConfig, callback_url: &str) -> Result<String, ApiError> {
    let token = line.secret("webhook_token")?;
    let sep = if callback_url.contains('?') { '&' } else { '?' };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair(TOKEN_PARAM, token)
        .finish();
    Ok(format!("{callback_url}{sep}{q}"))
}

/// The request that places `req` on `line`.
pub fn dial_request(
    line: &LineConfig,
    req: &pb::CallRequested,
    callback_url: &str,
    batch: &str,
) -> Result<Prepared, ApiError> {
    let to = national(&req.phone);
    let display = national(line.caller_for(req));
    let url = notify_url(line, callback_url)?;
    let max_call_time = line.setting_or("max_call_time", "");
    match Mode::of(line)? {
        Mode::Notify => {
            let mut body = json!({
                "appId": line.setting("app_id")?,
                "to": to,
                "displayNum": display,
                "playTimes": line.setting_or("play_times", "1"),
                "respUrl": url,
                "userData": req.call_id,
            });
            match (
                line.setting_or("media_name", ""),
                line.setting_or("media_txt", ""),
            ) {
                ("", "") => {
                    return Err(ApiError::Config(format!(
                        "line {}: a notify line needs provider_config media_name or media_txt",
                        line.line_id
                    )))
                }
                ("", txt) => body["mediaTxt"] = json!(txt),
                (name, _) => body["mediaName"] = json!(name),
            }
            if !max_call_time.is_empty() {
                body["maxCallTime"] = json!(max_call_time);
            }
            prepare(
                line,
                Signer::Main,
                reqwest::Method::POST,
                "Calls/LandingCalls",
                &[],
                Some(&body),
                batch,
            )
        }
        Mode::Callback => {
            let agent = national(line.setting("agent_number")?);
            let mut body = json!({
                "from": agent,
                "to": to,
                "customerSerNum": display,
                "fromSerNum": display,
                "userData": req.call_id,
                "hangupCdrUrl": url,
            });
            if !max_call_time.is_empty() {
                body["maxCallTime"] = json!(max_call_time);
            }
            prepare(
                line,
                Signer::Sub,
                reqwest::Method::POST,
                "Calls/Callback",
                &[],
                Some(&body),
                batch,
            )
        }
    }
}

/// The Ronglian client.
#[derive(Clone)]
pub struct Ronglian {
    http: reqwest::Client,
}

impl Ronglian {
    pub fn new(http: reqwest::Client) -> Self {
        Ronglian { http }
    }

    /// Sends a prepared request; the reply's HTTP status and body.
    async fn send(&self, p: Prepared) -> Result<(u16, String), ApiError> {
        let mut r = self
            .http
            .request(p.method, &p.url)
            .header("accept", sign::ACCEPT)
            .header("content-type", sign::CONTENT_TYPE)
            .header("authorization", p.authorization)
            .timeout(TIMEOUT);
        if let Some(body) = p.body {
            r = r.body(body);
        }
        cloud::send("ronglian", r).await
    }
}

impl CloudApi for Ronglian {
    fn kind(&self) -> &'static str {
        "ronglian"
    }

    fn requires(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["account_sid", "app_id"], &["auth_token", "webhook_token"])
    }

    fn dial<'a>(
        &'a self,
        line: &'a LineConfig,
        req: &'a pb::CallRequested,
        callback_url: &'a str,
    ) -> BoxFuture<'a, Result<Placed, ApiError>> {
        Box::pin(async move {
            let p = dial_request(line, req, callback_url, &sign::batch_now())?;
            let (status, body) = self.send(p).await?;
            let v = read_reply(line, status, &body, false)?.unwrap_or_default();
            let sid = find_call_sid(&v)
                .ok_or_else(|| ApiError::Unknown("ronglian reply has no callSid".into()))?;
            Ok(Placed {
                provider_call_id: sid,
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
            let p = prepare(
                line,
                Signer::Main,
                reqwest::Method::GET,
                "CallResult",
                &[("callsid", provider_call_id)],
                None,
                &sign::batch_now(),
            )?;
            let (status, body) = self.send(p).await?;
            let Some(v) = read_reply(line, status, &body, true)? else {
                return Ok(vec![]);
            };
            Ok(call_result(provider_call_id, &v, body))
        })
    }

    fn hang_up<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let Some(p) = cancel_request(line, provider_call_id, &sign::batch_now())? else {
                tracing::info!(
                    line = %line.line_id,
                    provider_call_id,
                    "ronglian has no cancel for a voice notification: it plays out"
                );
                return Ok(());
            };
            let (status, body) = self.send(p).await?;
            read_reply(line, status, &body, false).map(|_| ())
        })
    }

    fn test<'a>(&'a self, line: &'a LineConfig) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let mode = Mode::of(line)?;
            line.setting("app_id")?;
            line.secret("webhook_token")?;
            if mode == Mode::Callback {
                line.setting("agent_number")?;
                account_id(line, "sub_account_sid", line.setting("sub_account_sid")?)?;
                line.secret("sub_account_token")?;
            }
            let p = prepare(
                line,
                Signer::Main,
                reqwest::Method::GET,
                "AccountInfo",
                &[],
                None,
                &sign::batch_now(),
            )?;
            let (status, body) = self.send(p).await?;
            let v = read_reply(line, status, &body, false)?.unwrap_or_default();
            let account = member(&v, "Account").cloned().unwrap_or_default();
            let field = |n: &str| text(member(&account, n)).unwrap_or_else(|| "?".into());
            Ok(line.scrub(&format!(
                "account {} (status {}, balance {}), {} mode",
                field("friendlyName"),
                field("status"),
                field("balance"),
                match mode {
                    Mode::Notify => "voice notification",
                    Mode::Callback => "two-way callback",
                }
            )))
        })
    }

    fn parse_hook(&self, hook: &Hook<'_>) -> Result<Vec<Report>, HookError> {
        hook::parse(hook.body)
    }

    fn verify_hook(&self, line: &LineConfig, hook: &Hook<'_>) -> bool {
        match (line.secret("webhook_token"), hook.query_param(TOKEN_PARAM)) {
            (Ok(want), Some(given)) => constant_time_eq(want.as_bytes(), given.as_bytes()),
            _ => false,
        }
    }

    fn hook_reply(&self) -> HookReply {
        HookReply::xml(HOOK_REPLY)
    }
}

/// The reports a `CallResult` reply gives: the call's end once it has one. The reply is
/// `{"statusCode":"000000","CallResult":{"state":..,"callTime":..,"duration":..}}`, `state` as
/// the voice notification's (0 normal, 1 not answered, 2 failed); `duration` (talk seconds) is
/// an UNVERIFIED field name, and the call's end is assumed to be what a result describes.
pub fn call_result(provider_call_id: &str, v: &Value, raw: String) -> Vec<Report> {
    let Some(result) = member(v, "CallResult") else {
        return vec![];
    };
    let Some(state) = text(member(result, "state")).filter(|s| !s.is_empty()) else {
        return vec![];
    };
    let duration = text(member(result, "duration"))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    vec![Report {
        provider_call_id: provider_call_id.to_string(),
        signal: hook::landing_release(&state, duration),
        raw,
    }]
}

/// The request that cancels a two-way callback (`None` for a voice notification, which has no
/// cancel): `SubAccounts/{sub}/Calls/CallCancel` with `type` 0 (at any time).
pub fn cancel_request(
    line: &LineConfig,
    provider_call_id: &str,
    batch: &str,
) -> Result<Option<Prepared>, ApiError> {
    if Mode::of(line)? == Mode::Notify {
        return Ok(None);
    }
    let body = json!({
        "appId": line.setting("app_id")?,
        "callSid": provider_call_id,
        "type": "0",
    });
    prepare(
        line,
        Signer::Sub,
        reqwest::Method::POST,
        "Calls/CallCancel",
        &[],
        Some(&body),
        batch,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use md5::{Digest, Md5};
    use waihu_provider_core::{cloud::Credentials, Signal};

    use super::*;

    const BATCH: &str = "20240101120000";
    const CALL: &str = "0190a6b2-7c1d-7e3f-8a4b-5c6d7e8f9a0b";

    fn line(mode: &str) -> LineConfig {
        let config = [
            ("account_sid", "aaf98f89488d0aad0148a3b7b3e30d57"),
            ("app_id", "8a48b5514a61a814014a6a2b3e4a0a1b"),
            ("base_url", "http://fake:1/"),
            ("mode", mode),
            ("media_txt", "您好，这是一条通知"),
            ("agent_number", "+8613900000001"),
            ("sub_account_sid", "5f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ];
        let creds = [
            ("auth_token", "0123456789abcdef0123456789abcdef"),
            ("sub_account_token", "fedcba9876543210fedcba9876543210"),
            ("webhook_token", "hook secret/+&="),
        ];
        LineConfig {
            tenant_id: "t".into(),
            line_id: "rl-1".into(),
            provider: "ronglian".into(),
            caller_number: "+862161234567".into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            credentials: Credentials::new(
                creds
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
        }
    }

    fn req() -> pb::CallRequested {
        pb::CallRequested {
            call_id: CALL.into(),
            phone: "+8613800000042".into(),
            ..Default::default()
        }
    }

    fn md5_upper(s: &str) -> String {
        hex::encode_upper(Md5::digest(s.as_bytes()))
    }

    fn query(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        waihu_provider_core::cloud::url_form(q.as_bytes())
    }

    fn body(p: &Prepared) -> Value {
        serde_json::from_str(p.body.as_deref().expect("a body")).expect("JSON body")
    }

    #[test]
    fn a_voice_notification_is_signed_with_the_main_account() {
        let l = line("notify");
        let p = dial_request(
            &l,
            &req(),
            "http://adapter/api/v1/calls/webhook/ronglian/status",
            BATCH,
        )
        .expect("request");
        assert_eq!(p.method, reqwest::Method::POST);
        assert!(
            p.url.starts_with(
                "http://fake:1/2013-12-26/Accounts/aaf98f89488d0aad0148a3b7b3e30d57/Calls/LandingCalls?sig="
            ),
            "{}",
            p.url
        );
        // The shared vector's sid, token and batch.
        assert_eq!(
            query(&p.url),
            vec![("sig".into(), "65CF40B1222A628356D9CC370BC88612".into())]
        );
        assert_eq!(
            p.authorization,
            "YWFmOThmODk0ODhkMGFhZDAxNDhhM2I3YjNlMzBkNTc6MjAyNDAxMDExMjAwMDA="
        );
        let b = body(&p);
        assert_eq!(b["appId"], "8a48b5514a61a814014a6a2b3e4a0a1b");
        assert_eq!(b["to"], "13800000042");
        assert_eq!(b["displayNum"], "02161234567");
        assert_eq!(b["mediaTxt"], "您好，这是一条通知");
        assert!(b.get("mediaName").is_none());
        assert_eq!(b["playTimes"], "1");
        assert_eq!(b["userData"], CALL);
        assert_eq!(
            b["respUrl"],
            "http://adapter/api/v1/calls/webhook/ronglian/status?token=hook+secret%2F%2B%26%3D"
        );
        // A media file wins over text; neither is a line problem.
        let mut named = l.clone();
        named
            .config
            .insert("media_name".into(), "notice.wav".into());
        let b = body(&dial_request(&named, &req(), "http://a/s", BATCH).expect("request"));
        assert_eq!(
            (b["mediaName"].as_str(), b.get("mediaTxt")),
            (Some("notice.wav"), None)
        );
        let mut bare = l.clone();
        bare.config.remove("media_txt");
        assert!(matches!(
            dial_request(&bare, &req(), "http://a/s", BATCH),
            Err(ApiError::Config(m)) if m.contains("media_txt")
        ));
    }

    #[test]
    fn a_two_way_callback_is_signed_with_the_sub_account() {
        let l = line("callback");
        let p = dial_request(&l, &req(), "http://a/s?x=1", BATCH).expect("request");
        assert!(
            p.url.starts_with(
                "http://fake:1/2013-12-26/SubAccounts/5f1e2d3c4b5a69788796a5b4c3d2e1f0/Calls/Callback?sig="
            ),
            "{}",
            p.url
        );
        let sig = md5_upper(&format!(
            "5f1e2d3c4b5a69788796a5b4c3d2e1f0fedcba9876543210fedcba9876543210{BATCH}"
        ));
        assert_eq!(query(&p.url), vec![("sig".into(), sig)]);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&p.authorization)
                .expect("base64"),
            format!("5f1e2d3c4b5a69788796a5b4c3d2e1f0:{BATCH}").into_bytes()
        );
        let b = body(&p);
        assert_eq!(b["from"], "13900000001");
        assert_eq!(b["to"], "13800000042");
        assert_eq!(b["customerSerNum"], "02161234567");
        assert_eq!(b["userData"], CALL);
        assert_eq!(
            b["hangupCdrUrl"],
            "http://a/s?x=1&token=hook+secret%2F%2B%26%3D"
        );
        // Without the sub-account, its token or the agent: a line problem naming what is missing.
        for (setting, secret) in [
            (Some("sub_account_sid"), None),
            (Some("agent_number"), None),
            (None, Some("sub_account_token")),
        ] {
            let mut l = line("callback");
            if let Some(s) = setting {
                l.config.remove(s);
            }
            if let Some(s) = secret {
                let mut c = l.credentials.clone().into_inner();
                c.remove(s);
                l.credentials = Credentials::new(c);
            }
            let e = dial_request(&l, &req(), "http://a/s", BATCH).expect_err("missing");
            let name = setting.or(secret).unwrap_or_default();
            assert!(
                matches!(&e, ApiError::Config(m) if m.contains(name)),
                "{e:?}"
            );
        }
        let mut odd = line("callback");
        odd.config.insert("sub_account_sid".into(), "../x".into());
        assert!(matches!(
            dial_request(&odd, &req(), "http://a/s", BATCH),
            Err(ApiError::Config(_))
        ));
        assert!(matches!(
            dial_request(&line("other"), &req(), "http://a/s", BATCH),
            Err(ApiError::Config(m)) if m.contains("mode")
        ));
    }

    #[test]
    fn cancel_is_for_callbacks_and_polls_name_the_call() {
        assert_eq!(cancel_request(&line("notify"), "CS1", BATCH), Ok(None));
        let p = cancel_request(&line("callback"), "CS1", BATCH)
            .expect("request")
            .expect("a cancel");
        assert!(p
            .url
            .contains("/SubAccounts/5f1e2d3c4b5a69788796a5b4c3d2e1f0/Calls/CallCancel?sig="));
        assert_eq!(
            body(&p),
            json!({"appId": "8a48b5514a61a814014a6a2b3e4a0a1b", "callSid": "CS1", "type": "0"})
        );
        let l = line("callback");
        let p = prepare(
            &l,
            Signer::Main,
            reqwest::Method::GET,
            "CallResult",
            &[("callsid", "CS 1&x")],
            None,
            BATCH,
        )
        .expect("request");
        assert_eq!(p.body, None);
        assert_eq!(
            query(&p.url),
            vec![
                ("sig".into(), "65CF40B1222A628356D9CC370BC88612".into()),
                ("callsid".into(), "CS 1&x".into())
            ]
        );
    }

    #[test]
    fn replies_are_sorted_into_success_the_number_the_line_and_later() {
        let l = line("notify");
        let ok = read_reply(
            &l,
            200,
            r#"{"statusCode":"000000","LandingCall":{"callSid":"ff80","dateCreated":"x"}}"#,
            false,
        )
        .expect("ok")
        .expect("a value");
        assert_eq!(find_call_sid(&ok).as_deref(), Some("ff80"));
        let cb = json!({"statusCode":"000000","CallBack":{"callSid":" CB1 "}});
        assert_eq!(find_call_sid(&cb).as_deref(), Some("CB1"));
        assert_eq!(find_call_sid(&json!({"statusCode":"000000"})), None);
        assert!(matches!(
            read_reply(&l, 200, r#"{"statusCode":"100006","statusMsg":"bad"}"#, false),
            Err(ApiError::Refused { cause, .. }) if cause.q850 == 28
        ));
        assert!(matches!(
            read_reply(
                &l,
                200,
                r#"{"statusCode":"101115","statusMsg":"sig"}"#,
                false
            ),
            Err(ApiError::Config(_))
        ));
        assert!(matches!(
            read_reply(&l, 200, r#"{"statusCode":"100699"}"#, false),
            Err(ApiError::Transient(_))
        ));
        assert!(matches!(
            read_reply(&l, 503, "", false),
            Err(ApiError::Transient(_))
        ));
        assert!(matches!(
            read_reply(&l, 429, "{}", false),
            Err(ApiError::Transient(_))
        ));
        assert!(matches!(
            read_reply(&l, 200, "<html>", false),
            Err(ApiError::Unknown(_))
        ));
        assert!(matches!(
            read_reply(&l, 404, "<html>", false),
            Err(ApiError::Config(_))
        ));
        assert!(matches!(
            read_reply(&l, 200, "{}", false),
            Err(ApiError::Unknown(_))
        ));
        // A numeric code is read as its six digits.
        assert!(read_reply(&l, 200, r#"{"statusCode":0}"#, false).is_ok());
        // "Nothing yet" only where it is asked for.
        assert_eq!(
            read_reply(&l, 200, r#"{"statusCode":"100007"}"#, true),
            Ok(None)
        );
        assert!(read_reply(&l, 200, r#"{"statusCode":"100007"}"#, false).is_err());
        // A reply echoing a secret is scrubbed before it is kept in an error.
        let e = read_reply(
            &l,
            200,
            r#"{"statusCode":"101115","statusMsg":"token 0123456789abcdef0123456789abcdef"}"#,
            false,
        )
        .expect_err("refused");
        assert!(
            !e.to_string().contains("0123456789abcdef0123456789abcdef"),
            "{e}"
        );
    }

    #[test]
    fn a_call_result_reports_the_end_once_there_is_one() {
        let v = json!({"statusCode":"000000","CallResult":{"state":"0","callTime":"2024-01-01 12:00:00","duration":"31"}});
        let r = call_result("CS1", &v, "raw".into());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].provider_call_id, "CS1");
        assert!(matches!(
            &r[0].signal,
            Signal::Released { cause, answered: true, talk_ms: 31_000, .. } if cause.q850 == 16
        ));
        let v = json!({"statusCode":"000000","CallResult":{"state":2}});
        assert!(matches!(
            &call_result("CS1", &v, String::new())[0].signal,
            Signal::Released { cause, answered: false, .. } if cause.raw == "ronglian:state:2"
        ));
        assert!(call_result("CS1", &json!({"statusCode":"000000"}), String::new()).is_empty());
        assert!(call_result("CS1", &json!({"CallResult":{}}), String::new()).is_empty());
    }

    #[test]
    fn numbers_are_dialled_as_ronglian_writes_them() {
        assert_eq!(national("+8613800000000"), "13800000000");
        assert_eq!(national("+862161234567"), "02161234567");
        assert_eq!(national("+14155550100"), "0014155550100");
        assert_eq!(national("13800000000"), "13800000000");
    }

    #[test]
    fn notifications_are_authenticated_by_the_token_in_their_url() {
        let api = Ronglian::new(reqwest::Client::new());
        let l = line("notify");
        let hook = |query: &'static str| Hook {
            path: "/status",
            query,
            headers: &[],
            body: b"",
            url: "http://x/status",
        };
        assert!(api.verify_hook(&l, &hook("token=hook+secret%2F%2B%26%3D")));
        assert!(api.verify_hook(&l, &hook("a=1&token=hook%20secret/%2B%26%3D")));
        assert!(!api.verify_hook(&l, &hook("token=hook+secret")));
        assert!(!api.verify_hook(&l, &hook("")));
        assert!(!api.verify_hook(&l, &hook("tok=hook+secret%2F%2B%26%3D")));
        let reply = api.hook_reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, HOOK_REPLY);
        assert_eq!(api.requires().1, ["auth_token", "webhook_token"]);
    }
}
