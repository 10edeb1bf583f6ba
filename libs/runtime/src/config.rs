//! The one configuration loader. Every setting has a default; an optional TOML file (named by
//! `WAIHU_CONFIG`) overrides the defaults, and `WAIHU_*` environment variables override the
//! file, `__` separating nesting levels (`WAIHU_SIMULATOR__SEED` is `[simulator] seed` in the
//! file; `WAIHU_NATS_URL` is the top-level `nats_url`). `NATS_URL` and `DATABASE_URL` are read as
//! aliases of `WAIHU_NATS_URL` and `WAIHU_DATABASE_URL` (the `WAIHU_` names win). Values are
//! typed by the setting they end up in, a bad one fails start-up naming the variable and the
//! file key, and secrets are wrapped in [`Secret`] so that no `Debug` of a configuration can
//! print them.

use std::{collections::HashMap, fmt, net::SocketAddr, str::FromStr, time::Duration};

use serde::{de::DeserializeOwned, Deserialize, Deserializer};

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration {setting}: {reason}")]
pub struct ConfigError {
    /// The setting, as its environment variable and file key (`WAIHU_NATS__MAX_BYTES`
    /// (`nats.max_bytes`)), or the file that could not be read.
    pub setting: String,
    pub reason: String,
}

impl ConfigError {
    /// An invalid value of the setting at `key` (a dotted file key such as `simulator.mix`).
    pub fn invalid(key: &str, reason: impl fmt::Display) -> Self {
        ConfigError {
            setting: describe_key(key),
            reason: reason.to_string(),
        }
    }
}

/// `nats.max_bytes` → ``WAIHU_NATS__MAX_BYTES (`nats.max_bytes`)``.
fn describe_key(key: &str) -> String {
    let var = key
        .split('.')
        .map(|part| part.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join("__");
    format!("WAIHU_{var} (`{key}`)")
}

/// A value that must never be printed (a URL with a password, a key). `Debug` shows a URL with
/// its password replaced by `***`, anything else as `***`; the value itself is only reachable
/// through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains("://") {
            write!(f, "{:?}", redact(&self.0))
        } else {
            f.write_str("\"***\"")
        }
    }
}

/// Hides the password of a URL like `postgres://user:secret@host/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// For `#[serde(deserialize_with = "waihu_runtime::config::from_str")]`: a setting written as
/// text and parsed by its type's `FromStr` (ranges, mixes, lists).
pub fn from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(serde::de::Error::custom)
}

/// A per-tenant setting written `tenant=value,other=value` (spaces allowed, empty = none), each
/// value read by `value`; the error names the entry at fault.
pub fn per_tenant<T>(
    s: &str,
    form: &str,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<std::collections::BTreeMap<String, T>, String> {
    let mut out = std::collections::BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (tenant, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not {form}"))?;
        let tenant = tenant.trim();
        if tenant.is_empty() {
            return Err(format!("{part:?} names no tenant"));
        }
        let v = value(v.trim()).map_err(|e| format!("{part:?}: {e}"))?;
        out.insert(tenant.to_string(), v);
    }
    Ok(out)
}

/// The layered sources: defaults (each section's `Default`), then the file, then the aliases,
/// then the `WAIHU_` variables.
pub struct Layers(config::Config);

impl Layers {
    /// The process environment and the file `WAIHU_CONFIG` names (if it does).
    pub fn from_process() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Any set of variables (tests pass their own instead of changing the process environment);
    /// `WAIHU_CONFIG` among them names the file, which must then exist.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let mut builder = config::Config::builder();
        if let Some(path) = vars.get("WAIHU_CONFIG").filter(|p| !p.trim().is_empty()) {
            let text = std::fs::read_to_string(path.trim()).map_err(|e| ConfigError {
                setting: format!("file {path:?} (WAIHU_CONFIG)"),
                reason: e.to_string(),
            })?;
            // Parsed once, here, so that a syntax error names the file.
            let file = config::Config::builder()
                .add_source(config::File::from_str(&text, config::FileFormat::Toml))
                .build()
                .map_err(|e| ConfigError {
                    setting: format!("file {path:?} (WAIHU_CONFIG)"),
                    reason: e.to_string(),
                })?;
            builder = builder.add_source(file);
        }
        let aliases: HashMap<String, String> =
            [("NATS_URL", "nats_url"), ("DATABASE_URL", "database_url")]
                .into_iter()
                .filter_map(|(var, key)| vars.get(var).map(|v| (key.to_string(), v.clone())))
                .collect();
        let own: HashMap<String, String> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("WAIHU_") && k.as_str() != "WAIHU_CONFIG")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder
            .add_source(config::Environment::default().source(Some(aliases)))
            .add_source(
                config::Environment::with_prefix("WAIHU")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(own)),
            );
        builder.build().map(Layers).map_err(convert)
    }

    /// The top-level settings as `T` (keys of nested sections are ignored).
    pub fn root<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(self.0.clone()).map_err(|e| located("", e))
    }

    /// Where a service serving HTTP listens: the top-level `http_addr` (`WAIHU_HTTP_ADDR`), set
    /// per process like `grpc_addr`, else `0.0.0.0:<default_port>`.
    pub fn http_addr(&self, default_port: u16) -> Result<SocketAddr, ConfigError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Http {
            http_addr: Option<SocketAddr>,
        }
        let h: Http = self.root()?;
        Ok(h.http_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port))))
    }

    /// Where a service serves `/metrics`: the top-level `metrics_addr` (`WAIHU_METRICS_ADDR`),
    /// else `0.0.0.0:<port + 1000>` where `port` is its main port; `off` for none.
    pub fn metrics_addr(&self, port: u16) -> Result<Option<SocketAddr>, ConfigError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct M {
            metrics_addr: Option<String>,
        }
        let m: M = self.root()?;
        metrics_addr(m.metrics_addr.as_deref(), port)
    }

    /// The section `key` (such as `simulator`) as `T`; its `Default` when nothing sets it.
    pub fn section<T: DeserializeOwned + Default>(&self, key: &str) -> Result<T, ConfigError> {
        match self.0.get::<config::Value>(key) {
            Ok(v) => serde_path_to_error::deserialize(v).map_err(|e| located(key, e)),
            Err(config::ConfigError::NotFound(_)) => Ok(T::default()),
            Err(e) => Err(convert(e)),
        }
    }
}

