//! Alibaba Cloud's API gateway in front of the fake CCC: both request signatures checked with
//! an encoder of its own and the `hmac`/`sha1`/`sha2` crates (not the code under test), and the
//! gateway's refusals as Alibaba words them.

use std::collections::HashMap;

use axum::{
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use base64::Engine;
use hmac::Mac;
use serde_json::json;
use sha2::Digest;

use super::{Scheme, VERSION};

/// Alibaba's percentEncode, written out again: UTF-8 bytes, `A-Z a-z 0-9 - _ . ~` kept, every
/// other byte `%XY` in upper case.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query both signatures use: pairs sorted by name then value, encoded.
fn canonical(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RPC V1: Base64(HMAC-SHA1(secret + "&", METHOD&%2F&pct(canonical))) over every parameter
/// but `Signature`; also the string that was signed.
pub fn v1_signature(secret: &str, method: &str, params: &[(String, String)]) -> (String, String) {
    let rest: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .cloned()
        .collect();
    let sts = format!("{method}&{}&{}", pct("/"), pct(&canonical(&rest)));
    let mut mac =
        hmac::Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("key");
    mac.update(sts.as_bytes());
    (
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
        sts,
    )
}

/// ACS3-HMAC-SHA256: hex HMAC-SHA256 of `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical
/// request (method, path, query, the signed headers as sent, their names, the body's hash).
pub fn acs3_signature(
    secret: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    signed: &[(String, String)],
    body: &[u8],
) -> String {
    let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
    let headers: String = signed
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let cr = format!(
        "{method}\n{path}\n{}\n{headers}\n{}\n{}",
        canonical(query),
        names.join(";"),
        hex::encode(sha2::Sha256::digest(body))
    );
    let sts = format!(
        "ACS3-HMAC-SHA256\n{}",
        hex::encode(sha2::Sha256::digest(cr.as_bytes()))
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(sts.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// A refusal by the gateway, as its JSON error.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json;charset=utf-8")],
        json!({
            "RequestId": request_id(), "HostId": "ccc.cn-shanghai.aliyuncs.com",
            "Code": code, "Message": message,
            "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}")
        })
        .to_string(),
    )
        .into_response()
}

/// Why the gateway refused a request.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Refused for its key or signature (not its version or format).
    pub auth: bool,
}

impl Refusal {
    fn auth(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
            auth: true,
        }
    }

    fn other(code: &'static str, message: &str) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            auth: false,
        }
    }

    pub fn response(&self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

fn incomplete() -> Refusal {
    Refusal::auth(
        StatusCode::BAD_REQUEST,
        "IncompleteSignature",
        "The request signature does not conform to Aliyun standards.",
    )
}

fn unknown_key() -> Refusal {
    Refusal::auth(
        StatusCode::NOT_FOUND,
        "InvalidAccessKeyId.NotFound",
        "Specified access key is not found.",
    )
}

fn expired() -> Refusal {
    Refusal::auth(
        StatusCode::BAD_REQUEST,
        "InvalidTimeStamp.Expired",
        "Specified time stamp or date value is expired.",
    )
}

/// A request whose key and signature checked.
#[derive(Debug)]
pub struct Checked {
    pub action: String,
    pub nonce: String,
    pub scheme: Scheme,
    /// The query's parameters.
    pub params: Vec<(String, String)>,
}

/// The key pair the gateway knows.
pub struct Keys<'a> {
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
}

/// A request as the gateway sees it.
pub struct Request<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn query(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// Within 15 minutes of now (`yyyy-MM-ddTHH:mm:ssZ`).
fn fresh(t: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| (chrono::Utc::now().naive_utc() - t).num_minutes().abs() <= 15)
        .unwrap_or(false)
}

/// Checks a request signed either way (ACS3 when it has an ACS3 `Authorization` header).
pub fn check(keys: &Keys<'_>, req: &Request<'_>) -> Result<Checked, Refusal> {
    match req.header("authorization") {
        Some(auth) if auth.starts_with("ACS3-HMAC-SHA256 ") => check_acs3(keys, req, &auth),
        _ => check_v1(keys, req),
    }
}

