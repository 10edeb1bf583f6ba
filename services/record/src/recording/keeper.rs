//! The keeper: follows the store behind the projections and puts each announced recording
//! (RecordingAvailable) into storage, then records RecordingStored, or RecordingFailed when the
//! source will never give it.
//!
//! Why nothing is lost or doubled: the checkpoint moves past a recording only once its event
//! is published; an event's id is derived from the call, so a step repeated after a crash
//! publishes nothing new; a recording already in storage under its key (a try that stopped
//! before publishing) is read back from there rather than from its source, which a move may
//! have removed. Storage and bus outages are retried without limit (the checkpoint waits);
//! a source that keeps failing is given up after `max_attempts` tries.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{path::Path as Key, ObjectStore, WriteMultipart};
use ring::digest;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use waihu_bus::{Bus, Expect};
use waihu_events::{pb, timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_store::EventQuery;

use super::{format_of, key_of, RecordingConfig};
use crate::{projection, writer};

/// The keeper's checkpoint and leader lock.
pub const CHECKPOINT: &str = "recordings";
pub const LEADER_LOCK: &str = "waihu-record-recordings";

/// Recordings looked at per step.
const PAGE: u32 = 100;
/// Bytes of a file's beginning kept to read its header.
const HEAD_BYTES: usize = 64 * 1024;
/// Bytes read from a source at a time.
const CHUNK: usize = 256 * 1024;

/// Why a recording was not kept this time.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The source failed in a way that may pass (counts toward `max_attempts`).
    #[error("{0}")]
    Source(String),
    /// The source will never give it: recorded as RecordingFailed at once.
    #[error("{0}")]
    Refused(String),
    /// Storage, the bus or the database failed: retried without limit.
    #[error("{0}")]
    Infrastructure(String),
}

fn infra(e: impl std::fmt::Display) -> KeepError {
    KeepError::Infrastructure(e.to_string())
}

#[derive(Clone)]
pub struct Keeper {
    pub pool: PgPool,
    pub bus: Bus,
    pub store: Arc<dyn ObjectStore>,
    pub config: Arc<RecordingConfig>,
    pub http: reqwest::Client,
    /// Failed tries of the recording at the checkpoint, by call.
    tries: Arc<std::sync::Mutex<HashMap<Uuid, u32>>>,
    /// The source directories, made absolute once.
    sources: Arc<Vec<PathBuf>>,
}

/// What was stored.
struct Kept {
    bytes: u64,
    sha256: String,
    head: Vec<u8>,
}

