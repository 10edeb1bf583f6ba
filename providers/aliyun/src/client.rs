//! The CCC client behind [`CloudApi`]: MakeCall to dial, GetCallDetailRecord to learn how a
//! call ended, ReleaseCall to hang up, ListCallDetailRecords to test a line; callbacks are read
//! by [`crate::callback`].

use std::time::Duration;

use serde_json::Value;
use waihu_events::pb;
use waihu_provider_core::cloud::{
    self, ApiError, BoxFuture, CloudApi, Hook, HookError, HookReply, LineConfig, Placed, Report,
    OUR_CALL_PREFIX,
};
use waihu_provider_core::Signal;

use crate::api::{self, Failure, Scheme, Signer};
use crate::{callback, release_reason_cause};

/// How long one request to CCC may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Ring timeout when the line sets none (seed 003's `timeoutSeconds || 60`).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 60;
/// The most CCC takes for `TimeoutSeconds`.
pub const MAX_TIMEOUT_SECONDS: u32 = 300;
/// `DeviceId` when the line names none: the API doc marks it required and says any value will
/// do ("无意义，可以随便填写").
pub const DEFAULT_DEVICE_ID: &str = "waihu";

/// The Aliyun CCC client.
#[derive(Clone)]
pub struct Aliyun {
    http: reqwest::Client,
}

impl Aliyun {
    pub fn new(http: reqwest::Client) -> Self {
        Aliyun { http }
    }
}

/// Why a request failed: before an answer (transport) or with one.
enum SendError {
    Api(ApiError),
    Failed(Failure),
}

impl SendError {
    fn into_api(self, action: &str) -> ApiError {
        match self {
            SendError::Api(e) => e,
            SendError::Failed(f) => f.to_api_error(action),
        }
    }
}

impl Aliyun {
    /// Sends `action` signed as the line says; the reply's JSON on success.
    async fn call(
        &self,
        line: &LineConfig,
        action: &str,
        params: Vec<(String, String)>,
    ) -> Result<(Value, String), SendError> {
        let scheme = Scheme::parse(line.setting_or("signature", "v1"))
            .map_err(|m| SendError::Api(ApiError::Config(m)))?;
        let access_key_id = line.setting("access_key_id").map_err(SendError::Api)?;
        let secret = line.secret("access_key_secret").map_err(SendError::Api)?;
        let signer = Signer {
            scheme,
            access_key_id,
            access_key_secret: secret,
            now: chrono::Utc::now(),
            nonce: uuid::Uuid::new_v4().to_string(),
        };
        let base = line.setting_or("base_url", api::DEFAULT_BASE_URL);
        let prepared = api::prepare(base, &signer, action, &params).map_err(SendError::Api)?;
        let mut req = self.http.post(&prepared.url).timeout(REQUEST_TIMEOUT);
        for (k, v) in &prepared.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let (status, body) = cloud::send("aliyun", req).await.map_err(SendError::Api)?;
        // Nothing of the secret goes further than here (an error may quote the request).
        let body = line.scrub(&body);
        match api::read_reply(status, &body) {
            Ok(v) => Ok((v, body)),
            Err(f) => Err(SendError::Failed(f)),
        }
    }
}

/// `(name, value)` pairs.
fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn national(line: &LineConfig) -> Result<bool, ApiError> {
    match line.setting_or("number_format", "national") {
        "national" => Ok(true),
        "e164" => Ok(false),
        other => Err(ApiError::Config(format!(
            "provider_config \"number_format\" is {other:?}: use \"national\" or \"e164\""
        ))),
    }
}

fn ring_timeout(line: &LineConfig) -> Result<u32, ApiError> {
    let given = line.setting_or("timeout_seconds", "");
    if given.is_empty() {
        return Ok(DEFAULT_TIMEOUT_SECONDS);
    }
    given
        .parse::<u32>()
        .ok()
        .filter(|s| (1..=MAX_TIMEOUT_SECONDS).contains(s))
        .ok_or_else(|| {
            ApiError::Config(format!(
                "provider_config \"timeout_seconds\" is {given:?}: whole seconds, 1 to {MAX_TIMEOUT_SECONDS}"
            ))
        })
}

/// The MakeCall parameters for `req` on `line`.
pub fn make_call_params(
    line: &LineConfig,
    req: &pb::CallRequested,
) -> Result<Vec<(String, String)>, ApiError> {
    let instance = line.setting("instance_id")?;
    let national = national(line)?;
    let callee = api::ccc_number(&req.phone, national);
    let caller = api::ccc_number(line.caller_for(req), national);
    let timeout = ring_timeout(line)?.to_string();
    let tags = format!("{OUR_CALL_PREFIX}{}", req.call_id);
    Ok(params(&[
        ("InstanceId", instance),
        ("Callee", &callee),
        ("Caller", &caller),
        ("DeviceId", line.setting_or("device_id", DEFAULT_DEVICE_ID)),
        ("UserId", line.setting_or("user_id", "")),
        ("TimeoutSeconds", &timeout),
        ("Tags", &tags),
    ]))
}

