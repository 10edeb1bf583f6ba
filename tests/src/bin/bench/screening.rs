//! `screening_throughput`: numbers per second through all three screening jobs (seed 004) on
//! the simulator's batch API, from the CreateScreening stream to the job's completion, with
//! the services of a cluster in this process (results ready at once: the provider's own time
//! is not measured).

use std::time::{Duration, Instant};

use waihu_e2e::*;
use waihu_events::pb;
use waihu_testkit::TestEnv;

pub struct Screening {
    pub numbers: u32,
    pub create_s: f64,
    pub total_s: f64,
    pub batches: u32,
    pub invalid: u32,
}

pub async fn run(numbers: usize, batch_size: u32) -> Result<Screening, String> {
    let env = TestEnv::new().await;
    let cluster = Cluster::start_tuned(
        env,
        fast_sim(5),
        one_line(10),
        true,
        Duration::from_secs(7200),
        |c| {
            c.sim_screening_delay = Duration::ZERO;
            c.screening.poll = Duration::from_millis(20);
        },
    )
    .await;
    let list = phones(numbers, 6);
    let msgs: Vec<pb::CreateScreeningRequest> = list
        .chunks(10_000)
        .enumerate()
        .map(|(i, c)| pb::CreateScreeningRequest {
            line_id: if i == 0 {
                "sim-1".into()
            } else {
                String::new()
            },
            batch_size,
            phones: c.to_vec(),
            ..Default::default()
        })
        .collect();
    let t0 = Instant::now();
    let created = cluster
        .screening()
        .await
        .create_screening(tokio_stream::iter(msgs))
        .await
        .map_err(|e| format!("CreateScreening: {e}"))?
        .into_inner();
    let create_s = t0.elapsed().as_secs_f64();
    let mut s = cluster.screening().await;
    let done = loop {
        let j = s
            .get_screening(pb::GetScreeningRequest {
                screening_id: created.screening_id.clone(),
            })
            .await
            .map_err(|e| format!("GetScreening: {e}"))?
            .into_inner();
        if j.status == pb::ScreeningStatus::Done as i32 {
            break j;
        }
        if j.status == pb::ScreeningStatus::Failed as i32 || t0.elapsed() > Duration::from_secs(900)
        {
            return Err(format!("the screening did not finish: {j:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let total_s = t0.elapsed().as_secs_f64();
    cluster.shutdown().await;
    Ok(Screening {
        numbers: done.total,
        create_s,
        total_s,
        batches: done.batches,
        invalid: done.invalid,
    })
}
