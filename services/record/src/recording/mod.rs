//! Recordings (issue 9, seed 003 §8.5): the keeper moves or fetches each announced recording
//! into storage (`object_store`: a local directory by default, any S3-compatible store by
//! configuration) and records `RecordingStored`; signed, expiring URLs and the HTTP endpoint
//! that serves them with range requests; the retention sweeper that deletes audio past its
//! tenant's retention and records `RecordingDeleted`.

pub mod http;
pub mod keeper;
pub mod projection;
pub mod sweep;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use object_store::{aws::AmazonS3Builder, local::LocalFileSystem, ObjectStore};
use ring::hmac;
use uuid::Uuid;
use waihu_runtime::{
    config::{Layers, Secret},
    ConfigError,
};

/// Where recordings are kept.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A directory of this host (`recordings.root`).
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3 {
        bucket: String,
        /// Empty: AWS itself; else the store's URL (MinIO, moto, OSS's S3 endpoint, ...).
        endpoint: String,
        region: String,
        access_key_id: String,
        secret_access_key: Secret,
        /// Whether an `http://` endpoint is allowed.
        allow_http: bool,
    },
}

#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub storage: Storage,
    /// Directories `file://` recordings may be taken from (the provider adapters'
    /// `recordings_dir`); a file elsewhere is refused.
    pub source_dirs: Vec<PathBuf>,
    /// Whether a `file://` recording's file is removed once stored (moved rather than copied).
    pub move_local: bool,
    /// Largest recording kept.
    pub max_bytes: u64,
    /// The key URLs are signed with (at least 32 bytes).
    pub url_key: Secret,
    /// How long a signed URL stays valid by default.
    pub url_ttl: Duration,
    /// The base of signed URLs: where the HTTP endpoint is reached from outside.
    pub public_url: String,
    /// Where the HTTP endpoint listens (None: no endpoint in this process).
    pub http_addr: Option<SocketAddr>,
    /// How long audio is kept after it was recorded, by default and per tenant.
    pub retention_days: u32,
    pub retention_by_tenant: BTreeMap<String, u32>,
    /// How often the retention sweeper looks.
    pub sweep_every: Duration,
    /// How often the keeper looks for new recordings when idle.
    pub poll: Duration,
    /// How long fetching one recording from a provider may take.
    pub fetch_timeout: Duration,
    /// How many times a recording whose source fails is tried before it is given up
    /// (RecordingFailed); storage and bus outages are retried without limit.
    pub max_attempts: u32,
}

/// Where the recordings HTTP endpoint listens by default.
pub const DEFAULT_HTTP_PORT: u16 = 8054;

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            storage: Storage::Local(PathBuf::from("recordings-store")),
            source_dirs: vec![PathBuf::from("recordings")],
            move_local: true,
            max_bytes: 512 * 1024 * 1024,
            url_key: Secret::default(),
            url_ttl: Duration::from_secs(15 * 60),
            public_url: format!("http://127.0.0.1:{DEFAULT_HTTP_PORT}"),
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT))),
            retention_days: 90,
            retention_by_tenant: BTreeMap::new(),
            sweep_every: Duration::from_secs(3600),
            poll: Duration::from_millis(500),
            fetch_timeout: Duration::from_secs(120),
            max_attempts: 8,
        }
    }
}

/// The `[recordings]` settings as written.
#[derive(serde::Deserialize)]
#[serde(default)]
struct Section {
    storage: String,
    root: String,
    s3_bucket: String,
    s3_endpoint: String,
    s3_region: String,
    s3_access_key_id: String,
    s3_secret_access_key: Secret,
    s3_allow_http: bool,
    source_dirs: String,
    move_local: bool,
    max_mb: u64,
    url_key: Secret,
    url_ttl_s: u64,
    public_url: String,
    http_addr: String,
    retention_days: u32,
    retention_by_tenant: String,
    sweep_every_s: u64,
    poll_ms: u64,
    fetch_timeout_s: u64,
    max_attempts: u32,
}

impl Default for Section {
    fn default() -> Self {
        let d = RecordingConfig::default();
        Section {
            storage: "local".into(),
            root: "recordings-store".into(),
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
            source_dirs: "recordings".into(),
            move_local: d.move_local,
            max_mb: d.max_bytes / (1024 * 1024),
            url_key: Secret::default(),
            url_ttl_s: d.url_ttl.as_secs(),
            public_url: d.public_url,
            http_addr: format!("0.0.0.0:{DEFAULT_HTTP_PORT}"),
            retention_days: d.retention_days,
            retention_by_tenant: String::new(),
            sweep_every_s: d.sweep_every.as_secs(),
            poll_ms: d.poll.as_millis() as u64,
            fetch_timeout_s: d.fetch_timeout.as_secs(),
            max_attempts: d.max_attempts,
        }
    }
}

