//! Generated protobuf and gRPC code for waihu (`proto/waihu/v1`), the encoded descriptor set
//! (for gRPC reflection) and a descriptor pool for proto3 JSON.

use std::sync::OnceLock;

/// `waihu.v1`: the event envelope, event payloads and the gRPC services.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("waihu.v1");
}

pub use prost_types::Timestamp;

/// The encoded `FileDescriptorSet` of every waihu proto file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/waihu_descriptor.bin"));

/// Every waihu message by full name (e.g. `waihu.v1.CallReleased`), for dynamic decoding and
/// canonical proto3 JSON.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // Built from this crate's own compiled descriptors: failing here is a build defect.
        #[allow(clippy::expect_used)]
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes")
    })
}

/// The package every waihu message lives in.
pub const PACKAGE: &str = "waihu.v1";
