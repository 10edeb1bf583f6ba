//! What a cloud call centre's client implements ([`CloudApi`]): place a call, say what the
//! provider knows of it now, hang it up, test a line, and read the provider's callbacks. The
//! provider adapter drives every cloud provider the same way (`services/provider-adapter`,
//! `cloud.rs`): it records the intent to call before the request, keeps the provider call id,
//! takes callbacks and polls into one inbox, and turns what it learns into the call's events
//! through the [`CallLedger`](crate::CallLedger).

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin};

use waihu_events::pb;

use crate::Signal;

/// A boxed future, so that clients of different providers sit behind one `dyn CloudApi`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A line's secrets by name. Printing one shows the names, never a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(BTreeMap<String, String>);

impl Credentials {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Credentials(values)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every secret value, for scrubbing text before it is logged or kept.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("{k}=<redacted>")))
            .finish()
    }
}

/// A line as its provider's client needs it.
#[derive(Debug, Clone, Default)]
pub struct LineConfig {
    pub tenant_id: String,
    pub line_id: String,
    pub provider: String,
    pub caller_number: String,
    /// The provider's settings that are not secret (`Line.provider_config`).
    pub config: BTreeMap<String, String>,
    pub credentials: Credentials,
}

impl LineConfig {
    /// A setting the provider needs.
    pub fn setting(&self, name: &str) -> Result<&str, ApiError> {
        self.config
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::Config(format!(
                    "line {} has no provider_config {name:?}",
                    self.line_id
                ))
            })
    }

    /// A setting with a default.
    pub fn setting_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.config
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
    }

    /// The number the callee sees: the one the call was placed with, else the line's.
    pub fn caller_for<'a>(&'a self, req: &'a pb::CallRequested) -> &'a str {
        if req.caller_number.trim().is_empty() {
            &self.caller_number
        } else {
            &req.caller_number
        }
    }

    /// A credential the provider needs.
    pub fn secret(&self, name: &str) -> Result<&str, ApiError> {
        self.credentials
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::Config(format!("line {} has no credential {name:?}", self.line_id))
            })
    }

    /// `text` with every credential value replaced by `<redacted>`: what may be logged or kept.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.credentials.values().filter(|v| v.len() >= 4) {
            out = out.replace(v, "<redacted>");
        }
        out
    }
}

/// Why a request to the provider did not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The provider refused this call for good (a malformed or barred number): the call is
    /// released with `cause`.
    #[error("refused: {message}")]
    Refused {
        cause: pb::HangupCause,
        message: String,
    },
    /// The line's settings or credentials are wrong (missing, or the provider refused them).
    #[error("line configuration: {0}")]
    Config(String),
    /// The request did not get through or the provider said to come back later; nothing was
    /// done, so it can be sent again.
    #[error("transient: {0}")]
    Transient(String),
    /// The request may or may not have taken effect (a timeout after it was sent).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// A call the provider accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub provider_call_id: String,
    /// The provider's reply, for audit.
    pub raw: String,
}

/// How a report names our call when the provider echoes our reference (a user-data field set
/// when dialing) rather than its own call id: `waihu-call:<our call id>`.
pub const OUR_CALL_PREFIX: &str = "waihu-call:";

/// One thing the provider said about one of its calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The provider's call id, or `waihu-call:<our call id>` ([`OUR_CALL_PREFIX`]).
    pub provider_call_id: String,
    pub signal: Signal,
    /// What it said, as it said it (bounded by the adapter before it is kept).
    pub raw: String,
}

/// A callback as the adapter's HTTP server received it.
#[derive(Debug, Clone, Copy)]
pub struct Hook<'a> {
    /// The path after `/api/v1/calls/webhook/<provider>` (`""`, `"/status"`, ...).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// The whole URL the provider called, as it knows it (the adapter's public URL, path and
    /// query): what URL-signing providers sign.
    pub url: &'a str,
}

impl Hook<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query's value of `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url_form(self.query.as_bytes())
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (bad escapes are kept as written).
pub fn url_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Why a callback could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HookError {
    /// Not the provider's format (bad JSON, XML or form, a missing field): 400.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A callback this provider sends that says nothing about a call's progress (an
    /// intermediate status we do not follow): authenticated, acknowledged, nothing recorded.
    #[error("ignored: {why}")]
    Ignored {
        provider_call_id: String,
        why: String,
    },
}

