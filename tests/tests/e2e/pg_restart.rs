//! The services on a PostgreSQL server of the test's own, stopped mid-campaign and started again
//! a few seconds later, once by a fast shutdown (every connection cut, open transactions rolled
//! back) and once as a crash (immediate shutdown: the store writer's appends, committed without
//! waiting for the WAL flush, may be lost with the checkpoint that covers them): the services
//! recover by themselves, and the campaign completes with exactly the statistics the
//! simulator's outcomes say (nothing lost, nothing counted twice), every number called exactly
//! as often as the rules say, and a replay of the store equal to the live projections.

use std::time::Duration;

use waihu_e2e::{infra::PgServer, *};
use waihu_events::pb;
use waihu_testkit::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_postgresql_mid_campaign_leaves_the_statistics_exact() {
    restart_mid_campaign("pg-restarted", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_crashing_mid_campaign_leaves_the_statistics_exact() {
    restart_mid_campaign("pg-crashed", true).await;
}

async fn restart_mid_campaign(name: &str, crash: bool) {
    let pg = tokio::task::block_in_place(PgServer::start);
    let env = TestEnv::on_servers(&waihu_testkit::nats_url(), 1, &pg.url()).await;
    let sim = fast_sim(20260608);
    let cluster = Cluster::start_on(
        env,
        sim.clone(),
        one_line(200),
        true,
        Duration::from_secs(7200),
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let c = campaign_a_third_through(&cluster, &sim, name, 2000, 5, "PostgreSQL stops").await;
    eprintln!(
        "stopping PostgreSQL at {} calls placed, {} contacts finished",
        c.seen.calls_placed, c.seen.contacts_finished
    );
    tokio::task::block_in_place(|| if crash { pg.crash() } else { pg.stop() });
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| pg.start_again());

    wait_status(
        &mut tasks,
        &c.task,
        pb::TaskStatus::Completed,
        Duration::from_secs(180),
    )
    .await;
    c.assert_exact(&cluster).await;
    // Every service is whole again (no part left down after the restart).
    let problems: Vec<_> = cluster
        .problems()
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .collect();
    assert!(problems.is_empty(), "parts still down: {problems:?}");
    cluster.shutdown().await;
    drop(pg);
}
