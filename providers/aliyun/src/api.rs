//! The CCC 2020-07-01 RPC API on the wire, as pure functions: a signed request
//! ([`prepare`], RPC signature V1 or ACS3-HMAC-SHA256), a reply sorted into success or a
//! [`Failure`] and the failure into an [`ApiError`] the driver understands, and numbers as CCC
//! dials them ([`ccc_number`]).
//!
//! Every action is sent as the official SDKs send RPC-style CCC calls (`Params{style: RPC,
//! method: POST, pathname: "/", reqBodyType: formData, bodyType: json}`): `POST /` with every
//! parameter in the query string and no body. With V1 the common parameters (`Action`,
//! `Version`, `AccessKeyId`, `Timestamp`, `SignatureNonce`, ...) and `Signature` join them in the
//! query; with ACS3 the action, version, date and nonce are `x-acs-*` headers and the
//! `Authorization` header carries the signature.

use chrono::{DateTime, Utc};
use serde_json::Value;
use waihu_events::pb;
use waihu_provider_core::cloud::ApiError;
use waihu_telephony::hangup;

use crate::sign::{acs3_sign, percent_encode, rpc_signature, rpc_string_to_sign, Acs3Request};

/// The official endpoint (region cn-shanghai).
pub const DEFAULT_BASE_URL: &str = "https://ccc.cn-shanghai.aliyuncs.com";
/// The API version every request names.
pub const API_VERSION: &str = "2020-07-01";
/// The format of `Timestamp` (V1) and `x-acs-date` (ACS3): ISO 8601 UTC, no fraction.
pub const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// How requests are signed (`provider_config.signature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RPC signature V1, HMAC-SHA1 (`v1`, the default).
    V1,
    /// V3, ACS3-HMAC-SHA256 (`acs3`).
    Acs3,
}

impl Scheme {
    /// The scheme a `signature` setting names (`v1` or `acs3`, any case).
    pub fn parse(setting: &str) -> Result<Scheme, String> {
        match setting.trim().to_ascii_lowercase().as_str() {
            "" | "v1" => Ok(Scheme::V1),
            "acs3" | "v3" | "acs3-hmac-sha256" => Ok(Scheme::Acs3),
            other => Err(format!(
                "provider_config \"signature\" is {other:?}: use \"v1\" or \"acs3\""
            )),
        }
    }
}

/// What signs a request: the key pair and the moment and nonce that make it unique.
#[derive(Debug, Clone)]
pub struct Signer<'a> {
    pub scheme: Scheme,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
    pub now: DateTime<Utc>,
    /// New for every request (a UUID); Alibaba refuses a nonce it has seen.
    pub nonce: String,
}

