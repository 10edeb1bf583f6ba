//! Alibaba Cloud (Aliyun) Contact Center provider: request signing and hangup causes.
//!
//! - [`sign`]: Alibaba Cloud's two request signatures, RPC signature V1 (HMAC-SHA1, the one the
//!   CCC 2020-07-01 RPC API takes) and V3 (ACS3-HMAC-SHA256), plus the vector-shaped entry
//!   points [`sign_rpc_vector`] and [`sign_acs3_vector`] behind `waihu provider sign`.
//! - [`causes`]: CCC's `ReleaseReason` ("SIP code followed by text") mapped to Q.850.
//!
//! The CCC API client and event handling come later, on top of these.

pub mod causes;
pub mod sign;

pub use causes::release_reason_cause;
pub use sign::{
    acs3_sign, percent_encode, rpc_signature, rpc_string_to_sign, sign_acs3_vector,
    sign_rpc_vector, Acs3Request, Acs3Signed, Signed,
};

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
