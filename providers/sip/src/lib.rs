//! The `sip` provider: a line that dials a SIP trunk (a carrier's, or an IP-PBX such as
//! FreeSWITCH or Asterisk) directly, with no cloud in between.
//!
//! One SIP user agent per adapter ([`SipStack`], built on `rsipstack`: RFC 3261 transactions
//! with their retransmission timers, dialogs, digest authentication) places every `sip` line's
//! calls: an INVITE from the line's caller number with an SDP offer of G.711 (PCMU, PCMA);
//! 100 is the call being set up, 180/183 ringing, 200 (which the stack ACKs) answered; our ring
//! timeout sends CANCEL (its 487 is our own doing: released 19 NO_ANSWER), a hang-up sends CANCEL
//! or BYE, and the line's maximum call duration sends BYE. A final response is mapped by
//! `shared/vectors/sip_to_q850.tsv` unless it carries a Q.850 `Reason` header, which wins.
//! What the far end sends once answered is kept as a WAV recording ([`media`]) and announced with
//! `RecordingAvailable`.
//!
//! A line's `provider_config`:
//! - `trunk` (required): `host:port` of the trunk (a name or an address; port 5060 if left out);
//! - `transport`: `udp` (the default) or `tcp`;
//! - `username`: the digest user when the trunk challenges (with the credential `password`);
//! - `domain`: the host of the From and Request URIs when it is not the trunk's;
//! - `ring_timeout_s`: seconds from the INVITE before we CANCEL an unanswered call (default 45,
//!   1-600);
//! - `max_call_s`: seconds an answered call may last before we BYE (default 3600, 1-86400);
//! - `record`: `true` (the default) or `false`.

mod call;
pub mod media;
mod stack;

use std::{collections::BTreeMap, time::Duration};

pub use stack::{SipProvider, StackConfig};
use waihu_provider_core::LineConfig;

/// The provider type `sip` lines name.
pub const KIND: &str = "sip";

/// Settings a `sip` line may have, and credentials it may have.
pub const SETTINGS: &[&str] = &[
    "trunk",
    "transport",
    "username",
    "domain",
    "ring_timeout_s",
    "max_call_s",
    "record",
];
pub const CREDENTIALS: &[&str] = &["password"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A `sip` line's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Trunk {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: Option<String>,
    pub domain: String,
    pub ring_timeout: Duration,
    pub max_call: Duration,
    pub record: bool,
}

/// A setting that is wrong: the setting's name and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSetting {
    pub field: String,
    pub why: String,
}

fn bad(field: &str, why: impl Into<String>) -> BadSetting {
    BadSetting {
        field: field.to_string(),
        why: why.into(),
    }
}

fn seconds(
    config: &BTreeMap<String, String>,
    name: &str,
    default: u64,
    max: u64,
) -> Result<Duration, BadSetting> {
    match config.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Duration::from_secs(n)),
            _ => Err(bad(name, format!("must be whole seconds from 1 to {max}"))),
        },
    }
}

/// A host part of a SIP URI: a DNS name, an IPv4 address or a bracketed IPv6 address.
fn valid_host(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl Trunk {
    /// Reads and checks a line's settings: every unknown or malformed one is named.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Trunk, BadSetting> {
        if let Some(k) = config.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("is not a sip setting (known: {})", SETTINGS.join(", ")),
            ));
        }
        let trunk = config
            .get("trunk")
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("trunk", "is required for a sip line (host:port)"))?;
        let (host, port) = match trunk.rsplit_once(':') {
            // A bare IPv6 address has colons but no port.
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("trunk", "the port must be 1-65535"))?;
                (h.to_string(), port)
            }
            _ => (trunk.to_string(), 5060),
        };
        if !valid_host(&host) {
            return Err(bad(
                "trunk",
                "must be host:port with a DNS name or an IP address as host",
            ));
        }
        let transport = match config
            .get("transport")
            .map(|t| t.trim().to_ascii_lowercase())
        {
            None => Transport::Udp,
            Some(t) if t.is_empty() || t == "udp" => Transport::Udp,
            Some(t) if t == "tcp" => Transport::Tcp,
            Some(_) => return Err(bad("transport", "must be udp or tcp")),
        };
        let username = config
            .get("username")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if let Some(u) = &username {
            // A SIP URI user part: letters, digits and - _ . + ! ~ * ' ( ) (no escaping).
            let ok = u.len() <= 128
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.+!~*'()".contains(c));
            if !ok {
                return Err(bad(
                    "username",
                    "at most 128 of the characters A-Z a-z 0-9 - _ . + ! ~ * ' ( )",
                ));
            }
        }
        let domain = match config
            .get("domain")
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
        {
            Some(d) if valid_host(d) => d.to_string(),
            Some(_) => return Err(bad("domain", "must be a DNS name or an IP address")),
            None => host.clone(),
        };
        let record = match config.get("record").map(|r| r.trim().to_ascii_lowercase()) {
            None => true,
            Some(r) if r.is_empty() || r == "true" => true,
            Some(r) if r == "false" => false,
            Some(_) => return Err(bad("record", "must be true or false")),
        };
        Ok(Trunk {
            host,
            port,
            transport,
            username,
            domain,
            ring_timeout: seconds(config, "ring_timeout_s", 45, 600)?,
            max_call: seconds(config, "max_call_s", 3600, 86_400)?,
            record,
        })
    }

    pub fn from_line(line: &LineConfig) -> Result<Trunk, BadSetting> {
        Trunk::from_config(&line.config)
    }

    /// The trunk's address (its host resolved, the first address given); None when it does
    /// not resolve.
    pub async fn resolve(&self) -> Option<std::net::SocketAddr> {
        tokio::net::lookup_host((self.host.trim_matches(['[', ']']), self.port))
            .await
            .ok()?
            .next()
    }
}