/// Longest retention a tenant may have (100 years) and longest URL validity (7 days).
const MAX_RETENTION_DAYS: u32 = 36_500;
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl RecordingConfig {
    /// `[recordings]`: `storage` ("local" or "s3"), `root`, `s3_bucket`, `s3_endpoint`,
    /// `s3_region`, `s3_access_key_id`, `s3_secret_access_key`, `s3_allow_http`, `source_dirs`
    /// (comma-separated), `move_local`, `max_mb`, `url_key`, `url_ttl_s`, `public_url`,
    /// `http_addr` (empty: none), `retention_days`, `retention_by_tenant`
    /// ("tenant=days,..."), `sweep_every_s`, `poll_ms`, `fetch_timeout_s`, `max_attempts`.
    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let s: Section = layers.section("recordings")?;
        let storage = match s.storage.trim() {
            "local" | "" => {
                if s.root.trim().is_empty() {
                    return Err(ConfigError::invalid("recordings.root", "must not be empty"));
                }
                Storage::Local(PathBuf::from(s.root.trim()))
            }
            "s3" => {
                if s.s3_bucket.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        "recordings.s3_bucket",
                        "must be set when recordings.storage is s3",
                    ));
                }
                Storage::S3 {
                    bucket: s.s3_bucket.trim().into(),
                    endpoint: s.s3_endpoint.trim().into(),
                    region: s.s3_region.trim().into(),
                    access_key_id: s.s3_access_key_id.trim().into(),
                    secret_access_key: s.s3_secret_access_key,
                    allow_http: s.s3_allow_http,
                }
            }
            other => {
                return Err(ConfigError::invalid(
                    "recordings.storage",
                    format!("{other:?} is not local or s3"),
                ))
            }
        };
        let source_dirs: Vec<PathBuf> = s
            .source_dirs
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        if s.max_mb == 0 || s.max_mb > 64 * 1024 {
            return Err(ConfigError::invalid(
                "recordings.max_mb",
                "must be 1 to 65536",
            ));
        }
        let url_key = s.url_key;
        if !url_key.expose().is_empty() && url_key.expose().len() < 32 {
            return Err(ConfigError::invalid(
                "recordings.url_key",
                "must be at least 32 bytes (or empty: a random key per process)",
            ));
        }
        let url_ttl = Duration::from_secs(s.url_ttl_s);
        if url_ttl.is_zero() || url_ttl > MAX_URL_TTL {
            return Err(ConfigError::invalid(
                "recordings.url_ttl_s",
                "must be 1 to 604800 (7 days)",
            ));
        }
        let http_addr = match s.http_addr.trim() {
            "" => None,
            a => Some(a.parse().map_err(|e| {
                ConfigError::invalid("recordings.http_addr", format!("{a:?}: {e}"))
            })?),
        };
        if s.retention_days == 0 || s.retention_days > MAX_RETENTION_DAYS {
            return Err(ConfigError::invalid(
                "recordings.retention_days",
                "must be 1 to 36500",
            ));
        }
        let retention_by_tenant = parse_retention(&s.retention_by_tenant)
            .map_err(|e| ConfigError::invalid("recordings.retention_by_tenant", e))?;
        if s.sweep_every_s == 0 || s.poll_ms == 0 || s.fetch_timeout_s == 0 || s.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "recordings.sweep_every_s",
                "sweep_every_s, poll_ms, fetch_timeout_s and max_attempts must be at least 1",
            ));
        }
        url::Url::parse(&s.public_url).map_err(|e| {
            ConfigError::invalid("recordings.public_url", format!("{:?}: {e}", s.public_url))
        })?;
        Ok(RecordingConfig {
            storage,
            source_dirs,
            move_local: s.move_local,
            max_bytes: s.max_mb * 1024 * 1024,
            url_key,
            url_ttl,
            public_url: s.public_url.trim_end_matches('/').to_string(),
            http_addr,
            retention_days: s.retention_days,
            retention_by_tenant,
            sweep_every: Duration::from_secs(s.sweep_every_s),
            poll: Duration::from_millis(s.poll_ms),
            fetch_timeout: Duration::from_secs(s.fetch_timeout_s),
            max_attempts: s.max_attempts,
        })
    }

    /// How many days `tenant`'s recordings are kept.
    pub fn retention_of(&self, tenant: &str) -> u32 {
        self.retention_by_tenant
            .get(tenant)
            .copied()
            .unwrap_or(self.retention_days)
    }

    /// The storage, opened (a local root is created).
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, ConfigError> {
        match &self.storage {
            Storage::Local(root) => {
                std::fs::create_dir_all(root).map_err(|e| {
                    ConfigError::invalid("recordings.root", format!("{}: {e}", root.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(root).map_err(|e| {
                    ConfigError::invalid("recordings.root", format!("{}: {e}", root.display()))
                })?;
                Ok(Arc::new(store))
            }
            Storage::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_allow_http(*allow_http);
                if !endpoint.is_empty() {
                    b = b
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if !access_key_id.is_empty() {
                    b = b
                        .with_access_key_id(access_key_id)
                        .with_secret_access_key(secret_access_key.expose());
                }
                let store = b
                    .build()
                    .map_err(|e| ConfigError::invalid("recordings.s3_bucket", e))?;
                Ok(Arc::new(store))
            }
        }
    }

    /// The key signed URLs are made with: the configured one, or a random one for this
    /// process (URLs then stop working when it restarts, and other replicas refuse them).
    pub fn signer(&self) -> Signer {
        let key = if self.url_key.expose().is_empty() {
            tracing::warn!(
                "recordings.url_key (WAIHU_RECORDINGS__URL_KEY) is not set: recording URLs are \
                 signed with a random key of this process and stop working when it restarts"
            );
            let rng = ring::rand::SystemRandom::new();
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's random source")
        } else {
            hmac::Key::new(hmac::HMAC_SHA256, self.url_key.expose().as_bytes())
        };
        Signer {
            key: Arc::new(key),
            base: self.public_url.clone(),
        }
    }
}

/// "tenant=days,tenant=days".
fn parse_retention(s: &str) -> Result<BTreeMap<String, u32>, String> {
    waihu_runtime::config::per_tenant(s, "tenant=days", |v| {
        let days: u32 = v
            .parse()
            .map_err(|_| "days must be a whole number".to_string())?;
        if days == 0 || days > MAX_RETENTION_DAYS {
            return Err("days must be 1 to 36500".into());
        }
        Ok(days)
    })
}

/// Signs and checks recording URLs: HMAC-SHA256 over the tenant, the call, the file's
/// extension and the expiry.
#[derive(Clone)]
pub struct Signer {
    key: Arc<hmac::Key>,
    base: String,
}

fn signed_text(tenant: &str, call: Uuid, ext: &str, expires: i64) -> String {
    format!("waihu-recording-v1\n{tenant}\n{call}\n{ext}\n{expires}")
}

/// Why a URL is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum UrlRefusal {
    Expired,
    BadSignature,
}

impl Signer {
    /// The URL of `call`'s recording (a file of extension `ext`) valid until `expires`.
    pub fn url(&self, tenant: &str, call: Uuid, ext: &str, expires: DateTime<Utc>) -> String {
        let e = expires.timestamp();
        let tag = hmac::sign(&self.key, signed_text(tenant, call, ext, e).as_bytes());
        let tenant_q: String = url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
        format!(
            "{}/recordings/{call}.{ext}?tenant={tenant_q}&expires={e}&signature={}",
            self.base,
            hex::encode(tag.as_ref())
        )
    }

    /// Checks a URL's parts at `now`.
    pub fn check(
        &self,
        tenant: &str,
        call: Uuid,
        ext: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), UrlRefusal> {
        let tag = hex::decode(signature).map_err(|_| UrlRefusal::BadSignature)?;
        hmac::verify(
            &self.key,
            signed_text(tenant, call, ext, expires).as_bytes(),
            &tag,
        )
        .map_err(|_| UrlRefusal::BadSignature)?;
        if expires <= now.timestamp() {
            return Err(UrlRefusal::Expired);
        }
        Ok(())
    }
}

/// A recording's format (its key's extension) and content type, from what was announced: the
/// content type when it names audio this service knows, else (when it is empty, generic or
/// another audio type) the URI's extension.
pub fn format_of(content_type: &str, uri: &str) -> Option<(&'static str, &'static str)> {
    const KNOWN: &[(&str, &str, &[&str])] = &[
        (
            "wav",
            "audio/wav",
            &["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"],
        ),
        ("mp3", "audio/mpeg", &["audio/mpeg", "audio/mp3"]),
        ("ogg", "audio/ogg", &["audio/ogg", "audio/opus"]),
        (
            "m4a",
            "audio/mp4",
            &["audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac"],
        ),
        ("amr", "audio/amr", &["audio/amr"]),
    ];
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if let Some((ext, ct, _)) = KNOWN
        .iter()
        .find(|(_, _, names)| names.contains(&ct.as_str()))
    {
        return Some((ext, ct));
    }
    // A type that says what it is, and is not audio, is not taken on its name's word.
    if !ct.is_empty() && !ct.starts_with("audio/") && ct != "application/octet-stream" {
        return None;
    }
    let path = uri.split(['?', '#']).next().unwrap_or("");
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    KNOWN
        .iter()
        .find(|(e, _, _)| *e == ext)
        .map(|(e, ct, _)| (*e, *ct))
}

/// The storage key of `call`'s recording (seed 003 §8.5), dated when it was recorded (UTC).
pub fn key_of(call: Uuid, ext: &str, recorded_at: DateTime<Utc>) -> String {
    format!("recordings/{}/{call}.{ext}", recorded_at.format("%Y/%m/%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_verify_until_they_expire_and_not_when_altered() {
        let s = RecordingConfig {
            url_key: Secret::new("k".repeat(32)),
            ..Default::default()
        }
        .signer();
        let call = Uuid::new_v4();
        let now = Utc::now();
        let expires = now + chrono::Duration::seconds(60);
        let url = s.url("acme corp", call, "wav", expires);
        assert!(url.contains("tenant=acme+corp"), "{url}");
        let sig = url.rsplit_once("signature=").map(|x| x.1).unwrap_or("");
        let e = expires.timestamp();
        assert_eq!(s.check("acme corp", call, "wav", e, sig, now), Ok(()));
        assert_eq!(
            s.check("acme corp", call, "wav", e, sig, expires),
            Err(UrlRefusal::Expired)
        );
        for (tenant, c, ext, exp) in [
            ("other", call, "wav", e),
            ("acme corp", Uuid::new_v4(), "wav", e),
            ("acme corp", call, "mp3", e),
            ("acme corp", call, "wav", e + 3600),
        ] {
            assert_eq!(
                s.check(tenant, c, ext, exp, sig, now),
                Err(UrlRefusal::BadSignature)
            );
        }
        assert_eq!(
            s.check("acme corp", call, "wav", e, "zz", now),
            Err(UrlRefusal::BadSignature)
        );
    }

    #[test]
    fn formats_come_from_the_content_type_or_the_extension() {
        assert_eq!(
            format_of("audio/wav", "file:///x"),
            Some(("wav", "audio/wav"))
        );
        assert_eq!(
            format_of("audio/x-wav; codecs=1", "file:///x"),
            Some(("wav", "audio/wav"))
        );
        assert_eq!(
            format_of("application/octet-stream", "https://p/r/abc.MP3?t=1"),
            Some(("mp3", "audio/mpeg"))
        );
        assert_eq!(format_of("", "https://p/r/abc"), None);
        assert_eq!(format_of("text/html", "https://p/r/abc.html"), None);
        assert_eq!(format_of("text/html", "https://p/r/abc.wav"), None);
        assert_eq!(
            format_of("", "file:///r/abc.wav"),
            Some(("wav", "audio/wav"))
        );
    }

    #[test]
    fn keys_follow_the_seed() {
        let call = Uuid::nil();
        let at = DateTime::parse_from_rfc3339("2025-12-25T23:59:00+08:00")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            key_of(call, "mp3", at),
            "recordings/2025/12/25/00000000-0000-0000-0000-000000000000.mp3"
        );
    }

    #[test]
    fn bad_recording_settings_name_their_setting() {
        let layers =
            |k: &str, v: &str| Layers::from_vars([(k.to_string(), v.to_string())]).expect("layers");
        for (key, value, named) in [
            ("WAIHU_RECORDINGS__STORAGE", "ftp", "recordings.storage"),
            ("WAIHU_RECORDINGS__STORAGE", "s3", "recordings.s3_bucket"),
            ("WAIHU_RECORDINGS__URL_KEY", "short", "recordings.url_key"),
            ("WAIHU_RECORDINGS__URL_TTL_S", "0", "recordings.url_ttl_s"),
            (
                "WAIHU_RECORDINGS__RETENTION_DAYS",
                "0",
                "recordings.retention_days",
            ),
            (
                "WAIHU_RECORDINGS__RETENTION_BY_TENANT",
                "acme",
                "recordings.retention_by_tenant",
            ),
            (
                "WAIHU_RECORDINGS__HTTP_ADDR",
                "nowhere",
                "recordings.http_addr",
            ),
            ("WAIHU_RECORDINGS__MAX_MB", "0", "recordings.max_mb"),
        ] {
            let e = RecordingConfig::from_layers(&layers(key, value)).expect_err(key);
            let text = e.to_string();
            assert!(
                text.contains(named) || text.contains(&named.to_uppercase().replace('.', "__")),
                "{key}={value}: {text}"
            );
        }
        let c = RecordingConfig::from_layers(&layers(
            "WAIHU_RECORDINGS__RETENTION_BY_TENANT",
            "acme=30",
        ))
        .expect("valid");
        assert_eq!((c.retention_of("acme"), c.retention_of("other")), (30, 90));
    }

    #[test]
    fn retention_by_tenant_is_parsed_and_bad_values_are_named() {
        let m = parse_retention(" acme=30, beta = 180 ").expect("parses");
        assert_eq!(m.get("acme"), Some(&30));
        assert_eq!(m.get("beta"), Some(&180));
        assert!(parse_retention("acme").is_err());
        assert!(parse_retention("acme=0").is_err());
        assert!(parse_retention("acme=x").is_err());
    }
}
