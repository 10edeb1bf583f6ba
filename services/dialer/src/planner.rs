//! The dialing decision as a pure function: which due contact goes out on which line. SQL only
//! fetches what is due and commits what was planned.
//!
//! Tasks come in the order they are to be served (higher priority first); within a task,
//! contacts in due order. A task dials only on its tenant's lines; a line never gets more calls
//! than its free slots (what its concurrency, daily cap and pace leave); a task that names
//! caller lines (`caller_line`, one or a comma-separated list) dials only on those; tasks spread
//! over the line with the most free slots first, so load stays even across trunks.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// A line and how many more calls it may carry now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSlots {
    pub tenant_id: String,
    pub id: String,
    pub free: u32,
    /// The caller number's province and city ("" when unknown).
    pub province: String,
    pub city: String,
    /// The number its callees see.
    pub caller_number: String,
}

/// How many calls a line paced at `cps` calls a second (0 = no limit) may start at `now`,
/// whose next call was due at `pace_at` (None = never dialed): the generic cell rate
/// algorithm, with calls due up to `burst` ahead allowed now (the dial loop's tick, so a line
/// keeps its pace between rounds). Over any `w` seconds a line so paced starts at most
/// `cps × (w + burst) + 1` calls. None = no limit.
pub fn pace_allowance(
    cps: f64,
    pace_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    burst: std::time::Duration,
) -> Option<u32> {
    if cps <= 0.0 || !cps.is_finite() {
        return None;
    }
    let tat = pace_at.map_or(now, |at| at.max(now));
    let ahead = (now - tat).as_seconds_f64() + burst.as_secs_f64();
    if ahead < 0.0 {
        return Some(0);
    }
    // A little slack for the nanoseconds lost in storing times.
    Some(((ahead * cps + 1e-6).floor() as u64 + 1).min(u32::MAX as u64) as u32)
}

/// When the line's next call is due after `n` calls were started at `now`.
pub fn pace_after(
    cps: f64,
    pace_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    n: u32,
) -> Option<DateTime<Utc>> {
    if cps <= 0.0 || !cps.is_finite() {
        return pace_at;
    }
    let tat = pace_at.map_or(now, |at| at.max(now));
    let step = chrono::Duration::nanoseconds((n as f64 / cps * 1e9).round() as i64);
    Some(tat + step)
}

/// The calendar date at `now` in `zone`.
pub fn local_day(now: DateTime<Utc>, zone: chrono_tz::Tz) -> NaiveDate {
    now.with_timezone(&zone).date_naive()
}

/// Calls a line with daily cap `cap` (0 = none) may still place on `today`, having placed
/// `day_calls` on `day`: a count from another day is yesterday's and no longer counts. None =
/// no limit.
pub fn cap_left(cap: u32, day: Option<NaiveDate>, day_calls: u32, today: NaiveDate) -> Option<u32> {
    if cap == 0 {
        return None;
    }
    let used = if day == Some(today) { day_calls } else { 0 };
    Some(cap.saturating_sub(used))
}

/// The lines a task's `caller_line` allows: empty or "any" = every line of its tenant, else
/// the comma-separated ids.
pub fn caller_lines(caller_line: &str) -> Vec<String> {
    let t = caller_line.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("any") {
        return Vec::new();
    }
    t.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A contact due for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueContact {
    pub contact_no: i32,
    pub phone: String,
    /// Calls placed to it so far.
    pub attempts: i32,
}

impl DueContact {
    /// The number's province and city, when the data tells.
    fn region(&self) -> Option<(&'static str, &'static str)> {
        waihu_telephony::region::region_of(&self.phone).map(|r| (r.province, r.city))
    }
}

/// A running task with contacts due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTask {
    pub task_id: Uuid,
    pub tenant_id: String,
    /// The only lines the task may dial on; empty = any line of its tenant.
    pub caller_lines: Vec<String>,
    /// Only numbers in the line's city (seed 000 number_city_limit).
    pub number_city_limit: bool,
    pub contacts: Vec<DueContact>,
}

