//! 号码归属地: the province, city and area code a mainland China (+86) number tells, from
//! libphonenumber's Chinese geocoding data (Apache-2.0; generated into `data/cn_regions.rs` by
//! `scripts/gen_phone_data.py`, see `NOTICE-phonenumber-data.md`).
//!
//! Mobiles are looked up by their number block (the 3 to 7 digits after `+86`, e.g. `1380013`),
//! landlines by their area code (`10` Beijing, `21` Shanghai, `592` Xiamen, `755` Shenzhen) and
//! the few longer prefixes the data has under some area codes; the longest matching prefix wins.

#[path = "data/cn_regions.rs"]
mod data;

use data::{INDEX, LONGEST_PREFIX, PREFIXES, REGIONS};

/// Where a +86 number is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The provincial-level division: `广东省`, a municipality (`北京市`, `上海市`, `天津市`,
    /// `重庆市`), or an autonomous region by its short name (`内蒙古`, `广西`, `西藏`, `宁夏`,
    /// `新疆`).
    pub province: &'static str,
    /// The prefecture (`深圳市`, `延边朝鲜族自治州`, `兴安盟`, `大兴安岭地区`); the province
    /// itself for a municipality; several joined with `、` where the data names several for one
    /// prefix (`南宁市、崇左市` for area code 771).
    pub city: &'static str,
    /// The area code without the trunk `0` (`10`, `21`, `755`): a landline's own; for a mobile,
    /// the one area code the data's landline entries give its city, or `""` when they give none
    /// or several.
    pub area_code: &'static str,
}

/// The [`Region`] of an E.164 +86 number (`+8613800138000`, `+862161234567`): `None` for other
/// countries, for anything that is not a mobile (11 digits, `1` but not `10` first) or a landline
/// (7-11 digits) number, and for a prefix the data does not know (it is never guessed).
pub fn region_of(e164: &str) -> Option<Region> {
    let national = e164.strip_prefix("+86")?.as_bytes();
    let (&first, _) = national.split_first()?;
    if first == b'0' || !national.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mobile = first == b'1' && national.get(1) != Some(&b'0');
    let length_ok = if mobile {
        national.len() == 11
    } else {
        (7..=11).contains(&national.len())
    };
    if !length_ok {
        return None;
    }
    let mut key = 0u32;
    let mut found = None;
    for d in national.iter().take(LONGEST_PREFIX) {
        key = key * 10 + u32::from(d - b'0');
        if let Ok(i) = PREFIXES.binary_search(&key) {
            found = Some(INDEX[i]);
        }
    }
    REGIONS.get(usize::from(found?)).copied()
}

#[cfg(test)]
mod tests {
    use super::data::{INDEX, LONGEST_PREFIX, PREFIXES, REGIONS};
    use super::{region_of, Region};

    fn r(province: &'static str, city: &'static str, area_code: &'static str) -> Option<Region> {
        Some(Region {
            province,
            city,
            area_code,
        })
    }

    #[test]
    fn landlines_tell_their_area() {
        assert_eq!(region_of("+861012345678"), r("北京市", "北京市", "10"));
        assert_eq!(region_of("+862161234567"), r("上海市", "上海市", "21"));
        assert_eq!(region_of("+862312345678"), r("重庆市", "重庆市", "23"));
        assert_eq!(region_of("+865925123456"), r("福建省", "厦门市", "592"));
        assert_eq!(region_of("+8675512345678"), r("广东省", "深圳市", "755"));
        assert_eq!(region_of("+864712345678"), r("内蒙古", "呼和浩特市", "471"));
        // "新疆维吾尔自治区乌鲁木齐市", "广西壮族自治区南宁市、崇左市" in the data.
        assert_eq!(region_of("+869912345678"), r("新疆", "乌鲁木齐市", "991"));
        assert_eq!(
            region_of("+867712345678"),
            r("广西", "南宁市、崇左市", "771")
        );
        // "湖南省长沙市、湘潭市、株州市": the typo spelt as everywhere else.
        assert_eq!(
            region_of("+8673122345678"),
            r("湖南省", "长沙市、湘潭市、株洲市", "731")
        );
        // One area code for several cities, and a longer prefix under it.
        assert_eq!(
            region_of("+862422345678"),
            r("辽宁省", "沈阳市、铁岭市、抚顺市、本溪市", "24")
        );
        assert_eq!(
            region_of("+862412345678"),
            r("辽宁省", "沈阳市、铁岭市、抚顺市", "24")
        );
        // The data has "8633" for all of 033x; 335 is the one such area code CN metadata takes.
        assert_eq!(region_of("+863351234567"), r("河北省", "秦皇岛市", "335"));
        // "云南怒江" in the data.
        assert_eq!(
            region_of("+868861234567"),
            r("云南省", "怒江傈僳族自治州", "886")
        );
    }

