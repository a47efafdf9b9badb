//! Fixtures after Google's generateContent reference.

use super::*;
use crate::formats::chat::Item;
use serde_json::json;

#[test]
fn request_maps_contents_config_tools_and_tool_results() {
    let c = json!({
        "model": "g", "max_tokens": 100, "temperature": 0.5, "top_p": 0.8, "stop": ["x"],
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"ok\":true}"}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters":
            {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "integer"}}}}}],
        "tool_choice": "required"
    });
    let r = request(c.as_object().unwrap()).unwrap();
    assert_eq!(r["systemInstruction"], json!({"parts": [{"text": "sys"}]}));
    assert_eq!(
        r["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j"}})
    );
    assert_eq!(
        r["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]})
    );
    assert_eq!(
        r["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "f", "response": {"ok": true}}})
    );
    let g = &r["generationConfig"];
    assert_eq!(g["maxOutputTokens"], 100);
    assert_eq!(g["topP"], 0.8);
    assert_eq!(g["stopSequences"], json!(["x"]));
    assert_eq!(g["responseMimeType"], "application/json");
    let decl = &r["tools"][0]["functionDeclarations"][0];
    assert!(decl["parameters"].get("additionalProperties").is_none());
    assert_eq!(r["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
}

#[test]
fn answer_with_text_call_and_usage() {
    let a = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true}, {"text": "Hello"},
            {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10},
        "modelVersion": "gemini-2.0-flash", "responseId": "r1"
    });
    let c = answer(&a, "g").unwrap();
    assert_eq!(c["model"], "gemini-2.0-flash");
    assert_eq!(c["choices"][0]["message"]["content"], "Hello");
    assert_eq!(
        c["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "f"
    );
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["usage"]["prompt_tokens"], 7);
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
    assert_eq!(
        answer(&blocked, "g").unwrap()["choices"][0]["finish_reason"],
        "content_filter"
    );
    assert!(answer(&json!({"x": 1}), "g").is_err());
}

#[test]
fn stream_events_and_end() {
    let mut s = Stream::new("g");
    let mut out = Vec::new();
    s.event(r#"{"candidates":[{"content":{"parts":[{"text":"He"}],"role":"model"}}],"modelVersion":"gm"}"#, &mut out).unwrap();
    s.event(r#"{"candidates":[{"content":{"parts":[{"text":"llo"}],"role":"model"},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}"#, &mut out).unwrap();
    s.end(&mut out);
    let Item::Chunk(first) = &out[0] else {
        panic!()
    };
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["model"], "gm");
    let Item::Chunk(fin) = &out[3] else { panic!() };
    assert_eq!(fin["choices"][0]["finish_reason"], "length");
    assert!(matches!(out[4], Item::Usage(_)));
    assert_eq!(out[5], Item::Done);
    assert_eq!(s.usage(), (4, 2));
    let e = Stream::new("g")
        .event(
            r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind, "RESOURCE_EXHAUSTED");
}