impl Keeper {
    pub fn new(
        pool: PgPool,
        bus: Bus,
        store: Arc<dyn ObjectStore>,
        config: Arc<RecordingConfig>,
    ) -> Result<Keeper, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let sources = config
            .source_dirs
            .iter()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
            .collect();
        Ok(Keeper {
            pool,
            bus,
            store,
            config,
            http,
            tries: Default::default(),
            sources: Arc::new(sources),
        })
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.config.poll;
        loop {
            let wait = match self.step().await {
                Ok(0) => {
                    backoff = self.config.poll;
                    self.config.poll
                }
                Ok(_) => {
                    backoff = self.config.poll;
                    Duration::ZERO
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "recordings: not kept yet; retrying");
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    w
                }
            };
            if wait.is_zero() {
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Keeps the recordings of one page past the checkpoint. Returns how many events were
    /// looked at (0: nothing new).
    pub async fn step(&self) -> Result<usize, KeepError> {
        let mut at = waihu_store::checkpoint(&self.pool, CHECKPOINT)
            .await
            .map_err(infra)?;
        let head = waihu_store::checkpoint(&self.pool, writer::CHECKPOINT)
            .await
            .map_err(infra)?
            .min(
                waihu_store::checkpoint(&self.pool, projection::CHECKPOINT)
                    .await
                    .map_err(infra)?,
            );
        if head <= at {
            return Ok(0);
        }
        let page = waihu_store::read(
            &self.pool,
            &EventQuery {
                after_position: at,
                to_position: Some(head),
                event_types: vec!["RecordingAvailable".into()],
                limit: PAGE,
                ..Default::default()
            },
        )
        .await
        .map_err(infra)?;
        let seen = page.len();
        for stored in &page {
            if let Some(e) = stored.event.known() {
                if let Event::RecordingAvailable(r) = &e.event {
                    self.keep_or_give_up(e, r).await?;
                }
            }
            self.advance(at, stored.position).await?;
            at = stored.position;
        }
        if seen < PAGE as usize && at < head {
            self.advance(at, head).await?;
        }
        Ok(seen)
    }

    async fn publish(&self, event: &RecordedEvent) -> Result<(), KeepError> {
        self.bus
            .publish(event, Expect::Any)
            .await
            .map(|_| ())
            .map_err(infra)
    }

    async fn advance(&self, from: u64, to: u64) -> Result<(), KeepError> {
        let mut tx = self.pool.begin().await.map_err(infra)?;
        if !waihu_store::advance_checkpoint(&mut tx, CHECKPOINT, from, to)
            .await
            .map_err(infra)?
        {
            return Err(KeepError::Infrastructure(
                "the recordings checkpoint moved under this keeper".into(),
            ));
        }
        tx.commit().await.map_err(infra)
    }

    /// Keeps one recording; a source failing for the last allowed time, or refusing, is
    /// recorded as RecordingFailed.
    async fn keep_or_give_up(
        &self,
        e: &RecordedEvent,
        r: &pb::RecordingAvailable,
    ) -> Result<(), KeepError> {
        let Ok(call) = Uuid::parse_str(&r.call_id) else {
            return Ok(());
        };
        let reason = match self.keep(e, r, call).await {
            Ok(()) => {
                self.tries.lock().expect("tries").remove(&call);
                return Ok(());
            }
            Err(KeepError::Refused(reason)) => reason,
            Err(KeepError::Source(reason)) => {
                let n = {
                    let mut tries = self.tries.lock().expect("tries");
                    let n = tries.entry(call).or_insert(0);
                    *n += 1;
                    *n
                };
                if n < self.config.max_attempts {
                    return Err(KeepError::Source(format!(
                        "call {call}: try {n} of {}: {reason}",
                        self.config.max_attempts
                    )));
                }
                format!("gave up after {n} tries: {reason}")
            }
            Err(other) => return Err(other),
        };
        warn!(%call, uri = %r.uri, %reason, "recording not kept");
        let event = RecordedEvent::new(
            meta(e, call, 1, "failed"),
            Event::RecordingFailed(pb::RecordingFailed {
                call_id: r.call_id.clone(),
                task_id: r.task_id.clone(),
                contact_no: r.contact_no,
                source_uri: r.uri.clone(),
                reason: truncate(&reason, 1000),
            }),
        );
        self.publish(&event).await?;
        self.tries.lock().expect("tries").remove(&call);
        Ok(())
    }

    async fn keep(
        &self,
        e: &RecordedEvent,
        r: &pb::RecordingAvailable,
        call: Uuid,
    ) -> Result<(), KeepError> {
        let Some((ext, content_type)) = format_of(&r.content_type, &r.uri) else {
            return Err(KeepError::Refused(format!(
                "{:?} is not audio this service keeps (wav, mp3, ogg, m4a, amr)",
                r.content_type
            )));
        };
        let recorded_at = e.meta.occurred_at;
        let key = Key::from(key_of(call, ext, recorded_at));
        let local = self.local_source(&r.uri)?;
        let kept = match self.store.head(&key).await {
            // An earlier try stored it and stopped before recording so: read it back.
            Ok(_) => self.read_back(&key).await?,
            Err(object_store::Error::NotFound { .. }) => match &local {
                Some(path) => self.upload_file(path, &key).await?,
                None => self.upload_url(&r.uri, &key).await?,
            },
            Err(e) => return Err(infra(e)),
        };
        let duration_ms = if ext == "wav" {
            match wav_duration_ms(&kept.head, kept.bytes) {
                Ok(ms) => ms,
                // A WAV of a kind the header reader does not decode (µ-law, A-law, ADPCM, a
                // header still being written): kept, with the duration announced.
                Err(_)
                    if kept.head.len() >= 12
                        && &kept.head[..4] == b"RIFF"
                        && &kept.head[8..12] == b"WAVE" =>
                {
                    r.duration_ms
                }
                Err(why) => {
                    let _ = self.store.delete(&key).await;
                    return Err(KeepError::Refused(format!("not a WAV file: {why}")));
                }
            }
        } else {
            r.duration_ms
        };
        let event = RecordedEvent::new(
            meta(e, call, 1, "stored"),
            Event::RecordingStored(pb::RecordingStored {
                call_id: r.call_id.clone(),
                task_id: r.task_id.clone(),
                contact_no: r.contact_no,
                key: key.to_string(),
                content_type: content_type.into(),
                format: ext.into(),
                bytes: kept.bytes,
                duration_ms,
                sha256: kept.sha256,
                source_uri: r.uri.clone(),
                recorded_at: Some(timestamp(recorded_at)),
            }),
        );
        self.publish(&event).await?;
        info!(%call, key = %key, bytes = kept.bytes, duration_ms, "recording stored");
        if let (Some(path), true) = (&local, self.config.move_local) {
            match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "stored recording's source not removed")
                }
            }
        }
        Ok(())
    }

    /// The file a `file://` URI names, when it is one, checked to be under a source directory.
    fn local_source(&self, uri: &str) -> Result<Option<PathBuf>, KeepError> {
        let Ok(u) = url::Url::parse(uri) else {
            return Err(KeepError::Refused(format!("{uri:?} is not a URI")));
        };
        match u.scheme() {
            "file" => {
                let path = u
                    .to_file_path()
                    .map_err(|_| KeepError::Refused(format!("{uri:?} is not a file path")))?;
                // A path under a source directory, with no way out of it.
                if path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
                    || !self.sources.iter().any(|d| {
                        path.starts_with(d) || canonical(d).is_some_and(|c| path.starts_with(c))
                    })
                {
                    return Err(KeepError::Refused(format!(
                        "{} is outside the recordings source directories (recordings.source_dirs)",
                        path.display()
                    )));
                }
                Ok(Some(path))
            }
            "http" | "https" => Ok(None),
            other => Err(KeepError::Refused(format!(
                "the URI scheme {other:?} is not supported (file, http, https)"
            ))),
        }
    }

    async fn upload_file(&self, path: &Path, key: &Key) -> Result<Kept, KeepError> {
        let mut file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeepError::Refused(format!(
                    "{} is gone (not found)",
                    path.display()
                )))
            }
            Err(e) => return Err(KeepError::Source(format!("{}: {e}", path.display()))),
        };
        // Links are followed only to where a source directory is: the file opened is checked,
        // so a link swapped in after the check is not.
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd_of(&file)))
            .or_else(|_| std::fs::canonicalize(path))
            .map_err(|e| KeepError::Source(format!("{}: {e}", path.display())))?;
        if !self
            .sources
            .iter()
            .filter_map(|d| canonical(d))
            .any(|d| real.starts_with(d))
        {
            return Err(KeepError::Refused(format!(
                "{} leads outside the recordings source directories",
                path.display()
            )));
        }
        let mut up = Upload::start(self, key).await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    up.abort().await;
                    return Err(KeepError::Source(format!("{}: {e}", path.display())));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = up.write(&buf[..n]).await {
                up.abort().await;
                return Err(e);
            }
        }
        up.finish().await
    }

    async fn upload_url(&self, uri: &str, key: &Key) -> Result<Kept, KeepError> {
        let mut resp = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(|e| KeepError::Source(format!("{uri}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let why = format!("{uri}: the provider answered {status}");
            return Err(if status.is_client_error() && status.as_u16() != 429 {
                KeepError::Refused(why)
            } else {
                KeepError::Source(why)
            });
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.config.max_bytes)
        {
            return Err(KeepError::Refused(format!(
                "{uri}: larger than recordings.max_mb ({} bytes)",
                self.config.max_bytes
            )));
        }
        let mut up = Upload::start(self, key).await?;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = up.write(&chunk).await {
                        up.abort().await;
                        return Err(e);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    up.abort().await;
                    return Err(KeepError::Source(format!("{uri}: {e}")));
                }
            }
        }
        up.finish().await
    }

    /// What a stored object holds: size, checksum and header.
    async fn read_back(&self, key: &Key) -> Result<Kept, KeepError> {
        let got = self.store.get(key).await.map_err(infra)?;
        let mut stream = got.into_stream();
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut head = Vec::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(infra)?;
            bytes += chunk.len() as u64;
            ctx.update(&chunk);
            take_head(&mut head, &chunk);
        }
        Ok(Kept {
            bytes,
            sha256: hex::encode(ctx.finish().as_ref()),
            head,
        })
    }
}

