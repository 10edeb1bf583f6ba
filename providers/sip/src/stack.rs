//! The adapter's SIP user agent: one endpoint (one UDP socket, TCP connections made on
//! demand) for every `sip` line's calls, and the loop that hands in-dialog requests from
//! trunks (a BYE, an OPTIONS) to the call they belong to.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use rsipstack::{
    dialog::{dialog::Dialog, dialog_layer::DialogLayer},
    sip::{Method, StatusCode},
    transaction::{endpoint::EndpointOption, Endpoint},
    transport::{udp::UdpConnection, TransportLayer},
    EndpointBuilder,
};
use tokio_util::sync::CancellationToken;

/// Where the adapter's SIP user agent listens (`[provider] sip_bind`, `sip_public_ip`,
/// `rtp_ports`).
#[derive(Debug, Clone, PartialEq)]
pub struct StackConfig {
    /// The SIP socket (UDP; also the source of TCP connections). Port 0 picks a free one.
    pub bind: SocketAddr,
    /// The address trunks reach this adapter at, when it is not the bound one (behind NAT):
    /// written in Via, Contact and the SDP.
    pub public_ip: Option<IpAddr>,
    /// Ports the calls' RTP sockets take (inclusive); None = any free port.
    pub rtp_ports: Option<(u16, u16)>,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_ip: None,
            rtp_ports: None,
        }
    }
}

pub(crate) struct Inner {
    pub endpoint: Endpoint,
    pub dialogs: Arc<DialogLayer>,
    pub config: StackConfig,
    /// Where recordings are written (`<dir>/<call id>.wav`).
    pub recordings: PathBuf,
    /// The SIP address in Via and Contact, and the media address in the SDP.
    pub contact: SocketAddr,
    pub media_ip: IpAddr,
}

/// The `sip` provider: cheap to clone; dropping the last clone does not stop the stack, the
/// `stop` token given to [`SipProvider::start`] does.
#[derive(Clone)]
pub struct SipProvider {
    pub(crate) inner: Arc<Inner>,
}

/// The address this host uses to reach the outside, for a wildcard bind without a public IP
/// (no packet is sent); loopback when there is no route.
fn outward_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:5060")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

impl SipProvider {
    /// Binds the SIP socket and serves until `stop`; answered calls are recorded in
    /// `recordings`.
    pub async fn start(
        config: StackConfig,
        recordings: PathBuf,
        stop: CancellationToken,
    ) -> Result<SipProvider, String> {
        let token = stop.child_token();
        let transports = TransportLayer::new(token.clone());
        let advertised_ip = match (config.public_ip, config.bind.ip()) {
            (Some(ip), _) => ip,
            (None, ip) if ip.is_unspecified() => outward_ip(),
            (None, ip) => ip,
        };
        // Bound here so that port 0 is resolved before it is advertised.
        let socket = tokio::net::UdpSocket::bind(config.bind)
            .await
            .map_err(|e| format!("cannot listen for SIP on {}: {e}", config.bind))?;
        let bind = socket
            .local_addr()
            .map_err(|e| format!("SIP socket address: {e}"))?;
        let contact = SocketAddr::new(advertised_ip, bind.port());
        let connection = UdpConnection::from_socket(
            Arc::new(socket),
            (advertised_ip != bind.ip()).then_some(contact),
            Some(token.child_token()),
        )
        .await
        .map_err(|e| format!("cannot listen for SIP on {bind}: {e}"))?;
        transports.add_transport(connection.into());
        let endpoint = EndpointBuilder::new()
            // Timer C (an INVITE ringing with no final answer) beyond the longest ring timeout
            // a line may set (600 s): our CANCEL decides, not the stack's 180 s default.
            .with_option(EndpointOption {
                timerc: std::time::Duration::from_secs(660),
                ..Default::default()
            })
            .with_cancel_token(token.clone())
            .with_transport_layer(transports)
            .with_user_agent(concat!("waihu/", env!("CARGO_PKG_VERSION")))
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| format!("SIP endpoint: {e}"))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let serving = endpoint.inner.clone();
        tokio::spawn(async move { serving.serve().await });
        tokio::spawn(route_requests(incoming, dialogs.clone(), token));
        tracing::info!(sip = %bind, advertised = %contact, "SIP user agent listening");
        Ok(SipProvider {
            inner: Arc::new(Inner {
                endpoint,
                dialogs,
                config,
                recordings,
                contact,
                media_ip: advertised_ip,
            }),
        })
    }

    /// The address trunks send to (`sip_bind`'s port, resolved when it was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.contact
    }
}

