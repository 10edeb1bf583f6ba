//! Seed 003's work phones (方案一, §5.1 设备管理接口): `/api/v1/calls/device/...` over the provider
//! adapter's `ProviderService` (`CreateDeviceBinding`, `ListDevices`, `GetDevice`,
//! `UnbindDevice`). The QR code an admin shows a phone is drawn here (`qr.rs`), as a PNG in a
//! data URL: the adapter hands out its content (the seed's JSON with a one-time token).
//!
//! The phone app's own calls (`POST /device/bind`, the WebSocket, `/mobile/...`) are served by
//! the adapter's HTTP server; an app sent here for the binding is redirected there (308 keeps
//! the method and body).

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine;
use serde_json::{json, Value};
use waihu_proto::v1::{self as pb, provider_service_client::ProviderServiceClient};

use crate::{
    calls::{bare, renamed, seed_fields, text_field},
    lead::{national, request, time},
    Backends, Envelope, Reply,
};

/// The line a bound phone's calls go on.
pub(crate) fn line_of(device_id: u64) -> String {
    format!("mobile-{device_id}")
}

fn provider_client(b: &Backends) -> ProviderServiceClient<waihu_runtime::telemetry::Traced> {
    ProviderServiceClient::new(waihu_runtime::telemetry::traced(b.provider.clone()))
}

/// 生成设备绑定二维码: a one-time binding for a user's phone (the caller's without `userId`),
/// its QR code as a PNG data URL and as text, and when it expires.
pub(crate) async fn bind_qr_code(
    State(b): State<Backends>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    bare(bind_qr_code_inner(&b, &headers, &body).await)
}

async fn bind_qr_code_inner(
    b: &Backends,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Reply> {
    // `userId` is optional, so is the body.
    let m = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(Reply::error(
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object",
                ))
            }
            Err(e) => {
                return Err(Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid JSON: {e}"),
                ))
            }
        }
    };
    let user_id = text_field(&m, "userId")?;
    let binding = provider_client(b)
        .create_device_binding(request(headers, pb::CreateDeviceBindingRequest { user_id }))
        .await
        .map_err(|s| seed_fields(&s, &[("user_id", "userId")]))?
        .into_inner();
    let png = crate::qr::qr_png(&binding.qr_payload).map_err(|e| {
        tracing::error!(error = %e, "cannot draw the binding QR code");
        Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    Ok(json!({
        "success": true,
        "qrCodeUrl": format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        ),
        "qrCodeData": binding.qr_payload,
        "expiresAt": time(&binding.expires_at),
    }))
}

/// APP扫码绑定设备: the app's call, served by the provider adapter: 308 there (same method,
/// same body), without looking at the request (it carries no user token).
pub(crate) async fn bind(State(b): State<Backends>, uri: Uri) -> Response {
    let mut location = format!("{}{}", b.provider_public_url, uri.path());
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    let body = Json(json!({
        "success": false,
        "message": format!("the phone app binds at the provider adapter: {location}"),
        "location": location,
    }));
    match header::HeaderValue::try_from(location) {
        Ok(v) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, v)],
            body,
        )
            .into_response(),
        Err(_) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            .in_envelope(Envelope::Bare)
            .into_response(),
    }
}

/// 获取已绑定设备列表: the tenant's bound phones, or one user's (`?userId=`).
pub(crate) async fn list(
    State(b): State<Backends>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let user_id = q.get("userId").cloned().unwrap_or_default();
    let found = provider_client(&b)
        .list_devices(request(&headers, pb::ListDevicesRequest { user_id }))
        .await;
    let devices = match found {
        Ok(r) => r.into_inner().devices,
        Err(s) => return path_or_query_failure(&s, &[("user_id", "userId")]),
    };
    let devices: Vec<Value> = devices
        .iter()
        .filter(|d| d.unbound_at.is_none())
        .map(seed_device)
        .collect();
    Reply::ok(json!({ "devices": devices })).in_envelope(Envelope::Bare)
}