/// A call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub task_id: Uuid,
    pub tenant_id: String,
    pub contact_no: i32,
    pub phone: String,
    pub line_id: String,
    /// The line's caller number (what the callee sees).
    pub caller_number: String,
    /// 1 for the first call to the contact.
    pub attempt: u32,
}

/// Whether `task` may dial on `line`.
fn usable(line: &LineSlots, tenant_id: &str, caller_lines: &[String]) -> bool {
    line.tenant_id == tenant_id && (caller_lines.is_empty() || caller_lines.contains(&line.id))
}

/// How many calls a task of `tenant_id` could place now (what to fetch for it at most).
pub fn capacity(lines: &[LineSlots], tenant_id: &str, caller_lines: &[String]) -> u32 {
    lines
        .iter()
        .filter(|l| usable(l, tenant_id, caller_lines))
        .map(|l| l.free)
        .sum()
}

/// How near a line's caller number is to a callee: 2 same city, 1 same province, 0 else.
fn nearness(line: &LineSlots, callee: Option<(&str, &str)>) -> u8 {
    match callee {
        Some((_, city)) if !line.city.is_empty() && line.city == city => 2,
        Some((province, _)) if !line.province.is_empty() && line.province == province => 1,
        _ => 0,
    }
}

/// One task's plan: its calls, and the contacts no line of the task can ever take (with
/// `number_city_limit`, none is in their city).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TaskPlan {
    pub dials: Vec<Dial>,
    pub no_line_in_city: Vec<i32>,
}

/// Plans one task's calls, taking the slots it uses from `lines`. Each call goes out on the
/// line whose caller number is nearest the callee (same city, then province, then any; Aliyun's
/// PickOutboundNumbers order), the freest among equals.
pub fn plan_task(lines: &mut [LineSlots], task: &DueTask) -> TaskPlan {
    let mut plan = TaskPlan::default();
    for c in &task.contacts {
        let callee = c.region();
        if task.number_city_limit {
            let in_city = |l: &LineSlots| {
                usable(l, &task.tenant_id, &task.caller_lines) && nearness(l, callee) == 2
            };
            if !lines.iter().any(in_city) {
                plan.no_line_in_city.push(c.contact_no);
                continue;
            }
        }
        let line = lines
            .iter_mut()
            .filter(|l| l.free > 0 && usable(l, &task.tenant_id, &task.caller_lines))
            .filter(|l| !task.number_city_limit || nearness(l, callee) == 2)
            .max_by_key(|l| (nearness(l, callee), l.free));
        let Some(line) = line else {
            if task.number_city_limit {
                // Its city's lines are full; others may still take other numbers.
                continue;
            }
            break;
        };
        line.free -= 1;
        plan.dials.push(Dial {
            task_id: task.task_id,
            tenant_id: task.tenant_id.clone(),
            contact_no: c.contact_no,
            phone: c.phone.clone(),
            line_id: line.id.clone(),
            caller_number: line.caller_number.clone(),
            attempt: c.attempts.max(0) as u32 + 1,
        });
    }
    plan
}

/// A task competing for lines in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    pub tenant_id: String,
    pub caller_lines: Vec<String>,
    /// Its priority's weight (>= 1).
    pub weight: u32,
    /// Service received so far: calls placed divided by weight (stride scheduling's pass).
    pub pass: f64,
}

/// A round's cost grows with the tasks it serves (a descent of the due index and a row lock
/// per task, and on the way back the release's and the projections' work per task), so a round
/// with few free slots among many tasks serves a few of them, each more calls, rather than each
/// one call; the passes below share the lines out fairly over the rounds. Free slots go out in
/// chunks of [`chunk`]: one slot each while a round has up to `TASKS_SERVED_PER_ROUND` free,
/// about that many tasks' worth above, never more than `CHUNK_MAX` (so a round with many free
/// slots still serves every task).
pub const TASKS_SERVED_PER_ROUND: u32 = 8;
/// The most slots a task is given at a time when tasks compete (see [`TASKS_SERVED_PER_ROUND`]).
pub const CHUNK_MAX: u32 = 8;

/// The slots a round hands a contender at a time, given the round's free slots.
pub fn chunk(free: u32) -> u32 {
    free.div_ceil(TASKS_SERVED_PER_ROUND).clamp(1, CHUNK_MAX)
}

