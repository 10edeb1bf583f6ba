//! Logs to stderr (`RUST_LOG`, default `info`; `WAIHU_LOG_FORMAT=json` for JSON) and, when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans over OTLP/gRPC. The two are filtered
//! apart: `RUST_LOG` quiets the logs without losing spans, whose own filter is
//! `WAIHU_TRACE_FILTER` (same syntax, default `info`). The exporter reads the standard
//! `OTEL_*` variables (`OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, ...).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

/// Flushes and stops span export when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("span export did not shut down cleanly: {e}");
            }
        }
    }
}

/// Installs the global subscriber (a second call in one process is a no-op).
pub fn init(service: &'static str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("WAIHU_LOG_FORMAT")
        .map(|v| v == "json")
        .unwrap_or(false);
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|_| {
            match opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
            {
                Ok(exporter) => Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(Resource::builder().with_service_name(service).build())
                        .build(),
                ),
                Err(e) => {
                    eprintln!("OTLP exporter disabled: {e}");
                    None
                }
            }
        });
    let otel = provider.as_ref().map(|p| {
        let filter = EnvFilter::try_from_env("WAIHU_TRACE_FILTER")
            .unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(filter)
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    TelemetryGuard { provider }
}

/// A gRPC channel whose requests carry the caller's trace context (see [`traced`]).
pub type Traced = tonic::service::interceptor::InterceptedService<
    tonic::transport::Channel,
    fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
>;

/// Wraps a channel so each request carries the current span's W3C `traceparent` (and
/// `tracestate`): the server's span then continues the caller's trace. Without a current span
/// context (tracing export off) requests go as they are.
pub fn traced(channel: tonic::transport::Channel) -> Traced {
    tonic::service::interceptor::InterceptedService::new(channel, inject_trace as fn(_) -> _)
}

/// The interceptor behind [`traced`].
pub fn inject_trace(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let (parent, state) = waihu_events::trace::current_context();
    for (name, value) in [("traceparent", parent), ("tracestate", state)] {
        if value.is_empty() {
            continue;
        }
        if let Ok(v) = value.parse() {
            req.metadata_mut().insert(name, v);
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    /// A subscriber exporting nowhere, with real span contexts.
    fn subscriber() -> impl tracing::Subscriber + Send + Sync {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
    }

    #[test]
    fn requests_carry_the_current_span_and_go_bare_without_one() {
        let bare = super::inject_trace(tonic::Request::new(())).expect("request");
        assert!(bare.metadata().get("traceparent").is_none());
        tracing::subscriber::with_default(subscriber(), || {
            let span = tracing::info_span!("caller");
            let _in = span.enter();
            let (expected, _) = waihu_events::trace::current_context();
            assert!(expected.starts_with("00-"), "{expected}");
            let req = super::inject_trace(tonic::Request::new(())).expect("request");
            assert_eq!(
                req.metadata()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok()),
                Some(expected.as_str())
            );
        });
    }
}
