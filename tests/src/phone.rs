//! A work phone's app, played by a real WebSocket client (tokio-tungstenite) and plain HTTP:
//! binds with a QR token, connects, receives commands, reports, uploads.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};
use waihu_proto::v1 as pb;

use crate::Cluster;

/// A bound phone: its number, token and line.
#[derive(Debug, Clone)]
pub struct Phone {
    pub id: u64,
    pub device_id: String,
    pub token: String,
    pub line_id: String,
    pub websocket_url: String,
    /// Where the adapter takes the app's HTTP calls (`http://host:port`).
    pub http: String,
}

/// An HTTP reply's status and JSON body (null when it has none).
async fn reply(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The app's live WebSocket.
pub struct Socket(WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>);

impl Cluster {
    /// A binding token (the QR code) for `user`.
    pub async fn device_binding(&self, user: &str) -> pb::DeviceBinding {
        self.providers()
            .await
            .create_device_binding(pb::CreateDeviceBindingRequest {
                user_id: user.into(),
            })
            .await
            .expect("binding")
            .into_inner()
    }

    /// Binds a phone as its app does: `(HTTP status, reply)`.
    pub async fn bind_phone_raw(&self, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!(
                "http://{}/api/v1/calls/device/bind",
                self.provider_http
            ))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("bind reachable");
        reply(r).await
    }

    /// Makes a QR token for `user` and binds a phone (`os`: android or ios) with it.
    pub async fn bind_phone(&self, user: &str, device_id: &str, number: &str, os: &str) -> Phone {
        let binding = self.device_binding(user).await;
        let (status, reply) = self
            .bind_phone_raw(json!({
                "token": binding.token,
                "deviceId": device_id,
                "phoneNumber": number,
                "deviceName": "工作手机",
                "deviceModel": "Test 1",
                "osType": os,
                "osVersion": "14",
                "appVersion": "1.0.0",
            }))
            .await;
        assert_eq!(status, 200, "{reply}");
        Phone {
            id: reply["id"].as_u64().expect("id"),
            device_id: device_id.into(),
            token: reply["authToken"].as_str().expect("authToken").into(),
            line_id: reply["lineId"].as_str().expect("lineId").into(),
            websocket_url: reply["websocketUrl"].as_str().expect("websocketUrl").into(),
            http: format!("http://{}", self.provider_http),
        }
    }

    pub async fn device(&self, id: u64) -> pb::Device {
        self.providers()
            .await
            .get_device(pb::DeviceRequest { id })
            .await
            .expect("device")
            .into_inner()
    }
}

impl Phone {
    /// Opens the app's WebSocket with its token; Err with the HTTP status when refused.
    pub async fn connect(&self) -> Result<Socket, u16> {
        let mut req = self
            .websocket_url
            .as_str()
            .into_client_request()
            .expect("ws request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().expect("header"),
        );
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Socket(ws)),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// Posts a report as the app does over HTTP (`/mobile/status` or `/mobile/end`).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/calls/mobile/{path}", self.http))
            .bearer_auth(&self.token)
            .header("x-device-id", &self.device_id)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("reachable");
        reply(r).await
    }

    /// Uploads a recording of `call` as multipart/form-data.
    pub async fn upload(&self, call: &str, bytes: &[u8]) -> (u16, Value) {
        let boundary = "waihu-test-boundary-7f3a";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"callId\"\r\n\r\n{call}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rec.m4a\"\r\n\
                 Content-Type: audio/mp4\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/calls/mobile/recording/upload",
                self.http
            ))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("reachable");
        reply(r).await
    }
}

impl Socket {
    /// Sends a message of the seed's shape.
    pub async fn send(&mut self, kind: &str, message_id: &str, data: Value) {
        let m = json!({"type": kind, "messageId": message_id, "timestamp": 0, "data": data});
        self.0
            .send(Message::Text(m.to_string().into()))
            .await
            .expect("send");
    }

    /// The next message within `wait`: Some(JSON), or None when the server closed the socket.
    pub async fn recv(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(wait, self.0.next())
                .await
                .expect("a message in time")?;
            match m {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).expect("JSON")),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next message of type `kind`, skipping others (heartbeat acks).
    pub async fn expect(&mut self, kind: &str, wait: Duration) -> Value {
        loop {
            let m = self
                .recv(wait)
                .await
                .unwrap_or_else(|| panic!("closed before {kind}"));
            if m["type"] == kind {
                return m;
            }
        }
    }

    /// Nothing arrives within `wait` (the socket stays open).
    pub async fn quiet(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.0.next()).await.is_err()
    }

    pub async fn close(mut self) {
        let _ = self.0.close(None).await;
    }
}
