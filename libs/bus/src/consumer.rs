use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    AckKind,
};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn, Instrument};
use waihu_events::{trace, RecordedEvent, HEADER_EVENT_TYPE};

use crate::{Bus, BusError, DeadLetter};

/// A durable pull consumer and how its failures are handled.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name, unique within the deployment's prefix.
    pub name: String,
    /// Aggregate kind to follow (`"task"`, `"call"`, `"contact"`) or `""` for every event.
    pub kind: String,
    /// Event types handed to the handler; others are acked unseen. Empty = all.
    pub event_types: Vec<&'static str>,
    /// Deliveries of one message before it is dead-lettered (the bound is enforced here, so a
    /// message is never silently dropped by the server's own `max_deliver`).
    pub max_deliver: i64,
    pub ack_wait: Duration,
    /// Nak delay after the first failure; doubles with each delivery, capped at `ack_wait`.
    pub backoff: Duration,
    /// Messages pulled per request and handed to a batch handler at most.
    pub batch: usize,
}

impl ConsumerSpec {
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        ConsumerSpec {
            name: name.into(),
            kind: kind.into(),
            event_types: Vec::new(),
            // With the backoff below: about 7 minutes of retries before a transient failure
            // is given up on.
            max_deliver: 20,
            ack_wait: Duration::from_secs(30),
            backoff: Duration::from_millis(200),
            batch: 256,
        }
    }

    /// For consumers whose state must not miss an event (a dead letter there leaves a contact
    /// or task unfinished): about 100 minutes of retries before a transient failure is given up.
    pub fn patient(mut self) -> Self {
        self.max_deliver = 200;
        self
    }

    pub fn types(mut self, types: &[&'static str]) -> Self {
        self.event_types = types.to_vec();
        self
    }

    fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&event_type)
    }

    fn backoff_for(&self, delivered: i64) -> Duration {
        let exp = (delivered.max(1) - 1).min(16) as u32;
        self.backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.ack_wait)
    }
}

/// A decoded message handed to a handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub stream_seq: u64,
    /// 1 on first delivery.
    pub delivered: i64,
    pub event: RecordedEvent,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (database or network trouble): nak with backoff, dead-letter at the bound.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help: dead-letter now.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Handles batches in one go (one database transaction, say). If a batch fails, its messages are
/// retried one by one, so one poison message cannot hold the others back.
pub trait BatchHandler: Send + Sync + 'static {
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Handles one message at a time, many concurrently; the message is acked when `handle` returns,
/// and kept alive with progress acks while it runs.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Runs one durable consumer until shutdown.
pub struct Runner {
    bus: Bus,
    spec: ConsumerSpec,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    metrics: waihu_metrics::ConsumerMetrics,
}

enum Prepared {
    Skip,
    Poison(String),
    Work(Box<Delivery>),
}

impl Runner {
    /// Creates the durable consumer if it does not exist yet.
    pub async fn new(
        bus: &Bus,
        spec: ConsumerSpec,
        max_ack_pending: i64,
    ) -> Result<Runner, BusError> {
        let stream = bus
            .js
            .get_stream_no_info(bus.events_stream())
            .await
            .map_err(|e| BusError::Consumer(format!("{}: {e}", spec.name)))?;
        let config = pull::Config {
            durable_name: Some(spec.name.clone()),
            filter_subject: bus.events_filter(&spec.kind),
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            deliver_policy: DeliverPolicy::All,
            max_deliver: -1,
            max_ack_pending,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&spec.name, config)
            .await
            .map_err(|e| BusError::Consumer(format!("{}: {e}", spec.name)))?;
        Ok(Runner {
            bus: bus.clone(),
            metrics: waihu_metrics::ConsumerMetrics::new(&spec.name),
            spec,
            consumer,
        })
    }

    async fn messages(&self) -> Result<pull::Stream, BusError> {
        self.consumer
            .stream()
            .max_messages_per_batch(self.spec.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| BusError::Consumer(format!("{}: {e}", self.spec.name)))
    }

