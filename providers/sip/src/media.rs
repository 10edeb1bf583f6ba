//! The media side of a call: the RTP socket offered in the SDP, and the recording of what the
//! far end sends once the call is answered: G.711 (PCMU or PCMA) decoded to 16-bit linear PCM
//! and written as it arrives to a WAV file (8 kHz, mono), so memory stays flat however long the
//! call. Samples are placed by RTP timestamp: a lost packet leaves silence, a late one is
//! dropped, and the file's length follows the sender's clock rather than the packet count.

use std::{
    io::SeekFrom,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncSeekExt, AsyncWriteExt, BufWriter},
    net::UdpSocket,
    sync::watch,
};

/// G.711 sample rate (samples per second).
pub const RATE: u32 = 8000;
/// A jump in RTP timestamps larger than this (5 s) is a new stream, not a gap to fill.
const MAX_GAP: u32 = 5 * RATE;

/// µ-law (PCMU, RTP payload type 0) to 16-bit linear PCM (ITU-T G.711).
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law (PCMA, RTP payload type 8) to 16-bit linear PCM (ITU-T G.711).
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let segment = (a & 0x70) >> 4;
    let mut t = ((a & 0x0f) as i32) << 4;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        s => t = (t + 0x108) << (s - 1),
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

/// The codecs offered: (payload type, name).
pub const CODECS: [(u8, &str); 2] = [(0, "PCMU"), (8, "PCMA")];

/// One RTP packet's header fields we use, and its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Rtp<'a> {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Reads an RTP packet (RFC 3550): version 2, CSRCs, header extension and padding removed.
/// None for anything else (STUN, RTCP on the same port, garbage).
pub fn parse_rtp(b: &[u8]) -> Option<Rtp<'_>> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let padding = b[0] & 0x20 != 0;
    let extension = b[0] & 0x10 != 0;
    let csrcs = (b[0] & 0x0f) as usize;
    let payload_type = b[1] & 0x7f;
    // RTCP packet types 200-204 land at 72-76 with the marker bit.
    if (72..=76).contains(&payload_type) {
        return None;
    }
    let mut start = 12 + 4 * csrcs;
    if extension {
        let len = b.get(start + 2..start + 4)?;
        start += 4 + 4 * u16::from_be_bytes([len[0], len[1]]) as usize;
    }
    let mut end = b.len();
    if padding {
        let pad = *b.last()? as usize;
        end = end.checked_sub(pad)?;
    }
    if start > end {
        return None;
    }
    Some(Rtp {
        payload_type,
        sequence: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: &b[start..end],
    })
}

/// A 44-byte WAV header for 16-bit mono PCM at 8 kHz holding `data_bytes` of samples.
pub fn wav_header(data_bytes: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_bytes).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // linear PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub path: PathBuf,
    pub duration_ms: u64,
    pub bytes: u64,
    /// "PCMU", "PCMA" or both ("PCMU+PCMA") as received.
    pub codec: String,
}

/// Places decoded samples by RTP timestamp into a WAV file being written.
struct Writer {
    file: BufWriter<tokio::fs::File>,
    path: PathBuf,
    /// Samples written so far (the file's position past its header, in samples).
    written: u64,
    /// Timestamp of sample 0 of the current stream, and its SSRC.
    base: Option<(u32, u32, u64)>,
    codecs: Vec<&'static str>,
    max_samples: u64,
}

