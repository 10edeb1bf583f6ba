use chrono::{DateTime, Utc};
use prost::Message;
use uuid::Uuid;
use waihu_proto::v1 as pb;

use crate::{trace, Aggregate, SCHEMA_VERSION};

/// Namespace for deterministic (v5) event ids: the same fact always gets the same id.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5f0e_9a3c_7d1b_4e28_9c61_0b7a_2d4e_8f13);

/// A typed event payload.
// `TaskCreated` carries the whole task spec (about 340 bytes against 130 for a call event). It
// is one event per task among thousands per task, so it stays inline rather than boxing every
// decode path for it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    TaskCreated(pb::TaskCreated),
    ContactsAdded(pb::ContactsAdded),
    TaskStarted(pb::TaskStarted),
    TaskPaused(pb::TaskPaused),
    TaskResumed(pb::TaskResumed),
    TaskCancelled(pb::TaskCancelled),
    TaskCompleted(pb::TaskCompleted),
    CallRequested(pb::CallRequested),
    CallDialing(pb::CallDialing),
    CallRinging(pb::CallRinging),
    CallAnswered(pb::CallAnswered),
    CallReleased(pb::CallReleased),
    RecordingAvailable(pb::RecordingAvailable),
    TranscriptAvailable(pb::TranscriptAvailable),
    RecordingStored(pb::RecordingStored),
    RecordingFailed(pb::RecordingFailed),
    RecordingDeleted(pb::RecordingDeleted),
    ContactFinished(pb::ContactFinished),
    TenantEntitlementsSet(pb::TenantEntitlementsSet),
    AuditRecorded(pb::AuditRecorded),
    LineCreated(pb::LineCreated),
    LineUpdated(pb::LineUpdated),
    LineDisabled(pb::LineDisabled),
    LineEnabled(pb::LineEnabled),
    DeviceBound(pb::DeviceBound),
    DeviceUnbound(pb::DeviceUnbound),
    FollowUpAdded(pb::FollowUpAdded),
    AnalysisCompleted(pb::AnalysisCompleted),
    AnalysisFailed(pb::AnalysisFailed),
    ScreeningCreated(pb::ScreeningCreated),
    NumbersScreened(pb::NumbersScreened),
    ScreeningCompleted(pb::ScreeningCompleted),
    NumberValidityOverridden(pb::NumberValidityOverridden),
    ProviderCampaignChanged(pb::ProviderCampaignChanged),
}

macro_rules! event_kinds {
    ($($name:ident),* $(,)?) => {
        impl Event {
            /// The event type name carried in the envelope and the bus header.
            pub fn type_name(&self) -> &'static str {
                match self { $(Event::$name(_) => stringify!($name),)* }
            }

            fn encode_payload(&self) -> Vec<u8> {
                match self { $(Event::$name(p) => p.encode_to_vec(),)* }
            }

            /// Decodes a payload of the named type.
            pub fn decode(event_type: &str, payload: &[u8]) -> Result<Event, DecodeError> {
                match event_type {
                    $(stringify!($name) => pb::$name::decode(payload)
                        .map(Event::$name)
                        .map_err(|e| DecodeError::Payload(event_type.to_string(), e.to_string())),)*
                    other => Err(DecodeError::UnknownType(other.to_string())),
                }
            }
        }

        /// Every event type this build knows.
        pub const EVENT_TYPES: &[&str] = &[$(stringify!($name)),*];
    };
}

event_kinds!(
    TaskCreated,
    ContactsAdded,
    TaskStarted,
    TaskPaused,
    TaskResumed,
    TaskCancelled,
    TaskCompleted,
    CallRequested,
    CallDialing,
    CallRinging,
    CallAnswered,
    CallReleased,
    RecordingAvailable,
    TranscriptAvailable,
    RecordingStored,
    RecordingFailed,
    RecordingDeleted,
    ContactFinished,
    TenantEntitlementsSet,
    AuditRecorded,
    LineCreated,
    LineUpdated,
    LineDisabled,
    LineEnabled,
    DeviceBound,
    DeviceUnbound,
    FollowUpAdded,
    AnalysisCompleted,
    AnalysisFailed,
    ScreeningCreated,
    NumbersScreened,
    ScreeningCompleted,
    NumberValidityOverridden,
    ProviderCampaignChanged,
);

#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    #[error("envelope is not valid protobuf: {0}")]
    Envelope(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("payload of {0} is not valid: {1}")]
    Payload(String, String),
    #[error("envelope field {0} is invalid: {1}")]
    Field(&'static str, String),
    #[error("schema version {0} is newer than this build understands ({SCHEMA_VERSION})")]
    SchemaVersion(u32),
}

