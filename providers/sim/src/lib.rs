//! The simulator provider: every call's outcome and timings are a pure function of
//! (seed, phone, attempt) ([`model`]), played in (scaled) real time through the call ledger.

pub mod batch;
pub mod dialogue;
pub mod model;

pub use model::{Mix, MsRange, Outcome, Simulator};
use waihu_bus::HandlerError;
use waihu_events::pb;
use waihu_provider_core::{CallLedger, LineConfig, Provider, Signal, Stage};

/// The simulator behind the [`Provider`] trait.
#[derive(Debug, Clone)]
pub struct SimProvider {
    pub sim: Simulator,
    /// Whether answered calls leave a recording, and where.
    pub recordings: Option<SimRecordings>,
    /// Whether answered calls leave a transcript: a generated dialogue ([`dialogue`]) whose
    /// customer's intent is drawn from (seed, phone, attempt), announced with
    /// `TranscriptAvailable`.
    pub transcripts: bool,
}

/// Recordings of simulated calls: a generated WAV (8 kHz, 16-bit, mono) per answered call,
/// whose length is the simulated talk time divided by `scale` (at most `max_ms`), alternating
/// an "agent" and a "customer" tone with pauses, announced with `RecordingAvailable` like a
/// SIP call's.
#[derive(Debug, Clone)]
pub struct SimRecordings {
    pub dir: std::path::PathBuf,
    pub scale: u32,
    pub max_ms: u64,
}

impl SimRecordings {
    /// How long the recording of a call that talked `talk_ms` lasts.
    pub fn length_ms(&self, talk_ms: u64) -> u64 {
        (talk_ms / self.scale.max(1) as u64).clamp(200, self.max_ms.max(200))
    }
}

/// Sample rate of simulated recordings.
const RATE: u32 = 8000;

/// Writes a simulated conversation of `ms` milliseconds to `path`; its size in bytes.
pub fn write_wav(path: &std::path::Path, ms: u64, seed: u64) -> Result<u64, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tmp = path.with_extension("wav.part");
    let mut w = hound::WavWriter::create(&tmp, spec)?;
    let samples = ms * RATE as u64 / 1000;
    // Turns of 0.6-1.5 s, each a tone (agent 440 Hz, customer 620 Hz) then a short pause.
    let mut turn_left = 0u64;
    let mut pause = 0u64;
    let mut agent = true;
    let mut draw = seed | 1;
    let mut phase = 0f64;
    for _ in 0..samples {
        if turn_left == 0 && pause == 0 {
            draw ^= draw << 13;
            draw ^= draw >> 7;
            draw ^= draw << 17;
            turn_left = 4800 + draw % 7200;
            pause = 800 + (draw >> 20) % 1600;
            agent = !agent;
        }
        let v = if turn_left > 0 {
            turn_left -= 1;
            let f = if agent { 440.0 } else { 620.0 };
            phase += 2.0 * std::f64::consts::PI * f / RATE as f64;
            (phase.sin() * 9000.0) as i16
        } else {
            pause -= 1;
            0
        };
        w.write_sample(v)?;
    }
    w.finalize()?;
    std::fs::rename(&tmp, path)?;
    Ok(44 + samples * 2)
}

/// The signals of the `attempt`-th call to `phone` as the simulator's campaign API reports them
/// (its provider call id `sim-<call_id>`), and how long the call takes in simulated ms from
/// its start to its release: the same outcome and timings as a call placed one by one.
pub fn call_signals(
    sim: &Simulator,
    phone: &str,
    attempt: u32,
    call_id: &str,
) -> (u64, Vec<Signal>) {
    let req = pb::CallRequested {
        phone: phone.to_string(),
        attempt,
        ..Default::default()
    };
    let plan = script(sim, &req, call_id);
    let total = plan.iter().map(|(ms, _)| *ms).sum();
    (total, plan.into_iter().map(|(_, s)| s).collect())
}

