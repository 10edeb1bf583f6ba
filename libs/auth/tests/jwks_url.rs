//! Keys from a JWKS URL: a token is refused (saying why) until the set is fetched, accepted
//! once it is, and a key the provider rotates in is picked up when a token names it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waihu_auth::{AuthConfig, AuthLayer, Claims, Keys};

/// A P-256 key pair: (PKCS#8 private key, its JWK with `kid`).
fn pair(kid: &str) -> (Vec<u8>, serde_json::Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("pair");
    let public = kp.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64(&public[1..33]), "y": b64(&public[33..65]),
    });
    (pkcs8.as_ref().to_vec(), jwk)
}

fn sign(der: &[u8], kid: &str) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(
        &h,
        &Claims::new("acme", "ann", &["lead:call:view"], 60),
        &EncodingKey::from_ec_der(der),
    )
    .expect("sign")
}

/// A one-route HTTP server answering with whatever `body` holds (503 while it is empty).
async fn serve(body: Arc<Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = body.lock().expect("lock").clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let status = if body.is_empty() {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn tokens_verify_with_keys_fetched_from_the_jwks_url_and_rotated_keys_are_picked_up() {
    let (k1, jwk1) = pair("k1");
    let (k2, jwk2) = pair("k2");
    let body = Arc::new(Mutex::new(String::new()));
    let url = serve(body.clone()).await;
    let config = AuthConfig {
        jwks_url: Some(url.clone()),
        jwks_refresh_seconds: 3600,
        ..Default::default()
    };
    let keys = Keys::load(&config).expect("keys");
    assert!(!keys.development, "a JWKS URL replaces the development key");
    assert!(keys.source.contains(&url), "{}", keys.source);
    let remote = keys.remote().expect("remote keys");

    // The provider is down: refused, saying the keys are not loaded.
    assert!(remote.fetch().await.is_err());
    let e = keys.verify(&sign(&k1, "k1")).expect_err("no keys yet");
    assert!(e.0.contains("not loaded"), "{e}");

    // Up: the layer's background fetch loads them.
    *body.lock().expect("lock") = serde_json::json!({ "keys": [jwk1.clone()] }).to_string();
    let layer_keys = Keys::load(&config).expect("keys");
    let remote2 = layer_keys.remote().expect("remote");
    tokio::spawn(remote2.clone().run());
    let mut ok = false;
    for _ in 0..100 {
        if layer_keys.verify(&sign(&k1, "k1")).is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "k1 accepted once fetched");

    // Rotated: k2 appears; a token naming it is refused at first and asks for a refetch,
    // which (after the minimum interval) picks it up.
    *body.lock().expect("lock") = serde_json::json!({ "keys": [jwk1, jwk2] }).to_string();
    assert!(layer_keys.verify(&sign(&k2, "k2")).is_err());
    let mut ok = false;
    for _ in 0..300 {
        if layer_keys.verify(&sign(&k2, "k2")).is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ok,
        "the rotated-in k2 is picked up within the refetch interval"
    );
    // A forged token is still refused.
    let (stranger, _) = pair("k1");
    assert!(layer_keys.verify(&sign(&stranger, "k1")).is_err());

    // Configuration errors name the setting.
    let bad = Keys::load(&AuthConfig {
        jwks_url: Some("ftp://idp/keys".into()),
        ..Default::default()
    })
    .expect_err("bad scheme");
    assert!(bad.to_string().contains("auth.jwks_url"), "{bad}");
    let _ = AuthLayer::from_config(&config).expect("a layer starts without the keys");
}