/// Who/what an event is about and why it happened; everything in the envelope but the payload.
#[derive(Debug, Clone)]
pub struct EventMeta {
    pub event_id: Uuid,
    pub tenant_id: String,
    pub aggregate: Aggregate,
    pub stream_version: u64,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    pub causation_id: String,
    pub task_id: Option<Uuid>,
}

impl EventMeta {
    /// A new event with a fresh time-ordered (v7) id, occurring now, in the current trace.
    /// Time-ordered ids keep the store's event-id index appending at its end instead of
    /// touching a random page per event.
    pub fn new(tenant_id: impl Into<String>, aggregate: Aggregate, stream_version: u64) -> Self {
        EventMeta {
            event_id: Uuid::now_v7(),
            tenant_id: tenant_id.into(),
            aggregate,
            stream_version,
            occurred_at: Utc::now(),
            correlation_id: String::new(),
            causation_id: String::new(),
            task_id: None,
        }
    }

    /// Gives the event an id derived from its aggregate and `name`, so producing it again
    /// yields the same id. The id (a v8 UUID) starts with the aggregate id's first 48 bits (the
    /// time of a v7 id) and continues with a v5 hash of `name`: deterministic, and as local in
    /// the store's index as the aggregate's own id.
    ///
    /// Only those 48 bits of the aggregate enter the id (a millisecond, for a v7 id), so `name`
    /// must name the fact whole, the aggregate's id included (`call/<id>/released`,
    /// `followup/<id>/added`): two aggregates made in the same millisecond with the same
    /// `name` would get the same id, and the store would keep only the first. (Hashing the
    /// stream id in here instead would change every deterministic id already issued, so a
    /// retry across an upgrade would be stored twice.)
    pub fn with_deterministic_id(mut self, name: &str) -> Self {
        let hash = Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).into_bytes();
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&self.aggregate.id().as_bytes()[..6]);
        bytes[6..].copy_from_slice(&hash[6..]);
        self.event_id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        self
    }

    pub fn with_task(mut self, task_id: Uuid) -> Self {
        self.task_id = Some(task_id);
        self
    }

    /// Marks the event as caused by `cause`, continuing its correlation.
    pub fn caused_by(mut self, cause: &RecordedEvent) -> Self {
        self.causation_id = cause.meta.event_id.to_string();
        self.correlation_id = if cause.meta.correlation_id.is_empty() {
            cause.meta.event_id.to_string()
        } else {
            cause.meta.correlation_id.clone()
        };
        self
    }
}

/// A decoded envelope: metadata plus typed payload.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub meta: EventMeta,
    pub event: Event,
    pub traceparent: String,
    pub tracestate: String,
}

impl RecordedEvent {
    /// Builds an event in the current trace context.
    pub fn new(meta: EventMeta, event: Event) -> Self {
        let (traceparent, tracestate) = trace::current_context();
        RecordedEvent {
            meta,
            event,
            traceparent,
            tracestate,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.event.type_name()
    }

    /// The checks [`Decoded::decode`] makes of an envelope's strings, for producers: an event
    /// that fails them would be refused by every reader.
    pub fn check_header(&self) -> Result<(), DecodeError> {
        let m = &self.meta;
        for (field, value) in [
            ("tenant_id", &m.tenant_id),
            ("correlation_id", &m.correlation_id),
            ("causation_id", &m.causation_id),
            ("traceparent", &self.traceparent),
            ("tracestate", &self.tracestate),
        ] {
            check_field(field, value, MAX_ENVELOPE_FIELD_BYTES)?;
        }
        Ok(())
    }

    pub fn to_envelope(&self) -> pb::Envelope {
        pb::Envelope {
            event_id: self.meta.event_id.to_string(),
            event_type: self.event.type_name().to_string(),
            schema_version: SCHEMA_VERSION,
            tenant_id: self.meta.tenant_id.clone(),
            stream_id: self.meta.aggregate.stream_id(),
            stream_version: self.meta.stream_version,
            occurred_at: Some(timestamp(self.meta.occurred_at)),
            correlation_id: self.meta.correlation_id.clone(),
            causation_id: self.meta.causation_id.clone(),
            traceparent: self.traceparent.clone(),
            tracestate: self.tracestate.clone(),
            task_id: self.meta.task_id.map(|t| t.to_string()).unwrap_or_default(),
            payload: self.event.encode_payload().into(),
        }
    }

    /// The bytes that go on the bus and into the store.
    pub fn encode(&self) -> Vec<u8> {
        self.to_envelope().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let env = pb::Envelope::decode(bytes).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        Self::from_envelope(env)
    }

    /// Decodes an envelope of a type and version this build knows; anything else is an error.
    pub fn from_envelope(env: pb::Envelope) -> Result<Self, DecodeError> {
        match Decoded::from_envelope(env)? {
            Decoded::Known(e) => Ok(e),
            Decoded::Unknown(u) => Err(u.error),
        }
    }
}

/// An envelope whose header is well-formed. Its payload may be of a type or schema version this
/// build does not know (a newer producer during a rolling upgrade): such events are still kept
/// by the store, and skipped by whatever cannot read them.
// Nearly every value is `Known`, the large variant: boxing it would add an allocation per event
// and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Decoded {
    Known(RecordedEvent),
    Unknown(UnknownEvent),
}

