//! Per-target request parameter overrides through sockets: the bytes each
//! upstream receives (only the overridden values differ from the client's),
//! and `stream: false` targets answering streaming clients with SSE.

mod common;
use common::*;

fn body_of(seen: &RawSeen) -> String {
    let head = seen.head().len();
    String::from_utf8_lossy(&seen.bytes[head..]).into_owned()
}

fn two_targets(a: &RawUpstream, b: &RawUpstream, a_params: &str) -> String {
    config(
        &(upstream("a", &a.url(), "") + &upstream("b", &b.url(), "")),
        &format!(
            "  chat:\n    - {{upstream: a, model: ma, priority: 1, params: {a_params}}}\n    - {{upstream: b, model: mb, priority: 2}}\n"
        ),
        "",
    )
}

fn error_answer(status: u16) -> Vec<u8> {
    let body = r#"{"error":{"message":"busy","type":"server_error","code":null}}"#;
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn overrides_are_spliced_and_other_targets_get_the_client_bytes() {
    let (a, b) = (RawUpstream::start().await, RawUpstream::start().await);
    let gw = Gateway::start(&two_targets(
        &a,
        &b,
        "{temperature: 0.2, max_tokens: {max: 100}, user: gateway}",
    ))
    .await;
    let sent = "{ \"model\" : \"chat\",\n \"temperature\":1.5, \"messages\":[{\"role\":\"user\",\"content\":\"t\\u00e9\"}], \"max_tokens\": 5000 }";

    // a answers: its bytes are the client's with four values changed or added.
    let r = gw.post("/v1/chat/completions", &auth(), sent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        body_of(&a.seen()[0]),
        "{\"user\":\"gateway\", \"model\" : \"ma\",\n \"temperature\":0.2, \"messages\":[{\"role\":\"user\",\"content\":\"t\\u00e9\"}], \"max_tokens\": 100 }"
    );

    // a fails over to b: b gets the client's bytes with only the model spliced.
    a.script([RawReply::Send(error_answer(503))]);
    let r = gw.post("/v1/chat/completions", &auth(), sent).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.attempts(), 2);
    assert_eq!(body_of(&b.seen()[0]), sent.replace("\"chat\"", "\"mb\""));

    // A value under the cap is left as sent.
    let under = r#"{"model":"chat","max_tokens":7,"user":"x"}"#;
    assert_eq!(
        gw.post("/v1/chat/completions", &auth(), under).await.status,
        200
    );
    assert_eq!(
        body_of(&a.seen()[2]),
        r#"{"temperature":0.2,"model":"ma","max_tokens":7,"user":"gateway"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_cannot_stream_answers_a_streaming_client_with_sse() {
    let (a, b) = (RawUpstream::start().await, RawUpstream::start().await);
    let gw = Gateway::start(&two_targets(&a, &b, "{stream: false}")).await;

    for include_usage in [false, true] {
        let body = serde_json::json!({
            "model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": include_usage},
        })
        .to_string();
        let r = gw.post("/v1/chat/completions", &auth(), &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.complete && r.chunked);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert!(r.header("content-length").is_none());
        let upstream_body = body_of(a.seen().last().unwrap());
        assert!(
            upstream_body.contains(r#""stream":false"#)
                && upstream_body.contains(r#""stream_options":null"#),
            "{upstream_body}"
        );
        let events = sse_data(&r.body);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).expect("each event is JSON"))
            .collect();
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["content"],
            "Hello from the mock provider."
        );
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        if include_usage {
            assert_eq!(chunks.len(), 3);
            assert_eq!(chunks[2]["choices"], serde_json::json!([]));
            assert_eq!(chunks[2]["usage"]["total_tokens"], 15);
        } else {
            assert_eq!(chunks.len(), 2);
            assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        }
    }

    // A plain client of the same target gets the plain answer untouched.
    let r = gw
        .post("/v1/chat/completions", &auth(), &chat_body("chat", false))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["object"], "chat.completion");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_cannot_become_a_stream_fails_over_before_commit() {
    let (a, b) = (RawUpstream::start().await, RawUpstream::start().await);
    let gw = Gateway::start(&two_targets(&a, &b, "{stream: false}")).await;
    let not_chat = "{\"object\":\"list\",\"data\":[]}";
    a.script([RawReply::Send(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{not_chat}",
            not_chat.len()
        )
        .into_bytes(),
    )]);
    let r = gw
        .post("/v1/chat/completions", &auth(), &chat_body("chat", true))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.attempts(), 2);
    // b is a plain upstream too (the raw one never streams): its JSON passes as sent.
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(a.seen().len(), 1);
    assert_eq!(b.seen().len(), 1);
}
