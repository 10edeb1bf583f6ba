//! What operators watch: one process-wide set of Prometheus metrics that every part of waihu
//! records into (the bus, the outbox relay, the store writer, the dialer, the gRPC and HTTP
//! servers), and their text exposition for `/metrics`.
//!
//! Names follow Prometheus conventions: `waihu_` prefix, `_total` for counters, base units
//! (seconds). Label values are bounded sets (event types, consumer names, lines, methods, routes,
//! reasons), never ids.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, LazyLock, Mutex, RwLock},
};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerTypeLabel {
    pub consumer: String,
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabel {
    pub consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProducerLabel {
    pub producer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LineLabel {
    pub line: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// `dial` or `skip`/`refuse` and the like: what the dialer did with a due contact.
    pub decision: String,
    /// Why (`ok`, `window`, `daily_limit`, `do_not_call`, `line_busy`, ...).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabel {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    pub service: String,
    pub version: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latency buckets: 1 ms to about 33 s.
fn latency() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 16,
    ))
}

/// Every metric of the process.
pub struct Metrics {
    pub events_published: Family<TypeLabel, Counter>,
    pub events_consumed: Family<ConsumerTypeLabel, Counter>,
    pub consumer_redeliveries: Family<ConsumerLabel, Counter>,
    /// Messages the consumer has not been delivered yet (the server's count at the last fetch).
    pub consumer_pending: Family<ConsumerLabel, Gauge>,
    pub dead_letters: Family<ConsumerLabel, Counter>,
    pub outbox_depth: Family<ProducerLabel, Gauge>,
    pub outbox_oldest_seconds: Family<ProducerLabel, Gauge<f64, AtomicU64>>,
    /// The event store's last position (the store writer's).
    pub store_position: Gauge,
    /// Events between the store's position and a projection's checkpoint.
    pub projection_lag: Family<ProjectionLabel, Gauge>,
    pub calls_in_flight: Family<LineLabel, Gauge>,
    pub calls_placed: Family<LineLabel, Counter>,
    pub dial_decisions: Family<DecisionLabel, Counter>,
    pub grpc_requests: Family<GrpcLabel, Counter>,
    pub grpc_seconds: Histograms<MethodLabel>,
    pub http_requests: Family<HttpLabel, Counter>,
    pub http_seconds: Histograms<RouteLabel>,
    pub build_info: Family<BuildLabel, Gauge>,
    registry: Mutex<Registry>,
    /// `events_published` by event type: the publish path counts without building a label.
    published_by_type: TypeCounters,
}

/// Counters of one family by event type (a `&'static str`), looked up without allocating.
#[derive(Default)]
struct TypeCounters(RwLock<HashMap<&'static str, Counter>>);

impl TypeCounters {
    fn inc(&self, event_type: &'static str, make: impl FnOnce() -> Counter) {
        if let Some(c) = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(event_type)
        {
            c.inc();
            return;
        }
        let c = make();
        c.inc();
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(event_type, c);
    }
}

/// One consumer's series, resolved once when the consumer starts: what it does per message
/// touches atomics only.
pub struct ConsumerMetrics {
    name: String,
    pending: Gauge,
    redeliveries: Counter,
    dead_letters: Counter,
    consumed: TypeCounters,
}

impl ConsumerMetrics {
    pub fn new(consumer: &str) -> ConsumerMetrics {
        let m = metrics();
        let label = ConsumerLabel {
            consumer: consumer.to_string(),
        };
        ConsumerMetrics {
            name: consumer.to_string(),
            pending: m.consumer_pending.get_or_create(&label).clone(),
            redeliveries: m.consumer_redeliveries.get_or_create(&label).clone(),
            dead_letters: m.dead_letters.get_or_create(&label).clone(),
            consumed: TypeCounters::default(),
        }
    }

    /// A message arrived: the server's count of those still waiting, and whether it came again.
    pub fn delivered(&self, pending: u64, redelivered: bool) {
        self.pending.set(pending.min(i64::MAX as u64) as i64);
        if redelivered {
            self.redeliveries.inc();
        }
    }

    /// An event was handed to the handler.
    pub fn consumed(&self, event_type: &'static str) {
        self.consumed.inc(event_type, || {
            metrics()
                .events_consumed
                .get_or_create(&ConsumerTypeLabel {
                    consumer: self.name.clone(),
                    r#type: event_type.to_string(),
                })
                .clone()
        });
    }

    pub fn dead_lettered(&self) {
        self.dead_letters.inc();
    }
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            events_published: Family::default(),
            events_consumed: Family::default(),
            consumer_redeliveries: Family::default(),
            consumer_pending: Family::default(),
            dead_letters: Family::default(),
            outbox_depth: Family::default(),
            outbox_oldest_seconds: Family::default(),
            store_position: Gauge::default(),
            projection_lag: Family::default(),
            calls_in_flight: Family::default(),
            calls_placed: Family::default(),
            dial_decisions: Family::default(),
            grpc_requests: Family::default(),
            grpc_seconds: Family::new_with_constructor(latency),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency),
            build_info: Family::default(),
            registry: Mutex::new(Registry::with_prefix("waihu")),
            published_by_type: TypeCounters::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register(
                "events_published",
                "Events published on the bus, by type",
                m.events_published.clone(),
            );
            r.register(
                "events_consumed",
                "Events handed to a consumer's handler, by consumer and type",
                m.events_consumed.clone(),
            );
            r.register(
                "consumer_redeliveries",
                "Messages delivered again (after a failure or a lost ack), by consumer",
                m.consumer_redeliveries.clone(),
            );
            r.register(
                "consumer_pending",
                "Messages waiting for a consumer on the server (its lag), by consumer",
                m.consumer_pending.clone(),
            );
            r.register(
                "dead_letters",
                "Messages a consumer gave up on (dead-lettered), by consumer",
                m.dead_letters.clone(),
            );
            r.register(
                "outbox_depth",
                "Events in an outbox not yet published, by producer",
                m.outbox_depth.clone(),
            );
            r.register(
                "outbox_oldest_seconds",
                "Age of the oldest unpublished outbox event, by producer",
                m.outbox_oldest_seconds.clone(),
            );
            r.register(
                "store_position",
                "The event store's last position",
                m.store_position.clone(),
            );
            r.register(
                "projection_lag_events",
                "Events between the store's position and a projection's checkpoint",
                m.projection_lag.clone(),
            );
            r.register(
                "calls_in_flight",
                "Calls out now, by line",
                m.calls_in_flight.clone(),
            );
            r.register(
                "calls_placed",
                "Calls placed (dial commands sent), by line; rate() is the line's CPS",
                m.calls_placed.clone(),
            );
            r.register(
                "dial_decisions",
                "What the dialer did with due contacts, by decision and reason",
                m.dial_decisions.clone(),
            );
            r.register(
                "grpc_requests",
                "gRPC requests served, by method and status code",
                m.grpc_requests.clone(),
            );
            r.register(
                "grpc_request_duration_seconds",
                "gRPC request latency until the response headers, by method",
                m.grpc_seconds.clone(),
            );
            r.register(
                "http_requests",
                "HTTP requests served, by route, method and status",
                m.http_requests.clone(),
            );
            r.register(
                "http_request_duration_seconds",
                "HTTP request latency until the response headers, by route",
                m.http_seconds.clone(),
            );
            r.register(
                "build_info",
                "The running build: service and version (value 1)",
                m.build_info.clone(),
            );
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }

    /// Counts one published event.
    pub fn published(&self, event_type: &'static str) {
        self.published_by_type.inc(event_type, || {
            self.events_published
                .get_or_create(&TypeLabel {
                    r#type: event_type.to_string(),
                })
                .clone()
        });
    }

    /// Counts one dial decision.
    pub fn decision(&self, decision: &str, reason: &str) {
        self.dial_decisions
            .get_or_create(&DecisionLabel {
                decision: decision.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Says which service this process runs.
    pub fn build(&self, service: &str, version: &str) {
        self.build_info
            .get_or_create(&BuildLabel {
                service: service.to_string(),
                version: version.to_string(),
            })
            .set(1);
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_labels() {
        let m = metrics();
        m.published("CallDialing");
        m.decision("skip", "window");
        m.grpc_seconds
            .get_or_create(&MethodLabel {
                method: "/waihu.v1.TaskService/GetTask".into(),
            })
            .observe(0.004);
        m.build("waihu-task", "0.1.0");
        let text = m.encode();
        assert!(
            text.contains("waihu_events_published_total{type=\"CallDialing\"} 1"),
            "{text}"
        );
        assert!(text.contains("waihu_dial_decisions_total{decision=\"skip\",reason=\"window\"} 1"));
        assert!(text.contains("waihu_grpc_request_duration_seconds_bucket{le=\"0.004\""));
        assert!(text.contains("waihu_build_info{service=\"waihu-task\",version=\"0.1.0\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
