//! `/metrics` for Prometheus on every service, and the request metrics of its gRPC and HTTP
//! servers: a tower layer counting gRPC requests by method and status code with their latency
//! (and giving each request its server span, continuing the caller's W3C `traceparent`), and an
//! axum middleware doing the same for HTTP routes.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use waihu_metrics::{metrics, GrpcLabel, HttpLabel, MethodLabel, RouteLabel, CONTENT_TYPE};

/// The router serving `GET /metrics`.
pub fn router() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                metrics().encode(),
            )
        }),
    )
}

/// Serves `/metrics` on `listener` until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, stop: CancellationToken) {
    let addr = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, router())
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, ?addr, "metrics endpoint stopped");
    }
}

/// Binds the metrics endpoint's address, naming the setting when it cannot.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (metrics_addr, WAIHU_METRICS_ADDR): {e}"))
}

/// Counts gRPC requests by method and `grpc-status` and times them (until the response
/// headers: a unary call's whole time, a stream's start). A status sent only in the trailers
/// of a response that began well counts as OK. Each request but health checks runs in a server
/// span named after its method, the child of the caller's span when the request carries a
/// `traceparent` header; what the handler publishes carries that span's context.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let started = Instant::now();
        let span = server_span(&method, req.headers());
        let fut = span.in_scope(|| self.inner.call(req));
        Box::pin(async move {
            let res = fut.instrument(span.clone()).await;
            let code = match &res {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_string(),
                Err(_) => "transport".to_string(),
            };
            if code != "0" {
                span.record("otel.status_code", "ERROR");
                span.record("rpc.grpc.status_code", code.as_str());
            }
            let m = metrics();
            m.grpc_seconds
                .get_or_create(&MethodLabel {
                    method: method.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            m.grpc_requests
                .get_or_create(&GrpcLabel { method, code })
                .inc();
            res
        })
    }
}

/// The server span of a request (`otel.kind = server`), disabled for health checks and paths
/// that are not one of ours (`method` is [`method_label`]'s).
fn server_span(method: &str, headers: &http::HeaderMap) -> tracing::Span {
    if method == "other" || method.starts_with("/grpc.") {
        return tracing::Span::none();
    }
    let name = method.trim_start_matches('/');
    let span = tracing::info_span!(
        "grpc",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = name,
        otel.status_code = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty
    );
    continue_trace(&span, headers);
    span
}

/// Makes `span` the child of the caller's span when the request's headers carry a W3C
/// `traceparent` (with its `tracestate`); gRPC metadata and HTTP headers alike.
fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parent = header("traceparent");
    if !parent.is_empty() {
        waihu_events::trace::set_parent(span, parent, header("tracestate"));
    }
}

/// A gRPC path as a label: `/package.Service/Method`, or `other` for anything else (a label
/// set must stay bounded whatever clients send).
fn method_label(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(service), Some(method), None)
            if service.starts_with("waihu.v1.") || service.starts_with("grpc.") =>
        {
            if service.len() + method.len() <= 120
                && method.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return path.to_string();
            }
            "other".to_string()
        }
        _ => "other".to_string(),
    }
}

/// An axum middleware counting and timing HTTP requests by matched route (the route's pattern,
/// not the path: `/call-records/{recordId}`), method and status, each in a server span (the
/// child of the caller's span when the request carries a W3C `traceparent`). Add it with
/// `router.layer(axum::middleware::from_fn(waihu_runtime::metrics::http))`.
pub async fn http(
    matched: Option<axum::extract::MatchedPath>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("http", otel.name = format!("{method} {route}"),
        otel.kind = "server", http.request.method = %method, http.route = %route,
        http.response.status_code = tracing::field::Empty);
    continue_trace(&span, req.headers());
    let res = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", res.status().as_u16());
    let m = metrics();
    m.http_seconds
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&HttpLabel {
            route,
            method,
            status: res.status().as_u16().to_string(),
        })
        .inc();
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_stay_bounded() {
        assert_eq!(
            method_label("/waihu.v1.TaskService/GetTask"),
            "/waihu.v1.TaskService/GetTask"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        assert_eq!(method_label("/evil.Service/X"), "other");
        assert_eq!(method_label("/waihu.v1.TaskService/Get Task"), "other");
        assert_eq!(method_label("/a/b/c"), "other");
    }

    /// An HTTP request with a `traceparent` is handled in a span of the caller's trace (what
    /// the handler sees, and what its gRPC calls and events carry on).
    #[tokio::test(flavor = "current_thread")]
    async fn http_requests_continue_the_callers_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
        );
        let app = axum::Router::new()
            .route(
                "/seen",
                axum::routing::get(|| async { waihu_events::trace::current_context().0 }),
            )
            .layer(axum::middleware::from_fn(http));
        let mut svc = app.into_service::<axum::body::Body>();
        let mut call = |traceparent: Option<&str>| {
            let mut req = Request::builder().uri("/seen");
            if let Some(t) = traceparent {
                req = req.header("traceparent", t);
            }
            tower::Service::call(
                &mut svc,
                req.body(axum::body::Body::empty()).expect("request"),
            )
        };
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let res = call(Some(caller)).await.expect("response");
        let body = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        let seen = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(
            seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "the caller's trace: {seen}"
        );
        assert!(
            !seen.contains("00f067aa0ba902b7"),
            "a span of its own: {seen}"
        );
        let res = call(None).await.expect("response");
        let body = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        let fresh = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(
            fresh.starts_with("00-") && !fresh.contains("4bf92f3577b34da6"),
            "{fresh}"
        );
    }
}