impl Writer {
    async fn create(path: &Path, max: Duration) -> std::io::Result<Writer> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = BufWriter::with_capacity(64 * 1024, tokio::fs::File::create(path).await?);
        file.write_all(&wav_header(0)).await?;
        Ok(Writer {
            file,
            path: path.to_path_buf(),
            written: 0,
            base: None,
            codecs: Vec::new(),
            max_samples: max.as_millis() as u64 * RATE as u64 / 1000,
        })
    }

    async fn packet(&mut self, p: &Rtp<'_>) -> std::io::Result<()> {
        let (decode, name): (fn(u8) -> i16, &'static str) = match p.payload_type {
            0 => (ulaw_to_linear, "PCMU"),
            8 => (alaw_to_linear, "PCMA"),
            _ => return Ok(()), // DTMF events, comfort noise, codecs not offered
        };
        // Where this packet's first sample goes: a new SSRC (or a jump too large to be a
        // gap) starts a new stream at the current end of the file.
        let at = match self.base {
            Some((ssrc, ts0, start)) if ssrc == p.ssrc => {
                let delta = p.timestamp.wrapping_sub(ts0);
                let pos = start + delta as u64;
                if delta > u32::MAX / 2 || pos + (MAX_GAP as u64) < self.written {
                    return Ok(()); // late or reordered: its time is already written
                }
                if pos > self.written + MAX_GAP as u64 {
                    self.base = Some((p.ssrc, p.timestamp, self.written));
                    self.written
                } else {
                    pos
                }
            }
            _ => {
                self.base = Some((p.ssrc, p.timestamp, self.written));
                self.written
            }
        };
        if at < self.written {
            return Ok(());
        }
        if !self.codecs.contains(&name) {
            self.codecs.push(name);
        }
        let room = self.max_samples.saturating_sub(self.written);
        let silence = (at - self.written).min(room);
        for _ in 0..silence {
            self.file.write_all(&[0, 0]).await?;
        }
        self.written += silence;
        let room = self.max_samples.saturating_sub(self.written) as usize;
        for &s in p.payload.iter().take(room) {
            self.file.write_all(&decode(s).to_le_bytes()).await?;
        }
        self.written += p.payload.len().min(room) as u64;
        Ok(())
    }

    async fn finish(mut self) -> std::io::Result<Recording> {
        let data = (self.written * 2) as u32;
        self.file.flush().await?;
        let mut f = self.file.into_inner();
        f.seek(SeekFrom::Start(0)).await?;
        f.write_all(&wav_header(data)).await?;
        f.sync_all().await?;
        Ok(Recording {
            path: self.path,
            duration_ms: self.written * 1000 / RATE as u64,
            bytes: 44 + data as u64,
            codec: self.codecs.join("+"),
        })
    }
}

/// The call's RTP socket; once [`Media::record`] is called, what arrives is written to a file.
pub struct Media {
    pub local: SocketAddr,
    record: watch::Sender<Option<(PathBuf, Duration)>>,
    task: tokio::task::JoinHandle<std::io::Result<Option<Recording>>>,
}

impl Media {
    /// Binds the call's RTP port on `ip`: any free port, or one in `ports` (inclusive).
    pub async fn open(ip: IpAddr, ports: Option<(u16, u16)>) -> std::io::Result<Media> {
        let socket = match ports {
            None => UdpSocket::bind(SocketAddr::new(ip, 0)).await?,
            Some((lo, hi)) => bind_in_range(ip, lo, hi).await?,
        };
        let local = socket.local_addr()?;
        let (record, mut wanted) = watch::channel(None::<(PathBuf, Duration)>);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut writer: Option<Writer> = None;
            loop {
                tokio::select! {
                    changed = wanted.changed() => {
                        if changed.is_err() {
                            break; // the call is over
                        }
                        let target = wanted.borrow_and_update().clone();
                        if let (Some((path, max)), None) = (target, &writer) {
                            writer = Some(Writer::create(&path, max).await?);
                        }
                    }
                    r = socket.recv_from(&mut buf) => {
                        let Ok((n, _)) = r else { continue };
                        if let (Some(w), Some(p)) = (writer.as_mut(), parse_rtp(&buf[..n])) {
                            w.packet(&p).await?;
                        }
                    }
                }
            }
            match writer {
                Some(w) => Ok(Some(w.finish().await?)),
                None => Ok(None),
            }
        });
        Ok(Media {
            local,
            record,
            task,
        })
    }

    /// Starts keeping what arrives from now (the call was answered) in a WAV file at `path`,
    /// at most `max` long.
    pub fn record(&self, path: PathBuf, max: Duration) {
        let _ = self.record.send(Some((path, max)));
    }

    /// Stops listening; the recording, if one was started and anything was received.
    pub async fn finish(self) -> Result<Option<Recording>, String> {
        drop(self.record);
        match self.task.await {
            Ok(Ok(Some(r))) if r.duration_ms == 0 => {
                let _ = tokio::fs::remove_file(&r.path).await;
                Ok(None)
            }
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(format!("recording not written: {e}")),
            Err(e) => Err(format!("recording task failed: {e}")),
        }
    }
}

