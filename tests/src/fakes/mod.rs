//! Local servers that speak the cloud providers' documented wire formats, for tests and the
//! benchmark: they check what they are sent, answer as the provider does, and send callbacks
//! the way the provider sends them (late, twice, out of order). What they share is here.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

pub mod aliyun;
pub mod openai;
pub mod otlp;
pub mod ronglian;
pub mod tencent;
pub mod twilio;

/// A listener on a free loopback port, and its address: where a fake will serve.
pub async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Serves `app` on `listener` in the background (for as long as the test's runtime runs).
pub fn serve(listener: tokio::net::TcpListener, app: axum::Router) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// The digit `from_end` places before the end of `number` (0: the last) as a number; 0 where
/// there is none. The fakes decide a call's fate from its number's last digits.
pub fn digit(number: &str, from_end: usize) -> u64 {
    number
        .bytes()
        .rev()
        .nth(from_end)
        .map(|b| b.wrapping_sub(b'0'))
        .unwrap_or(0) as u64
}

/// Counts one more call to `number` in `tries`: the how-many-th call to it this is (1 for the
/// first).
pub fn next_try(tries: &mut HashMap<String, u32>, number: &str) -> u32 {
    let n = tries.entry(number.to_string()).or_default();
    *n += 1;
    *n
}

/// Sends a callback as a provider does when the receiver is briefly away or refuses it: the
/// `request` up to `tries` times, waiting `pause(attempt)` after each attempt that is not
/// `done` (attempts count from 0). `done` is told each attempt's HTTP status and reply body (0
/// and the error when the request failed). Whether an attempt was done.
pub async fn deliver(
    tries: u32,
    pause: impl Fn(u32) -> Duration,
    request: impl Fn() -> reqwest::RequestBuilder,
    mut done: impl FnMut(u16, &str) -> bool,
) -> bool {
    for attempt in 0..tries {
        let (status, body) = match request().send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if done(status, &body) {
            return true;
        }
        tokio::time::sleep(pause(attempt)).await;
    }
    false
}
