//! The HTTP/JSON gateway: the seeds' REST APIs in front of the gRPC services, for the CRMs and
//! front ends that already call them. Requests carry the same bearer token as gRPC calls (it is
//! passed on as it is, so the services' own authentication and permission table decide); in
//! development mode `x-tenant-id` is passed on too.
//!
//! Built: seed 002's `/api/v1/lead-generation/call-tasks...` and `/call-records...` routes, seed
//! 000's `/api/caller/...` routes, seed 003's `/api/v1/calls/...` routes (call status, dialing
//! and work-phone devices built, line management answering 501 until it exists), and their
//! OpenAPI 3.1 document at `/openapi.json`.
//!
//! One route takes no token: the phone app's `POST /api/v1/calls/device/bind`, which carries the
//! one-time binding token of its QR code instead and is redirected (308) to the provider adapter
//! that serves it (see [`PUBLIC`]).

pub mod caller;
pub mod calls;
mod device;
pub mod lead;
mod qr;
mod reply;

use std::net::SocketAddr;

use axum::Router;
use tokio_util::sync::CancellationToken;
use waihu_runtime::{config::Layers, ConfigError};

pub use reply::{Envelope, Reply};

/// A route table: (method, path below the table's base, the permissions it needs: any one).
pub type RouteTable = &'static [(&'static str, &'static str, &'static [&'static str])];

/// The permissions of a route that takes no token at all: the guard lets every request through
/// to it. Only the phone app's binding uses it (the app has no user token; its one-time binding
/// token is checked by the provider adapter it is redirected to); a test keeps it that way.
pub const PUBLIC: &[&str] = &[];

/// Every HTTP route the gateway serves, as (method, full path).
pub fn routes() -> Vec<(&'static str, String)> {
    route_permissions()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect()
}

/// Every HTTP route with the permissions it needs (any one), as (method, full path, them).
pub fn route_permissions() -> Vec<(&'static str, String, &'static [&'static str])> {
    [
        (lead::BASE, lead::ROUTES),
        (caller::BASE, caller::ROUTES),
        (calls::BASE, calls::ROUTES),
    ]
    .iter()
    .flat_map(|(base, table)| {
        table
            .iter()
            .map(move |(m, p, perms)| (*m, format!("{base}{p}"), *perms))
    })
    .collect()
}

/// `router` with every route of `table` (below `base`) guarded: a request without a valid
/// token (401) or without one of its route's permissions (403) is refused, in `envelope`,
/// before the route reads anything of it.
pub(crate) fn guarded(
    router: Router<Backends>,
    b: Backends,
    base: &'static str,
    table: RouteTable,
    envelope: Envelope,
) -> Router<Backends> {
    router.route_layer(axum::middleware::from_fn_with_state(
        Guard {
            backends: b,
            base,
            table,
            envelope,
        },
        admit,
    ))
}

#[derive(Clone)]
struct Guard {
    backends: Backends,
    base: &'static str,
    table: RouteTable,
    envelope: Envelope,
}

async fn admit(
    axum::extract::State(g): axum::extract::State<Guard>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = req.method().as_str();
    let wanted = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .and_then(|p| p.as_str().strip_prefix(g.base))
        .and_then(|p| g.table.iter().find(|(m, r, _)| *m == method && *r == p))
        .map(|(_, _, perms)| *perms);
    let Some(wanted) = wanted else {
        return next.run(req).await;
    };
    if wanted.is_empty() {
        // [`PUBLIC`]: the route checks what it needs itself.
        return next.run(req).await;
    }
    let what = format!("{method} {}", req.uri().path());
    match g.backends.auth.admit(&what, req.headers(), wanted) {
        Ok(_) => next.run(req).await,
        Err(s) => Reply::from_status(&s)
            .in_envelope(g.envelope)
            .into_response(),
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where it listens (`WAIHU_HTTP_ADDR`, default `0.0.0.0:8080`).
    pub http_addr: SocketAddr,
    /// Where `/metrics` is served (`metrics_addr`; default `0.0.0.0:9080`, `off` for none).
    pub metrics_addr: Option<SocketAddr>,
    /// The task service (`[gateway] task_addr`, default `http://127.0.0.1:50051`).
    pub task_addr: String,
    /// The record service (`[gateway] record_addr`, default `http://127.0.0.1:50054`).
    pub record_addr: String,
    /// The dialer (`[gateway] dialer_addr`, default `http://127.0.0.1:50052`): click-to-dial.
    pub dialer_addr: String,
    /// The provider adapter (`[gateway] provider_addr`, default `http://127.0.0.1:50053`):
    /// work-phone devices.
    pub provider_addr: String,
    /// The provider adapter's HTTP server as the phone app reaches it (`[gateway]
    /// provider_public_url`, default `http://127.0.0.1:8053`, no trailing `/`): the app's
    /// `POST /api/v1/calls/device/bind` sent here is redirected there.
    pub provider_public_url: String,
    /// Token checking, as the services do it (`[auth]`): the gateway refuses a request without
    /// a valid token or the route's permission before looking at it.
    pub auth: waihu_auth::AuthConfig,
}

#[derive(serde::Deserialize)]
#[serde(default)]
struct Section {
    task_addr: String,
    record_addr: String,
    dialer_addr: String,
    provider_addr: String,
    provider_public_url: String,
}

impl Default for Section {
    fn default() -> Self {
        Section {
            task_addr: "http://127.0.0.1:50051".into(),
            record_addr: "http://127.0.0.1:50054".into(),
            dialer_addr: "http://127.0.0.1:50052".into(),
            provider_addr: "http://127.0.0.1:50053".into(),
            provider_public_url: "http://127.0.0.1:8053".into(),
        }
    }
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process()?)
    }

    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let s: Section = layers.section("gateway")?;
        for (key, v) in [
            ("gateway.task_addr", &s.task_addr),
            ("gateway.record_addr", &s.record_addr),
            ("gateway.dialer_addr", &s.dialer_addr),
            ("gateway.provider_addr", &s.provider_addr),
        ] {
            if tonic::transport::Endpoint::from_shared(v.clone()).is_err() {
                return Err(ConfigError::invalid(key, format!("{v:?} is not a URL")));
            }
        }
        Ok(GatewayConfig {
            http_addr: layers.http_addr(8080)?,
            metrics_addr: layers.metrics_addr(8080)?,
            task_addr: s.task_addr,
            record_addr: s.record_addr,
            dialer_addr: s.dialer_addr,
            provider_addr: s.provider_addr,
            provider_public_url: public_url(&s.provider_public_url)
                .map_err(|why| ConfigError::invalid("gateway.provider_public_url", why))?,
            auth: layers.section("auth")?,
        })
    }
}

