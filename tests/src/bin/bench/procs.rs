//! The services as separate OS processes from the release binaries: started with their
//! configuration in the environment, awaited on gRPC health, sampled for memory, stopped with
//! SIGTERM (SIGKILL after 30 s). Children are also killed if the bench itself is dropped.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// Where the release service binaries are: `$CARGO_TARGET_DIR/release`, else the workspace's
/// `target/release`.
pub fn release_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir.join("release")
            } else {
                workspace.join(dir).join("release")
            }
        }
        None => workspace.join("target").join("release"),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

pub struct Service {
    /// `task`, `dialer`, `provider-adapter`, `record`.
    pub name: &'static str,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
}

/// The services started so far, in start order.
pub struct Services {
    pub dir: PathBuf,
    pub list: Vec<Service>,
}

impl Services {
    pub fn new(dir: PathBuf) -> Services {
        Services {
            dir,
            list: Vec::new(),
        }
    }

    pub fn addr(&self, name: &str) -> Result<String, String> {
        self.list
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.addr.clone())
            .ok_or_else(|| format!("{name} is not running"))
    }

    /// Starts `waihu-<name>` with `env` plus its own `WAIHU_GRPC_ADDR`, and waits until it
    /// reports SERVING.
    pub async fn start(
        &mut self,
        name: &'static str,
        env: &[(&str, String)],
    ) -> Result<(), String> {
        let bin = release_dir().join(format!("waihu-{name}"));
        if !bin.exists() {
            return Err(format!(
                "{} is missing: build the services first (cargo build --release --bins)",
                bin.display()
            ));
        }
        let port = free_port()?;
        let log = self.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        let child = Command::new(&bin)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("WAIHU_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or_else(|| format!("{name} exited at once"))?;
        let addr = format!("http://127.0.0.1:{port}");
        self.list.push(Service {
            name,
            addr: addr.clone(),
            pid,
            log: log.clone(),
            child,
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if waihu_runtime::is_serving(&addr).await {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not become healthy in 120 s; see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails if any service has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for s in &mut self.list {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}); see {}",
                    s.name,
                    s.log.display()
                ));
            }
        }
        Ok(())
    }

    /// Stops every service, last started first: SIGTERM, then SIGKILL after 30 s.
    pub async fn stop(&mut self) {
        for s in self.list.iter_mut().rev() {
            if matches!(s.child.try_wait(), Ok(Some(_))) {
                continue;
            }
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(s.pid.to_string())
                .status()
                .await;
            match tokio::time::timeout(Duration::from_secs(30), s.child.wait()).await {
                Ok(Ok(status)) if !status.success() => {
                    eprintln!("      {} exited with {status} after SIGTERM", s.name)
                }
                Ok(_) => {}
                Err(_) => {
                    eprintln!(
                        "      {} did not stop within 30 s of SIGTERM; killing it",
                        s.name
                    );
                    let _ = s.child.kill().await;
                }
            }
        }
    }

    /// Log lines at WARN or ERROR, per service (up to `keep` of them, and the count).
    pub fn complaints(&self, keep: usize) -> Vec<(&'static str, usize, Vec<String>)> {
        self.list
            .iter()
            .filter_map(|s| {
                let text = std::fs::read_to_string(&s.log).ok()?;
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
                    // The bench runs the services in development mode on purpose: their
                    // start-up warnings about it are not complaints.
                    .filter(|l| !(l.contains("DEV MODE") || l.contains("LOCAL DEVELOPMENT KEY")))
                    .collect();
                (!bad.is_empty()).then(|| {
                    (
                        s.name,
                        bad.len(),
                        bad.iter().take(keep).map(|l| l.to_string()).collect(),
                    )
                })
            })
            .collect()
    }
}

/// Resident memory of a process from `/proc/<pid>/status`, in KiB: (VmRSS, VmHWM).
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The highest VmRSS and VmHWM seen for each service.
#[derive(Clone, Copy, Default)]
pub struct Peak {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Peak {
    fn add(&mut self, (rss, hwm): (u64, u64)) {
        self.rss_kib = self.rss_kib.max(rss);
        self.hwm_kib = self.hwm_kib.max(hwm);
    }

    /// The peak resident size in MiB.
    pub fn mib(&self) -> f64 {
        self.rss_kib.max(self.hwm_kib) as f64 / 1024.0
    }
}

/// Samples every service's memory once a second until dropped.
pub struct Sampler {
    peaks: Arc<Mutex<BTreeMap<&'static str, Peak>>>,
    pids: Vec<(&'static str, u32)>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(services: &Services) -> Sampler {
        // Reported in this order.
        let order = ["task", "dialer", "provider-adapter", "record"];
        let mut pids: Vec<(&'static str, u32)> =
            services.list.iter().map(|s| (s.name, s.pid)).collect();
        pids.sort_by_key(|(name, _)| order.iter().position(|o| o == name));
        let peaks: Arc<Mutex<BTreeMap<&'static str, Peak>>> = Default::default();
        let (p, shared) = (pids.clone(), peaks.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let sample: Vec<_> = p
                    .iter()
                    .filter_map(|(name, pid)| Some((*name, memory(*pid)?)))
                    .collect();
                if let Ok(mut peaks) = shared.lock() {
                    for (name, m) in sample {
                        peaks.entry(name).or_default().add(m);
                    }
                }
            }
        });
        Sampler { peaks, pids, task }
    }

    /// Takes one more sample now and returns the peaks with each service's current VmRSS (MiB).
    pub fn finish(&self) -> Vec<(&'static str, Peak, f64)> {
        let mut out = Vec::new();
        let Ok(mut peaks) = self.peaks.lock() else {
            return out;
        };
        for (name, pid) in &self.pids {
            let now = memory(*pid);
            let peak = peaks.entry(*name).or_default();
            if let Some(m) = now {
                peak.add(m);
            }
            out.push((
                *name,
                *peak,
                now.map(|(rss, _)| rss as f64 / 1024.0).unwrap_or(0.0),
            ));
        }
        out
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
