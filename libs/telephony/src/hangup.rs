//! Normalised hangup causes: Q.850 values and names, and SIP final responses mapped to them.
//! What a cause means for redialing is the dialer's recall policy (`waihu_dialer::rules`).
//!
//! The tables are data; `tests` checks them row by row against `shared/vectors/`.

use waihu_proto::v1 as pb;

/// Q.850 causes worth another attempt: busy 17, no user response 18, no answer 19, subscriber
/// absent 20, congestion and temporary failures 34/38/41/42/44/47, recovery on timer expiry 102.
pub const RETRYABLE_Q850: &[u32] = &[17, 18, 19, 20, 34, 38, 41, 42, 44, 47, 102];
/// Q.850 causes that say the number itself is wrong: unallocated 1, no route 3, number changed
/// 22, invalid format 28, outgoing/incoming calls barred 52/54/55.
pub const INVALID_NUMBER_Q850: &[u32] = &[1, 3, 22, 28, 52, 54, 55];
/// CALL_REJECTED.
pub const CALL_REJECTED: u32 = 21;

/// SIP final response -> Q.850 cause, as FreeSWITCH maps it (`sofia_glue_sip_cause_to_freeswitch`).
pub const SIP_TO_Q850: &[(u16, u32)] = &[
    (200, 16),
    (400, 41),
    (401, 21),
    (402, 21),
    (403, 21),
    (404, 1),
    (405, 63),
    (406, 79),
    (407, 21),
    (408, 102),
    (410, 22),
    (413, 127),
    (414, 127),
    (415, 79),
    (416, 127),
    (420, 127),
    (421, 127),
    (423, 127),
    (480, 18),
    (481, 41),
    (482, 25),
    (483, 25),
    (484, 28),
    (485, 3),
    (486, 17),
    (487, 487),
    (488, 88),
    (500, 41),
    (501, 79),
    (502, 38),
    (503, 41),
    (504, 102),
    (505, 127),
    (513, 127),
    (600, 17),
    (603, 21),
    (604, 3),
    (606, 88),
];

/// Q.850 cause names (plus FreeSWITCH's 487) as the switch industry spells them.
pub const Q850_NAMES: &[(u32, &str)] = &[
    (0, "UNSPECIFIED"),
    (1, "UNALLOCATED_NUMBER"),
    (3, "NO_ROUTE_DESTINATION"),
    (16, "NORMAL_CLEARING"),
    (17, "USER_BUSY"),
    (18, "NO_USER_RESPONSE"),
    (19, "NO_ANSWER"),
    (20, "SUBSCRIBER_ABSENT"),
    (21, "CALL_REJECTED"),
    (22, "NUMBER_CHANGED"),
    (25, "EXCHANGE_ROUTING_ERROR"),
    (27, "DESTINATION_OUT_OF_ORDER"),
    (28, "INVALID_NUMBER_FORMAT"),
    (31, "NORMAL_UNSPECIFIED"),
    (34, "NORMAL_CIRCUIT_CONGESTION"),
    (38, "NETWORK_OUT_OF_ORDER"),
    (41, "NORMAL_TEMPORARY_FAILURE"),
    (63, "SERVICE_UNAVAILABLE"),
    (79, "SERVICE_NOT_IMPLEMENTED"),
    (88, "INCOMPATIBLE_DESTINATION"),
    (102, "RECOVERY_ON_TIMER_EXPIRE"),
    (127, "INTERWORKING"),
    (487, "ORIGINATOR_CANCEL"),
];

/// The Q.850 name of a cause value ("UNKNOWN" for values outside the table).
pub fn q850_name(q850: u32) -> &'static str {
    Q850_NAMES
        .iter()
        .find(|(c, _)| *c == q850)
        .map(|(_, n)| *n)
        .unwrap_or("UNKNOWN")
}

/// Maps a SIP final response to Q.850 (unlisted 4xx/5xx/6xx fall back by class, as RFC 3398 does).
pub fn sip_to_q850(sip: u16) -> u32 {
    if let Some((_, q)) = SIP_TO_Q850.iter().find(|(s, _)| *s == sip) {
        return *q;
    }
    match sip {
        200..=299 => 16,
        400..=499 => 41,
        500..=599 => 41,
        600..=699 => 31,
        _ => 0,
    }
}

