//! CSV: a header row, then one row per event; the payload as proto3 JSON text.

use std::io::Write;

use waihu_proto::v1 as pb;

use super::{rfc3339, Row, Sink, COLUMNS};
use crate::CliError;

pub struct CsvSink<W: Write> {
    out: csv::Writer<W>,
    header_written: bool,
}

impl<W: Write> CsvSink<W> {
    pub fn new(out: W) -> Self {
        CsvSink {
            out: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out),
            header_written: false,
        }
    }
}

/// The CSV fields of `row`, in [`COLUMNS`] order.
pub fn fields(row: &Row) -> [String; 16] {
    let e = &row.envelope;
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(rfc3339).unwrap_or_default();
    [
        row.position.to_string(),
        e.event_id.clone(),
        e.event_type.clone(),
        e.schema_version.to_string(),
        e.tenant_id.clone(),
        e.stream_id.clone(),
        e.stream_version.to_string(),
        e.task_id.clone(),
        time(&e.occurred_at),
        time(&row.recorded_at),
        e.correlation_id.clone(),
        e.causation_id.clone(),
        e.traceparent.clone(),
        e.tracestate.clone(),
        row.payload.clone().unwrap_or_default(),
        row.payload_base64.clone().unwrap_or_default(),
    ]
}

impl<W: Write> Sink for CsvSink<W> {
    fn write(&mut self, event: &pb::ExportedEvent) -> Result<(), CliError> {
        if !self.header_written {
            self.out.write_record(COLUMNS)?;
            self.header_written = true;
        }
        self.out.write_record(fields(&Row::from_event(event)?))?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        if !self.header_written {
            self.out.write_record(COLUMNS)?;
        }
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testdata;

    fn export(events: &[pb::ExportedEvent]) -> Result<String, CliError> {
        let mut buf = Vec::new();
        let mut sink = Box::new(CsvSink::new(&mut buf));
        for e in events {
            sink.write(e)?;
        }
        sink.finish()?;
        Ok(String::from_utf8(buf)?)
    }

    #[test]
    fn header_and_rows() -> Result<(), CliError> {
        let text = export(&[testdata::contact_finished(13), testdata::unknown(14)])?;
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0],
            "position,event_id,event_type,schema_version,tenant_id,stream_id,stream_version,task_id,\
             occurred_at,recorded_at,correlation_id,causation_id,traceparent,tracestate,payload,\
             payload_base64"
        );
        assert_eq!(
            lines[1],
            "13,0b9a4a52-2a4c-4c53-9d0a-5f1b2f7d8e01,ContactFinished,1,acme,call-6f7c,4,9d5e,\
             2026-09-21T14:13:20.123Z,2026-09-21T14:13:21Z,corr-1,cause-1,\
             00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01,,\
             \"{\"\"taskId\"\":\"\"9d5e\"\",\"\"contactNo\"\":7,\"\"outcome\"\":\"\"CONTACT_OUTCOME_ANSWERED\"\",\
             \"\"attempts\"\":2,\"\"lastCallId\"\":\"\"6f7c\"\"}\","
        );
        assert_eq!(
            lines[2],
            "14,0b9a4a52-2a4c-4c53-9d0a-5f1b2f7d8e01,CallTranscribed,1,acme,call-6f7c,4,9d5e,\
             2026-09-21T14:13:20.123Z,2026-09-21T14:13:21Z,corr-1,cause-1,\
             00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01,,,CgJoaQ=="
        );
        assert_eq!(lines.len(), 3);
        Ok(())
    }

    #[test]
    fn reads_back_with_a_csv_reader() -> Result<(), CliError> {
        let text = export(&[testdata::call_released(12)])?;
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let row = r.records().next().ok_or("no row")??;
        let payload: serde_json::Value = serde_json::from_str(&row[14])?;
        assert_eq!(payload["cause"]["name"], "USER_BUSY");
        assert_eq!(payload["ringMs"], "5000");
        assert_eq!(&row[15], "");
        Ok(())
    }

    #[test]
    fn empty_export_still_has_the_header() -> Result<(), CliError> {
        assert_eq!(export(&[])?.lines().count(), 1);
        Ok(())
    }
}
