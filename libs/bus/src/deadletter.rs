use bytes::Bytes;
use waihu_events::{header_value, HEADER_EVENT_TYPE};

use crate::{
    Bus, BusError, HEADER_DLQ_CONSUMER, HEADER_DLQ_DELIVERIES, HEADER_DLQ_ORIGINAL_SIZE,
    HEADER_DLQ_REASON, HEADER_DLQ_STREAM_SEQ, HEADER_DLQ_SUBJECT, HEADER_DLQ_TRUNCATED,
};

/// Longest reason kept in a dead letter's header.
const MAX_REASON_BYTES: usize = 1024;
/// Room left under the server's `max_payload` for the dead letter's headers.
const HEADER_ROOM: usize = 8 * 1024;

/// Where a message given up on came from, and why.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The consumer that gave up: the dead letter goes to `<prefix>.dlq.<consumer>`.
    pub consumer: &'a str,
    /// The subject and stream sequence the original was read from.
    pub subject: &'a str,
    pub stream_seq: u64,
    pub deliveries: i64,
    pub reason: &'a str,
}

impl Bus {
    /// Stores the original payload in the dead-letter stream with `Waihu-Dlq-*` headers saying
    /// where it came from and why. Of the original headers only the event type and trace context
    /// are kept: its dedupe and concurrency headers must not apply here.
    ///
    /// Whatever the input, this cannot fail on its content: every header value is made safe
    /// (control characters escaped, length bounded), and a payload too large to carry with the
    /// headers is cut, marked `Waihu-Dlq-Truncated` (the original stays in its stream at
    /// `stream_seq`).
    pub async fn dead_letter(
        &self,
        d: DeadLetter<'_>,
        original: Option<&async_nats::HeaderMap>,
        payload: Bytes,
    ) -> Result<u64, BusError> {
        let mut headers = async_nats::HeaderMap::new();
        for name in [HEADER_EVENT_TYPE, "traceparent"] {
            if let Some(v) = original.and_then(|h| h.get(name)) {
                headers.insert(name, header_value(v.as_str(), 256).as_str());
            }
        }
        headers.insert(
            HEADER_DLQ_REASON,
            header_value(d.reason, MAX_REASON_BYTES).as_str(),
        );
        headers.insert(HEADER_DLQ_CONSUMER, header_value(d.consumer, 256).as_str());
        headers.insert(HEADER_DLQ_STREAM_SEQ, d.stream_seq.to_string().as_str());
        headers.insert(HEADER_DLQ_SUBJECT, header_value(d.subject, 512).as_str());
        headers.insert(HEADER_DLQ_DELIVERIES, d.deliveries.to_string().as_str());
        headers.insert(HEADER_DLQ_ORIGINAL_SIZE, payload.len().to_string().as_str());
        let room = self.max_payload().saturating_sub(HEADER_ROOM);
        let payload = if payload.len() > room {
            headers.insert(HEADER_DLQ_TRUNCATED, "true");
            payload.slice(..room)
        } else {
            payload
        };
        self.publish_raw(self.dlq_subject(d.consumer), headers, payload)
            .await
    }
}
