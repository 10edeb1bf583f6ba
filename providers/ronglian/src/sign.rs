//! Ronglian REST request authentication (the official `CCPRestSDK.php`; 云之讯 describes the same
//! scheme). Every request carries a batch, the local (Beijing) time `yyyyMMddHHmmss`, valid for
//! about 50 minutes:
//!
//! - the query parameter `sig = UPPER(hex(MD5(AccountSid + AuthToken + Batch)))`,
//! - the header `Authorization: Base64(AccountSid + ":" + Batch)`,
//! - and the headers `Accept: application/json`, `Content-Type: application/json;charset=utf-8`.
//!
//! The two-way callback API signs with the sub-account's sid and token, the voice notification
//! API with the main account's. [`sign_vector`] takes one entry shaped like `ronglian_rest` in
//! `shared/vectors/signatures.json` (what `waihu provider sign` reads) and never panics: a
//! missing or malformed field is an error naming it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use md5::{Digest, Md5};
use serde_json::Value;
use waihu_provider_core::vectors::str_field;

/// The `Accept` header the REST API wants.
pub const ACCEPT: &str = "application/json";
/// The `Content-Type` header of a JSON request body.
pub const CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// Beijing time (UTC+8, no daylight saving), the time batches are written in.
const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

pub use waihu_provider_core::Signed;

/// The batch of an instant: its Beijing time as `yyyyMMddHHmmss`.
pub fn batch_at(instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&BEIJING)
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// The batch of now.
pub fn batch_now() -> String {
    batch_at(Utc::now())
}

/// The `sig` query parameter: uppercase hex MD5 of `account_sid + auth_token + batch`.
pub fn sig(account_sid: &str, auth_token: &str, batch: &str) -> String {
    hex::encode_upper(Md5::digest(format!("{account_sid}{auth_token}{batch}")))
}

/// The `Authorization` header value: Base64 of `account_sid:batch`.
pub fn authorization(account_sid: &str, batch: &str) -> String {
    BASE64.encode(format!("{account_sid}:{batch}"))
}

/// Signs a `ronglian_rest`-shaped entry: `account_sid`, `auth_token`, `batch`.
pub fn sign_vector(entry: &Value) -> Result<Signed, String> {
    let account_sid = str_field(entry, "account_sid")?;
    let auth_token = str_field(entry, "auth_token")?;
    let batch = str_field(entry, "batch")?;
    Ok(Signed {
        signature: sig(account_sid, auth_token, batch),
        string_to_sign: format!("{account_sid}<auth_token>{batch}"),
        extra: vec![
            (
                "authorization".to_string(),
                authorization(account_sid, batch),
            ),
            ("batch".to_string(), batch.to_string()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use waihu_provider_core::vectors::{self, expected};

    #[test]
    fn vector_typed() {
        let entry = vectors::signature_entry("ronglian_rest");
        let (sid, batch) = (expected(&entry, "account_sid"), expected(&entry, "batch"));
        assert_eq!(
            sig(sid, expected(&entry, "auth_token"), batch),
            expected(&entry, "sig")
        );
        assert_eq!(authorization(sid, batch), expected(&entry, "authorization"));
    }

    #[test]
    fn vector_through_sign_vector() {
        let entry = vectors::signature_entry("ronglian_rest");
        let signed = sign_vector(&entry).expect("the vector signs");
        assert_eq!(signed.signature, expected(&entry, "sig"));
        assert_eq!(
            signed.extra,
            vec![
                (
                    "authorization".to_string(),
                    expected(&entry, "authorization").to_string()
                ),
                ("batch".to_string(), "20240101120000".to_string()),
            ]
        );
        assert!(!signed
            .string_to_sign
            .contains(expected(&entry, "auth_token")));
        assert_eq!(
            signed.string_to_sign,
            "aaf98f89488d0aad0148a3b7b3e30d57<auth_token>20240101120000"
        );
    }

    #[test]
    fn md5_agrees_with_the_rfc_1321_suite() {
        // The input is the plain concatenation, so these are MD5 of the RFC's strings.
        for (input, md5) in [
            ("", "D41D8CD98F00B204E9800998ECF8427E"),
            ("a", "0CC175B9C0F1B6A831C399E269772661"),
            ("abc", "900150983CD24FB0D6963F7D28E17F72"),
            ("message digest", "F96B697D7CB7938D525A2F31AAF161D0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "C3FCD3D76192E4007DFB496CCA67E13B",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57EDF4A22BE3C955AC49DA2E2107B67A",
            ),
        ] {
            assert_eq!(sig("", "", input), md5, "{input:?}");
            let (head, tail) = input.split_at(input.len() / 2);
            assert_eq!(sig(head, tail, ""), md5, "{input:?} split");
        }
    }

    #[test]
    fn authorization_decodes_to_sid_and_batch() {
        let value = authorization("sid", "20240101120000");
        let decoded = BASE64.decode(value).expect("base64");
        assert_eq!(decoded, b"sid:20240101120000");
    }

    #[test]
    fn batches_are_beijing_time() {
        let at = |y, mo, d, h, mi, s| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
                .single()
                .expect("a valid instant")
        };
        assert_eq!(batch_at(at(2024, 1, 1, 4, 0, 0)), "20240101120000");
        assert_eq!(batch_at(at(2023, 12, 31, 16, 0, 0)), "20240101000000");
        assert_eq!(batch_at(at(2023, 12, 31, 15, 59, 59)), "20231231235959");
        let now = batch_now();
        assert_eq!(now.len(), 14, "{now}");
        assert!(now.bytes().all(|b| b.is_ascii_digit()), "{now}");
    }

    #[test]
    fn vector_errors_name_the_field() {
        let official = vectors::signature_entry("ronglian_rest");
        for name in ["account_sid", "auth_token", "batch"] {
            let mut entry = official.clone();
            entry.as_object_mut().expect("object").remove(name);
            let err = sign_vector(&entry).expect_err("a missing field fails");
            assert!(err.contains(name), "{err}");
            entry[name] = json!(20240101120000u64);
            let err = sign_vector(&entry).expect_err("a number fails");
            assert!(err.contains(name), "{err}");
        }
        assert!(sign_vector(&json!(null)).is_err());
    }
}
