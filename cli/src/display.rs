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
    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let v = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let line = format!("+{}+{}+", "-".repeat(w + 2), "-".repeat(v + 2));
    let mut out = format!("{line}\n");
    for (k, val) in rows {
        out.push_str(&format!("| {k:<w$} | {val:>v$} |\n"));
    }
    out.push_str(&line);
    out
}

/// A progress line; redrawn in place on a terminal, printed every `every` calls otherwise.
pub struct Progress {
    tty: bool,
    calls: u64,
    every: u64,
}

impl Progress {
    pub fn new(every: u64) -> Self {
        Progress {
            tty: std::io::stdout().is_terminal(),
            calls: 0,
            every,
        }
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
}
