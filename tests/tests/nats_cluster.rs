//! The clustered bus: a 3-node NATS JetStream cluster (three `nats-server` processes on loopback,
//! routed to each other), streams with 3 replicas, and one node killed (SIGKILL) in the middle of
//! a campaign and started again: the statistics come out exact and the replay identical.

use std::{net::TcpListener, path::PathBuf, process::Stdio, time::Duration};

use waihu_e2e::*;
use waihu_events::pb;
use waihu_testkit::TestEnv;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One node of the cluster: its client and route ports, its store.
struct Node {
    name: String,
    port: u16,
    route: u16,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Node {
    fn start(&mut self, routes: &[u16]) {
        let routes = routes
            .iter()
            .filter(|r| **r != self.route)
            .map(|r| format!("nats://127.0.0.1:{r}"))
            .collect::<Vec<_>>()
            .join(",");
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let bin = if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = tokio::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-n",
                &self.name,
                "-js",
                "-sd",
                &self.dir.display().to_string(),
            ])
            .args(["--cluster_name", "waihu-test"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", self.route)])
            .args(["--routes", &routes])
            .args(["-l", &self.dir.join("server.log").display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server (Debian package nats-server)");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash.
    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.start_kill().expect("kill");
            let _ = c.wait().await;
        }
    }
}

struct NatsCluster {
    nodes: Vec<Node>,
}

impl NatsCluster {
    async fn start() -> NatsCluster {
        // Ports are picked free, then bound by nats-server: another socket may take one
        // meanwhile and that node exits. Then the whole cluster starts again on new ports.
        for _ in 0..5 {
            let base = std::env::temp_dir().join(format!("waihu-nats-{}", uuid::Uuid::new_v4()));
            let mut nodes: Vec<Node> = (0..3)
                .map(|i| Node {
                    name: format!("n{i}"),
                    port: free_port(),
                    route: free_port(),
                    dir: base.join(format!("n{i}")),
                    child: None,
                })
                .collect();
            let routes: Vec<u16> = nodes.iter().map(|n| n.route).collect();
            for n in &mut nodes {
                std::fs::create_dir_all(&n.dir).expect("store dir");
                n.start(&routes);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let exited = nodes.iter_mut().any(|n| {
                n.child
                    .as_mut()
                    .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            });
            let c = NatsCluster { nodes };
            if exited {
                continue; // dropped: its nodes killed, its directory removed
            }
            c.wait_ready().await;
            return c;
        }
        panic!("a node of the NATS cluster exited at start 5 times (its ports taken?)");
    }

    fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn routes(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.route).collect()
    }

    /// Until the cluster takes an R3 stream (its JetStream meta leader is elected).
    async fn wait_ready(&self) {
        let url = self.url();
        waihu_testkit::eventually(Duration::from_secs(60), "the NATS cluster", || {
            let url = url.clone();
            async move {
                let servers: Vec<async_nats::ServerAddr> =
                    url.split(',').filter_map(|u| u.parse().ok()).collect();
                let client = async_nats::connect(servers).await.ok()?;
                let js = async_nats::jetstream::new(client);
                let name = format!("READY_{}", uuid::Uuid::new_v4().simple());
                js.create_stream(async_nats::jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("ready.{name}")],
                    num_replicas: 3,
                    ..Default::default()
                })
                .await
                .ok()?;
                js.delete_stream(&name).await.ok()?;
                Some(())
            }
        })
        .await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = n.child.as_mut() {
                let _ = c.start_kill();
            }
        }
        if let Some(base) = self.nodes.first().and_then(|n| n.dir.parent()) {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_on_r3_streams_survives_a_nats_node_killed_and_restarted() {
    let mut nats = NatsCluster::start().await;
    let env = TestEnv::on_nats(&nats.url(), 3).await;
    let sim = waihu_provider::sim::Simulator {
        seed: 33,
        time_scale: 400.0,
        ..Default::default()
    };
    let cluster = Cluster::start_on(
        env,
        sim.clone(),
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 150,
        }],
        true,
        Duration::from_secs(7200),
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let list = phones(1000, 4);
    let task = create_with_contacts(&mut tasks, spec("r3", 1, 0), &list).await;
    start(&mut tasks, &task).await;
    let seen = wait_stats(
        &cluster,
        &task,
        "some calls released",
        Duration::from_secs(120),
        |s| s.calls_released >= 100,
    )
    .await;
    assert!(seen.contacts_finished < 1000, "still mid-campaign");

    // One node dies as a crash would, stays away a while, and comes back.
    let routes = nats.routes();
    nats.nodes[1].kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.nodes[1].start(&routes);

    wait_status(
        &mut tasks,
        &task,
        pb::TaskStatus::Completed,
        Duration::from_secs(300),
    )
    .await;
    let stats = wait_stats_settled(&cluster, &task, 1000, Duration::from_secs(120)).await;
    assert_stats_match(&stats, &expected(&sim, &e164(&list), 1));
    let report = waihu_record::replay::verify(&cluster.env.pool, |_, _| {})
        .await
        .expect("replay");
    assert!(report.identical(), "{:?}", report.differences);
    cluster.shutdown().await;
}
