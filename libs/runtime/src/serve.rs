use std::{net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;
use tonic_health::{server::HealthReporter, ServingStatus};
use tracing::info;

/// Binds a listener; port 0 picks a free port (tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => info!("SIGINT: shutting down"),
                _ = term.recv() => info!("SIGTERM: shutting down"),
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        t.cancel();
    });
    token
}

/// A running gRPC server with health reporting.
pub struct GrpcServer {
    pub addr: SocketAddr,
    health: HealthReporter,
    handle: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcServer {
    /// Serves `router` (which must include the health service of `health`) on `listener` until
    /// `stop` is cancelled.
    pub async fn start(
        router: Router,
        listener: TcpListener,
        health: HealthReporter,
        stop: CancellationToken,
    ) -> std::io::Result<GrpcServer> {
        let addr = listener.local_addr()?;
        health.set_service_status("", ServingStatus::Serving).await;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let handle = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        });
        Ok(GrpcServer {
            addr,
            health,
            handle,
        })
    }

    /// Reports NOT_SERVING so load balancers stop sending work.
    pub async fn not_serving(&self) {
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
    }

    /// Waits for the server to finish (its stop token must be cancelled), at most `grace`.
    pub async fn join(self, grace: Duration) {
        let _ = tokio::time::timeout(grace, self.handle).await;
    }
}

/// The health service and its reporter, for building a router.
pub fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// A running service: its gRPC server and background workers.
pub struct ServiceHandle {
    pub addr: SocketAddr,
    server: GrpcServer,
    server_stop: CancellationToken,
    shutdown: CancellationToken,
    workers: tokio::task::JoinSet<()>,
    grace: Duration,
}

impl ServiceHandle {
    /// Serves `router` and runs `workers`; everything stops when `shutdown` is cancelled.
    pub async fn start(
        router: Router,
        listener: TcpListener,
        health: HealthReporter,
        workers: tokio::task::JoinSet<()>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> std::io::Result<ServiceHandle> {
        let server_stop = CancellationToken::new();
        let server = GrpcServer::start(router, listener, health, server_stop.clone()).await?;
        Ok(ServiceHandle {
            addr: server.addr,
            server,
            server_stop,
            shutdown,
            workers,
            grace,
        })
    }

    /// Waits for the shutdown signal, then drains: NOT_SERVING first, in-flight requests finished,
    /// workers given `grace` to hand back or finish their work.
    pub async fn wait(mut self) {
        self.shutdown.cancelled().await;
        info!("draining");
        self.server.not_serving().await;
        self.server_stop.cancel();
        let grace = self.grace;
        self.server.join(grace).await;
        let drained = tokio::time::timeout(grace, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("workers did not stop within {grace:?}; aborting them");
            self.workers.abort_all();
        }
        info!("stopped");
    }

    /// Stops everything at once, as a crash would (tests use this).
    pub fn abort(mut self) {
        self.workers.abort_all();
        self.server.handle.abort();
    }
}