/// One device as the seed's list shows it.
pub(crate) fn seed_device(d: &pb::Device) -> Value {
    json!({
        "id": d.id,
        "phoneNumber": national(&d.phone_number),
        "deviceName": d.device_name,
        "deviceModel": d.device_model,
        "osType": d.os_type,
        "onlineStatus": if d.online { "online" } else { "offline" },
        "lastActiveAt": time(&d.last_heartbeat),
        "bindTime": time(&d.bound_at),
    })
}

/// 解绑设备.
pub(crate) async fn unbind(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let id = match device_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match provider_client(&b)
        .unbind_device(request(&headers, pb::DeviceRequest { id }))
        .await
    {
        Ok(_) => Reply::ok(json!({"success": true})).in_envelope(Envelope::Bare),
        Err(s) => path_or_query_failure(&s, &[]),
    }
}

/// 检查设备在线状态.
pub(crate) async fn status(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let id = match device_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match provider_client(&b)
        .get_device(request(&headers, pb::DeviceRequest { id }))
        .await
    {
        Ok(d) => {
            let d = d.into_inner();
            Reply::ok(json!({
                "online": d.online,
                "lastHeartbeat": time(&d.last_heartbeat),
            }))
            .in_envelope(Envelope::Bare)
        }
        Err(s) => path_or_query_failure(&s, &[]),
    }
}

/// The device a path names: 400 unless a positive integer.
fn device_id(s: &str) -> Result<u64, Reply> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            format!("id: {s:?} is not a device id (a positive integer)"),
        )
        .in_envelope(Envelope::Bare)),
    }
}