/// Names the setting a deserialisation error is about: the section plus the path inside it.
fn located(section: &str, e: serde_path_to_error::Error<config::ConfigError>) -> ConfigError {
    let path = e.path().to_string();
    let key = match (section.is_empty(), path.as_str()) {
        (true, _) => path.clone(),
        (false, "" | ".") => section.to_string(),
        (false, p) => format!("{section}.{p}"),
    };
    let mut out = convert(e.into_inner());
    if !key.is_empty() && key != "." {
        out.setting = describe_key(&key);
    }
    out
}

fn convert(e: config::ConfigError) -> ConfigError {
    let key = match &e {
        config::ConfigError::Type { key: Some(k), .. } => Some(k.clone()),
        config::ConfigError::At { key: Some(k), .. } => Some(k.clone()),
        _ => None,
    };
    let reason = e.to_string();
    match key {
        Some(key) => ConfigError {
            setting: describe_key(&key),
            reason,
        },
        None => ConfigError {
            setting: "settings".into(),
            reason,
        },
    }
}

/// Settings every service shares, as they are written: top-level keys plus the `nats` and
/// `database` sections.
#[derive(Deserialize)]
#[serde(default)]
struct CommonFile {
    nats_url: Secret,
    database_url: Secret,
    prefix: String,
    grpc_addr: Option<SocketAddr>,
    metrics_addr: Option<String>,
    shutdown_grace_seconds: u64,
    nats: NatsSection,
    database: DatabaseSection,
}

