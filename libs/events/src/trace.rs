//! W3C trace context carried in event envelopes, so a call's spans join up across services.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `traceparent` and `tracestate` of the current span, empty when tracing export is off.
pub fn current_context() -> (String, String) {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return (String::new(), String::new());
    }
    (
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ),
        sc.trace_state().header(),
    )
}

/// Parses a `traceparent` header value into a remote span context.
pub fn parse_traceparent(traceparent: &str, tracestate: &str) -> Option<SpanContext> {
    let mut parts = traceparent.split('-');
    let version = parts.next()?;
    let trace_id = TraceId::from_hex(parts.next()?).ok()?;
    let span_id = SpanId::from_hex(parts.next()?).ok()?;
    let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
    if version != "00" || parts.next().is_some() {
        return None;
    }
    let state = tracestate.parse::<TraceState>().unwrap_or_default();
    let sc = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
    sc.is_valid().then_some(sc)
}

/// Makes `span` a child of the trace an event was produced in (no-op without context).
pub fn set_parent(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if let Some(sc) = parse_traceparent(traceparent, tracestate) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_w3c_example_and_rejects_garbage() {
        let sc = parse_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        )
        .expect("valid");
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled());
        assert!(parse_traceparent("garbage", "").is_none());
        assert!(parse_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ""
        )
        .is_none());
    }
}
