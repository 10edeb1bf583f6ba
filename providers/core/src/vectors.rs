//! The shared test vectors (`shared/vectors` beside the repo), for tests and tools: where they
//! are, a file's text, one entry of `signatures.json` and its fields, the rows of a TSV file;
//! these panic with what is missing, as a test cannot go on without its vectors. And the
//! fields of an entry given to a provider's `sign_vector` (what `waihu provider sign` reads),
//! which must never panic: [`field`] and [`str_field`] say what is wrong instead.

use std::path::PathBuf;

use crate::Signed;

/// Where the shared test vectors are: `WAIHU_VECTORS_DIR`, else `shared/vectors` beside the repo.
pub fn dir() -> PathBuf {
    std::env::var_os("WAIHU_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
        })
}

/// The text of one vector file.
pub fn read(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vectors must be beside the repo ({}): {e}", path.display()))
}

/// One entry of `signatures.json`.
pub fn signature_entry(key: &str) -> serde_json::Value {
    let all: serde_json::Value =
        serde_json::from_str(&read("signatures.json")).expect("signatures.json is JSON");
    all.get(key)
        .unwrap_or_else(|| panic!("signatures.json has no {key:?}"))
        .clone()
}

/// Field `name` of an entry to sign; an error naming it when the entry is not an object or lacks
/// it.
pub fn field<'a>(
    entry: &'a serde_json::Value,
    name: &str,
) -> Result<&'a serde_json::Value, String> {
    entry
        .as_object()
        .ok_or("the entry is not a JSON object")?
        .get(name)
        .ok_or_else(|| format!("missing field `{name}`"))
}

/// Field `name` of an entry to sign, a string; an error naming it otherwise.
pub fn str_field<'a>(entry: &'a serde_json::Value, name: &str) -> Result<&'a str, String> {
    field(entry, name)?
        .as_str()
        .ok_or_else(|| format!("field `{name}` is not a string"))
}

/// The rows of a TSV vector file, each split at its tabs: every line but blank ones, `#`
/// comments and the first other line (the column names).
pub fn tsv_rows(name: &str) -> Vec<Vec<String>> {
    read(name)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Field `name` of a vector entry, a string the entry must give.
pub fn expected<'a>(entry: &'a serde_json::Value, name: &str) -> &'a str {
    entry
        .get(name)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("the vector gives {name}"))
}

/// The intermediate value `name` a signing gave.
pub fn extra<'a>(signed: &'a Signed, name: &str) -> &'a str {
    signed
        .extra
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("extra has {name}"))
}

/// Owned name/value pairs, as requests and signatures take them.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A small deterministic generator (xorshift64), for cross-checks over many inputs.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tsv_vector_has_rows_without_its_header() {
        for (name, first_column) in [
            ("ronglian_byetype.tsv", "code"),
            ("sip_to_q850.tsv", "sip"),
            ("tencent_end_status.tsv", "code"),
            ("twilio_call_status.tsv", "status"),
        ] {
            let rows = tsv_rows(name);
            assert!(!rows.is_empty(), "{name}");
            assert!(rows.iter().all(|r| r[0] != first_column), "{name}");
        }
        assert!(signature_entry("twilio_request_validator").is_object());
    }
}
