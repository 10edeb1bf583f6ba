//! The JetStream bus: streams created idempotently at start-up, event publishing with
//! `Nats-Msg-Id` dedupe and optimistic concurrency per aggregate subject, durable pull-consumer
//! runners with ack / nak-with-backoff / bounded redelivery / dead-letter, and an ordered reader
//! for the event store writer.
//!
//! Works against NATS 2.9: one filter subject per consumer; event types are filtered in the client
//! from the `Waihu-Event-Type` header.

mod consumer;
mod deadletter;
mod ordered;
mod publish;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
pub use consumer::{BatchHandler, ConsumerSpec, Delivery, HandlerError, MessageHandler, Runner};
pub use deadletter::DeadLetter;
pub use ordered::{OrderedReader, RawEvent};
pub use publish::{Expect, PublishOutcome};
use waihu_events::Aggregate;

/// Dead-letter headers: why a message was given up on, and where it came from.
pub const HEADER_DLQ_REASON: &str = "Waihu-Dlq-Reason";
pub const HEADER_DLQ_CONSUMER: &str = "Waihu-Dlq-Consumer";
pub const HEADER_DLQ_STREAM_SEQ: &str = "Waihu-Dlq-Stream-Seq";
pub const HEADER_DLQ_SUBJECT: &str = "Waihu-Dlq-Subject";
pub const HEADER_DLQ_DELIVERIES: &str = "Waihu-Dlq-Deliveries";
/// Size in bytes of the original message.
pub const HEADER_DLQ_ORIGINAL_SIZE: &str = "Waihu-Dlq-Original-Size";
/// Present when the stored payload is cut (the original was too large to carry with headers).
pub const HEADER_DLQ_TRUNCATED: &str = "Waihu-Dlq-Truncated";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("NATS credentials file {0}")]
    Credentials(String),
    #[error("JetStream stream setup failed: {0}")]
    Stream(String),
    #[error("JetStream consumer failed: {0}")]
    Consumer(String),
    #[error("publish to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
    #[error("{subject} has moved past the expected sequence {expected}")]
    WrongLastSequence { subject: String, expected: u64 },
    #[error("reading {subject} failed: {reason}")]
    Read { subject: String, reason: String },
}

/// What identifies a stream's history: when it was created, and how far it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    pub created: chrono::DateTime<chrono::Utc>,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

/// Bus settings; `prefix` namespaces subjects and stream names so that several deployments (or
/// parallel tests) share one NATS without seeing each other.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub url: String,
    pub prefix: String,
    /// Stream replicas: 1 locally, 3 on a production cluster.
    pub replicas: usize,
    /// Events older than this are dropped from JetStream (0 = kept); the PostgreSQL store keeps
    /// them for good, so this only bounds how far a stopped store writer may fall behind.
    pub max_age: Duration,
    /// Bytes the events stream keeps at most, oldest dropped first (0 = no limit); like
    /// `max_age`, it bounds how far a stopped store writer may fall behind (the writer halts,
    /// saying so, if events expire before it read them).
    pub max_bytes: i64,
    /// The service's own NATS credentials.
    pub auth: NatsAuth,
}

/// How a service proves itself to NATS: each service its own user, token or credentials file,
/// so the server can give each only the subjects it needs. (Credentials in the URL,
/// `nats://user:password@host`, work too.)
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// A `.creds` file (a user JWT and its NKey seed), for NATS' decentralised accounts.
    CredsFile(std::path::PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsAuth::None => write!(f, "None"),
            NatsAuth::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            NatsAuth::Token(_) => write!(f, "Token(***)"),
            NatsAuth::CredsFile(p) => write!(f, "CredsFile({})", p.display()),
        }
    }
}

impl BusConfig {
    pub fn local(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        BusConfig {
            url: url.into(),
            prefix: prefix.into(),
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: 0,
            auth: NatsAuth::None,
        }
    }
}

/// `url` without a password or token in it, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A connection to NATS with the names of this deployment's streams.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    events_stream: String,
    dlq_stream: String,
}

