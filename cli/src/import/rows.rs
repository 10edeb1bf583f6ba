//! Reading a contact CSV row by row, in bounded memory.
//!
//! A row the file itself spoils (invalid UTF-8, a different number of fields than the header,
//! far too large) is rejected on its own with its line number; the rest of the file goes on.

use std::io::Read;

use csv::ByteRecord;
use prost::Message;
use waihu_proto::v1 as pb;

use crate::CliError;

/// Rows per `AddContactsRequest`.
pub const CHUNK_ROWS: usize = 1000;
/// Encoded rows per `AddContactsRequest`, at most (one larger row still goes alone).
pub const CHUNK_BYTES: usize = 1 << 20;
/// A single row larger than this is rejected (it would not fit a gRPC message).
pub const MAX_ROW_BYTES: usize = 1 << 20;
/// Local rejections kept for printing; all are counted.
pub const KEPT_REJECTIONS: usize = 10_000;

/// Which column is what.
#[derive(Debug)]
pub struct Columns {
    phone: usize,
    name: Option<usize>,
    external_id: Option<usize>,
    /// (column, variable key) for every other column with a non-empty header.
    variables: Vec<(usize, String)>,
    width: usize,
}

impl Columns {
    pub fn from_header(header: &ByteRecord) -> Result<Columns, String> {
        let names = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = std::str::from_utf8(h)
                    .map_err(|_| format!("header column {} is not valid UTF-8", i + 1))?;
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                Ok(h.trim().to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let col = |n: &str| names.iter().position(|h| h.eq_ignore_ascii_case(n));
        let phone = col("phone").ok_or_else(|| {
            format!(
                "the header has no `phone` column (it has: {})",
                names.join(", ")
            )
        })?;
        let (name, external_id) = (col("name"), col("external_id"));
        let variables = names
            .iter()
            .enumerate()
            .filter(|(c, h)| {
                !h.is_empty() && *c != phone && Some(*c) != name && Some(*c) != external_id
            })
            .map(|(c, h)| (c, h.clone()))
            .collect();
        Ok(Columns {
            phone,
            name,
            external_id,
            variables,
            width: names.len(),
        })
    }

    /// The contact in `rec`, or why the row is rejected.
    fn row(&self, rec: &ByteRecord) -> Result<pb::ContactRow, String> {
        if rec.len() != self.width {
            return Err(format!(
                "{} fields, the header has {}",
                rec.len(),
                self.width
            ));
        }
        let field = |c: usize| -> Result<String, String> {
            let b = rec.get(c).unwrap_or_default();
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| format!("field {} is not valid UTF-8", c + 1))
        };
        let opt = |c: Option<usize>| c.map(field).transpose().map(Option::unwrap_or_default);
        let mut row = pb::ContactRow {
            phone: field(self.phone)?,
            name: opt(self.name)?,
            external_id: opt(self.external_id)?,
            variables: Default::default(),
        };
        for (c, key) in &self.variables {
            let v = field(*c)?;
            if !v.is_empty() {
                row.variables.insert(key.clone(), v);
            }
        }
        let size = row.encoded_len();
        if size > MAX_ROW_BYTES {
            return Err(format!("row is too large ({size} bytes)"));
        }
        Ok(row)
    }
}

/// A row rejected before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRejection {
    /// 1-based line of the file the row starts on.
    pub line: u64,
    pub reason: String,
}

/// What reading the file found besides the rows it sent.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Rows handed on (all but the rejected ones).
    pub rows: u64,
    /// The first [`KEPT_REJECTIONS`] local rejections.
    pub rejected: Vec<LocalRejection>,
    pub rejected_total: u64,
}

/// Reads contact rows from a CSV source; rows the file spoils are recorded, not fatal.
pub struct RowReader<R: Read> {
    reader: csv::Reader<R>,
    columns: Columns,
    record: ByteRecord,
    carry: Option<pb::ContactRow>,
    pub stats: ReadStats,
}

impl<R: Read> RowReader<R> {
    /// `reader` must be built with `has_headers(true)` (the default) and `flexible(true)`.
    pub fn new(mut reader: csv::Reader<R>) -> Result<Self, CliError> {
        let header = reader
            .byte_headers()
            .map_err(|e| format!("no header row: {e}"))?
            .clone();
        let columns = Columns::from_header(&header)?;
        Ok(RowReader {
            reader,
            columns,
            record: ByteRecord::new(),
            carry: None,
            stats: ReadStats::default(),
        })
    }

    pub fn from_reader(source: R) -> Result<Self, CliError> {
        Self::new(csv::ReaderBuilder::new().flexible(true).from_reader(source))
    }

    fn reject(&mut self, line: u64, reason: String) {
        self.stats.rejected_total += 1;
        if self.stats.rejected.len() < KEPT_REJECTIONS {
            self.stats.rejected.push(LocalRejection { line, reason });
        }
    }

