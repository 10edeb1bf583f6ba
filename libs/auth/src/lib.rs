//! Who is calling, and may they: JWT bearer tokens on every gRPC service.
//!
//! - [`perms`]: the permissions, and the one table saying what each RPC needs.
//! - [`keys`]: the keys tokens are checked with (HS256 shared key, RS256/ES256 from a JWKS file
//!   or URL, or the local development key), and minting for development and tests.
//! - [`layer`]: the tower layer every waihu gRPC server runs requests through.

pub mod keys;
pub mod layer;
pub mod perms;
pub mod remote;

pub use keys::{AuthConfig, Claims, KeyError, Keys, Principal};
pub use layer::AuthLayer;
pub use perms::{requirement, Requirement, ALL_PERMISSIONS};
