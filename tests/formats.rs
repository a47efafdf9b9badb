//! Provider formats through real sockets (design.md section 9): every inbound
//! format (chat, Anthropic Messages, Responses) against every upstream format
//! (openai, anthropic, gemini), plain and streamed, tool calls, health-check
//! key headers; same-format pass-through byte-identical. The mock answers in
//! each provider's shape. Failure paths: tests/formats_failures.rs.

mod common;
use common::formats::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn chat_to_anthropic_plain_and_streamed() {
    let (m, gw) = one("anthropic", ok()).await;
    let body = json!({"model": "chat", "max_tokens": 50, "stop": "END",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    let r = gw
        .post("/v1/chat/completions", &auth(), &body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "m", "the target's model name");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the mock provider."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    assert_eq!(r.header("x-llmgate-upstream"), Some("up"));

    let seen = m.seen();
    let req = seen.last().unwrap();
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("sk-up-up-secret"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("authorization"), None, "no client or Bearer key");
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent["model"], "m");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["system"][0]["text"], "sys");
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(
        sent["messages"][0]["content"][1]["source"]["media_type"],
        "image/png"
    );
    assert_eq!(sent["tools"][0]["name"], "f");

    let r = chat(&gw, true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.chunked && r.complete);
    let data = sse_data(&r.body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(chat_stream_text(&r.body), "tok0 tok1 tok2 tok3 ");
    assert!(
        !r.text().contains("prompt_tokens"),
        "no usage chunk unasked"
    );
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let with_usage = json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .post("/v1/chat/completions", &auth(), &with_usage.to_string())
        .await;
    assert!(r.text().contains("\"completion_tokens\":4"), "{}", r.text());
    let sent: Value = serde_json::from_slice(&m.seen().last().unwrap().body).unwrap();
    assert!(
        sent.get("stream_options").is_none(),
        "not an Anthropic field"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_to_gemini_plain_and_streamed() {
    let (m, gw) = one("gemini", ok()).await;
    let r = chat(&gw, false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the mock provider."
    );
    assert_eq!(v["usage"]["completion_tokens"], 6);
    let req = m.seen().last().cloned().unwrap();
    assert_eq!(req.path, "/v1/models/m:generateContent");
    assert_eq!(req.header("x-goog-api-key"), Some("sk-up-up-secret"));
    assert_eq!(req.header("authorization"), None);
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        sent["contents"][0],
        json!({"role": "user", "parts": [{"text": "hi"}]})
    );

    let r = chat(&gw, true).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        m.seen().last().unwrap().path,
        "/v1/models/m:streamGenerateContent?alt=sse"
    );
    assert_eq!(chat_stream_text(&r.body), "tok0 tok1 tok2 tok3 ");
    let data = sse_data(&r.body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(data
        .iter()
        .any(|d| d.contains("\"finish_reason\":\"stop\"")));
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_to_anthropic_is_byte_identical() {
    let (m, gw) = one("anthropic", ok()).await;
    for stream in [false, true] {
        let via = messages(&gw, stream).await;
        let sent = m.seen().last().cloned().unwrap();
        let direct = request(
            &m.addr.to_string(),
            "POST",
            "/v1/messages",
            &[],
            messages_body("m", stream).as_bytes(),
        )
        .await;
        assert_eq!(via.status, 200);
        assert_eq!(via.body, direct.body, "stream: {stream}");
        assert_eq!(sent.header("x-api-key"), Some("sk-up-up-secret"));
        assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(
            sent.body,
            messages_body("m", stream).into_bytes(),
            "only the model spliced"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_to_openai_and_gemini_translated_both_ways() {
    for format in ["openai", "gemini"] {
        let (m, gw) = one(format, ok()).await;
        let r = messages(&gw, false).await;
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["content"][0]["text"], "Hello from the mock provider.");
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["output_tokens"], 6);
        if format == "openai" {
            let sent: Value = serde_json::from_slice(&m.seen().last().unwrap().body).unwrap();
            assert_eq!(m.seen().last().unwrap().path, "/v1/chat/completions");
            assert_eq!(
                sent["messages"][0],
                json!({"role": "system", "content": "be brief"})
            );
            assert_eq!(sent["max_tokens"], 64);
        }

        let r = messages(&gw, true).await;
        assert_eq!(r.status, 200);
        let names = event_names(&r.body);
        assert_eq!(
            names.first().map(String::as_str),
            Some("message_start"),
            "{format}"
        );
        assert_eq!(names.get(1).map(String::as_str), Some("ping"));
        assert_eq!(
            names.get(2).map(String::as_str),
            Some("content_block_start")
        );
        assert_eq!(
            &names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"],
            "{format}"
        );
        let text: String = sse_data(&r.body)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "tok0 tok1 tok2 tok3 ", "{format}");
        assert!(
            r.text().contains("\"output_tokens\":4"),
            "{format}: {}",
            r.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mock_answers_each_openai_endpoint_in_its_shape() {
    let m = ok_mock().await;
    let addr = m.addr.to_string();
    let r = request(
        &addr,
        "POST",
        "/v1/embeddings",
        &[],
        br#"{"model":"e","input":["a","b"]}"#,
    )
    .await;
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["object"], "embedding");
    let r = request(
        &addr,
        "POST",
        "/v1/completions",
        &[],
        br#"{"model":"t","prompt":"a"}"#,
    )
    .await;
    assert_eq!(r.json()["object"], "text_completion");
    let r = request(
        &addr,
        "POST",
        "/v1/chat/completions",
        &[],
        br#"{"model":"c","stream":true,"stream_options":{"include_usage":true}}"#,
    )
    .await;
    let data = sse_data(&r.body);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_cross_formats_plain_and_streamed() {
    // An Anthropic tool_use answer to a chat client.
    let (_m, gw) = one(
        "anthropic",
        raw("application/json", json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 3}})),
    )
    .await;
    let r = chat(&gw, false).await;
    let call = &r.json()["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_9", "{}", r.text());
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(r.json()["choices"][0]["finish_reason"], "tool_calls");

    // The same streamed.
    let (_m, gw) = one(
        "anthropic",
        raw_sse(&[
            ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 5, "output_tokens": 1}}})),
            ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}})),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})),
            ("message_stop", json!({"type": "message_stop"})),
        ]),
    )
    .await;
    let r = chat(&gw, true).await;
    let chunks: Vec<Value> = sse_data(&r.body)
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(args, "{\"city\":\"Oslo\"}", "{}", r.text());
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"] == "toolu_9"));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    // OpenAI tool calls to an Anthropic client, plain and streamed.
    let (_m, gw) = one(
        "openai",
        raw("application/json", json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3}})),
    )
    .await;
    let r = messages(&gw, false).await;
    assert_eq!(
        r.json()["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}),
        "{}",
        r.text()
    );
    assert_eq!(r.json()["stop_reason"], "tool_use");
    let (_m, gw) = one(
        "openai",
        raw_sse(&[
            ("", json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]}, "finish_reason": null}]})),
            ("", json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "{\"city\":\"Oslo\"}"}}]}, "finish_reason": null}]})),
            ("", json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
            ("", json!("[DONE]")),
        ]),
    )
    .await;
    let r = messages(&gw, true).await;
    let events: Vec<Value> = sse_data(&r.body)
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let start = events
        .iter()
        .find(|e| e["type"] == "content_block_start")
        .unwrap();
    assert_eq!(start["content_block"]["type"], "tool_use", "{}", r.text());
    assert_eq!(start["content_block"]["id"], "call_1");
    let json_delta: String = events
        .iter()
        .filter_map(|e| e["delta"]["partial_json"].as_str().map(str::to_string))
        .collect();
    assert_eq!(json_delta, "{\"city\":\"Oslo\"}");
    assert!(events
        .iter()
        .any(|e| e["delta"]["stop_reason"] == "tool_use"));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_use_each_formats_key_header() {
    for (format, header, bearer) in [
        ("anthropic", "x-api-key", false),
        ("gemini", "x-goog-api-key", false),
        ("openai", "authorization", true),
    ] {
        let m = ok_mock().await;
        let gw = Gateway::start(&format!(
            "listen: [\"@LISTEN@\"]\nupstreams:\n{}models:\n  chat: [{{upstream: up, model: m}}]\nhealth_check: {{interval: 100ms, timeout: 1s}}\n",
            upstream("up", &m.url(), &format!("format: {format}"))
        ))
        .await;
        let started = std::time::Instant::now();
        let check = loop {
            if let Some(s) = m.seen().into_iter().find(|s| s.method == "GET") {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{format}: no health check"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(check.path, "/v1/models");
        let want = if bearer {
            "Bearer sk-up-up-secret"
        } else {
            "sk-up-up-secret"
        };
        assert_eq!(check.header(header), Some(want), "{format}");
        if format == "anthropic" {
            assert_eq!(check.header("anthropic-version"), Some("2023-06-01"));
        }
        drop(gw);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_function_calls_reach_chat_and_anthropic_clients() {
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}, "modelVersion": "g"});
    let (_m, gw) = one("gemini", raw("application/json", answer.clone())).await;
    let r = chat(&gw, false).await;
    let v = r.json();
    assert_eq!(
        v["choices"][0]["finish_reason"],
        "tool_calls",
        "{}",
        r.text()
    );
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    let r = messages(&gw, false).await;
    let v = r.json();
    assert_eq!(v["content"][0]["type"], "tool_use", "{}", r.text());
    assert_eq!(v["content"][0]["input"], json!({"city": "Oslo"}));
    assert_eq!(v["stop_reason"], "tool_use");
    let (_m, gw) = one("gemini", raw_sse(&[("", answer)])).await;
    let r = chat(&gw, true).await;
    let chunks: Vec<Value> = sse_data(&r.body)
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "weather"),
        "{}",
        r.text()
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}
