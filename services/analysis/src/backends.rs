//! The two network backends, both OpenAI-compatible: a chat endpoint that analyses a transcript
//! into a JSON schema (`/chat/completions` with `response_format: json_schema`), and a
//! transcription endpoint that turns a recording into text (`/audio/transcriptions`).
//!
//! Every failure says whether trying again can help: timeouts, connection errors, 408, 429, 5xx
//! and answers that do not parse or break the schema are retried; other 4xx (a wrong key, a model
//! that does not exist, audio the backend refuses) are not.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use waihu_analyzer::{Intent, Sentiment};

use crate::config::Backend;

/// Why a backend gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Another attempt may succeed.
    #[error("{0}")]
    Retry(String),
    /// Another attempt will fail the same way.
    #[error("{0}")]
    Permanent(String),
}

impl BackendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, BackendError::Permanent(_))
    }
}

/// Largest answer body read from a backend.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Keywords kept from a chat answer, and the longest one.
const MAX_KEYWORDS: usize = 10;
const MAX_KEYWORD_CHARS: usize = 40;
/// The longest summary kept from a chat answer (characters).
const MAX_SUMMARY_CHARS: usize = 600;

/// What the chat analyzer found.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAnalysis {
    pub intent: Intent,
    pub sentiment: Sentiment,
    pub keywords: Vec<String>,
    pub summary: String,
    /// "zh" or "en".
    pub language: String,
}

/// One HTTP client for both backends (each request carries its backend's timeout).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new() -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("waihu-analysis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client { http })
    }

    /// Asks the chat endpoint of `b` for the analysis of `transcript`.
    pub async fn chat(&self, b: &Backend, transcript: &str) -> Result<ChatAnalysis, BackendError> {
        let body = json!({
            "model": b.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": transcript},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "call_analysis", "strict": true, "schema": schema()},
            },
        });
        let req = self
            .http
            .post(b.url("chat/completions"))
            .timeout(b.timeout)
            .header("content-type", "application/json")
            .body(body.to_string());
        let answer = send(authorised(req, b)).await?;
        parse_chat(&answer)
    }

    /// Asks the transcription endpoint of `b` for the text of `audio` (a file named
    /// `file_name`, of `content_type`).
    pub async fn transcribe(
        &self,
        b: &Backend,
        audio: bytes::Bytes,
        file_name: &str,
        content_type: &str,
        language: &str,
    ) -> Result<String, BackendError> {
        let part = reqwest::multipart::Part::stream(audio)
            .file_name(file_name.to_string())
            .mime_str(content_type)
            .map_err(|e| BackendError::Permanent(format!("content type {content_type:?}: {e}")))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", b.model.clone())
            .text("response_format", "json");
        if !language.is_empty() {
            form = form.text("language", language.to_string());
        }
        let req = self
            .http
            .post(b.url("audio/transcriptions"))
            .timeout(b.timeout)
            .multipart(form);
        let answer = send(authorised(req, b)).await?;
        #[derive(Deserialize)]
        struct Transcription {
            text: String,
        }
        let t: Transcription = serde_json::from_slice(&answer).map_err(|e| {
            BackendError::Retry(format!(
                "transcription answer is not {{\"text\": ...}}: {e}"
            ))
        })?;
        Ok(t.text)
    }
}

fn authorised(req: reqwest::RequestBuilder, b: &Backend) -> reqwest::RequestBuilder {
    match b.api_key.expose() {
        "" => req,
        key => req.bearer_auth(key),
    }
}

/// Sends and reads a bounded answer body; a status that is not 2xx is an error saying whether to
/// retry.
async fn send(req: reqwest::RequestBuilder) -> Result<Vec<u8>, BackendError> {
    let mut resp = req.send().await.map_err(|e| {
        BackendError::Retry(if e.is_timeout() {
            "timed out".to_string()
        } else {
            format!("request failed: {}", without_url(&e))
        })
    })?;
    let status = resp.status();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(BackendError::Retry(format!(
                        "HTTP {}: answer larger than {MAX_ANSWER_BYTES} bytes",
                        status.as_u16()
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(BackendError::Retry(if e.is_timeout() {
                    "timed out reading the answer".to_string()
                } else {
                    format!("reading the answer: {}", without_url(&e))
                }))
            }
        }
    }
    if status.is_success() {
        return Ok(body);
    }
    let detail: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let reason = format!("HTTP {}: {detail}", status.as_u16());
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(BackendError::Retry(reason))
    } else {
        Err(BackendError::Permanent(reason))
    }
}

/// A reqwest error's text without its URL (which may carry a key in a query).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<backend>");
    }
    s
}

const SYSTEM_PROMPT: &str = "You analyse the transcript of an outbound sales or service call \
between an agent and a customer (Chinese or English; turns may be labelled such as 坐席/客服/销售/Agent \
and 客户/用户/Customer, or unlabelled). Judge the CUSTOMER only. intent: interested (wants the next \
step: a visit, interview, quote, purchase), considering (undecided: wants information, will \
compare or think), inconvenient (cannot talk now, asks for another time: timing, not a decision), \
not_interested (declines, asks not to be called), wrong_number (not the intended person), \
no_conversation (voicemail, IVR, out-of-service message, silence, no real exchange). sentiment: \
positive, neutral or negative, of the customer. keywords: up to 8 words a sales person would \
want (products, prices, times, objections), no filler words. summary: one to three sentences on \
the customer's stance and any agreed next step, in the transcript's language. language: zh or en.";