/// A recording on its way into storage: hashed, counted and limited as it goes.
struct Upload {
    writer: WriteMultipart,
    ctx: digest::Context,
    head: Vec<u8>,
    bytes: u64,
    max: u64,
}

impl Upload {
    async fn start(k: &Keeper, key: &Key) -> Result<Upload, KeepError> {
        let upload = k.store.put_multipart(key).await.map_err(infra)?;
        Ok(Upload {
            writer: WriteMultipart::new(upload),
            ctx: digest::Context::new(&digest::SHA256),
            head: Vec::new(),
            bytes: 0,
            max: k.config.max_bytes,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), KeepError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.max {
            let max = self.max;
            // Dropping the writer aborts the upload's parts not yet sent.
            return Err(KeepError::Refused(format!(
                "larger than recordings.max_mb ({max} bytes)"
            )));
        }
        self.ctx.update(chunk);
        take_head(&mut self.head, chunk);
        // At most 8 parts in flight: memory stays bounded whatever the size.
        self.writer.wait_for_capacity(8).await.map_err(infra)?;
        self.writer.put(Bytes::copy_from_slice(chunk));
        Ok(())
    }

    async fn abort(self) {
        let _ = self.writer.abort().await;
    }

    async fn finish(self) -> Result<Kept, KeepError> {
        self.writer.finish().await.map_err(infra)?;
        Ok(Kept {
            bytes: self.bytes,
            sha256: hex::encode(self.ctx.finish().as_ref()),
            head: self.head,
        })
    }
}

fn take_head(head: &mut Vec<u8>, chunk: &[u8]) {
    if head.len() < HEAD_BYTES {
        let n = (HEAD_BYTES - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..n]);
    }
}

