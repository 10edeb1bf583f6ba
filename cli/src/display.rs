//! Tables and the live progress line.

use std::io::{IsTerminal, Write};

use waihu_proto::v1 as pb;

pub fn outcome_name(o: i32) -> &'static str {
    match pb::ContactOutcome::try_from(o).unwrap_or(pb::ContactOutcome::Unspecified) {
        pb::ContactOutcome::Answered => "answered",
        pb::ContactOutcome::Unreached => "unreached (busy/no answer/failed)",
        pb::ContactOutcome::Rejected => "rejected",
        pb::ContactOutcome::InvalidNumber => "invalid number",
        pb::ContactOutcome::Cancelled => "cancelled",
        pb::ContactOutcome::DoNotCall => "do not call",
        pb::ContactOutcome::Unspecified => "unspecified",
    }
}

pub fn status_name(s: i32) -> &'static str {
    pb::TaskStatus::try_from(s)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
        .trim_start_matches("TASK_STATUS_")
}

/// The statistics as a two-column table.
pub fn stats_table(s: &pb::TaskStats) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("contacts".into(), s.contacts_total.to_string()),
        ("contacts dialed".into(), s.contacts_dialed.to_string()),
        ("contacts finished".into(), s.contacts_finished.to_string()),
        ("calls placed".into(), s.calls_placed.to_string()),
        ("calls answered".into(), s.calls_answered.to_string()),
        (
            "connect rate".into(),
            format!("{:.1}%", s.connect_rate * 100.0),
        ),
        (
            "average talk".into(),
            format!("{:.1} s", s.average_talk_seconds),
        ),
        ("total talk".into(), format!("{} s", s.total_talk_seconds)),
    ];
    for c in &s.hangup_causes {
        rows.push((format!("cause {} {}", c.q850, c.name), c.count.to_string()));
    }
    for o in &s.outcomes {
        rows.push((
            format!("outcome {}", outcome_name(o.outcome)),
            o.count.to_string(),
        ));
    }
    rows.push(("as of store position".into(), s.as_of_position.to_string()));
    let mut out = kv_table(&rows);
    // The result categories and analysis figures follow in a table of their own, so the lines
    // above read the same whether the server sends them or not.
    let more = result_rows(s);
    if !more.is_empty() {
        out.push('\n');
        out.push_str(&kv_table(&more));
    }
    out
}

/// Seed 001's result categories (when any call has one) and, once calls have been analysed,
/// the analysis figures.
fn result_rows(s: &pb::TaskStats) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if let Some(c) = s.categories.as_ref().filter(|c| **c != Default::default()) {
        for (en, zh, n) in [
            ("success", "成功", c.success),
            ("failed", "失败", c.failed),
            ("interested", "有意向", c.interested),
            ("not considering", "不考虑", c.not_considering),
            ("inconvenient", "不方便", c.inconvenient),
            ("wrong number", "号码错误", c.wrong_number),
        ] {
            rows.push((format!("result {en} ({zh})"), n.to_string()));
        }
    }
    if s.calls_analysed > 0 {
        rows.push(("calls analysed".into(), s.calls_analysed.to_string()));
        rows.push((
            "intended customers".into(),
            s.intended_customers.to_string(),
        ));
        for i in &s.intents {
            rows.push((
                format!("intent {}", or_dash(&i.intent)),
                i.count.to_string(),
            ));
        }
        for g in &s.grades {
            rows.push((format!("grade {}", or_dash(&g.grade)), g.count.to_string()));
        }
    }
    rows
}

/// A boxed two-column table: names left, values right.
pub fn kv_table(rows: &[(String, String)]) -> String {
    let w = rows.iter().map(|r| width(&r.0)).max().unwrap_or(0);
    let v = rows.iter().map(|r| width(&r.1)).max().unwrap_or(0);
    let line = format!("+{}+{}+", "-".repeat(w + 2), "-".repeat(v + 2));
    let mut out = format!("{line}\n");
    for (k, val) in rows {
        out.push_str(&format!("| {} | {} |\n", pad(k, w), pad_left(val, v)));
    }
    out.push_str(&line);
    out
}