/// An absolute http(s) URL without a trailing `/`, paths to append to.
fn public_url(v: &str) -> Result<String, String> {
    let bad = || format!("{v:?} is not an http:// or https:// URL");
    let uri: axum::http::Uri = v.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
        return Err(bad());
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// The clients the routes call, connected lazily (a service that is down gives 503, not a
/// gateway that will not start).
#[derive(Clone)]
pub struct Backends {
    pub task: tonic::transport::Channel,
    pub record: tonic::transport::Channel,
    pub dialer: tonic::transport::Channel,
    pub provider: tonic::transport::Channel,
    /// [`GatewayConfig::provider_public_url`].
    pub provider_public_url: std::sync::Arc<str>,
    pub auth: waihu_auth::AuthLayer,
}

impl Backends {
    pub fn new(config: &GatewayConfig) -> Result<Self, waihu_runtime::StartError> {
        let lazy = |addr: &str| {
            tonic::transport::Endpoint::from_shared(addr.to_string()).map(|e| {
                e.connect_timeout(std::time::Duration::from_secs(3))
                    .connect_lazy()
            })
        };
        Ok(Backends {
            task: lazy(&config.task_addr)?,
            record: lazy(&config.record_addr)?,
            dialer: lazy(&config.dialer_addr)?,
            provider: lazy(&config.provider_addr)?,
            provider_public_url: config.provider_public_url.as_str().into(),
            auth: waihu_auth::AuthLayer::from_config(&config.auth)?,
        })
    }
}

/// The OpenAPI 3.1 document of the routes, as committed (`services/gateway/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route.
pub fn router(backends: Backends) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
        .merge(lead::routes(backends.clone()))
        .merge(caller::routes(backends.clone()))
        .merge(calls::routes(backends.clone()))
        .fallback(|| async { Reply::error(axum::http::StatusCode::NOT_FOUND, "no such route") })
        .with_state(backends)
}

