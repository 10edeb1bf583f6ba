//! No phone number, token or key in any log line: a campaign runs with every waihu log at
//! debug level captured, then the capture is searched for the list's numbers (as typed and in
//! E.164), the bearer token a client sent, and the signing key.

use std::time::Duration;

use tonic::Request;
use waihu_auth::{AuthConfig, Claims, Keys, ALL_PERMISSIONS};
use waihu_e2e::*;
use waihu_events::pb;
use waihu_runtime::CommonConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_phone_number_token_or_key() {
    let capture = Capture::install("debug,h2=info,hyper=info,tower=info,sqlx=info,async_nats=info");

    let cluster = Cluster::start(fast_sim(21), one_line(20)).await;
    let keys = Keys::load(&AuthConfig::with_hs256(CommonConfig::TEST_KEY)).expect("keys");
    let token = keys
        .mint(&Claims::new("default", "ann", ALL_PERMISSIONS, 600))
        .expect("mint");

    let mut tasks = cluster.tasks().await;
    let list = phones(40, 3);
    let task_id = create_with_contacts(&mut tasks, spec("logged", 1, 0), &list).await;
    // Some requests carry a token, one a bad one (refused and logged as such).
    let mut req = Request::new(pb::TaskRef {
        task_id: task_id.clone(),
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    tasks.get_task(req).await.expect("with a token");
    let mut bad = Request::new(pb::TaskRef {
        task_id: task_id.clone(),
    });
    let forged = format!("{token}x");
    bad.metadata_mut().insert(
        "authorization",
        format!("Bearer {forged}").parse().expect("ascii"),
    );
    assert!(tasks.get_task(bad).await.is_err());
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(60)).await;
    wait_stats_settled(&cluster, &task_id, 40, Duration::from_secs(60)).await;
    cluster.shutdown().await;

    let logs = capture.text();
    assert!(
        logs.lines().count() > 20,
        "the capture holds the services' logs ({} lines)",
        logs.lines().count()
    );
    // Calls are logged, with the number masked.
    let masked = waihu_telephony::phone::mask(&e164(&list)[0]);
    assert!(
        logs.lines()
            .any(|l| l.contains("placing a call") && l.contains(&masked)),
        "a call is logged with its number masked as {masked}"
    );
    let mut found = Vec::new();
    for p in list.iter().chain(e164(&list).iter()) {
        // The national part alone is the number too.
        let national = p.trim_start_matches("+86");
        if let Some(line) = logs.lines().find(|l| l.contains(national)) {
            found.push(format!("phone {p}: {line}"));
        }
    }
    for (what, secret) in [
        ("token", token.as_str()),
        ("forged token", forged.as_str()),
        ("signing key", CommonConfig::TEST_KEY),
    ] {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            found.push(format!("{what}: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "secrets in the logs:\n{}",
        found.join("\n")
    );
}
