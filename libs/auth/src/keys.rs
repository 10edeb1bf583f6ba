//! The keys tokens are checked with, the claims they carry, and minting.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{
    decode, decode_header, encode, jwk::JwkSet, Algorithm, DecodingKey, EncodingKey, Header,
    Validation,
};
use serde::{Deserialize, Serialize};

/// The `[auth]` settings (`WAIHU_AUTH__*`).
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Accept requests without a token as tenant `x-tenant-id` (or "default") with every
    /// permission. Development only; off by default.
    pub dev_mode: bool,
    /// The HS256 shared key, inline (`WAIHU_AUTH__HS256_KEY`).
    pub hs256_key: Option<String>,
    /// A file holding the HS256 shared key.
    pub hs256_key_file: Option<PathBuf>,
    /// A JWKS file (RS256 / ES256 public keys, chosen by the token's `kid`).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (an identity provider's `jwks_uri`), fetched at start and kept fresh.
    pub jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again (it is also fetched soon after a token names a
    /// key id it does not hold).
    pub jwks_refresh_seconds: u64,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// Where the local development key lives (default `$XDG_DATA_HOME/waihu` or
    /// `~/.local/share/waihu`).
    pub data_dir: Option<PathBuf>,
    /// The tenant of the platform's operators: only its tokens may call deployment-wide methods
    /// (dead letters, the store, replay verification), which see every tenant's data.
    pub operator_tenant: String,
}

/// The operator tenant unless configured otherwise.
pub const DEFAULT_OPERATOR_TENANT: &str = "platform";

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            dev_mode: false,
            hs256_key: None,
            hs256_key_file: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_seconds: 300,
            issuer: None,
            audience: None,
            leeway_seconds: 60,
            data_dir: None,
            operator_tenant: DEFAULT_OPERATOR_TENANT.to_string(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("dev_mode", &self.dev_mode)
            .field("hs256_key", &self.hs256_key.as_ref().map(|_| "***"))
            .field("hs256_key_file", &self.hs256_key_file)
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh_seconds", &self.jwks_refresh_seconds)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_seconds", &self.leeway_seconds)
            .field("data_dir", &self.data_dir)
            .field("operator_tenant", &self.operator_tenant)
            .finish()
    }
}

