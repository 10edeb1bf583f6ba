use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use crate::{Bus, BusError};

/// Reads the events stream in sequence order without gaps, from a position the reader keeps
/// itself (the event store's checkpoint). Used where a crash must never let a later message
/// overtake an earlier one.
pub struct OrderedReader {
    messages: pull::Ordered,
}

/// One raw message of the events stream.
pub struct RawEvent {
    pub stream_seq: u64,
    /// Shares the received message's bytes.
    pub subject: async_nats::Subject,
    pub payload: Bytes,
}

impl OrderedReader {
    /// Starts after `after_seq` (0 = from the beginning).
    pub async fn open(bus: &Bus, after_seq: u64) -> Result<OrderedReader, BusError> {
        let stream = bus
            .js
            .get_stream_no_info(bus.events_stream())
            .await
            .map_err(|e| BusError::Consumer(e.to_string()))?;
        let deliver_policy = if after_seq == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: after_seq + 1,
            }
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: bus.events_filter(""),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::Consumer(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| BusError::Consumer(e.to_string()))?;
        Ok(OrderedReader { messages })
    }

    /// Waits up to `wait` for the next message, then keeps collecting for at most `fill` more
    /// (larger batches under load), up to `max` messages or until their payloads reach
    /// `max_bytes` (the message that reaches it is the batch's last, so a batch always holds
    /// at least one message).
    pub async fn next_batch(
        &mut self,
        max: usize,
        max_bytes: usize,
        wait: Duration,
        fill: Duration,
    ) -> Result<Vec<RawEvent>, BusError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let first = match tokio::time::timeout(wait, self.messages.next()).await {
            Err(_) => return Ok(out),
            Ok(m) => m,
        };
        let deadline = tokio::time::Instant::now() + fill;
        let mut next = first;
        loop {
            match next {
                None => return Err(BusError::Consumer("ordered consumer ended".into())),
                Some(Err(e)) => return Err(BusError::Consumer(e.to_string())),
                Some(Ok(m)) => {
                    let seq = m
                        .info()
                        .map(|i| i.stream_sequence)
                        .map_err(|e| BusError::Consumer(e.to_string()))?;
                    let m = m.message;
                    bytes += m.payload.len();
                    out.push(RawEvent {
                        stream_seq: seq,
                        subject: m.subject,
                        payload: m.payload,
                    });
                }
            }
            if out.len() >= max || bytes >= max_bytes {
                return Ok(out);
            }
            match self.messages.next().now_or_never() {
                Some(m) => next = m,
                None => match tokio::time::timeout_at(deadline, self.messages.next()).await {
                    Err(_) => return Ok(out),
                    Ok(m) => next = m,
                },
            }
        }
    }
}
