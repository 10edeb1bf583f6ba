//! AdminService: dead letters (list, show, re-drive) and the store writer's state and re-base.

use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use prost::Message;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use waihu_bus::{
    Bus, HEADER_DLQ_CONSUMER, HEADER_DLQ_DELIVERIES, HEADER_DLQ_ORIGINAL_SIZE, HEADER_DLQ_REASON,
    HEADER_DLQ_STREAM_SEQ, HEADER_DLQ_SUBJECT, HEADER_DLQ_TRUNCATED,
};
use waihu_events::{timestamp, HEADER_EVENT_TYPE};
use waihu_proto::v1::{self as pb, admin_service_server::AdminService};
use waihu_runtime::Health;

use crate::{
    grpc::{invalid, RecordError},
    stream, writer,
};

pub struct AdminApi {
    pub pool: PgPool,
    pub bus: Bus,
    pub health: Health,
}

fn unavailable(e: impl std::fmt::Display) -> RecordError {
    RecordError::Unavailable(format!("the bus is unavailable: {e}"))
}

fn header<'a>(m: &'a async_nats::jetstream::message::StreamMessage, name: &str) -> &'a str {
    m.headers.get(name).map(|v| v.as_str()).unwrap_or("")
}

fn to_pb(m: &async_nats::jetstream::message::StreamMessage) -> pb::DeadLetter {
    pb::DeadLetter {
        sequence: m.sequence,
        consumer: header(m, HEADER_DLQ_CONSUMER).to_string(),
        reason: header(m, HEADER_DLQ_REASON).to_string(),
        subject: header(m, HEADER_DLQ_SUBJECT).to_string(),
        stream_sequence: header(m, HEADER_DLQ_STREAM_SEQ).parse().unwrap_or(0),
        deliveries: header(m, HEADER_DLQ_DELIVERIES).parse().unwrap_or(0),
        event_type: header(m, HEADER_EVENT_TYPE).to_string(),
        dead_lettered_at: Some(timestamp(m.time)),
        original_size: header(m, HEADER_DLQ_ORIGINAL_SIZE)
            .parse()
            .unwrap_or(m.payload.len() as u64),
        payload_truncated: !header(m, HEADER_DLQ_TRUNCATED).is_empty(),
        envelope: pb::Envelope::decode(m.payload.as_ref()).ok(),
        payload: m.payload.to_vec(),
    }
}

impl AdminApi {
    async fn dlq(&self) -> Result<Stream<()>, RecordError> {
        self.bus
            .jetstream()
            .get_stream_no_info(self.bus.dlq_stream())
            .await
            .map_err(unavailable)
    }

    async fn get(
        &self,
        sequence: u64,
    ) -> Result<async_nats::jetstream::message::StreamMessage, RecordError> {
        if sequence == 0 {
            return Err(invalid("sequence", "is required"));
        }
        match self.dlq().await?.get_raw_message(sequence).await {
            Ok(m) => Ok(m),
            Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => {
                Err(RecordError::NotFound(format!("dead letter {sequence}")))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// A page of dead letters stops short of this many bytes.
const PAGE_BYTES: usize = 3 * 1024 * 1024;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_dead_letters(
        &self,
        req: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let r = req.into_inner();
        let size = match r.page_size {
            0 => 100,
            n if n > 1000 => return Err(invalid("page_size", "at most 1000").into()),
            n => n as usize,
        };
        if r.consumer.contains(['.', '*', '>', ' ']) {
            return Err(invalid(
                "consumer",
                "a consumer name has no dots, spaces or wildcards",
            )
            .into());
        }
        let subject = if r.consumer.is_empty() {
            format!("{}.dlq.>", self.bus.prefix())
        } else {
            self.bus.dlq_subject(&r.consumer)
        };
        let dlq = self.dlq().await?;
        let mut out: Vec<pb::DeadLetter> = Vec::new();
        let mut next = r.after_sequence + 1;
        // A page also ends before it would pass PAGE_BYTES (dead letters carry payloads of up
        // to a megabyte; a reply must stay under gRPC's 4 MiB): the rest is on the next page.
        let (mut bytes, mut full) = (0usize, false);
        while out.len() < size {
            match dlq.get_first_raw_message_by_subject(&subject, next).await {
                Ok(m) => {
                    let letter = to_pb(&m);
                    let len = letter.encoded_len();
                    if !out.is_empty() && bytes + len > PAGE_BYTES {
                        full = true;
                        break;
                    }
                    next = m.sequence + 1;
                    bytes += len;
                    out.push(letter);
                }
                Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => break,
                Err(e) => return Err(unavailable(e).into()),
            }
        }
        let next_after_sequence = match (out.len() == size || full, out.last()) {
            (true, Some(l)) => l.sequence,
            _ => 0,
        };
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: out,
            next_after_sequence,
        }))
    }

    async fn get_dead_letter(
        &self,
        req: Request<pb::GetDeadLetterRequest>,
    ) -> Result<Response<pb::DeadLetter>, Status> {
        let m = self.get(req.get_ref().sequence).await?;
        Ok(Response::new(to_pb(&m)))
    }

