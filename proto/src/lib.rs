//! Generated protobuf and gRPC code for waihu (`proto/waihu/v1`).

/// `waihu.v1`: the event envelope, event payloads and the gRPC services.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("waihu.v1");
}

pub use prost_types::Timestamp;
