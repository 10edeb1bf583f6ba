//! Tencent Cloud API signature v3, TC3-HMAC-SHA256 (TencentCloud API docs, "Signature v3"), for
//! JSON POST requests signing `content-type` and `host`:
//!
//! ```text
//! CanonicalRequest = POST\n/\n\ncontent-type:<ct>\nhost:<host>\n\ncontent-type;host\nhex(sha256(payload))
//! StringToSign     = TC3-HMAC-SHA256\n<timestamp>\n<date>/<service>/tc3_request\nhex(sha256(CanonicalRequest))
//! kDate = HMAC("TC3" + SecretKey, date), kService = HMAC(kDate, service),
//! kSigning = HMAC(kService, "tc3_request"), Signature = hex(HMAC(kSigning, StringToSign))
//! Authorization    = TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/tc3_request, SignedHeaders=content-type;host, Signature=<hex>
//! ```
//!
//! `date` is the UTC date of the timestamp. [`sign_vector`] takes one entry shaped like
//! `tencent_tc3_hmac_sha256` in `shared/vectors/signatures.json` (what `waihu provider sign`
//! reads) and never panics: a missing or malformed field is an error naming it.

use chrono::{DateTime, Utc};
use ring::{digest, hmac};
use serde_json::Value;
use waihu_provider_core::vectors::{field, str_field};

/// The algorithm name, first word of the `Authorization` header and of `StringToSign`.
pub const TC3_ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The headers signed, as listed in `SignedHeaders`.
pub const SIGNED_HEADERS: &str = "content-type;host";

pub use waihu_provider_core::Signed;

/// What [`tc3_sign`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tc3Signed {
    /// The `Authorization` header value.
    pub authorization: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    /// The UTC date of the timestamp, `YYYY-MM-DD`, as in the credential scope.
    pub date: String,
    /// The hex signature alone, as at the end of `authorization`.
    pub signature: String,
}

/// The UTC date of a Unix timestamp, `YYYY-MM-DD`; `None` outside what chrono can date (about
/// ±262,000 years).
pub fn utc_date(timestamp: i64) -> Option<String> {
    DateTime::from_timestamp(timestamp, 0).map(|t| t.format("%Y-%m-%d").to_string())
}

/// Signs a JSON POST with TC3-HMAC-SHA256, signing `content-type` and `host`. As the signature
/// doc asks, header values are signed trimmed and lowercased (send the same `Content-Type`).
/// A timestamp chrono cannot date takes the nearest date it can (Tencent refuses any timestamp
/// not within minutes of now anyway).
pub fn tc3_sign(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    timestamp: i64,
    content_type: &str,
    payload: &[u8],
) -> Tc3Signed {
    let date = utc_date(timestamp).unwrap_or_else(|| {
        let nearest = if timestamp < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        };
        nearest.format("%Y-%m-%d").to_string()
    });
    let canonical_request = canonical_request(host, content_type, payload);
    let scope = format!("{date}/{service}/tc3_request");
    let string_to_sign = format!(
        "{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let signature = hex::encode(hmac_sha256(
        signing_key(secret_key, &date, service).as_ref(),
        string_to_sign.as_bytes(),
    ));
    Tc3Signed {
        authorization: format!(
            "{TC3_ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
        ),
        canonical_request,
        string_to_sign,
        date,
        signature,
    }
}

/// The canonical request of a POST to `/` (no query string) signing `content-type` and `host`.
fn canonical_request(host: &str, content_type: &str, payload: &[u8]) -> String {
    let header = |value: &str| value.trim().to_lowercase();
    format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\n{SIGNED_HEADERS}\n{}",
        header(content_type),
        header(host),
        sha256_hex(payload)
    )
}

/// kSigning = HMAC(HMAC(HMAC("TC3" + secret_key, date), service), "tc3_request").
fn signing_key(secret_key: &str, date: &str, service: &str) -> hmac::Tag {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(k_date.as_ref(), service.as_bytes());
    hmac_sha256(k_service.as_ref(), b"tc3_request")
}

/// HMAC-SHA256 of `msg` under `key`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
}

