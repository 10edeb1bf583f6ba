//! sipp as the SIP trunk of a test: a UAS process playing one of the scenarios in `tests/sipp/`
//! on a loopback port of its own, killed when dropped.

use std::{
    net::{SocketAddr, UdpSocket},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use waihu_events::pb;

/// A running sipp UAS.
pub struct Sipp {
    child: tokio::process::Child,
    /// Where it takes SIP (UDP).
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// A UDP port free on loopback now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}

/// µ-law encoding of a linear sample (ITU-T G.711), for the audio sipp streams.
fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = (s.min(32635) + BIAS) as u32;
    let exponent = (31 - s.leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// A-law encoding of a linear sample (ITU-T G.711).
fn alaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    let s = s.min(32767) >> 3;
    let code = if s < 32 {
        (s >> 1) as u8
    } else {
        let seg = (31 - (s as u32).leading_zeros()) - 4;
        ((seg << 4) as u8) | (((s >> seg) & 0x0f) as u8)
    };
    (sign | code) ^ 0x55
}

/// One second of a 440 Hz tone as raw 8 kHz G.711 bytes (µ-law when `mu`, else A-law), as
/// sipp 3.6's `rtp_stream` sends its file: unchanged, 160 bytes every 20 ms (it reads no WAV
/// header, so the files sipp calls `.wav` have none).
pub fn tone(mu: bool) -> Vec<u8> {
    (0..8000)
        .map(|i| {
            let v = (f64::sin(i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0) * 16383.0)
                .round() as i16;
            if mu {
                ulaw(v)
            } else {
                alaw(v)
            }
        })
        .collect()
}

impl Sipp {
    /// Starts `tests/sipp/<scenario>` as a UAS on loopback; `pause_ms` is its default pause
    /// (how long the trunk talks before it hangs up). Waits until it listens.
    pub async fn start(scenario: &str, pause_ms: u64) -> Sipp {
        Sipp::launch(scenario, pause_ms, false).await
    }

    /// [`Sipp::start`] taking SIP over TCP (one connection per caller) instead of UDP.
    pub async fn start_tcp(scenario: &str, pause_ms: u64) -> Sipp {
        Sipp::launch(scenario, pause_ms, true).await
    }

    async fn launch(scenario: &str, pause_ms: u64, tcp: bool) -> Sipp {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("sipp")
            .join(scenario);
        assert!(file.exists(), "{} missing", file.display());
        let dir = std::env::temp_dir().join(format!("waihu-sipp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("sipp dir");
        std::fs::write(dir.join("pcmu.wav"), tone(true)).expect("pcmu.wav");
        std::fs::write(dir.join("pcma.wav"), tone(false)).expect("pcma.wav");
        // Ports are picked free, then bound by sipp: another socket may take one meanwhile,
        // and sipp exits. Then new ports are tried.
        let free = |port: u16| {
            if tcp {
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            } else {
                UdpSocket::bind(("127.0.0.1", port)).is_ok()
            }
        };
        let mut attempt = 0;
        let (child, port) = loop {
            attempt += 1;
            let port = free_udp_port();
            let media = free_udp_port();
            let mut child = tokio::process::Command::new("sipp")
                .current_dir(&dir)
                .args(["-sf", &file.display().to_string()])
                .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
                .args(["-d", &pause_ms.to_string()])
                .args(["-nostdin", "-trace_err", "-max_socket", "1000"])
                .args(["-l", "1000", "-aa"])
                .args(if tcp { &["-t", "t1"][..] } else { &[][..] })
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("sipp (Debian package sip-tester; scripts/ensure-tools.sh installs it)");
            // Listening once its port is taken and it still runs a moment later.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut exited = false;
            while free(port) {
                if child.try_wait().ok().flatten().is_some() {
                    exited = true;
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "sipp did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            exited |= child.try_wait().ok().flatten().is_some();
            if !exited {
                break (child, port);
            }
            assert!(
                attempt < 5,
                "sipp exited at start 5 times (its ports taken?)"
            );
        };
        Sipp {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        }
    }

    /// A `sip` line to this trunk.
    pub fn line(
        &self,
        id: &str,
        max_concurrent: u32,
        settings: &[(&str, &str)],
    ) -> pb::CreateLineRequest {
        let mut config: std::collections::HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config.insert("trunk".into(), self.addr.to_string());
        pb::CreateLineRequest {
            line: Some(pb::Line {
                line_id: id.into(),
                name: "sipp trunk".into(),
                provider: "sip".into(),
                caller_number: "+865925550100".into(),
                max_concurrent,
                provider_config: config,
                ..Default::default()
            }),
            credentials: Default::default(),
        }
    }

    /// What sipp wrote about errors so far (its `-trace_err` file), for failure messages.
    pub fn errors(&self) -> String {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoders_invert_the_decoders() {
        for v in [0i16, 8, -8, 120, 1000, -1000, 8000, -8000, 32000, -32000] {
            let u = waihu_provider_sip::media::ulaw_to_linear(ulaw(v));
            let a = waihu_provider_sip::media::alaw_to_linear(alaw(v));
            // G.711 keeps about 4 % of a sample's magnitude.
            let tol = |x: i16| (x as i32).abs() / 16 + 16;
            assert!(((u as i32) - v as i32).abs() <= tol(v), "µ-law {v} -> {u}");
            assert!(((a as i32) - v as i32).abs() <= tol(v), "A-law {v} -> {a}");
        }
    }
}
