//! The IANA time zone a phone number tells, from libphonenumber's time zone prefix data
//! (Apache-2.0; generated into `data/tz_prefixes.rs` by `scripts/gen_phone_data.py`, see
//! `NOTICE-phonenumber-data.md`).

#[path = "data/tz_prefixes.rs"]
mod data;

use data::{LONGEST_PREFIX, PREFIXES, SEVERAL, ZONES};

/// The one IANA time zone an E.164 number (`+` and 1-15 digits, e.g. `+12125550100`) is in,
/// by the longest libphonenumber prefix that matches its digits: `None` when that prefix maps to
/// several zones (`+1` alone, most of `+7`, UK mobiles `+447...`), when no prefix matches, or
/// when `e164` is not E.164.
pub fn zone_of(e164: &str) -> Option<&'static str> {
    let digits = e164.strip_prefix('+')?.as_bytes();
    if !(1..=15).contains(&digits.len())
        || digits[0] == b'0'
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let mut key = 0u64;
    let mut found = None;
    for d in digits.iter().take(LONGEST_PREFIX) {
        key = key * 10 + u64::from(d - b'0');
        if let Ok(i) = PREFIXES.binary_search_by_key(&key, |&(prefix, _)| prefix) {
            found = Some(PREFIXES[i].1);
        }
    }
    match found? {
        SEVERAL => None,
        zone => ZONES.get(usize::from(zone)).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::data::{LONGEST_PREFIX, PREFIXES, SEVERAL, ZONES};
    use super::zone_of;

    #[test]
    fn numbers_tell_their_zone() {
        assert_eq!(zone_of("+8613800138000"), Some("Asia/Shanghai"));
        assert_eq!(zone_of("+862161234567"), Some("Asia/Shanghai"));
        assert_eq!(zone_of("+12125550100"), Some("America/New_York"));
        assert_eq!(zone_of("+12135550100"), Some("America/Los_Angeles"));
        assert_eq!(zone_of("+442079460000"), Some("Europe/London"));
        assert_eq!(zone_of("+61212345678"), Some("Australia/Sydney"));
    }

    #[test]
    fn several_or_no_zones_and_malformed_numbers_tell_none() {
        // +1 alone spans the NANP; 208 (Idaho) is split between Boise and Los Angeles.
        assert_eq!(zone_of("+1"), None);
        assert_eq!(zone_of("+12082000000"), None);
        // No prefix data for +999 (unassigned), +0 is not a country code.
        assert_eq!(zone_of("+99912345678"), None);
        assert_eq!(zone_of("+012125550100"), None);
        // Not E.164.
        assert_eq!(zone_of("8613800138000"), None);
        assert_eq!(zone_of("12125550100"), None);
        assert_eq!(zone_of(""), None);
        assert_eq!(zone_of("+"), None);
        assert_eq!(zone_of("+1 212 555 0100"), None);
        assert_eq!(zone_of("+1212555010a"), None);
        assert_eq!(zone_of("+1234567890123456"), None);
        assert_eq!(zone_of("+１２１２"), None);
    }

    #[test]
    fn table_is_sorted_and_its_zones_are_iana_names() {
        assert!(PREFIXES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(PREFIXES
            .iter()
            .all(|&(_, z)| z == SEVERAL || usize::from(z) < ZONES.len()));
        for zone in ZONES {
            assert!(
                crate::zone::parse(zone).is_ok(),
                "{zone} is not known to chrono-tz"
            );
        }
    }

    /// Whether some table prefix starts with the `len` digits of `prefix` (or is `prefix`).
    fn has_under(prefix: u64, len: usize) -> bool {
        (0..=LONGEST_PREFIX.saturating_sub(len)).any(|k| {
            let lo = prefix * 10u64.pow(k as u32);
            let hi = (prefix + 1) * 10u64.pow(k as u32);
            let i = PREFIXES.partition_point(|&(p, _)| p < lo);
            PREFIXES.get(i).is_some_and(|&(p, _)| p < hi)
        })
    }

    #[test]
    fn every_entry_is_what_a_number_under_it_tells() {
        let mut padded = 0;
        for &(prefix, zone) in &PREFIXES {
            let want = (zone != SEVERAL).then(|| ZONES[usize::from(zone)]);
            assert_eq!(zone_of(&format!("+{prefix}")), want, "+{prefix}");
            // A full-length number under it, unless longer prefixes cover all ten next digits
            // (+62: Indonesia has 620-629).
            let len = prefix.to_string().len();
            if let Some(free) = (0..10)
                .map(|d| prefix * 10 + d)
                .find(|&p| !has_under(p, len + 1))
            {
                let number = format!("+{free:0<12}");
                assert_eq!(zone_of(&number), want, "{number} (prefix {prefix})");
                padded += 1;
            }
        }
        assert!(padded > PREFIXES.len() * 9 / 10, "{padded}");
    }
}