/// A signed request, ready to send: `POST url` with `headers` and no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// `enc(k)=enc(v)` pairs joined with `&`, in the order given.
fn query_string(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs `action` with `params` for the endpoint `base_url` (scheme, host, optional port and
/// path; the path is what ACS3 signs, `/` when empty).
pub fn prepare(
    base_url: &str,
    signer: &Signer<'_>,
    action: &str,
    params: &[(String, String)],
) -> Result<Prepared, ApiError> {
    let url = reqwest::Url::parse(base_url)
        .map_err(|e| ApiError::Config(format!("provider_config \"base_url\" {base_url:?}: {e}")))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => {
            return Err(ApiError::Config(format!(
                "provider_config \"base_url\" {base_url:?} has no host"
            )))
        }
    };
    let path = match url.path() {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    let origin = format!("{}://{host}{path}", url.scheme());
    let time = signer.now.format(TIME_FORMAT).to_string();
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    match signer.scheme {
        Scheme::V1 => {
            let mut all = vec![
                pair("AccessKeyId", signer.access_key_id),
                pair("Action", action),
                pair("Format", "JSON"),
                pair("SignatureMethod", "HMAC-SHA1"),
                pair("SignatureNonce", &signer.nonce),
                pair("SignatureVersion", "1.0"),
                pair("Timestamp", &time),
                pair("Version", API_VERSION),
            ];
            all.extend(params.iter().cloned());
            let signature =
                rpc_signature(signer.access_key_secret, &rpc_string_to_sign("POST", &all));
            all.push(pair("Signature", &signature));
            Ok(Prepared {
                url: format!("{origin}?{}", query_string(&all)),
                headers: Vec::new(),
            })
        }
        Scheme::Acs3 => {
            let headers = vec![
                pair("x-acs-action", action),
                pair("x-acs-version", API_VERSION),
                pair("x-acs-date", &time),
                pair("x-acs-signature-nonce", &signer.nonce),
            ];
            let req = Acs3Request {
                method: "POST".into(),
                host,
                path,
                query: params.to_vec(),
                headers: headers.clone(),
                body: Vec::new(),
            };
            let signed = acs3_sign(signer.access_key_id, signer.access_key_secret, &req);
            let mut sent = headers;
            sent.push(pair("x-acs-content-sha256", &signed.content_sha256));
            sent.push(pair("authorization", &signed.authorization));
            let url = if params.is_empty() {
                origin
            } else {
                format!("{origin}?{}", query_string(params))
            };
            Ok(Prepared { url, headers: sent })
        }
    }
}

/// A reply that was not a success: the HTTP status, Alibaba's `Code` and `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: String,
    /// The reply names `Callee` as the parameter at fault (its message or `Params`).
    pub about_callee: bool,
}

impl Failure {
    /// A short description for logs and TestLine, bounded.
    pub fn describe(&self) -> String {
        let message: String = self.message.chars().take(200).collect();
        let mut s = format!("aliyun {} {}: {message}", self.status, self.code);
        if !self.request_id.is_empty() {
            s.push_str(&format!(" (RequestId {})", self.request_id));
        }
        s
    }

    /// Says the thing asked about does not exist (yet): `NotExists.*` / `NotFound*` for anything
    /// but the instance.
    pub fn is_not_found(&self) -> bool {
        let c = self.code.as_str();
        (c.starts_with("NotExists") || c.starts_with("NotFound") || c.ends_with(".NotFound"))
            && !c.contains("Instance")
            && !c.starts_with("InvalidAccessKeyId")
            && !c.starts_with("InvalidAction")
    }

    /// The failure as the driver takes it. `action` decides whether a bad parameter is the
    /// callee's (MakeCall: the call is refused for good) or the line's.
    pub fn to_api_error(&self, action: &str) -> ApiError {
        let c = self.code.as_str();
        let text = self.describe();
        let transient = c.starts_with("Throttling")
            || c == "ServiceUnavailable"
            || c.starts_with("ServiceUnavailable.")
            || c == "SignatureNonceUsed"
            || self.status == 429
            || self.status == 503;
        let line = c.starts_with("InvalidAccessKeyId")
            || c.starts_with("SignatureDoesNotMatch")
            || c.starts_with("IncompleteSignature")
            || c.starts_with("InvalidTimeStamp")
            || c.starts_with("InvalidSecurityToken")
            || c.starts_with("Forbidden")
            || c.starts_with("NoPermission")
            || c.starts_with("Permission")
            || c.starts_with("InvalidAction")
            || c.starts_with("InvalidVersion")
            || c.contains("InstanceId")
            || c.contains("Instance.")
            || self.status == 401
            || self.status == 403;
        let parameter = c.starts_with("Parameter")
            || c.starts_with("InvalidParameter")
            || c.starts_with("MissingParameter")
            || c.starts_with("InvalidCallee")
            || c.starts_with("InvalidPhoneNumber");
        if transient {
            ApiError::Transient(text)
        } else if line {
            ApiError::Config(text)
        } else if parameter && action == "MakeCall" && self.about_callee {
            ApiError::Refused {
                cause: refused_cause(c),
                message: text,
            }
        } else if self.status >= 500
            || c == "InternalError"
            || c.starts_with("InternalError.")
            || c == "UnknownError"
            || c == "ServiceTimeout"
        {
            // The request reached the service and failed inside: it may have taken effect.
            ApiError::Unknown(text)
        } else {
            ApiError::Config(text)
        }
    }
}

/// The cause of a callee CCC refuses: INVALID_NUMBER_FORMAT (28), raw `aliyun:error:<Code>`.
pub fn refused_cause(code: &str) -> pb::HangupCause {
    let code: String = code.chars().take(80).collect();
    hangup::cause(28, format!("aliyun:error:{code}"))
}

/// Reads a reply: its JSON on success (HTTP 2xx and `Code` "OK" or absent), else the failure.
/// A body that is not JSON is a failure with code `InvalidResponse` (2xx) or the HTTP status.
pub fn read_reply(status: u16, body: &str) -> Result<Value, Failure> {
    let parsed: Option<Value> = serde_json::from_str(body).ok().filter(Value::is_object);
    let Some(v) = parsed else {
        let text: String = body.chars().take(200).collect();
        return Err(Failure {
            status,
            code: if (200..300).contains(&status) {
                "InvalidResponse".into()
            } else {
                format!("HTTP{status}")
            },
            message: text,
            request_id: String::new(),
            about_callee: false,
        });
    };
    let code = v["Code"].as_str().unwrap_or_default().to_string();
    // CCC repeats the HTTP status in the body; a failure may come as HTTP 200 with it.
    let body_status = v["HttpStatusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| *s >= 100);
    let ok_code = code.is_empty() || code == "OK";
    let ok_status =
        (200..300).contains(&status) && body_status.is_none_or(|s| (200..300).contains(&s));
    if ok_code && ok_status {
        return Ok(v);
    }
    let message = v["Message"].as_str().unwrap_or_default().to_string();
    let params_name_callee = v["Params"].as_array().is_some_and(|ps| {
        ps.iter()
            .filter_map(Value::as_str)
            .any(|p| p.eq_ignore_ascii_case("Callee"))
    });
    let about_callee = params_name_callee
        || message.to_ascii_lowercase().contains("callee")
        || code.to_ascii_lowercase().contains("callee");
    Err(Failure {
        status: if (200..300).contains(&status) {
            body_status.unwrap_or(status)
        } else {
            status
        },
        code: if code.is_empty() {
            format!("HTTP{status}")
        } else {
            code
        },
        message,
        request_id: v["RequestId"].as_str().unwrap_or_default().to_string(),
        about_callee,
    })
}

/// A number as CCC dials it (`number_format`): `national` (the default) gives a +86 mobile as
/// its 11 digits and a +86 landline with its trunk 0 (`+862161234567` → `02161234567`), as
/// CCC's console and examples spell numbers; any other number, and every number with `e164`,
/// is sent as given.
pub fn ccc_number(e164: &str, national: bool) -> String {
    if !national {
        return e164.to_string();
    }
    waihu_telephony::phone::mainland_national(e164).unwrap_or_else(|| e164.to_string())
}

/// A JSON value CCC gives as a number or as a string of digits (CallDuration is an int in
/// GetCallDetailRecord and a string in ListCallDetailRecords), as a whole number; 0 when absent,
/// empty, negative or not a number.
pub fn whole(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
            .unwrap_or(0),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .map(|f| f as u64)
            })
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::{Digest, Sha256};
    use waihu_provider_core::vectors::pairs;

    fn signer(scheme: Scheme) -> Signer<'static> {
        Signer {
            scheme,
            access_key_id: "LTAI-test",
            access_key_secret: "sec+ret/&=",
            now: DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z")
                .expect("date")
                .with_timezone(&Utc),
            nonce: "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf".into(),
        }
    }

    /// The query of a URL, decoded.
    fn query_of(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        waihu_provider_core::cloud::url_form(q.as_bytes())
    }

    /// RFC 3986 encoding as Alibaba wants it, written out again here.
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn v1_requests_carry_the_common_parameters_and_a_signature_that_checks() {
        let params = pairs(&[
            ("InstanceId", "ccc-test"),
            ("Callee", "13900000001"),
            ("Tags", "waihu-call:0b9d… a+b"),
        ]);
        let p = prepare(
            "https://ccc.cn-shanghai.aliyuncs.com",
            &signer(Scheme::V1),
            "MakeCall",
            &params,
        )
        .expect("prepared");
        assert!(p.headers.is_empty());
        assert!(p.url.starts_with("https://ccc.cn-shanghai.aliyuncs.com/?"));
        // Spaces are %20, never +.
        assert!(!p.url.contains('+') && p.url.contains("%20"), "{}", p.url);
        let q = query_of(&p.url);
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("MakeCall"));
        assert_eq!(get("Version"), Some("2020-07-01"));
        assert_eq!(get("Format"), Some("JSON"));
        assert_eq!(get("SignatureMethod"), Some("HMAC-SHA1"));
        assert_eq!(get("SignatureVersion"), Some("1.0"));
        assert_eq!(get("Timestamp"), Some("2024-05-06T07:08:09Z"));
        assert_eq!(get("AccessKeyId"), Some("LTAI-test"));
        assert_eq!(get("Tags"), Some("waihu-call:0b9d… a+b"));
        // Recompute the signature with hmac/sha1 from the decoded query.
        let mut rest: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k != "Signature")
            .cloned()
            .collect();
        rest.sort();
        let canon = rest
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let sts = format!("POST&%2F&{}", enc(&canon));
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"sec+ret/&=&").expect("key");
        mac.update(sts.as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(get("Signature"), Some(want.as_str()));
    }

    #[test]
    fn acs3_requests_sign_the_headers_and_the_host_with_its_port() {
        let params = pairs(&[("InstanceId", "ccc-test"), ("ContactId", "job-1")]);
        let p = prepare(
            "http://127.0.0.1:8080",
            &signer(Scheme::Acs3),
            "GetCallDetailRecord",
            &params,
        )
        .expect("prepared");
        assert_eq!(
            p.url,
            "http://127.0.0.1:8080/?InstanceId=ccc-test&ContactId=job-1"
        );
        let h = |k: &str| {
            p.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("header {k}"))
        };
        assert_eq!(h("x-acs-action"), "GetCallDetailRecord");
        assert_eq!(h("x-acs-version"), "2020-07-01");
        assert_eq!(h("x-acs-date"), "2024-05-06T07:08:09Z");
        let empty = hex::encode(Sha256::digest(b""));
        assert_eq!(h("x-acs-content-sha256"), empty);
        let signed_headers =
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";
        let canonical = format!(
            "POST\n/\nContactId=job-1&InstanceId=ccc-test\nhost:127.0.0.1:8080\nx-acs-action:GetCallDetailRecord\nx-acs-content-sha256:{empty}\nx-acs-date:2024-05-06T07:08:09Z\nx-acs-signature-nonce:3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\nx-acs-version:2020-07-01\n\n{signed_headers}\n{empty}"
        );
        let sts = format!(
            "ACS3-HMAC-SHA256\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"sec+ret/&=").expect("key");
        mac.update(sts.as_bytes());
        assert_eq!(
            h("authorization"),
            format!(
                "ACS3-HMAC-SHA256 Credential=LTAI-test,SignedHeaders={signed_headers},Signature={}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
    }

    #[test]
    fn base_urls_are_checked() {
        let s = signer(Scheme::V1);
        assert!(matches!(
            prepare("not a url", &s, "MakeCall", &[]),
            Err(ApiError::Config(_))
        ));
        let p = prepare("https://proxy.example/ccc/", &s, "MakeCall", &[]).expect("path kept");
        assert!(
            p.url.starts_with("https://proxy.example/ccc/?"),
            "{}",
            p.url
        );
        assert_eq!(Scheme::parse("ACS3"), Ok(Scheme::Acs3));
        assert_eq!(Scheme::parse(""), Ok(Scheme::V1));
        assert!(Scheme::parse("hmac-md5").is_err());
    }

    #[test]
    fn replies_are_sorted_into_success_and_failures() {
        let ok = read_reply(200, r#"{"Code":"OK","HttpStatusCode":200,"Data":{"a":1}}"#);
        assert_eq!(ok.expect("ok")["Data"]["a"], 1);
        // HTTP 200 carrying a failure in its body.
        let f = read_reply(
            200,
            r#"{"Code":"Parameter.Invalid","HttpStatusCode":400,"Message":"The parameter Callee is invalid.","RequestId":"R1"}"#,
        )
        .expect_err("a failure");
        assert_eq!((f.status, f.code.as_str()), (400, "Parameter.Invalid"));
        assert!(f.about_callee);
        assert!(f.describe().contains("RequestId R1"));
        let f = read_reply(502, "<html>bad gateway</html>").expect_err("not json");
        assert_eq!(f.code, "HTTP502");
        let f = read_reply(200, "[1]").expect_err("not an object");
        assert_eq!(f.code, "InvalidResponse");
    }

    fn failure(status: u16, code: &str, message: &str) -> Failure {
        read_reply(
            status,
            &json!({"Code": code, "Message": message, "RequestId": "R"}).to_string(),
        )
        .expect_err("a failure")
    }

    #[test]
    fn failures_become_the_errors_the_driver_expects() {
        let e = |s, c, m| failure(s, c, m).to_api_error("MakeCall");
        for code in [
            "Forbidden.RAM",
            "InvalidAccessKeyId.NotFound",
            "SignatureDoesNotMatch",
            "NotExists.InstanceId",
            "InvalidTimeStamp.Expired",
        ] {
            assert!(matches!(e(400, code, "x"), ApiError::Config(_)), "{code}");
        }
        for code in [
            "Throttling",
            "Throttling.User",
            "ServiceUnavailable",
            "SignatureNonceUsed",
        ] {
            assert!(
                matches!(e(400, code, "x"), ApiError::Transient(_)),
                "{code}"
            );
        }
        assert!(matches!(e(503, "Whatever", "x"), ApiError::Transient(_)));
        assert!(matches!(e(500, "InternalError", "x"), ApiError::Unknown(_)));
        match e(400, "Parameter.Invalid", "The parameter Callee is invalid.") {
            ApiError::Refused { cause, .. } => {
                assert_eq!(cause.q850, 28);
                assert_eq!(cause.raw, "aliyun:error:Parameter.Invalid");
            }
            other => panic!("{other:?}"),
        }
        // The caller is the line's, not the callee's.
        assert!(matches!(
            e(400, "Parameter.Invalid", "The parameter Caller is invalid."),
            ApiError::Config(_)
        ));
        // A bad callee outside MakeCall is not a refusal.
        assert!(matches!(
            failure(400, "Parameter.Invalid", "Callee").to_api_error("ReleaseCall"),
            ApiError::Config(_)
        ));
        assert!(failure(404, "NotExists.ContactId", "x").is_not_found());
        assert!(!failure(404, "NotExists.InstanceId", "x").is_not_found());
    }

    #[test]
    fn numbers_are_spelt_as_ccc_dials_them() {
        assert_eq!(ccc_number("+8613912345678", true), "13912345678");
        assert_eq!(ccc_number("+862161234567", true), "02161234567");
        assert_eq!(ccc_number("+861012345678", true), "01012345678");
        assert_eq!(ccc_number("+14155550100", true), "+14155550100");
        assert_eq!(ccc_number("+8613912345678", false), "+8613912345678");
    }

    #[test]
    fn durations_come_as_numbers_or_strings() {
        assert_eq!(whole(&json!(12)), 12);
        assert_eq!(whole(&json!("12")), 12);
        assert_eq!(whole(&json!(" 7 ")), 7);
        assert_eq!(whole(&json!(3.9)), 3);
        assert_eq!(whole(&json!("-4")), 0);
        assert_eq!(whole(&json!("NaN")), 0);
        assert_eq!(whole(&json!(null)), 0);
        assert_eq!(whole(&json!([1])), 0);
    }
}
