//! Fixtures after Anthropic's API reference (Messages, streaming, errors).

use super::*;
use crate::formats::chat::Item;
use serde_json::json;

fn chat(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn request_maps_system_roles_images_tools_and_limits() {
    let c = chat(json!({
        "model": "claude", "max_tokens": 300, "temperature": 0.2, "top_p": 0.9,
        "stop": "END", "user": "u-1", "stream": true,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "look", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": false
    }));
    let r = request(&c, "claude-x", true, 4096).unwrap();
    assert_eq!(r["model"], "claude-x");
    assert_eq!(r["max_tokens"], 300);
    assert_eq!(r["system"], json!([{"type": "text", "text": "be brief"}]));
    assert_eq!(r["stop_sequences"], json!(["END"]));
    assert_eq!(r["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(r["stream"], true);
    let m = r["messages"].as_array().unwrap();
    assert_eq!(
        m.len(),
        3,
        "tool result and the next user text merge into one user turn"
    );
    assert_eq!(
        m[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBOR"})
    );
    assert_eq!(
        m[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://x.test/a.jpg"})
    );
    assert_eq!(
        m[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "look", "input": {"q": 1}})
    );
    assert_eq!(
        m[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"})
    );
    assert_eq!(
        m[2]["content"][1],
        json!({"type": "text", "text": "thanks"})
    );
    assert_eq!(r["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(
        r["tool_choice"],
        json!({"type": "tool", "name": "look", "disable_parallel_tool_use": true})
    );
}

#[test]
fn request_defaults_max_tokens_and_refuses_n() {
    let c = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(request(&c, "m", false, 1234).unwrap()["max_tokens"], 1234);
    let c = chat(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}));
    let e = request(&c, "m", false, 1).unwrap_err();
    assert!(e.0.contains("`n`"), "{e:?}");
}

#[test]
fn answer_with_text_and_tool_use() {
    let a = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": "cat"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}
    });
    let c = answer(&a).unwrap();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "claude-x");
    let choice = &c["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me look.");
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"q\":\"cat\"}"
    );
    assert_eq!(
        c["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
    );
    assert_eq!(finish_reason("max_tokens"), "length");
    assert!(answer(&json!({"type": "error"})).is_err());
}

#[test]
fn every_stream_event_type() {
    let events = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ),
        ("ping", r#"{"type":"ping"}"#),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"look","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let mut s = Stream::default();
    let mut out = Vec::new();
    for (name, data) in events {
        s.event(name, data, &mut out).unwrap();
    }
    let chunks: Vec<&Value> = out
        .iter()
        .filter_map(|i| match i {
            Item::Chunk(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "toolu_1"
    );
    assert_eq!(
        chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"q\":"
    );
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert!(chunks
        .iter()
        .all(|c| c["model"] == "claude-x" && c["id"] == "msg_1"));
    assert_eq!(s.usage(), (25, 15));
    assert_eq!(out.last(), Some(&Item::Done));
    let mut s = Stream::default();
    let e = s
        .event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind, "overloaded_error");
    assert_eq!(e.message, "Overloaded");
}
