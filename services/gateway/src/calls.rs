//! Seed 003 (电销外呼系统技术方案 §5): `/api/v1/calls/...`. Its answers are bare JSON objects
//! with the seed's camelCase fields; a failure is `{success: false, message}` with the HTTP
//! status.
//!
//! Built: `POST /dial` and `POST /hangup` (the dialer's click-to-dial, `DialerService.Dial` and
//! `Hangup`; `callMethod: "mobile"` dials through a bound work phone, the line
//! `mobile-<deviceId>`), `GET /{callId}/status` (a call by its UUID or record number) and the
//! work-phone devices (`/device/...`, `ProviderService`; see `device.rs`). Not built yet, and
//! answering 501 after the token and permission checks: line management here (lines are managed
//! through `ProviderService`, whose string ids the seed's numeric ones do not fit yet). Provider
//! webhooks (`/webhook/...`), the phone app's binding, WebSocket and reports (`/mobile/...`)
//! belong to the provider adapter; the binding alone is answered here, with a redirect there,
//! for an app given the gateway's address.

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
    device,
    lead::{object, record_client, request},
    Backends, Envelope, Reply, RouteTable, PUBLIC,
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
    // The phone app's own call: no user token (its QR code's one-time token instead).
    ("POST", "/device/bind", PUBLIC),
    ("GET", "/device/list", &[ADMIN_DEVICES]),
    ("DELETE", "/device/{id}", &[ADMIN_DEVICES]),
    ("GET", "/device/{id}/status", &[ADMIN_DEVICES]),
];

/// Why a route is not built yet (line management).
const NOT_BUILT: &str = "line management through this API is not built yet: manage lines \
                         through ProviderService (`waihu line create|update|disable|enable|list|status`)";

