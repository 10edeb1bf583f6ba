//! Plays dial commands (`CallRequested`) on the simulator and publishes the call's lifecycle.
//!
//! Every step is published with `Nats-Expected-Last-Subject-Sequence` = the call subject's
//! previous sequence, so exactly one player drives a call. Event ids are derived from
//! (call, step): after a crash the redelivered command resumes where the subject's last message
//! says the call got to, and nothing is announced twice.

use waihu_bus::{Bus, BusError, Delivery, Expect, HandlerError, MessageHandler};
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};

use crate::sim::{Outcome, Simulator};

pub struct SimulatorAdapter {
    pub bus: Bus,
    pub sim: Simulator,
}

/// One step of a call: its wall-clock delay (simulated ms) and its event.
struct Step {
    after_ms: u64,
    event: RecordedEvent,
}

fn steps(
    sim: &Simulator,
    req: &pb::CallRequested,
    cause_of: &RecordedEvent,
) -> Result<Vec<Step>, HandlerError> {
    let call_id = uuid::Uuid::parse_str(&req.call_id)
        .map_err(|_| HandlerError::Permanent(format!("call_id {:?} is not a UUID", req.call_id)))?;
    let outcome = sim.outcome(&req.phone, req.attempt);
    let setup = sim.setup_ms(&req.phone, req.attempt);
    let (cause, answered) = outcome.cause();
    let (cid, tid, no) = (req.call_id.clone(), req.task_id.clone(), req.contact_no);
    let ringing = pb::CallRinging {
        call_id: cid.clone(),
        task_id: tid.clone(),
        contact_no: no,
    };
    let answered_event = pb::CallAnswered {
        call_id: cid.clone(),
        task_id: tid.clone(),
        contact_no: no,
    };
    let mut plan = vec![(
        "dialing",
        0,
        Event::CallDialing(pb::CallDialing {
            call_id: cid.clone(),
            task_id: tid.clone(),
            contact_no: no,
            provider_call_id: format!("sim-{call_id}"),
        }),
    )];
    if matches!(
        outcome,
        Outcome::Answered { .. } | Outcome::NoAnswer { .. } | Outcome::Rejected { .. }
    ) {
        plan.push(("ringing", setup, Event::CallRinging(ringing)));
    }
    if answered {
        plan.push((
            "answered",
            outcome.ring_ms(),
            Event::CallAnswered(answered_event),
        ));
    }
    let last_wait = match outcome {
        Outcome::Answered { talk_ms, .. } => talk_ms,
        Outcome::NoAnswer { ring_ms } | Outcome::Rejected { ring_ms } => ring_ms,
        _ => setup,
    };
    plan.push((
        "released",
        last_wait,
        Event::CallReleased(pb::CallReleased {
            call_id: cid,
            task_id: tid,
            contact_no: no,
            cause: Some(cause),
            answered,
            ring_ms: outcome.ring_ms(),
            talk_ms: outcome.talk_ms(),
        }),
    ));
    // CallRequested is version 1 of the call; the provider's steps follow it.
    Ok(plan
        .into_iter()
        .enumerate()
        .map(|(i, (name, after_ms, event))| {
            let meta = EventMeta::new(
                cause_of.meta.tenant_id.clone(),
                Aggregate::Call(call_id),
                i as u64 + 2,
            )
            .with_deterministic_id(&format!("call/{call_id}/{name}"))
            .caused_by(cause_of)
            .with_task(cause_of.meta.task_id.unwrap_or_default());
            Step {
                after_ms,
                event: RecordedEvent::new(meta, event),
            }
        })
        .collect())
}

fn transient(e: BusError) -> HandlerError {
    HandlerError::Transient(e.to_string())
}

impl MessageHandler for SimulatorAdapter {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let Event::CallRequested(req) = &d.event.event else {
            return Ok(());
        };
        let steps = steps(&self.sim, req, &d.event)?;
        let subject = self.bus.subject(&d.event.meta.aggregate);
        let (mut next, mut seq) = (0, d.stream_seq);
        if d.delivered > 1 {
            (next, seq) = self.resume_point(&subject, &steps, &d).await?;
        }
        while next < steps.len() {
            let step = &steps[next];
            tokio::time::sleep(self.sim.wall(step.after_ms)).await;
            match self
                .bus
                .publish(&step.event, Expect::LastSubjectSeq(seq))
                .await
            {
                Ok(o) => seq = o.sequence(),
                Err(BusError::WrongLastSequence { .. }) => {
                    // Someone else moved this call on (a redelivery racing us): find out where.
                    let (n, s) = self.resume_point(&subject, &steps, &d).await?;
                    if n <= next {
                        return Err(HandlerError::Transient(format!(
                            "{subject} moved by another writer"
                        )));
                    }
                    (next, seq) = (n, s);
                    continue;
                }
                Err(e) => return Err(transient(e)),
            }
            next += 1;
        }
        Ok(())
    }
}

impl SimulatorAdapter {
    /// Which step comes next, judged from the last message on the call's subject.
    async fn resume_point(
        &self,
        subject: &str,
        steps: &[Step],
        d: &Delivery,
    ) -> Result<(usize, u64), HandlerError> {
        let Some((seq, id)) = self.bus.last_on_subject(subject).await.map_err(transient)? else {
            return Err(HandlerError::Permanent(format!(
                "{subject} is empty, yet a command was delivered from it"
            )));
        };
        if id == d.event.meta.event_id.to_string() {
            return Ok((0, seq));
        }
        match steps
            .iter()
            .position(|s| s.event.meta.event_id.to_string() == id)
        {
            Some(i) => Ok((i + 1, seq)),
            // Not one of ours: the call was ended by something else; nothing left to play.
            None => Ok((steps.len(), seq)),
        }
    }
}
