//! The event model shared by every waihu service: the envelope, typed event payloads,
//! aggregates and their bus subjects, and trace context.

mod aggregate;
mod envelope;
pub mod trace;

pub use aggregate::{Aggregate, AggregateParseError};
pub use envelope::{
    from_timestamp, timestamp, DecodeError, Decoded, Event, EventMeta, RecordedEvent, UnknownEvent,
    EVENT_TYPES, MAX_ENVELOPE_FIELD_BYTES,
};
pub use waihu_proto::v1 as pb;

/// Schema version written into every envelope this build produces.
pub const SCHEMA_VERSION: u32 = 1;

/// Header carrying the event type, so consumers can skip events without decoding them.
pub const HEADER_EVENT_TYPE: &str = "Waihu-Event-Type";

/// Largest encoded envelope a producer may write: well under NATS' default 1 MiB `max_payload`,
/// leaving room for headers and for dead-letter headers added to a copy.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// The audit record of a command: `actor` (the token's user) did `action` (e.g.
/// "TaskService/StartTask") to `target` in `tenant`. Its own stream, version 1.
pub fn audit(tenant: &str, actor: &str, action: &str, target: &str, detail: &str) -> RecordedEvent {
    let id = uuid::Uuid::now_v7();
    let mut meta = EventMeta::new(tenant, Aggregate::Audit(id), 1);
    meta.event_id = id;
    RecordedEvent::new(
        meta,
        Event::AuditRecorded(pb::AuditRecorded {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
        }),
    )
}

/// Makes a string safe as a NATS header value: control characters (CR and LF would break the
/// protocol) are escaped, and the result is cut to at most `max` bytes on a char boundary.
pub fn header_value(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > max {
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_lose_line_breaks_and_stay_bounded() {
        assert_eq!(super::header_value("a\r\nb\0", 100), "a\\r\\nb\\u{0}");
        assert_eq!(super::header_value("号码号码", 7), "号码");
        assert_eq!(super::header_value(&"x".repeat(5000), 1024).len(), 1024);
    }
}
