//! `waihu provider sign` reproduces every entry of `shared/vectors/signatures.json`, as an
//! operator would run it: the entry in a file, the signature on standard output.

use std::path::PathBuf;

fn vectors() -> serde_json::Value {
    let dir = std::env::var_os("WAIHU_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    let text = std::fs::read_to_string(dir.join("signatures.json")).expect("the vectors");
    serde_json::from_str(&text).expect("JSON")
}

/// Runs `waihu provider sign <scheme> <file> [--verbose]` on `entry`; its standard output.
fn sign(scheme: &str, entry: &serde_json::Value, verbose: bool) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("waihu-sign-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("entry.json");
    std::fs::write(&file, entry.to_string()).expect("write");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_waihu"));
    cmd.args(["provider", "sign", scheme]).arg(&file);
    if verbose {
        cmd.arg("--verbose");
    }
    let out = cmd.output().expect("waihu runs");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

#[test]
fn every_vector_is_reproduced_through_the_cli() {
    let v = vectors();
    let cases = [
        ("aliyun-rpc", "aliyun_rpc_v1", "signature"),
        ("aliyun-acs3", "aliyun_acs3_hmac_sha256", "authorization"),
        ("tencent-tc3", "tencent_tc3_hmac_sha256", "authorization"),
        ("ronglian", "ronglian_rest", "sig"),
        ("twilio", "twilio_request_validator", "signature"),
    ];
    for (scheme, key, want) in cases {
        let entry = &v[key];
        let (ok, out, err) = sign(scheme, entry, false);
        assert!(ok, "{scheme}: {err}");
        assert_eq!(
            first_line(&out),
            entry[want].as_str().expect("want"),
            "{scheme}"
        );
    }
    // Twilio's JSON-body case, as one entry of its own.
    let t = &v["twilio_request_validator"];
    let mut json = t["json_body_case"].clone();
    json["auth_token"] = t["auth_token"].clone();
    json["url"] = t["url"].clone();
    let (ok, out, err) = sign("twilio", &json, true);
    assert!(ok, "{err}");
    assert_eq!(
        first_line(&out),
        t["json_body_case"]["signature"].as_str().expect("sig")
    );
    assert!(
        out.contains(t["json_body_case"]["signed_url"].as_str().expect("url")),
        "{out}"
    );
    // --verbose shows what was signed: Aliyun's string to sign, Tencent's canonical hash.
    let (_, out, _) = sign("aliyun-rpc", &v["aliyun_rpc_v1"], true);
    assert!(
        out.contains(v["aliyun_rpc_v1"]["string_to_sign"].as_str().expect("sts")),
        "{out}"
    );
    let (_, out, _) = sign("tencent-tc3", &v["tencent_tc3_hmac_sha256"], true);
    assert!(
        out.contains(
            v["tencent_tc3_hmac_sha256"]["canonical_request_sha256"]
                .as_str()
                .expect("hash")
        ),
        "{out}"
    );
    // A repeated parameter as an array of its values.
    let dup = serde_json::json!({
        "auth_token": "12345", "url": "https://mycompany.com/myapp.php?foo=1&bar=2",
        "params": {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}
    });
    let (_, out, _) = sign("twilio", &dup, false);
    assert_eq!(first_line(&out), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
}

#[test]
fn a_bad_entry_is_an_error_naming_the_field_not_a_panic() {
    let (ok, _, err) = sign("tencent-tc3", &serde_json::json!({"method": "POST"}), false);
    assert!(!ok);
    assert!(err.contains("error:") && err.contains("missing"), "{err}");
    let (ok, _, err) = sign("twilio", &serde_json::json!([1, 2]), false);
    assert!(!ok);
    assert!(err.contains("JSON object"), "{err}");
}
