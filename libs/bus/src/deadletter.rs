use bytes::Bytes;
use waihu_events::HEADER_EVENT_TYPE;

use crate::{
    Bus, BusError, HEADER_DLQ_CONSUMER, HEADER_DLQ_DELIVERIES, HEADER_DLQ_REASON,
    HEADER_DLQ_STREAM_SEQ, HEADER_DLQ_SUBJECT,
};

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
    pub async fn dead_letter(
        &self,
        d: DeadLetter<'_>,
        original: Option<&async_nats::HeaderMap>,
        payload: Bytes,
    ) -> Result<u64, BusError> {
        let mut headers = async_nats::HeaderMap::new();
        for name in [HEADER_EVENT_TYPE, "traceparent"] {
            if let Some(v) = original.and_then(|h| h.get(name)) {
                headers.insert(name, v.as_str());
            }
        }
        headers.insert(HEADER_DLQ_REASON, d.reason);
        headers.insert(HEADER_DLQ_CONSUMER, d.consumer);
        headers.insert(HEADER_DLQ_STREAM_SEQ, d.stream_seq.to_string().as_str());
        headers.insert(HEADER_DLQ_SUBJECT, d.subject);
        headers.insert(HEADER_DLQ_DELIVERIES, d.deliveries.to_string().as_str());
        self.publish_raw(self.dlq_subject(d.consumer), headers, payload)
            .await
    }
}
