//! Seed 003 (电销外呼系统技术方案 §5): `/api/v1/calls/...`. Its answers are bare JSON objects
//! with the seed's camelCase fields; a failure is `{success: false, message}` with the HTTP
//! status.
//!
//! Built: `POST /dial` and `POST /hangup` (the dialer's click-to-dial, `DialerService.Dial` and
//! `Hangup`; `callMethod: "mobile"` needs work-phone devices and answers 422 saying so) and
//! `GET /{callId}/status` (a call by its UUID or record number). Not built yet, and answering
//! 501 after the token and permission checks: line management here (lines are managed through
//! `ProviderService`, whose string ids the seed's numeric ones do not fit yet) and work-phone
//! devices. Provider webhooks (`/webhook/...`) and the phone app's reports (`/mobile/...`)
//! belong to the provider adapter and are not routed here.

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{HeaderMap, StatusCode},
    routing::{delete, get, post, put},
    Json, Router,
};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use waihu_auth::perms::{
    ADMIN_DEVICES, ADMIN_LINES, CALL_CONTROL, CALL_DIAL, CALL_VIEW, RECORD_VIEW,
};
use waihu_proto::v1::{self as pb, dialer_service_client::DialerServiceClient};

use crate::{
    lead::{object, record_client, request},
    Backends, Envelope, Reply, RouteTable,
};

pub const BASE: &str = "/api/v1/calls";

/// Every seed 003 route: (method, path below [`BASE`], permissions: any one).
pub const ROUTES: RouteTable = &[
    ("POST", "/dial", &[CALL_DIAL]),
    ("POST", "/hangup", &[CALL_DIAL, CALL_CONTROL]),
    (
        "GET",
        "/{callId}/status",
        &[RECORD_VIEW, CALL_VIEW, CALL_DIAL],
    ),
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
    if path.starts_with("/lines") {
        "line management through this API is not built yet: manage lines through \
         ProviderService (`waihu line create|update|disable|enable|list|status`)"
    } else {
        "work-phone devices are not built yet"
    }
}

