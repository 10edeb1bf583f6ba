//! What the cloud providers' end-to-end tests share: their lines' test and creation, the
//! statistics a campaign must end with from a fake's log of what it decided, the lifecycle
//! shapes every call's stored events must have, callbacks posted by hand, and a log capture.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use waihu_events::pb::{self, ContactOutcome};
use waihu_telephony::hangup::{CALL_REJECTED, INVALID_NUMBER_Q850};

use crate::{Cluster, Expected};

impl Cluster {
    /// Creates a line (`ProviderService.CreateLine`), which must succeed.
    pub async fn create_line(&self, req: pb::CreateLineRequest) -> pb::Line {
        let id = req
            .line
            .as_ref()
            .map(|l| l.line_id.clone())
            .unwrap_or_default();
        self.providers()
            .await
            .create_line(req)
            .await
            .unwrap_or_else(|e| panic!("create line {id}: {e}"))
            .into_inner()
    }

    /// Tests line `id` (`ProviderService.TestLine`): the provider's verdict.
    pub async fn test_line(&self, id: &str) -> pb::TestLineResponse {
        self.providers()
            .await
            .test_line(pb::LineRequest { line_id: id.into() })
            .await
            .unwrap_or_else(|e| panic!("test line {id}: {e}"))
            .into_inner()
    }
}

/// How one call a fake placed ended, as the statistics count it.
#[derive(Debug, Clone)]
pub struct CallEnd {
    /// The number called, as the fake saw it: a contact's calls all have it.
    pub number: String,
    pub q850: u32,
    /// Talk seconds, for an answered call.
    pub talk_s: Option<u64>,
}

/// What a campaign of `contacts` contacts must end with, from how each call a fake placed
/// ended, in the order placed: every call counts for its cause (and its talk, when answered),
/// and each number's last call gives its contact's outcome: answered, an invalid number
/// (`INVALID_NUMBER_Q850`), rejected (`CALL_REJECTED`), else unreached.
pub fn expected_from_calls(contacts: u64, calls: impl IntoIterator<Item = CallEnd>) -> Expected {
    let mut x = Expected {
        contacts,
        ..Default::default()
    };
    let mut last: BTreeMap<String, CallEnd> = BTreeMap::new();
    for c in calls {
        x.calls_placed += 1;
        if let Some(talk_s) = c.talk_s {
            x.calls_answered += 1;
            x.talk_ms += talk_s * 1000;
        }
        *x.causes.entry(c.q850).or_default() += 1;
        last.insert(c.number.clone(), c);
    }
    for c in last.values() {
        let outcome = if c.talk_s.is_some() {
            ContactOutcome::Answered
        } else if INVALID_NUMBER_Q850.contains(&c.q850) {
            ContactOutcome::InvalidNumber
        } else if c.q850 == CALL_REJECTED {
            ContactOutcome::Rejected
        } else {
            ContactOutcome::Unreached
        };
        *x.outcomes.entry(outcome as i32).or_default() += 1;
    }
    x
}

/// The shapes a call's stored events may have (its stream's event types in order): answered,
/// rung, not rung, and refused by the provider before dialing.
pub const LIFECYCLES: [&str; 4] = [
    "CallRequested,CallDialing,CallRinging,CallAnswered,CallReleased",
    "CallRequested,CallDialing,CallRinging,CallReleased",
    "CallRequested,CallDialing,CallReleased",
    "CallRequested,CallReleased",
];

/// Once every call's release is stored (30 s at most), asserts each call's events came out once
/// each, in order, as one of the [`LIFECYCLES`], whatever order callbacks and polls came in;
/// returns how many calls were refused before dialing.
pub async fn assert_lifecycles(cluster: &Cluster) -> usize {
    let shapes =
        waihu_testkit::eventually(Duration::from_secs(30), "every call released", || async {
            let shapes: Vec<(String, String)> = sqlx::query_as(
                "SELECT stream_id, string_agg(event_type, ',' ORDER BY stream_version)
                 FROM events WHERE stream_id LIKE 'call-%' GROUP BY stream_id",
            )
            .fetch_all(&cluster.env.pool)
            .await
            .expect("store");
            shapes
                .iter()
                .all(|(_, s)| s.ends_with(",CallReleased"))
                .then_some(shapes)
        })
        .await;
    let bad: Vec<&(String, String)> = shapes
        .iter()
        .filter(|(_, s)| !LIFECYCLES.contains(&s.as_str()))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    shapes.iter().filter(|(_, s)| s == LIFECYCLES[3]).count()
}

/// Posts a callback by hand, as a provider would: `body` to `url` as `content_type`, with
/// `header` (a signature, an authorization) when given. The reply's HTTP status and body.
pub async fn post_callback(
    http: &reqwest::Client,
    url: &str,
    content_type: &str,
    header: Option<(&str, &str)>,
    body: String,
) -> (u16, String) {
    let mut req = http
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let r = req.send().await.expect("reachable");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// A log writer that keeps what is written to it, for searching the logs afterwards.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Sends this process's logs at `filter` (an `EnvFilter` directive) to a new capture, for
    /// the rest of the test binary's run.
    pub fn install(filter: &str) -> Capture {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        capture
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture")).to_string()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
