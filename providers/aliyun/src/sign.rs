//! Alibaba Cloud request signing, both schemes (help.aliyun.com, "Signature mechanism" and
//! "V3 request structure and signature"):
//!
//! - RPC signature V1: `StringToSign = Method + "&" + enc("/") + "&" + enc(CanonicalizedQuery)`,
//!   `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
//! - V3, ACS3-HMAC-SHA256: a canonical request (method, path, query, signed headers, body hash)
//!   is hashed into `StringToSign = "ACS3-HMAC-SHA256\n" + hex(sha256(CanonicalRequest))`, signed
//!   with HMAC-SHA256 under the raw secret and sent as the `Authorization` header.
//!
//! Both use [`percent_encode`] and the same canonical query string. The `*_vector` functions take
//! one entry shaped like those of `shared/vectors/signatures.json` (what `waihu provider sign`
//! reads) and never panic: a missing or malformed field is an error naming it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::{digest, hmac};
use serde_json::Value;
use waihu_provider_core::vectors::{field, str_field};

/// The V3 algorithm name, first word of the `Authorization` header and of `StringToSign`.
pub const ACS3_ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// The header carrying the body's hash; V3 always signs it.
pub const CONTENT_SHA256_HEADER: &str = "x-acs-content-sha256";

pub use waihu_provider_core::Signed;

/// Bytes percentEncode leaves as they are: `A-Z a-z 0-9 - _ . ~`.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Alibaba's percentEncode: the UTF-8 bytes of `s`, `A-Z a-z 0-9 - _ . ~` kept, every other byte
/// as `%XY` with uppercase hex (so a space is `%20`, never `+`).
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, KEPT).to_string()
}

/// `enc(name)=enc(value)` for every pair, sorted by name and, for a repeated name, by value
/// (byte order of the unencoded strings), joined with `&`.
fn canonical_query<'a>(params: impl Iterator<Item = &'a (String, String)>) -> String {
    let mut sorted: Vec<&(String, String)> = params.collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The HMAC of `msg` under `key`.
fn hmac_tag(algorithm: hmac::Algorithm, key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(algorithm, key), msg)
}

/// Lowercase hex SHA-256 of `data`.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

// ---------------------------------------------------------------------------------------------
// RPC signature V1
// ---------------------------------------------------------------------------------------------

/// The V1 `StringToSign` of a request: `method&%2F&enc(query)`, the query being every parameter
/// but `Signature` (repeated names allowed) in canonical order.
pub fn rpc_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let query = canonical_query(params.iter().filter(|(k, _)| k != "Signature"));
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&query)
    )
}

/// The V1 `Signature`: Base64(HMAC-SHA1(key = secret + "&", string_to_sign)). Percent-encode it
/// like any other value before putting it in a URL.
pub fn rpc_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    let key = format!("{access_key_secret}&");
    BASE64.encode(hmac_tag(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        key.as_bytes(),
        string_to_sign.as_bytes(),
    ))
}

