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
