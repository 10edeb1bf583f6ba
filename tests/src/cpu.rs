//! CPU time spent by the processes of a pipeline on this host, read from `/proc`, so a benchmark
//! can report the cost of each part per item (steadier than a rate when the machine's other load
//! and its raw ceilings move from run to run).
//!
//! Linux only; elsewhere (or for a server on another host) every reading is zero and
//! [`CpuSample::since`] gives nothing.

use std::fs;

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on every Linux architecture in use).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds spent so far, by part.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// Every process named `postgres` (backends, and the postmaster with the time of its
    /// children that already exited).
    pub postgres: f64,
    /// Every process named `nats-server`.
    pub nats: f64,
    /// This process (all its threads).
    pub this: f64,
    /// The whole machine: busy and total CPU seconds (all cores) from `/proc/stat`.
    pub machine_busy: f64,
    pub machine_total: f64,
}

/// CPU seconds each part spent between two samples.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpent {
    pub postgres: f64,
    pub nats: f64,
    pub this: f64,
    /// Everything else that ran on the machine meanwhile (other services, the kernel's own work).
    pub other: f64,
    /// Idle CPU seconds (all cores).
    pub idle: f64,
}

impl CpuSample {
    pub fn now() -> CpuSample {
        let mut s = CpuSample::default();
        if let Ok(dir) = fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                let Some((comm, secs)) = process_seconds(pid) else {
                    continue;
                };
                match comm.as_str() {
                    "postgres" => s.postgres += secs,
                    "nats-server" => s.nats += secs,
                    _ => {}
                }
            }
        }
        s.this = process_seconds("self")
            .map(|(_, secs)| secs)
            .unwrap_or_default();
        if let Some((busy, total)) = machine_seconds() {
            s.machine_busy = busy;
            s.machine_total = total;
        }
        s
    }

    /// What was spent since `earlier`; None when `/proc` could not be read.
    pub fn since(&self, earlier: &CpuSample) -> Option<CpuSpent> {
        if self.machine_total <= earlier.machine_total {
            return None;
        }
        let postgres = (self.postgres - earlier.postgres).max(0.0);
        let nats = (self.nats - earlier.nats).max(0.0);
        let this = (self.this - earlier.this).max(0.0);
        let busy = (self.machine_busy - earlier.machine_busy).max(0.0);
        let total = self.machine_total - earlier.machine_total;
        Some(CpuSpent {
            postgres,
            nats,
            this,
            other: (busy - postgres - nats - this).max(0.0),
            idle: (total - busy).max(0.0),
        })
    }
}

/// CPU seconds process `pid` (and its reaped children) used so far; None once it is gone.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    process_seconds(&pid.to_string()).map(|(_, secs)| secs)
}

/// A process's command name and the CPU seconds it and its reaped children used.
fn process_seconds(pid: &str) -> Option<(String, f64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a `/proc/<pid>/stat` line into the command name and CPU seconds.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = field(14)? + field(15)? + field(16)? + field(17)?;
    Some((comm, ticks as f64 / TICKS_PER_SECOND))
}

/// Busy and total CPU seconds of the whole machine.
fn machine_seconds() -> Option<(f64, f64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((
        (total - idle) as f64 / TICKS_PER_SECOND,
        total as f64 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_are_read() {
        let a = CpuSample::now();
        // Burn a little CPU so the counters move.
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(150) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = CpuSample::now();
        let spent = b.since(&a).expect("/proc is readable on Linux");
        assert!(spent.this >= 0.05, "{spent:?}");
        assert!(b.machine_total > a.machine_total);
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_parsed() {
        // utime 250, stime 50, cutime 100, cstime 0 ticks: 4 s.
        let stat = "4242 (odd (name) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 100 0 20 0 1";
        let (comm, secs) = parse_stat(stat).expect("a well-formed stat line");
        assert_eq!(comm, "odd (name) x");
        assert!((secs - 4.0).abs() < 1e-9, "{secs}");
        assert!(parse_stat("4242 (truncated) S 1 2").is_none());
    }
}
