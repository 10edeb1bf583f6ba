//! Each service connects to NATS with its own credentials: a server that requires them refuses
//! a connection without and accepts the user and password or token configured, and no
//! password appears in the errors.

use std::{process::Stdio, time::Duration};

use waihu_bus::{Bus, BusConfig, NatsAuth};

/// A private nats-server (JetStream on, its own port and store) started with `args`.
async fn server(args: &[&str]) -> (tokio::process::Child, String, std::path::PathBuf) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let dir = std::env::temp_dir().join(format!("waihu-nats-auth-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("store dir");
    let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let child = tokio::process::Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} starts ({e}); scripts/ensure-infra.sh installs it"));
    let url = format!("nats://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url, dir)
}

fn config(url: &str, auth: NatsAuth) -> BusConfig {
    BusConfig {
        auth,
        ..BusConfig::local(url, "credtest")
    }
}

#[tokio::test]
async fn a_server_requiring_credentials_admits_the_configured_ones_only() {
    let (mut child, url, dir) = server(&["--user", "dialer", "--pass", "s3cret-pw"]).await;
    assert!(
        Bus::connect(&config(&url, NatsAuth::None)).await.is_err(),
        "no credentials: refused"
    );
    let wrong = Bus::connect(&config(
        &url,
        NatsAuth::UserPassword {
            user: "dialer".into(),
            password: "guess".into(),
        },
    ))
    .await
    .err()
    .expect("a wrong password: refused");
    assert!(!wrong.to_string().contains("guess"), "{wrong}");
    let bus = Bus::connect(&config(
        &url,
        NatsAuth::UserPassword {
            user: "dialer".into(),
            password: "s3cret-pw".into(),
        },
    ))
    .await
    .expect("its own user connects");
    assert!(bus.last_sequence().await.is_ok());
    // Credentials in the URL are never shown.
    let in_url = url.replace("nats://", "nats://dialer:wrong-pw@");
    let e = Bus::connect(&BusConfig::local(in_url, "credtest"))
        .await
        .err()
        .expect("refused");
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    child.kill().await.expect("stop");
    let _ = std::fs::remove_dir_all(dir);

    let (mut child, url, dir) = server(&["--auth", "record-token-0123"]).await;
    assert!(Bus::connect(&config(&url, NatsAuth::Token("nope".into())))
        .await
        .is_err());
    Bus::connect(&config(&url, NatsAuth::Token("record-token-0123".into())))
        .await
        .expect("its own token connects");
    child.kill().await.expect("stop");
    let _ = std::fs::remove_dir_all(dir);
}
