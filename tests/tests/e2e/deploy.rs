//! What operators deploy (issue 13): `deploy/Dockerfile` passes hadolint; every overlay in
//! `k8s/overlays/` renders with `kubectl kustomize`, its resources validate strictly against the
//! Kubernetes schemas (and CloudNativePG's for its custom resources: `scripts/validate-k8s.py`)
//! and checkov finds nothing it does not skip with a reason. The tools come from
//! `scripts/ensure-tools.sh` (`WAIHU_DEPLOY_VENV`, `.tools/deploy-venv` by default).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn tool(name: &str) -> PathBuf {
    let venv = std::env::var("WAIHU_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".tools/deploy-venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/ensure-tools.sh installs it (make test runs it)",
        path.display()
    );
    path
}

/// Runs `cmd`; its stdout, or a panic with everything it said.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = run(Command::new(tool("hadolint"))
        .arg("--failure-threshold")
        .arg("info")
        .arg(repo().join("deploy/Dockerfile")));
    assert!(out.trim().is_empty(), "{out}");
    // One target per binary.
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).expect("Dockerfile");
    for target in [
        "task", "dialer", "provider", "record", "analysis", "gateway", "cli",
    ] {
        assert!(
            text.contains(&format!(" AS {target}\n")),
            "no target {target}"
        );
    }
}

#[test]
fn every_overlay_renders_validates_and_passes_checkov() {
    let dir = std::env::temp_dir().join(format!("waihu-k8s-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let overlays = repo().join("k8s/overlays");
    let mut rendered = Vec::new();
    for entry in std::fs::read_dir(&overlays).expect("k8s/overlays") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let yaml = run(Command::new("kubectl").arg("kustomize").arg(&path));
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &yaml).expect("rendered");
        rendered.push((name, file, yaml));
    }
    let names: Vec<&str> = rendered.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(
        names.contains(&"dev") && names.contains(&"prod"),
        "{names:?}"
    );
    let files: Vec<&PathBuf> = rendered.iter().map(|(_, f, _)| f).collect();
    let report = run(Command::new(tool("python"))
        .arg(repo().join("scripts/validate-k8s.py"))
        .args(&files));
    assert!(report.contains(", 0 failed"), "{report}");
    let checkov = run(Command::new(tool("checkov"))
        .arg("-d")
        .arg(&dir)
        .args(["--framework", "kubernetes", "--compact", "--quiet"])
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false"));
    assert!(!checkov.contains("FAILED for resource"), "{checkov}");
    // What the overlays promise.
    for (name, _, yaml) in &rendered {
        for service in [
            "waihu-task",
            "waihu-dialer",
            "waihu-provider-adapter",
            "waihu-record",
            "waihu-analysis",
            "waihu-gateway",
        ] {
            assert!(
                yaml.contains(&format!("name: {service}\n")),
                "{name}: {service}"
            );
        }
        for needle in [
            "name: grpc",
            "name: metrics",
            "readOnlyRootFilesystem: true",
            "kind: NetworkPolicy",
            "kind: PodDisruptionBudget",
            "kind: HorizontalPodAutoscaler",
        ] {
            assert!(yaml.contains(needle), "{name}: {needle}");
        }
    }
    let prod = &rendered
        .iter()
        .find(|(n, _, _)| n == "prod")
        .expect("prod")
        .2;
    assert!(prod.contains("kind: Cluster") && prod.contains("instances: 3"));
    assert!(prod.contains("kind: Pooler"));
    assert_eq!(
        prod.matches("- name: WAIHU_NATS__REPLICAS\n          value: \"3\"")
            .count(),
        6,
        "every service's streams R3 on the NATS cluster"
    );
    let dev = &rendered.iter().find(|(n, _, _)| n == "dev").expect("dev").2;
    assert_eq!(dev.matches("name: WAIHU_AUTH__DEV_MODE").count(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The metric names an expression uses (`waihu_...`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("waihu_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn the_alerts_and_the_dashboard_use_only_metrics_the_services_serve() {
    // The sample names the registry can produce: counters end in _total, histograms in
    // _bucket/_count/_sum.
    // A family shows in the exposition once it has a sample: one of each, in this process.
    let m = waihu_metrics::metrics();
    m.published("X");
    m.decision("x", "y");
    m.build("x", "0");
    let c = waihu_metrics::ConsumerLabel {
        consumer: "x".into(),
    };
    m.events_consumed
        .get_or_create(&waihu_metrics::ConsumerTypeLabel {
            consumer: "x".into(),
            r#type: "X".into(),
        })
        .inc();
    m.consumer_redeliveries.get_or_create(&c).inc();
    m.consumer_pending.get_or_create(&c).set(0);
    m.dead_letters.get_or_create(&c).inc();
    let p = waihu_metrics::ProducerLabel {
        producer: "x".into(),
    };
    m.outbox_depth.get_or_create(&p).set(0);
    m.outbox_oldest_seconds.get_or_create(&p).set(0.0);
    m.projection_lag
        .get_or_create(&waihu_metrics::ProjectionLabel {
            projection: "x".into(),
        })
        .set(0);
    let l = waihu_metrics::LineLabel { line: "x".into() };
    m.calls_in_flight.get_or_create(&l).set(0);
    m.calls_placed.get_or_create(&l).inc();
    m.grpc_requests
        .get_or_create(&waihu_metrics::GrpcLabel {
            method: "x".into(),
            code: "0".into(),
        })
        .inc();
    m.grpc_seconds
        .get_or_create(&waihu_metrics::MethodLabel { method: "x".into() })
        .observe(0.1);
    m.http_requests
        .get_or_create(&waihu_metrics::HttpLabel {
            route: "x".into(),
            method: "GET".into(),
            status: "200".into(),
        })
        .inc();
    m.http_seconds
        .get_or_create(&waihu_metrics::RouteLabel { route: "x".into() })
        .observe(0.1);
    let exposition = m.encode();
    let mut served = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            match kind {
                "counter" => {
                    served.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_count", "_sum"] {
                        served.insert(format!("{name}{s}"));
                    }
                }
                _ => {
                    served.insert(name.to_string());
                }
            }
        }
    }
    assert!(served.contains("waihu_calls_placed_total"), "{served:?}");
    let alerts = run(Command::new(tool("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo().join("deploy/prometheus/alerts.yaml")));
    let alerts: serde_json::Value = serde_json::from_str(&alerts).expect("alerts as JSON");
    let rules = alerts["groups"][0]["rules"].as_array().expect("rules");
    let mut exprs = Vec::new();
    for r in rules {
        let name = r["alert"].as_str().expect("alert name");
        assert!(r["labels"]["severity"].is_string(), "{name}: severity");
        assert!(r["annotations"]["summary"].is_string(), "{name}: summary");
        exprs.push(r["expr"].as_str().expect("expr").to_string());
    }
    for wanted in [
        "WaihuOutboxStuck",
        "WaihuConsumerLagGrowing",
        "WaihuProjectionLagGrowing",
        "WaihuDeadLettersGrowing",
        "WaihuNoDialsWhileTasksRun",
    ] {
        assert!(rules.iter().any(|r| r["alert"] == wanted), "alert {wanted}");
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/waihu.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{e}");
        for n in names {
            assert!(served.contains(&n), "{n} (in {e}) is not served");
        }
    }
}