    /// The next good row (`None` at the end of the file). Only an I/O error is an error.
    pub fn next_row(&mut self) -> Result<Option<pb::ContactRow>, CliError> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    let line = self.record.position().map(|p| p.line()).unwrap_or(0);
                    match self.columns.row(&self.record) {
                        Ok(row) => {
                            self.stats.rows += 1;
                            return Ok(Some(row));
                        }
                        Err(reason) => self.reject(line, reason),
                    }
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    match e.kind() {
                        csv::ErrorKind::Io(_) => {
                            return Err(format!("line {line}: {e}").into());
                        }
                        _ => self.reject(line, e.to_string()),
                    }
                }
            }
        }
    }

    /// Up to [`CHUNK_ROWS`] rows and about [`CHUNK_BYTES`] encoded; `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<pb::ContactRow>>, CliError> {
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        let mut bytes = 0;
        while chunk.len() < CHUNK_ROWS {
            let row = match self.carry.take() {
                Some(r) => r,
                None => match self.next_row()? {
                    Some(r) => r,
                    None => break,
                },
            };
            let size = row.encoded_len();
            if !chunk.is_empty() && bytes + size > CHUNK_BYTES {
                self.carry = Some(row);
                break;
            }
            bytes += size;
            chunk.push(row);
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }

    /// Byte offset reached in the source.
    pub fn byte_offset(&self) -> u64 {
        self.reader.position().byte()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoiled_rows_are_rejected_and_the_rest_kept() -> Result<(), CliError> {
        let mut csv = b"\xef\xbb\xbfPhone , Name,external_id,city,,tier\n".to_vec();
        csv.extend_from_slice(b"13800000001,Ann,r-1,Shanghai,x,\n"); // line 2: kept
        csv.extend_from_slice(b"13800000002,Bob\n"); // line 3: ragged
        csv.extend_from_slice(b"13800000003,C\xffrl,r-3,Xiamen,,gold\n"); // line 4: bad UTF-8
        csv.extend_from_slice(b"\"13800000004\",\"Dan\nDoe\",r-4,,,\n"); // lines 5-6: kept
        csv.extend_from_slice(b"13800000005,Eve,r-5,Beijing,,vip,extra\n"); // line 7: ragged
        csv.extend_from_slice(b"13800000006,Fay,r-6,,,\n"); // line 8: kept
        let mut r = RowReader::from_reader(&csv[..])?;
        let mut rows = Vec::new();
        while let Some(row) = r.next_row()? {
            rows.push(row);
        }
        let phones: Vec<_> = rows.iter().map(|r| r.phone.as_str()).collect();
        assert_eq!(phones, ["13800000001", "13800000004", "13800000006"]);
        assert_eq!(rows[0].name, "Ann");
        assert_eq!(rows[0].external_id, "r-1");
        assert_eq!(rows[0].variables.len(), 1, "empty values are omitted");
        assert_eq!(rows[0].variables["city"], "Shanghai");
        assert_eq!(rows[1].name, "Dan\nDoe");
        assert!(rows[2].variables.is_empty());
        assert_eq!(r.stats.rows, 3);
        assert_eq!(r.stats.rejected_total, 3);
        assert_eq!(
            r.stats.rejected,
            [
                LocalRejection {
                    line: 3,
                    reason: "2 fields, the header has 6".into()
                },
                LocalRejection {
                    line: 4,
                    reason: "field 2 is not valid UTF-8".into()
                },
                LocalRejection {
                    line: 7,
                    reason: "7 fields, the header has 6".into()
                },
            ]
        );
        Ok(())
    }

    #[test]
    fn phone_column_is_required() {
        let err = RowReader::from_reader(&b"name,mobile\nAnn,1380000\n"[..])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no `phone` column"), "{err}");
        assert!(err.contains("name, mobile"), "{err}");
    }

    #[test]
    fn chunks_are_bounded_by_rows_and_bytes() -> Result<(), CliError> {
        let mut csv = String::from("phone,note\n");
        for i in 0..2500 {
            csv.push_str(&format!("1380000{i:04},n\n"));
        }
        let mut r = RowReader::from_reader(csv.as_bytes())?;
        let mut sizes = Vec::new();
        while let Some(c) = r.next_chunk()? {
            sizes.push(c.len());
        }
        assert_eq!(sizes, [1000, 1000, 500]);

        let big = "x".repeat(400 << 10);
        let mut csv = String::from("phone,note\n");
        for i in 0..5 {
            csv.push_str(&format!("1380000{i:04},{big}\n"));
        }
        let mut r = RowReader::from_reader(csv.as_bytes())?;
        let mut sizes = Vec::new();
        while let Some(c) = r.next_chunk()? {
            assert!(c.iter().map(|r| r.encoded_len()).sum::<usize>() <= CHUNK_BYTES);
            sizes.push(c.len());
        }
        assert_eq!(sizes, [2, 2, 1]);
        Ok(())
    }

    #[test]
    fn rejections_kept_are_capped_but_all_counted() -> Result<(), CliError> {
        let mut csv = String::from("phone,name\n");
        for _ in 0..KEPT_REJECTIONS + 5 {
            csv.push_str("1\n");
        }
        csv.push_str("13800000001,Ann\n");
        let mut r = RowReader::from_reader(csv.as_bytes())?;
        assert!(r.next_row()?.is_some());
        assert!(r.next_row()?.is_none());
        assert_eq!(r.stats.rejected.len(), KEPT_REJECTIONS);
        assert_eq!(r.stats.rejected_total, KEPT_REJECTIONS as u64 + 5);
        Ok(())
    }
}
