//! Calling windows (呼叫时段): daily hours, weekdays and holidays, read on the callee's local
//! wall clock. A window is open at an instant when, in the zone asked about, that instant's
//! local date is an allowed weekday and no holiday, and its local time of day falls in one of
//! the ranges. Openings that fall in a daylight-saving gap move to the first local time that
//! exists; a range wholly inside a gap does not open that day.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use waihu_proto::v1 as pb;

/// Ranges one window may have.
pub const MAX_RANGES: usize = 10;
/// Holidays one window may list.
pub const MAX_HOLIDAYS: usize = 400;

/// A checked calling window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Minutes of the local day, [start, end), sorted, not overlapping.
    ranges: Vec<(u32, u32)>,
    /// Bit `n` set = ISO weekday `n` (1 Monday .. 7 Sunday) allowed.
    weekdays: u8,
    holidays: BTreeSet<NaiveDate>,
}

/// Why a window was refused: the field (below `spec.window`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    pub field: String,
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> WindowError {
    WindowError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// "HH:MM" as minutes of the day; "24:00" is the end of the day.
fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl Default for Window {
    /// 09:00-20:00 every day.
    fn default() -> Self {
        Window::hours(&[(9 * 60, 20 * 60)])
    }
}

impl Window {
    /// Every day, these ranges (minutes of the day).
    pub fn hours(ranges: &[(u32, u32)]) -> Window {
        Window {
            ranges: ranges.to_vec(),
            weekdays: 0b1111_1110,
            holidays: BTreeSet::new(),
        }
    }

    /// Always open.
    pub fn always() -> Window {
        Window::hours(&[(0, 24 * 60)])
    }

    /// Parses daily ranges as written ("09:00-12:00", ...), for settings; empty = 09:00-20:00.
    pub fn parse_hours(ranges: &[String]) -> Result<Window, WindowError> {
        Window::parse(&pb::CallingWindow {
            hours: ranges.to_vec(),
            ..Default::default()
        })
    }

    /// Checks a window as given; errors name the field below the window ("hours[1]").
    pub fn parse(w: &pb::CallingWindow) -> Result<Window, WindowError> {
        if w.hours.len() > MAX_RANGES {
            return Err(err("hours", format!("at most {MAX_RANGES} ranges")));
        }
        let mut ranges = Vec::with_capacity(w.hours.len());
        for (i, r) in w.hours.iter().enumerate() {
            let field = format!("hours[{i}]");
            let bad = || {
                err(
                    field.clone(),
                    format!(
                        "{:?} is not HH:MM-HH:MM (start before end, 00:00 to 24:00)",
                        r.chars().take(40).collect::<String>()
                    ),
                )
            };
            let (a, b) = r.split_once('-').ok_or_else(bad)?;
            let (a, b) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
            if a >= b {
                return Err(bad());
            }
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        if let Some(pair) = ranges.windows(2).find(|p| p[1].0 < p[0].1) {
            let show = |(a, b): (u32, u32)| {
                format!("{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60)
            };
            return Err(err(
                "hours",
                format!("{} and {} overlap", show(pair[0]), show(pair[1])),
            ));
        }
        if ranges.is_empty() {
            ranges = Window::default().ranges;
        }
        let mut weekdays = 0u8;
        for (i, d) in w.weekdays.iter().enumerate() {
            if !(1..=7).contains(d) {
                return Err(err(
                    format!("weekdays[{i}]"),
                    format!("{d} is not an ISO weekday (1 Monday to 7 Sunday)"),
                ));
            }
            weekdays |= 1 << d;
        }
        if weekdays == 0 {
            weekdays = 0b1111_1110;
        }
        if w.holidays.len() > MAX_HOLIDAYS {
            return Err(err("holidays", format!("at most {MAX_HOLIDAYS} dates")));
        }
        let mut holidays = BTreeSet::new();
        for (i, d) in w.holidays.iter().enumerate() {
            let date = NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                err(
                    format!("holidays[{i}]"),
                    format!(
                        "{:?} is not a date (YYYY-MM-DD)",
                        d.chars().take(40).collect::<String>()
                    ),
                )
            })?;
            holidays.insert(date);
        }
        if !w.time_zone.is_empty() {
            crate::zone::parse(&w.time_zone).map_err(|e| err("time_zone", e))?;
        }
        Ok(Window {
            ranges,
            weekdays,
            holidays,
        })
    }

    fn day_allowed(&self, d: NaiveDate) -> bool {
        self.weekdays & (1 << d.weekday().number_from_monday()) != 0 && !self.holidays.contains(&d)
    }

    /// Whether the window is open at `at` on the wall clock of `zone`.
    pub fn is_open(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        let local = at.with_timezone(&zone);
        if !self.day_allowed(local.date_naive()) {
            return false;
        }
        let m = local.hour() * 60 + local.minute();
        self.ranges.iter().any(|(a, b)| *a <= m && m < *b)
    }

    /// The first instant at or after `at` when the window is open in `zone`; None when it never
    /// opens again (every allowed day from here on is a holiday, which a bounded list cannot
    /// do for long: the search covers the holidays' span and two weeks beyond).
    pub fn next_open(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        if self.is_open(at, zone) {
            return Some(at);
        }
        let first = at.with_timezone(&zone).date_naive();
        let last_holiday = self.holidays.last().copied().unwrap_or(first);
        let days = (last_holiday - first).num_days().max(0) + 15;
        for day in first.iter_days().take(days as usize) {
            if !self.day_allowed(day) {
                continue;
            }
            for (start, _) in &self.ranges {
                let Some(open) = local_instant(zone, day, *start) else {
                    continue;
                };
                if open >= at && self.is_open(open, zone) {
                    return Some(open);
                }
            }
        }
        None
    }
}

impl Window {
    /// When the window, open at `at` in `zone`, next closes (the end of the open stretch `at`
    /// is in, running on over midnight into a range that starts at 00:00 on an allowed day);
    /// None when it is closed at `at` or never closes (open round the clock, the search covering
    /// the holidays' span and two weeks beyond).
    pub fn closes_after(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        if !self.is_open(at, zone) {
            return None;
        }
        let local = at.with_timezone(&zone);
        let first = local.date_naive();
        let m = local.hour() * 60 + local.minute();
        let (_, mut end) = *self.ranges.iter().find(|(a, b)| *a <= m && m < *b)?;
        let last_holiday = self.holidays.last().copied().unwrap_or(first);
        let days = (last_holiday - first).num_days().max(0) + 15;
        let mut day = first;
        let mut crossed = 0;
        loop {
            // A range starting where this one ends continues the stretch.
            if let Some((_, b)) = self.ranges.iter().find(|(a, _)| *a == end) {
                end = *b;
                continue;
            }
            if end < 24 * 60 {
                return instant_after(zone, day, end, at);
            }
            // Open to midnight: on into the next day when it is allowed and opens at 00:00.
            let next = day.succ_opt()?;
            crossed += 1;
            match self.ranges.first() {
                Some((0, b)) if self.day_allowed(next) && crossed < days => {
                    day = next;
                    end = *b;
                }
                Some((0, _)) if self.day_allowed(next) => return None,
                _ => return instant_after(zone, next, 0, at),
            }
        }
    }
}

/// The first instant after `at` showing `minute` minutes into local `day` in `zone` (of two
/// when the clock goes back, the one after `at`; the first existing minute after a
/// daylight-saving gap).
fn instant_after(
    zone: Tz,
    day: NaiveDate,
    minute: u32,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    for m in minute..minute + 4 * 60 {
        let local = midnight + Duration::minutes(m as i64);
        match zone.from_local_datetime(&local) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                return Some(if a > at { a } else { b });
            }
            LocalResult::None => continue,
        }
    }
    None
}

