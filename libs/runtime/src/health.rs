//! What a service reports on gRPC health: SERVING while every required part of it is up.
//! Background workers are supervised: a worker that fails or panics is restarted with backoff,
//! and the service reports NOT_SERVING, with the reason logged, until it runs again.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use tracing::{error, info, warn};

/// The parts of a service that are down, each with why. Cheap to clone; all clones share state.
#[derive(Clone, Default)]
pub struct Health {
    down: Arc<watch::Sender<BTreeMap<String, String>>>,
}

impl Health {
    pub fn new() -> Self {
        Health::default()
    }

    /// Marks `part` down for `reason` (logged once per change).
    pub fn down(&self, part: &str, reason: &str) {
        self.down.send_if_modified(|m| {
            if m.get(part).map(String::as_str) == Some(reason) {
                return false;
            }
            error!(part, reason, "not serving: a required part is down");
            m.insert(part.to_string(), reason.to_string());
            true
        });
    }

    /// Marks `part` up again.
    pub fn up(&self, part: &str) {
        self.down.send_if_modified(|m| {
            let was = m.remove(part).is_some();
            if was {
                info!(part, "required part is up again");
            }
            was
        });
    }

    /// Why each part that is down is down; empty when all is well.
    pub fn problems(&self) -> BTreeMap<String, String> {
        self.down.borrow().clone()
    }

    pub fn is_serving(&self) -> bool {
        self.down.borrow().is_empty()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<BTreeMap<String, String>> {
        self.down.subscribe()
    }
}

/// Runs `make()`'s future as the worker `part` until `stop`: whenever it returns (with an error,
/// or Ok before `stop`) or panics, `part` is marked down and the worker is started again after a
/// backoff (1 s doubling to 30 s, reset after a minute of running).
pub async fn supervise<F, Fut>(part: &'static str, health: Health, stop: CancellationToken, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut backoff = Duration::from_secs(1);
    while !stop.is_cancelled() {
        let started = tokio::time::Instant::now();
        // Aborted with the supervisor (a crash, or the end of the grace period), never detached.
        let outcome = AbortOnDropHandle::new(tokio::spawn(make())).await;
        if stop.is_cancelled() {
            return;
        }
        let reason = match outcome {
            Ok(Ok(())) => "stopped unexpectedly".to_string(),
            Ok(Err(e)) => e,
            Err(e) if e.is_panic() => "panicked".to_string(),
            Err(e) => format!("ended: {e}"),
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        health.down(part, &format!("{reason}; restarting in {backoff:?}"));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        warn!(part, "restarting worker");
        health.up(part);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_worker_is_restarted_and_reported_down_meanwhile() {
        let health = Health::new();
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let (r, s) = (runs.clone(), stop.clone());
        let task = tokio::spawn(supervise("w", health.clone(), stop.clone(), move || {
            let (r, s) = (r.clone(), s.clone());
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("poison");
                }
                s.cancelled().await;
                Ok(())
            }
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!health.is_serving(), "down while waiting to restart");
        assert!(health.problems()["w"].contains("panicked"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(health.is_serving(), "up once restarted");
        stop.cancel();
        task.await.expect("supervisor ends on stop");
    }
}
