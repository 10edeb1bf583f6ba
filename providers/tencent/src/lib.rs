//! Tencent Cloud Contact Center (CCC) provider: request signing and hangup causes.
//!
//! - [`sign`]: TC3-HMAC-SHA256, the API signature v3 every Tencent Cloud API takes, plus the
//!   vector-shaped entry point [`sign_vector`] behind `waihu provider sign`.
//! - [`causes`]: the CDR push's `EndStatus` codes mapped to Q.850 (data: `causes.tsv`).
//!
//! The CCC API client and the CDR webhook come later, on top of these.

pub mod causes;
pub mod sign;

pub use causes::{cause, table};
pub use sign::{sign_vector, tc3_sign, utc_date, Signed, Tc3Signed};

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