/// A normalised cause from a SIP final response.
pub fn from_sip(sip: u16) -> pb::HangupCause {
    cause(sip_to_q850(sip), format!("sip:{sip}"))
}

/// A normalised cause from a Q.850 value and the provider's raw code.
pub fn cause(q850: u32, raw: impl Into<String>) -> pb::HangupCause {
    pb::HangupCause {
        q850,
        name: q850_name(q850).to_string(),
        raw: raw.into(),
    }
}

/// A provider's raw codes mapped to Q.850, kept as data (a TSV file beside the provider's code):
/// `code<TAB>q850<TAB>meaning`, one row per code, `#` comments and a `code` header line
/// skipped. The provider crates load theirs with `include_str!` and test it row by row against
/// `shared/vectors/`.
#[derive(Debug, Clone)]
pub struct CauseTable {
    rows: Vec<CauseRow>,
}

/// One row of a [`CauseTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CauseRow {
    pub code: String,
    pub q850: u32,
    pub meaning: String,
}

impl CauseTable {
    /// Parses a table; a malformed row, an unknown Q.850 value or a repeated code is an error
    /// naming its line.
    pub fn parse(tsv: &str) -> Result<CauseTable, String> {
        let mut rows: Vec<CauseRow> = Vec::new();
        for (n, line) in tsv.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') || line.starts_with("code\t") {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(code), Some(q850)) = (cols.next(), cols.next()) else {
                return Err(format!("line {}: want code<TAB>q850<TAB>meaning", n + 1));
            };
            let q850: u32 = q850
                .parse()
                .map_err(|_| format!("line {}: q850 {q850:?} is not a number", n + 1))?;
            if q850_name(q850) == "UNKNOWN" {
                return Err(format!("line {}: Q.850 {q850} has no name", n + 1));
            }
            if rows.iter().any(|r| r.code == code) {
                return Err(format!("line {}: code {code:?} repeated", n + 1));
            }
            rows.push(CauseRow {
                code: code.to_string(),
                q850,
                meaning: cols.next().unwrap_or("").to_string(),
            });
        }
        Ok(CauseTable { rows })
    }

    /// The row of `code`, if the table has one.
    pub fn get(&self, code: &str) -> Option<&CauseRow> {
        self.rows.iter().find(|r| r.code == code)
    }

    /// The normalised cause of `code`, raw as `<prefix>:<code>`; `fallback` (a Q.850 value) for a
    /// code the table lacks.
    pub fn cause(&self, prefix: &str, code: &str, fallback: u32) -> pb::HangupCause {
        let q850 = self.get(code).map(|r| r.q850).unwrap_or(fallback);
        cause(q850, format!("{prefix}:{code}"))
    }

    pub fn rows(&self) -> &[CauseRow] {
        &self.rows
    }
}

/// The raw cause (prefix) of a release for a call surely never placed: a provider campaign
/// stopped at the end of its calling window before it reached the call, or closed before the
/// call came. The dialer calls such a contact again without charging an attempt.
pub const NOT_PLACED: &str = "waihu:not-placed";

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn vectors_dir() -> PathBuf {
        std::env::var_os("WAIHU_VECTORS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
            })
    }

    #[test]
    fn sip_table_matches_the_official_vector_row_by_row() {
        let path = vectors_dir().join("sip_to_q850.tsv");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("vectors must be beside the repo ({}): {e}", path.display())
        });
        let mut rows = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("sip\t"))
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let sip: u16 = cols[0].parse().expect("sip code");
            let q850: u32 = cols[1].parse().expect("q850");
            assert_eq!(sip_to_q850(sip), q850, "SIP {sip}");
            assert_eq!(q850_name(q850), cols[2], "name of Q.850 {q850}");
            rows += 1;
        }
        assert_eq!(
            rows,
            SIP_TO_Q850.len(),
            "every vector row is in the table and no more"
        );
    }

    #[test]
    fn sip_codes_carry_their_raw_code() {
        assert_eq!(from_sip(486).q850, 17);
        assert_eq!(from_sip(486).raw, "sip:486");
    }
}