/// The reply a provider expects to a callback it delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct HookReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HookReply {
    /// HTTP 200 with a JSON body.
    pub fn json(body: &str) -> HookReply {
        HookReply {
            status: 200,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// HTTP 200 with an XML body.
    pub fn xml(body: &str) -> HookReply {
        HookReply {
            status: 200,
            content_type: "application/xml",
            body: body.to_string(),
        }
    }
}

/// A request to `provider` that got no reply, as an [`ApiError`]: transient when it never left
/// (no connection, a request that could not be built), else outcome unknown (it may have
/// arrived: a timeout, a reply cut short).
pub fn http_error(provider: &str, e: reqwest::Error) -> ApiError {
    if e.is_connect() || e.is_builder() {
        ApiError::Transient(format!("{provider} unreachable: {e}"))
    } else {
        ApiError::Unknown(format!("{provider} request: {e}"))
    }
}

/// Sends a request to `provider`: the reply's HTTP status and body, whatever the status; no
/// reply is [`http_error`]'s error.
pub async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, String), ApiError> {
    let resp = request.send().await.map_err(|e| http_error(provider, e))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| http_error(provider, e))?;
    Ok((status, body))
}

/// A cloud call centre's client. Every request carries the line (settings and credentials);
/// the client keeps no per-line state.
pub trait CloudApi: Send + Sync + 'static {
    /// The provider type lines name (`twilio`, `aliyun`, `tencent`, `ronglian`).
    fn kind(&self) -> &'static str;

    /// The `provider_config` settings and the credentials a line of this provider must have.
    fn requires(&self) -> (&'static [&'static str], &'static [&'static str]);

    /// Places the call `req` from `line`; `callback_url` is where the provider should send its
    /// callbacks for it (the adapter's public webhook URL for this provider).
    fn dial<'a>(
        &'a self,
        line: &'a LineConfig,
        req: &'a pb::CallRequested,
        callback_url: &'a str,
    ) -> BoxFuture<'a, Result<Placed, ApiError>>;

    /// What the provider knows of the call now, as reports (empty while nothing changed).
    fn status<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Report>, ApiError>>;

    /// Ends the call (or cancels it before it is answered).
    fn hang_up<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>>;

    /// A real signed request that changes nothing (an account or instance lookup): what
    /// `ProviderService.TestLine` reports.
    fn test<'a>(&'a self, line: &'a LineConfig) -> BoxFuture<'a, Result<String, ApiError>>;

    /// Reads a callback (without authenticating it: that needs its line, found from the
    /// reports' provider call ids).
    fn parse_hook(&self, hook: &Hook<'_>) -> Result<Vec<Report>, HookError>;

    /// Whether the callback is authentic for `line` (signature, basic auth or shared secret).
    fn verify_hook(&self, line: &LineConfig, hook: &Hook<'_>) -> bool;

    /// The reply the provider expects to a callback it delivered.
    fn hook_reply(&self) -> HookReply;

    /// For a callback that names no call we know (an acknowledgement-only push such as a
    /// recording notice keyed by the provider's session): a `provider_config` setting and its
    /// value that find the lines it may come from (e.g. `sdk_app_id`), so it can still be
    /// authenticated before it is acknowledged. `None` (the default): such a callback is 404.
    fn hook_line_match(&self, hook: &Hook<'_>) -> Option<(&'static str, String)> {
        let _ = hook;
        None
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print_their_values() {
        let c = Credentials::new(BTreeMap::from([("auth_token".into(), "s3cr3t-xyz".into())]));
        let line = LineConfig {
            credentials: c.clone(),
            ..Default::default()
        };
        let shown = format!("{c:?} {line:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("auth_token"), "{shown}");
        assert_eq!(line.scrub("token=s3cr3t-xyz&x=1"), "token=<redacted>&x=1");
    }

    #[test]
    fn forms_decode_plus_percent_and_bad_escapes() {
        let f = url_form(b"To=%2B8613800000001&Note=a+b&Bad=%zz&Tail=%4");
        assert_eq!(
            f,
            vec![
                ("To".into(), "+8613800000001".into()),
                ("Note".into(), "a b".into()),
                ("Bad".into(), "%zz".into()),
                ("Tail".into(), "%4".into()),
            ]
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
