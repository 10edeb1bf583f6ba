//! 容联云 / Ronglian (cloopen, yuntongxun) provider: REST request authentication and hangup
//! causes.
//!
//! - [`sign`]: the REST scheme, `sig = UPPER(MD5(AccountSid + AuthToken + Batch))` in the query
//!   and `Authorization: Base64(AccountSid:Batch)`, plus the vector-shaped entry point
//!   [`sign_vector`] behind `waihu provider sign`.
//! - [`causes`]: the hangup notification's `byetype` codes and the voice notification's `state`
//!   codes mapped to Q.850 (data: `causes.tsv`, `landing_states.tsv`).
//!
//! The REST client and the callback webhooks come later, on top of these.

pub mod causes;
pub mod sign;

pub use causes::{cause, landing_cause, landing_table, table};
pub use sign::{authorization, batch_at, batch_now, sig, sign_vector, Signed};

/// Where the shared test vectors are: `WAIHU_VECTORS_DIR`, else `shared/vectors` beside the repo.
#[cfg(test)]
pub(crate) mod vectors {
    use std::path::PathBuf;

    pub fn dir() -> PathBuf {
        std::env::var_os("WAIHU_VECTORS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
            })
    }

    /// The text of one vector file.
    pub fn read(name: &str) -> String {
        let path = dir().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("vectors must be beside the repo ({}): {e}", path.display()))
    }

    /// One entry of `signatures.json`.
    pub fn signature_entry(key: &str) -> serde_json::Value {
        let all: serde_json::Value =
            serde_json::from_str(&read("signatures.json")).expect("signatures.json is JSON");
        all.get(key)
            .unwrap_or_else(|| panic!("signatures.json has no {key:?}"))
            .clone()
    }
}
