//! The call ledger: one per call being placed. Every event is published with
//! `Nats-Expected-Last-Subject-Sequence` = the call subject's previous sequence, so exactly one
//! writer moves a call on, and with an id derived from (call, stage), so nothing is announced
//! twice. After a crash the ledger resumes from the subject's last message.

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waihu_bus::{Bus, BusError, Delivery, Expect, HandlerError};
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};

use crate::Signal;

/// How far a call has got, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Requested,
    Dialing,
    Ringing,
    Answered,
    Released,
}

impl Stage {
    const ALL: [Stage; 4] = [
        Stage::Dialing,
        Stage::Ringing,
        Stage::Answered,
        Stage::Released,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Requested => "requested",
            Stage::Dialing => "dialing",
            Stage::Ringing => "ringing",
            Stage::Answered => "answered",
            Stage::Released => "released",
        }
    }
}

/// The ledger of one call.
pub struct CallLedger {
    bus: Bus,
    request: RecordedEvent,
    call_id: Uuid,
    subject: String,
    /// Sequence of the subject's last message, and that message's stream version.
    seq: u64,
    version: u64,
    reached: Stage,
    /// Cancelled when someone hangs the call up (DialerService.Hangup): the provider drops it.
    hangup: CancellationToken,
    /// The call was released by someone else (a hang-up, the watchdog), not by this ledger.
    ended_elsewhere: bool,
}

fn transient(e: BusError) -> HandlerError {
    HandlerError::Transient(e.to_string())
}

/// The deterministic id of a call's event at `stage`.
pub fn event_id(call_id: Uuid, stage: Stage) -> Uuid {
    EventMeta::new("", Aggregate::Call(call_id), 0)
        .with_deterministic_id(&format!("call/{call_id}/{}", stage.name()))
        .event_id
}

impl CallLedger {
    /// Opens the ledger of the call a `CallRequested` delivery asks for; on a redelivery, finds
    /// how far an earlier attempt got.
    pub async fn open(bus: &Bus, d: &Delivery) -> Result<CallLedger, HandlerError> {
        let Event::CallRequested(req) = &d.event.event else {
            return Err(HandlerError::Permanent(format!(
                "a {} is not a call request",
                d.event.type_name()
            )));
        };
        let call_id = Uuid::parse_str(&req.call_id).map_err(|_| {
            HandlerError::Permanent(format!("call_id {:?} is not a UUID", req.call_id))
        })?;
        let mut ledger = CallLedger {
            bus: bus.clone(),
            subject: bus.subject(&d.event.meta.aggregate),
            request: d.event.clone(),
            call_id,
            seq: d.stream_seq,
            version: d.event.meta.stream_version,
            reached: Stage::Requested,
            hangup: CancellationToken::new(),
            ended_elsewhere: false,
        };
        if d.delivered > 1 {
            ledger.resume().await?;
        }
        Ok(ledger)
    }

    /// Reopens the ledger of the call `request` asks for (a `CallRequested` at sequence
    /// `request_seq` of its subject) away from its delivery, as a provider campaign's sync
    /// does long after the request was taken: finds how far the call got.
    pub async fn reopen(
        bus: &Bus,
        request: RecordedEvent,
        request_seq: u64,
    ) -> Result<CallLedger, HandlerError> {
        let Event::CallRequested(req) = &request.event else {
            return Err(HandlerError::Permanent(format!(
                "a {} is not a call request",
                request.type_name()
            )));
        };
        let call_id = Uuid::parse_str(&req.call_id).map_err(|_| {
            HandlerError::Permanent(format!("call_id {:?} is not a UUID", req.call_id))
        })?;
        let mut ledger = CallLedger {
            bus: bus.clone(),
            subject: bus.subject(&request.meta.aggregate),
            version: request.meta.stream_version,
            request,
            call_id,
            seq: request_seq,
            reached: Stage::Requested,
            hangup: CancellationToken::new(),
            ended_elsewhere: false,
        };
        ledger.resume().await?;
        Ok(ledger)
    }

    /// Lets `hangup` end the call: the provider, waiting on [`CallLedger::hung_up`], drops it.
    pub fn with_hangup(mut self, hangup: CancellationToken) -> Self {
        self.hangup = hangup;
        self
    }

    /// Resolves when the call was hung up from outside (its release is already recorded by
    /// whoever hung up; the provider only has to drop the call).
    pub async fn hung_up(&self) {
        self.hangup.cancelled().await
    }

    /// How far the call has got.
    pub fn reached(&self) -> Stage {
        self.reached
    }