/// The user part of a SIP URI for a phone number: digits, with a leading `+` kept (E.164).
pub fn user_part(number: &str) -> Option<String> {
    let n = number.trim();
    let (plus, digits) = match n.strip_prefix('+') {
        Some(d) => ("+", d),
        None => ("", n),
    };
    let digits: String = digits.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{plus}{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_are_read_with_their_defaults() {
        let t = Trunk::from_config(&config(&[("trunk", "sip.example.com")])).expect("trunk");
        assert_eq!((t.host.as_str(), t.port), ("sip.example.com", 5060));
        assert_eq!(t.transport, Transport::Udp);
        assert_eq!(t.domain, "sip.example.com");
        assert_eq!(t.ring_timeout, Duration::from_secs(45));
        assert_eq!(t.max_call, Duration::from_secs(3600));
        assert!(t.record);
        let t = Trunk::from_config(&config(&[
            ("trunk", "10.0.0.5:5080"),
            ("transport", "TCP"),
            ("username", "1001"),
            ("domain", "pbx.local"),
            ("ring_timeout_s", "20"),
            ("max_call_s", "600"),
            ("record", "false"),
        ]))
        .expect("trunk");
        assert_eq!((t.host.as_str(), t.port), ("10.0.0.5", 5080));
        assert_eq!(t.transport, Transport::Tcp);
        assert_eq!(t.username.as_deref(), Some("1001"));
        assert_eq!(t.domain, "pbx.local");
        assert_eq!(t.ring_timeout, Duration::from_secs(20));
        assert!(!t.record);
        let t = Trunk::from_config(&config(&[("trunk", "[::1]:5062")])).expect("v6");
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 5062));
    }

    #[test]
    fn bad_settings_are_named() {
        let field = |pairs: &[(&str, &str)]| {
            Trunk::from_config(&config(pairs))
                .expect_err("refused")
                .field
        };
        assert_eq!(field(&[]), "trunk");
        assert_eq!(field(&[("trunk", "host:0")]), "trunk");
        assert_eq!(field(&[("trunk", "host:99999")]), "trunk");
        assert_eq!(field(&[("trunk", "bad host:5060")]), "trunk");
        assert_eq!(field(&[("trunk", "h"), ("transport", "tls")]), "transport");
        assert_eq!(
            field(&[("trunk", "h"), ("ring_timeout_s", "0")]),
            "ring_timeout_s"
        );
        assert_eq!(field(&[("trunk", "h"), ("max_call_s", "x")]), "max_call_s");
        assert_eq!(field(&[("trunk", "h"), ("record", "yes")]), "record");
        assert_eq!(field(&[("trunk", "h"), ("username", "a\"b")]), "username");
        assert_eq!(field(&[("trunk", "h"), ("trunk_port", "1")]), "trunk_port");
    }

    #[test]
    fn numbers_become_uri_user_parts() {
        assert_eq!(
            user_part("+86 138-0000-0001").as_deref(),
            Some("+8613800000001")
        );
        assert_eq!(user_part("05925550001").as_deref(), Some("05925550001"));
        assert_eq!(user_part("1380000000a"), None);
        assert_eq!(user_part("+"), None);
        assert_eq!(user_part("1@evil"), None);
    }
}
