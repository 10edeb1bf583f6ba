//! One call over a SIP trunk, from INVITE to the end of its dialog.

use std::{net::SocketAddr, time::Duration};

use rsipstack::{
    dialog::{
        authenticate::Credential,
        dialog::{DialogState, TerminatedReason},
        invitation::InviteOption,
    },
    sip::{Header, Response, StatusCodeKind},
    transport::SipAddr,
};
use tokio::time::Instant;
use waihu_bus::HandlerError;
use waihu_events::{pb, Event};
use waihu_provider_core::{CallLedger, LineConfig, Provider, Signal, Stage};
use waihu_telephony::hangup;

use crate::{media::Media, stack::SipProvider, user_part, Transport, Trunk};

fn release(q850: u32, raw: impl Into<String>) -> Signal {
    Signal::unanswered(hangup::cause(q850, raw))
}

/// The Q.850 cause a response carries in a `Reason: Q.850;cause=N` header (RFC 3326), if any.
pub fn reason_q850(resp: &Response) -> Option<u32> {
    resp.headers.iter().find_map(|h| {
        let (name, value) = match h {
            Header::Other(n, v) => (n.as_str(), v.as_str()),
            other => (other.name(), other.value()),
        };
        if !name.eq_ignore_ascii_case("reason") {
            return None;
        }
        value.split(',').find_map(|part| {
            let mut params = part.split(';').map(str::trim);
            if !params.next()?.eq_ignore_ascii_case("q.850") {
                return None;
            }
            params.find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("cause")
                    .then(|| v.trim().parse::<u32>().ok())
                    .flatten()
                    .filter(|c| (1..=127).contains(c))
            })
        })
    })
}

/// The cause of a final response: its Q.850 `Reason` when it has one, else the SIP table; a
/// final 401 or 407 (the trunk refused our credentials, or we had none) is the line's fault,
/// not the contact's (the table's own note): 41, so the contact is tried again once the line
/// is fixed rather than finished as rejected.
pub fn final_cause(resp: &Response) -> pb::HangupCause {
    let code = resp.status_code.code();
    if code == 401 || code == 407 {
        return hangup::cause(41, format!("sip:{code}"));
    }
    match reason_q850(resp) {
        Some(q) => hangup::cause(q, format!("sip:{code}")),
        None => hangup::from_sip(code),
    }
}

/// What the provider report of an event says: the status line of the response that moved the
/// call on.
fn status_line(resp: &Response) -> String {
    format!("SIP/2.0 {}", resp.status_code)
}

