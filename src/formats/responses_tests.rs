use super::*;
use crate::formats::stream::Translator;
use crate::formats::{answer as answer_in, Dialect, Format, Pivot, WireOpts};

fn chat_of(v: Value) -> Result<Map<String, Value>, Unsupported> {
    match v {
        Value::Object(m) => to_chat(&m),
        _ => unreachable!("fixtures are objects"),
    }
}

#[test]
fn requests_become_chat_requests() {
    // After the Responses API reference: instructions, a conversation with a
    // function call and its output, an image, function tools, structured output.
    let c = chat_of(json!({
        "model": "m", "instructions": "be brief", "max_output_tokens": 100, "temperature": 0.2,
        "input": [
            {"role": "developer", "content": "use tools"},
            {"role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "auto"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "reasoning", "id": "rs_1", "summary": []}
        ],
        "tools": [{"type": "function", "name": "weather", "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "function", "name": "weather"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
        "stream": true, "store": false
    }))
    .unwrap();
    assert_eq!(
        Value::Object(c),
        json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "system", "content": "use tools"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
                {"role": "assistant", "content": "checking", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
            ],
            "max_tokens": 100, "temperature": 0.2,
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
            "stream": true, "stream_options": {"include_usage": true}
        })
    );
    let c = chat_of(json!({"model": "m", "input": "hi"})).unwrap();
    assert_eq!(c["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn what_only_openai_can_do_is_refused() {
    for (body, says) in [
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
            "tool type `web_search`",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "x"}]}),
            "item_reference",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input_file",
        ),
        (json!({"input": 3}), "`input`"),
    ] {
        let e = chat_of(body).unwrap_err();
        assert!(e.0.contains(says), "{}", e.0);
    }
}

#[test]
fn the_request_reaches_anthropic() {
    let body = br#"{"model":"x","instructions":"s","input":"hi","max_output_tokens":9}"#;
    let p = Pivot::read(Dialect::Responses, body).unwrap();
    let opts = WireOpts {
        default_max_tokens: 16,
        stream_usage: true,
    };
    let w = p.wire(Format::Anthropic, "claude", opts, None).unwrap();
    let v: Value = serde_json::from_slice(&w.body).unwrap();
    assert_eq!(w.path, "/messages");
    assert_eq!(v["system"][0]["text"], "s");
    assert_eq!(v["max_tokens"], 9);
    assert_eq!(v["messages"][0]["role"], "user");
}

#[test]
fn answers_become_response_objects() {
    let chat = json!({"id": "chatcmpl-7", "object": "chat.completion", "created": 5, "model": "claude",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3}});
    let r = answer(&chat).unwrap();
    assert_eq!(r["id"], "resp_7");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "claude");
    assert_eq!(
        r["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Hi", "annotations": []})
    );
    assert_eq!(
        r["output"][1],
        json!({"type": "function_call", "id": "fc_call_1", "call_id": "call_1", "name": "weather",
            "arguments": "{\"city\":\"Oslo\"}", "status": "completed"})
    );
    assert_eq!(r["usage"]["input_tokens"], 5);
    assert_eq!(r["usage"]["output_tokens"], 3);
    assert_eq!(r["usage"]["total_tokens"], 8);
    let long = json!({"id": "x", "model": "m", "choices": [{"message": {"content": "a"}, "finish_reason": "length"}]});
    let r = answer(&long).unwrap();
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    // Through the format entry point, from an Anthropic answer.
    let a = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","usage":{"input_tokens":4,"output_tokens":2}}"#;
    let (out, usage) = answer_in(Dialect::Responses, Format::Anthropic, a, "claude").unwrap();
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(usage, Some((4, 2)));
}

const ANTHROPIC: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn anthropic_stream_becomes_the_responses_event_sequence() {
    for split in [1, 7, ANTHROPIC.len()] {
        let mut t = Translator::new(Dialect::Responses, Format::Anthropic, "claude", false);
        let mut out = Vec::new();
        for c in ANTHROPIC.chunks(split) {
            out.extend_from_slice(t.feed(c));
        }
        out.extend_from_slice(t.end());
        let text = String::from_utf8(out).unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let names: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ],
            "split {split}"
        );
        // `event:` lines name each event, sequence numbers count up from 0.
        let named: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(named, names);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
        }
        assert_eq!(events[6]["text"], "Hello");
        assert_eq!(events[12]["arguments"], "{\"a\":1}");
        assert_eq!(events[9]["output_index"], 1);
        assert_eq!(events[9]["item"]["call_id"], "toolu_1");
        let done = &events[14]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(done["usage"]["input_tokens"], 5);
        assert_eq!(done["usage"]["output_tokens"], 7);
        assert_eq!(t.usage(), Some((5, 7)));
    }
}

#[test]
fn a_cut_stream_ends_with_a_responses_error_event() {
    let mut t = Translator::new(Dialect::Responses, Format::Gemini, "g", false);
    let first = String::from_utf8(
        t.feed(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n")
            .to_vec(),
    )
    .unwrap();
    assert!(first.starts_with("event: response.created"), "{first}");
    let cut = String::from_utf8(t.cut("upstream g: idle").to_vec()).unwrap();
    assert!(cut.starts_with("event: error\n"), "{cut}");
    assert!(cut.contains("\"code\":\"stream_interrupted\""), "{cut}");
    assert!(t.end().is_empty(), "nothing after the error");
}