/// A well-formed envelope this build cannot read the payload of.
#[derive(Debug, Clone)]
pub struct UnknownEvent {
    pub meta: EventMeta,
    pub event_type: String,
    pub schema_version: u32,
    /// Why it is not readable: an unknown type or a newer schema version.
    pub error: DecodeError,
}

/// Longest tenant, correlation or causation id, and trace header, an envelope may carry.
pub const MAX_ENVELOPE_FIELD_BYTES: usize = 256;

/// A string envelope field: bounded, with no control characters (they cannot travel in NATS
/// headers or be stored as PostgreSQL text).
fn check_field(field: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    if value.len() > max {
        return Err(DecodeError::Field(
            field,
            format!("longer than {max} bytes"),
        ));
    }
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(DecodeError::Field(
            field,
            format!("contains the control character {c:?}"),
        )),
        None => Ok(()),
    }
}

impl Decoded {
    /// Decodes envelope bytes; an error means the envelope itself is malformed.
    pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
        let env = pb::Envelope::decode(bytes).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        Self::from_envelope(env)
    }

    /// [`Decoded::decode`] of shared bytes: the payload is not copied out of them.
    pub fn decode_shared(bytes: prost::bytes::Bytes) -> Result<Decoded, DecodeError> {
        let env = pb::Envelope::decode(bytes).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        Self::from_envelope(env)
    }

    pub fn from_envelope(env: pb::Envelope) -> Result<Decoded, DecodeError> {
        check_field("event_type", &env.event_type, 100)?;
        if env.event_type.is_empty() {
            return Err(DecodeError::Field("event_type", "is empty".into()));
        }
        for (field, value) in [
            ("tenant_id", &env.tenant_id),
            ("correlation_id", &env.correlation_id),
            ("causation_id", &env.causation_id),
            ("traceparent", &env.traceparent),
            ("tracestate", &env.tracestate),
        ] {
            check_field(field, value, MAX_ENVELOPE_FIELD_BYTES)?;
        }
        let event_id = Uuid::parse_str(&env.event_id)
            .map_err(|e| DecodeError::Field("event_id", e.to_string()))?;
        let aggregate = Aggregate::parse_stream_id(&env.stream_id)
            .map_err(|e| DecodeError::Field("stream_id", e.to_string()))?;
        let occurred_at = env
            .occurred_at
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| DecodeError::Field("occurred_at", "missing or out of range".into()))?;
        let task_id = if env.task_id.is_empty() {
            None
        } else {
            Some(
                Uuid::parse_str(&env.task_id)
                    .map_err(|e| DecodeError::Field("task_id", e.to_string()))?,
            )
        };
        let meta = EventMeta {
            event_id,
            tenant_id: env.tenant_id,
            aggregate,
            stream_version: env.stream_version,
            occurred_at,
            correlation_id: env.correlation_id,
            causation_id: env.causation_id,
            task_id,
        };
        let unknown = |meta, error| {
            Ok(Decoded::Unknown(UnknownEvent {
                meta,
                event_type: env.event_type.clone(),
                schema_version: env.schema_version,
                error,
            }))
        };
        if env.schema_version > SCHEMA_VERSION {
            return unknown(meta, DecodeError::SchemaVersion(env.schema_version));
        }
        let event = match Event::decode(&env.event_type, &env.payload) {
            Ok(e) => e,
            Err(e @ DecodeError::UnknownType(_)) => return unknown(meta, e),
            Err(e) => return Err(e),
        };
        Ok(Decoded::Known(RecordedEvent {
            meta,
            event,
            traceparent: env.traceparent,
            tracestate: env.tracestate,
        }))
    }

    pub fn meta(&self) -> &EventMeta {
        match self {
            Decoded::Known(e) => &e.meta,
            Decoded::Unknown(u) => &u.meta,
        }
    }

    pub fn event_type(&self) -> &str {
        match self {
            Decoded::Known(e) => e.type_name(),
            Decoded::Unknown(u) => &u.event_type,
        }
    }

    pub fn schema_version(&self) -> u32 {
        match self {
            Decoded::Known(_) => SCHEMA_VERSION,
            Decoded::Unknown(u) => u.schema_version,
        }
    }

    pub fn known(&self) -> Option<&RecordedEvent> {
        match self {
            Decoded::Known(e) => Some(e),
            Decoded::Unknown(_) => None,
        }
    }
}

