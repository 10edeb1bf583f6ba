//! Infrastructure a test owns alone, to break on purpose: a local 3-node NATS JetStream cluster
//! ([`NatsCluster`]) and a private PostgreSQL server ([`PgServer`]). Each lives in a temporary
//! directory of its own, on free loopback ports, and is killed and removed when dropped (also
//! when the test fails).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A fresh temporary directory, named after `what`.
fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("waihu-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The last `n` lines of the file at `path` (for failure messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether something accepts TCP connections on the loopback `port`.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

// ---------------------------------------------------------------------------------------------
// NATS

/// One `nats-server` of a [`NatsCluster`].
struct NatsNode {
    name: String,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    fn spawn(&mut self) {
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nats-server {} starts: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILL, then reaps the process.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `nats-server` from `WAIHU_NATS_SERVER`, or the PATH (`scripts/ensure-infra.sh` installs it as
/// `/usr/sbin/nats-server`).
fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("WAIHU_NATS_SERVER") {
        return p.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    on_path.expect("nats-server on the PATH (scripts/ensure-infra.sh installs it)")
}

/// A NATS JetStream cluster of local `nats-server` processes, each with its own client and route
/// ports and its own store directory; killed and removed when dropped.
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<NatsNode>,
}

impl NatsCluster {
    /// Starts `n` clustered JetStream servers and waits until the cluster has a JetStream meta
    /// leader and takes streams of `n` replicas.
    pub async fn start(n: usize) -> NatsCluster {
        let dir = temp_dir("nats-cluster");
        let cluster_name = format!(
            "waihu-t-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| (crate::free_port().port(), crate::free_port().port()))
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{i}");
            let store = dir.join(&name);
            std::fs::create_dir_all(&store).expect("store dir");
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r))| format!("\"nats://127.0.0.1:{r}\""))
                .collect();
            let log = dir.join(format!("{name}.log"));
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\n\
                     listen: \"127.0.0.1:{port}\"\n\
                     log_file: \"{log}\"\n\
                     jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n\
                     cluster {{\n  name: {cluster_name}\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
                    log = log.display(),
                    store = store.display(),
                    routes = routes.join(", "),
                ),
            )
            .expect("node config");
            nodes.push(NatsNode {
                name,
                port: *port,
                config,
                log,
                child: None,
            });
        }
        let mut cluster = NatsCluster { dir, nodes };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        cluster.wait_ready(Duration::from_secs(90)).await;
        cluster
    }

    /// The cluster's client URLs, comma-separated (as [`waihu_testkit::TestEnv::on_nats`] takes
    /// them).
    pub fn url(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.node_url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of node `i`.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i`'s server name (as JetStream names leaders and peers).
    pub fn node_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The last lines of every node's log (for failure messages).
    pub fn logs(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("---- {} ----\n{}", n.name, tail(&n.log, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills node `i` with SIGKILL (no shutdown, no flush) and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again, on the same ports and with the same store, and waits until it
    /// accepts clients.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].spawn();
        let port = self.nodes[i].port;
        waihu_testkit::eventually(
            Duration::from_secs(60),
            &format!("node {} to accept clients again", self.nodes[i].name),
            || async move { listening(port).then_some(()) },
        )
        .await;
    }

    /// Waits until every node accepts clients and the cluster creates a stream with one replica
    /// on each node (so JetStream has a meta leader and every node has joined).
    async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let name = format!(
            "PROBE_{}",
            uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        let replicas = self.nodes.len();
        let mut last = String::from("no attempt");
        loop {
            for n in &mut self.nodes {
                if let Some(Ok(Some(status))) = n.child.as_mut().map(|c| c.try_wait()) {
                    panic!(
                        "nats-server {} exited ({status}):\n{}",
                        n.name,
                        tail(&n.log, 30)
                    );
                }
            }
            if self.nodes.iter().all(|n| listening(n.port)) {
                match probe_stream(&self.url(), &name, replicas).await {
                    Ok(()) => return,
                    Err(e) => last = e,
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the NATS cluster is not ready after {timeout:?} (last: {last}):\n{}",
                    self.logs(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Creates and deletes a stream of `replicas` replicas on the cluster at `url`.
async fn probe_stream(url: &str, name: &str, replicas: usize) -> Result<(), String> {
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(|u| u.parse().map_err(|e| format!("{u}: {e}")))
        .collect::<Result<_, String>>()?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(servers)
        .await
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client.clone());
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: name.to_string(),
            subjects: vec![format!("probe.{name}")],
            num_replicas: replicas,
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| "stream creation timed out".to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    if created.is_ok() {
        let _ = js.delete_stream(name).await;
    }
    drop(client);
    created.map(|_| ())
}

/// The server name of the leader of `stream` (None while it has none).
pub async fn stream_leader(js: &async_nats::jetstream::Context, stream: &str) -> Option<String> {
    let mut s = js.get_stream(stream).await.ok()?;
    let info = s.info().await.ok()?;
    info.cluster.as_ref()?.leader.clone()
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("NATS cluster logs:\n{}", self.logs(40));
        }
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The directory of PostgreSQL's server programs: `WAIHU_PG_BINDIR`, the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), or `pg_config --bindir`.
fn pg_bindir() -> PathBuf {
    if let Ok(d) = std::env::var("WAIHU_PG_BINDIR") {
        return d.into();
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            let mut v: Vec<(u32, PathBuf)> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").is_file().then_some((version, bin))
                })
                .collect();
            v.sort();
            v.pop().map(|(_, b)| b)
        })
        .ok()
        .flatten();
    if let Some(d) = debian {
        return d;
    }
    let out = Command::new("pg_config").arg("--bindir").output().expect(
        "PostgreSQL's server programs: /usr/lib/postgresql/<v>/bin, or pg_config on the PATH",
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Whether this process runs as root (initdb and postgres refuse to: they then run as `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server of a test's own, in a temporary directory, on a free loopback port, with
/// password-less (`trust`) access for `postgres`; stopped and removed when dropped.
pub struct PgServer {
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    bindir: PathBuf,
    as_postgres: bool,
}

impl PgServer {
    /// Creates the cluster (`initdb`) and starts the server.
    pub fn start() -> PgServer {
        let dir = temp_dir("pg");
        let as_postgres = is_root();
        let server = PgServer {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            dir,
            port: crate::free_port().port(),
            bindir: pg_bindir(),
            as_postgres,
        };
        if as_postgres {
            // initdb and postgres refuse to run as root.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown {} to postgres", server.dir.display());
        }
        server.run(
            "initdb",
            &[
                "-D",
                &server.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start_server();
        server
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when this process is root); panics
    /// with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let bin = self.bindir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", bin.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}):\n{}\n{}\n---- server log ----\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log, 30)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.display().to_string();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c shared_buffers=32MB -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.log.display().to_string();
        self.pg_ctl(&["-o", &options, "-l", &log, "-w", "-t", "120", "start"]);
    }

    /// The server's URL, database `postgres` (TestEnv puts its own database in its place).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`-m fast`: clients are disconnected, transactions rolled back) and
    /// waits until it is down.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "120", "stop"]);
    }

    /// Stops the server as a crash would (immediate shutdown: every process killed, no
    /// checkpoint, what is still in the WAL buffers lost; the next start runs crash recovery).
    pub fn crash(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "-t", "120", "stop"]);
    }

    /// Starts the stopped server again, on the same port and data, and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        self.start_server();
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("PostgreSQL log:\n{}", self.log_tail(60));
        }
        let data = self.data.display().to_string();
        let bin = self.bindir.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "-t", "60", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
