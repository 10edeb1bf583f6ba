//! The event model shared by every waihu service: the envelope, typed event payloads,
//! aggregates and their bus subjects, normalised hangup causes, and trace context.

mod aggregate;
mod envelope;
pub mod hangup;
pub mod phone;
pub mod trace;

pub use aggregate::{Aggregate, AggregateParseError};
pub use envelope::{timestamp, DecodeError, Event, EventMeta, RecordedEvent, EVENT_TYPES};
pub use waihu_proto::v1 as pb;

/// Schema version written into every envelope this build produces.
pub const SCHEMA_VERSION: u32 = 1;

/// Header carrying the event type, so consumers can skip events without decoding them.
pub const HEADER_EVENT_TYPE: &str = "Waihu-Event-Type";
