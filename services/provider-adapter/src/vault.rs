//! Lines' provider credentials at rest: AES-256-GCM under a key from the environment
//! (`WAIHU_PROVIDER__CREDENTIALS_KEY`, 32 bytes in base64), bound to their tenant and line
//! (associated data), each sealed value tagged with its key's id. Rotation: put the new key in
//! `CREDENTIALS_KEY` and the old ones in `CREDENTIALS_OLD_KEYS` (comma-separated); values sealed
//! under an old key still open, and the adapter re-seals them under the new key at start-up.

use std::collections::BTreeMap;

use base64::Engine;
use ring::{
    aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    digest,
    rand::{SecureRandom, SystemRandom},
};
use waihu_runtime::config::Secret;

struct Key {
    id: String,
    key: LessSafeKey,
}

impl Key {
    fn parse(setting: &str, b64: &str) -> Result<Key, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| format!("{setting}: not base64"))?;
        if raw.len() != 32 {
            return Err(format!(
                "{setting}: must be 32 bytes (base64 of `openssl rand 32`), not {}",
                raw.len()
            ));
        }
        let id = hex::encode(&digest::digest(&digest::SHA256, &raw).as_ref()[..4]);
        let key = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| format!("{setting}: not an AES-256 key"))?;
        Ok(Key {
            id,
            key: LessSafeKey::new(key),
        })
    }
}

/// The credential keys: the current one seals, every one opens.
pub struct Vault {
    current: Option<Key>,
    old: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// A sealed value: the id of the key that sealed it, and nonce || ciphertext || tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl Vault {
    /// The keys from the settings; no current key means no credentials can be stored (lines
    /// that need none, the simulator's, still work).
    pub fn new(current: Option<&Secret>, old: &[Secret]) -> Result<Vault, String> {
        let current = current
            .filter(|s| !s.expose().trim().is_empty())
            .map(|s| Key::parse("provider.credentials_key", s.expose()))
            .transpose()?;
        let old = old
            .iter()
            .filter(|s| !s.expose().trim().is_empty())
            .map(|s| Key::parse("provider.credentials_old_keys", s.expose()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Vault {
            current,
            old,
            rng: SystemRandom::new(),
        })
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    fn aad(tenant: &str, line: &str) -> String {
        format!("waihu/line-credentials/{tenant}/{line}")
    }

    /// Seals a line's credentials.
    pub fn seal(
        &self,
        tenant: &str,
        line: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<Sealed, String> {
        let key = self.current.as_ref().ok_or(
            "no credentials key is configured (WAIHU_PROVIDER__CREDENTIALS_KEY): \
             credentials cannot be stored",
        )?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| "no randomness for a nonce")?;
        let mut data = serde_json::to_vec(values).map_err(|e| e.to_string())?;
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(tenant, line).as_bytes()),
                &mut data,
            )
            .map_err(|_| "sealing failed")?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&data);
        Ok(Sealed {
            key_id: key.id.clone(),
            bytes,
        })
    }

    /// Opens a line's credentials (with whichever configured key sealed them).
    pub fn open(
        &self,
        tenant: &str,
        line: &str,
        sealed: &Sealed,
    ) -> Result<BTreeMap<String, String>, String> {
        let key = self
            .current
            .iter()
            .chain(&self.old)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| {
                format!(
                    "line {line}: its credentials are sealed with key {}, which is not configured",
                    sealed.key_id
                )
            })?;
        if sealed.bytes.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(format!("line {line}: sealed credentials are truncated"));
        }
        let (nonce, data) = sealed.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce")?;
        let mut data = data.to_vec();
        let plain = key
            .key
            .open_in_place(
                nonce,
                Aad::from(Self::aad(tenant, line).as_bytes()),
                &mut data,
            )
            .map_err(|_| format!("line {line}: credentials do not open (tampered?)"))?;
        serde_json::from_slice(plain).map_err(|e| format!("line {line}: credentials: {e}"))
    }

    /// Whether `sealed` is under an old key (and should be re-sealed).
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        self.current_id().is_some_and(|id| id != sealed.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Secret {
        Secret::new(base64::engine::general_purpose::STANDARD.encode([b; 32]))
    }

    #[test]
    fn values_seal_open_rotate_and_refuse_another_line_or_tampering() {
        let values = BTreeMap::from([("auth_token".to_string(), "tok-123456".to_string())]);
        let v1 = Vault::new(Some(&key(1)), &[]).expect("vault");
        let sealed = v1.seal("t1", "l1", &values).expect("seal");
        assert!(!sealed
            .bytes
            .windows(10)
            .any(|w| w == "tok-123456".as_bytes()));
        assert_eq!(v1.open("t1", "l1", &sealed).expect("open"), values);
        // Bound to its tenant and line.
        assert!(v1.open("t2", "l1", &sealed).is_err());
        assert!(v1.open("t1", "l2", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.bytes.len() - 1;
        tampered.bytes[last] ^= 1;
        assert!(v1.open("t1", "l1", &tampered).is_err());
        // Rotation: the new key seals, the old one still opens.
        let v2 = Vault::new(Some(&key(2)), &[key(1)]).expect("rotated");
        assert!(v2.is_stale(&sealed));
        assert_eq!(v2.open("t1", "l1", &sealed).expect("old key opens"), values);
        let resealed = v2.seal("t1", "l1", &values).expect("seal");
        assert!(!v2.is_stale(&resealed));
        // Without the old key: a clear error naming the key id.
        let v3 = Vault::new(Some(&key(2)), &[]).expect("vault");
        assert!(v3
            .open("t1", "l1", &sealed)
            .expect_err("old key gone")
            .contains(&sealed.key_id));
        // No key: nothing can be stored, and the vault says why.
        let none = Vault::new(None, &[]).expect("vault");
        assert!(none
            .seal("t", "l", &values)
            .expect_err("no key")
            .contains("CREDENTIALS_KEY"));
        assert!(Vault::new(Some(&Secret::new("c2hvcnQ=")), &[])
            .expect_err("short")
            .contains("32 bytes"));
        assert!(!format!("{v2:?}").contains("tok"));
    }
}