/// How many calls each contender may place this round: the free slots go out in chunks
/// ([`chunk`]) to the contender with the least service so far that can still use one (a call
/// adds 1/weight to its service), so under contention tasks share lines in proportion to their
/// weights, to within a chunk, and none starves; a contender alone gets everything it can use.
/// `allowance` caps each tenant's total (absent = no limit).
pub fn fair_quotas(
    lines: &[LineSlots],
    tasks: &[Contender],
    allowance: &std::collections::HashMap<String, u32>,
) -> Vec<u32> {
    use std::{cmp::Reverse, collections::BinaryHeap};
    let mut free: Vec<LineSlots> = lines.to_vec();
    let chunk = chunk(free.iter().map(|l| l.free).sum());
    let mut left: std::collections::HashMap<&str, u32> =
        allowance.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut quotas = vec![0u32; tasks.len()];
    // Min-heap on (pass, index); f64 ordered by its bits (passes are finite and >= 0).
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| Reverse((t.pass.max(0.0).to_bits(), i)))
        .collect();
    while let Some(Reverse((pass, i))) = heap.pop() {
        let t = &tasks[i];
        let mut given = 0;
        while given < chunk {
            if left.get(t.tenant_id.as_str()) == Some(&0) {
                break;
            }
            let line = free
                .iter_mut()
                .filter(|l| l.free > 0 && usable(l, &t.tenant_id, &t.caller_lines))
                .max_by_key(|l| l.free);
            let Some(line) = line else { break };
            line.free -= 1;
            given += 1;
            if let Some(n) = left.get_mut(t.tenant_id.as_str()) {
                *n -= 1;
            }
        }
        if given == 0 {
            continue;
        }
        quotas[i] += given;
        let next = f64::from_bits(pass) + given as f64 / t.weight.max(1) as f64;
        heap.push(Reverse((next.to_bits(), i)));
    }
    quotas
}

/// A tenant's entitlements as the dialer knows them, with its usage now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLimits {
    pub bot_enabled: bool,
    pub bot_expire_at: Option<DateTime<Utc>>,
    /// 0 = no limit.
    pub max_concurrent_calls: u32,
    /// 0 = no limit.
    pub daily_calls: u32,
    /// Calls out now.
    pub in_flight: u32,
    /// Calls placed today (the tenant's local day).
    pub today_calls: u32,
}

