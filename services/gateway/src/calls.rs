//! Seed 003 (电销外呼系统技术方案 §5): `/api/v1/calls/...`. Its answers are bare JSON objects
//! with the seed's camelCase fields; a failure is `{success: false, message}` with the HTTP
//! status.
//!
//! Built: `GET /{callId}/status` (a call by its UUID or record number). Not built yet, and
//! answering 501 after the token and permission checks: manual dialing and hang-up (they need
//! the dialer's click-to-dial API), line management (lines come from the dialer's
//! configuration until the line service exists) and work-phone devices. Provider webhooks
//! (`/webhook/...`) and the phone app's reports (`/mobile/...`) belong to the provider adapter
//! and are not routed here.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{delete, get, post, put},
    Router,
};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use waihu_auth::perms::{
    ADMIN_DEVICES, ADMIN_LINES, CALL_CONTROL, CALL_CREATE, CALL_VIEW, RECORD_VIEW,
};
use waihu_proto::v1 as pb;

use crate::{
    lead::{record_client, request},
    Backends, Envelope, Reply, RouteTable,
};

pub const BASE: &str = "/api/v1/calls";

/// Every seed 003 route: (method, path below [`BASE`], permissions: any one).
pub const ROUTES: RouteTable = &[
    ("POST", "/dial", &[CALL_CREATE, CALL_CONTROL]),
    ("POST", "/hangup", &[CALL_CONTROL]),
    ("GET", "/{callId}/status", &[RECORD_VIEW, CALL_VIEW]),
    ("GET", "/lines", &[ADMIN_LINES]),
    ("POST", "/lines", &[ADMIN_LINES]),
    ("PUT", "/lines/{id}", &[ADMIN_LINES]),
    ("DELETE", "/lines/{id}", &[ADMIN_LINES]),
    ("POST", "/lines/{id}/test", &[ADMIN_LINES]),
    ("POST", "/device/bindQRCode", &[ADMIN_DEVICES]),
    ("POST", "/device/bind", &[ADMIN_DEVICES]),
    ("GET", "/device/list", &[ADMIN_DEVICES]),
    ("DELETE", "/device/{id}", &[ADMIN_DEVICES]),
    ("GET", "/device/{id}/status", &[ADMIN_DEVICES]),
];

/// Why a route is not built yet, by its path.
fn not_built(path: &str) -> &'static str {
    if path == "/dial" || path == "/hangup" {
        "manual dialing and hang-up are not built yet: they come with the dialer's click-to-dial API"
    } else if path.starts_with("/lines") {
        "line management is not built yet: lines come from the dialer's configuration \
         (WAIHU_DIALER__LINES) until the line service exists"
    } else {
        "work-phone devices are not built yet"
    }
}

pub fn routes(b: Backends) -> Router<Backends> {
    let router = ROUTES.iter().fold(Router::new(), |r, (method, path, _)| {
        let full = format!("{BASE}{path}");
        if *path == "/{callId}/status" {
            return r.route(&full, get(call_status));
        }
        let why = not_built(path);
        let answer = move || async move {
            Reply::error(StatusCode::NOT_IMPLEMENTED, why).in_envelope(Envelope::Bare)
        };
        let m = match *method {
            "GET" => get(answer),
            "POST" => post(answer),
            "PUT" => put(answer),
            _ => delete(answer),
        };
        r.route(&full, m)
    });
    crate::guarded(router, b, BASE, ROUTES, Envelope::Bare)
}

/// The seed's call states.
fn seed_state(state: &str) -> &'static str {
    match state {
        "ringing" => "ringing",
        "answered" => "connected",
        "released" => "ended",
        _ => "calling",
    }
}

/// 获取通话状态: where a call is, how long it has talked, when it started.
async fn call_status(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
) -> Reply {
    let found = record_client(&b)
        .get_call_record(request(
            &headers,
            pb::GetCallRecordRequest {
                call_id: call_id.clone(),
            },
        ))
        .await;
    let r = match found {
        Ok(r) => r.into_inner(),
        Err(s) => {
            let mut reply = Reply::from_status(&s);
            if s.code() == tonic::Code::InvalidArgument {
                // A path that names no call at all.
                reply = Reply::error(StatusCode::BAD_REQUEST, s.message().to_string());
            }
            return reply.in_envelope(Envelope::Bare);
        }
    };
    let time =
        |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(waihu_events::from_timestamp);
    let duration = match (time(&r.answered_at), r.state.as_str()) {
        (_, "released") => r.talk_seconds.round() as u64,
        (Some(at), _) => (Utc::now() - at).num_seconds().max(0) as u64,
        (None, _) => 0,
    };
    Reply::ok(json!({
        "callId": r.call_id,
        "status": seed_state(&r.state),
        "duration": duration,
        "startTime": time(&r.requested_at)
            .map_or(Value::Null, |t| json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))),
    }))
    .in_envelope(Envelope::Bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_states_map_to_the_seeds() {
        for (ours, seed) in [
            ("requested", "calling"),
            ("dialing", "calling"),
            ("ringing", "ringing"),
            ("answered", "connected"),
            ("released", "ended"),
        ] {
            assert_eq!(seed_state(ours), seed);
        }
    }
}