/// Lowercase hex SHA-256 of `data`.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// Signs a `tencent_tc3_hmac_sha256`-shaped entry: `method` (`POST`), `host`, `service`,
/// `timestamp` (integer seconds), `content_type`, `payload` (a string, signed as its UTF-8 bytes),
/// `secret_id`, `secret_key`. `action`, `version`, `region` and `date` are not inputs (they are
/// sent as `X-TC-*` headers, unsigned, or derived) and are ignored.
pub fn sign_vector(entry: &Value) -> Result<Signed, String> {
    let method = str_field(entry, "method")?;
    if method != "POST" {
        return Err(format!(
            "field `method` is {method:?}: only POST is signed here"
        ));
    }
    let timestamp = field(entry, "timestamp")?
        .as_i64()
        .ok_or("field `timestamp` is not an integer")?;
    if utc_date(timestamp).is_none() {
        return Err(format!("field `timestamp` {timestamp} is out of range"));
    }
    let payload = str_field(entry, "payload")?.as_bytes();
    let signed = tc3_sign(
        str_field(entry, "secret_id")?,
        str_field(entry, "secret_key")?,
        str_field(entry, "service")?,
        str_field(entry, "host")?,
        timestamp,
        str_field(entry, "content_type")?,
        payload,
    );
    Ok(Signed {
        extra: vec![
            ("date".to_string(), signed.date),
            ("payload_sha256".to_string(), sha256_hex(payload)),
            (
                "canonical_request_sha256".to_string(),
                sha256_hex(signed.canonical_request.as_bytes()),
            ),
            ("canonical_request".to_string(), signed.canonical_request),
            ("signature".to_string(), signed.signature),
        ],
        signature: signed.authorization,
        string_to_sign: signed.string_to_sign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::{Digest, Sha256};
    use waihu_provider_core::vectors::{self, expected, extra};

    /// Signs the official entry with the typed function, with `secret_key`.
    fn typed(entry: &Value, secret_key: &str) -> Tc3Signed {
        tc3_sign(
            expected(entry, "secret_id"),
            secret_key,
            expected(entry, "service"),
            expected(entry, "host"),
            entry["timestamp"].as_i64().expect("integer timestamp"),
            expected(entry, "content_type"),
            expected(entry, "payload").as_bytes(),
        )
    }

    /// The last line of a string to sign: the canonical request's hash.
    fn last_line(text: &str) -> &str {
        text.rsplit('\n').next().expect("a line")
    }

    #[test]
    fn official_vector_typed() {
        let entry = vectors::signature_entry("tencent_tc3_hmac_sha256");
        let signed = typed(&entry, expected(&entry, "secret_key"));
        assert_eq!(signed.date, expected(&entry, "date"));
        assert_eq!(
            last_line(&signed.canonical_request),
            expected(&entry, "payload_sha256")
        );
        assert_eq!(
            last_line(&signed.string_to_sign),
            expected(&entry, "canonical_request_sha256")
        );
        assert_eq!(
            signed.string_to_sign,
            format!(
                "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n{}",
                expected(&entry, "canonical_request_sha256")
            )
        );
        assert_eq!(signed.authorization, expected(&entry, "authorization"));
    }

    #[test]
    fn official_vector_through_sign_vector() {
        let entry = vectors::signature_entry("tencent_tc3_hmac_sha256");
        let signed = sign_vector(&entry).expect("the vector signs");
        for name in ["date", "payload_sha256", "canonical_request_sha256"] {
            assert_eq!(extra(&signed, name), expected(&entry, name), "{name}");
        }
        assert_eq!(
            last_line(&signed.string_to_sign),
            expected(&entry, "canonical_request_sha256")
        );
        assert_eq!(signed.signature, expected(&entry, "authorization"));
        assert!(expected(&entry, "authorization")
            .ends_with(&format!("Signature={}", extra(&signed, "signature"))));
    }

    #[test]
    fn older_doc_secret_gives_its_verified_signature() {
        let entry = vectors::signature_entry("tencent_tc3_hmac_sha256");
        let signed = typed(&entry, "Gu5t9xGARNpq86cd98joQYCN3*******");
        assert!(
            signed.authorization.ends_with(
                ", Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
            ),
            "{}",
            signed.authorization
        );
    }

    #[test]
    fn header_values_are_signed_trimmed_and_lowercased() {
        let entry = vectors::signature_entry("tencent_tc3_hmac_sha256");
        let plain = typed(&entry, "k");
        let noisy = tc3_sign(
            expected(&entry, "secret_id"),
            "k",
            "cvm",
            " CVM.TencentCloudAPI.com ",
            1551113065,
            "Application/JSON; charset=UTF-8",
            expected(&entry, "payload").as_bytes(),
        );
        assert_eq!(noisy, plain);
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(utc_date(-1).as_deref(), Some("1969-12-31"));
        assert_eq!(utc_date(86_399).as_deref(), Some("1970-01-01"));
        assert_eq!(utc_date(86_400).as_deref(), Some("1970-01-02"));
        // 2019-02-25 23:30 UTC is already the 26th in Beijing; the date stays the UTC one.
        assert_eq!(utc_date(1_551_137_400).as_deref(), Some("2019-02-25"));
        assert_eq!(utc_date(i64::MAX), None);
        // Out-of-range timestamps still sign, without panicking.
        for ts in [i64::MIN, i64::MAX] {
            assert!(tc3_sign("id", "k", "ccc", "h", ts, "c", b"")
                .authorization
                .starts_with("TC3-HMAC-SHA256 Credential=id/"));
        }
    }

    #[test]
    fn vector_errors_name_the_field() {
        let official = vectors::signature_entry("tencent_tc3_hmac_sha256");
        for name in [
            "method",
            "host",
            "service",
            "timestamp",
            "content_type",
            "payload",
            "secret_id",
            "secret_key",
        ] {
            let mut entry = official.clone();
            entry.as_object_mut().expect("object").remove(name);
            let err = sign_vector(&entry).expect_err("a missing field fails");
            assert!(err.contains(name), "{err}");
        }
        for (name, bad) in [
            ("method", json!("GET")),
            ("timestamp", json!("1551113065")),
            ("timestamp", json!(1.5)),
            ("timestamp", json!(i64::MAX)),
            ("payload", json!({"Limit": 1})),
        ] {
            let mut entry = official.clone();
            entry[name] = bad;
            let err = sign_vector(&entry).expect_err("a bad field fails");
            assert!(err.contains(name), "{err}");
        }
        assert!(sign_vector(&json!("text")).is_err());
    }

    /// Independent HMAC-SHA256 (the `hmac` and `sha2` crates).
    fn reference_hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn ring_agrees_with_independent_hmac_and_sha2() {
        let mut g = vectors::Xorshift(0x2545_F491_4F6C_DD1D);
        let mut next = || g.next_u64();
        for i in 0..48usize {
            // Keys from empty to past the 64-byte HMAC block; payloads of any bytes.
            let secret_key: String = (0..i * 2)
                .map(|_| char::from(b'!' + (next() % 94) as u8))
                .collect();
            let payload: Vec<u8> = (0..i * 7).map(|_| next() as u8).collect();
            let timestamp = (next() % 4_102_444_800) as i64 - 86_400;
            let signed = tc3_sign(
                "AKID",
                &secret_key,
                "ccc",
                "ccc.tencentcloudapi.com",
                timestamp,
                "application/json; charset=utf-8",
                &payload,
            );

            assert_eq!(
                last_line(&signed.canonical_request),
                hex::encode(Sha256::digest(&payload))
            );
            assert_eq!(
                last_line(&signed.string_to_sign),
                hex::encode(Sha256::digest(signed.canonical_request.as_bytes()))
            );
            let k_date = reference_hmac(
                format!("TC3{secret_key}").as_bytes(),
                signed.date.as_bytes(),
            );
            let k_service = reference_hmac(&k_date, b"ccc");
            let k_signing = reference_hmac(&k_service, b"tc3_request");
            let want = hex::encode(reference_hmac(&k_signing, signed.string_to_sign.as_bytes()));
            assert!(
                signed
                    .authorization
                    .ends_with(&format!(", Signature={want}")),
                "{}",
                signed.authorization
            );
        }
    }
}