fn check_acs3(keys: &Keys<'_>, req: &Request<'_>, auth: &str) -> Result<Checked, Refusal> {
    let fields: HashMap<&str, &str> = auth["ACS3-HMAC-SHA256 ".len()..]
        .split(',')
        .filter_map(|f| f.split_once('='))
        .collect();
    let (Some(ak), Some(names), Some(given)) = (
        fields.get("Credential"),
        fields.get("SignedHeaders"),
        fields.get("Signature"),
    ) else {
        return Err(incomplete());
    };
    if *ak != keys.access_key_id {
        return Err(unknown_key());
    }
    // Every common header but Authorization is signed, the names in order.
    let names: Vec<&str> = names.split(';').collect();
    let required = [
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    ];
    let every_acs_signed = req
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-acs-"))
        .all(|k| names.contains(&k.as_str()));
    let mut sorted = names.clone();
    sorted.sort();
    if !required.iter().all(|r| names.contains(r)) || !every_acs_signed || sorted != names {
        return Err(incomplete());
    }
    let signed: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            let values: Vec<&str> = req
                .headers
                .get_all(*n)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .collect();
            (n.to_string(), values.join(","))
        })
        .collect();
    let query = req.query();
    let want = acs3_signature(
        keys.access_key_secret,
        req.method.as_str(),
        req.uri.path(),
        &query,
        &signed,
        req.body,
    );
    let hashed = hex::encode(sha2::Sha256::digest(req.body));
    if req.header("x-acs-content-sha256").as_deref() != Some(hashed.as_str()) || *given != want {
        return Err(Refusal::auth(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            "The request signature does not conform to Aliyun standards.",
        ));
    }
    if req.header("x-acs-version").as_deref() != Some(VERSION) {
        return Err(Refusal::other(
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    if !fresh(&req.header("x-acs-date").unwrap_or_default()) {
        return Err(expired());
    }
    Ok(Checked {
        action: req.header("x-acs-action").unwrap_or_default(),
        nonce: req.header("x-acs-signature-nonce").unwrap_or_default(),
        scheme: Scheme::Acs3,
        params: query,
    })
}

fn check_v1(keys: &Keys<'_>, req: &Request<'_>) -> Result<Checked, Refusal> {
    let query = req.query();
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // V1 signs the query and a form body alike.
    let mut all = query.clone();
    if !req.body.is_empty() {
        all.extend(form_urlencoded::parse(req.body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    if get("Signature").is_empty() || get("SignatureNonce").is_empty() {
        return Err(incomplete());
    }
    if get("AccessKeyId") != keys.access_key_id {
        return Err(unknown_key());
    }
    if get("SignatureMethod") != "HMAC-SHA1" || get("SignatureVersion") != "1.0" {
        return Err(Refusal::auth(
            StatusCode::BAD_REQUEST,
            "InvalidSignatureMethod",
            "Specified signature method is not supported.",
        ));
    }
    let (want, sts) = v1_signature(keys.access_key_secret, req.method.as_str(), &all);
    if get("Signature") != want {
        return Err(Refusal::auth(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{sts}"
            ),
        ));
    }
    if get("Version") != VERSION {
        return Err(Refusal::other(
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    if !get("Format").eq_ignore_ascii_case("json") {
        return Err(Refusal::other(
            "InvalidParameter.Format",
            "Specified parameter Format is not valid.",
        ));
    }
    if !fresh(&get("Timestamp")) {
        return Err(expired());
    }
    Ok(Checked {
        action: get("Action"),
        nonce: get("SignatureNonce"),
        scheme: Scheme::V1,
        params: query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_independent_signatures_match_the_official_vectors() {
        // help.aliyun.com "Signature mechanism" (RPC V1), GET.
        let params = pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]);
        assert_eq!(
            v1_signature("testsecret", "GET", &params).0,
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        // help.aliyun.com "V3 request structure and signature" (ACS3).
        let query = pairs(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let signed = pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            (
                "x-acs-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2014-05-26"),
        ]);
        assert_eq!(
            acs3_signature("YourAccessKeySecret", "POST", "/", &query, &signed, b""),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn tampered_requests_are_refused() {
        let keys = Keys {
            access_key_id: "ak",
            access_key_secret: "sk",
        };
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut params = pairs(&[
            ("AccessKeyId", "ak"),
            ("Action", "MakeCall"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "n-1"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", &now),
            ("Version", VERSION),
            ("Callee", "13900000001"),
        ]);
        let (sig, _) = v1_signature("sk", "POST", &params);
        params.push(("Signature".into(), sig));
        let uri = |p: &[(String, String)]| -> Uri {
            format!(
                "/?{}",
                p.iter()
                    .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            )
            .parse()
            .expect("uri")
        };
        let headers = HeaderMap::new();
        let post = Method::POST;
        let run = |u: &Uri| {
            check(
                &keys,
                &Request {
                    method: &post,
                    uri: u,
                    headers: &headers,
                    body: b"",
                },
            )
        };
        let ok = run(&uri(&params)).expect("signed right");
        assert_eq!((ok.action.as_str(), ok.scheme), ("MakeCall", Scheme::V1));
        let mut changed = params.clone();
        changed[8].1 = "13900000002".into();
        assert_eq!(
            run(&uri(&changed)).expect_err("tampered").code,
            "SignatureDoesNotMatch"
        );
        let mut other = params.clone();
        other[0].1 = "ak2".into();
        assert_eq!(
            run(&uri(&other)).expect_err("other key").code,
            "InvalidAccessKeyId.NotFound"
        );
        let unsigned: Vec<_> = params[..9].to_vec();
        assert_eq!(
            run(&uri(&unsigned)).expect_err("unsigned").code,
            "IncompleteSignature"
        );
    }
}