/// The JSON schema the chat answer must follow.
pub fn schema() -> serde_json::Value {
    let intents: Vec<&str> = Intent::ALL.iter().map(|i| i.name()).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["intent", "sentiment", "keywords", "summary", "language"],
        "properties": {
            "intent": {"type": "string", "enum": intents},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "keywords": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"},
            "language": {"type": "string", "enum": ["zh", "en"]},
        },
    })
}

/// Reads a chat completion: the first choice's message content, a JSON object in the schema.
pub fn parse_chat(body: &[u8]) -> Result<ChatAnalysis, BackendError> {
    #[derive(Deserialize)]
    struct Completion {
        choices: Vec<Choice>,
    }
    #[derive(Deserialize)]
    struct Choice {
        message: Message,
        #[serde(default)]
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        refusal: Option<String>,
    }
    #[derive(Deserialize)]
    struct Answer {
        intent: String,
        sentiment: String,
        #[serde(default)]
        keywords: Vec<String>,
        #[serde(default)]
        summary: String,
        #[serde(default)]
        language: String,
    }
    let malformed = |what: String| BackendError::Retry(format!("malformed answer: {what}"));
    let c: Completion = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not a chat completion ({e})")))?;
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| malformed("no choices".into()))?;
    if let Some(r) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
        return Err(BackendError::Permanent(format!(
            "the model refused: {}",
            r.chars().take(200).collect::<String>()
        )));
    }
    let content = choice
        .message
        .content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            malformed(format!(
                "no content (finish_reason {})",
                choice.finish_reason.as_deref().unwrap_or("none")
            ))
        })?;
    let a: Answer = serde_json::from_str(content.trim())
        .map_err(|e| malformed(format!("content is not the schema's object ({e})")))?;
    let intent = Intent::parse(a.intent.trim())
        .ok_or_else(|| malformed(format!("intent {:?} is not one of the six", a.intent)))?;
    let sentiment = Sentiment::parse(a.sentiment.trim()).ok_or_else(|| {
        malformed(format!(
            "sentiment {:?} is not positive, neutral or negative",
            a.sentiment
        ))
    })?;
    let mut keywords: Vec<String> = Vec::new();
    for k in a.keywords {
        let k: String = k
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_KEYWORD_CHARS)
            .collect();
        if !k.is_empty() && !keywords.contains(&k) && keywords.len() < MAX_KEYWORDS {
            keywords.push(k);
        }
    }
    let summary: String = a
        .summary
        .trim()
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .take(MAX_SUMMARY_CHARS)
        .collect();
    let language = match a.language.trim() {
        "zh" => "zh",
        "en" => "en",
        _ => "",
    }
    .to_string();
    Ok(ChatAnalysis {
        intent,
        sentiment,
        keywords,
        summary,
        language,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(content: &str) -> Vec<u8> {
        json!({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_good_answer_is_read_and_bounded() {
        let long_kw = "k".repeat(100);
        let content = json!({
            "intent": "interested", "sentiment": "positive",
            "keywords": ["价格", " 价格 ", "", long_kw, "a", "b", "c", "d", "e", "f", "g", "h", "i"],
            "summary": "客户想周六来看房。", "language": "zh"
        })
        .to_string();
        let a = parse_chat(&completion(&content)).expect("parsed");
        assert_eq!(a.intent, Intent::Interested);
        assert_eq!(a.sentiment, Sentiment::Positive);
        assert_eq!(a.keywords.len(), MAX_KEYWORDS);
        assert_eq!(a.keywords[0], "价格");
        assert_eq!(a.keywords[1].chars().count(), MAX_KEYWORD_CHARS);
        assert_eq!(a.language, "zh");
    }

    #[test]
    fn malformed_answers_are_retried_and_refusals_are_not() {
        for body in [
            b"not json".to_vec(),
            br#"{"choices": []}"#.to_vec(),
            completion("{\"intent\": \"maybe\", \"sentiment\": \"neutral\"}"),
            completion("{\"intent\": \"interested\", \"sentiment\": \"happy\"}"),
            completion("```json\n{}\n```"),
            completion(""),
        ] {
            let e = parse_chat(&body).expect_err("malformed");
            assert!(!e.is_permanent(), "{e}");
            assert!(e.to_string().starts_with("malformed answer"), "{e}");
        }
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "I can't"}}]});
        let e = parse_chat(refused.to_string().as_bytes()).expect_err("refused");
        assert!(e.is_permanent(), "{e}");
    }

    #[test]
    fn the_schema_names_every_intent() {
        let s = schema();
        let intents = s["properties"]["intent"]["enum"].as_array().expect("enum");
        assert_eq!(intents.len(), Intent::ALL.len());
    }
}
