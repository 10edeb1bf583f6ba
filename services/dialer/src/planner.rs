//! The dialing decision as a pure function: which due contact goes out on which line. SQL only
//! fetches what is due and commits what was planned.
//!
//! Tasks come in the order they are to be served (higher priority first); within a task,
//! contacts in due order. A line never gets more calls than its free slots; a task that names a
//! caller line (`caller_line`) dials only on that line; other tasks spread over the line with
//! the most free slots first, so load stays even across trunks.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A line and how many more calls it may carry now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSlots {
    pub id: String,
    pub free: u32,
}

/// A contact due for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueContact {
    pub contact_no: i32,
    pub phone: String,
    /// Calls placed to it so far.
    pub attempts: i32,
}

/// A running task with contacts due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTask {
    pub task_id: Uuid,
    pub tenant_id: String,
    /// The only line the task may dial on; None = any line.
    pub caller_line: Option<String>,
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
    /// 1 for the first call to the contact.
    pub attempt: u32,
}

/// How many calls a task could place now (what to fetch for it at most).
pub fn capacity(lines: &[LineSlots], caller_line: Option<&str>) -> u32 {
    match caller_line {
        Some(id) => lines.iter().find(|l| l.id == id).map_or(0, |l| l.free),
        None => lines.iter().map(|l| l.free).sum(),
    }
}

/// Plans one task's calls, taking the slots it uses from `lines`.
pub fn plan_task(lines: &mut [LineSlots], task: &DueTask) -> Vec<Dial> {
    let mut out = Vec::new();
    for c in &task.contacts {
        let line = match &task.caller_line {
            Some(id) => lines.iter_mut().find(|l| &l.id == id && l.free > 0),
            None => lines
                .iter_mut()
                .filter(|l| l.free > 0)
                .max_by_key(|l| l.free),
        };
        let Some(line) = line else { break };
        line.free -= 1;
        out.push(Dial {
            task_id: task.task_id,
            tenant_id: task.tenant_id.clone(),
            contact_no: c.contact_no,
            phone: c.phone.clone(),
            line_id: line.id.clone(),
            attempt: c.attempts.max(0) as u32 + 1,
        });
    }
    out
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
        .flat_map(|t| plan_task(&mut lines, t))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn line(id: &str, free: u32) -> LineSlots {
        LineSlots {
            id: id.into(),
            free,
        }
    }

    fn task(n: usize, caller_line: Option<&str>) -> DueTask {
        DueTask {
            task_id: Uuid::new_v4(),
            tenant_id: "t".into(),
            caller_line: caller_line.map(str::to_string),
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
        assert_eq!(capacity(&[line("a", 10), line("b", 2)], Some("b")), 2);
        assert_eq!(capacity(&[line("a", 10), line("b", 2)], None), 12);
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
                if let Some(pin) = &t.caller_line {
                    prop_assert_eq!(&d.line_id, pin);
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
                    prop_assert_eq!(capacity(&left, t.caller_line.as_deref()), 0);
                }
            }
        }
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
