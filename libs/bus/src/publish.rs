use async_nats::jetstream::{
    context::PublishErrorKind, message::PublishMessage as Publish, message::StreamMessage,
    stream::LastRawMessageErrorKind,
};
use bytes::Bytes;
use waihu_events::{RecordedEvent, HEADER_EVENT_TYPE};

use crate::{Bus, BusError};

/// Which message of a subject to read.
enum At {
    Last,
    /// The first at or after this stream sequence.
    From(u64),
}

/// Optimistic concurrency for one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No check.
    Any,
    /// The aggregate's subject must end at this stream sequence (0: the subject must be empty).
    LastSubjectSeq(u64),
}

/// What JetStream did with a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Stored(u64),
    /// The event id was already in the duplicate window; the original's sequence.
    Duplicate(u64),
}

impl PublishOutcome {
    pub fn sequence(&self) -> u64 {
        match self {
            PublishOutcome::Stored(s) | PublishOutcome::Duplicate(s) => *s,
        }
    }
}

fn message(event: &RecordedEvent, expect: Expect) -> Publish {
    let mut p = Publish::build()
        .payload(Bytes::from(event.encode()))
        .message_id(event.meta.event_id.to_string())
        .header(HEADER_EVENT_TYPE, event.type_name());
    if !event.traceparent.is_empty() {
        p = p.header("traceparent", event.traceparent.as_str());
    }
    if let Expect::LastSubjectSeq(seq) = expect {
        p = p.expected_last_subject_sequence(seq);
    }
    p
}

impl Bus {
    /// Publishes one event to its aggregate's subject and waits for JetStream's ack.
    pub async fn publish(
        &self,
        event: &RecordedEvent,
        expect: Expect,
    ) -> Result<PublishOutcome, BusError> {
        let subject = self.subject(&event.meta.aggregate);
        let ack = self
            .js
            .send_publish(subject.clone(), message(event, expect))
            .await
            .map_err(|e| publish_error(&subject, expect, e))?
            .await
            .map_err(|e| publish_error(&subject, expect, e))?;
        Ok(if ack.duplicate {
            PublishOutcome::Duplicate(ack.sequence)
        } else {
            waihu_metrics::metrics().published(event.type_name());
            PublishOutcome::Stored(ack.sequence)
        })
    }

    /// Publishes many events, keeping at most `window` acks outstanding; results in input order.
    pub async fn publish_all(
        &self,
        events: &[(RecordedEvent, Expect)],
        window: usize,
    ) -> Vec<Result<PublishOutcome, BusError>> {
        let mut out = Vec::with_capacity(events.len());
        for chunk in events.chunks(window.max(1)) {
            let mut pending = Vec::with_capacity(chunk.len());
            for (event, expect) in chunk {
                let subject = self.subject(&event.meta.aggregate);
                let sent = self
                    .js
                    .send_publish(subject.clone(), message(event, *expect))
                    .await;
                pending.push((subject, *expect, sent, event.type_name()));
            }
            // The acks are awaited together: each one's timeout starts when it is awaited, so
            // awaiting them in turn would stall a chunk sent to a server that died for one
            // timeout per message (minutes) instead of one.
            let acks = pending
                .into_iter()
                .map(|(subject, expect, sent, type_name)| async move {
                    match sent {
                        Err(e) => Err(publish_error(&subject, expect, e)),
                        Ok(fut) => match fut.await {
                            Err(e) => Err(publish_error(&subject, expect, e)),
                            Ok(ack) if ack.duplicate => Ok(PublishOutcome::Duplicate(ack.sequence)),
                            Ok(ack) => {
                                waihu_metrics::metrics().published(type_name);
                                Ok(PublishOutcome::Stored(ack.sequence))
                            }
                        },
                    }
                });
            out.extend(futures::future::join_all(acks).await);
        }
        out
    }

    /// The message on `subject` at `at` in the events stream (None when there is none).
    async fn raw_on_subject(
        &self,
        subject: &str,
        at: At,
    ) -> Result<Option<StreamMessage>, BusError> {
        let read_error = |e: String| BusError::Read {
            subject: subject.into(),
            reason: e,
        };
        let stream = self
            .js
            .get_stream_no_info(&self.events_stream)
            .await
            .map_err(|e| read_error(e.to_string()))?;
        let request = stream.raw_message_builder();
        let request = match at {
            At::Last => request.last_by_subject(subject),
            At::From(seq) => request.sequence(seq).next_by_subject(subject),
        };
        match request.send().await {
            Ok(m) => Ok(Some(m)),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(read_error(e.to_string())),
        }
    }

    async fn last_raw(&self, subject: &str) -> Result<Option<StreamMessage>, BusError> {
        self.raw_on_subject(subject, At::Last).await
    }

    /// The last message on a subject: its stream sequence and event id (`Nats-Msg-Id`).
    pub async fn last_on_subject(&self, subject: &str) -> Result<Option<(u64, String)>, BusError> {
        Ok(self.last_raw(subject).await?.map(|m| {
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            (m.sequence, id)
        }))
    }

    /// The last message on a subject, decoded: its stream sequence and event (None if empty).
    pub async fn last_event_on_subject(
        &self,
        subject: &str,
    ) -> Result<Option<(u64, Result<RecordedEvent, waihu_events::DecodeError>)>, BusError> {
        Ok(self
            .last_raw(subject)
            .await?
            .map(|m| (m.sequence, RecordedEvent::decode(&m.payload))))
    }

    /// Every message on a subject, decoded, oldest first (at most `max`): an aggregate's
    /// history, e.g. a call's lifecycle.
    pub async fn events_on_subject(
        &self,
        subject: &str,
        max: usize,
    ) -> Result<Vec<(u64, Result<RecordedEvent, waihu_events::DecodeError>)>, BusError> {
        let mut out = Vec::new();
        let mut from = 1;
        while out.len() < max {
            let Some(m) = self.raw_on_subject(subject, At::From(from)).await? else {
                break;
            };
            from = m.sequence + 1;
            out.push((m.sequence, RecordedEvent::decode(&m.payload)));
        }
        Ok(out)
    }

    /// Publishes raw bytes with headers to a plain JetStream subject (dead letters, tests).
    pub async fn publish_raw(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        payload: Bytes,
    ) -> Result<u64, BusError> {
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|e| BusError::Publish {
                subject: subject.clone(),
                reason: e.to_string(),
            })?
            .await
            .map_err(|e| BusError::Publish {
                subject,
                reason: e.to_string(),
            })?;
        Ok(ack.sequence)
    }
}

fn publish_error(
    subject: &str,
    expect: Expect,
    e: async_nats::jetstream::context::PublishError,
) -> BusError {
    match (e.kind(), expect) {
        (PublishErrorKind::WrongLastSequence, Expect::LastSubjectSeq(expected)) => {
            BusError::WrongLastSequence {
                subject: subject.to_string(),
                expected,
            }
        }
        _ => BusError::Publish {
            subject: subject.to_string(),
            reason: e.to_string(),
        },
    }
}