    pub fn call_id(&self) -> Uuid {
        self.call_id
    }

    /// Finds where the call got to from the subject's last message.
    async fn resume(&mut self) -> Result<(), HandlerError> {
        let Some((seq, last)) = self
            .bus
            .last_event_on_subject(&self.subject)
            .await
            .map_err(transient)?
        else {
            return Err(HandlerError::Permanent(format!(
                "{} is empty, yet a command was delivered from it",
                self.subject
            )));
        };
        self.seq = seq;
        let Ok(last) = last else {
            // Something unreadable ended up on the subject: nothing of ours can follow it.
            self.reached = Stage::Released;
            self.ended_elsewhere = true;
            return Ok(());
        };
        self.version = last.meta.stream_version;
        self.reached = if last.meta.event_id == self.request.meta.event_id {
            Stage::Requested
        } else {
            match Stage::ALL
                .into_iter()
                .find(|s| event_id(self.call_id, *s) == last.meta.event_id)
            {
                Some(stage) => stage,
                // Not one of ours: the call was ended by something else (a hang-up, the
                // watchdog).
                None => {
                    self.ended_elsewhere = true;
                    Stage::Released
                }
            }
        };
        Ok(())
    }

    /// Whether the call was released by someone else (a hang-up, the watchdog) rather than
    /// through this ledger: the provider may still have it up, and should drop it.
    pub fn ended_elsewhere(&self) -> bool {
        self.ended_elsewhere
    }

    fn event(&self, signal: Signal, provider_report: String) -> Event {
        let r = match &self.request.event {
            Event::CallRequested(r) => r.clone(),
            _ => pb::CallRequested::default(),
        };
        let (call_id, task_id, contact_no) = (r.call_id, r.task_id, r.contact_no);
        match signal {
            Signal::Dialing { provider_call_id } => Event::CallDialing(pb::CallDialing {
                call_id,
                task_id,
                contact_no,
                provider_call_id,
                provider_report,
            }),
            Signal::Ringing => Event::CallRinging(pb::CallRinging {
                call_id,
                task_id,
                contact_no,
                provider_report,
            }),
            Signal::Answered => Event::CallAnswered(pb::CallAnswered {
                call_id,
                task_id,
                contact_no,
                provider_report,
            }),
            Signal::Released {
                cause,
                answered,
                ring_ms,
                talk_ms,
            } => Event::CallReleased(pb::CallReleased {
                call_id,
                task_id,
                contact_no,
                cause: Some(cause),
                answered,
                ring_ms,
                talk_ms,
                provider_report,
            }),
        }
    }

    /// Records what the provider said. A signal for a stage the call has already passed (late,
    /// repeated or out of order) changes nothing; otherwise its event is published next.
    pub async fn record(&mut self, signal: Signal) -> Result<(), HandlerError> {
        self.record_report(signal, String::new()).await
    }

    /// [`CallLedger::record`], keeping what the provider said (`raw`) on the event. A signal
    /// that implies steps not yet recorded (an answered release heard before its ringing) first
    /// records those, without a report, so the call's events come out in lifecycle order.
    pub async fn record_report(&mut self, signal: Signal, raw: String) -> Result<(), HandlerError> {
        if signal.stage() <= self.reached {
            return Ok(());
        }
        let implied: &[Signal] = match &signal {
            Signal::Released { answered: true, .. } => &[Signal::Ringing, Signal::Answered],
            Signal::Answered => &[Signal::Ringing],
            _ => &[],
        };
        // Only once the call is out (dialing): a ringing before the provider accepted the call
        // cannot be.
        if self.reached >= Stage::Dialing {
            for step in implied {
                self.publish(step.clone(), String::new()).await?;
            }
        }
        self.publish(signal, raw).await
    }

    /// Adds `event` to the call after its release (a recording kept, say), once: see
    /// [`attach_to_call`].
    pub async fn attach(&mut self, name: &str, event: Event) -> Result<(), HandlerError> {
        let (seq, version) = attach(
            &self.bus,
            &self.request.meta.tenant_id,
            self.call_id,
            Some(&self.request),
            name,
            event,
            Some((self.seq, self.version)),
        )
        .await?;
        self.seq = seq;
        self.version = version;
        Ok(())
    }