/// An SDP offer receiving G.711 on `media`.
fn sdp_offer(media: SocketAddr, session: u64) -> Vec<u8> {
    let (family, ip) = match media.ip() {
        std::net::IpAddr::V4(ip) => ("IP4", ip.to_string()),
        std::net::IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    let mut codecs = String::new();
    let mut maps = String::new();
    for (pt, name) in crate::media::CODECS {
        codecs.push_str(&format!(" {pt}"));
        maps.push_str(&format!("a=rtpmap:{pt} {name}/8000\r\n"));
    }
    format!(
        "v=0\r\no=waihu {session} {session} IN {family} {ip}\r\ns=waihu\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP{codecs}\r\n{maps}a=ptime:20\r\na=recvonly\r\n",
        port = media.port()
    )
    .into_bytes()
}

/// How a call in progress came to an end before it was answered.
enum Stopped {
    /// Our ring timeout: CANCEL sent.
    RingTimeout,
    /// A hang-up from outside (already recorded): CANCEL sent.
    HungUp,
}

impl Provider for SipProvider {
    fn kind(&self) -> &'static str {
        crate::KIND
    }

    async fn place(
        &self,
        line: &LineConfig,
        req: &pb::CallRequested,
        ledger: &mut CallLedger,
    ) -> Result<(), HandlerError> {
        if ledger.reached() >= Stage::Released {
            return Ok(());
        }
        if ledger.reached() >= Stage::Dialing {
            // The INVITE went out from an adapter that stopped: its dialog is gone with it,
            // and calling again could ring the phone twice. A call that was answered stays
            // answered (its contact was reached).
            let cause = hangup::cause(41, "waihu:outcome-unknown");
            let signal = if ledger.reached() >= Stage::Answered {
                Signal::Released {
                    cause,
                    answered: true,
                    ring_ms: 0,
                    talk_ms: 0,
                }
            } else {
                Signal::unanswered(cause)
            };
            return ledger
                .record_report(
                    signal,
                    "the adapter placing this SIP call stopped before it ended".into(),
                )
                .await;
        }
        let trunk = match Trunk::from_line(line) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(line = %line.line_id, field = %e.field, why = %e.why, "sip line misconfigured");
                return ledger
                    .record_report(
                        release(41, "sip:line-configuration"),
                        format!("provider_config.{}: {}", e.field, e.why),
                    )
                    .await;
            }
        };
        let caller = user_part(line.caller_for(req)).unwrap_or_else(|| "anonymous".into());
        let Some(callee) = user_part(&req.phone) else {
            return ledger
                .record_report(
                    release(28, "sip:invalid-number"),
                    "the number cannot be written in a SIP URI".into(),
                )
                .await;
        };
        let Some(target) = trunk.resolve().await else {
            return ledger
                .record_report(
                    release(38, "sip:trunk-unresolved"),
                    format!("the trunk host {} does not resolve", trunk.host),
                )
                .await;
        };
        let inner = &self.inner;
        let media = Media::open(inner.rtp_bind_ip(target), inner.config.rtp_ports)
            .await
            .map_err(|e| HandlerError::Transient(format!("no RTP port: {e}")))?;
        let media_addr = SocketAddr::new(inner.media_ip_for(target), media.local.port());
        let sip_call_id = format!("{}@waihu", ledger.call_id());
        // Recorded before the INVITE leaves: a crash after this point can no longer send it
        // twice.
        ledger
            .record(Signal::Dialing {
                provider_call_id: sip_call_id.clone(),
            })
            .await?;
        if ledger.reached() >= Stage::Released {
            // Hung up (or settled by the watchdog) before it went out: not sent.
            let _ = media.finish().await;
            return Ok(());
        }
        let outcome = self
            .run(
                &trunk,
                line,
                target,
                &callee,
                &caller,
                &sip_call_id,
                &media,
                media_addr,
                ledger,
            )
            .await;
        let recording = media.finish().await;
        outcome?;
        match recording {
            Ok(Some(r)) => {
                tracing::debug!(call = %ledger.call_id(), ms = r.duration_ms, "recording kept");
                let event = Event::RecordingAvailable(pb::RecordingAvailable {
                    call_id: req.call_id.clone(),
                    task_id: req.task_id.clone(),
                    contact_no: req.contact_no,
                    uri: waihu_provider_core::file_uri(&r.path),
                    content_type: "audio/wav".into(),
                    duration_ms: r.duration_ms,
                    bytes: r.bytes,
                    codec: r.codec,
                    source: crate::KIND.into(),
                });
                ledger.attach("recording", event).await?;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(call = %ledger.call_id(), error = %e, "recording lost"),
        }
        Ok(())
    }
}

impl crate::stack::Inner {
    /// The address the call's RTP socket binds: the SIP socket's (all interfaces when that
    /// is a wildcard), never the public address, which behind NAT is not this host's.
    fn rtp_bind_ip(&self, trunk: SocketAddr) -> std::net::IpAddr {
        let ip = self.config.bind.ip();
        if ip.is_unspecified() && trunk.ip().is_loopback() {
            return trunk.ip();
        }
        ip
    }

    /// The address the trunk should send media to (written in the SDP).
    fn media_ip_for(&self, trunk: SocketAddr) -> std::net::IpAddr {
        if trunk.ip().is_loopback() && self.config.public_ip.is_none() {
            return trunk.ip();
        }
        self.media_ip
    }
}

