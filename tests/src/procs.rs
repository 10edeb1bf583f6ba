//! Services run as their own processes (the binaries cargo builds beside the tests), for tests
//! of what only a process shows: SIGTERM drains, leader take-overs, what a process exports.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};
use waihu_provider::sim::Simulator;
use waihu_testkit::TestEnv;

use crate::{free_port, service_binary};

/// What a process may take beyond its grace period to exit (the runtime's own teardown).
const MARGIN: Duration = Duration::from_secs(5);

/// The services a test can run as processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Task,
    Provider,
    Dialer,
    Record,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Provider => "provider",
            Kind::Dialer => "dialer",
            Kind::Record => "record",
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            Kind::Task => "waihu-task",
            Kind::Provider => "waihu-provider-adapter",
            Kind::Dialer => "waihu-dialer",
            Kind::Record => "waihu-record",
        }
    }
}

/// The lines of a process' JSON log with this message (and, if given, this `lock` field).
pub fn logged(log: &Path, message: &str, lock: Option<&str>) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"] == message && lock.is_none_or(|lock| v["fields"]["lock"] == lock)
        })
        .count()
}

/// The last `n` lines of a log (for failure messages).
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One service process. Killed (SIGKILL) when dropped; a test failing shows its log's end.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Its gRPC endpoint, `http://127.0.0.1:<port>`.
    pub url: String,
    pub log: PathBuf,
    /// Its `WAIHU_SHUTDOWN_GRACE_SECONDS`.
    grace: Duration,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} ({}) log, last lines:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

impl Proc {
    /// Waits until the process serves gRPC (health SERVING); Err with its log if it exited.
    pub async fn serving(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!(
                    "{} exited ({status}) before serving:\n{}",
                    self.name,
                    tail(&self.log, 20)
                ));
            }
            if waihu_runtime::is_serving(&self.url).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not serving after 60 s:\n{}",
                    self.name,
                    tail(&self.log, 20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the process has logged `message` for `lock`; returns how long it waited.
    pub async fn wait_logged(&self, message: &str, lock: &str, timeout: Duration) -> Duration {
        let what = format!("{} to log {message:?} for {lock}", self.name);
        let at = Instant::now();
        waihu_testkit::eventually(timeout, &what, || async {
            (logged(&self.log, message, Some(lock)) > 0).then_some(())
        })
        .await;
        at.elapsed()
    }

    /// Sends SIGTERM and asserts the process drains and exits successfully within its grace
    /// period (plus a margin); returns how long it took.
    pub async fn terminate(mut self) -> Duration {
        let pid = self.child.id().expect("running").to_string();
        let at = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} ({})", self.name);
        let status = match tokio::time::timeout(self.grace + MARGIN, self.child.wait()).await {
            Ok(s) => s.expect("reaped"),
            Err(_) => panic!(
                "{} still running {:?} after SIGTERM (grace {:?}):\n{}",
                self.name,
                self.grace + MARGIN,
                self.grace,
                tail(&self.log, 40)
            ),
        };
        let took = at.elapsed();
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            self.name,
            tail(&self.log, 40)
        );
        // The runtime logs "stopped" once drained, and warns when it had to abort workers that
        // did not stop within the grace period.
        assert_eq!(
            logged(&self.log, "stopped", None),
            1,
            "{} did not log its drain:\n{}",
            self.name,
            tail(&self.log, 40)
        );
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            !text.contains("did not stop within the grace period"),
            "{} did not drain within its grace period:\n{}",
            self.name,
            tail(&self.log, 40)
        );
        eprintln!("{} exited {took:?} after SIGTERM", self.name);
        took
    }
}

/// Starts service processes on the test's database and prefix, each on free ports with its log
/// in `dir`.
pub struct Launcher {
    pub env: Arc<TestEnv>,
    pub dir: PathBuf,
    started: usize,
    grace: Duration,
    common: Vec<(String, String)>,
}

impl Launcher {
    /// Processes on `env`'s database and prefix with their logs in `dir`, each given `grace`
    /// to drain on SIGTERM.
    pub fn new(env: Arc<TestEnv>, dir: PathBuf, grace: Duration) -> Self {
        Launcher {
            env,
            dir,
            started: 0,
            grace,
            common: Vec::new(),
        }
    }

