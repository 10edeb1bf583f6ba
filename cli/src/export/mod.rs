//! Event export formats for `waihu replay`: JSON lines, CSV and Parquet.
//!
//! Every format writes one row per [`pb::ExportedEvent`] as it arrives, so an export of any
//! size runs in bounded memory. The payload is decoded as `waihu.v1.<eventType>` with the
//! descriptor pool and rendered as canonical proto3 JSON; a payload this build cannot read
//! (unknown type or schema version, or bytes that do not decode) is kept as base64.

pub mod csv;
pub mod json;
pub mod parquet;

use std::{io::Write, path::Path};

use prost_reflect::{DynamicMessage, SerializeOptions};
use waihu_proto::v1 as pb;

use crate::CliError;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (canonical proto3 JSON).
    Json,
    /// A header row, then one row per event; the payload as proto3 JSON text.
    Csv,
    /// The CSV columns, typed; needs `--output`.
    Parquet,
}

/// Refuses a format/output pair that cannot work, before anything is asked of the server.
pub fn check(format: Format, output: Option<&Path>) -> Result<(), CliError> {
    if format == Format::Parquet && output.is_none() {
        return Err(
            "--format parquet writes a binary file: give it with --output FILE.parquet".into(),
        );
    }
    Ok(())
}

/// Where events go, one at a time.
pub trait Sink {
    fn write(&mut self, event: &pb::ExportedEvent) -> Result<(), CliError>;
    /// Flushes and completes the output (for Parquet: the last row group and the footer).
    fn finish(self: Box<Self>) -> Result<(), CliError>;
}

/// The writer for `format`, to `output` or standard output.
pub fn sink(format: Format, output: Option<&Path>) -> Result<Box<dyn Sink>, CliError> {
    let create = |p: &Path| {
        std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    check(format, output)?;
    let out: Box<dyn Write + Send> = match output {
        Some(p) if format == Format::Parquet => {
            return Ok(Box::new(parquet::ParquetSink::new(create(p)?)?))
        }
        Some(p) => Box::new(create(p)?),
        None => Box::new(std::io::stdout()),
    };
    let out = std::io::BufWriter::with_capacity(64 * 1024, out);
    Ok(match format {
        Format::Csv => Box::new(csv::CsvSink::new(out)),
        _ => Box::new(json::JsonSink::new(out)),
    })
}

/// The payload decoded as `waihu.v1.<event_type>`, when the server knows it, the pool has
/// the type and the bytes decode.
pub fn decode_payload(event_type: &str, payload: &[u8], known: bool) -> Option<DynamicMessage> {
    if !known || event_type.is_empty() {
        return None;
    }
    let desc = waihu_proto::descriptor_pool()
        .get_message_by_name(&format!("{}.{event_type}", waihu_proto::PACKAGE))?;
    DynamicMessage::decode(desc, payload).ok()
}

/// Canonical proto3 JSON with every field present (enums by name, 64-bit integers as strings,
/// timestamps in RFC 3339).
pub fn json_options() -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(false)
}

/// A decoded message that serializes as canonical proto3 JSON.
pub struct ProtoJson<'a>(pub &'a DynamicMessage);

impl serde::Serialize for ProtoJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_with_options(s, &json_options())
    }
}

/// The message as one line of proto3 JSON text.
pub fn proto_json_text(msg: &DynamicMessage) -> Result<String, CliError> {
    Ok(serde_json::to_string(&ProtoJson(msg))?)
}

/// RFC 3339 in UTC as proto3 JSON writes timestamps (0, 3, 6 or 9 fractional digits, `Z`).
pub fn rfc3339(t: &prost_types::Timestamp) -> String {
    t.to_string()
}

/// Microseconds since the Unix epoch (Parquet `TIMESTAMP(MICROS, true)`).
pub fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos) / 1000)
}

pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One event flattened into the tabular columns shared by CSV and Parquet.
pub struct Row {
    pub position: u64,
    pub envelope: pb::Envelope,
    pub recorded_at: Option<prost_types::Timestamp>,
    /// Proto3 JSON of the payload, when it could be read.
    pub payload: Option<String>,
    /// The raw payload in base64, when it could not.
    pub payload_base64: Option<String>,
}

/// Column names of CSV and Parquet, in order.
pub const COLUMNS: &[&str] = &[
    "position",
    "event_id",
    "event_type",
    "schema_version",
    "tenant_id",
    "stream_id",
    "stream_version",
    "task_id",
    "occurred_at",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "traceparent",
    "tracestate",
    "payload",
    "payload_base64",
];

impl Row {
    pub fn from_event(e: &pb::ExportedEvent) -> Result<Row, CliError> {
        let mut envelope = e.envelope.clone().unwrap_or_default();
        let raw = std::mem::take(&mut envelope.payload);
        let (payload, payload_base64) = match decode_payload(&envelope.event_type, &raw, e.known) {
            Some(m) => (Some(proto_json_text(&m)?), None),
            None => (None, Some(base64(&raw))),
        };
        Ok(Row {
            position: e.position,
            envelope,
            recorded_at: e.recorded_at,
            payload,
            payload_base64,
        })
    }
}

#[cfg(test)]
pub mod testdata {
    //! Events the format tests share.
    use prost::Message;
    use waihu_proto::v1 as pb;

    pub fn envelope(event_type: &str, payload: Vec<u8>) -> pb::Envelope {
        pb::Envelope {
            event_id: "0b9a4a52-2a4c-4c53-9d0a-5f1b2f7d8e01".into(),
            event_type: event_type.into(),
            schema_version: 1,
            tenant_id: "acme".into(),
            stream_id: "call-6f7c".into(),
            stream_version: 4,
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_000,
                nanos: 123_000_000,
            }),
            correlation_id: "corr-1".into(),
            causation_id: "cause-1".into(),
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: String::new(),
            task_id: "9d5e".into(),
            payload: payload.into(),
        }
    }

    pub fn exported(position: u64, envelope: pb::Envelope, known: bool) -> pb::ExportedEvent {
        pb::ExportedEvent {
            position,
            envelope: Some(envelope),
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_001,
                nanos: 0,
            }),
            known,
        }
    }

    pub fn call_released(position: u64) -> pb::ExportedEvent {
        let payload = pb::CallReleased {
            call_id: "6f7c".into(),
            task_id: "9d5e".into(),
            contact_no: 7,
            cause: Some(pb::HangupCause {
                q850: 17,
                name: "USER_BUSY".into(),
                raw: "sip:486".into(),
            }),
            answered: false,
            ring_ms: 5000,
            talk_ms: 0,
            ..Default::default()
        };
        exported(
            position,
            envelope("CallReleased", payload.encode_to_vec()),
            true,
        )
    }

    pub fn contact_finished(position: u64) -> pb::ExportedEvent {
        let payload = pb::ContactFinished {
            task_id: "9d5e".into(),
            contact_no: 7,
            outcome: pb::ContactOutcome::Answered as i32,
            attempts: 2,
            last_call_id: "6f7c".into(),
        };
        exported(
            position,
            envelope("ContactFinished", payload.encode_to_vec()),
            true,
        )
    }

    /// A type this build does not know.
    pub fn unknown(position: u64) -> pb::ExportedEvent {
        exported(
            position,
            envelope("CallTranscribed", vec![0x0a, 0x02, b'h', b'i']),
            false,
        )
    }
}