    async fn publish(
        &mut self,
        signal: Signal,
        provider_report: String,
    ) -> Result<(), HandlerError> {
        let stage = signal.stage();
        loop {
            if stage <= self.reached {
                return Ok(());
            }
            let meta = EventMeta::new(
                self.request.meta.tenant_id.clone(),
                Aggregate::Call(self.call_id),
                self.version + 1,
            )
            .with_deterministic_id(&format!("call/{}/{}", self.call_id, stage.name()))
            .caused_by(&self.request);
            // A click-to-dial call has no task.
            let meta = match self.request.meta.task_id {
                Some(task) => meta.with_task(task),
                None => meta,
            };
            let event =
                RecordedEvent::new(meta, self.event(signal.clone(), provider_report.clone()));
            match self
                .bus
                .publish(&event, Expect::LastSubjectSeq(self.seq))
                .await
            {
                Ok(o) => {
                    self.seq = o.sequence();
                    self.version += 1;
                    self.reached = stage;
                    return Ok(());
                }
                Err(BusError::WrongLastSequence { .. }) => {
                    // Someone else moved this call on (a redelivery racing us): find out where.
                    let before = (self.seq, self.reached);
                    self.resume().await?;
                    if (self.seq, self.reached) == before {
                        return Err(HandlerError::Transient(format!(
                            "{} moved by another writer",
                            self.subject
                        )));
                    }
                }
                Err(e) => return Err(transient(e)),
            }
        }
    }
}

/// Adds `event` to call `call_id` of `tenant` (a recording uploaded after the call, say), once:
/// its id is derived from the call and `name`, and it follows whatever the call's subject holds
/// last.
pub async fn attach_to_call(
    bus: &Bus,
    tenant: &str,
    call_id: Uuid,
    name: &str,
    event: Event,
) -> Result<(), HandlerError> {
    attach(bus, tenant, call_id, None, name, event, None)
        .await
        .map(|_| ())
}

/// Publishes `event` on the call's subject after its last message (`at`: its sequence and
/// version, when known); returns the new ones.
async fn attach(
    bus: &Bus,
    tenant: &str,
    call_id: Uuid,
    cause: Option<&RecordedEvent>,
    name: &str,
    event: Event,
    at: Option<(u64, u64)>,
) -> Result<(u64, u64), HandlerError> {
    let subject = bus.subject(&Aggregate::Call(call_id));
    let id = format!("call/{call_id}/{name}");
    let (mut seq, mut version, mut task) = match at {
        Some((s, v)) => (s, v, cause.and_then(|c| c.meta.task_id)),
        // Without a ledger (a recording uploaded later), only after the call's release: an
        // event after it must never stand where the release is still to come.
        None => match last_on(bus, &subject).await? {
            Some((_, Ok(e)))
                if !matches!(e.event, Event::CallReleased(_) | Event::RecordingAvailable(_)) =>
            {
                return Err(HandlerError::Permanent(format!(
                    "the call is not over yet (its last event is {}): {name} comes after its release",
                    e.type_name()
                )))
            }
            Some((s, Ok(e))) => (s, e.meta.stream_version, e.meta.task_id),
            Some((s, Err(_))) => (s, 0, None),
            None => {
                return Err(HandlerError::Permanent(format!(
                    "{subject} is empty: no call to add {name} to"
                )))
            }
        },
    };
    if task.is_none() {
        task = cause.and_then(|c| c.meta.task_id);
    }
    for _ in 0..10 {
        let meta = EventMeta::new(tenant.to_string(), Aggregate::Call(call_id), version + 1)
            .with_deterministic_id(&id);
        let meta = match cause {
            Some(c) => meta.caused_by(c),
            None => meta,
        };
        let meta = match task {
            Some(t) => meta.with_task(t),
            None => meta,
        };
        let wanted = meta.event_id;
        let recorded = RecordedEvent::new(meta, event.clone());
        match bus.publish(&recorded, Expect::LastSubjectSeq(seq)).await {
            Ok(o) => return Ok((o.sequence(), version + 1)),
            Err(BusError::WrongLastSequence { .. }) => match last_on(bus, &subject).await? {
                Some((s, Ok(e))) if e.meta.event_id == wanted => {
                    return Ok((s, e.meta.stream_version))
                }
                Some((s, Ok(e))) => {
                    seq = s;
                    version = e.meta.stream_version;
                }
                Some((s, Err(_))) => seq = s,
                None => {}
            },
            Err(e) => return Err(transient(e)),
        }
    }
    Err(HandlerError::Transient(format!(
        "{subject} keeps moving: {name} not added"
    )))
}

async fn last_on(
    bus: &Bus,
    subject: &str,
) -> Result<Option<(u64, Result<RecordedEvent, waihu_events::DecodeError>)>, HandlerError> {
    bus.last_event_on_subject(subject).await.map_err(transient)
}