/// Converts a protobuf timestamp to a chrono time: None when out of range, including nanos
/// outside 0..1e9 (which protobuf forbids but the wire can carry).
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    DateTime::from_timestamp(t.seconds, nanos)
}

/// Converts a chrono time to a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordedEvent {
        let call = Uuid::new_v4();
        let task = Uuid::new_v4();
        let meta = EventMeta::new("acme", Aggregate::Call(call), 5)
            .with_deterministic_id(&format!("{call}/released"))
            .with_task(task);
        RecordedEvent::new(
            meta,
            Event::CallReleased(pb::CallReleased {
                call_id: call.to_string(),
                task_id: task.to_string(),
                contact_no: 7,
                cause: Some(pb::HangupCause {
                    q850: 17,
                    name: "USER_BUSY".into(),
                    raw: "sip:486".into(),
                }),
                answered: false,
                ring_ms: 4000,
                talk_ms: 0,
                ..Default::default()
            }),
        )
    }

    #[test]
    fn envelope_round_trips_every_field() {
        let e = sample();
        let back = RecordedEvent::decode(&e.encode()).expect("decodes");
        assert_eq!(back.event, e.event);
        assert_eq!(back.meta.event_id, e.meta.event_id);
        assert_eq!(back.meta.aggregate, e.meta.aggregate);
        assert_eq!(back.meta.stream_version, 5);
        assert_eq!(back.meta.task_id, e.meta.task_id);
        assert_eq!(back.meta.occurred_at, e.meta.occurred_at);
        assert_eq!(back.meta.tenant_id, "acme");
    }

    #[test]
    fn deterministic_ids_repeat_and_differ_by_name() {
        let a = EventMeta::new("t", Aggregate::Task(Uuid::nil()), 1).with_deterministic_id("x");
        let b = EventMeta::new("t", Aggregate::Task(Uuid::nil()), 1).with_deterministic_id("x");
        let c = EventMeta::new("t", Aggregate::Task(Uuid::nil()), 1).with_deterministic_id("y");
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        let call = Uuid::now_v7();
        let d = EventMeta::new("t", Aggregate::Call(call), 1).with_deterministic_id("x");
        assert_eq!(
            d.event_id.as_bytes()[..6],
            call.as_bytes()[..6],
            "time-local"
        );
        assert_eq!(d.event_id.get_version_num(), 8);
        assert_ne!(d.event_id, a.event_id, "the aggregate is part of the id");
        let fresh = EventMeta::new("t", Aggregate::Call(call), 1);
        assert_eq!(fresh.event_id.get_version_num(), 7);
    }

    #[test]
    fn garbage_and_unknown_types_are_decode_errors() {
        assert!(matches!(
            RecordedEvent::decode(b"\xff\xff\xff"),
            Err(DecodeError::Envelope(_))
        ));
        let mut env = sample().to_envelope();
        env.event_type = "Bogus".into();
        assert!(matches!(
            RecordedEvent::from_envelope(env),
            Err(DecodeError::UnknownType(t)) if t == "Bogus"
        ));
        let mut env = sample().to_envelope();
        env.schema_version = SCHEMA_VERSION + 1;
        assert!(matches!(
            RecordedEvent::from_envelope(env),
            Err(DecodeError::SchemaVersion(_))
        ));
    }

    #[test]
    fn unknown_types_and_newer_versions_are_well_formed_but_unknown() {
        let mut env = sample().to_envelope();
        env.event_type = "CallTranscribed".into();
        let d = Decoded::from_envelope(env).expect("well-formed");
        assert!(matches!(&d, Decoded::Unknown(u) if u.event_type == "CallTranscribed"));
        let mut env = sample().to_envelope();
        env.schema_version = 2;
        let d = Decoded::from_envelope(env).expect("well-formed");
        assert_eq!((d.event_type(), d.schema_version()), ("CallReleased", 2));
        assert!(d.known().is_none());
    }

    #[test]
    fn malformed_headers_are_refused() {
        type Mutation = Box<dyn Fn(&mut pb::Envelope)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("event_id", Box::new(|e| e.event_id = "\n".into())),
            ("tenant_id", Box::new(|e| e.tenant_id = "a\0b".into())),
            ("traceparent", Box::new(|e| e.traceparent = "x\r\ny".into())),
            ("event_type", Box::new(|e| e.event_type = String::new())),
            (
                "occurred_at",
                Box::new(|e| {
                    e.occurred_at = Some(prost_types::Timestamp {
                        seconds: 1,
                        nanos: 1_000_000_000,
                    })
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut env = sample().to_envelope();
            mutate(&mut env);
            match Decoded::from_envelope(env) {
                Err(DecodeError::Field(f, _)) => assert_eq!(f, field),
                other => panic!("{field}: expected a field error, got {other:?}"),
            }
        }
    }
}
