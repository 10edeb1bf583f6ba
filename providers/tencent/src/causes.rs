//! Tencent CCC hangup causes: the CDR push's `EndStatus` codes mapped to Q.850. The mapping is
//! data, `causes.tsv` at the crate root (`code<TAB>q850<TAB>EndStatusString: meaning`), checked
//! row by row against `shared/vectors/tencent_end_status.tsv` by the tests.

use std::sync::LazyLock;

use waihu_events::pb;
use waihu_telephony::hangup::CauseTable;

/// The Q.850 cause of an `EndStatus` the table lacks (such as the inbound-only 100 and 102-107):
/// NORMAL_UNSPECIFIED.
pub const FALLBACK_Q850: u32 = 31;

static TABLE: LazyLock<CauseTable> = LazyLock::new(|| {
    CauseTable::parse(include_str!("../causes.tsv"))
        .expect("causes.tsv is a valid cause table (the tests parse it)")
});

/// The `EndStatus` table.
pub fn table() -> &'static CauseTable {
    &TABLE
}

/// The normalised cause of a CDR's `EndStatus`; raw `tencent:<code>`.
pub fn cause(end_status: i64) -> pb::HangupCause {
    table().cause("tencent", &end_status.to_string(), FALLBACK_Q850)
}

/// The `EndStatus` code an `EndStatusString` stands for (`busy` → 206), from the table's meaning
/// column (`busy: busy`); `None` for a string the table lacks.
pub fn code_of_string(end_status_string: &str) -> Option<i64> {
    let wanted = end_status_string.trim();
    table()
        .rows()
        .iter()
        .find(|r| r.meaning.split(':').next() == Some(wanted))
        .and_then(|r| r.code.parse().ok())
}

/// The normalised cause of a CDR that names its end only by `EndStatusString` (the push's
/// documented field): the same as its code's (raw `tencent:<code>`), or, for a string the table
/// lacks, [`FALLBACK_Q850`] with raw `tencent:<string>`.
pub fn cause_of_string(end_status_string: &str) -> pb::HangupCause {
    match code_of_string(end_status_string) {
        Some(code) => cause(code),
        None => waihu_telephony::hangup::cause(
            FALLBACK_Q850,
            format!("tencent:{}", end_status_string.trim()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_provider_core::vectors;

    /// The mapping we decided on, code by code.
    const DECIDED: &[(&str, u32)] = &[
        ("0", 41),
        ("1", 16),
        ("2", 41),
        ("108", 21),
        ("109", 34),
        ("110", 63),
        ("111", 41),
        ("201", 31),
        ("202", 19),
        ("203", 21),
        ("204", 20),
        ("205", 1),
        ("206", 17),
        ("207", 20),
        ("208", 38),
        ("209", 487),
        ("210", 20),
        ("211", 41),
        ("212", 21),
    ];

    #[test]
    fn table_matches_the_vector_row_by_row() {
        let rows = vectors::tsv_rows("tencent_end_status.tsv");
        let mut codes = Vec::new();
        for row in &rows {
            let [code, string, meaning] = &row[..] else {
                panic!("vector row {row:?} has three columns");
            };
            let row = table()
                .get(code)
                .unwrap_or_else(|| panic!("EndStatus {code} is in causes.tsv"));
            assert_eq!(
                row.meaning.split(':').next(),
                Some(string.as_str()),
                "code {code}"
            );
            assert_eq!(row.meaning, format!("{string}: {meaning}"), "code {code}");
            codes.push(code.as_str());
        }
        assert!(!codes.is_empty(), "the vector file has rows");
        let ours: Vec<&str> = table().rows().iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            ours, codes,
            "the same codes, no more, in the vector's order"
        );
    }

    #[test]
    fn table_holds_the_decided_mapping() {
        for (code, q850) in DECIDED {
            assert_eq!(
                table().get(code).map(|r| r.q850),
                Some(*q850),
                "code {code}"
            );
        }
        assert_eq!(table().rows().len(), DECIDED.len());
    }

    #[test]
    fn causes_carry_the_raw_code() {
        let busy = cause(206);
        assert_eq!((busy.q850, busy.name.as_str()), (17, "USER_BUSY"));
        assert_eq!(busy.raw, "tencent:206");
        let inbound_only = cause(105);
        assert_eq!(inbound_only.q850, FALLBACK_Q850);
        assert_eq!(inbound_only.raw, "tencent:105");
        assert_eq!(cause(-1).raw, "tencent:-1");
    }

    #[test]
    fn strings_map_like_their_codes() {
        for row in table().rows() {
            let string = row.meaning.split(':').next().expect("a string");
            let code: i64 = row.code.parse().expect("numeric code");
            assert_eq!(code_of_string(string), Some(code), "{string}");
            assert_eq!(cause_of_string(string), cause(code), "{string}");
        }
        assert_eq!(code_of_string(" busy "), Some(206));
        let unknown = cause_of_string("voiceMailReached");
        assert_eq!(
            (unknown.q850, unknown.raw.as_str()),
            (FALLBACK_Q850, "tencent:voiceMailReached")
        );
        assert_eq!(code_of_string(""), None);
    }
}