pub fn routes(b: Backends) -> Router<Backends> {
    let router = ROUTES.iter().fold(Router::new(), |r, (method, path, _)| {
        let full = format!("{BASE}{path}");
        match *path {
            "/{callId}/status" => return r.route(&full, get(call_status)),
            "/dial" => return r.route(&full, post(dial)),
            "/hangup" => return r.route(&full, post(hangup)),
            _ => {}
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

type Body = std::result::Result<Json<serde_json::Value>, JsonRejection>;

fn dialer_client(b: &Backends) -> DialerServiceClient<tonic::transport::Channel> {
    DialerServiceClient::new(b.dialer.clone())
}

/// An optional text field of the body (a number is taken as its digits: the seed's `lineId`
/// is a number).
fn text_field(m: &serde_json::Map<String, Value>, field: &str) -> Result<String, Reply> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(Reply::invalid(field, "must be a string")),
    }
}

/// A backend's refusal, its message naming the seed's field where it names the RPC's
/// (`phone: ...` becomes `customerPhone: ...`).
fn seed_fields(s: &tonic::Status, names: &[(&str, &str)]) -> Reply {
    let msg = s.message();
    let renamed = names.iter().find_map(|(ours, seed)| {
        msg.strip_prefix(ours)
            .filter(|rest| rest.starts_with(':'))
            .map(|rest| format!("{seed}{rest}"))
    });
    Reply::from_status(&tonic::Status::new(
        s.code(),
        renamed.unwrap_or_else(|| msg.to_string()),
    ))
}

fn bare(r: Result<Value, Reply>) -> Reply {
    r.map_or_else(|e| e, Reply::ok).in_envelope(Envelope::Bare)
}

/// 发起外呼: a click-to-dial call on a line (`callMethod: "cloud"`, the default).
async fn dial(State(b): State<Backends>, headers: HeaderMap, body: Body) -> Reply {
    bare(dial_inner(&b, &headers, body).await)
}

async fn dial_inner(b: &Backends, headers: &HeaderMap, body: Body) -> Result<Value, Reply> {
    let m = object(body)?;
    let method = text_field(&m, "callMethod")?;
    match method.as_str() {
        "" | "cloud" => {}
        // A value this deployment cannot take (422, not a server error): the work phones
        // it needs are not built yet.
        "mobile" => {
            return Err(Reply::invalid(
                "callMethod",
                "\"mobile\" needs work-phone devices, which are not built yet; use \"cloud\"",
            ))
        }
        _ => {
            return Err(Reply::invalid(
                "callMethod",
                "must be \"cloud\" or \"mobile\"",
            ))
        }
    }
    let phone = text_field(&m, "customerPhone")?;
    if phone.trim().is_empty() {
        return Err(Reply::invalid("customerPhone", "is required"));
    }
    let reply = dialer_client(b)
        .dial(request(
            headers,
            pb::DialRequest {
                phone,
                line_id: text_field(&m, "lineId")?,
                customer_id: text_field(&m, "customerId")?,
                customer_name: text_field(&m, "customerName")?,
                order_id: text_field(&m, "orderId")?,
            },
        ))
        .await
        .map_err(|s| {
            seed_fields(
                &s,
                &[
                    ("phone", "customerPhone"),
                    ("line_id", "lineId"),
                    ("customer_id", "customerId"),
                    ("customer_name", "customerName"),
                    ("order_id", "orderId"),
                ],
            )
        })?
        .into_inner();
    Ok(json!({
        "success": true,
        "callId": reply.call_id,
        "message": format!("calling {} on line {}", reply.phone, reply.line_id),
    }))
}

/// 挂断通话.
async fn hangup(State(b): State<Backends>, headers: HeaderMap, body: Body) -> Reply {
    bare(hangup_inner(&b, &headers, body).await)
}

async fn hangup_inner(b: &Backends, headers: &HeaderMap, body: Body) -> Result<Value, Reply> {
    let m = object(body)?;
    let call_id = text_field(&m, "callId")?;
    if call_id.is_empty() {
        return Err(Reply::invalid("callId", "is required"));
    }
    let r = dialer_client(b)
        .hangup(request(headers, pb::HangupRequest { call_id }))
        .await
        .map_err(|s| seed_fields(&s, &[("call_id", "callId")]))?
        .into_inner();
    Ok(json!({
        "success": true,
        "message": if r.ended { "hung up" } else { "the call had already ended" },
    }))
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

/// 获取通话状态: where a call is, how long it has talked, when it started. A UUID is asked of
/// the dialer (the call's own events: live); a record number of the record service.
async fn call_status(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
) -> Reply {
    if uuid::Uuid::parse_str(&call_id).is_ok() {
        let s = match dialer_client(&b)
            .get_call_status(request(
                &headers,
                pb::GetCallStatusRequest {
                    call_id: call_id.clone(),
                },
            ))
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) => return Reply::from_status(&s).in_envelope(Envelope::Bare),
        };
        return status_reply(
            &s.call_id,
            &s.status,
            s.duration_seconds as u64,
            time(&s.start_time),
        );
    }
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
    let duration = match (time(&r.answered_at), r.state.as_str()) {
        (_, "released") => r.talk_seconds.round() as u64,
        (Some(at), _) => (Utc::now() - at).num_seconds().max(0) as u64,
        (None, _) => 0,
    };
    status_reply(
        &r.call_id,
        seed_state(&r.state),
        duration,
        time(&r.requested_at),
    )
}

fn time(t: &Option<prost_types::Timestamp>) -> Option<chrono::DateTime<Utc>> {
    t.as_ref().and_then(waihu_events::from_timestamp)
}

/// The seed's four status fields.
fn status_reply(
    call_id: &str,
    status: &str,
    duration: u64,
    start: Option<chrono::DateTime<Utc>>,
) -> Reply {
    Reply::ok(json!({
        "callId": call_id,
        "status": status,
        "duration": duration,
        "startTime": start
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
