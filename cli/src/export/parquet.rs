//! Parquet: the CSV columns, typed, written in row groups so memory stays bounded.

use std::{io::Write, sync::Arc};

use parquet::{
    basic::Compression,
    data_type::{ByteArray, ByteArrayType, Int64Type},
    file::{properties::WriterProperties, writer::SerializedFileWriter},
    schema::parser::parse_message_type,
};
use waihu_proto::v1 as pb;

use super::{micros, Row, Sink};
use crate::CliError;

/// The schema: the columns of [`super::COLUMNS`], in that order.
const SCHEMA: &str = "
message waihu_event {
  REQUIRED INT64 position;
  REQUIRED BYTE_ARRAY event_id (STRING);
  REQUIRED BYTE_ARRAY event_type (STRING);
  REQUIRED INT64 schema_version;
  REQUIRED BYTE_ARRAY tenant_id (STRING);
  REQUIRED BYTE_ARRAY stream_id (STRING);
  REQUIRED INT64 stream_version;
  REQUIRED BYTE_ARRAY task_id (STRING);
  OPTIONAL INT64 occurred_at (TIMESTAMP(MICROS,true));
  OPTIONAL INT64 recorded_at (TIMESTAMP(MICROS,true));
  REQUIRED BYTE_ARRAY correlation_id (STRING);
  REQUIRED BYTE_ARRAY causation_id (STRING);
  REQUIRED BYTE_ARRAY traceparent (STRING);
  REQUIRED BYTE_ARRAY tracestate (STRING);
  OPTIONAL BYTE_ARRAY payload (STRING);
  OPTIONAL BYTE_ARRAY payload_base64 (STRING);
}";

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 10_000;
/// A row group is also closed once its buffered strings reach this size.
const ROW_GROUP_BYTES: usize = 64 << 20;

/// One column's values of the row group being filled; `defs` are definition levels
/// (1 = present, 0 = null) for optional columns.
enum Column {
    Int(Vec<i64>),
    OptInt(Vec<i64>, Vec<i16>),
    Str(Vec<ByteArray>),
    OptStr(Vec<ByteArray>, Vec<i16>),
}

impl Column {
    fn clear(&mut self) {
        match self {
            Column::Int(v) => v.clear(),
            Column::Str(v) => v.clear(),
            Column::OptInt(v, d) => {
                v.clear();
                d.clear()
            }
            Column::OptStr(v, d) => {
                v.clear();
                d.clear()
            }
        }
    }
}

pub struct ParquetSink<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    columns: Vec<Column>,
    rows: usize,
    bytes: usize,
    group_rows: usize,
}

impl<W: Write + Send> ParquetSink<W> {
    pub fn new(out: W) -> Result<Self, CliError> {
        Self::with_row_group(out, ROW_GROUP_ROWS)
    }

    pub fn with_row_group(out: W, group_rows: usize) -> Result<Self, CliError> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("waihu {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
        use Column::*;
        let columns = vec![
            Int(vec![]),
            Str(vec![]),
            Str(vec![]),
            Int(vec![]),
            Str(vec![]),
            Str(vec![]),
            Int(vec![]),
            Str(vec![]),
            OptInt(vec![], vec![]),
            OptInt(vec![], vec![]),
            Str(vec![]),
            Str(vec![]),
            Str(vec![]),
            Str(vec![]),
            OptStr(vec![], vec![]),
            OptStr(vec![], vec![]),
        ];
        Ok(ParquetSink {
            writer,
            columns,
            rows: 0,
            bytes: 0,
            group_rows: group_rows.max(1),
        })
    }

    fn push(&mut self, row: Row) {
        let e = row.envelope;
        let ints = [
            row.position as i64,
            i64::from(e.schema_version),
            e.stream_version as i64,
        ];
        let times = [
            e.occurred_at.as_ref().map(micros),
            row.recorded_at.as_ref().map(micros),
        ];
        let strs = [
            e.event_id,
            e.event_type,
            e.tenant_id,
            e.stream_id,
            e.task_id,
            e.correlation_id,
            e.causation_id,
            e.traceparent,
            e.tracestate,
        ];
        let opt_strs = [row.payload, row.payload_base64];
        let (mut ints, mut times, mut strs, mut opt_strs) = (
            ints.into_iter(),
            times.into_iter(),
            strs.into_iter(),
            opt_strs.into_iter(),
        );
        for c in &mut self.columns {
            match c {
                Column::Int(v) => v.push(ints.next().unwrap_or_default()),
                Column::OptInt(v, d) => match times.next().flatten() {
                    Some(t) => {
                        v.push(t);
                        d.push(1)
                    }
                    None => d.push(0),
                },
                Column::Str(v) => {
                    let s = strs.next().unwrap_or_default();
                    self.bytes += s.len();
                    v.push(ByteArray::from(s.into_bytes()))
                }
                Column::OptStr(v, d) => match opt_strs.next().flatten() {
                    Some(s) => {
                        self.bytes += s.len();
                        v.push(ByteArray::from(s.into_bytes()));
                        d.push(1)
                    }
                    None => d.push(0),
                },
            }
        }
        self.rows += 1;
    }