/// A WAV file's duration from its header and its size (a header whose data chunk claims more
/// than the file holds counts what is there).
pub fn wav_duration_ms(head: &[u8], bytes: u64) -> Result<u64, String> {
    let reader = hound::WavReader::new(std::io::Cursor::new(head)).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    let frame = spec.channels as u64 * spec.bits_per_sample.div_ceil(8) as u64;
    if frame == 0 || spec.sample_rate == 0 {
        return Err("the header has no sample rate or frame size".into());
    }
    let claimed = reader.duration() as u64;
    // Where the samples start: the header's length, as far as the data chunk.
    let data_start = head
        .windows(4)
        .position(|w| w == b"data")
        .map(|p| p as u64 + 8)
        .unwrap_or(44);
    let present = bytes.saturating_sub(data_start) / frame;
    Ok(claimed.min(present) * 1000 / spec.sample_rate as u64)
}

/// The envelope of the keeper's events about `call`'s recording (one id per fact).
fn meta(announced: &RecordedEvent, call: Uuid, version: u64, fact: &str) -> EventMeta {
    let mut meta = EventMeta::new(
        announced.meta.tenant_id.clone(),
        Aggregate::Recording(call),
        version,
    )
    .with_deterministic_id(&format!("recording/{call}/{fact}"));
    if let Some(t) = announced.meta.task_id {
        meta = meta.with_task(t);
    }
    meta.correlation_id = announced.meta.correlation_id.clone();
    meta.causation_id = announced.meta.event_id.to_string();
    meta
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A directory with its links resolved, when it exists.
fn canonical(d: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(d).ok()
}

/// The file descriptor of an open file.
fn fd_of(f: &tokio::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: u32, rate: u32) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut out, spec).expect("writer");
        for i in 0..samples {
            w.write_sample((i % 100) as i16).expect("sample");
        }
        w.finalize().expect("finalize");
        out.into_inner()
    }

    #[test]
    fn a_wav_tells_its_duration_and_a_truncated_one_what_it_holds() {
        let full = wav(16_000, 8000);
        assert_eq!(wav_duration_ms(&full, full.len() as u64), Ok(2000));
        // Half the samples missing.
        assert_eq!(wav_duration_ms(&full, full.len() as u64 - 16_000), Ok(1000));
        assert!(wav_duration_ms(b"ID3\x04 not a wav at all", 100).is_err());
    }
}
