//! Generated protobuf and gRPC code for waihu (`proto/waihu/v1`), the encoded descriptor set
//! (for gRPC reflection) and a descriptor pool for proto3 JSON.

use std::sync::OnceLock;

/// `waihu.v1`: the event envelope, event payloads and the gRPC services.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("waihu.v1");
}

pub use prost_types::Timestamp;

impl v1::ContactRow {
    /// A row with only a phone number.
    pub fn with_phone(phone: impl Into<String>) -> Self {
        v1::ContactRow {
            phone: phone.into(),
            ..Default::default()
        }
    }
}

impl v1::AddContactsRequest {
    /// Rows per message when a list is streamed through `AddContacts`.
    pub const ROWS_PER_MESSAGE: usize = 2000;

    /// `rows` as the messages of one `AddContacts` stream for `task_id`.
    pub fn chunked(task_id: &str, rows: &[v1::ContactRow]) -> Vec<Self> {
        rows.chunks(Self::ROWS_PER_MESSAGE)
            .map(|c| v1::AddContactsRequest {
                task_id: task_id.to_string(),
                rows: c.to_vec(),
            })
            .collect()
    }
}

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