/// A running gateway.
pub struct GatewayHandle {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl GatewayHandle {
    /// Waits until the server has stopped (after `shutdown` and the requests in flight).
    pub async fn wait(self) -> std::io::Result<()> {
        self.join.await.unwrap_or(Ok(()))
    }
}

/// Binds and serves until `shutdown`.
pub async fn start(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<GatewayHandle, waihu_runtime::StartError> {
    let backends = Backends::new(&config)?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let mut metrics_addr = None;
    if let Some(a) = config.metrics_addr {
        let l = waihu_runtime::metrics::bind(a).await?;
        metrics_addr = l.local_addr().ok();
        tokio::spawn(waihu_runtime::metrics::serve(l, shutdown.clone()));
    }
    let app = router(backends).layer(axum::middleware::from_fn(waihu_runtime::metrics::http));
    let join = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    });
    Ok(GatewayHandle {
        addr,
        metrics_addr,
        join,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = std::collections::BTreeSet::new();
        let mut tokenless = std::collections::BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("operations") {
                documented.insert((method.to_uppercase(), path.clone()));
                let responses = op["responses"].as_object().expect("responses");
                if op["security"] == serde_json::json!([]) {
                    tokenless.insert((method.to_uppercase(), path.clone()));
                } else {
                    assert!(responses.contains_key("401"), "{method} {path}: 401");
                }
                for r in responses.values() {
                    assert!(
                        r["content"]["application/json"]["schema"].is_object(),
                        "{method} {path}: every response is JSON"
                    );
                }
            }
        }
        let served: std::collections::BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p))
            .collect();
        assert_eq!(documented, served);
        let public: std::collections::BTreeSet<(String, String)> = route_permissions()
            .into_iter()
            .filter(|(_, _, perms)| perms.is_empty())
            .map(|(m, p, _)| (m.to_string(), p))
            .collect();
        assert_eq!(
            tokenless, public,
            "the document says which routes take no token"
        );
    }

    #[test]
    fn only_the_phone_apps_binding_takes_no_token() {
        let public: Vec<(&str, String)> = route_permissions()
            .into_iter()
            .filter(|(_, _, perms)| perms.is_empty())
            .map(|(m, p, _)| (m, p))
            .collect();
        assert_eq!(
            public,
            vec![("POST", "/api/v1/calls/device/bind".to_string())]
        );
    }

    #[test]
    fn settings_come_from_the_loader_and_a_bad_address_names_its_variable() {
        let layers = |pairs: &[(&str, &str)]| {
            Layers::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .expect("layers")
        };
        let c = GatewayConfig::from_layers(&layers(&[])).expect("defaults");
        assert_eq!(c.http_addr.port(), 8080);
        assert_eq!(c.provider_addr, "http://127.0.0.1:50053");
        assert_eq!(c.provider_public_url, "http://127.0.0.1:8053");
        let c = GatewayConfig::from_layers(&layers(&[
            ("WAIHU_HTTP_ADDR", "127.0.0.1:9090"),
            ("WAIHU_GATEWAY__TASK_ADDR", "http://10.0.0.5:50051"),
            ("WAIHU_GATEWAY__PROVIDER_ADDR", "http://10.0.0.6:50053"),
            (
                "WAIHU_GATEWAY__PROVIDER_PUBLIC_URL",
                "https://calls.example.com/adapter/",
            ),
        ]))
        .expect("set");
        assert_eq!(c.http_addr.port(), 9090);
        assert_eq!(c.task_addr, "http://10.0.0.5:50051");
        assert_eq!(c.provider_addr, "http://10.0.0.6:50053");
        assert_eq!(
            c.provider_public_url, "https://calls.example.com/adapter",
            "no trailing / to append paths to"
        );
        for bad in ["calls.example.com", "ftp://calls.example.com", "http://"] {
            let e =
                GatewayConfig::from_layers(&layers(&[("WAIHU_GATEWAY__PROVIDER_PUBLIC_URL", bad)]))
                    .expect_err(bad);
            assert!(e.to_string().contains("gateway.provider_public_url"), "{e}");
        }
        let e = GatewayConfig::from_layers(&layers(&[("WAIHU_HTTP_ADDR", "anywhere")]))
            .expect_err("bad address");
        assert!(e.to_string().contains("WAIHU_HTTP_ADDR"), "{e}");
        let e = GatewayConfig::from_layers(&layers(&[("WAIHU_GATEWAY__RECORD_ADDR", "not a url")]))
            .expect_err("bad url");
        assert!(e.to_string().contains("gateway.record_addr"), "{e}");
    }
}
