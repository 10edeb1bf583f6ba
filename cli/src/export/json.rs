//! JSON lines: one canonical proto3 JSON object per event.

use std::io::Write;

use prost_reflect::DynamicMessage;
use serde::Serialize;
use waihu_proto::v1 as pb;

use super::{base64, decode_payload, rfc3339, ProtoJson, Sink};
use crate::CliError;

/// An envelope in proto3 JSON, its payload decoded (or in base64 when it cannot be read).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeJson<'a> {
    event_id: &'a str,
    event_type: &'a str,
    schema_version: u32,
    tenant_id: &'a str,
    stream_id: &'a str,
    /// uint64: a string in proto3 JSON.
    stream_version: String,
    occurred_at: Option<String>,
    correlation_id: &'a str,
    causation_id: &'a str,
    traceparent: &'a str,
    tracestate: &'a str,
    task_id: &'a str,
    payload: Option<ProtoJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

impl<'a> EnvelopeJson<'a> {
    /// `decoded` is the payload as [`decode_payload`] gives it.
    pub fn new(e: &'a pb::Envelope, decoded: Option<&'a DynamicMessage>) -> Self {
        EnvelopeJson {
            event_id: &e.event_id,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            tenant_id: &e.tenant_id,
            stream_id: &e.stream_id,
            stream_version: e.stream_version.to_string(),
            occurred_at: e.occurred_at.as_ref().map(rfc3339),
            correlation_id: &e.correlation_id,
            causation_id: &e.causation_id,
            traceparent: &e.traceparent,
            tracestate: &e.tracestate,
            task_id: &e.task_id,
            payload: decoded.map(ProtoJson),
            payload_base64: match decoded {
                Some(_) => None,
                None => Some(base64(&e.payload)),
            },
        }
    }
}

/// One exported event: its store position and time, then the envelope.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    position: u64,
    recorded_at: Option<String>,
    #[serde(flatten)]
    envelope: EnvelopeJson<'a>,
}

/// The JSON line of `event` (without the newline).
#[cfg(test)]
pub fn line(event: &pb::ExportedEvent) -> Result<String, CliError> {
    let mut out = Vec::with_capacity(512);
    write_line(&mut out, event)?;
    Ok(String::from_utf8(out)?)
}

fn write_line(out: &mut impl Write, event: &pb::ExportedEvent) -> Result<(), CliError> {
    let default = pb::Envelope::default();
    let env = event.envelope.as_ref().unwrap_or(&default);
    let decoded = decode_payload(&env.event_type, &env.payload, event.known);
    let line = Line {
        position: event.position,
        recorded_at: event.recorded_at.as_ref().map(rfc3339),
        envelope: EnvelopeJson::new(env, decoded.as_ref()),
    };
    serde_json::to_writer(&mut *out, &line)?;
    Ok(())
}

pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink { out }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn write(&mut self, event: &pb::ExportedEvent) -> Result<(), CliError> {
        write_line(&mut self.out, event)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testdata;

    const ENVELOPE: &str = r#""eventId":"0b9a4a52-2a4c-4c53-9d0a-5f1b2f7d8e01","schemaVersion":1,"tenantId":"acme","streamId":"call-6f7c","streamVersion":"4","occurredAt":"2026-09-21T14:13:20.123Z","correlationId":"corr-1","causationId":"cause-1","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"","taskId":"9d5e""#;

    fn expected(position: u64, event_type: &str, rest: &str) -> String {
        let envelope = ENVELOPE.replacen(
            r#","schemaVersion""#,
            &format!(r#","eventType":"{event_type}","schemaVersion""#),
            1,
        );
        format!(
            r#"{{"position":{position},"recordedAt":"2026-09-21T14:13:21Z",{envelope},{rest}}}"#
        )
    }

    #[test]
    fn call_released_is_canonical_proto3_json() -> Result<(), CliError> {
        assert_eq!(
            line(&testdata::call_released(12))?,
            expected(
                12,
                "CallReleased",
                r#""payload":{"callId":"6f7c","taskId":"9d5e","contactNo":7,"cause":{"q850":17,"name":"USER_BUSY","raw":"sip:486"},"answered":false,"ringMs":"5000","talkMs":"0","providerReport":""}"#
            )
        );
        Ok(())
    }

    #[test]
    fn enums_by_name() -> Result<(), CliError> {
        assert_eq!(
            line(&testdata::contact_finished(13))?,
            expected(
                13,
                "ContactFinished",
                r#""payload":{"taskId":"9d5e","contactNo":7,"outcome":"CONTACT_OUTCOME_ANSWERED","attempts":2,"lastCallId":"6f7c"}"#
            )
        );
        Ok(())
    }

    #[test]
    fn unknown_type_keeps_the_bytes() -> Result<(), CliError> {
        assert_eq!(
            line(&testdata::unknown(14))?,
            expected(
                14,
                "CallTranscribed",
                r#""payload":null,"payloadBase64":"CgJoaQ==""#
            )
        );
        Ok(())
    }

    #[test]
    fn sink_writes_one_line_per_event() -> Result<(), CliError> {
        let mut buf = Vec::new();
        let mut sink = Box::new(JsonSink::new(&mut buf));
        sink.write(&testdata::call_released(1))?;
        sink.write(&testdata::unknown(2))?;
        sink.finish()?;
        let text = String::from_utf8(buf)?;
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l)?;
            assert!(v["position"].is_u64());
        }
        Ok(())
    }
}
