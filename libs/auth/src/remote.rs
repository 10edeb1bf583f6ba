//! Signing keys fetched from a JWKS URL (an identity provider's `jwks_uri`): fetched when the
//! service starts, again every `jwks_refresh_seconds`, and soon after a token names a key id the
//! set does not hold (the provider rotated its keys), at most once per [`MIN_REFETCH`].
//! Until the first fetch succeeds, tokens signed with such keys are refused as UNAUTHENTICATED
//! with the reason; HS256 tokens and keys from a file are unaffected.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::keys::parse_jwks;

/// Soonest a fetch follows the last one when a token names an unknown key id.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Wait between attempts while the set has never been fetched.
const RETRY: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_BYTES: usize = 1 << 20;

type KeySet = Vec<(Option<String>, Algorithm, DecodingKey)>;

/// The fetched set and the index of the key a token needs in it (shared, not copied, per
/// verification).
pub type FoundKey = (Arc<KeySet>, usize);

pub struct RemoteJwks {
    pub url: String,
    refresh: Duration,
    keys: RwLock<Option<Arc<KeySet>>>,
    last_fetch: Mutex<Option<Instant>>,
    wake: Notify,
    client: reqwest::Client,
}

impl RemoteJwks {
    pub fn new(url: &str, refresh: Duration) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(format!("{url:?}: must be https (or http)"));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the JWKS HTTP client: {e}"))?;
        Ok(RemoteJwks {
            url: url.to_string(),
            refresh,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
            wake: Notify::new(),
            client,
        })
    }

    /// The key for a token's algorithm and key id, if the set holds one. Err when the set was
    /// never fetched. A miss asks for a refetch.
    pub fn find(&self, alg: Algorithm, kid: Option<&str>) -> Result<Option<FoundKey>, String> {
        let guard = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let Some(set) = guard.as_ref() else {
            self.wake.notify_one();
            return Err(format!(
                "the signing keys from {} are not loaded yet; retry",
                self.url
            ));
        };
        let found = crate::keys::key_index(set, alg, kid).map(|i| (set.clone(), i));
        if found.is_none() {
            self.wake.notify_one();
        }
        Ok(found)
    }

    /// Fetches the set once; keeps the previous one when the fetch fails.
    pub async fn fetch(&self) -> Result<usize, String> {
        *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if !resp.status().is_success() {
            return Err(format!("GET {}: HTTP {}", self.url, resp.status()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if body.len() > MAX_BYTES {
            return Err(format!("GET {}: more than {MAX_BYTES} bytes", self.url));
        }
        let text = String::from_utf8_lossy(&body);
        let set = parse_jwks(&text).map_err(|e| format!("{}: {e}", self.url))?;
        let n = set.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(set));
        Ok(n)
    }

    fn loaded(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Keeps the set fresh for as long as the process runs.
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.fetch().await {
                Ok(n) => info!(url = %self.url, keys = n, "JWKS fetched"),
                Err(e) => warn!(error = %e, "JWKS fetch failed; keeping the keys held"),
            }
            let wait = if self.loaded() { self.refresh } else { RETRY };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {
                    let since = self
                        .last_fetch
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .map_or(MIN_REFETCH, |t| t.elapsed());
                    if since < MIN_REFETCH {
                        tokio::time::sleep(MIN_REFETCH - since).await;
                    }
                }
            }
        }
    }
}
