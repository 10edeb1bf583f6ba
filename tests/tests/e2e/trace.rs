//! One trace per call, from the StartTask request through the dialer, the provider adapter and
//! the record service. Every service runs as its own process (the binaries cargo builds beside
//! this test) exporting spans over OTLP/gRPC to a local receiver, as they would to a collector.
//! The test starts the task with a `traceparent` of its own and follows the spans' parent links
//! back from each call's stored release to that request: across gRPC (the request's header),
//! and across NATS (the context each event carries) from the task service to the dialer, from
//! the dialer to the provider adapter and from the adapter to the store writer.

use std::{collections::HashMap, sync::Arc, time::Duration};

use waihu_e2e::{
    fakes::otlp::{Receiver, Span},
    procs::Launcher,
    *,
};
use waihu_events::pb;
use waihu_testkit::TestEnv;

const CONTACTS: usize = 6;

/// The spans of one trace by id.
struct Trace(HashMap<String, Span>);

impl Trace {
    /// The span and its ancestors, nearest first, as far as the trace has them.
    fn ancestry<'a>(&'a self, span: &'a Span) -> Vec<&'a Span> {
        let mut chain = vec![span];
        let mut at = span;
        while let Some(p) = self.0.get(&at.parent) {
            if chain.len() > 64 {
                break;
            }
            chain.push(p);
            at = p;
        }
        chain
    }

    fn descends_from(&self, span: &Span, ancestor: &Span) -> bool {
        self.ancestry(span)
            .iter()
            .skip(1)
            .any(|a| a.span_id == ancestor.span_id)
    }

    fn find(&self, what: impl Fn(&Span) -> bool) -> Vec<&Span> {
        let mut v: Vec<&Span> = self.0.values().filter(|s| what(s)).collect();
        v.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        v
    }
}

/// Renders a trace's spans as a tree (for failure messages).
fn render(trace: &Trace) -> String {
    let mut out = String::new();
    for s in trace.0.values() {
        let chain: Vec<String> = trace
            .ancestry(s)
            .iter()
            .map(|a| {
                let t = a.attributes.get("event_type").map_or("", String::as_str);
                format!("{}:{} {t}", a.service, a.name)
            })
            .collect();
        out.push_str(&chain.join(" <- "));
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_one_trace_from_start_task_through_dialer_provider_and_record() {
    let env = Arc::new(TestEnv::new().await);
    let dir = std::env::temp_dir().join(format!("waihu-trace-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (receiver, addr) = Receiver::start().await;
    let launch = Launcher::new(env.clone(), dir.clone(), Duration::from_secs(5))
        .with_env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .with_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let outcome = tokio::spawn(campaign(launch, receiver)).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(env) = Arc::try_unwrap(env) {
        env.cleanup().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn campaign(mut launch: Launcher, receiver: Receiver) {
    let _record = launch.record().await;
    let task = launch.task().await;
    let dialer = launch.dialer().await;
    let sim = fast_sim(7);
    let provider = launch.provider(&dialer.url, &sim).await;
    ProviderServiceClient::connect(provider.url.clone())
        .await
        .expect("provider adapter reachable")
        .create_line(as_tenant(
            "default",
            pb::CreateLineRequest {
                line: Some(one_line(10)[0].to_pb()),
                ..Default::default()
            },
        ))
        .await
        .expect("line created");
    let mut tasks = TaskServiceClient::connect(task.url.clone())
        .await
        .expect("task service reachable");
    let t = create_with_contacts(&mut tasks, spec("traced", 0, 0), &phones(CONTACTS, 3)).await;

    // StartTask as a traced client sends it: in a trace of ours, from a span of ours.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let mut request = tonic::Request::new(pb::TaskRef { task_id: t.clone() });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{client_span}-01")
            .parse()
            .expect("ascii"),
    );
    tasks.start_task(request).await.expect("StartTask");
    wait_status(
        &mut tasks,
        &t,
        pb::TaskStatus::Completed,
        Duration::from_secs(60),
    )
    .await;

    // Spans arrive in batches as they end (a call's handling ends after its events were
    // stored), so the trace is checked until it is whole.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let trace = Trace(
            receiver
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .map(|s| (s.span_id.clone(), s))
                .collect(),
        );
        match check(&trace, client_span) {
            Ok(()) => {
                eprintln!(
                    "{} spans in the trace ({} export requests received)",
                    trace.0.len(),
                    receiver.requests()
                );
                return;
            }
            Err(why) => assert!(
                std::time::Instant::now() < deadline,
                "the trace is not whole after 60 s: {why}\n{}",
                render(&trace)
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `trace` holds every call, linked from the StartTask request on: Err says what is
/// missing.
fn check(trace: &Trace, client_span: &str) -> Result<(), String> {
    let event_type = |s: &Span| s.attributes.get("event_type").cloned().unwrap_or_default();
    // The task service's server span of StartTask, a child of the client's span.
    let server = trace.find(|s| s.name == "waihu.v1.TaskService/StartTask");
    let [server] = server[..] else {
        return Err(format!("{} StartTask server spans, not 1", server.len()));
    };
    assert_eq!(server.service, "waihu-task");
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(
        server.parent, client_span,
        "StartTask's parent is the caller"
    );

    // TaskStarted is stored under StartTask.
    if !trace
        .find(|s| s.name == "store" && event_type(s) == "TaskStarted")
        .iter()
        .any(|s| trace.descends_from(s, server))
    {
        return Err("TaskStarted not stored under StartTask".into());
    }

    // One dial span per call, in the dialer, descending from StartTask (through TaskStarted).
    let dials = trace.find(|s| s.name == "dial");
    if dials.len() != CONTACTS {
        return Err(format!("{} dial spans, not one per call", dials.len()));
    }
    for dial in &dials {
        assert_eq!(dial.service, "waihu-dialer");
        if !trace.descends_from(dial, server) {
            return Err(format!("dial {} not under StartTask", dial.span_id));
        }
        let call = dial.attributes.get("call_id").expect("call_id on dial");

        // The provider adapter handles the call's CallRequested as the dial span's child.
        let handled = trace.find(|s| {
            s.service == "waihu-provider-adapter"
                && s.parent == dial.span_id
                && event_type(s) == "CallRequested"
        });
        let [handled] = handled[..] else {
            return Err(format!(
                "call {call}: {} handlings of CallRequested under its dial span, not 1",
                handled.len()
            ));
        };

        // The store writer's spans: the request under the dial span, each event the adapter
        // published (the call's progress up to its release) under the adapter's handling.
        let stored = |t: &str| {
            trace.find(|s| s.service == "waihu-record" && s.name == "store" && event_type(s) == t)
        };
        let requested = stored("CallRequested");
        if requested
            .iter()
            .filter(|s| s.parent == dial.span_id)
            .count()
            != 1
        {
            return Err(format!(
                "call {call}: CallRequested not stored under its dial span"
            ));
        }
        let released = stored("CallReleased");
        if released
            .iter()
            .filter(|s| trace.descends_from(s, handled))
            .count()
            != 1
        {
            return Err(format!(
                "call {call}: CallReleased not stored under the adapter's handling"
            ));
        }
    }
    // Nothing in the trace hangs loose: every span's parent is in it, but StartTask's (the
    // client's).
    let loose: Vec<String> = trace
        .0
        .values()
        .filter(|s| s.span_id != server.span_id && !trace.0.contains_key(&s.parent))
        .map(|s| format!("{}:{} {}", s.service, s.name, event_type(s)))
        .collect();
    if !loose.is_empty() {
        return Err(format!("spans whose parent is not in the trace: {loose:?}"));
    }
    Ok(())
}