async fn bind_in_range(ip: IpAddr, lo: u16, hi: u16) -> std::io::Result<UdpSocket> {
    let span = (hi - lo) as u32 + 1;
    // RTP ports are even by convention; start somewhere different for every call.
    let start = uuid::Uuid::new_v4().as_u128() as u32 % span;
    let mut last = None;
    for i in 0..span.min(64) {
        let port = lo + ((start + i * 2) % span) as u16;
        match UdpSocket::bind(SocketAddr::new(ip, port & !1)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no RTP port free in the range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_decodes_the_reference_values() {
        // G.711 tables: µ-law 0xFF and 0x7F are ±0, 0x00 the most negative, 0x80 the most
        // positive; A-law 0xD5/0x55 are ±8, 0xAA/0x2A the extremes.
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        // Each sign half is monotonic: µ-law 0x80..0xFF falls from the top to zero, A-law
        // 0x80..0x8F rises within its first segment.
        for code in 0x80..0xFFu8 {
            assert!(
                ulaw_to_linear(code) > ulaw_to_linear(code + 1),
                "µ-law {code:#x}"
            );
            assert_eq!(ulaw_to_linear(code), -ulaw_to_linear(code & 0x7F));
        }
    }

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&ts.to_be_bytes());
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn rtp_headers_are_read_and_other_packets_refused() {
        let b = packet(8, 7, 160, 42, &[1, 2, 3]);
        let p = parse_rtp(&b).expect("rtp");
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (8, 7, 160, 42)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
        // CSRC, extension and padding.
        let mut b = vec![0xB1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 5, 5, 5, 5]); // extension, one word
        b.extend_from_slice(&[7, 7, 0, 2]); // payload 7 7, then 2 bytes of padding
        assert_eq!(parse_rtp(&b).expect("rtp").payload, &[7, 7]);
        assert!(parse_rtp(&[0x80, 0x00]).is_none());
        assert!(parse_rtp(&packet(200, 0, 0, 0, &[])).is_none(), "RTCP");
        assert!(parse_rtp(&[0u8; 20]).is_none(), "version 0");
    }

    #[tokio::test]
    async fn a_recording_follows_rtp_time_fills_losses_and_drops_late_packets() {
        let dir = std::env::temp_dir().join(format!("waihu-media-{}", uuid::Uuid::new_v4()));
        let path = dir.join("call.wav");
        let mut w = Writer::create(&path, Duration::from_secs(60))
            .await
            .expect("create");
        let frame = [0xFFu8; 160];
        // 0, 160, (320 lost), 480, then a late 160 again, then a new SSRC.
        for (seq, ts) in [(1u16, 1000u32), (2, 1160), (4, 1480), (2, 1160)] {
            w.packet(&parse_rtp(&packet(0, seq, ts, 1, &frame)).expect("rtp"))
                .await
                .expect("packet");
        }
        w.packet(&parse_rtp(&packet(8, 1, 99, 2, &[0xD5; 160])).expect("rtp"))
            .await
            .expect("packet");
        let r = w.finish().await.expect("finish");
        assert_eq!(r.duration_ms, 800 * 1000 / 8000);
        assert_eq!(r.bytes, 44 + 800 * 2);
        assert_eq!(r.codec, "PCMU+PCMA");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..44], &wav_header(1600));
        assert_eq!(bytes.len(), 44 + 1600);
        // The last stream's samples are A-law 0xD5 = +8.
        assert_eq!(&bytes[bytes.len() - 2..], &8i16.to_le_bytes());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_recording_stops_at_its_maximum_length() {
        let dir = std::env::temp_dir().join(format!("waihu-media-{}", uuid::Uuid::new_v4()));
        let path = dir.join("call.wav");
        let mut w = Writer::create(&path, Duration::from_millis(30))
            .await
            .expect("create");
        for i in 0..5u32 {
            w.packet(&parse_rtp(&packet(0, i as u16, i * 160, 1, &[0xFF; 160])).expect("rtp"))
                .await
                .expect("packet");
        }
        let r = w.finish().await.expect("finish");
        assert_eq!(r.duration_ms, 30);
        std::fs::remove_dir_all(&dir).ok();
    }
}