/// The instant `minute` minutes into local `day` in `zone`: the earlier of two when the clock
/// goes back, the first existing minute after a daylight-saving gap. None past the day's end.
fn local_instant(zone: Tz, day: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    // A gap is at most a few hours long.
    for m in minute..(minute + 4 * 60).min(24 * 60 + 1) {
        let local = midnight + Duration::minutes(m as i64);
        match zone.from_local_datetime(&local) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, _) => return Some(a.with_timezone(&Utc)),
            LocalResult::None => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn window(hours: &[&str], weekdays: &[u32], holidays: &[&str]) -> Window {
        Window::parse(&pb::CallingWindow {
            hours: hours.iter().map(|s| s.to_string()).collect(),
            weekdays: weekdays.to_vec(),
            holidays: holidays.iter().map(|s| s.to_string()).collect(),
            time_zone: String::new(),
        })
        .expect("valid")
    }

    #[test]
    fn a_window_closes_at_the_end_of_its_open_stretch() {
        let sh = crate::zone::parse("Asia/Shanghai").expect("zone");
        let w = window(&["09:00-12:00", "14:00-20:00"], &[], &[]);
        // 10:00 in Shanghai is 02:00 UTC.
        assert_eq!(
            w.closes_after(at("2026-12-07T02:00:00Z"), sh),
            Some(at("2026-12-07T04:00:00Z"))
        );
        assert_eq!(
            w.closes_after(at("2026-12-07T05:00:00Z"), sh),
            None,
            "13:00 is closed"
        );
        // Open round the clock on weekdays: Friday's stretch runs to Saturday 00:00.
        let weekdays = window(&["00:00-24:00"], &[1, 2, 3, 4, 5], &[]);
        assert_eq!(
            weekdays.closes_after(at("2026-12-09T02:00:00Z"), sh),
            Some(at("2026-12-11T16:00:00Z"))
        );
        assert_eq!(
            Window::always().closes_after(at("2026-12-09T02:00:00Z"), sh),
            None
        );
        // Over midnight into a range from 00:00.
        let night = window(&["00:00-02:00", "22:00-24:00"], &[], &[]);
        assert_eq!(
            night.closes_after(at("2026-12-07T15:00:00Z"), sh),
            Some(at("2026-12-07T18:00:00Z"))
        );
        // Touching ranges are one stretch.
        let touching = window(&["09:00-12:00", "12:00-18:00"], &[], &[]);
        assert_eq!(
            touching.closes_after(at("2026-12-07T02:00:00Z"), sh),
            Some(at("2026-12-07T10:00:00Z"))
        );
        // The clock going back: the close after now, not the earlier 01:30.
        let ny = crate::zone::parse("America/New_York").expect("zone");
        let early = window(&["00:00-01:30"], &[], &[]);
        // 01:10 EST on 1 November 2026 (the second 01:10) is 06:10 UTC.
        assert_eq!(
            early.closes_after(at("2026-11-01T06:10:00Z"), ny),
            Some(at("2026-11-01T06:30:00Z"))
        );
        // A range to 24:00 whose midnight falls in a gap (Santiago, 6 September 2026): the
        // first minute that exists.
        let santiago = crate::zone::parse("America/Santiago").expect("zone");
        let evening = window(&["18:00-24:00"], &[], &[]);
        assert_eq!(
            evening.closes_after(at("2026-09-06T01:00:00Z"), santiago),
            Some(at("2026-09-06T04:00:00Z"))
        );
    }

    #[test]
    fn bad_windows_name_their_field() {
        let bad = |hours: &[&str], weekdays: &[u32], holidays: &[&str]| {
            Window::parse(&pb::CallingWindow {
                hours: hours.iter().map(|s| s.to_string()).collect(),
                weekdays: weekdays.to_vec(),
                holidays: holidays.iter().map(|s| s.to_string()).collect(),
                time_zone: String::new(),
            })
            .expect_err("invalid")
            .field
        };
        assert_eq!(bad(&["9-12"], &[], &[]), "hours[0]");
        assert_eq!(bad(&["09:00-12:00", "12:00-11:00"], &[], &[]), "hours[1]");
        assert_eq!(bad(&["09:00-12:00", "11:00-13:00"], &[], &[]), "hours");
        assert_eq!(bad(&["09:00-24:01"], &[], &[]), "hours[0]");
        assert_eq!(bad(&[], &[0], &[]), "weekdays[0]");
        assert_eq!(bad(&[], &[], &["2026-13-01"]), "holidays[0]");
        assert!(Window::parse(&pb::CallingWindow {
            time_zone: "Moon/Base".into(),
            ..Default::default()
        })
        .is_err());
        assert_eq!(
            Window::parse(&pb::CallingWindow::default()),
            Ok(Window::default())
        );
    }

    #[test]
    fn a_window_opens_on_the_callees_clock() {
        let sh = chrono_tz::Asia::Shanghai;
        let w = window(
            &["09:00-12:00", "14:00-20:00"],
            &[1, 2, 3, 4, 5],
            &["2026-10-01"],
        );
        // Friday 2026-11-20 08:59 Shanghai is 00:59 UTC: closed, opens at 09:00.
        assert!(!w.is_open(at("2026-11-20T00:59:00Z"), sh));
        assert_eq!(
            w.next_open(at("2026-11-20T00:59:00Z"), sh),
            Some(at("2026-11-20T01:00:00Z"))
        );
        // Lunch: 12:30 waits for 14:00.
        assert_eq!(
            w.next_open(at("2026-11-20T04:30:00Z"), sh),
            Some(at("2026-11-20T06:00:00Z"))
        );
        // Friday 20:00 waits for Monday 09:00.
        assert_eq!(
            w.next_open(at("2026-11-20T12:00:00Z"), sh),
            Some(at("2026-11-23T01:00:00Z"))
        );
        // The holiday (a Thursday) waits for Friday.
        assert_eq!(
            w.next_open(at("2026-10-01T02:00:00Z"), sh),
            Some(at("2026-10-02T01:00:00Z"))
        );
        // New York, the morning the clocks go forward (2026-03-08, 02:00 -> 03:00): a window
        // from 02:30 opens at 03:00 EDT (07:00 UTC).
        let ny = chrono_tz::America::New_York;
        let early = window(&["02:30-05:00"], &[], &[]);
        assert_eq!(
            early.next_open(at("2026-03-08T05:00:00Z"), ny),
            Some(at("2026-03-08T07:00:00Z"))
        );
        // A range wholly in the gap does not open that day.
        let lost = window(&["02:10-02:50"], &[], &[]);
        assert_eq!(
            lost.next_open(at("2026-03-08T05:00:00Z"), ny),
            Some(at("2026-03-09T06:10:00Z"))
        );
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(chrono_tz::Asia::Shanghai),
            Just(chrono_tz::America::New_York),
            Just(chrono_tz::Europe::London),
            Just(chrono_tz::Australia::Lord_Howe),
        ]
    }

    fn windows() -> impl Strategy<Value = Window> {
        (
            proptest::collection::btree_set(0u32..=48, 2..8),
            proptest::collection::btree_set(1u32..=7, 0..7),
            proptest::collection::vec(0i64..40, 0..6),
        )
            .prop_map(|(cuts, weekdays, holidays)| {
                // Cut points (half hours) paired into ranges: sorted, never overlapping.
                let cuts: Vec<u32> = cuts.into_iter().map(|c| c * 30).collect();
                let hours: Vec<String> = cuts
                    .chunks_exact(2)
                    .map(|p| {
                        format!(
                            "{:02}:{:02}-{:02}:{:02}",
                            p[0] / 60,
                            p[0] % 60,
                            p[1] / 60,
                            p[1] % 60
                        )
                    })
                    .collect();
                let base = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
                Window::parse(&pb::CallingWindow {
                    hours,
                    weekdays: weekdays.into_iter().collect(),
                    holidays: holidays
                        .into_iter()
                        .map(|d| (base + Duration::days(d)).format("%Y-%m-%d").to_string())
                        .collect(),
                    time_zone: String::new(),
                })
                .expect("generated windows are valid")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `next_open` is exactly the first open minute, checked minute by minute, across the
        /// spring and autumn clock changes of DST zones.
        #[test]
        fn next_open_is_the_first_open_minute(
            w in windows(),
            zone in zones(),
            // Minutes from 2026-03-01 00:00 UTC: spans March's and early April's clock changes.
            start in 0i64..(45 * 24 * 60),
        ) {
            let now = at("2026-03-01T00:00:00Z") + Duration::minutes(start);
            let got = w.next_open(now, zone);
            let mut t = now;
            let limit = now + Duration::days(60);
            let want = loop {
                if w.is_open(t, zone) {
                    break Some(t);
                }
                if t > limit {
                    break None;
                }
                t += Duration::minutes(1);
            };
            match (got, want) {
                (Some(g), Some(w)) => prop_assert_eq!(g, w),
                (None, None) => {}
                (g, w) => prop_assert!(false, "next_open {g:?}, brute force {w:?}"),
            }
        }
    }
}