    /// Opens the message stream, retrying every second; None once `shutdown` fires.
    async fn open(&self, shutdown: &CancellationToken) -> Option<pull::Stream> {
        while !shutdown.is_cancelled() {
            match self.messages().await {
                Ok(s) => return Some(s),
                Err(e) => {
                    warn!(consumer = %self.spec.name, error = %e, "consumer stream failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        None
    }

    fn prepare(&self, msg: &jetstream::Message) -> Prepared {
        let info = match msg.info() {
            Ok(i) => {
                self.metrics.delivered(i.pending, i.delivered > 1);
                (i.stream_sequence, i.delivered)
            }
            Err(e) => return Prepared::Poison(format!("no JetStream metadata: {e}")),
        };
        if let Some(t) = msg.headers.as_ref().and_then(|h| h.get(HEADER_EVENT_TYPE)) {
            if !self.spec.wants(t.as_str()) {
                return Prepared::Skip;
            }
        }
        match RecordedEvent::decode(&msg.payload) {
            Err(e) => Prepared::Poison(e.to_string()),
            Ok(event) if !self.spec.wants(event.type_name()) => Prepared::Skip,
            Ok(event) => {
                self.metrics.consumed(event.type_name());
                Prepared::Work(Box::new(Delivery {
                    stream_seq: info.0,
                    delivered: info.1,
                    event,
                }))
            }
        }
    }

    /// Pulls batches and hands them to `handler` until `shutdown` fires.
    pub async fn run_batched<H: BatchHandler>(
        self,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        while let Some(stream) = self.open(&shutdown).await {
            let mut chunks = stream.ready_chunks(self.spec.batch);
            loop {
                let chunk = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    c = chunks.next() => c,
                };
                let Some(chunk) = chunk else { break };
                let mut msgs = Vec::with_capacity(chunk.len());
                for m in chunk {
                    match m {
                        Ok(m) => msgs.push(m),
                        Err(e) => warn!(consumer = %self.spec.name, error = %e, "pull error"),
                    }
                }
                self.process_batch(&handler, msgs).await;
            }
        }
        Ok(())
    }

    async fn process_batch<H: BatchHandler>(&self, handler: &H, msgs: Vec<jetstream::Message>) {
        let mut work_msgs = Vec::with_capacity(msgs.len());
        let mut work = Vec::with_capacity(msgs.len());
        for m in msgs {
            match self.prepare(&m) {
                Prepared::Skip => ack(&m, AckKind::Ack).await,
                Prepared::Poison(reason) => self.dead_letter(&m, &reason).await,
                Prepared::Work(d) => {
                    work_msgs.push(m);
                    work.push(*d);
                }
            }
        }
        if work.is_empty() {
            return;
        }
        let span = tracing::debug_span!("consume", consumer = %self.spec.name, n = work.len());
        let result = self
            .keep_alive(&work_msgs, guarded(handler.handle(&work)).instrument(span))
            .await;
        match result {
            Ok(()) => {
                for m in &work_msgs {
                    ack(m, AckKind::Ack).await;
                }
            }
            Err(e) if work.len() == 1 => self.settle_failure(&work_msgs[0], &work[0], e).await,
            Err(HandlerError::Transient(reason)) if work.iter().all(|d| d.delivered <= 1) => {
                // First failure (an outage, most likely): the whole batch waits and comes back.
                for (m, d) in work_msgs.iter().zip(&work) {
                    let e = HandlerError::Transient(reason.clone());
                    self.settle_failure(m, d, e).await;
                }
            }
            Err(e) => {
                // Refused, or failing again: find the message at fault by retrying one by one.
                debug!(consumer = %self.spec.name, error = %e, "batch failed; retrying one by one");
                for (m, d) in work_msgs.iter().zip(work) {
                    let one = guarded(handler.handle(std::slice::from_ref(&d)));
                    match self.keep_alive(std::slice::from_ref(m), one).await {
                        Ok(()) => ack(m, AckKind::Ack).await,
                        Err(e) => self.settle_failure(m, &d, e).await,
                    }
                }
            }
        }
    }

    /// Runs `work`, telling the server every half `ack_wait` that `msgs` are still in progress,
    /// so a long batch is not redelivered while it is being handled.
    async fn keep_alive<T>(&self, msgs: &[jetstream::Message], work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let mut tick = tokio::time::interval(self.spec.ack_wait / 2);
        tick.tick().await;
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = tick.tick() => {
                    for m in msgs {
                        ack(m, AckKind::Progress).await;
                    }
                }
            }
        }
    }

    async fn settle_failure(&self, msg: &jetstream::Message, d: &Delivery, e: HandlerError) {
        match e {
            HandlerError::Permanent(reason) => self.dead_letter(msg, &reason).await,
            HandlerError::Transient(reason) if d.delivered >= self.spec.max_deliver => {
                let reason = format!("gave up after {} deliveries: {reason}", d.delivered);
                self.dead_letter(msg, &reason).await
            }
            HandlerError::Transient(reason) => {
                let delay = self.spec.backoff_for(d.delivered);
                warn!(consumer = %self.spec.name, seq = d.stream_seq, delivered = d.delivered,
                      ?delay, %reason, "handler failed; will retry");
                ack(msg, AckKind::Nak(Some(delay))).await;
            }
        }
    }

    /// Copies the message to the consumer's dead-letter subject with the reason, then terminates
    /// it; if the dead letter cannot be stored the message is nak'd so nothing is lost.
    async fn dead_letter(&self, msg: &jetstream::Message, reason: &str) {
        self.metrics.dead_lettered();
        let (seq, delivered) = msg
            .info()
            .map(|i| (i.stream_sequence, i.delivered))
            .unwrap_or((0, 0));
        let letter = DeadLetter {
            consumer: &self.spec.name,
            subject: &msg.subject,
            stream_seq: seq,
            deliveries: delivered,
            reason,
        };
        match self
            .bus
            .dead_letter(letter, msg.headers.as_ref(), msg.payload.clone())
            .await
        {
            Ok(_) => {
                error!(consumer = %self.spec.name, seq, %reason, "message dead-lettered");
                ack(msg, AckKind::Term).await;
            }
            Err(e) => {
                error!(consumer = %self.spec.name, seq, error = %e, "cannot dead-letter; nak");
                ack(msg, AckKind::Nak(Some(self.spec.ack_wait))).await;
            }
        }
    }

    /// Handles up to `max_in_flight` messages at once until `shutdown` fires, then waits up to
    /// `grace` for those in flight (the rest are redelivered after `ack_wait`).
    pub async fn run_concurrent<H: MessageHandler>(
        self,
        handler: Arc<H>,
        max_in_flight: usize,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), BusError> {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        'outer: while let Some(mut stream) = this.open(&shutdown).await {
            loop {
                while tasks.try_join_next().is_some() {}
                // A free slot first, then a message: nothing waits unacknowledged for a slot.
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break 'outer },
                };
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    m = stream.next() => m,
                };
                let msg = match next {
                    None => break,
                    Some(Err(e)) => {
                        warn!(consumer = %this.spec.name, error = %e, "pull error");
                        continue;
                    }
                    Some(Ok(m)) => m,
                };
                let delivery = match this.prepare(&msg) {
                    Prepared::Skip => {
                        ack(&msg, AckKind::Ack).await;
                        continue;
                    }
                    Prepared::Poison(reason) => {
                        this.dead_letter(&msg, &reason).await;
                        continue;
                    }
                    Prepared::Work(d) => *d,
                };
                let (this, handler) = (this.clone(), handler.clone());
                // The handler's span continues the trace the event was produced in.
                let span = tracing::info_span!("handle", consumer = %this.spec.name,
                    event_type = delivery.event.type_name(), seq = delivery.stream_seq);
                trace::set_parent(
                    &span,
                    &delivery.event.traceparent,
                    &delivery.event.tracestate,
                );
                tasks.spawn(async move {
                    let _permit = permit;
                    let work = guarded(handler.handle(delivery.clone())).instrument(span);
                    let result = this.keep_alive(std::slice::from_ref(&msg), work).await;
                    match result {
                        Ok(()) => ack(&msg, AckKind::Ack).await,
                        Err(e) => this.settle_failure(&msg, &delivery, e).await,
                    }
                });
            }
        }
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        Ok(())
    }
}

/// A handler's result, with a panic turned into a permanent failure of what it was handling.
async fn guarded(work: impl Future<Output = Result<(), HandlerError>>) -> Result<(), HandlerError> {
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandlerError::Permanent("the handler panicked".into())))
}

async fn ack(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        warn!(subject = %msg.subject, error = %e, "ack failed; the message will be redelivered");
    }
}
