//! A local OpenAI-compatible API: `POST /v1/chat/completions` (structured output through
//! `response_format: {"type": "json_schema", ...}`) and `POST /v1/audio/transcriptions`
//! (multipart: `file`, `model`, `response_format`, `language`), behind a bearer key, as the
//! OpenAI API reference documents them. It checks what it is sent (the schema is there and
//! strict, the file is a WAV), logs every request, and answers as scripted: a queue of faults
//! per endpoint (a hang longer than the client's timeout, a 5xx, a 429, a 401, a body that is not
//! JSON, content that breaks the schema) and otherwise a good answer. The "model" reads the
//! customer's words with a few fixed phrases, so answers are deterministic.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Multipart, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};

use super::{bind, serve};

/// What the fake does with the next request to an endpoint instead of answering well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Waits this long before answering well (longer than the client's timeout: a timeout).
    Hang(Duration),
    /// Answers with this HTTP status and an OpenAI-style error body.
    Status(u16),
    /// Answers 200 with a body that is not JSON.
    NotJson,
    /// Answers 200 with a completion whose content is not the schema's object.
    BadContent,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// "chat" or "transcription".
    pub endpoint: &'static str,
    pub model: String,
    /// Chat: the user message (the transcript); transcription: the file name and its size.
    pub input: String,
    /// What the fake did: "ok", or the fault.
    pub answer: String,
}

#[derive(Default)]
struct Script {
    chat: VecDeque<Fault>,
    transcription: VecDeque<Fault>,
    seen: Vec<Seen>,
}

/// The running fake.
#[derive(Clone)]
pub struct OpenAi {
    pub addr: SocketAddr,
    key: String,
    /// What every transcription says (one turn per line, unlabelled as Whisper writes it).
    transcript: Arc<Mutex<String>>,
    script: Arc<Mutex<Script>>,
}

impl OpenAi {
    /// Starts a fake that wants `Authorization: Bearer <key>`.
    pub async fn start(key: &str) -> OpenAi {
        let (listener, addr) = bind().await;
        let fake = OpenAi {
            addr,
            key: key.to_string(),
            transcript: Arc::new(Mutex::new(
                "您好，请问是王先生吗？\n是我，什么事？\n我们楼盘周末有开放日，您有兴趣来看看吗？\n好啊，我周六上午过去看看，价格能优惠吗？"
                    .to_string(),
            )),
            script: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/audio/transcriptions", post(transcription))
            .with_state(fake.clone());
        serve(listener, app);
        fake
    }

    /// The base URL a client is given (`.../v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues faults for the next chat requests, in order.
    pub fn fail_chat(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().expect("script").chat.extend(faults);
    }

    /// Queues faults for the next transcription requests, in order.
    pub fn fail_transcription(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script
            .lock()
            .expect("script")
            .transcription
            .extend(faults);
    }

    /// Sets what every later transcription says.
    pub fn set_transcript(&self, text: &str) {
        *self.transcript.lock().expect("transcript") = text.to_string();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().expect("script").seen.clone()
    }

    fn next_fault(&self, endpoint: &'static str) -> Option<Fault> {
        let mut s = self.script.lock().expect("script");
        match endpoint {
            "chat" => s.chat.pop_front(),
            _ => s.transcription.pop_front(),
        }
    }

    fn log(&self, endpoint: &'static str, model: String, input: String, answer: String) {
        self.script.lock().expect("script").seen.push(Seen {
            endpoint,
            model,
            input,
            answer,
        });
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", self.key))
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}

/// Plays a fault: Some(response) to send, or None to answer well (after any hang).
async fn play(fault: Option<&Fault>) -> Option<Response> {
    match fault? {
        Fault::Hang(d) => {
            tokio::time::sleep(*d).await;
            None
        }
        Fault::Status(code) => Some(error(
            StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure",
        )),
        Fault::NotJson => Some((StatusCode::OK, "<html>gateway</html>").into_response()),
        Fault::BadContent => None,
    }
}

/// The fake model's reading of the customer's words.
fn judge(transcript: &str) -> (&'static str, &'static str) {
    let t = transcript.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["不需要", "别再打", "not interested", "stop calling"]) {
        ("not_interested", "negative")
    } else if has(&["打错", "wrong number", "不是他"]) {
        ("wrong_number", "neutral")
    } else if has(&["在开会", "晚点", "call me later", "busy right now"]) {
        ("inconvenient", "neutral")
    } else if has(&["过去看看", "预约", "book", "sign me up"]) {
        ("interested", "positive")
    } else if has(&["考虑", "think about", "send me"]) {
        ("considering", "neutral")
    } else {
        ("no_conversation", "neutral")
    }
}

async fn chat(State(f): State<OpenAi>, headers: HeaderMap, body: String) -> Response {
    if !f.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let model = req["model"].as_str().unwrap_or_default().to_string();
    let format = &req["response_format"];
    if format["type"] != "json_schema"
        || format["json_schema"]["strict"] != true
        || !format["json_schema"]["schema"]["properties"]["intent"].is_object()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "response_format must be a strict json_schema",
        );
    }
    let transcript = req["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let fault = f.next_fault("chat");
    let answer = fault
        .as_ref()
        .map(|x| format!("{x:?}"))
        .unwrap_or_else(|| "ok".into());
    f.log("chat", model.clone(), transcript.clone(), answer);
    if let Some(r) = play(fault.as_ref()).await {
        return r;
    }
    let content = if fault == Some(Fault::BadContent) {
        json!({"intent": "maybe", "mood": "fine"}).to_string()
    } else {
        let (intent, sentiment) = judge(&transcript);
        let zh = transcript
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        json!({
            "intent": intent,
            "sentiment": sentiment,
            "keywords": if zh { vec!["开放日", "价格"] } else { vec!["price", "visit"] },
            "summary": if zh { "客户愿意周六上午来看房，关心价格优惠。" } else { "The customer will visit on Saturday." },
            "language": if zh { "zh" } else { "en" },
        })
        .to_string()
    };
    Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null}, "finish_reason": "stop"}],
    }))
    .into_response()
}

async fn transcription(
    State(f): State<OpenAi>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if !f.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
    }
    let (mut model, mut file, mut name, mut format) =
        (String::new(), None, String::new(), String::new());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let field_name = field.name().unwrap_or_default().to_string();
                if field_name == "file" {
                    name = field.file_name().unwrap_or_default().to_string();
                    match field.bytes().await {
                        Ok(b) => file = Some(b),
                        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
                    }
                } else {
                    let value = field.text().await.unwrap_or_default();
                    match field_name.as_str() {
                        "model" => model = value,
                        "response_format" => format = value,
                        _ => {}
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let Some(file) = file else {
        return error(StatusCode::BAD_REQUEST, "file is required");
    };
    if model.is_empty() {
        return error(StatusCode::BAD_REQUEST, "model is required");
    }
    if !file.starts_with(b"RIFF") || !name.ends_with(".wav") {
        return error(StatusCode::BAD_REQUEST, "Invalid file format.");
    }
    let fault = f.next_fault("transcription");
    let answer = fault
        .as_ref()
        .map(|x| format!("{x:?}"))
        .unwrap_or_else(|| "ok".into());
    f.log(
        "transcription",
        model,
        format!("{name} {} bytes", file.len()),
        answer,
    );
    if let Some(r) = play(fault.as_ref()).await {
        return r;
    }
    if fault == Some(Fault::BadContent) {
        return Json(json!({"transcript": 1})).into_response();
    }
    let text = f.transcript.lock().expect("transcript").clone();
    if format == "text" {
        return text.into_response();
    }
    Json(json!({"text": text})).into_response()
}