/// Signs an `aliyun_rpc_v1`-shaped entry: `method`, `access_key_secret` and `params` (an object;
/// a repeated parameter as an array of its values).
pub fn sign_rpc_vector(entry: &Value) -> Result<Signed, String> {
    let method = str_field(entry, "method")?;
    let secret = str_field(entry, "access_key_secret")?;
    let params = pairs_field(entry, "params")?;
    let string_to_sign = rpc_string_to_sign(method, &params);
    Ok(Signed {
        signature: rpc_signature(secret, &string_to_sign),
        string_to_sign,
        extra: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// V3: ACS3-HMAC-SHA256
// ---------------------------------------------------------------------------------------------

/// A request to sign with ACS3-HMAC-SHA256.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acs3Request {
    /// `GET`, `POST`, ... as sent.
    pub method: String,
    /// The endpoint, e.g. `ccc.cn-shanghai.aliyuncs.com`; signed as the `host` header.
    pub host: String,
    /// The URL path (`/` for RPC-style APIs; empty means `/`).
    pub path: String,
    /// Query parameters; a name may repeat.
    pub query: Vec<(String, String)>,
    /// The headers to sign besides `host` and `x-acs-content-sha256` (which [`acs3_sign`] adds,
    /// replacing any given here): `x-acs-action`, `x-acs-version`, `x-acs-date`,
    /// `x-acs-signature-nonce`, `x-acs-security-token` with STS, `content-type` with a body.
    /// `Authorization` is never signed and is ignored if given.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What [`acs3_sign`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs3Signed {
    /// The `Authorization` header value:
    /// `ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<names>,Signature=<hex>`.
    pub authorization: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    /// Lowercase hex SHA-256 of the body: send it as the `x-acs-content-sha256` header.
    pub content_sha256: String,
    /// The hex signature alone, as at the end of `authorization`.
    pub signature: String,
}

/// Signs `req` with ACS3-HMAC-SHA256 (key: the raw secret, no `&`).
pub fn acs3_sign(access_key_id: &str, access_key_secret: &str, req: &Acs3Request) -> Acs3Signed {
    let content_sha256 = sha256_hex(&req.body);
    let headers = acs3_headers(req, &content_sha256);
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = [
        req.method.as_str(),
        &canonical_uri(&req.path),
        &canonical_query(req.query.iter()),
        &canonical_headers,
        &signed_headers,
        &content_sha256,
    ]
    .join("\n");
    let string_to_sign = format!(
        "{ACS3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let signature = hex::encode(hmac_tag(
        hmac::HMAC_SHA256,
        access_key_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    Acs3Signed {
        authorization: format!(
            "{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
        ),
        canonical_request,
        string_to_sign,
        content_sha256,
        signature,
    }
}

/// The headers ACS3 signs, sorted by name: the request's own (names lowercased, values trimmed,
/// `authorization` left out) with `host` and `x-acs-content-sha256` set from the request. A
/// repeated name keeps its values, in the order given, joined with `,`.
fn acs3_headers(req: &Acs3Request, content_sha256: &str) -> Vec<(String, String)> {
    let computed = [
        ("host", req.host.trim()),
        (CONTENT_SHA256_HEADER, content_sha256),
    ];
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(k, _)| k != "authorization" && !computed.iter().any(|(c, _)| c == k))
        .chain(computed.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    // A stable sort: a repeated name keeps its values in the order given.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    merged
}

/// The canonical URI: each path segment percent-encoded, the `/`s kept; `/` for an empty path.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    path.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Signs an `aliyun_acs3_hmac_sha256`-shaped entry: `method`, `host`, `path`, `query` and
/// `headers` (objects; a repeated name as an array of its values), `body` (a string, signed as
/// its UTF-8 bytes), `access_key_id`, `access_key_secret`.
pub fn sign_acs3_vector(entry: &Value) -> Result<Signed, String> {
    let req = Acs3Request {
        method: str_field(entry, "method")?.to_string(),
        host: str_field(entry, "host")?.to_string(),
        path: str_field(entry, "path")?.to_string(),
        query: pairs_field(entry, "query")?,
        headers: pairs_field(entry, "headers")?,
        body: str_field(entry, "body")?.as_bytes().to_vec(),
    };
    let signed = acs3_sign(
        str_field(entry, "access_key_id")?,
        str_field(entry, "access_key_secret")?,
        &req,
    );
    Ok(Signed {
        signature: signed.authorization,
        extra: vec![
            (
                "canonical_request_sha256".to_string(),
                sha256_hex(signed.canonical_request.as_bytes()),
            ),
            ("payload_sha256".to_string(), signed.content_sha256),
            ("canonical_request".to_string(), signed.canonical_request),
            ("signature".to_string(), signed.signature),
        ],
        string_to_sign: signed.string_to_sign,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading vector entries
// ---------------------------------------------------------------------------------------------

/// Field `name` of a vector entry as name/value pairs: an object whose values are strings,
/// numbers or booleans, or arrays of them for a name that repeats.
fn pairs_field(entry: &Value, name: &str) -> Result<Vec<(String, String)>, String> {
    let object = field(entry, name)?
        .as_object()
        .ok_or_else(|| format!("field `{name}` is not a JSON object"))?;
    let mut pairs = Vec::with_capacity(object.len());
    for (key, value) in object {
        let values = match value {
            Value::Array(values) => values.iter().collect(),
            value => vec![value],
        };
        for value in values {
            let value = scalar(value).ok_or_else(|| {
                format!("field `{name}.{key}` is not a string, number, boolean or an array of them")
            })?;
            pairs.push((key.clone(), value));
        }
    }
    Ok(pairs)
}

/// A JSON string, number or boolean as the text a request carries.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::{Digest, Sha256};
    use waihu_provider_core::vectors::{self, expected, extra, pairs, Xorshift};

    /// The official RPC entry's parameters, typed.
    fn rpc_params(entry: &Value) -> Vec<(String, String)> {
        entry["params"]
            .as_object()
            .expect("params is an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
            .collect()
    }

    /// The official ACS3 entry, typed.
    fn acs3_request(entry: &Value) -> Acs3Request {
        let object_pairs = |name: &str| -> Vec<(String, String)> {
            entry[name]
                .as_object()
                .expect("an object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
                .collect()
        };
        Acs3Request {
            method: expected(entry, "method").to_string(),
            host: expected(entry, "host").to_string(),
            path: expected(entry, "path").to_string(),
            query: object_pairs("query"),
            headers: object_pairs("headers"),
            body: expected(entry, "body").as_bytes().to_vec(),
        }
    }

    #[test]
    fn rpc_official_vector_typed() {
        let entry = vectors::signature_entry("aliyun_rpc_v1");
        let sts = rpc_string_to_sign(expected(&entry, "method"), &rpc_params(&entry));
        assert_eq!(sts, expected(&entry, "string_to_sign"));
        assert_eq!(
            rpc_signature(expected(&entry, "access_key_secret"), &sts),
            expected(&entry, "signature")
        );
    }

    #[test]
    fn rpc_official_vector_through_sign_vector() {
        let entry = vectors::signature_entry("aliyun_rpc_v1");
        let signed = sign_rpc_vector(&entry).expect("the vector signs");
        assert_eq!(signed.string_to_sign, expected(&entry, "string_to_sign"));
        assert_eq!(signed.signature, expected(&entry, "signature"));
    }

    #[test]
    fn rpc_post_gives_the_verified_value() {
        let mut entry = vectors::signature_entry("aliyun_rpc_v1");
        entry["method"] = json!("POST");
        let signed = sign_rpc_vector(&entry).expect("the vector signs");
        assert!(signed
            .string_to_sign
            .starts_with("POST&%2F&AccessKeyId%3Dtestid"));
        assert_eq!(signed.signature, "MxbnVAM4w6sft9xjVpe/GCKueuk=");
    }

    #[test]
    fn rpc_ignores_a_signature_parameter() {
        let entry = vectors::signature_entry("aliyun_rpc_v1");
        let mut params = rpc_params(&entry);
        params.push(("Signature".into(), "whatever".into()));
        assert_eq!(
            rpc_string_to_sign("GET", &params),
            expected(&entry, "string_to_sign")
        );
    }

    #[test]
    fn rpc_sorts_repeated_names_by_value() {
        let params = pairs(&[("Tag", "b"), ("B", "2"), ("Tag", "a"), ("A", "1 2")]);
        assert_eq!(
            rpc_string_to_sign("GET", &params),
            "GET&%2F&A%3D1%25202%26B%3D2%26Tag%3Da%26Tag%3Db"
        );
        let entry = json!({
            "method": "GET", "access_key_secret": "s",
            "params": {"Tag": ["b", "a"], "B": 2, "A": "1 2"}
        });
        let signed = sign_rpc_vector(&entry).expect("signs");
        assert_eq!(signed.string_to_sign, rpc_string_to_sign("GET", &params));
    }

    #[test]
    fn percent_encode_follows_the_doc() {
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_encode("*+/:=&%"), "%2A%2B%2F%3A%3D%26%25");
        assert_eq!(percent_encode("未命名"), "%E6%9C%AA%E5%91%BD%E5%90%8D");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn acs3_official_vector_typed() {
        let entry = vectors::signature_entry("aliyun_acs3_hmac_sha256");
        let signed = acs3_sign(
            expected(&entry, "access_key_id"),
            expected(&entry, "access_key_secret"),
            &acs3_request(&entry),
        );
        let cr_hash = expected(&entry, "canonical_request_sha256");
        assert_eq!(sha256_hex(signed.canonical_request.as_bytes()), cr_hash);
        assert_eq!(
            signed.string_to_sign,
            format!("ACS3-HMAC-SHA256\n{cr_hash}")
        );
        assert_eq!(
            signed.content_sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed.authorization, expected(&entry, "authorization"));
    }

    #[test]
    fn acs3_official_vector_through_sign_vector() {
        let entry = vectors::signature_entry("aliyun_acs3_hmac_sha256");
        let signed = sign_acs3_vector(&entry).expect("the vector signs");
        let cr_hash = expected(&entry, "canonical_request_sha256");
        assert_eq!(extra(&signed, "canonical_request_sha256"), cr_hash);
        assert_eq!(
            signed.string_to_sign,
            format!("ACS3-HMAC-SHA256\n{cr_hash}")
        );
        assert_eq!(
            extra(&signed, "payload_sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed.signature, expected(&entry, "authorization"));
        assert!(signed
            .signature
            .ends_with(&format!(",Signature={}", extra(&signed, "signature"))));
    }

    #[test]
    fn acs3_computes_host_and_content_hash_itself() {
        let entry = vectors::signature_entry("aliyun_acs3_hmac_sha256");
        let clean = acs3_request(&entry);
        let mut noisy = clean.clone();
        noisy.headers = noisy
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), format!(" {v} ")))
            .collect();
        noisy.headers.extend(pairs(&[
            ("Host", "wrong.example.com"),
            ("X-Acs-Content-Sha256", "0000"),
            ("Authorization", "stale"),
        ]));
        assert_eq!(
            acs3_sign("YourAccessKeyId", "YourAccessKeySecret", &noisy),
            acs3_sign("YourAccessKeyId", "YourAccessKeySecret", &clean)
        );
    }

    #[test]
    fn acs3_canonical_uri_and_repeated_headers() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a b/c~"), "/a%20b/c~");
        let req = Acs3Request {
            method: "GET".into(),
            host: "h".into(),
            headers: pairs(&[("x-acs-b", "2"), ("x-acs-a", "1"), ("x-acs-b", "1")]),
            ..Default::default()
        };
        let headers = acs3_headers(&req, "c");
        assert_eq!(
            headers,
            pairs(&[
                ("host", "h"),
                ("x-acs-a", "1"),
                ("x-acs-b", "2,1"),
                ("x-acs-content-sha256", "c")
            ])
        );
    }

    #[test]
    fn vector_errors_name_the_field() {
        let rpc = vectors::signature_entry("aliyun_rpc_v1");
        for name in ["method", "access_key_secret", "params"] {
            let mut entry = rpc.clone();
            entry.as_object_mut().expect("object").remove(name);
            let err = sign_rpc_vector(&entry).expect_err("a missing field fails");
            assert!(err.contains(name), "{err}");
        }
        let acs3 = vectors::signature_entry("aliyun_acs3_hmac_sha256");
        for name in [
            "method",
            "host",
            "path",
            "query",
            "headers",
            "body",
            "access_key_id",
            "access_key_secret",
        ] {
            let mut entry = acs3.clone();
            entry.as_object_mut().expect("object").remove(name);
            let err = sign_acs3_vector(&entry).expect_err("a missing field fails");
            assert!(err.contains(name), "{err}");
        }
        let mut bad = rpc.clone();
        bad["params"]["Action"] = json!({"nested": true});
        let err = sign_rpc_vector(&bad).expect_err("a nested value fails");
        assert!(err.contains("params.Action"), "{err}");
        bad = rpc.clone();
        bad["method"] = json!(1);
        let err = sign_rpc_vector(&bad).expect_err("a number method fails");
        assert!(err.contains("method"), "{err}");
        assert!(sign_rpc_vector(&json!([1, 2])).is_err());
        assert!(sign_acs3_vector(&Value::Null).is_err());
    }

    /// Text of `len` characters, ASCII mostly, with separators and multi-byte characters.
    fn text(g: &mut Xorshift, len: usize) -> String {
        const POOL: &[char] = &[
            'a', 'Z', '0', '9', '-', '_', '.', '~', ' ', '&', '=', '%', '+', '/', '*', '未', '命',
            '名', '😀',
        ];
        (0..len).map(|_| POOL[g.below(POOL.len())]).collect()
    }

    #[test]
    fn ring_agrees_with_independent_hmac_and_sha2() {
        let mut g = Xorshift(0x9E37_79B9_7F4A_7C15);
        for i in 0..48 {
            // Secrets from empty to past the 64-byte HMAC block.
            let secret = text(&mut g, i * 3);
            let params: Vec<(String, String)> = (0..g.below(6))
                .map(|_| {
                    let (name_len, value_len) = (1 + g.below(8), g.below(20));
                    (text(&mut g, name_len), text(&mut g, value_len))
                })
                .collect();

            let sts = rpc_string_to_sign("GET", &params);
            let mut sha1_mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes())
                .expect("any key length");
            sha1_mac.update(sts.as_bytes());
            assert_eq!(
                rpc_signature(&secret, &sts),
                BASE64.encode(sha1_mac.finalize().into_bytes())
            );

            let req = Acs3Request {
                method: "POST".into(),
                host: "ccc.cn-shanghai.aliyuncs.com".into(),
                path: "/".into(),
                query: params,
                headers: pairs(&[("x-acs-action", "MakeCall")]),
                body: text(&mut g, i * 5).into_bytes(),
            };
            let signed = acs3_sign("ak", &secret, &req);
            assert_eq!(
                signed.content_sha256,
                hex::encode(Sha256::digest(&req.body))
            );
            assert_eq!(
                signed.string_to_sign,
                format!(
                    "ACS3-HMAC-SHA256\n{}",
                    hex::encode(Sha256::digest(signed.canonical_request.as_bytes()))
                )
            );
            let mut sha256_mac =
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
            sha256_mac.update(signed.string_to_sign.as_bytes());
            let want = hex::encode(sha256_mac.finalize().into_bytes());
            assert!(
                signed
                    .authorization
                    .ends_with(&format!(",Signature={want}")),
                "{}",
                signed.authorization
            );
        }
    }
}