/// Aligned columns under a header, two spaces apart; the columns in `right` right-aligned
/// (numbers). The last column is not padded.
pub fn columns(head: &[&str], right: &[usize], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| width(c))
                .chain([width(head[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let w = widths.get(i).copied().unwrap_or(0);
            if right.contains(&i) {
                out.push_str(&pad_left(c, w));
            } else if i + 1 == head.len() {
                out.push_str(c);
            } else {
                out.push_str(&pad(c, w));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut head.iter().copied());
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// `-` for an empty text.
pub fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Columns a text takes on a terminal: East Asian wide characters (Chinese) take two.
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` padded with spaces on the right to `w` columns.
fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// `s` padded with spaces on the left to `w` columns.
fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// A timestamp in RFC 3339 (UTC), or `-`.
pub fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .map(crate::export::rfc3339)
        .unwrap_or_else(|| "-".into())
}

/// A task's progress line; redrawn in place on a terminal, printed every `every` calls
/// otherwise.
pub struct Progress(LineProgress);

impl Progress {
    pub fn new(every: u64) -> Self {
        Progress(LineProgress::new(every))
    }

    pub fn show(&mut self, status: &str, s: &pb::TaskStats, rate: f64) {
        let total = s.contacts_total.max(1);
        let width = 30;
        let filled = ((s.contacts_finished as f64 / total as f64) * width as f64).round() as usize;
        let line = format!(
            "[{}{}] {:>6}/{} contacts | {:>6} calls | {:>5} answered | connect {:>5.1}% | {:>6.0} calls/s | {}",
            "#".repeat(filled.min(width)),
            ".".repeat(width - filled.min(width)),
            s.contacts_finished,
            s.contacts_total,
            s.calls_placed,
            s.calls_answered,
            s.connect_rate * 100.0,
            rate,
            status
        );
        self.0.show(&line);
    }

    pub fn finish(&self) {
        self.0.finish();
    }
}

/// A progress line of any text; redrawn in place on a terminal, printed every `every` calls
/// otherwise.
pub struct LineProgress {
    tty: bool,
    calls: u64,
    every: u64,
}

impl LineProgress {
    pub fn new(every: u64) -> Self {
        LineProgress {
            tty: std::io::stdout().is_terminal(),
            calls: 0,
            every,
        }
    }

    pub fn show(&mut self, line: &str) {
        self.calls += 1;
        if self.tty {
            print!("\r{line}");
            let _ = std::io::stdout().flush();
        } else if self.calls % self.every == 1 {
            println!("{line}");
        }
    }

    pub fn finish(&self) {
        if self.tty {
            println!();
        }
    }

    /// The last line, always printed, and the end of the progress.
    pub fn last(&mut self, line: &str) {
        if self.tty {
            println!("\r{line}");
        } else {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> pb::TaskStats {
        pb::TaskStats {
            contacts_total: 5000,
            contacts_dialed: 4990,
            contacts_finished: 4990,
            calls_placed: 7000,
            calls_released: 7000,
            calls_answered: 2100,
            connect_rate: 0.3,
            average_talk_seconds: 41.5,
            total_talk_seconds: 86_625,
            hangup_causes: vec![pb::CauseCount {
                q850: 17,
                name: "USER_BUSY".into(),
                count: 900,
            }],
            as_of_position: 123_456,
            ..Default::default()
        }
    }

    /// `stats_table` as it printed before the results and analysis figures.
    const TABLE: &str = "\
+----------------------+---------+
| contacts             |    5000 |
| contacts dialed      |    4990 |
| contacts finished    |    4990 |
| calls placed         |    7000 |
| calls answered       |    2100 |
| connect rate         |   30.0% |
| average talk         |  41.5 s |
| total talk           | 86625 s |
| cause 17 USER_BUSY   |     900 |
| as of store position |  123456 |
+----------------------+---------+";

    #[test]
    fn without_results_the_table_is_as_it_was() {
        assert_eq!(stats_table(&stats()), TABLE);
    }

    #[test]
    fn results_and_analysis_follow_in_a_table_of_their_own() {
        let mut s = stats();
        s.categories = Some(pb::ResultCategories {
            success: 2100,
            failed: 4800,
            wrong_number: 100,
            ..Default::default()
        });
        let only_categories = stats_table(&s);
        assert!(only_categories.starts_with(&stats_table(&stats())));
        assert!(only_categories.contains("| result wrong number (号码错误)  |  100 |\n"));
        assert!(!only_categories.contains("calls analysed"), "none analysed");

        s.calls_analysed = 2000;
        s.intended_customers = 300;
        s.intents = vec![pb::IntentCount {
            intent: "有意向".into(),
            count: 300,
        }];
        s.grades = vec![pb::GradeCount {
            grade: "B".into(),
            count: 2000,
        }];
        let t = stats_table(&s);
        let second = t
            .split_once("+\n+")
            .map(|(_, b)| format!("+{b}"))
            .unwrap_or_default();
        assert_eq!(
            second,
            "+---------------------------------+------+\n\
             | result success (成功)           | 2100 |\n\
             | result failed (失败)            | 4800 |\n\
             | result interested (有意向)      |    0 |\n\
             | result not considering (不考虑) |    0 |\n\
             | result inconvenient (不方便)    |    0 |\n\
             | result wrong number (号码错误)  |  100 |\n\
             | calls analysed                  | 2000 |\n\
             | intended customers              |  300 |\n\
             | intent 有意向                   |  300 |\n\
             | grade B                         | 2000 |\n\
             +---------------------------------+------+"
        );
    }

    #[test]
    fn chinese_takes_two_columns() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("号码错误"), 8);
        assert_eq!(width("（不考虑）"), 10);
        assert_eq!(
            columns(&["A", "B"], &[], &[vec!["有意向".into(), "x".into()]]),
            "A       B\n有意向  x\n"
        );
    }
}
