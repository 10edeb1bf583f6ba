use std::{net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;

/// A gRPC router behind the request metrics and the authentication layer (what every waihu
/// server serves).
pub type Routes = Router<
    tower::layer::util::Stack<
        waihu_auth::AuthLayer,
        tower::layer::util::Stack<crate::metrics::GrpcMetricsLayer, tower::layer::util::Identity>,
    >,
>;
use tonic_health::{server::HealthReporter, ServingStatus};
use tracing::info;

use crate::{Health, Workers};

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
        router: Routes,
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

    /// Waits for the server to finish (its stop token must be cancelled), until `deadline`.
    pub async fn join_until(self, deadline: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(deadline, self.handle).await;
    }
}

/// Whether the service at `addr` answers `grpc.health.v1.Health/Check` (service "") with
/// SERVING within half a second: what the CLI and the benchmark wait on before using a service.
pub async fn is_serving(addr: &str) -> bool {
    use tonic_health::pb::{
        health_check_response::ServingStatus as S, health_client::HealthClient, HealthCheckRequest,
    };
    let wait = Duration::from_millis(500);
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(addr.to_string()) else {
        return false;
    };
    let Ok(Ok(channel)) = tokio::time::timeout(wait, endpoint.connect()).await else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    matches!(
        tokio::time::timeout(wait, check).await,
        Ok(Ok(r)) if r.get_ref().status == S::Serving as i32
    )
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
    /// Where `/metrics` is served (None when `metrics_addr` is off).
    pub metrics_addr: Option<SocketAddr>,
    server: GrpcServer,
    server_stop: CancellationToken,
    shutdown: CancellationToken,
    workers: tokio::task::JoinSet<()>,
    workers_stop: CancellationToken,
    health: Health,
    grace: Duration,
}

impl ServiceHandle {
    /// Serves `router` and runs `workers`; everything stops when `shutdown` is cancelled. Health
    /// follows the workers' [`Health`]: NOT_SERVING while a required part is down.
    pub async fn start(
        router: Routes,
        listener: TcpListener,
        reporter: HealthReporter,
        workers: Workers,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> std::io::Result<ServiceHandle> {
        let server_stop = CancellationToken::new();
        let server =
            GrpcServer::start(router, listener, reporter.clone(), server_stop.clone()).await?;
        let Workers { set, stop, health } = workers;
        let mut changes = health.subscribe();
        let until = server_stop.clone();
        tokio::spawn(async move {
            loop {
                let serving = changes.borrow_and_update().is_empty();
                if until.is_cancelled() {
                    return;
                }
                let status = if serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                tokio::select! {
                    _ = until.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(ServiceHandle {
            addr: server.addr,
            metrics_addr: None,
            server,
            server_stop,
            shutdown,
            workers: set,
            workers_stop: stop,
            health,
            grace,
        })
    }

    /// The parts of this service that are down, with why (empty when serving).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Waits for the shutdown signal, then drains within one grace period: NOT_SERVING first,
    /// in-flight requests finished, then the workers told to stop (so what those requests
    /// committed is still handed on) and given what is left of the grace period.
    pub async fn wait(mut self) {
        self.shutdown.cancelled().await;
        info!("draining");
        let deadline = tokio::time::Instant::now() + self.grace;
        self.server.not_serving().await;
        self.server_stop.cancel();
        self.server.join_until(deadline).await;
        self.workers_stop.cancel();
        let drained = tokio::time::timeout_at(deadline, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?self.grace, "workers did not stop within the grace period; aborting them");
            self.workers.abort_all();
        }
        info!("stopped");
    }

    /// Stops everything at once, as a crash would (tests use this).
    pub fn abort(mut self) {
        self.workers_stop.cancel();
        self.workers.abort_all();
        self.server.handle.abort();
    }
}