    /// A setting every process started from now on gets (after the defaults, before a
    /// process' own).
    pub fn with_env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.common.push((name.to_string(), value.into()));
        self
    }

    /// Starts a `kind` process (with `extra` settings) and waits until it serves; a start that
    /// lost its port to another socket meanwhile is retried on another.
    pub async fn start(&mut self, kind: Kind, extra: &[(&str, String)]) -> Proc {
        for attempt in 0..3 {
            self.started += 1;
            let name = format!("{}-{}", kind.name(), self.started);
            let grpc = free_port();
            let log = self.dir.join(format!("{name}.log"));
            let file = std::fs::File::create(&log).expect("log file");
            let child = Command::new(service_binary(kind.binary()))
                .current_dir(&self.dir)
                .env_remove("WAIHU_CONFIG")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .env("WAIHU_NATS_URL", &self.env.nats_url)
                .env("WAIHU_DATABASE_URL", &self.env.database_url)
                .env("WAIHU_PREFIX", &self.env.prefix)
                .env("WAIHU_GRPC_ADDR", grpc.to_string())
                .env("WAIHU_METRICS_ADDR", "off")
                .env(
                    "WAIHU_SHUTDOWN_GRACE_SECONDS",
                    self.grace.as_secs().to_string(),
                )
                .env("WAIHU_DATABASE__MAX_CONNECTIONS", "4")
                .env("WAIHU_AUTH__DEV_MODE", "true")
                .env(
                    "WAIHU_AUTH__HS256_KEY",
                    waihu_runtime::CommonConfig::TEST_KEY,
                )
                .env("WAIHU_LOG_FORMAT", "json")
                .env(
                    "RUST_LOG",
                    "warn,waihu_store::leader=info,waihu_runtime=info",
                )
                .envs(self.common.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(file)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("{name} starts: {e}"));
            let mut p = Proc {
                name,
                child,
                url: format!("http://{grpc}"),
                log,
                grace: self.grace,
            };
            match p.serving().await {
                Ok(()) => {
                    eprintln!("{} serving at {}", p.name, p.url);
                    return p;
                }
                Err(why) if attempt < 2 && why.contains("in use") => {
                    eprintln!("{} lost its port, trying another", p.name)
                }
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    pub async fn task(&mut self) -> Proc {
        self.start(Kind::Task, &[]).await
    }

    /// The provider adapter: the simulator as `sim` says (its seed and time scale), no SIP,
    /// callbacks and files of its own; `dialer` is where line status asks for counts.
    pub async fn provider(&mut self, dialer: &str, sim: &Simulator) -> Proc {
        let key = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
        };
        let recordings = self.dir.join("provider-recordings");
        self.start(
            Kind::Provider,
            &[
                ("WAIHU_SIMULATOR__SEED", sim.seed.to_string()),
                ("WAIHU_SIMULATOR__TIME_SCALE", sim.time_scale.to_string()),
                ("WAIHU_PROVIDER__DIALER_URL", dialer.to_string()),
                ("WAIHU_PROVIDER__SIP_BIND", String::new()),
                ("WAIHU_PROVIDER__CREDENTIALS_KEY", key),
                (
                    "WAIHU_PROVIDER__RECORDINGS_DIR",
                    recordings.display().to_string(),
                ),
                ("WAIHU_HTTP_ADDR", "127.0.0.1:0".into()),
            ],
        )
        .await
    }

    /// A dialer, calling at any hour.
    pub async fn dialer(&mut self) -> Proc {
        self.start(
            Kind::Dialer,
            &[
                ("WAIHU_DIALER__TICK_MS", "50".into()),
                ("WAIHU_DIALER__DEFAULT_WINDOW", "00:00-24:00".into()),
            ],
        )
        .await
    }

    /// A record service: no recordings endpoint, storage in the test's directory.
    pub async fn record(&mut self) -> Proc {
        let store = self.dir.join("recordings-store");
        let sources = self.dir.join("provider-recordings");
        self.start(
            Kind::Record,
            &[
                ("WAIHU_RECORDINGS__HTTP_ADDR", String::new()),
                ("WAIHU_RECORDINGS__ROOT", store.display().to_string()),
                (
                    "WAIHU_RECORDINGS__SOURCE_DIRS",
                    sources.display().to_string(),
                ),
            ],
        )
        .await
    }
}
