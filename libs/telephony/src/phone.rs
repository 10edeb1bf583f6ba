//! Phone numbers as accepted on import: a mainland mobile (`1[3-9]` + 9 digits), a landline
//! with its area code (`0` + 2-3 digit area + 7-8 digit number), or E.164 (`+` country code ...).
//! Every accepted number is normalised to E.164 so duplicates are found whatever the spelling.

/// A validated phone number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<PhoneNumber, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("phone is empty".into());
        }
        let mut plus = false;
        let mut digits = String::with_capacity(trimmed.len());
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => {
                    return Err(format!(
                        "phone {trimmed:?} has a character that is not a digit: {c:?}"
                    ))
                }
            }
        }
        if !plus {
            if let Some(rest) = digits.strip_prefix("00") {
                plus = true;
                digits = rest.to_string();
            }
        }
        if plus {
            return Self::e164(&digits, trimmed);
        }
        let b = digits.as_bytes();
        if is_mobile(b) {
            return Ok(PhoneNumber(format!("+86{digits}")));
        }
        if b.first() == Some(&b'0') && (10..=12).contains(&b.len()) && landline_area(&b[1..]) {
            return Ok(PhoneNumber(format!("+86{}", &digits[1..])));
        }
        Err(format!(
            "phone {trimmed:?} is not a mainland mobile (11 digits, 13x-19x), a landline with area \
             code (0 + area + number) or an E.164 number (+ country code)"
        ))
    }

    fn e164(digits: &str, raw: &str) -> Result<PhoneNumber, String> {
        let b = digits.as_bytes();
        if b.first().is_none_or(|d| *d == b'0') || !(7..=15).contains(&b.len()) {
            return Err(format!(
                "phone {raw:?} is not E.164 (+, country code, 7 to 15 digits in all)"
            ));
        }
        if let Some(national) = digits.strip_prefix("86") {
            let n = national.as_bytes();
            let mobile = is_mobile(n);
            let landline = (9..=11).contains(&n.len()) && landline_area(n);
            if !mobile && !landline {
                return Err(format!(
                    "phone {raw:?} is not a valid +86 mobile or landline number"
                ));
            }
        }
        Ok(PhoneNumber(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A number as logs may show it: the first three and last four digits of the national part,
/// the middle masked (`13912345678` → `139****5678`, `+8613912345678` → `+86139****5678`).
/// Shorter numbers keep only their last two digits. Logs never hold a whole number.
pub fn mask(number: &str) -> String {
    let (prefix, national) = match number.strip_prefix("+86") {
        Some(rest) => ("+86", rest),
        None => ("", number),
    };
    let chars: Vec<char> = national.chars().collect();
    let n = chars.len();
    let (head, tail) = if n >= 9 { (3, 4) } else { (0, 2.min(n)) };
    let stars = n - head - tail;
    let mut out = String::with_capacity(prefix.len() + n);
    out.push_str(prefix);
    out.extend(&chars[..head]);
    out.extend(std::iter::repeat_n('*', stars.max(1)));
    out.extend(&chars[n - tail..]);
    out
}

/// Whether a national number (without the trunk 0) starts with a mainland area code: 2-9, or
/// Beijing's 10 (the only area code starting with 1).
/// Whether mainland national digits are a mobile number (11 digits, 13x-19x).
fn is_mobile(national: &[u8]) -> bool {
    national.len() == 11 && national[0] == b'1' && (b'3'..=b'9').contains(&national[1])
}

/// A +86 number as it is dialed inside the mainland: a mobile, or a 400/800 service number, as
/// its digits; a landline with its trunk 0 (`+862161234567` → `02161234567`,
/// `+861012345678` → `01012345678`). `None` for a number of another country.
pub fn mainland_national(e164: &str) -> Option<String> {
    let rest = e164.trim().strip_prefix("+86")?;
    if is_mobile(rest.as_bytes()) || rest.starts_with("400") || rest.starts_with("800") {
        Some(rest.to_string())
    } else {
        Some(format!("0{rest}"))
    }
}

fn landline_area(national: &[u8]) -> bool {
    match national {
        [b'1', b'0', ..] => true,
        [d, ..] => (b'2'..=b'9').contains(d),
        [] => false,
    }
}

/// Refused numbers a reply lists at most (all are counted).
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The numbers of a request that parse, normalised, in order; each one that does not is
/// counted in `rejected_total` and the first [`MAX_LISTED_REJECTIONS`] listed in `rejected`
/// (by index, `offset` added, and at most 64 characters of what was sent).
pub fn parse_many(
    raw: &[String],
    offset: usize,
    rejected: &mut Vec<waihu_proto::v1::RejectedPhone>,
    rejected_total: &mut u32,
) -> Vec<String> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        match PhoneNumber::parse(p) {
            Ok(p) => out.push(p.into_string()),
            Err(reason) => {
                *rejected_total += 1;
                if rejected.len() < MAX_LISTED_REJECTIONS {
                    rejected.push(waihu_proto::v1::RejectedPhone {
                        index: (offset + i) as u32,
                        phone: p.chars().take(64).collect(),
                        reason,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::PhoneNumber;

    #[test]
    fn mainland_numbers_dial_nationally() {
        use super::mainland_national as n;
        assert_eq!(n("+8613912345678").as_deref(), Some("13912345678"));
        assert_eq!(n("+862161234567").as_deref(), Some("02161234567"));
        assert_eq!(n("+861012345678").as_deref(), Some("01012345678"));
        assert_eq!(n("+864008123456").as_deref(), Some("4008123456"));
        assert_eq!(n("+14155550100"), None);
    }

    fn ok(raw: &str) -> String {
        PhoneNumber::parse(raw)
            .map(PhoneNumber::into_string)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn mobiles_landlines_and_e164_normalise_to_one_form() {
        assert_eq!(ok("13800000001"), "+8613800000001");
        assert_eq!(ok("138-0000-0001"), "+8613800000001");
        assert_eq!(ok("+86 138 0000 0001"), "+8613800000001");
        assert_eq!(ok("008613800000001"), "+8613800000001");
        assert_eq!(ok("010-12345678"), "+861012345678");
        assert_eq!(ok("+86 10 12345678"), "+861012345678");
        assert_eq!(ok("+861012345678"), "+861012345678");
        assert_eq!(ok("0592-1234567"), "+865921234567");
        assert_eq!(ok("(021) 1234 5678"), "+862112345678");
        assert_eq!(ok("+14155550123"), "+14155550123");
    }

    #[test]
    fn malformed_numbers_are_rejected_with_a_reason() {
        for bad in [
            "",
            "   ",
            "12800000001",
            "1380000000",
            "138000000012",
            "abc",
            "+0123456",
            "+861280000000",
            "00000000000",
            "13800000001x",
            "0123456789",
            "+1234",
        ] {
            let e = PhoneNumber::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn masked_numbers_keep_only_their_ends() {
        assert_eq!(super::mask("13912345678"), "139****5678");
        assert_eq!(super::mask("+8613912345678"), "+86139****5678");
        assert_eq!(super::mask("02161234567"), "021****4567");
        assert_eq!(super::mask("12345"), "***45");
        assert_eq!(super::mask(""), "*");
        assert_eq!(super::mask("号码号码号码号码号码号"), "号码号****码号码号");
    }
}
