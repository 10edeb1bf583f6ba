//! Live statistics: every projections commit sends a PostgreSQL notification naming the tasks it
//! changed ([`crate::projection::CHANGED_CHANNEL`]). One listener per record service process
//! (every replica, whichever leads the projections) fans the notices out to the WatchTaskStats
//! streams it serves, which read the task's statistics again and send them when they changed.

use std::{sync::Arc, time::Duration};

use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::warn;
use uuid::Uuid;
use waihu_proto::v1 as pb;

use crate::{grpc, projection};

pub type StatsStream = ReceiverStream<Result<pb::TaskStats, Status>>;

/// One projections commit: the tasks it changed (None: any).
#[derive(Debug, Clone)]
pub struct Notice {
    pub tasks: Option<Vec<Uuid>>,
}

impl Notice {
    fn touches(&self, task: Uuid) -> bool {
        self.tasks.as_ref().is_none_or(|t| t.contains(&task))
    }
}

/// The fan-out of change notices to the watchers of this process.
#[derive(Clone)]
pub struct Changes {
    tx: broadcast::Sender<Arc<Notice>>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            tx: broadcast::channel(1024).0,
        }
    }
}

/// How long a watcher gathers notices before reading (commits come in bursts).
const GATHER: Duration = Duration::from_millis(50);
/// A watcher reads again at least this often, notices or not (a listener reconnecting may miss
/// some).
const FALLBACK: Duration = Duration::from_secs(5);

impl Changes {
    /// Listens on the database until `stop`; reconnects after a failure (the watchers then
    /// catch up by their fallback reads).
    pub async fn listen(self, pool: PgPool, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(e) = self.listen_once(&pool, &stop).await {
                warn!(error = %e, "statistics change listener failed; reconnecting");
                // Whatever was missed: every watcher reads again.
                let _ = self.tx.send(Arc::new(Notice { tasks: None }));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    async fn listen_once(
        &self,
        pool: &PgPool,
        stop: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(projection::CHANGED_CHANNEL).await?;
        loop {
            let n = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = listener.recv() => n?,
            };
            let tasks = projection::parse_notice(n.payload());
            // No receiver is not an error: nobody is watching.
            let _ = self.tx.send(Arc::new(Notice { tasks }));
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.tx.subscribe()
    }
}

/// Streams `task`'s statistics: now, after every change, and a last snapshot (`ended`) once the
/// task has ended. The caller has checked the task is the tenant's.
pub fn watch(pool: PgPool, changes: &Changes, task: Uuid) -> StatsStream {
    let (tx, rx) = mpsc::channel(16);
    let mut notices = changes.subscribe();
    tokio::spawn(async move {
        let mut last: Option<pb::TaskStats> = None;
        loop {
            let stats = match grpc::read_stats(&pool, task).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            let ended = stats.ended;
            // Positions move with every commit; only a change of the numbers is news.
            let same = last.as_ref().is_some_and(|l| {
                let mut a = l.clone();
                a.as_of_position = stats.as_of_position;
                a == stats
            });
            if !same || ended {
                if tx.send(Ok(stats.clone())).await.is_err() {
                    return;
                }
                last = Some(stats);
            }
            if ended {
                return;
            }
            // Wait for a notice about this task (or the fallback), then gather the burst.
            let deadline = tokio::time::sleep(FALLBACK);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = &mut deadline => break,
                    n = notices.recv() => match n {
                        Ok(n) if n.touches(task) => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
            tokio::time::sleep(GATHER).await;
            while notices.try_recv().is_ok() {}
        }
    });
    ReceiverStream::new(rx)
}