/// A call's signals as the simulator plays them, each after its (simulated) delay.
fn script(sim: &Simulator, req: &pb::CallRequested, call_id: &str) -> Vec<(u64, Signal)> {
    let outcome = sim.outcome(&req.phone, req.attempt);
    let setup = sim.setup_ms(&req.phone, req.attempt);
    let (cause, answered) = outcome.cause();
    let mut plan = vec![(
        0,
        Signal::Dialing {
            provider_call_id: format!("sim-{call_id}"),
        },
    )];
    if matches!(
        outcome,
        Outcome::Answered { .. } | Outcome::NoAnswer { .. } | Outcome::Rejected { .. }
    ) {
        plan.push((setup, Signal::Ringing));
    }
    if answered {
        plan.push((outcome.ring_ms(), Signal::Answered));
    }
    let last_wait = match outcome {
        Outcome::Answered { talk_ms, .. } => talk_ms,
        Outcome::NoAnswer { ring_ms } | Outcome::Rejected { ring_ms } => ring_ms,
        _ => setup,
    };
    plan.push((
        last_wait,
        Signal::Released {
            cause,
            answered,
            ring_ms: outcome.ring_ms(),
            talk_ms: outcome.talk_ms(),
        },
    ));
    plan
}

impl SimProvider {
    /// The conversation of an answered call: the same (seed, phone, attempt) always gives the
    /// same customer intent and the same words.
    pub fn dialogue_of(&self, req: &pb::CallRequested) -> dialogue::Dialogue {
        let draw = self.sim.conversation_draw(&req.phone, req.attempt);
        dialogue::dialogue(draw.rotate_left(17), dialogue::intent_for(draw))
    }

    /// Writes the call's recording and announces it (a recording that cannot be written is
    /// logged and left out, as a SIP call's would be).
    async fn record(
        &self,
        rec: &SimRecordings,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
        talk_ms: u64,
    ) -> Result<(), HandlerError> {
        let call = ledger.call_id();
        let ms = rec.length_ms(talk_ms);
        let path = rec.dir.join(format!("{call}.wav"));
        let seed = call.as_u128() as u64;
        let written = {
            let path = path.clone();
            let dir = rec.dir.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(hound::Error::from)?;
                write_wav(&path, ms, seed)
            })
            .await
        };
        let bytes = match written {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(%call, error = %e, "simulated recording not written");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(%call, error = %e, "simulated recording not written");
                return Ok(());
            }
        };
        let event = waihu_events::Event::RecordingAvailable(pb::RecordingAvailable {
            call_id: req.call_id.clone(),
            task_id: req.task_id.clone(),
            contact_no: req.contact_no,
            uri: waihu_provider_core::file_uri(&path),
            content_type: "audio/wav".into(),
            duration_ms: ms,
            bytes,
            codec: "L16".into(),
            source: "sim".into(),
        });
        ledger.attach("recording", event).await
    }
}

impl Provider for SimProvider {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn place(
        &self,
        _line: &LineConfig,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
    ) -> Result<(), HandlerError> {
        for (after_ms, signal) in script(&self.sim, req, &ledger.call_id().to_string()) {
            // Steps an earlier attempt already announced are not played (nor waited for) again.
            if signal.stage() <= ledger.reached() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.sim.wall(after_ms)) => {}
                // Hung up: the release is recorded; nothing more to play.
                _ = ledger.hung_up() => return Ok(()),
            }
            let talked = match &signal {
                Signal::Released {
                    answered: true,
                    talk_ms,
                    ..
                } => Some(*talk_ms),
                _ => None,
            };
            ledger.record(signal).await?;
            if ledger.reached() == Stage::Released {
                if let (Some(talk_ms), Some(rec)) = (talked, &self.recordings) {
                    self.record(rec, req, ledger, talk_ms).await?;
                }
                if talked.is_some() && self.transcripts {
                    let d = self.dialogue_of(req);
                    let event = waihu_events::Event::TranscriptAvailable(pb::TranscriptAvailable {
                        call_id: req.call_id.clone(),
                        task_id: req.task_id.clone(),
                        contact_no: req.contact_no,
                        text: d.text,
                        language: d.language.code().into(),
                        source: "sim".into(),
                    });
                    ledger.attach("transcript", event).await?;
                }
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_follow_the_lifecycle_and_end_released() {
        let sim = Simulator::default();
        for i in 0..200u32 {
            let req = pb::CallRequested {
                phone: format!("+86138{i:08}"),
                attempt: 1 + i % 3,
                ..Default::default()
            };
            let s = script(&sim, &req, "c");
            let stages: Vec<Stage> = s.iter().map(|(_, sig)| sig.stage()).collect();
            assert!(stages.windows(2).all(|w| w[0] < w[1]), "{stages:?}");
            assert_eq!(stages.first(), Some(&Stage::Dialing));
            assert_eq!(stages.last(), Some(&Stage::Released));
        }
    }
}
