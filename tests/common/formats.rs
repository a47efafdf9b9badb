//! Set-ups and readers shared by the provider-format suites
//! (tests/formats.rs, tests/formats_failures.rs).

use super::*;
use serde_json::Value;
use std::time::Duration;

/// The gateway with `chat` -> one target on upstream `up` of `format`.
pub async fn one(format: &str, b: Behavior) -> (Mock, Gateway) {
    let m = mock(b).await;
    let gw = Gateway::start(&config(
        &upstream("up", &m.url(), &format!("format: {format}")),
        "  chat: [{upstream: up, model: m}]\n",
        "",
    ))
    .await;
    (m, gw)
}

pub fn ok() -> Behavior {
    Behavior::Ok {
        events: 4,
        event_delay: Duration::ZERO,
    }
}

pub fn messages_body(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "max_tokens": 64, "stream": stream, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string()
}

pub fn anthropic_auth() -> Vec<(&'static str, &'static str)> {
    vec![
        ("x-api-key", "sk-client-test-key-1"),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ]
}

/// `POST /v1/messages` for model `chat` as an Anthropic client.
pub async fn messages(gw: &Gateway, stream: bool) -> Response {
    gw.post(
        "/v1/messages",
        &anthropic_auth(),
        &messages_body("chat", stream),
    )
    .await
}

/// `POST /v1/chat/completions` for model `chat`.
pub async fn chat(gw: &Gateway, stream: bool) -> Response {
    gw.post("/v1/chat/completions", &auth(), &chat_body("chat", stream))
        .await
}

/// `event:` names of an SSE body, in order.
pub fn event_names(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("event: ").map(str::to_string))
        .collect()
}

pub fn chat_stream_text(body: &[u8]) -> String {
    sse_data(body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

pub fn raw(content_type: &str, body: Value) -> Behavior {
    Behavior::Raw {
        content_type: content_type.into(),
        body: body.to_string(),
    }
}

pub fn raw_sse(events: &[(&str, Value)]) -> Behavior {
    let body: String = events
        .iter()
        .map(|(name, data)| {
            // A JSON string is written raw (`[DONE]`).
            let data = data
                .as_str()
                .map_or_else(|| data.to_string(), str::to_string);
            match *name {
                "" => format!("data: {data}\n\n"),
                n => format!("event: {n}\ndata: {data}\n\n"),
            }
        })
        .collect();
    Behavior::Raw {
        content_type: "text/event-stream".into(),
        body,
    }
}