pub fn routes(b: Backends) -> Router<Backends> {
    let router = ROUTES.iter().fold(Router::new(), |r, (method, path, _)| {
        let full = format!("{BASE}{path}");
        match *path {
            "/{callId}/status" => return r.route(&full, get(call_status)),
            "/dial" => return r.route(&full, post(dial)),
            "/hangup" => return r.route(&full, post(hangup)),
            "/device/bindQRCode" => return r.route(&full, post(device::bind_qr_code)),
            "/device/bind" => return r.route(&full, post(device::bind)),
            "/device/list" => return r.route(&full, get(device::list)),
            "/device/{id}" => return r.route(&full, delete(device::unbind)),
            "/device/{id}/status" => return r.route(&full, get(device::status)),
            _ => {}
        }
        let answer = || async {
            Reply::error(StatusCode::NOT_IMPLEMENTED, NOT_BUILT).in_envelope(Envelope::Bare)
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

fn dialer_client(b: &Backends) -> DialerServiceClient<waihu_runtime::telemetry::Traced> {
    DialerServiceClient::new(waihu_runtime::telemetry::traced(b.dialer.clone()))
}

/// An optional text field of the body (a number is taken as its digits: the seed's `lineId`
/// is a number).
pub(crate) fn text_field(m: &serde_json::Map<String, Value>, field: &str) -> Result<String, Reply> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(Reply::invalid(field, "must be a string")),
    }
}

/// A backend's refusal, its message naming the seed's field where it names the RPC's
/// (`phone: ...` becomes `customerPhone: ...`).
pub(crate) fn seed_fields(s: &tonic::Status, names: &[(&str, &str)]) -> Reply {
    Reply::from_status(&renamed(s, names))
}

/// `s` with the field its message starts with named as the seed names it.
pub(crate) fn renamed(s: &tonic::Status, names: &[(&str, &str)]) -> tonic::Status {
    let msg = s.message();
    let renamed = names.iter().find_map(|(ours, seed)| {
        msg.strip_prefix(ours)
            .filter(|rest| rest.starts_with(':'))
            .map(|rest| format!("{seed}{rest}"))
    });
    tonic::Status::new(s.code(), renamed.unwrap_or_else(|| msg.to_string()))
}

pub(crate) fn bare(r: Result<Value, Reply>) -> Reply {
    r.map_or_else(|e| e, Reply::ok).in_envelope(Envelope::Bare)
}

/// 发起外呼: a click-to-dial call on a line (`callMethod: "cloud"`, the default) or through a
/// bound work phone (`"mobile"`, its line `mobile-<deviceId>`).
async fn dial(State(b): State<Backends>, headers: HeaderMap, body: Body) -> Reply {
    bare(dial_inner(&b, &headers, body).await)
}

async fn dial_inner(b: &Backends, headers: &HeaderMap, body: Body) -> Result<Value, Reply> {
    let m = object(body)?;
    let (line_id, line_field) = dial_line(&m)?;
    let phone = text_field(&m, "customerPhone")?;
    if phone.trim().is_empty() {
        return Err(Reply::invalid("customerPhone", "is required"));
    }
    let reply = dialer_client(b)
        .dial(request(
            headers,
            pb::DialRequest {
                phone,
                line_id: line_id.clone(),
                customer_id: text_field(&m, "customerId")?,
                customer_name: text_field(&m, "customerName")?,
                order_id: text_field(&m, "orderId")?,
            },
        ))
        .await
        .map_err(|s| {
            if line_field == "deviceId"
                && s.code() == tonic::Code::NotFound
                && s.message().contains(&line_id)
            {
                // The phone's line is missing: the phone is, as the caller named it.
                return Reply::error(
                    StatusCode::NOT_FOUND,
                    format!("deviceId: no bound work phone has the line {line_id}"),
                );
            }
            seed_fields(
                &s,
                &[
                    ("phone", "customerPhone"),
                    ("line_id", line_field),
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

/// The line a dial request names, and the body field that named it: `lineId` (`cloud`, empty
/// for the dialer's choice) or `deviceId` (`mobile`: a bound phone's line is `mobile-<id>`).
fn dial_line(m: &serde_json::Map<String, Value>) -> Result<(String, &'static str), Reply> {
    let given = |field: &str| !matches!(m.get(field), None | Some(Value::Null));
    match text_field(m, "callMethod")?.as_str() {
        "" | "cloud" => {
            if given("deviceId") {
                return Err(Reply::invalid(
                    "deviceId",
                    "only with callMethod \"mobile\" (a cloud call takes lineId)",
                ));
            }
            Ok((text_field(m, "lineId")?, "lineId"))
        }
        "mobile" => {
            if given("lineId") {
                return Err(Reply::invalid(
                    "lineId",
                    "not with callMethod \"mobile\": the call goes on the phone's own line \
                     (give deviceId)",
                ));
            }
            let id = match m.get("deviceId") {
                None | Some(Value::Null) => return Err(Reply::invalid(
                    "deviceId",
                    "is required with callMethod \"mobile\" (the bound work phone to call from)",
                )),
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                Some(_) => None,
            };
            match id {
                Some(id) if id > 0 => Ok((device::line_of(id), "deviceId")),
                _ => Err(Reply::invalid(
                    "deviceId",
                    "must be a device id (a positive integer)",
                )),
            }
        }
        _ => Err(Reply::invalid(
            "callMethod",
            "must be \"cloud\" or \"mobile\"",
        )),
    }
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

    fn body(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn a_mobile_call_goes_on_the_devices_line_and_a_cloud_call_on_its_line_id() {
        let line = |v: Value| dial_line(&body(v)).map_err(|r| r.message().to_string());
        assert_eq!(
            line(json!({"callMethod": "mobile", "deviceId": 7})),
            Ok(("mobile-7".to_string(), "deviceId"))
        );
        assert_eq!(
            line(json!({"callMethod": "mobile", "deviceId": "12"})),
            Ok(("mobile-12".to_string(), "deviceId"))
        );
        assert_eq!(
            line(json!({"callMethod": "cloud", "lineId": 3})),
            Ok(("3".to_string(), "lineId"))
        );
        assert_eq!(line(json!({})), Ok((String::new(), "lineId")));
        for (v, field) in [
            (json!({"callMethod": "mobile"}), "deviceId"),
            (json!({"callMethod": "mobile", "deviceId": 0}), "deviceId"),
            (json!({"callMethod": "mobile", "deviceId": -2}), "deviceId"),
            (json!({"callMethod": "mobile", "deviceId": 1.5}), "deviceId"),
            (json!({"callMethod": "mobile", "deviceId": "x"}), "deviceId"),
            (
                json!({"callMethod": "mobile", "deviceId": 7, "lineId": "a"}),
                "lineId",
            ),
            (json!({"callMethod": "cloud", "deviceId": 7}), "deviceId"),
            (json!({"callMethod": "fax"}), "callMethod"),
        ] {
            let e = line(v.clone()).expect_err("refused");
            assert!(e.starts_with(&format!("{field}:")), "{v}: {e}");
        }
    }

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
