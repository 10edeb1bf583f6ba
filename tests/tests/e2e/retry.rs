//! Recalls by hangup cause through the real services: busy numbers get their own tries, no
//! answer its own, temporary failures the task's default, and a refusal is retried only when
//! the task says so. The counts per number must equal those computed from the simulator's
//! outcomes alone.

use std::time::Duration;

use tonic::Code;
use waihu_e2e::*;
use waihu_events::pb;
use waihu_provider::sim::Outcome;

fn rule(causes: &[u32], tries: u32) -> pb::RetryRule {
    pb::RetryRule {
        causes: causes.to_vec(),
        tries,
        interval_seconds: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cause_gets_its_own_tries_and_rejected_is_retried_only_when_asked() {
    let sim = fast_sim(4242);
    let cluster = Cluster::start(sim.clone(), one_line(200)).await;
    let mut tasks = cluster.tasks().await;

    // A rule naming a cause that is never worth retrying is refused, naming the field.
    let bad = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(pb::TaskSpec {
                retry: Some(pb::RetryPolicy {
                    rules: vec![rule(&[17], 1), rule(&[1], 2)],
                    retry_rejected: false,
                }),
                ..spec("bad", 0, 0)
            }),
        })
        .await
        .expect_err("unallocated is not retryable");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("spec.retry.rules[1].causes"),
        "{}",
        bad.message()
    );

    for (n, retry_rejected) in [(0u32, false), (1, true)] {
        let phones = phones(400, 3 + n);
        // Busy 3 more calls, no answer 1, rejected 2 when retried, the rest the default 0.
        let mut rules = vec![rule(&[17], 3), rule(&[18, 19], 1)];
        if retry_rejected {
            rules.push(rule(&[21], 2));
        }
        let spec = pb::TaskSpec {
            retry: Some(pb::RetryPolicy {
                rules,
                retry_rejected,
            }),
            ..spec("by cause", 0, 0)
        };
        let task_id = create_with_contacts(&mut tasks, spec, &phones).await;
        run_to_completion(&mut tasks, &task_id, Duration::from_secs(120)).await;
        let stats = wait_stats_settled(&cluster, &task_id, 400, Duration::from_secs(60)).await;
        let want = expected_with(&sim, &e164(&phones), |o| match o {
            Outcome::Busy => Some(3),
            Outcome::NoAnswer { .. } => Some(1),
            Outcome::Rejected { .. } if retry_rejected => Some(2),
            _ => Some(0),
        });
        assert_stats_match(&stats, &want);
        assert_eq!(calls_per_number(&cluster, &task_id).await, want.attempts);
        // The rules did something: some number was called four times, and (when asked) some
        // refusal was called again.
        assert_eq!(want.max_attempts, 4, "{want:?}");
        let recalled_after_refusal = want
            .attempts
            .iter()
            .any(|(p, n)| *n > 1 && matches!(sim.outcome(p, 1), Outcome::Rejected { .. }));
        assert_eq!(recalled_after_refusal, retry_rejected);
    }
    cluster.shutdown().await;
}
