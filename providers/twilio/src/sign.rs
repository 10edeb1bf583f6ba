//! `X-Twilio-Signature`: Base64(HMAC-SHA1(AuthToken, URL + each POST parameter's name and value,
//! sorted by name, then by value)). A JSON body is signed through the URL instead: Twilio adds
//! `bodySHA256=<hex sha256 of the body>` to the query and signs the URL alone. Validators try the
//! URL with and without its default port (:443, :80), as Twilio's own libraries do.

use base64::Engine;
use ring::{digest, hmac};
use waihu_provider_core::cloud::constant_time_eq;

/// The text that is signed: the URL, then every parameter's name and value, sorted.
pub fn string_to_sign(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut s = url.to_string();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// Base64(HMAC-SHA1(auth_token, text)).
pub fn signature(auth_token: &str, text: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, text.as_bytes()))
}

/// Lower-case hex SHA-256 of a body (the `bodySHA256` query parameter).
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, body))
}

/// `url` with `name=value` added to its query.
pub fn with_query(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={value}")
}

/// The URL as written, and with its default port added or removed: the forms Twilio may have
/// signed.
fn url_forms(url: &str) -> Vec<String> {
    let mut forms = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return forms;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return forms,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Strip any user info; a bracketed IPv6 host keeps its colons.
    let host_part = authority.rsplit('@').next().unwrap_or(authority);
    let port_sep = host_part
        .rfind(':')
        .filter(|i| !host_part[*i..].contains(']'));
    let other = match port_sep {
        Some(i) if &host_part[i + 1..] == default => {
            let prefix_len = authority.len() - host_part.len();
            format!(
                "{scheme}://{}{}{tail}",
                &authority[..prefix_len],
                &host_part[..i]
            )
        }
        Some(_) => return forms,
        None => format!("{scheme}://{authority}:{default}{tail}"),
    };
    forms.push(other);
    forms
}

/// Whether `given` signs a form POST to `url` with `params`.
pub fn validate_form(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    given: &str,
) -> bool {
    url_forms(url).iter().any(|u| {
        constant_time_eq(
            signature(auth_token, &string_to_sign(u, params)).as_bytes(),
            given.as_bytes(),
        )
    })
}

/// Whether `given` signs a JSON POST of `body` to `url` (whose query carries `bodySHA256`).
pub fn validate_json(auth_token: &str, url: &str, body: &[u8], given: &str) -> bool {
    let claimed = url
        .split_once('?')
        .map(|(_, q)| waihu_provider_core::cloud::url_form(q.as_bytes()))
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v);
    let Some(claimed) = claimed else {
        return false;
    };
    constant_time_eq(claimed.as_bytes(), body_sha256(body).as_bytes())
        && validate_form(auth_token, url, &[], given)
}

pub use waihu_provider_core::Signed;

fn field<'a>(entry: &'a serde_json::Value, name: &str) -> Result<&'a str, String> {
    entry
        .get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{name}: missing, or not a string"))
}

