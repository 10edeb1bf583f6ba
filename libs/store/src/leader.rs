use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Becomes the one active instance of `name` in this database: waits (as a hot standby) until a
/// session advisory lock is free, and holds it on the returned connection for as long as that
/// connection lives. `None` if `shutdown` fires first.
pub async fn leader_lock(
    database_url: &str,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<PgConnection> {
    let mut waiting_logged = false;
    loop {
        match PgConnection::connect(database_url).await {
            Ok(mut conn) => {
                let got: Result<bool, _> =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                        .bind(name)
                        .fetch_one(&mut conn)
                        .await;
                match got {
                    Ok(true) => {
                        info!(lock = name, "leading");
                        return Some(conn);
                    }
                    Ok(false) if !waiting_logged => {
                        info!(lock = name, "another instance leads; standing by");
                        waiting_logged = true;
                    }
                    Ok(false) => {}
                    Err(e) => warn!(lock = name, error = %e, "leader lock failed"),
                }
                let _ = conn.close().await;
            }
            Err(e) => warn!(lock = name, error = %e, "cannot connect for the leader lock"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs `work` while this instance holds the lock `name`, for as long as `shutdown` allows.
/// The lock's connection is checked every few seconds: if it is gone (a database restart ends
/// the session and frees the lock for a standby), the work is told to stop and the lock is
/// sought again. Work that ends by itself (a failure it could not ride out) is restarted the same
/// way, so a leader never sits idle while reporting healthy.
pub async fn while_leader<F, Fut>(
    database_url: &str,
    name: &str,
    shutdown: &CancellationToken,
    mut work: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while !shutdown.is_cancelled() {
        let Some(mut conn) = leader_lock(database_url, name, shutdown).await else {
            return;
        };
        let term = shutdown.child_token();
        let run = work(term.clone());
        tokio::pin!(run);
        let mut check = tokio::time::interval(Duration::from_secs(5));
        check.tick().await;
        loop {
            tokio::select! {
                _ = &mut run => break,
                _ = check.tick() => {
                    if let Err(e) = sqlx::query("SELECT 1").execute(&mut conn).await {
                        warn!(lock = name, error = %e, "leader lock lost; stopping until it is regained");
                        term.cancel();
                        (&mut run).await;
                        break;
                    }
                }
            }
        }
        let _ = conn.close().await;
        if !shutdown.is_cancelled() {
            warn!(lock = name, "leader work ended; seeking the lock again");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
