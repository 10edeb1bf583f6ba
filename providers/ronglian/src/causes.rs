//! Ronglian hangup causes, mapped to Q.850 as data at the crate root:
//!
//! - `causes.tsv`: the hangup notification's `byetype` codes (checked row by row against
//!   `shared/vectors/ronglian_byetype.tsv` by the tests); raw `ronglian:byetype:<code>`.
//! - `landing_states.tsv`: the voice notification (LandingCalls) status callback's `state`
//!   codes; raw `ronglian:state:<code>`.
//!
//! A code a table lacks maps to NORMAL_UNSPECIFIED ([`FALLBACK_Q850`]).

use std::sync::LazyLock;

use waihu_events::pb;
use waihu_telephony::hangup::CauseTable;

/// The Q.850 cause of a code a table lacks: NORMAL_UNSPECIFIED.
pub const FALLBACK_Q850: u32 = 31;

/// Parses a table embedded in the crate; the tests parse every one, so this cannot fail at run
/// time.
fn embedded(tsv: &str) -> CauseTable {
    CauseTable::parse(tsv).expect("an embedded cause table is valid (the tests parse it)")
}

static BYETYPES: LazyLock<CauseTable> = LazyLock::new(|| embedded(include_str!("../causes.tsv")));
static LANDING_STATES: LazyLock<CauseTable> =
    LazyLock::new(|| embedded(include_str!("../landing_states.tsv")));

/// The `byetype` table.
pub fn table() -> &'static CauseTable {
    &BYETYPES
}

/// The voice notification `state` table.
pub fn landing_table() -> &'static CauseTable {
    &LANDING_STATES
}

/// The normalised cause of a hangup notification's `byetype` (as the XML gives it, e.g. `-2`).
pub fn cause(byetype: &str) -> pb::HangupCause {
    table().cause("ronglian:byetype", byetype.trim(), FALLBACK_Q850)
}

/// The normalised cause of a voice notification's `state` (`0`, `1`, `2`).
pub fn landing_cause(state: &str) -> pb::HangupCause {
    landing_table().cause("ronglian:state", state.trim(), FALLBACK_Q850)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_provider_core::vectors;

    /// The byetype mapping we decided on, code by code.
    const DECIDED: &[(&str, u32)] = &[
        ("1", 16),
        ("2", 16),
        ("3", 16),
        ("4", 16),
        ("-1", 41),
        ("-2", 19),
        ("-5", 31),
        ("-6", 21),
        ("-7", 21),
        ("-11", 41),
        ("-8", 487),
        ("-3", 487),
        ("-4", 41),
        ("-9", 21),
        ("-10", 487),
        ("-14", 487),
    ];

    /// The voice notification states (research notes, no vector file): code, Q.850, meaning.
    const LANDING: &[(&str, u32, &str)] = &[
        ("0", 16, "normal"),
        ("1", 19, "callee did not answer"),
        ("2", 41, "call failed"),
    ];

    #[test]
    fn byetype_table_matches_the_vector_row_by_row() {
        let rows = vectors::tsv_rows("ronglian_byetype.tsv");
        let mut codes = Vec::new();
        for row in &rows {
            let [code, meaning, _kind] = &row[..] else {
                panic!("vector row {row:?} has three columns");
            };
            let row = table()
                .get(code)
                .unwrap_or_else(|| panic!("byetype {code} is in causes.tsv"));
            assert_eq!(&row.meaning, meaning, "byetype {code}");
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
    fn byetype_table_holds_the_decided_mapping() {
        for (code, q850) in DECIDED {
            assert_eq!(
                table().get(code).map(|r| r.q850),
                Some(*q850),
                "byetype {code}"
            );
        }
        assert_eq!(table().rows().len(), DECIDED.len());
    }

    #[test]
    fn landing_table_holds_the_documented_states() {
        let rows: Vec<(&str, u32, &str)> = landing_table()
            .rows()
            .iter()
            .map(|r| (r.code.as_str(), r.q850, r.meaning.as_str()))
            .collect();
        assert_eq!(rows, LANDING);
    }

    #[test]
    fn causes_carry_the_raw_code() {
        let timeout = cause(" -2 ");
        assert_eq!((timeout.q850, timeout.name.as_str()), (19, "NO_ANSWER"));
        assert_eq!(timeout.raw, "ronglian:byetype:-2");
        assert_eq!(cause("-99").q850, FALLBACK_Q850);
        assert_eq!(cause("-99").raw, "ronglian:byetype:-99");
        let failed = landing_cause("2");
        assert_eq!((failed.q850, failed.raw.as_str()), (41, "ronglian:state:2"));
        assert_eq!(landing_cause("7").q850, FALLBACK_Q850);
    }
}