    /// Writes the buffered rows as one row group.
    fn flush_group(&mut self) -> Result<(), CliError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut columns = self.columns.iter_mut();
        while let Some(mut w) = group.next_column()? {
            let c = columns
                .next()
                .ok_or("parquet schema has more columns than rows")?;
            match c {
                Column::Int(v) => w.typed::<Int64Type>().write_batch(v, None, None)?,
                Column::OptInt(v, d) => w.typed::<Int64Type>().write_batch(v, Some(d), None)?,
                Column::Str(v) => w.typed::<ByteArrayType>().write_batch(v, None, None)?,
                Column::OptStr(v, d) => w.typed::<ByteArrayType>().write_batch(v, Some(d), None)?,
            };
            w.close()?;
            c.clear();
        }
        group.close()?;
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }
}

impl<W: Write + Send> Sink for ParquetSink<W> {
    fn write(&mut self, event: &pb::ExportedEvent) -> Result<(), CliError> {
        self.push(Row::from_event(event)?);
        if self.rows >= self.group_rows || self.bytes >= ROW_GROUP_BYTES {
            self.flush_group()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        self.flush_group()?;
        let mut out = self.writer.into_inner()?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use parquet::{
        file::reader::{FileReader, SerializedFileReader},
        record::RowAccessor,
    };

    use super::*;
    use crate::export::{testdata, COLUMNS};

    struct TempFile(std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn temp(name: &str) -> TempFile {
        TempFile(
            std::env::temp_dir().join(format!("waihu-cli-{}-{name}.parquet", std::process::id())),
        )
    }

    #[test]
    fn reads_back() -> Result<(), CliError> {
        let f = temp("reads-back");
        let mut sink = Box::new(ParquetSink::with_row_group(
            std::fs::File::create(&f.0)?,
            10,
        )?);
        for p in 1..=25 {
            match p % 3 {
                0 => sink.write(&testdata::contact_finished(p))?,
                1 => sink.write(&testdata::call_released(p))?,
                _ => sink.write(&testdata::unknown(p))?,
            }
        }
        sink.finish()?;

        let reader = SerializedFileReader::new(std::fs::File::open(&f.0)?)?;
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), 25);
        assert_eq!(meta.num_row_groups(), 3);
        let schema = meta.file_metadata().schema_descr();
        let names: Vec<_> = schema.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, COLUMNS);

        let rows = reader.get_row_iter(None)?.collect::<Result<Vec<_>, _>>()?;
        assert_eq!(rows.len(), 25);
        let r = &rows[2]; // position 3: ContactFinished
        assert_eq!(r.get_long(0)?, 3);
        assert_eq!(r.get_string(2)?, "ContactFinished");
        assert_eq!(r.get_long(6)?, 4);
        assert_eq!(r.get_timestamp_micros(8)?, 1_790_000_000_123_000);
        assert_eq!(r.get_timestamp_micros(9)?, 1_790_000_001_000_000);
        let payload: serde_json::Value = serde_json::from_str(r.get_string(14)?)?;
        assert_eq!(payload["outcome"], "CONTACT_OUTCOME_ANSWERED");
        assert!(r.get_string(15).is_err(), "payload_base64 is null");

        let r = &rows[1]; // position 2: unknown type
        assert_eq!(r.get_string(2)?, "CallTranscribed");
        assert!(r.get_string(14).is_err(), "payload is null");
        assert_eq!(r.get_string(15)?, "CgJoaQ==");
        Ok(())
    }

    #[test]
    fn empty_export_is_a_valid_file() -> Result<(), CliError> {
        let f = temp("empty");
        Box::new(ParquetSink::new(std::fs::File::create(&f.0)?)?).finish()?;
        let reader = SerializedFileReader::new(std::fs::File::open(&f.0)?)?;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        Ok(())
    }
}
