//! Provider campaigns (seed 001) end to end, on any provider with a campaign API: one driver
//! takes a campaign-mode task through start, a pause midway (nothing is called while paused),
//! resume, a kill of the provider adapter in the middle of a sync (with the running campaign's
//! record of creation lost as well, so the restart must find it by name), and completion, and checks
//! what must hold whatever the provider: every campaign done, at least two roll-overs, no
//! contact handed over twice, each call's events once each.

use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;
use waihu_events::{pb, Aggregate};

use crate::{start, wait_stats, wait_status, Cluster};

/// A campaign of the task as the adapter keeps it: (id, state, calls, synced).
pub type CampaignRow = (Uuid, i16, i32, i32);

/// The task's provider campaigns, oldest first.
pub async fn campaigns_of(cluster: &Cluster, task: &str) -> Vec<CampaignRow> {
    sqlx::query_as(
        "SELECT campaign_id, state, calls, synced FROM provider.provider_campaigns
         WHERE task_id = $1::uuid ORDER BY created_at, campaign_id",
    )
    .bind(task)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("campaigns")
}

async fn wait_campaign_state(cluster: &Cluster, task: &str, state: pb::CampaignState) -> Uuid {
    waihu_testkit::eventually(
        Duration::from_secs(60),
        &format!("a campaign of {task} to be {state:?}"),
        || async {
            campaigns_of(cluster, task)
                .await
                .into_iter()
                .find(|c| c.1 == state as i16)
                .map(|c| c.0)
        },
    )
    .await
}

/// What [`drive`] saw.
pub struct Driven {
    pub campaigns: Vec<CampaignRow>,
    /// Calls released before the pause, and still after 2.5 s more of it.
    pub released_paused: u64,
    /// Calls not marked synced when the adapter died whose events were published before it
    /// died: the kill came in the middle of a sync (they were published again after the
    /// restart, and must not show twice).
    pub published_unmarked: i64,
}

/// Starts campaign-mode task `task` and takes it to completion through a pause, a resume and a
/// kill of the adapter mid-sync; returns the task's campaigns once it completed.
pub async fn drive(cluster: &mut Cluster, task: &str, first_campaign: u64) -> Driven {
    let mut tasks = cluster.tasks().await;
    start(&mut tasks, task).await;
    // Pause midway through the first campaign.
    let first = wait_campaign_state(cluster, task, pb::CampaignState::Running).await;
    wait_stats(
        cluster,
        task,
        "the first results synced",
        Duration::from_secs(60),
        |s| s.calls_released >= 50,
    )
    .await;
    tasks
        .pause_task(pb::TaskRef {
            task_id: task.into(),
        })
        .await
        .expect("pause");
    assert_eq!(
        wait_campaign_state(cluster, task, pb::CampaignState::Paused).await,
        first
    );
    // Calls started before the pause end and are synced (however long that takes on a busy
    // machine, within 30 s); then nothing moves.
    let settle_by = tokio::time::Instant::now() + Duration::from_secs(30);
    let counts = |s: &pb::TaskStats| (s.calls_placed, s.calls_released);
    let mut before = wait_stats(cluster, task, "stats", Duration::from_secs(10), |_| true).await;
    loop {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let now = wait_stats(cluster, task, "stats", Duration::from_secs(10), |_| true).await;
        if counts(&now) == counts(&before) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < settle_by,
            "calls still placed or released 30 s after the pause: {:?} -> {:?}",
            counts(&before),
            counts(&now)
        );
        before = now;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = wait_stats(cluster, task, "stats", Duration::from_secs(10), |_| true).await;
    assert_eq!(
        counts(&after),
        counts(&before),
        "nothing is called while the task is paused"
    );
    assert!(
        before.calls_released < first_campaign,
        "paused midway through the first campaign ({} released)",
        before.calls_released
    );
    // Resume, and kill the adapter as soon as a sync publishes a call's events.
    let subject = cluster
        .env
        .bus
        .subject(&Aggregate::Call(Uuid::nil()))
        .replace(&Uuid::nil().to_string(), "*");
    let mut sub = cluster
        .env
        .bus
        .client()
        .subscribe(subject)
        .await
        .expect("subscribe");
    cluster.env.bus.client().flush().await.expect("flush");
    tasks
        .resume_task(pb::TaskRef {
            task_id: task.into(),
        })
        .await
        .expect("resume");
    let heard = tokio::time::timeout(Duration::from_secs(60), sub.next())
        .await
        .expect("a sync publishes within a minute");
    assert!(heard.is_some());
    cluster.kill_provider();
    let killed_at = chrono::Utc::now();
    drop(sub);
    let unsynced: Vec<String> = sqlx::query_scalar(
        "SELECT 'call-' || c.call_id FROM provider.provider_campaign_calls c
         JOIN provider.provider_campaigns p USING (campaign_id)
         WHERE p.task_id = $1::uuid AND NOT c.synced",
    )
    .bind(task)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("unsynced");
    // As if the adapter had also died between creating a campaign at the provider and
    // recording it: the running campaign goes back to its intent, without its reference. The
    // restarted adapter must find it by name, not create a second one.
    let rewound = sqlx::query(
        "UPDATE provider.provider_campaigns SET state = 1, provider_ref = '', create_sent = true
         WHERE task_id = $1::uuid AND state = 2",
    )
    .bind(task)
    .execute(&cluster.env.pool)
    .await
    .expect("rewind")
    .rows_affected();
    assert_eq!(rewound, 1, "one campaign was running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_provider().await;
    wait_status(
        &mut tasks,
        task,
        pb::TaskStatus::Completed,
        Duration::from_secs(240),
    )
    .await;
    let published_unmarked: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT stream_id) FROM events
         WHERE stream_id = ANY($1) AND event_type = 'CallDialing' AND occurred_at < $2",
    )
    .bind(&unsynced)
    .bind(killed_at)
    .fetch_one(&cluster.env.pool)
    .await
    .expect("published before the kill");
    Driven {
        campaigns: campaigns_of(cluster, task).await,
        released_paused: after.calls_released,
        published_unmarked,
    }
}