impl AuthConfig {
    /// A configuration with this HS256 key (tests and benchmarks).
    pub fn with_hs256(key: &str) -> Self {
        AuthConfig {
            hs256_key: Some(key.to_string()),
            ..Default::default()
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The tenant the caller acts for.
    pub tenant: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims for `tenant`/`user` with `permissions`, valid for `ttl_seconds` from now.
    pub fn new(tenant: &str, user: &str, permissions: &[&str], ttl_seconds: u64) -> Self {
        let now = now();
        Claims {
            sub: user.to_string(),
            tenant: tenant.to_string(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            exp: now + ttl_seconds,
            iat: now,
            nbf: None,
            iss: None,
            aud: None,
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub user: String,
    pub permissions: Vec<String>,
    /// Admitted without a token by dev mode.
    pub dev: bool,
}

impl Principal {
    pub fn has_any(&self, wanted: &[&str]) -> bool {
        wanted
            .iter()
            .any(|w| self.permissions.iter().any(|p| p == w))
    }
}

/// Tenant ids: 1-64 characters of `A-Z a-z 0-9 - _`.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Bad(String),
    #[error("this deployment verifies tokens with public keys only; mint with the HS256 key")]
    CannotMint,
}

/// Why a token was refused (the message goes back as UNAUTHENTICATED).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// The keys a service checks tokens with.
pub struct Keys {
    hs256: Option<(EncodingKey, DecodingKey)>,
    jwks: Vec<(Option<String>, Algorithm, DecodingKey)>,
    /// Keys from a JWKS URL, refreshed in the background ([`Keys::remote`]).
    remote: Option<std::sync::Arc<crate::remote::RemoteJwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    /// Where the key came from, for the start-up log.
    pub source: String,
    /// True when the keys are the generated local development key.
    pub development: bool,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("source", &self.source)
            .field("jwks", &self.jwks.len())
            .finish()
    }
}

impl Keys {
    /// Loads what `config` names; with no key configured at all, the local development key
    /// (created on first use).
    pub fn load(config: &AuthConfig) -> Result<Keys, KeyError> {
        let mut keys = Keys {
            hs256: None,
            jwks: Vec::new(),
            remote: None,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_seconds,
            source: String::new(),
            development: false,
        };
        let mut sources = Vec::new();
        let secret = match (&config.hs256_key, &config.hs256_key_file) {
            (Some(k), _) => {
                sources.push("HS256 key (auth.hs256_key)".to_string());
                Some(k.trim().as_bytes().to_vec())
            }
            (None, Some(path)) => {
                sources.push(format!("HS256 key file {}", path.display()));
                Some(read_key_file(path)?)
            }
            (None, None) => None,
        };
        if let Some(s) = &secret {
            if s.len() < 32 {
                return Err(KeyError::Bad(
                    "auth: the HS256 key must be at least 32 bytes".into(),
                ));
            }
        }
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            keys.jwks = parse_jwks(&text).map_err(|reason| KeyError::File {
                path: path.display().to_string(),
                reason,
            })?;
            sources.push(format!(
                "JWKS file {} ({} keys)",
                path.display(),
                keys.jwks.len()
            ));
        }
        if let Some(url) = config.jwks_url.as_deref().filter(|u| !u.trim().is_empty()) {
            if config.jwks_refresh_seconds < 10 {
                return Err(KeyError::Bad(
                    "auth.jwks_refresh_seconds: at least 10".into(),
                ));
            }
            let remote = crate::remote::RemoteJwks::new(
                url.trim(),
                std::time::Duration::from_secs(config.jwks_refresh_seconds),
            )
            .map_err(|e| KeyError::Bad(format!("auth.jwks_url: {e}")))?;
            keys.remote = Some(std::sync::Arc::new(remote));
            sources.push(format!("JWKS URL {}", url.trim()));
        }
        let secret = match secret {
            Some(s) => Some(s),
            None if keys.jwks.is_empty() && keys.remote.is_none() => {
                let dir = config.data_dir.clone().unwrap_or_else(default_data_dir);
                let path = dir.join(DEV_KEY_FILE);
                let key = load_or_create_dev_key(&path)?;
                keys.development = true;
                sources.push(format!("local development key {}", path.display()));
                Some(key)
            }
            None => None,
        };
        keys.hs256 = secret.map(|s| (EncodingKey::from_secret(&s), DecodingKey::from_secret(&s)));
        keys.source = sources.join(", ");
        Ok(keys)
    }

    /// The keys fetched from `auth.jwks_url`, when configured: [`crate::AuthLayer::from_config`]
    /// keeps them fresh.
    pub fn remote(&self) -> Option<std::sync::Arc<crate::remote::RemoteJwks>> {
        self.remote.clone()
    }

    /// Checks a token's signature, expiry, not-before, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header =
            decode_header(token).map_err(|e| TokenError(format!("malformed token: {e}")))?;
        let fetched;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref().map(|(_, d)| d),
            alg @ (Algorithm::RS256 | Algorithm::ES256) => {
                let kid = header.kid.as_deref();
                let local = key_index(&self.jwks, alg, kid).map(|i| &self.jwks[i].2);
                match (local, &self.remote) {
                    (Some(k), _) => Some(k),
                    (None, Some(r)) => {
                        fetched = r.find(alg, kid).map_err(TokenError)?;
                        fetched.as_ref().map(|(set, i)| &set[*i].2)
                    }
                    (None, None) => None,
                }
            }
            other => {
                return Err(TokenError(format!(
                    "algorithm {other:?} is not accepted (HS256, RS256, ES256)"
                )))
            }
        }
        .ok_or_else(|| TokenError(format!("no key for a {:?} token", header.alg)))?;
        let mut v = Validation::new(header.alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.audience {
            Some(a) => {
                v.set_audience(&[a]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(i) = &self.issuer {
            v.set_issuer(&[i]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        let data = decode::<Claims>(token, key, &v).map_err(|e| {
            TokenError(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired".into(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "bad token signature".into(),
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "token not valid yet".into(),
                _ => format!("invalid token: {e}"),
            })
        })?;
        let c = data.claims;
        if !valid_tenant(&c.tenant) {
            return Err(TokenError(
                "token tenant: 1-64 characters of A-Z a-z 0-9 - _".into(),
            ));
        }
        Ok(Principal {
            tenant: c.tenant,
            user: c.sub,
            permissions: c.permissions,
            dev: false,
        })
    }

    /// Signs `claims` with the HS256 key (development, tests, service credentials).
    pub fn mint(&self, claims: &Claims) -> Result<String, KeyError> {
        let (enc, _) = self.hs256.as_ref().ok_or(KeyError::CannotMint)?;
        encode(&Header::new(Algorithm::HS256), claims, enc)
            .map_err(|e| KeyError::Bad(format!("cannot sign: {e}")))
    }
}

/// Where in `set` the key for a token of `alg` naming `kid` (any key of `alg` when it names
/// none) is.
pub(crate) fn key_index(
    set: &[(Option<String>, Algorithm, DecodingKey)],
    alg: Algorithm,
    kid: Option<&str>,
) -> Option<usize> {
    set.iter()
        .position(|(k, a, _)| *a == alg && (kid.is_none() || k.as_deref() == kid))
}

pub(crate) fn parse_jwks(
    text: &str,
) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("bad key: {e}"))?;
        out.push((jwk.common.key_id.clone(), alg, key));
    }
    if out.is_empty() {
        return Err("no RS256 or ES256 (P-256) key in the set".into());
    }
    Ok(out)
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    // Surrounding white space (a trailing newline) is not part of the key; the bytes are kept
    // as they are, so a binary key works too.
    std::fs::read(path)
        .map(|b| b.trim_ascii().to_vec())
        .map_err(|e| KeyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

pub const DEV_KEY_FILE: &str = "dev-jwt-hs256.key";

/// `$XDG_DATA_HOME/waihu`, else `~/.local/share/waihu`, else `./.waihu`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("waihu");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/waihu");
    }
    PathBuf::from(".waihu")
}

/// Reads the development key at `path`, creating it (32 random bytes, hex, mode 0600) when it
/// does not exist. Safe when several processes start at once: the key is written to a private
/// file first and linked into place only if no other process did so first.
pub fn load_or_create_dev_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let file_err = |e: std::io::Error| KeyError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if !path.exists() {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(file_err)?;
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| KeyError::Bad("no system randomness".into()))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{DEV_KEY_FILE}.{}", std::process::id()));
        {
            use std::io::Write;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            let mut f = o.open(&tmp).map_err(file_err)?;
            f.write_all(hex.as_bytes()).map_err(file_err)?;
            f.sync_all().map_err(file_err)?;
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(file_err(e)),
        }
    }
    read_key_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("waihu-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef-test";

    #[test]
    fn tokens_verify_and_expired_or_forged_ones_do_not() {
        let keys = Keys::load(&AuthConfig::with_hs256(KEY)).expect("keys");
        let t = keys
            .mint(&Claims::new("acme", "ann", &["lead:call:view"], 60))
            .expect("mint");
        let p = keys.verify(&t).expect("valid");
        assert_eq!(p.tenant, "acme");
        assert!(p.has_any(&["lead:call:view"]));
        assert!(!p.has_any(&["lead:call:create"]));

        let mut old = Claims::new("acme", "ann", &[], 0);
        old.exp = now() - 120;
        let e = keys
            .verify(&keys.mint(&old).expect("mint"))
            .expect_err("expired");
        assert!(e.0.contains("expired"), "{e}");
        let mut skewed = Claims::new("acme", "ann", &[], 0);
        skewed.exp = now() - 30;
        keys.verify(&keys.mint(&skewed).expect("mint"))
            .expect("within the 60 s leeway");

        let other = Keys::load(&AuthConfig::with_hs256(&format!("{KEY}-other"))).expect("keys");
        let forged = other
            .mint(&Claims::new("acme", "ann", &[], 60))
            .expect("mint");
        assert!(keys
            .verify(&forged)
            .expect_err("bad sig")
            .0
            .contains("signature"));
        assert!(keys.verify("not.a.token").is_err());
        let bad_tenant = keys
            .mint(&Claims::new("a b", "ann", &[], 60))
            .expect("mint");
        assert!(keys.verify(&bad_tenant).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let cfg = AuthConfig {
            issuer: Some("https://idp".into()),
            audience: Some("waihu".into()),
            ..AuthConfig::with_hs256(KEY)
        };
        let keys = Keys::load(&cfg).expect("keys");
        let mut c = Claims::new("acme", "ann", &[], 60);
        assert!(keys.verify(&keys.mint(&c).expect("mint")).is_err());
        c.iss = Some("https://idp".into());
        c.aud = Some("waihu".into());
        keys.verify(&keys.mint(&c).expect("mint")).expect("valid");
    }

    #[test]
    fn the_development_key_is_created_once_and_shared() {
        let dir = temp_dir("dev");
        let cfg = AuthConfig {
            data_dir: Some(dir.clone()),
            ..Default::default()
        };
        let a = Keys::load(&cfg).expect("keys");
        assert!(a.development);
        let b = Keys::load(&cfg).expect("keys");
        let t = a.mint(&Claims::new("t", "u", &[], 60)).expect("mint");
        b.verify(&t).expect("the same key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DEV_KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn es256_tokens_verify_with_the_jwks_key_of_their_kid() {
        use base64::Engine;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pair = |_: u8| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("generate");
            let kp =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("pair");
            let public = kp.public_key().as_ref().to_vec();
            (pkcs8.as_ref().to_vec(), public)
        };
        let (signer, public) = pair(1);
        let (stranger, _) = pair(2);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": b64(&public[1..33]), "y": b64(&public[33..65]),
        }]});
        let dir = temp_dir("es256");
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("jwks.json");
        std::fs::write(&f, jwks.to_string()).expect("write");
        let keys = Keys::load(&AuthConfig {
            jwks_file: Some(f),
            ..Default::default()
        })
        .expect("keys");
        assert!(!keys.development, "a JWKS replaces the development key");
        let sign = |der: &[u8], kid: &str| {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(kid.into());
            encode(
                &h,
                &Claims::new("acme", "ann", &["lead:call:view"], 60),
                &EncodingKey::from_ec_der(der),
            )
            .expect("sign")
        };
        let p = keys.verify(&sign(&signer, "k1")).expect("valid ES256");
        assert_eq!(p.tenant, "acme");
        assert!(keys.verify(&sign(&stranger, "k1")).is_err(), "another key");
        assert!(keys.verify(&sign(&signer, "k2")).is_err(), "unknown kid");
        assert!(
            keys.mint(&Claims::new("a", "b", &[], 1)).is_err(),
            "no private key"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn short_keys_and_bad_jwks_are_refused() {
        assert!(Keys::load(&AuthConfig::with_hs256("short")).is_err());
        let dir = temp_dir("jwks");
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("jwks.json");
        std::fs::write(&f, "{\"keys\": []}").expect("write");
        let e = Keys::load(&AuthConfig {
            jwks_file: Some(f),
            ..Default::default()
        })
        .expect_err("empty set");
        assert!(e.to_string().contains("jwks.json"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