/// How many more calls the tenant may place at `now`: 0 when its automatic dialing is off or
/// expired, else what its concurrency and daily limits leave; None = no limit.
pub fn tenant_allowance(t: &TenantLimits, now: DateTime<Utc>) -> Option<u32> {
    if !t.bot_enabled || t.bot_expire_at.is_some_and(|at| at <= now) {
        return Some(0);
    }
    let left = |limit: u32, used: u32| (limit > 0).then(|| limit.saturating_sub(used));
    match (
        left(t.max_concurrent_calls, t.in_flight),
        left(t.daily_calls, t.today_calls),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Plans a whole round: tasks in serving order, each taking what it can.
pub fn plan(mut lines: Vec<LineSlots>, tasks: &[DueTask]) -> Vec<Dial> {
    tasks
        .iter()
        .flat_map(|t| plan_task(&mut lines, t).dials)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn line(id: &str, free: u32) -> LineSlots {
        LineSlots {
            tenant_id: "t".into(),
            id: id.into(),
            free,
            province: String::new(),
            city: String::new(),
            caller_number: String::new(),
        }
    }

    fn task(n: usize, caller_line: Option<&str>) -> DueTask {
        DueTask {
            task_id: Uuid::new_v4(),
            tenant_id: "t".into(),
            caller_lines: caller_line.map(caller_lines).unwrap_or_default(),
            number_city_limit: false,
            contacts: (1..=n as i32)
                .map(|no| DueContact {
                    contact_no: no,
                    phone: format!("+8613800000{no:03}"),
                    attempts: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn given_two_lines_when_more_are_due_than_fit_then_each_line_fills_to_its_limit() {
        let dials = plan(vec![line("a", 2), line("b", 3)], &[task(10, None)]);
        assert_eq!(dials.len(), 5);
        let per: HashMap<&str, usize> = dials.iter().fold(HashMap::new(), |mut m, d| {
            *m.entry(d.line_id.as_str()).or_default() += 1;
            m
        });
        assert_eq!((per["a"], per["b"]), (2, 3));
        // In due order.
        let nos: Vec<i32> = dials.iter().map(|d| d.contact_no).collect();
        assert_eq!(nos, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn given_tasks_in_priority_order_when_slots_are_short_then_the_first_is_served_first() {
        let high = task(3, None);
        let low = task(3, None);
        let dials = plan(vec![line("a", 4)], &[high.clone(), low.clone()]);
        let from_high = dials.iter().filter(|d| d.task_id == high.task_id).count();
        let from_low = dials.iter().filter(|d| d.task_id == low.task_id).count();
        assert_eq!((from_high, from_low), (3, 1));
    }

    #[test]
    fn given_a_caller_line_then_the_task_dials_only_there_and_not_at_all_if_it_is_unknown() {
        let pinned = task(5, Some("b"));
        let dials = plan(vec![line("a", 10), line("b", 2)], &[pinned]);
        assert_eq!(dials.len(), 2);
        assert!(dials.iter().all(|d| d.line_id == "b"));
        assert!(plan(vec![line("a", 10)], &[task(5, Some("gone"))]).is_empty());
        let lines = [line("a", 10), line("b", 2), line("c", 1)];
        assert_eq!(capacity(&lines, "t", &caller_lines("b")), 2);
        assert_eq!(capacity(&lines, "t", &caller_lines("b, c")), 3);
        assert_eq!(capacity(&lines, "t", &caller_lines("any")), 13);
        assert_eq!(capacity(&lines, "t", &[]), 13);
        assert_eq!(capacity(&lines, "other", &[]), 0);
    }

    #[test]
    fn given_lines_of_two_tenants_then_each_task_dials_only_on_its_own() {
        let mut theirs = line("a", 5);
        theirs.tenant_id = "u".into();
        let dials = plan(vec![theirs, line("a", 1)], &[task(3, None)]);
        assert_eq!(dials.len(), 1);
    }

    #[test]
    fn each_call_goes_out_from_the_caller_number_nearest_the_callee() {
        let at = |id: &str, province: &str, city: &str| LineSlots {
            province: province.into(),
            city: city.into(),
            ..line(id, 5)
        };
        let lines = vec![
            at("bj", "北京市", "北京市"),
            at("sh", "上海市", "上海市"),
            at("gz", "广东省", "广州市"),
        ];
        let mut t = task(0, None);
        for (no, phone) in [
            (1, "+862161234567"),  // Shanghai landline
            (2, "+861012345678"),  // Beijing landline
            (3, "+8675512345678"), // Shenzhen: Guangdong's line
            (4, "+12125550100"),   // nowhere in the data: the freest
        ] {
            t.contacts.push(DueContact {
                contact_no: no,
                phone: phone.into(),
                attempts: 0,
            });
        }
        let mut free = lines.clone();
        free[0].free = 9;
        let got: Vec<String> = plan_task(&mut free, &t)
            .dials
            .into_iter()
            .map(|d| d.line_id)
            .collect();
        assert_eq!(got, ["sh", "bj", "gz", "bj"]);
        // Only numbers in a line's city: Shenzhen and New York have none, and wait.
        t.number_city_limit = true;
        let plan = plan_task(&mut lines.clone(), &t);
        let got: Vec<(i32, String)> = plan
            .dials
            .into_iter()
            .map(|d| (d.contact_no, d.line_id))
            .collect();
        assert_eq!(got, [(1, "sh".to_string()), (2, "bj".to_string())]);
        assert_eq!(plan.no_line_in_city, [3, 4]);
    }

    #[test]
    fn given_a_recalled_contact_then_its_attempt_counts_on() {
        let mut t = task(1, None);
        t.contacts[0].attempts = 2;
        assert_eq!(plan(vec![line("a", 1)], &[t])[0].attempt, 3);
    }

    proptest! {
        #[test]
        fn no_line_is_ever_planned_over_its_free_slots(
            frees in proptest::collection::vec(0u32..20, 1..6),
            due in proptest::collection::vec((0usize..30, proptest::option::of(0usize..7)), 0..8),
        ) {
            let lines: Vec<LineSlots> = frees
                .iter()
                .enumerate()
                .map(|(i, f)| line(&format!("l{i}"), *f))
                .collect();
            let tasks: Vec<DueTask> = due
                .iter()
                .map(|(n, pin)| task(*n, pin.map(|p| format!("l{p}")).as_deref()))
                .collect();
            let dials = plan(lines.clone(), &tasks);
            for l in &lines {
                let used = dials.iter().filter(|d| d.line_id == l.id).count() as u32;
                prop_assert!(used <= l.free, "line {} used {used} of {}", l.id, l.free);
            }
            for (t, d) in tasks.iter().flat_map(|t| dials.iter().filter(move |d| d.task_id == t.task_id).map(move |d| (t, d))) {
                if !t.caller_lines.is_empty() {
                    prop_assert!(t.caller_lines.contains(&d.line_id));
                }
            }
            // Nothing left idle that a task could have used: if a task got fewer than it had
            // due, every line it may use is full.
            let mut left = lines.clone();
            for d in &dials {
                if let Some(l) = left.iter_mut().find(|l| l.id == d.line_id) { l.free -= 1; }
            }
            for t in &tasks {
                let got = dials.iter().filter(|d| d.task_id == t.task_id).count();
                if got < t.contacts.len() {
                    prop_assert_eq!(capacity(&left, &t.tenant_id, &t.caller_lines), 0);
                }
            }
        }
    }

    proptest! {
        /// However rounds fall, a paced line never starts more than cps × (w + burst) + 1 calls
        /// in any w seconds; and when rounds come at least once per burst with calls due, it
        /// keeps up its pace.
        #[test]
        fn a_paced_line_is_smooth_and_keeps_its_pace(
            cps in 0.2f64..50.0,
            gaps_ms in proptest::collection::vec(0u64..100, 1..400),
            demand in proptest::collection::vec(0u32..50, 1..20),
            unlimited in any::<bool>(),
        ) {
            let burst = std::time::Duration::from_millis(100);
            let start = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).expect("time");
            let (mut now, mut at) = (start, None);
            let mut starts: Vec<DateTime<Utc>> = Vec::new();
            for (i, gap) in gaps_ms.iter().enumerate() {
                now += chrono::Duration::milliseconds(*gap as i64);
                let want = if unlimited { u32::MAX } else { demand[i % demand.len()] };
                let n = pace_allowance(cps, at, now, burst).expect("paced").min(want);
                at = pace_after(cps, at, now, n);
                starts.extend(std::iter::repeat_n(now, n as usize));
            }
            for w in [0.0f64, 0.05, 0.5, 1.0, 3.0] {
                let bound = (cps * (w + burst.as_secs_f64()) + 1.0 + 1e-6).floor() as usize;
                for (i, t0) in starts.iter().enumerate() {
                    let end = *t0 + chrono::Duration::nanoseconds((w * 1e9) as i64);
                    let n = starts[i..].iter().take_while(|t| **t <= end).count();
                    prop_assert!(n <= bound, "{n} calls in {w} s at {cps}/s (bound {bound})");
                }
            }
            if unlimited {
                // Rounds came at least once per burst with calls always due: no pace was lost.
                let span = (now - start).as_seconds_f64();
                prop_assert!(
                    starts.len() as f64 >= (cps * span).floor(),
                    "{} calls in {span} s at {cps}/s", starts.len()
                );
            }
        }

        /// A daily cap counts the line's own calendar day: never more than the cap on one local
        /// date, and the full cap again from local midnight, in any zone (with DST or not).
        #[test]
        fn a_daily_cap_resets_at_the_lines_local_midnight(
            zone in prop_oneof![
                Just(chrono_tz::Asia::Shanghai),
                Just(chrono_tz::America::New_York),
                Just(chrono_tz::Europe::London),
                Just(chrono_tz::Australia::Lord_Howe),
            ],
            start in 1_700_000_000i64..1_800_000_000,
            cap in 1u32..40,
            gaps_min in proptest::collection::vec(1i64..240, 1..120),
        ) {
            let mut now = DateTime::<Utc>::from_timestamp(start, 0).expect("time");
            let (mut day, mut day_calls) = (None, 0u32);
            let mut per_day: std::collections::HashMap<NaiveDate, u32> = Default::default();
            for gap in gaps_min {
                now += chrono::Duration::minutes(gap);
                let today = local_day(now, zone);
                let left = cap_left(cap, day, day_calls, today).expect("capped");
                if day != Some(today) {
                    prop_assert_eq!(left, cap, "a new day starts with the whole cap");
                }
                let n = left.min(7);
                // What the round's transaction stores.
                day_calls = if day == Some(today) { day_calls + n } else { n };
                day = Some(today);
                *per_day.entry(today).or_default() += n;
            }
            for (d, n) in per_day {
                prop_assert!(n <= cap, "{n} calls on {d} against a cap of {cap}");
            }
        }
    }

    proptest! {
        /// Tasks of priorities 0, 1 and 2 on one line, always with calls due, each call done by
        /// the next round: over a long run each gets its weight's share (1:2:4) within a few
        /// calls, and the lowest is never starved for long.
        #[test]
        fn priorities_share_a_line_by_weight_without_starvation(
            capacity in 1u32..40,
            rounds in 50usize..400,
            extra in proptest::collection::vec(0u32..3, 0..4),
        ) {
            let weights = [1u32, 2, 4];
            let prios: Vec<u32> = [0u32, 1, 2].into_iter().chain(extra).collect();
            let mut passes = vec![0.0f64; prios.len()];
            let mut got = vec![0u64; prios.len()];
            let mut last_low = 0usize;
            let mut longest_wait = 0usize;
            for round in 0..rounds {
                let tasks: Vec<Contender> = prios
                    .iter()
                    .zip(&passes)
                    .map(|(p, pass)| Contender {
                        tenant_id: "t".into(),
                        caller_lines: vec![],
                        weight: weights[*p as usize],
                        pass: *pass,
                    })
                    .collect();
                let q = fair_quotas(&[line("a", capacity)], &tasks, &Default::default());
                prop_assert_eq!(q.iter().sum::<u32>(), capacity, "work-conserving");
                for (i, n) in q.iter().enumerate() {
                    got[i] += *n as u64;
                    passes[i] += *n as f64 / tasks[i].weight as f64;
                }
                if q[0] > 0 {
                    longest_wait = longest_wait.max(round - last_low);
                    last_low = round;
                }
            }
            let total: u64 = got.iter().sum();
            let wsum: u32 = prios.iter().map(|p| weights[*p as usize]).sum();
            // Slots go out in chunks: shares are exact to within a chunk a task.
            let chunk = chunk(capacity);
            for (i, p) in prios.iter().enumerate() {
                let fair = total as f64 * weights[*p as usize] as f64 / wsum as f64;
                prop_assert!(
                    (got[i] as f64 - fair).abs() <= chunk as f64 * (1.0 + prios.len() as f64),
                    "task {i} (priority {p}) got {} of {total}, its share is {fair:.1}", got[i]
                );
            }
            // The lowest priority gets a chunk at least every chunk * wsum / capacity rounds
            // (+1).
            prop_assert!(
                longest_wait as u32 <= chunk * wsum / capacity + 1,
                "priority 0 waited {longest_wait} rounds"
            );
        }
    }

    #[test]
    fn given_many_tasks_then_a_round_serves_a_few_and_the_rounds_serve_all_alike() {
        let equal = |passes: &[f64]| -> Vec<Contender> {
            passes
                .iter()
                .map(|pass| Contender {
                    tenant_id: "t".into(),
                    caller_lines: vec![],
                    weight: 1,
                    pass: *pass,
                })
                .collect()
        };
        // 100 tasks, 40 slots free each round: 8 tasks a round, 5 calls each.
        let mut passes = vec![0.0f64; 100];
        let mut got = vec![0u32; 100];
        for _ in 0..100 {
            let q = fair_quotas(
                &[line("a", 25), line("b", 15)],
                &equal(&passes),
                &Default::default(),
            );
            assert_eq!(q.iter().sum::<u32>(), 40, "work-conserving");
            let served = q.iter().filter(|n| **n > 0).count();
            assert_eq!(served, TASKS_SERVED_PER_ROUND as usize, "{q:?}");
            for (i, n) in q.iter().enumerate() {
                got[i] += n;
                passes[i] += *n as f64;
            }
        }
        // 4,000 calls over 100 tasks: 40 each.
        assert!(got.iter().all(|n| *n == 40), "{got:?}");
        // Fewer free slots than tasks served a round go one at a time.
        let q = fair_quotas(&[line("a", 8)], &equal(&[0.0; 20]), &Default::default());
        assert_eq!(q.iter().filter(|n| **n == 1).count(), 8);
        // Many free slots serve every task, at most CHUNK_MAX at a time: a campaign starting
        // on empty lines starts all its tasks.
        let q = fair_quotas(&[line("a", 1000)], &equal(&[0.0; 100]), &Default::default());
        assert_eq!(q.iter().sum::<u32>(), 1000);
        assert!(q.iter().all(|n| *n >= CHUNK_MAX), "{q:?}");
        assert_eq!(chunk(1000), CHUNK_MAX);
    }

    #[test]
    fn given_tasks_on_their_own_lines_then_each_gets_all_it_can_use() {
        let t = |lines: &str, weight| Contender {
            tenant_id: "t".into(),
            caller_lines: caller_lines(lines),
            weight,
            pass: 0.0,
        };
        let q = fair_quotas(
            &[line("a", 5), line("b", 3)],
            &[t("a", 4), t("b", 1)],
            &Default::default(),
        );
        assert_eq!(q, vec![5, 3]);
        // A tenant's allowance caps its tasks together.
        let allowance = [("t".to_string(), 4)].into_iter().collect();
        let q = fair_quotas(&[line("a", 10)], &[t("", 1), t("", 1)], &allowance);
        assert_eq!(q, vec![2, 2]);
    }

    #[test]
    fn given_no_cps_or_no_cap_then_neither_limits() {
        let now = Utc::now();
        let burst = std::time::Duration::from_millis(100);
        assert_eq!(pace_allowance(0.0, None, now, burst), None);
        assert_eq!(pace_after(0.0, None, now, 5), None);
        assert_eq!(cap_left(0, None, 0, now.date_naive()), None);
        // 10/s with a 100 ms tick: two now (one due, one within the tick), then one per 100 ms.
        assert_eq!(pace_allowance(10.0, None, now, burst), Some(2));
        let at = pace_after(10.0, None, now, 2);
        assert_eq!(pace_allowance(10.0, at, now, burst), Some(0));
        let later = now + chrono::Duration::milliseconds(100);
        assert_eq!(pace_allowance(10.0, at, later, burst), Some(1));
    }

    fn limits(enabled: bool, max: u32, daily: u32, out: u32, today: u32) -> TenantLimits {
        TenantLimits {
            bot_enabled: enabled,
            bot_expire_at: None,
            max_concurrent_calls: max,
            daily_calls: daily,
            in_flight: out,
            today_calls: today,
        }
    }

    #[test]
    fn given_tenant_limits_then_the_allowance_is_what_the_tightest_leaves() {
        let now = chrono::Utc::now();
        assert_eq!(tenant_allowance(&limits(true, 0, 0, 50, 900), now), None);
        assert_eq!(tenant_allowance(&limits(true, 10, 0, 4, 900), now), Some(6));
        assert_eq!(
            tenant_allowance(&limits(true, 10, 1000, 4, 998), now),
            Some(2)
        );
        assert_eq!(
            tenant_allowance(&limits(true, 0, 1000, 4, 1200), now),
            Some(0)
        );
        assert_eq!(tenant_allowance(&limits(true, 3, 0, 5, 0), now), Some(0));
        assert_eq!(tenant_allowance(&limits(false, 0, 0, 0, 0), now), Some(0));
        let mut expired = limits(true, 0, 0, 0, 0);
        expired.bot_expire_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(tenant_allowance(&expired, now), Some(0));
        expired.bot_expire_at = Some(now + chrono::Duration::seconds(60));
        assert_eq!(tenant_allowance(&expired, now), None);
    }
}