/// Asserts what must hold of a completed campaign-mode task whose contacts got `attempts`
/// calls each (by E.164 number) and `placed` calls in all: every campaign done and its calls
/// all synced; at least three campaigns (two roll-overs); each contact's calls handed over once
/// per attempt, as many as it got.
pub async fn assert_handed_over_once(
    cluster: &Cluster,
    task: &str,
    driven: &Driven,
    attempts: &std::collections::BTreeMap<String, u32>,
    placed: u64,
) {
    let c = &driven.campaigns;
    assert!(c.len() >= 3, "two roll-overs at least: {c:?}");
    for (id, state, calls, synced) in c {
        assert_eq!(
            (*state, synced),
            (pb::CampaignState::Done as i16, calls),
            "campaign {id}"
        );
    }
    let handed: i64 = c.iter().map(|x| x.2 as i64).sum();
    assert_eq!(handed as u64, placed, "calls handed over = calls placed");
    let twice: Vec<(i32, i32, i64)> = sqlx::query_as(
        "SELECT c.contact_no, c.attempt, count(*) FROM provider.provider_campaign_calls c
         JOIN provider.provider_campaigns p USING (campaign_id)
         WHERE p.task_id = $1::uuid GROUP BY 1, 2 HAVING count(*) > 1",
    )
    .bind(task)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("handed over");
    assert!(twice.is_empty(), "handed over twice: {twice:?}");
    let per_phone: Vec<(String, i64, i32)> = sqlx::query_as(
        "SELECT c.phone, count(*), max(c.attempt) FROM provider.provider_campaign_calls c
         JOIN provider.provider_campaigns p USING (campaign_id)
         WHERE p.task_id = $1::uuid GROUP BY 1",
    )
    .bind(task)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("per phone");
    assert_eq!(per_phone.len(), attempts.len(), "every contact handed over");
    for (phone, n, max) in per_phone {
        let want = attempts.get(&phone).copied().unwrap_or(0);
        assert_eq!((n as u32, max as u32), (want, want), "{phone}");
    }
}