/// A refusal of what the path or query named, the field named as the seed names it: an invalid
/// argument is a malformed request here (400), not a body that failed validation (422).
fn path_or_query_failure(s: &tonic::Status, names: &[(&str, &str)]) -> Reply {
    let s = renamed(s, names);
    let reply = if s.code() == tonic::Code::InvalidArgument {
        Reply::error(StatusCode::BAD_REQUEST, s.message())
    } else {
        Reply::from_status(&s)
    };
    reply.in_envelope(Envelope::Bare)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;
    use waihu_auth::{AuthConfig, Claims, Keys};
    use waihu_runtime::CommonConfig;

    use super::*;
    use crate::{Backends, GatewayConfig};

    #[test]
    fn a_devices_line_is_mobile_and_its_id() {
        assert_eq!(line_of(42), "mobile-42");
    }

    #[test]
    fn a_device_shows_in_the_seeds_fields() {
        let d = pb::Device {
            id: 9,
            user_id: "ann".into(),
            phone_number: "+8613800138000".into(),
            device_name: "Ann's phone".into(),
            device_model: "Pixel 8".into(),
            os_type: "android".into(),
            online: true,
            bound_at: Some(prost_types::Timestamp {
                seconds: 1_703_491_200,
                nanos: 0,
            }),
            line_id: "mobile-9".into(),
            ..Default::default()
        };
        assert_eq!(
            seed_device(&d),
            json!({
                "id": 9,
                "phoneNumber": "13800138000",
                "deviceName": "Ann's phone",
                "deviceModel": "Pixel 8",
                "osType": "android",
                "onlineStatus": "online",
                "lastActiveAt": null,
                "bindTime": "2023-12-25T08:00:00Z",
            })
        );
    }

    /// The router in front of services that are not there (a call to one is 503).
    fn app() -> axum::Router {
        let mut config = GatewayConfig::from_layers(
            &waihu_runtime::config::Layers::from_vars(Vec::<(String, String)>::new())
                .expect("layers"),
        )
        .expect("defaults");
        config.auth = AuthConfig::with_hs256(CommonConfig::TEST_KEY);
        config.auth.dev_mode = false;
        config.provider_addr = "http://127.0.0.1:1".into();
        config.dialer_addr = "http://127.0.0.1:1".into();
        config.provider_public_url = "https://adapter.example.com".into();
        crate::router(Backends::new(&config).expect("backends"))
    }

    fn token() -> String {
        Keys::load(&AuthConfig::with_hs256(CommonConfig::TEST_KEY))
            .expect("keys")
            .mint(&Claims::new(
                "acme",
                "ann",
                waihu_auth::ALL_PERMISSIONS,
                600,
            ))
            .expect("mint")
    }

    async fn send(method: &str, path: &str, token: Option<&str>, body: &str) -> Response {
        let mut r = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        app()
            .oneshot(r.body(Body::from(body.to_string())).expect("request"))
            .await
            .expect("answered")
    }

    async fn json_of(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn the_apps_binding_is_redirected_to_the_adapter_without_a_token() {
        let r = send(
            "POST",
            "/api/v1/calls/device/bind?v=2",
            None,
            r#"{"token":"bt_1","deviceId":"d"}"#,
        )
        .await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        let want = "https://adapter.example.com/api/v1/calls/device/bind?v=2";
        assert_eq!(r.headers()[header::LOCATION], want);
        assert_eq!(json_of(r).await["location"], want);
    }

    #[tokio::test]
    async fn the_admins_device_routes_still_want_a_token() {
        for (method, path) in [
            ("POST", "/api/v1/calls/device/bindQRCode"),
            ("GET", "/api/v1/calls/device/list"),
            ("DELETE", "/api/v1/calls/device/3"),
            ("GET", "/api/v1/calls/device/3/status"),
        ] {
            let r = send(method, path, None, "{}").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }

    #[tokio::test]
    async fn a_device_id_that_is_not_a_positive_integer_is_a_bad_request_naming_id() {
        let token = token();
        for (method, path) in [
            ("DELETE", "/api/v1/calls/device/abc"),
            ("GET", "/api/v1/calls/device/0/status"),
            ("GET", "/api/v1/calls/device/-1/status"),
        ] {
            let r = send(method, path, Some(&token), "").await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{method} {path}");
            let v = json_of(r).await;
            assert_eq!(v["success"], false);
            assert!(
                v["message"].as_str().is_some_and(|m| m.starts_with("id:")),
                "{v}"
            );
        }
    }

    #[tokio::test]
    async fn a_valid_request_reaches_the_provider_adapter_which_is_down_here() {
        let token = token();
        for (method, path, body) in [
            ("POST", "/api/v1/calls/device/bindQRCode", ""),
            (
                "POST",
                "/api/v1/calls/device/bindQRCode",
                r#"{"userId":"bob"}"#,
            ),
            ("GET", "/api/v1/calls/device/list?userId=bob", ""),
            ("DELETE", "/api/v1/calls/device/3", ""),
            ("GET", "/api/v1/calls/device/3/status", ""),
            (
                "POST",
                "/api/v1/calls/dial",
                r#"{"customerPhone":"13800000001","callMethod":"mobile","deviceId":3}"#,
            ),
        ] {
            let r = send(method, path, Some(&token), body).await;
            assert_eq!(
                r.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path}"
            );
        }
        for (body, want, field) in [
            ("[1]", StatusCode::BAD_REQUEST, ""),
            ("{", StatusCode::BAD_REQUEST, ""),
            (
                r#"{"userId": ["x"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "userId:",
            ),
        ] {
            let r = send(
                "POST",
                "/api/v1/calls/device/bindQRCode",
                Some(&token),
                body,
            )
            .await;
            assert_eq!(r.status(), want, "{body}");
            let v = json_of(r).await;
            assert!(
                v["message"].as_str().is_some_and(|m| m.starts_with(field)),
                "{v}"
            );
        }
    }

    #[tokio::test]
    async fn a_mobile_call_without_a_device_is_refused_naming_device_id() {
        let r = send(
            "POST",
            "/api/v1/calls/dial",
            Some(&token()),
            r#"{"customerPhone":"13800000001","callMethod":"mobile"}"#,
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v = json_of(r).await;
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("deviceId:")),
            "{v}"
        );
    }
}