impl SipProvider {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        trunk: &Trunk,
        line: &LineConfig,
        target: SocketAddr,
        callee: &str,
        caller: &str,
        sip_call_id: &str,
        media: &Media,
        media_addr: SocketAddr,
        ledger: &mut CallLedger,
    ) -> Result<(), HandlerError> {
        let inner = &self.inner;
        let transport_param = match trunk.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        let uri = |user: &str, host: &str| {
            rsipstack::sip::Uri::try_from(format!("sip:{user}@{host}{transport_param}").as_str())
                .map_err(|e| format!("SIP URI for {user}@{host}: {e}"))
        };
        let domain = if trunk.domain == trunk.host {
            format!("{}:{}", trunk.host, trunk.port)
        } else {
            trunk.domain.clone()
        };
        let credential = trunk.username.as_ref().map(|u| Credential {
            username: u.clone(),
            password: line
                .credentials
                .get("password")
                .unwrap_or_default()
                .to_string(),
            realm: None,
            auth_username: None,
        });
        let contact_user = trunk.username.as_deref().unwrap_or(caller);
        let uris = (|| {
            Ok::<_, String>((
                uri(caller, &domain)?,
                uri(callee, &domain)?,
                uri(contact_user, &inner.contact.to_string())?,
            ))
        })();
        let (caller_uri, callee_uri, contact_uri) = match uris {
            Ok(u) => u,
            Err(e) => {
                return ledger
                    .record_report(release(41, "sip:line-configuration"), e)
                    .await
            }
        };
        let opt = InviteOption {
            caller: caller_uri,
            callee: callee_uri,
            contact: contact_uri,
            destination: Some(SipAddr {
                r#type: Some(match trunk.transport {
                    Transport::Udp => rsipstack::sip::transport::Transport::Udp,
                    Transport::Tcp => rsipstack::sip::transport::Transport::Tcp,
                }),
                addr: target.into(),
            }),
            content_type: Some("application/sdp".into()),
            offer: Some(sdp_offer(media_addr, rand_session())),
            credential,
            call_id: Some(sip_call_id.to_string()),
            ..Default::default()
        };
        let (states, state_rx) = inner.dialogs.new_dialog_state_channel();
        let (dialog, invite) = match inner.dialogs.do_invite_async(opt, states) {
            Ok(d) => d,
            Err(e) => {
                return ledger
                    .record_report(release(41, "sip:invite-not-sent"), e.to_string())
                    .await
            }
        };
        let followed = self
            .follow(trunk, &dialog, invite, state_rx, media, ledger)
            .await;
        if followed.is_err() {
            // The events could not be recorded (the bus is away): the call is not left up
            // with nobody following it; the redelivery records its end.
            if let Err(e) = dialog.hangup().await {
                tracing::debug!(error = %e, "CANCEL/BYE not sent");
            }
        }
        inner.dialogs.remove_dialog(&dialog.id());
        followed
    }

    /// Follows an INVITE sent: its ringing and final response, then the talk until either
    /// side hangs up, recording what happens.
    async fn follow(
        &self,
        trunk: &Trunk,
        dialog: &rsipstack::dialog::invite_dialog::InviteDialog,
        mut invite: rsipstack::platform::JoinHandle<
            rsipstack::dialog::invitation::InviteAsyncResult,
        >,
        mut state_rx: rsipstack::dialog::dialog::DialogStateReceiver,
        media: &Media,
        ledger: &mut CallLedger,
    ) -> Result<(), HandlerError> {
        let inner = &self.inner;
        // Until the final response: ringing, our ring timeout, a hang-up.
        let started = Instant::now();
        let mut ring_deadline = started + trunk.ring_timeout;
        let mut ringing_at: Option<Instant> = None;
        let mut stopped: Option<Stopped> = None;
        let final_response = loop {
            tokio::select! {
                r = &mut invite => break r,
                s = state_rx.recv() => {
                    if let Some(DialogState::Early(_, resp)) = s {
                        if ringing_at.is_none() && stopped.is_none() {
                            ringing_at = Some(Instant::now());
                            ledger.record_report(Signal::Ringing, status_line(&resp)).await?;
                            if ledger.reached() >= Stage::Released {
                                // Released from elsewhere (the watchdog): end it here too.
                                stopped = Some(Stopped::HungUp);
                                let _ = dialog.cancel().await;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(ring_deadline), if stopped.is_none() => {
                    stopped = Some(Stopped::RingTimeout);
                    // Never again: the 487 (or a 200 crossing the CANCEL) ends the loop.
                    ring_deadline = Instant::now() + Duration::from_secs(86_400);
                    if let Err(e) = dialog.cancel().await {
                        tracing::debug!(error = %e, "CANCEL not sent");
                    }
                }
                _ = ledger.hung_up(), if stopped.is_none() => {
                    stopped = Some(Stopped::HungUp);
                    if let Err(e) = dialog.cancel().await {
                        tracing::debug!(error = %e, "CANCEL not sent");
                    }
                }
            }
        };
        let ring_ms = |now: Instant| ringing_at.map_or(0, |r| (now - r).as_millis() as u64);
        let resp = match final_response {
            Ok(Ok((_, resp))) => resp,
            Ok(Err(e)) => {
                return ledger
                    .record_report(release(41, "sip:transport-error"), e.to_string())
                    .await
            }
            Err(e) => {
                return Err(HandlerError::Transient(format!("SIP INVITE task: {e}")));
            }
        };
        let answered = resp
            .as_ref()
            .is_some_and(|r| r.status_code.kind() == StatusCodeKind::Successful);
        if !answered || stopped.is_some() {
            // A 2xx crossing our CANCEL is ended with a BYE by the stack.
            let signal = match (stopped, resp.as_ref()) {
                (Some(Stopped::HungUp), _) => return Ok(()),
                (Some(Stopped::RingTimeout), _) => Signal::Released {
                    cause: hangup::cause(19, "sip:487"),
                    answered: false,
                    ring_ms: ring_ms(Instant::now()),
                    talk_ms: 0,
                },
                (None, Some(r)) => Signal::Released {
                    cause: final_cause(r),
                    answered: false,
                    ring_ms: ring_ms(Instant::now()),
                    talk_ms: 0,
                },
                // Timer B: no final response at all.
                (None, None) => release(102, "sip:408"),
            };
            let report = resp.as_ref().map(status_line).unwrap_or_else(|| {
                "no final response before the INVITE transaction timed out".into()
            });
            return ledger.record_report(signal, report).await;
        }
        let Some(resp) = resp else {
            return Ok(());
        };
        let answered_at = Instant::now();
        let ring_ms = ring_ms(answered_at);
        ledger
            .record_report(Signal::Answered, status_line(&resp))
            .await?;
        if ledger.reached() >= Stage::Released {
            // Released from elsewhere while it was being answered.
            let _ = dialog.bye().await;
            return Ok(());
        }
        if trunk.record {
            media.record(
                inner.recordings.join(format!("{}.wav", ledger.call_id())),
                trunk.max_call,
            );
        }
        // Talking: until either side hangs up or the line's maximum duration.
        let max_end = answered_at + trunk.max_call;
        let report = loop {
            tokio::select! {
                s = state_rx.recv() => match s {
                    Some(DialogState::Terminated(_, reason)) => {
                        break match reason {
                            TerminatedReason::UasBye => "BYE from the trunk".to_string(),
                            other => format!("dialog ended: {other:?}"),
                        };
                    }
                    Some(_) => {}
                    None => break "dialog ended".to_string(),
                },
                _ = tokio::time::sleep_until(max_end) => {
                    if let Err(e) = dialog.bye().await {
                        tracing::debug!(error = %e, "BYE not answered");
                    }
                    break format!(
                        "BYE sent at the line's maximum call duration ({} s)",
                        trunk.max_call.as_secs()
                    );
                }
                _ = ledger.hung_up() => {
                    if let Err(e) = dialog.bye().await {
                        tracing::debug!(error = %e, "BYE not answered");
                    }
                    return Ok(());
                }
            }
        };
        let talk_ms = answered_at.elapsed().as_millis() as u64;
        ledger
            .record_report(
                Signal::Released {
                    cause: hangup::cause(16, "sip:200"),
                    answered: true,
                    ring_ms,
                    talk_ms,
                },
                report,
            )
            .await
    }
}

fn rand_session() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64) >> 1
}