/// The JobId of a MakeCall reply (`Data.CallContext.JobId`, else `Data.UserContext.JobId`).
pub fn job_id(reply: &Value) -> Option<&str> {
    let data = &reply["Data"];
    [&data["CallContext"]["JobId"], &data["UserContext"]["JobId"]]
        .into_iter()
        .filter_map(Value::as_str)
        .find(|j| !j.trim().is_empty())
}

/// A time CCC gives in Unix milliseconds (a number, or a string of digits; empty or 0 when the
/// moment never came).
fn millis(v: &Value) -> Option<u64> {
    Some(api::whole(v)).filter(|ms| *ms > 0)
}

/// What a call detail record (`Data` of GetCallDetailRecord, or one item of
/// ListCallDetailRecords) says: nothing while the call has no release time, else its release.
/// Answered when `EstablishedTime` is set; talk is `CallDuration` (whole seconds, an int or a
/// string), ring time from `StartTime` to the answer or the release.
pub fn cdr_signal(cdr: &Value) -> Option<Signal> {
    let released_at = millis(&cdr["ReleaseTime"])?;
    let established = millis(&cdr["EstablishedTime"]);
    let answered = established.is_some();
    let reason = cdr["ReleaseReason"].as_str().unwrap_or_default();
    let ring_ms = millis(&cdr["StartTime"])
        .map(|start| established.unwrap_or(released_at).saturating_sub(start))
        .unwrap_or(0);
    let talk_ms = if answered {
        api::whole(&cdr["CallDuration"]).saturating_mul(1000)
    } else {
        0
    };
    Some(Signal::Released {
        cause: release_reason_cause(reason, answered),
        answered,
        ring_ms,
        talk_ms,
    })
}