    async fn replay_dead_letter(
        &self,
        req: Request<pb::ReplayDeadLetterRequest>,
    ) -> Result<Response<pb::ReplayDeadLetterResponse>, Status> {
        let sequence = req.get_ref().sequence;
        let (operator, actor) = (
            waihu_runtime::tenant(req.metadata())?,
            waihu_runtime::actor(&req),
        );
        let m = self.get(sequence).await?;
        let letter = to_pb(&m);
        if letter.payload_truncated {
            return Err(RecordError::FailedPrecondition(format!(
                "dead letter {sequence} holds only part of the original ({} bytes); it is still \
                 in the events stream at sequence {}",
                letter.original_size, letter.stream_sequence
            ))
            .into());
        }
        let events_root = format!("{}.evt.", self.bus.prefix());
        if !letter.subject.starts_with(&events_root) {
            return Err(RecordError::FailedPrecondition(format!(
                "dead letter {sequence} came from {:?}, not from this deployment's events",
                letter.subject
            ))
            .into());
        }
        // No Nats-Msg-Id: within the duplicate window the original's id would make JetStream
        // drop the copy. Consumers and the store are idempotent on the event id anyway.
        let mut headers = async_nats::HeaderMap::new();
        if !letter.event_type.is_empty() {
            headers.insert(HEADER_EVENT_TYPE, letter.event_type.as_str());
        }
        let republished = self
            .bus
            .publish_raw(letter.subject.clone(), headers, m.payload.clone())
            .await
            .map_err(unavailable)?;
        if let Err(e) = self.dlq().await?.delete_message(sequence).await {
            tracing::warn!(sequence, error = %e, "re-driven dead letter not removed");
        }
        tracing::info!(sequence, subject = %letter.subject, republished, "dead letter re-driven");
        crate::audit::record(
            Some(&self.bus),
            &operator,
            &actor,
            "AdminService/ReplayDeadLetter",
            &format!("dead letter {sequence}"),
            &format!("republished as {republished} on {}", letter.subject),
        )
        .await;
        Ok(Response::new(pb::ReplayDeadLetterResponse {
            republished_sequence: republished,
            subject: letter.subject,
        }))
    }

    async fn get_store_status(
        &self,
        _req: Request<pb::GetStoreStatusRequest>,
    ) -> Result<Response<pb::StoreStatus>, Status> {
        Ok(Response::new(self.status().await?))
    }

    async fn rebase_store(
        &self,
        req: Request<pb::RebaseStoreRequest>,
    ) -> Result<Response<pb::StoreStatus>, Status> {
        let force = req.get_ref().force;
        let (operator, actor) = (
            waihu_runtime::tenant(req.metadata())?,
            waihu_runtime::actor(&req),
        );
        let position = waihu_store::checkpoint(&self.pool, writer::CHECKPOINT)
            .await
            .map_err(RecordError::from)?;
        match stream::check(&self.pool, &self.bus, position).await {
            Ok(_) => {
                return Err(RecordError::FailedPrecondition(
                    "the store follows the events stream as it is; there is nothing to re-base"
                        .into(),
                )
                .into())
            }
            Err(stream::CheckError::Halt(h)) if h.0.contains("expired") && !force => {
                return Err(RecordError::FailedPrecondition(format!(
                    "{}; re-basing accepts that gap: pass force",
                    h.0
                ))
                .into())
            }
            Err(stream::CheckError::Halt(h)) => {
                tracing::warn!(reason = %h.0, position, "re-basing the event store")
            }
            Err(stream::CheckError::Other(e)) => return Err(RecordError::Unavailable(e).into()),
        }
        stream::rebase(&self.pool, &self.bus, position)
            .await
            .map_err(|e| match e {
                stream::CheckError::Halt(h) => RecordError::FailedPrecondition(h.0),
                stream::CheckError::Other(e) => RecordError::Unavailable(e),
            })?;
        crate::audit::record(
            Some(&self.bus),
            &operator,
            &actor,
            "AdminService/RebaseStore",
            "the event store",
            &format!(
                "re-based at position {position}{}",
                if force { " (forced)" } else { "" }
            ),
        )
        .await;
        Ok(Response::new(self.status().await?))
    }
}

impl AdminApi {
    async fn status(&self) -> Result<pb::StoreStatus, RecordError> {
        let position = waihu_store::checkpoint(&self.pool, writer::CHECKPOINT).await?;
        let state = self.bus.events_stream_state().await.map_err(unavailable)?;
        let followed = stream::followed(&self.pool, self.bus.events_stream()).await?;
        let halted = match self.health.problems().remove(writer::PART) {
            Some(reason) => reason,
            // This instance may be a standby: judge the stream itself.
            None => match stream::check(&self.pool, &self.bus, position).await {
                Err(stream::CheckError::Halt(h)) => h.0,
                _ => String::new(),
            },
        };
        Ok(pb::StoreStatus {
            position,
            stream_last_sequence: state.last_sequence,
            base: followed.map_or(0, |f| f.base),
            stream_created: Some(timestamp(state.created)),
            halted,
            unknown_events: waihu_store::counter(&self.pool, waihu_store::UNKNOWN_EVENTS).await?,
            dead_lettered: waihu_store::counter(&self.pool, waihu_store::DEAD_LETTERED).await?,
            projected_position: waihu_store::checkpoint(&self.pool, crate::projection::CHECKPOINT)
                .await?,
            projection_refused: waihu_store::counter(&self.pool, waihu_store::PROJECTION_REFUSED)
                .await?,
        })
    }
}