/// Signs an entry shaped like `twilio_request_validator` in `shared/vectors/signatures.json`:
/// `auth_token`, `url`, and either `params` (an object; a repeated parameter as an array of its
/// values) or `body` (a JSON body, signed through `bodySHA256`).
pub fn sign_vector(entry: &serde_json::Value) -> Result<Signed, String> {
    let token = field(entry, "auth_token")?;
    let url = field(entry, "url")?;
    if let Some(body) = entry.get("body") {
        let body = body.as_str().ok_or("body: not a string")?;
        let sha = body_sha256(body.as_bytes());
        let signed_url = with_query(url, "bodySHA256", &sha);
        return Ok(Signed {
            signature: signature(token, &signed_url),
            string_to_sign: signed_url.clone(),
            extra: vec![
                ("body_sha256".into(), sha),
                ("signed_url".into(), signed_url),
            ],
        });
    }
    let mut params = Vec::new();
    if let Some(p) = entry.get("params") {
        let p = p.as_object().ok_or("params: not an object")?;
        for (k, v) in p {
            match v {
                serde_json::Value::String(s) => params.push((k.clone(), s.clone())),
                serde_json::Value::Array(vs) => {
                    for v in vs {
                        let s = v
                            .as_str()
                            .ok_or_else(|| format!("params.{k}: values must be strings"))?;
                        params.push((k.clone(), s.to_string()));
                    }
                }
                _ => return Err(format!("params.{k}: a string or an array of strings")),
            }
        }
    }
    let text = string_to_sign(url, &params);
    Ok(Signed {
        signature: signature(token, &text),
        string_to_sign: text,
        extra: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::hmac::Mac;
    use waihu_provider_core::vectors::{self, pairs};

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn call_params(caller: &str) -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn the_official_vectors_are_reproduced() {
        let v = vectors::signature_entry("twilio_request_validator");
        let token = v["auth_token"].as_str().expect("token");
        let url = v["url"].as_str().expect("url");
        let mut ps: Vec<(String, String)> = v["params"]
            .as_object()
            .expect("params")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("str").to_string()))
            .collect();
        ps.reverse();
        let want = v["signature"].as_str().expect("signature");
        assert_eq!(signature(token, &string_to_sign(url, &ps)), want);
        assert!(validate_form(token, url, &ps, want));
        assert_eq!(sign_vector(&v).expect("signed").signature, want);

        let j = &v["json_body_case"];
        let body = j["body"].as_str().expect("body");
        assert_eq!(body_sha256(body.as_bytes()), j["body_sha256"]);
        let signed_url = with_query(url, "bodySHA256", &body_sha256(body.as_bytes()));
        assert_eq!(signed_url, j["signed_url"]);
        let want = j["signature"].as_str().expect("signature");
        assert_eq!(signature(token, &signed_url), want);
        assert!(validate_json(token, &signed_url, body.as_bytes(), want));
        assert!(!validate_json(token, &signed_url, b"{}", want));
        let mut entry = j.clone();
        entry["auth_token"] = token.into();
        entry["url"] = url.into();
        assert_eq!(sign_vector(&entry).expect("json").signature, want);
    }

    #[test]
    fn the_sdk_test_values_ports_and_repeated_parameters() {
        assert!(validate_form(
            "12345",
            URL,
            &call_params("+12349013030"),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        let dup = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            signature("12345", &string_to_sign(URL, &dup)),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        let entry = serde_json::json!({
            "auth_token": "12345", "url": URL,
            "params": {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}
        });
        assert_eq!(
            sign_vector(&entry).expect("signed").signature,
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        // Signed with :443 in the URL; we know the URL without it, and the other way round.
        let ps = call_params("+14158675309");
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", &string_to_sign(with_port, &ps)),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert!(validate_form(
            "12345",
            URL,
            &ps,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(validate_form(
            "12345",
            with_port,
            &ps,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let http80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", &string_to_sign(http80, &ps)),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert!(validate_form(
            "12345",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &ps,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        // Wrong token, changed parameter, other port: refused.
        assert!(!validate_form(
            "12346",
            URL,
            &ps,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut changed = ps.clone();
        changed[2].1 = "1235".into();
        assert!(!validate_form(
            "12345",
            URL,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!validate_form(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &ps,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn bad_entries_name_their_field() {
        assert!(sign_vector(&serde_json::json!({"url": "x"}))
            .expect_err("no token")
            .contains("auth_token"));
        assert!(sign_vector(
            &serde_json::json!({"auth_token": "t", "url": "u", "params": {"a": 1}})
        )
        .expect_err("number")
        .contains("params.a"));
    }

    #[test]
    fn ring_agrees_with_an_independent_hmac_sha1() {
        for i in 0..50u32 {
            let key = format!("token-{i}");
            let text = format!("https://h/{i}?x={}", i * 7919);
            let mut mac = ::hmac::Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("key");
            mac.update(text.as_bytes());
            let want =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            assert_eq!(signature(&key, &text), want);
        }
    }
}