impl Default for CommonFile {
    fn default() -> Self {
        CommonFile {
            nats_url: Secret::from(DEFAULT_NATS_URL),
            database_url: Secret::from(DEFAULT_DATABASE_URL),
            prefix: "waihu".into(),
            grpc_addr: None,
            metrics_addr: None,
            shutdown_grace_seconds: 20,
            nats: NatsSection::default(),
            database: DatabaseSection::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct NatsSection {
    replicas: usize,
    max_age_seconds: u64,
    max_bytes: i64,
    user: Option<String>,
    password: Option<Secret>,
    token: Option<Secret>,
    creds_file: Option<std::path::PathBuf>,
}

impl Default for NatsSection {
    fn default() -> Self {
        NatsSection {
            replicas: 1,
            max_age_seconds: 0,
            max_bytes: 0,
            user: None,
            password: None,
            token: None,
            creds_file: None,
        }
    }
}

impl NatsSection {
    /// The service's NATS credentials: one way at most.
    fn auth(&self) -> Result<waihu_bus::NatsAuth, ConfigError> {
        use waihu_bus::NatsAuth;
        let given = |s: &Option<Secret>| s.as_ref().filter(|v| !v.expose().is_empty()).cloned();
        let (user, password, token) = (
            self.user.clone().filter(|u| !u.is_empty()),
            given(&self.password),
            given(&self.token),
        );
        let creds = self
            .creds_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        match (user, password, token, creds) {
            (None, None, None, None) => Ok(NatsAuth::None),
            (Some(user), Some(password), None, None) => Ok(NatsAuth::UserPassword {
                user,
                password: password.expose().to_string(),
            }),
            (Some(_), None, None, None) => Err(ConfigError::invalid(
                "nats.password",
                "is required with nats.user",
            )),
            (None, Some(_), None, None) => Err(ConfigError::invalid(
                "nats.user",
                "is required with nats.password",
            )),
            (None, None, Some(t), None) => Ok(NatsAuth::Token(t.expose().to_string())),
            (None, None, None, Some(p)) => Ok(NatsAuth::CredsFile(p)),
            _ => Err(ConfigError::invalid(
                "nats.creds_file",
                "give one of nats.user and nats.password, nats.token or nats.creds_file",
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct DatabaseSection {
    max_connections: u32,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection { max_connections: 8 }
    }
}

/// Settings every service shares.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// `nats_url` (`WAIHU_NATS_URL` or `NATS_URL`).
    pub nats_url: Secret,
    /// `database_url` (`WAIHU_DATABASE_URL` or `DATABASE_URL`).
    pub database_url: Secret,
    /// `prefix`: namespace of subjects and streams.
    pub prefix: String,
    /// `nats.replicas`: JetStream stream replicas (3 on a cluster).
    pub replicas: usize,
    /// `nats.max_age_seconds`: how long the events stream keeps events (0 = for good).
    pub stream_max_age: Duration,
    /// `nats.max_bytes`: how many bytes the events stream keeps (0 = no limit).
    pub stream_max_bytes: i64,
    /// `grpc_addr`.
    pub grpc_addr: SocketAddr,
    /// `metrics_addr`: where `/metrics` is served (default: the gRPC port + 1000 on every
    /// interface; `off` for none).
    pub metrics_addr: Option<SocketAddr>,
    /// `database.max_connections`.
    pub db_max_connections: u32,
    /// `shutdown_grace_seconds`: how long in-flight work may take after SIGTERM.
    pub shutdown_grace: Duration,
    /// `[auth]`: how callers are authenticated.
    pub auth: waihu_auth::AuthConfig,
    /// `nats.user` + `nats.password`, `nats.token` or `nats.creds_file`: this service's own NATS
    /// credentials.
    pub nats_auth: waihu_bus::NatsAuth,
}

/// A service's metrics port by default: its gRPC (the gateway: HTTP) port plus this (task
/// 51051, dialer 51052, provider adapter 51053, record 51054, analysis 51055, gateway 9080).
pub const METRICS_PORT_OFFSET: u16 = 1000;

/// The `metrics_addr` setting: empty for `0.0.0.0:<port + 1000>`, `off` for none.
fn metrics_addr(v: Option<&str>, port: u16) -> Result<Option<SocketAddr>, ConfigError> {
    match v.map(str::trim) {
        None | Some("") => Ok(Some(SocketAddr::from((
            [0, 0, 0, 0],
            port.saturating_add(METRICS_PORT_OFFSET),
        )))),
        Some("off") => Ok(None),
        Some(a) => a
            .parse()
            .map(Some)
            .map_err(|e| ConfigError::invalid("metrics_addr", format!("{a:?}: {e} (or \"off\")"))),
    }
}

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/waihu";

impl CommonConfig {
    /// Reads the shared settings from the process environment (and `WAIHU_CONFIG`);
    /// `default_port` is the service's own gRPC port.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process()?, default_port)
    }

    pub fn from_layers(layers: &Layers, default_port: u16) -> Result<Self, ConfigError> {
        let f: CommonFile = layers.root()?;
        if f.prefix.is_empty()
            || !f
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::invalid(
                "prefix",
                format!("{:?}: use letters, digits, '_' or '-'", f.prefix),
            ));
        }
        if f.nats.replicas == 0 || f.nats.replicas > 5 {
            return Err(ConfigError::invalid("nats.replicas", "must be 1 to 5"));
        }
        if f.nats.max_bytes < 0 {
            return Err(ConfigError::invalid(
                "nats.max_bytes",
                "must be 0 (no limit) or more",
            ));
        }
        let nats_auth = f.nats.auth()?;
        if f.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        let metrics_addr = metrics_addr(f.metrics_addr.as_deref(), default_port)?;
        Ok(CommonConfig {
            metrics_addr,
            nats_url: f.nats_url,
            database_url: f.database_url,
            prefix: f.prefix,
            replicas: f.nats.replicas,
            stream_max_age: Duration::from_secs(f.nats.max_age_seconds),
            stream_max_bytes: f.nats.max_bytes,
            grpc_addr: f
                .grpc_addr
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port))),
            db_max_connections: f.database.max_connections,
            shutdown_grace: Duration::from_secs(f.shutdown_grace_seconds),
            auth: layers.section("auth")?,
            nats_auth,
        })
    }