impl Bus {
    /// Connects and creates (or checks) the events and dead-letter streams.
    pub async fn connect(config: &BusConfig) -> Result<Bus, BusError> {
        let failed = |source| BusError::Connect {
            url: redact(&config.url),
            source,
        };
        let mut options = match &config.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
            NatsAuth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| BusError::Credentials(format!("{}: {e}", path.display())))?,
        };
        options = options
            .name("waihu")
            .connection_timeout(Duration::from_secs(5));
        // A cluster is named by its servers, comma-separated (`nats://a:4222,nats://b:4222`).
        let servers: Vec<async_nats::ServerAddr> = config
            .url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<_, _>>()
            .map_err(|e| BusError::Connect {
                url: redact(&config.url),
                source: async_nats::ConnectError::with_source(
                    async_nats::ConnectErrorKind::ServerParse,
                    e,
                ),
            })?;
        let client = options.connect(servers).await.map_err(failed)?;
        let bus = Bus::from_client(client, &config.prefix);
        bus.ensure_streams(config).await?;
        Ok(bus)
    }

    fn from_client(client: async_nats::Client, prefix: &str) -> Bus {
        let js = jetstream::new(client.clone());
        let stem: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        Bus {
            client,
            js,
            prefix: prefix.to_string(),
            events_stream: format!("{stem}_EVENTS"),
            dlq_stream: format!("{stem}_DLQ"),
        }
    }

    async fn ensure_streams(&self, config: &BusConfig) -> Result<(), BusError> {
        let events = stream::Config {
            name: self.events_stream.clone(),
            subjects: vec![self.events_filter("")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            max_age: config.max_age,
            max_bytes: if config.max_bytes > 0 {
                config.max_bytes
            } else {
                -1
            },
            num_replicas: config.replicas,
            description: Some("waihu call-lifecycle events, one subject per aggregate".into()),
            ..Default::default()
        };
        let dlq = stream::Config {
            name: self.dlq_stream.clone(),
            subjects: vec![format!("{}.dlq.>", self.prefix)],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            description: Some("waihu dead letters: messages consumers gave up on".into()),
            ..Default::default()
        };
        for cfg in [events, dlq] {
            let name = cfg.name.clone();
            self.js
                .get_or_create_stream(cfg)
                .await
                .map_err(|e| BusError::Stream(format!("{name}: {e}")))?;
        }
        Ok(())
    }

    /// Deletes this prefix's streams (tests and tooling only).
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        for name in [&self.events_stream, &self.dlq_stream] {
            let _ = self.js.delete_stream(name).await;
        }
        Ok(())
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn events_stream(&self) -> &str {
        &self.events_stream
    }

    pub fn dlq_stream(&self) -> &str {
        &self.dlq_stream
    }

    /// The subject an aggregate's events go to.
    pub fn subject(&self, aggregate: &Aggregate) -> String {
        format!("{}.evt.{}", self.prefix, aggregate.subject_suffix())
    }

    /// A single-wildcard filter for one aggregate kind (`"task"`, `"call"`, `"contact"`), or all
    /// events for `""`.
    pub fn events_filter(&self, kind: &str) -> String {
        if kind.is_empty() {
            format!("{}.evt.>", self.prefix)
        } else {
            format!("{}.evt.{kind}.>", self.prefix)
        }
    }

    /// The dead-letter subject of one consumer.
    pub fn dlq_subject(&self, consumer: &str) -> String {
        format!("{}.dlq.{consumer}", self.prefix)
    }

    /// The largest message the server accepts (`max_payload`), headers included.
    pub fn max_payload(&self) -> usize {
        match self.client.server_info().max_payload {
            0 => 1024 * 1024,
            n => n,
        }
    }

    /// Creation time and last sequence of the events stream: a different creation time, or a
    /// last sequence below what a reader has seen, means the stream was recreated or lost its
    /// tail.
    pub async fn events_stream_state(&self) -> Result<StreamState, BusError> {
        // One request: fetching the stream returns its current info.
        let s = self
            .js
            .get_stream(&self.events_stream)
            .await
            .map_err(|e| BusError::Stream(e.to_string()))?;
        let info = s.cached_info();
        Ok(StreamState {
            created: info.created,
            last_sequence: info.state.last_sequence,
            first_sequence: info.state.first_sequence,
        })
    }

    /// The last sequence of the events stream (0 when empty).
    pub async fn last_sequence(&self) -> Result<u64, BusError> {
        Ok(self.events_stream_state().await?.last_sequence)
    }
}
