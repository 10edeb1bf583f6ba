//! What a REST reply's `statusCode` means for the request, as data (`status_codes.tsv` at the
//! crate root): success, a line problem ([`ApiError::Config`]), try again later
//! ([`ApiError::Transient`]), a refused number ([`ApiError::Refused`] with a Q.850 cause), or
//! "nothing yet" for a call result query. A code the table lacks is taken as a line problem.

use std::{collections::HashMap, sync::LazyLock};

use waihu_provider_core::cloud::ApiError;
use waihu_telephony::hangup;

/// The statusCode of success.
pub const OK: &str = "000000";

/// What a statusCode means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    Config,
    Transient,
    /// The number was refused: the call is released with this Q.850 cause.
    Refused(u32),
    /// Nothing to tell yet (a call result not there yet).
    Pending,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: Kind,
    pub meaning: String,
}

/// Parses the table; an error names the line.
pub fn parse(tsv: &str) -> Result<HashMap<String, Row>, String> {
    let mut rows = HashMap::new();
    for (no, line) in tsv.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("code\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [code, kind, q850, meaning] = cols[..] else {
            return Err(format!("line {}: four columns wanted", no + 1));
        };
        let q850: u32 = q850
            .parse()
            .map_err(|e| format!("line {}: q850 {q850:?}: {e}", no + 1))?;
        let kind = match kind {
            "ok" => Kind::Ok,
            "config" => Kind::Config,
            "transient" => Kind::Transient,
            "refused" if q850 > 0 => Kind::Refused(q850),
            "pending" => Kind::Pending,
            other => return Err(format!("line {}: kind {other:?}", no + 1)),
        };
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("line {}: code {code:?} is not six digits", no + 1));
        }
        let row = Row {
            kind,
            meaning: meaning.to_string(),
        };
        if rows.insert(code.to_string(), row).is_some() {
            return Err(format!("line {}: code {code} twice", no + 1));
        }
    }
    Ok(rows)
}

static TABLE: LazyLock<HashMap<String, Row>> = LazyLock::new(|| {
    parse(include_str!("../status_codes.tsv"))
        .expect("the embedded status code table is valid (the tests parse it)")
});

/// The table.
pub fn table() -> &'static HashMap<String, Row> {
    &TABLE
}

/// What `code` means (a code the table lacks: [`Kind::Config`]).
pub fn kind(code: &str) -> Kind {
    TABLE.get(code.trim()).map_or(Kind::Config, |r| r.kind)
}

/// The error a failed reply is: `code` with the provider's `message` (already scrubbed).
pub fn error(code: &str, message: &str) -> ApiError {
    let code = code.trim();
    let meaning = TABLE.get(code).map_or("", |r| r.meaning.as_str());
    let text = format!(
        "ronglian statusCode {code} ({meaning}): {}",
        message.chars().take(200).collect::<String>()
    );
    match kind(code) {
        Kind::Transient => ApiError::Transient(text),
        Kind::Refused(q850) => ApiError::Refused {
            cause: hangup::cause(q850, format!("ronglian:status:{code}")),
            message: text,
        },
        Kind::Ok | Kind::Pending | Kind::Config => ApiError::Config(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_sorts_the_families() {
        let t = table();
        assert_eq!(t.get(OK).map(|r| r.kind), Some(Kind::Ok));
        for code in 101100..=101115 {
            assert_eq!(kind(&code.to_string()), Kind::Config, "{code}");
        }
        assert_eq!(kind("100699"), Kind::Transient);
        assert_eq!(kind("172001"), Kind::Transient);
        assert_eq!(kind("100006"), Kind::Refused(28));
        assert_eq!(kind("100007"), Kind::Pending);
        assert_eq!(
            kind("999999"),
            Kind::Config,
            "unknown codes are the line's to look at"
        );
    }

    #[test]
    fn errors_carry_the_code_and_a_refusal_its_cause() {
        let e = error("100006", "手机号不合法");
        assert!(
            matches!(&e, ApiError::Refused { cause, message }
                if cause.q850 == 28 && cause.raw == "ronglian:status:100006"
                    && message.contains("100006")),
            "{e:?}"
        );
        assert!(matches!(error("101115", "x"), ApiError::Config(m) if m.contains("101115")));
        assert!(matches!(error("100699", "busy"), ApiError::Transient(_)));
        let long = "x".repeat(5000);
        assert!(error("1", &long).to_string().len() < 400);
    }

    #[test]
    fn bad_tables_are_refused_naming_the_line() {
        assert!(parse("code\tkind\tq850\tmeaning\n000000\tok\t0\tok\n").is_ok());
        for bad in [
            "12345\tok\t0\tx",
            "123456\tnope\t0\tx",
            "123456\trefused\t0\tx",
            "123456\tok\tx\tx",
            "123456\tok\t0",
            "123456\tok\t0\ta\n123456\tok\t0\tb",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("line "), "{e}");
        }
    }
}