    /// The HS256 key services started by [`CommonConfig::for_test`] verify tokens with.
    pub const TEST_KEY: &'static str = "waihu-test-key-0123456789abcdef0123456789";

    /// Settings for a service inside a test or benchmark: given infrastructure, port 0, tokens
    /// signed with [`CommonConfig::TEST_KEY`], and dev mode on (a request without a token acts
    /// as its `x-tenant-id`); tests of authentication turn dev mode off.
    pub fn for_test(nats_url: &str, database_url: &str, prefix: &str) -> Self {
        CommonConfig {
            nats_url: Secret::from(nats_url),
            database_url: Secret::from(database_url),
            prefix: prefix.into(),
            replicas: 1,
            stream_max_age: Duration::ZERO,
            stream_max_bytes: 0,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            db_max_connections: 8,
            shutdown_grace: Duration::from_secs(5),
            auth: waihu_auth::AuthConfig {
                dev_mode: true,
                ..waihu_auth::AuthConfig::with_hs256(Self::TEST_KEY)
            },
            nats_auth: waihu_bus::NatsAuth::None,
        }
    }

    /// The service's database pool: the store's tables and the service's own `schema`
    /// migrated, `database.max_connections` connections.
    pub async fn open_database(
        &self,
        schema: &str,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<sqlx::PgPool, waihu_store::StoreError> {
        waihu_store::open_service(
            self.database_url.expose(),
            self.db_max_connections,
            schema,
            migrator,
        )
        .await
    }

    /// The bus settings these values describe.
    pub fn bus(&self) -> waihu_bus::BusConfig {
        waihu_bus::BusConfig {
            url: self.nats_url.expose().to_string(),
            prefix: self.prefix.clone(),
            replicas: self.replicas,
            max_age: self.stream_max_age,
            max_bytes: self.stream_max_bytes,
            auth: self.nats_auth.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(pairs: &[(&str, &str)]) -> Result<Layers, ConfigError> {
        Layers::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn each_service_gives_one_kind_of_nats_credentials() {
        let auth = |pairs: &[(&str, &str)]| {
            CommonConfig::from_layers(&layers(pairs).expect("layers"), 1).map(|c| c.nats_auth)
        };
        assert_eq!(auth(&[]).ok(), Some(waihu_bus::NatsAuth::None));
        let c = auth(&[
            ("WAIHU_NATS__USER", "dialer"),
            ("WAIHU_NATS__PASSWORD", "pw-1"),
        ])
        .expect("user and password");
        assert_eq!(
            c,
            waihu_bus::NatsAuth::UserPassword {
                user: "dialer".into(),
                password: "pw-1".into()
            }
        );
        assert!(!format!("{c:?}").contains("pw-1"));
        assert_eq!(
            auth(&[("WAIHU_NATS__TOKEN", "t0k")]).ok(),
            Some(waihu_bus::NatsAuth::Token("t0k".into()))
        );
        let e = auth(&[("WAIHU_NATS__USER", "dialer")]).expect_err("no password");
        assert!(e.to_string().contains("nats.password"), "{e}");
        let e = auth(&[
            ("WAIHU_NATS__TOKEN", "t"),
            ("WAIHU_NATS__CREDS_FILE", "/x.creds"),
        ])
        .expect_err("two kinds");
        assert!(e.to_string().contains("nats.creds_file"), "{e}");
    }

    #[test]
    fn passwords_are_redacted_and_secrets_never_printed() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        let c = CommonConfig::from_layers(
            &layers(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).expect("layers"),
            1,
        )
        .expect("config");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
        assert_eq!(format!("{:?}", Secret::from("k3y")), "\"***\"");
        assert_eq!(c.database_url.expose(), "postgres://u:hunter2@h/db");
    }

    #[test]
    fn defaults_then_file_then_aliases_then_waihu_variables() {
        let c = CommonConfig::from_layers(&layers(&[]).expect("layers"), 50051).expect("config");
        assert_eq!(c.nats_url.expose(), DEFAULT_NATS_URL);
        assert_eq!(c.grpc_addr, SocketAddr::from(([0, 0, 0, 0], 50051)));
        assert_eq!(c.replicas, 1);

        let dir = std::env::temp_dir().join(format!("waihu-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("waihu.toml");
        std::fs::write(
            &file,
            "prefix = \"fromfile\"\nnats_url = \"nats://file:4222\"\n\
             shutdown_grace_seconds = 7\n[nats]\nreplicas = 3\nmax_bytes = 1000\n",
        )
        .expect("write");
        let path = file.to_string_lossy().to_string();
        let c = CommonConfig::from_layers(
            &layers(&[
                ("WAIHU_CONFIG", &path),
                ("NATS_URL", "nats://alias:4222"),
                ("WAIHU_NATS__MAX_BYTES", "5"),
                ("WAIHU_PREFIX", "123"),
                ("WAIHU_GRPC_ADDR", "127.0.0.1:9"),
            ])
            .expect("layers"),
            1,
        )
        .expect("config");
        assert_eq!(
            c.prefix, "123",
            "a number-like value stays text for a text setting"
        );
        assert_eq!(
            c.nats_url.expose(),
            "nats://alias:4222",
            "the alias beats the file"
        );
        assert_eq!(c.replicas, 3, "the file beats the default");
        assert_eq!(c.stream_max_bytes, 5, "the variable beats the file");
        assert_eq!(c.shutdown_grace, Duration::from_secs(7));
        assert_eq!(c.grpc_addr, SocketAddr::from(([127, 0, 0, 1], 9)));
        let both = layers(&[
            ("NATS_URL", "nats://alias:1"),
            ("WAIHU_NATS_URL", "nats://own:1"),
        ])
        .expect("layers");
        assert_eq!(
            CommonConfig::from_layers(&both, 1)
                .expect("config")
                .nats_url
                .expose(),
            "nats://own:1"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn bad_values_name_the_variable_and_the_key() {
        let e = CommonConfig::from_layers(
            &layers(&[("WAIHU_NATS__MAX_BYTES", "lots")]).expect("layers"),
            1,
        )
        .expect_err("not a number");
        assert!(e.setting.contains("WAIHU_NATS__MAX_BYTES"), "{e}");
        assert!(e.setting.contains("nats.max_bytes"), "{e}");
        assert!(e.to_string().contains("lots"), "{e}");
        let e =
            CommonConfig::from_layers(&layers(&[("WAIHU_GRPC_ADDR", "here")]).expect("layers"), 1)
                .expect_err("not an address");
        assert!(e.setting.contains("WAIHU_GRPC_ADDR"), "{e}");
        let e = CommonConfig::from_layers(
            &layers(&[("WAIHU_NATS__REPLICAS", "0")]).expect("layers"),
            1,
        )
        .expect_err("zero replicas");
        assert!(e.to_string().contains("1 to 5"), "{e}");
        let e = layers(&[("WAIHU_CONFIG", "/nonexistent/waihu.toml")])
            .err()
            .expect("missing file");
        assert!(e.setting.contains("/nonexistent/waihu.toml"), "{e}");
        let dir = std::env::temp_dir().join(format!("waihu-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[nats\nreplicas = ").expect("write");
        let e = layers(&[("WAIHU_CONFIG", &file.to_string_lossy())])
            .err()
            .expect("bad toml");
        assert!(e.setting.contains("bad.toml"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(default)]
    struct Section {
        ticks: u32,
        #[serde(deserialize_with = "from_str")]
        span: Span,
    }

    #[derive(Debug, PartialEq)]
    struct Span(u32, u32);

    impl FromStr for Span {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let (a, b) = s.split_once('-').ok_or("want a-b")?;
            Ok(Span(
                a.parse().map_err(|_| "a")?,
                b.parse().map_err(|_| "b")?,
            ))
        }
    }

    impl Default for Section {
        fn default() -> Self {
            Section {
                ticks: 1,
                span: Span(1, 2),
            }
        }
    }

    #[test]
    fn sections_default_when_unset_and_parse_text_settings() {
        let l = layers(&[]).expect("layers");
        assert_eq!(
            l.section::<Section>("sim").expect("section"),
            Section::default()
        );
        let l = layers(&[("WAIHU_SIM__SPAN", "3-4")]).expect("layers");
        assert_eq!(
            l.section::<Section>("sim").expect("section"),
            Section {
                ticks: 1,
                span: Span(3, 4)
            }
        );
        let e = layers(&[("WAIHU_SIM__SPAN", "34")])
            .expect("layers")
            .section::<Section>("sim")
            .expect_err("bad span");
        assert!(e.setting.contains("WAIHU_SIM__SPAN"), "{e}");
        assert!(e.reason.contains("want a-b"), "{e}");
    }
}
