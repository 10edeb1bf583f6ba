//! Typed configuration. Every setting has a local default, is overridden by a `WAIHU_*`
//! environment variable (`__` separates nesting, e.g. `WAIHU_SIMULATOR__SEED`), and a bad value
//! fails start-up naming the variable. Secrets are never printed.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

#[derive(Debug, thiserror::Error)]
#[error("environment variable {var}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

/// Reads `var` (or the first of `fallbacks` that is set), parsing it, or returns `default`.
pub fn env_or<T>(var: &str, fallbacks: &[&str], default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    lookup_or(|name| std::env::var(name).ok(), var, fallbacks, default)
}

/// [`env_or`] over any source of variables (tests pass a map instead of the process
/// environment, which they must not change).
pub fn lookup_or<T>(
    lookup: impl Fn(&str) -> Option<String>,
    var: &str,
    fallbacks: &[&str],
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    for name in std::iter::once(var).chain(fallbacks.iter().copied()) {
        if let Some(value) = lookup(name) {
            return value.trim().parse().map_err(|e: T::Err| ConfigError {
                var: name.to_string(),
                value: if name.contains("URL") {
                    redact(&value)
                } else {
                    value.clone()
                },
                reason: e.to_string(),
            });
        }
    }
    Ok(default)
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

/// Settings every service shares.
#[derive(Clone)]
pub struct CommonConfig {
    /// `WAIHU_NATS_URL` or `NATS_URL`.
    pub nats_url: String,
    /// `WAIHU_DATABASE_URL` or `DATABASE_URL`.
    pub database_url: String,
    /// `WAIHU_PREFIX`: namespace of subjects and streams.
    pub prefix: String,
    /// `WAIHU_NATS__REPLICAS`: JetStream stream replicas (3 on a cluster).
    pub replicas: usize,
    /// `WAIHU_NATS__MAX_AGE_SECONDS`: how long the events stream keeps events (0 = for good).
    pub stream_max_age: Duration,
    /// `WAIHU_NATS__MAX_BYTES`: how many bytes the events stream keeps (0 = no limit).
    pub stream_max_bytes: i64,
    /// `WAIHU_GRPC_ADDR`.
    pub grpc_addr: SocketAddr,
    /// `WAIHU_DATABASE__MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `WAIHU_SHUTDOWN_GRACE_SECONDS`: how long in-flight work may take after SIGTERM.
    pub shutdown_grace: Duration,
}

impl fmt::Debug for CommonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonConfig")
            .field("nats_url", &redact(&self.nats_url))
            .field("database_url", &redact(&self.database_url))
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .field("stream_max_age", &self.stream_max_age)
            .field("stream_max_bytes", &self.stream_max_bytes)
            .field("grpc_addr", &self.grpc_addr)
            .field("db_max_connections", &self.db_max_connections)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/waihu";

impl CommonConfig {
    /// Reads the shared settings; `default_port` is the service's own gRPC port.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        Ok(CommonConfig {
            nats_url: env_or(
                "WAIHU_NATS_URL",
                &["NATS_URL"],
                DEFAULT_NATS_URL.to_string(),
            )?,
            database_url: env_or(
                "WAIHU_DATABASE_URL",
                &["DATABASE_URL"],
                DEFAULT_DATABASE_URL.to_string(),
            )?,
            prefix: env_or("WAIHU_PREFIX", &[], "waihu".to_string())?,
            replicas: env_or("WAIHU_NATS__REPLICAS", &[], 1)?,
            stream_max_age: Duration::from_secs(env_or("WAIHU_NATS__MAX_AGE_SECONDS", &[], 0)?),
            stream_max_bytes: env_or("WAIHU_NATS__MAX_BYTES", &[], 0)?,
            grpc_addr: env_or(
                "WAIHU_GRPC_ADDR",
                &[],
                SocketAddr::from(([0, 0, 0, 0], default_port)),
            )?,
            db_max_connections: env_or("WAIHU_DATABASE__MAX_CONNECTIONS", &[], 8)?,
            shutdown_grace: Duration::from_secs(env_or("WAIHU_SHUTDOWN_GRACE_SECONDS", &[], 20)?),
        })
    }

    /// Settings for a service inside a test or benchmark: given infrastructure, port 0.
    pub fn for_test(nats_url: &str, database_url: &str, prefix: &str) -> Self {
        CommonConfig {
            nats_url: nats_url.into(),
            database_url: database_url.into(),
            prefix: prefix.into(),
            replicas: 1,
            stream_max_age: Duration::ZERO,
            stream_max_bytes: 0,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_max_connections: 8,
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// The bus settings these values describe.
    pub fn bus(&self) -> waihu_bus::BusConfig {
        waihu_bus::BusConfig {
            url: self.nats_url.clone(),
            prefix: self.prefix.clone(),
            replicas: self.replicas,
            max_age: self.stream_max_age,
            max_bytes: self.stream_max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn bad_values_name_the_variable_and_aliases_apply_in_order() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = lookup_or::<u16>(vars(&[("WAIHU_X", "seventy")]), "WAIHU_X", &[], 1)
            .expect_err("fails");
        assert_eq!(e.var, "WAIHU_X");
        assert!(e.to_string().contains("seventy"));
        assert_eq!(lookup_or::<u16>(vars(&[]), "WAIHU_X", &[], 7).ok(), Some(7));
        let both = vars(&[("NATS_URL", "nats://b"), ("WAIHU_NATS_URL", "nats://a")]);
        assert_eq!(
            lookup_or(both, "WAIHU_NATS_URL", &["NATS_URL"], String::new()).ok(),
            Some("nats://a".to_string())
        );
        let alias = vars(&[("DATABASE_URL", "postgres://u:pw@h/db")]);
        let e = lookup_or::<u16>(alias, "WAIHU_DATABASE_URL", &["DATABASE_URL"], 0)
            .expect_err("not a number");
        assert_eq!(e.var, "DATABASE_URL");
        assert!(!e.to_string().contains("pw"), "secrets are redacted: {e}");
    }
}