/// Requests from trunks: those within a call go to its dialog (a BYE ends it); OPTIONS is
/// answered; anything else (a call to us, a stray request) is refused.
async fn route_requests(
    mut incoming: rsipstack::transaction::TransactionReceiver,
    dialogs: Arc<DialogLayer>,
    stop: CancellationToken,
) {
    loop {
        let mut tx = tokio::select! {
            _ = stop.cancelled() => return,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => return,
            },
        };
        let dialogs = dialogs.clone();
        tokio::spawn(async move {
            if let Some(Dialog::Invite(mut d)) = dialogs.match_dialog(&tx) {
                if let Err(e) = d.handle(&mut tx).await {
                    tracing::debug!(error = %e, "in-dialog request not handled");
                }
                return;
            }
            let status = match tx.original.method {
                Method::Options => StatusCode::OK,
                Method::Ack => return,
                // Outbound only: calls to this adapter are not taken.
                Method::Invite => StatusCode::Forbidden,
                _ => StatusCode::CallTransactionDoesNotExist,
            };
            if let Err(e) = tx.reply(status).await {
                tracing::debug!(error = %e, "reply to a stray SIP request not sent");
            }
        });
    }
}

impl SipProvider {
    /// Asks the trunk of a `sip` line for OPTIONS (the usual SIP ping): Ok with what it
    /// answered, Err with why not (no answer within `timeout`, a refusal, a bad setting).
    pub async fn probe(
        &self,
        line: &waihu_provider_core::LineConfig,
        timeout: std::time::Duration,
    ) -> Result<String, String> {
        use rsipstack::{
            sip::{Request, SipMessage},
            transaction::{
                key::{TransactionKey, TransactionRole},
                transaction::Transaction,
            },
            transport::SipAddr,
        };
        let trunk = crate::Trunk::from_line(line)
            .map_err(|e| format!("provider_config.{}: {}", e.field, e.why))?;
        let target = trunk
            .resolve()
            .await
            .ok_or_else(|| format!("the trunk host {} does not resolve", trunk.host))?;
        let (transport, param) = match trunk.transport {
            crate::Transport::Udp => (rsipstack::sip::transport::Transport::Udp, "UDP"),
            crate::Transport::Tcp => (rsipstack::sip::transport::Transport::Tcp, "TCP"),
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let user = trunk.username.as_deref().unwrap_or("waihu");
        let text = format!(
            "OPTIONS sip:{host}:{port} SIP/2.0\r\n\
             Via: SIP/2.0/{param} {contact};branch=z9hG4bK{id};rport\r\n\
             From: <sip:{user}@{domain}>;tag={tag}\r\n\
             To: <sip:{host}:{port}>\r\n\
             Call-ID: {id}@waihu\r\n\
             CSeq: 1 OPTIONS\r\n\
             Contact: <sip:{user}@{contact}>\r\n\
             Max-Forwards: 70\r\n\
             Accept: application/sdp\r\n\
             Content-Length: 0\r\n\r\n",
            host = trunk.host,
            port = trunk.port,
            contact = self.inner.contact,
            domain = trunk.domain,
            tag = &id[..10],
        );
        let request = Request::try_from(text.as_str()).map_err(|e| format!("OPTIONS: {e}"))?;
        let key = TransactionKey::from_request(&request, TransactionRole::Client)
            .map_err(|e| format!("OPTIONS: {e}"))?;
        let mut tx = Transaction::new_client(key, request, self.inner.endpoint.inner.clone(), None);
        tx.destination = Some(SipAddr {
            r#type: Some(transport),
            addr: target.into(),
        });
        let answer = async {
            tx.send()
                .await
                .map_err(|e| format!("OPTIONS not sent to {target}: {e}"))?;
            while let Some(m) = tx.receive().await {
                if let SipMessage::Response(r) = m {
                    let code = r.status_code.code();
                    if code >= 200 {
                        return Ok(code);
                    }
                }
            }
            Err(format!("no answer from {target}"))
        };
        let code = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| format!("no answer from {target} within {} s", timeout.as_secs()))??;
        // Any final answer shows the trunk is there; 401/407 and 405 are usual for OPTIONS.
        match code {
            200..=299 | 401 | 405 | 407 | 403 | 404 | 484 => Ok(format!(
                "the trunk at {target} answered OPTIONS with {code}"
            )),
            _ => Err(format!(
                "the trunk at {target} answered OPTIONS with {code}"
            )),
        }
    }
}
