//! Do-not-call lists through the real services: a listed number is never dialed (again), its
//! contact finishes as DO_NOT_CALL, the task still completes; the tenant's list is its own and
//! the global one holds for everyone.

use std::time::Duration;

use tonic::Code;
use waihu_e2e::*;
use waihu_events::pb;
use waihu_provider::sim::Outcome;

fn numbers(phones: &[String]) -> pb::DoNotCallRequest {
    pb::DoNotCallRequest {
        phones: phones.to_vec(),
        reason: "asked not to be called".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_numbers_are_never_dialed_and_finish_as_do_not_call() {
    let sim = fast_sim(61);
    let cluster = Cluster::start(sim.clone(), one_line(10)).await;
    let mut dialer = cluster.dialer().await;
    let list = phones(30, 21);
    let e164s = e164(&list);

    // The tenant lists three numbers (one written as a mainland number, one twice); the
    // operator lists one globally; another tenant lists one for itself only.
    let mine = vec![
        list[0].clone(),
        e164s[1].clone(),
        e164s[2].clone(),
        list[2].clone(),
    ];
    let r = dialer
        .add_do_not_call(numbers(&mine))
        .await
        .expect("tenant list")
        .into_inner();
    assert_eq!((r.changed, r.unchanged, r.rejected_total), (3, 0, 0));
    dialer
        .add_global_do_not_call(as_tenant(
            waihu_auth::keys::DEFAULT_OPERATOR_TENANT,
            numbers(&[e164s[3].clone()]),
        ))
        .await
        .expect("global list");
    dialer
        .add_do_not_call(as_tenant("other", numbers(&[e164s[4].clone()])))
        .await
        .expect("another tenant's list");
    // Bad entries are reported, the rest go ahead; a bad check names its field.
    let r = dialer
        .add_do_not_call(numbers(&["12".into(), e164s[0].clone()]))
        .await
        .expect("partly bad")
        .into_inner();
    assert_eq!((r.changed, r.unchanged, r.rejected_total), (0, 1, 1));
    let e = dialer
        .check_do_not_call(pb::CheckDoNotCallRequest { phone: "x".into() })
        .await
        .expect_err("bad phone");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("phone"), "{}", e.message());
    // A tenant may not change the global list.
    let e = dialer
        .add_global_do_not_call(numbers(&[e164s[5].clone()]))
        .await
        .expect_err("not an operator");
    assert_eq!(e.code(), Code::PermissionDenied);
    let check = |p: &str| pb::CheckDoNotCallRequest { phone: p.into() };
    let c = dialer
        .check_do_not_call(check(&list[3]))
        .await
        .expect("check")
        .into_inner();
    assert_eq!((c.listed, c.scope.as_str()), (true, "global"));
    let c = dialer
        .check_do_not_call(check(&e164s[4]))
        .await
        .expect("check")
        .into_inner();
    assert!(!c.listed, "another tenant's entry is its own");

    // A number busy on its first call, to be listed between its calls.
    let later = (5..30)
        .find(|i| matches!(sim.outcome(&e164s[*i], 1), Outcome::Busy))
        .expect("a busy number");
    let mut tasks = cluster.tasks().await;
    let t = create_with_contacts(&mut tasks, spec("dnc", 3, 2), &list).await;
    start(&mut tasks, &t).await;
    waihu_testkit::eventually(Duration::from_secs(30), "its first call", || {
        let (c, t, p) = (&cluster, t.clone(), e164s[later].clone());
        async move { calls_per_number(c, &t).await.contains_key(&p).then_some(()) }
    })
    .await;
    dialer
        .add_do_not_call(numbers(&[e164s[later].clone()]))
        .await
        .expect("listed mid-campaign");

    wait_status(
        &mut tasks,
        &t,
        pb::TaskStatus::Completed,
        Duration::from_secs(60),
    )
    .await;
    let calls = calls_per_number(&cluster, &t).await;
    let got = contact_outcomes(&cluster, &t).await;
    let dnc = pb::ContactOutcome::DoNotCall as i32;
    for p in &e164s[..4] {
        assert!(
            !calls.contains_key(p),
            "{p} was listed before the task and never called"
        );
        assert_eq!(got[p], dnc, "{p}");
    }
    assert_eq!(
        calls.get(&e164s[later]),
        Some(&1),
        "no call after it was listed"
    );
    assert_eq!(got[&e164s[later]], dnc);
    assert!(
        calls.contains_key(&e164s[4]),
        "the other tenant's entry does not hold here"
    );
    assert_eq!(
        got.values().filter(|o| **o == dnc).count(),
        5,
        "exactly the listed numbers: {got:?}"
    );

    // Off the list again.
    let r = dialer
        .remove_do_not_call(numbers(&[e164s[0].clone(), e164s[9].clone()]))
        .await
        .expect("removed")
        .into_inner();
    assert_eq!((r.changed, r.unchanged), (1, 1));
    cluster.shutdown().await;
}
