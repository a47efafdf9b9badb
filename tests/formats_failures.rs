//! Provider formats when things go wrong, through real sockets: the
//! gateway's and the providers' errors in the client's shape, overload
//! answers failing over across formats, failover before commit, streams cut
//! after commit ending with the client's dialect's error event, requests no
//! target can carry.

mod common;
use common::formats::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn gateway_errors_on_messages_use_anthropics_shape() {
    let (_m, gw) = one("openai", ok()).await;
    let r = gw
        .post(
            "/v1/messages",
            &anthropic_auth(),
            &messages_body("nope", false),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error", "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    let r = gw
        .post(
            "/v1/messages",
            &[("content-type", "application/json")],
            &messages_body("chat", false),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = gw
        .post(
            "/v1/messages/count_tokens",
            &anthropic_auth(),
            &messages_body("chat", false),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_errors_reach_the_client_in_its_shape() {
    let (_m, gw) = one(
        "anthropic",
        Behavior::Status {
            status: 400,
            headers: vec![],
        },
    )
    .await;
    let r = chat(&gw, false).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "mock failure 400");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let (_m, gw) = one(
        "openai",
        Behavior::Status {
            status: 422,
            headers: vec![],
        },
    )
    .await;
    let r = messages(&gw, false).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "mock failure 422"}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_answers_fail_over_across_formats_whatever_retry_on_says() {
    for (format, status) in [("anthropic", 529), ("gemini", 429), ("gemini", 503)] {
        let a = mock(Behavior::Status {
            status,
            headers: vec![],
        })
        .await;
        let b = ok_mock().await;
        let ups = upstream("a", &a.url(), &format!("format: {format}, retry_on: [500]"))
            + &upstream("b", &b.url(), "");
        let gw = Gateway::start(&config(
            &ups,
            "  chat:\n    - {upstream: a, model: ma, priority: 1}\n    - {upstream: b, model: mb, priority: 2}\n",
            "",
        ))
        .await;
        for stream in [false, true] {
            let r = chat(&gw, stream).await;
            assert_eq!(r.status, 200, "{format} {status}: {}", r.text());
            assert_eq!(r.attempts(), 2);
            assert_eq!(r.header("x-llmgate-upstream"), Some("b"));
            let r = messages(&gw, stream).await;
            assert_eq!(r.status, 200, "{format} {status}: {}", r.text());
            assert_eq!(r.header("x-llmgate-upstream"), Some("b"));
            if stream {
                assert_eq!(
                    event_names(&r.body).last().map(String::as_str),
                    Some("message_stop")
                );
            } else {
                assert_eq!(
                    r.json()["type"],
                    "message",
                    "Anthropic client, OpenAI target"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_after_commit_ends_with_an_error_in_the_clients_format() {
    // Anthropic client, OpenAI target that drops mid-stream.
    let (_m, gw) = one("openai", Behavior::StreamThenDrop { events: 3 }).await;
    let r = messages(&gw, true).await;
    assert_eq!(r.status, 200);
    let names = event_names(&r.body);
    assert_eq!(
        names.last().map(String::as_str),
        Some("error"),
        "{}",
        r.text()
    );
    let last: Value = serde_json::from_str(sse_data(&r.body).last().unwrap()).unwrap();
    assert_eq!(last["type"], "error");
    // Anthropic client, Anthropic target (pass-through): the same error event.
    let (_m, gw) = one("anthropic", Behavior::StreamThenDrop { events: 3 }).await;
    let r = messages(&gw, true).await;
    assert_eq!(
        event_names(&r.body).last().map(String::as_str),
        Some("error")
    );
    // Chat client, Anthropic target: OpenAI's in-band error.
    let r = chat(&gw, true).await;
    let last: Value = serde_json::from_str(sse_data(&r.body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{}", r.text());
    assert_eq!(chat_stream_text(&r.body), "tok0 tok1 tok2 ");
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_pass_to_openai_and_are_translated_for_other_formats() {
    let (m, gw) = one("openai", ok()).await;
    let body = json!({"model": "chat", "input": "hi", "stream": true}).to_string();
    let r = gw.post("/v1/responses", &auth(), &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        event_names(&r.body).first().map(String::as_str),
        Some("response.created")
    );
    let sent = m.seen().last().cloned().unwrap();
    assert_eq!(sent.path, "/v1/responses");
    assert!(
        !String::from_utf8_lossy(&sent.body).contains("stream_options"),
        "the Responses API takes no stream_options"
    );
    for format in ["anthropic", "gemini"] {
        let (m, gw) = one(format, ok()).await;
        let plain = json!({"model": "chat", "instructions": "be brief", "input": "hi"}).to_string();
        let r = gw.post("/v1/responses", &auth(), &plain).await;
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["output"][0]["type"], "message");
        assert!(
            v["output"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("mock"),
            "{v}"
        );
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
        let sent = m.seen().last().cloned().unwrap();
        let up: Value = serde_json::from_slice(&sent.body).unwrap();
        if format == "anthropic" {
            assert_eq!(sent.path, "/v1/messages");
            assert_eq!(up["system"][0]["text"], "be brief");
        } else {
            assert!(
                sent.path.ends_with("/models/m:generateContent"),
                "{}",
                sent.path
            );
        }
        let r = gw.post("/v1/responses", &auth(), &body).await;
        assert_eq!(r.status, 200);
        let names = event_names(&r.body);
        assert_eq!(names.first().map(String::as_str), Some("response.created"));
        assert_eq!(names.last().map(String::as_str), Some("response.completed"));
        let text: String = sse_data(&r.body)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|e| e["type"] == "response.output_text.delta")
            .filter_map(|e| e["delta"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "tok0 tok1 tok2 tok3 ", "{format}");
    }
    // A function call from Anthropic, streamed to a Responses client.
    let (_m, gw) = one(
        "anthropic",
        raw_sse(&[
            ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 5, "output_tokens": 1}}})),
            ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":\"Oslo\"}"}})),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})),
            ("message_stop", json!({"type": "message_stop"})),
        ]),
    )
    .await;
    let tools = json!({"model": "chat", "input": "weather?", "stream": true,
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]});
    let r = gw.post("/v1/responses", &auth(), &tools.to_string()).await;
    let last: Value = serde_json::from_str(sse_data(&r.body).last().unwrap()).unwrap();
    assert_eq!(last["type"], "response.completed", "{}", r.text());
    assert_eq!(
        last["response"]["output"][0],
        json!({"type": "function_call", "id": "fc_toolu_9", "call_id": "toolu_9", "name": "weather",
            "arguments": "{\"city\":\"Oslo\"}", "status": "completed"})
    );
    // What only OpenAI keeps (stored state, hosted tools) is refused by name.
    let (_m, gw) = one("anthropic", ok()).await;
    let stored = json!({"model": "chat", "input": "hi", "previous_response_id": "resp_1"});
    let r = gw.post("/v1/responses", &auth(), &stored.to_string()).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("previous_response_id"), "{}", r.text());
    let r = gw
        .post(
            "/v1/embeddings",
            &auth(),
            &json!({"model": "chat", "input": "x"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400);
    let (_m, gw) = one("anthropic", ok()).await;
    let n2 = json!({"model": "chat", "n": 2, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .post("/v1/chat/completions", &auth(), &n2.to_string())
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`n` greater than 1"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anthropic_target_failing_before_commit_fails_over_to_an_openai_one() {
    for fault in [
        Behavior::CloseAfterHeaders,
        Behavior::Close,
        Behavior::StallAfterHeaders(Duration::from_secs(5)),
    ] {
        let a = mock(fault.clone()).await;
        let b = ok_mock().await;
        let ups = upstream(
            "a",
            &a.url(),
            "format: anthropic, first_token_timeout: 300ms",
        ) + &upstream("b", &b.url(), "");
        let gw = Gateway::start(&config(
            &ups,
            "  chat:\n    - {upstream: a, model: ma, priority: 1}\n    - {upstream: b, model: mb, priority: 2}\n",
            "",
        ))
        .await;
        let r = chat(&gw, true).await;
        assert_eq!(r.status, 200, "{fault:?}");
        assert_eq!(r.attempts(), 2);
        assert_eq!(r.header("x-llmgate-upstream"), Some("b"));
        assert_eq!(chat_stream_text(&r.body), "tok0 tok1 tok2 tok3 tok4 ");
        let r = messages(&gw, true).await;
        assert_eq!(r.status, 200, "{fault:?}");
        assert_eq!(
            event_names(&r.body).first().map(String::as_str),
            Some("message_start")
        );
        assert_eq!(a.hits(), 2, "one attempt each");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_responses_stream_cut_ends_with_a_responses_error_event() {
    let (_m, gw) = one("openai", Behavior::StreamThenDrop { events: 2 }).await;
    let body = json!({"model": "chat", "input": "hi", "stream": true}).to_string();
    let r = gw.post("/v1/responses", &auth(), &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        event_names(&r.body).last().map(String::as_str),
        Some("error"),
        "{}",
        r.text()
    );
    let last: Value = serde_json::from_str(sse_data(&r.body).last().unwrap()).unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["code"], "stream_interrupted");
}