impl CloudApi for Aliyun {
    fn kind(&self) -> &'static str {
        "aliyun"
    }

    fn requires(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["instance_id", "access_key_id"], &["access_key_secret"])
    }

    fn dial<'a>(
        &'a self,
        line: &'a LineConfig,
        req: &'a pb::CallRequested,
        _callback_url: &'a str,
    ) -> BoxFuture<'a, Result<Placed, ApiError>> {
        // CCC takes no callback URL per call: the operator sets it on the instance (lib docs).
        Box::pin(async move {
            let params = make_call_params(line, req)?;
            let (reply, raw) = self
                .call(line, "MakeCall", params)
                .await
                .map_err(|e| e.into_api("MakeCall"))?;
            let job = job_id(&reply).ok_or_else(|| {
                // Accepted, yet no id to follow it by: whether a phone rings is unknown.
                ApiError::Unknown("aliyun MakeCall reply has no JobId".into())
            })?;
            Ok(Placed {
                provider_call_id: job.to_string(),
                raw,
            })
        })
    }

    fn status<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Report>, ApiError>> {
        Box::pin(async move {
            let instance = line.setting("instance_id")?;
            let asked = params(&[("InstanceId", instance), ("ContactId", provider_call_id)]);
            let (reply, raw) = match self.call(line, "GetCallDetailRecord", asked).await {
                Ok(r) => r,
                // No record yet: the call is still on, or its record is still being written.
                Err(SendError::Failed(f)) if f.is_not_found() => return Ok(Vec::new()),
                Err(e) => return Err(e.into_api("GetCallDetailRecord")),
            };
            Ok(cdr_signal(&reply["Data"])
                .map(|signal| Report {
                    provider_call_id: provider_call_id.to_string(),
                    signal,
                    raw,
                })
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
            let instance = line.setting("instance_id")?;
            let asked = params(&[
                ("InstanceId", instance),
                ("JobId", provider_call_id),
                ("DeviceId", line.setting_or("device_id", DEFAULT_DEVICE_ID)),
                ("UserId", line.setting_or("user_id", "")),
            ]);
            match self.call(line, "ReleaseCall", asked).await {
                Ok(_) => Ok(()),
                // Already over.
                Err(SendError::Failed(f)) if f.is_not_found() => Ok(()),
                Err(e) => Err(e.into_api("ReleaseCall")),
            }
        })
    }

    fn test<'a>(&'a self, line: &'a LineConfig) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let instance = line.setting("instance_id")?;
            let asked = params(&[
                ("InstanceId", instance),
                ("PageNumber", "1"),
                ("PageSize", "1"),
            ]);
            let (reply, _) = self
                .call(line, "ListCallDetailRecords", asked)
                .await
                .map_err(|e| e.into_api("ListCallDetailRecords"))?;
            let total = api::whole(&reply["Data"]["TotalCount"]);
            Ok(format!(
                "instance {instance} answered a signed ListCallDetailRecords ({total} call detail records)"
            ))
        })
    }

    fn parse_hook(&self, hook: &Hook<'_>) -> Result<Vec<Report>, HookError> {
        callback::parse(hook)
    }

    fn verify_hook(&self, line: &LineConfig, hook: &Hook<'_>) -> bool {
        callback::verify(line, hook)
    }

    fn hook_reply(&self) -> HookReply {
        callback::reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use waihu_provider_core::Credentials;

    fn line(config: &[(&str, &str)]) -> LineConfig {
        LineConfig {
            line_id: "ali-1".into(),
            provider: "aliyun".into(),
            caller_number: "+862161234567".into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            credentials: Credentials::new(BTreeMap::from([(
                "access_key_secret".to_string(),
                "secret-value".to_string(),
            )])),
            ..Default::default()
        }
    }

    fn request() -> pb::CallRequested {
        pb::CallRequested {
            call_id: "6f1c1d3e-8a4b-4c5d-9e6f-0a1b2c3d4e5f".into(),
            phone: "+8613900000001".into(),
            ..Default::default()
        }
    }

    #[test]
    fn make_call_names_callee_caller_device_timeout_and_our_call() {
        let p = make_call_params(&line(&[("instance_id", "ccc-1")]), &request()).expect("params");
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("InstanceId"), Some("ccc-1"));
        assert_eq!(get("Callee"), Some("13900000001"));
        assert_eq!(get("Caller"), Some("02161234567"));
        assert_eq!(get("DeviceId"), Some("waihu"));
        assert_eq!(get("TimeoutSeconds"), Some("60"));
        assert_eq!(get("UserId"), None);
        assert_eq!(
            get("Tags"),
            Some("waihu-call:6f1c1d3e-8a4b-4c5d-9e6f-0a1b2c3d4e5f")
        );
        let mut req = request();
        req.caller_number = "+861012345678".into();
        let p = make_call_params(
            &line(&[
                ("instance_id", "ccc-1"),
                ("timeout_seconds", "45"),
                ("device_id", "dev-9"),
                ("user_id", "agent@ccc-1"),
                ("number_format", "e164"),
            ]),
            &req,
        )
        .expect("params");
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Caller"), Some("+861012345678"));
        assert_eq!(get("Callee"), Some("+8613900000001"));
        assert_eq!(get("TimeoutSeconds"), Some("45"));
        assert_eq!(get("DeviceId"), Some("dev-9"));
        assert_eq!(get("UserId"), Some("agent@ccc-1"));
    }

    #[test]
    fn bad_settings_are_the_lines_fault() {
        for (k, v) in [
            ("timeout_seconds", "0"),
            ("timeout_seconds", "301"),
            ("timeout_seconds", "soon"),
            ("number_format", "local"),
        ] {
            let l = line(&[("instance_id", "ccc-1"), (k, v)]);
            assert!(
                matches!(make_call_params(&l, &request()), Err(ApiError::Config(_))),
                "{k}={v}"
            );
        }
        assert!(matches!(
            make_call_params(&line(&[]), &request()),
            Err(ApiError::Config(_))
        ));
    }

    #[test]
    fn the_job_id_is_the_call_id() {
        let reply = json!({"Code": "OK", "Data": {"CallContext": {"JobId": "job-1"}}});
        assert_eq!(job_id(&reply), Some("job-1"));
        let reply =
            json!({"Data": {"CallContext": {"JobId": ""}, "UserContext": {"JobId": "job-2"}}});
        assert_eq!(job_id(&reply), Some("job-2"));
        assert_eq!(job_id(&json!({"Data": null})), None);
    }

    #[test]
    fn a_record_without_a_release_time_says_nothing_yet() {
        assert_eq!(cdr_signal(&json!(null)), None);
        assert_eq!(cdr_signal(&json!({"ContactId": "job-1"})), None);
        assert_eq!(cdr_signal(&json!({"ReleaseTime": 0})), None);
    }

    #[test]
    fn records_give_answer_talk_ring_and_cause() {
        let answered = json!({
            "ContactId": "job-1", "StartTime": 1_000, "EstablishedTime": 4_000,
            "ReleaseTime": 34_000, "CallDuration": 30, "ReleaseReason": "",
            "RecordingReady": true
        });
        match cdr_signal(&answered) {
            Some(Signal::Released {
                cause,
                answered: true,
                ring_ms: 3_000,
                talk_ms: 30_000,
            }) => assert_eq!((cause.q850, cause.raw.as_str()), (16, "aliyun:")),
            other => panic!("{other:?}"),
        }
        // ListCallDetailRecords spells numbers as strings.
        let busy = json!({
            "StartTime": "1000", "EstablishedTime": "", "ReleaseTime": "6000",
            "CallDuration": "5", "ReleaseReason": "486-Busy Here"
        });
        match cdr_signal(&busy) {
            Some(Signal::Released {
                cause,
                answered: false,
                ring_ms: 5_000,
                talk_ms: 0,
            }) => assert_eq!(cause.q850, 17),
            other => panic!("{other:?}"),
        }
        let cancelled = json!({"ReleaseTime": 9, "ReleaseReason": "487-Request Terminated"});
        match cdr_signal(&cancelled) {
            Some(Signal::Released { cause, .. }) => assert_eq!(cause.q850, 487),
            other => panic!("{other:?}"),
        }
    }
}