    #[test]
    fn mobiles_tell_their_area() {
        // 138001 (a 6-digit block) and 1391234.
        assert_eq!(region_of("+8613800138000"), r("北京市", "北京市", "10"));
        assert_eq!(region_of("+8613912345678"), r("江苏省", "常州市", "519"));
        assert_eq!(region_of("+8613010541234"), r("广东省", "深圳市", "755"));
        assert_eq!(
            region_of("+8613009501234"),
            r("内蒙古", "呼和浩特市", "471")
        );
        assert_eq!(region_of("+8613000961234"), r("新疆", "乌鲁木齐市", "991"));
        assert_eq!(region_of("+8613000691234"), r("广西", "南宁市", "771"));
        assert_eq!(region_of("+8613228901234"), r("西藏", "拉萨市", "891"));
        assert_eq!(region_of("+8613001421234"), r("河北省", "秦皇岛市", "335"));
        // 173 as a whole is Beijing in the data.
        assert_eq!(region_of("+8617312345678"), r("北京市", "北京市", "10"));
        // 资阳: the landline data lists it under both 28 and 832, so no area code.
        assert_eq!(region_of("+8613038141234"), r("四川省", "资阳市", ""));
    }

    #[test]
    fn unknown_prefixes_other_countries_and_malformed_numbers_tell_none() {
        // Blocks the data does not have.
        assert_eq!(region_of("+8619912345678"), None);
        assert_eq!(region_of("+8616612345678"), None);
        assert_eq!(region_of("+864001234567"), None);
        // Other countries.
        assert_eq!(region_of("+12125550100"), None);
        assert_eq!(region_of("+85212345678"), None);
        assert_eq!(region_of("+886212345678"), None);
        // Not E.164 +86, or the wrong length for a mobile or a landline.
        assert_eq!(region_of("8613800138000"), None);
        assert_eq!(region_of("13800138000"), None);
        assert_eq!(region_of("+86"), None);
        assert_eq!(region_of("+860212345678"), None);
        assert_eq!(region_of("+861380013800"), None);
        assert_eq!(region_of("+86138001380001"), None);
        assert_eq!(region_of("+86102345"), None);
        assert_eq!(region_of("+86102345678901"), None);
        assert_eq!(region_of("+86 13800138000"), None);
        assert_eq!(region_of("+861380013800a"), None);
    }

    #[test]
    fn table_is_sorted_and_indexes_regions() {
        assert_eq!(PREFIXES.len(), INDEX.len());
        assert!(PREFIXES.windows(2).all(|w| w[0] < w[1]));
        assert!(INDEX.iter().all(|&i| usize::from(i) < REGIONS.len()));
        for region in &REGIONS {
            assert!(!region.province.is_empty() && !region.city.is_empty());
            assert!(matches!(region.area_code.len(), 0 | 2 | 3));
            assert!(region.area_code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    /// Whether some table prefix starts with the `len` digits of `prefix` (or is `prefix`).
    fn has_under(prefix: u32, len: usize) -> bool {
        (0..=LONGEST_PREFIX.saturating_sub(len)).any(|k| {
            let lo = u64::from(prefix) * 10u64.pow(k as u32);
            let hi = (u64::from(prefix) + 1) * 10u64.pow(k as u32);
            let i = PREFIXES.partition_point(|&p| u64::from(p) < lo);
            PREFIXES.get(i).is_some_and(|&p| u64::from(p) < hi)
        })
    }

    #[test]
    fn every_entry_is_what_a_number_under_it_tells() {
        for (&prefix, &index) in PREFIXES.iter().zip(&INDEX) {
            let digits = prefix.to_string();
            let free = (0..10)
                .map(|d| prefix * 10 + d)
                .find(|&p| !has_under(p, digits.len() + 1))
                .unwrap_or_else(|| panic!("no number reaches prefix {prefix}"));
            let mobile = digits.starts_with('1') && !digits.starts_with("10");
            let number = if mobile {
                format!("+86{free:0<11}")
            } else {
                format!("+86{free:0<10}")
            };
            let want = REGIONS[usize::from(index)];
            assert_eq!(region_of(&number), Some(want), "{number} (prefix {prefix})");
            if !mobile {
                let code = want.area_code;
                assert!(
                    digits.starts_with(code) || code.starts_with(&digits),
                    "{prefix}: {want:?}"
                );
            }
        }
    }
}
