//! A complete (non-streamed) OpenAI answer told as the stream the client
//! asked for, for targets whose upstream cannot stream (`params: {stream:
//! false}`): the events OpenAI itself would send for that answer, in one go.
//!
//! Chat completions become one `chat.completion.chunk` per choice carrying the
//! whole message as its delta (tool calls numbered by `index`, as streamed
//! tool calls are), then one per choice with its `finish_reason`; a text
//! completion is its own single chunk. With `stream_options.include_usage`
//! every chunk has `"usage":null` and a last chunk with no choices carries the
//! usage, as OpenAI sends it. Then `data: [DONE]`.

use serde_json::{json, Map, Value};

/// Largest plain answer turned into a stream (it is held whole to convert).
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The SSE body for `answer`, or why it cannot be told as a stream.
pub fn answer_as_sse(answer: &[u8], include_usage: bool) -> Result<Vec<u8>, &'static str> {
    let Ok(Value::Object(mut base)) = serde_json::from_slice::<Value>(answer) else {
        return Err("answer is not a JSON object");
    };
    let usage = base.remove("usage");
    let mut events: Vec<Value> = Vec::new();
    match base.get("object").and_then(Value::as_str) {
        Some("chat.completion") => {
            let Some(Value::Array(choices)) = base.remove("choices") else {
                return Err("chat completion has no `choices` list");
            };
            base.insert("object".into(), "chat.completion.chunk".into());
            let mut finishes = Vec::with_capacity(choices.len());
            for (n, choice) in choices.into_iter().enumerate() {
                let Value::Object(mut choice) = choice else {
                    return Err("a choice is not an object");
                };
                let index = choice.remove("index").unwrap_or_else(|| n.into());
                let delta = delta(choice.remove("message"))?;
                let logprobs = choice.remove("logprobs").unwrap_or(Value::Null);
                let finish = choice.remove("finish_reason").unwrap_or(Value::Null);
                events.push(chunk(
                    &base,
                    json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null}]),
                ));
                finishes.push(
                    json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}),
                );
            }
            for f in finishes {
                events.push(chunk(&base, Value::Array(vec![f])));
            }
        }
        Some("text_completion") => events.push(Value::Object(base.clone())),
        _ => return Err("answer is not a chat or text completion"),
    }
    let mut out = Vec::with_capacity(answer.len() * 2 + 64);
    for mut e in events {
        if include_usage {
            e["usage"] = Value::Null;
        }
        event(&mut out, &e);
    }
    if include_usage {
        let mut last = base;
        last.insert("choices".into(), json!([]));
        last.insert("usage".into(), usage.unwrap_or(Value::Null));
        event(&mut out, &Value::Object(last));
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Ok(out)
}

fn chunk(base: &Map<String, Value>, choices: Value) -> Value {
    let mut c = base.clone();
    c.insert("choices".into(), choices);
    Value::Object(c)
}

/// A whole message as one delta: streamed tool calls carry their position.
fn delta(message: Option<Value>) -> Result<Value, &'static str> {
    let Some(Value::Object(mut m)) = message else {
        return Err("a choice has no `message` object");
    };
    if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
        for (i, call) in calls.iter_mut().enumerate() {
            if let Value::Object(c) = call {
                c.entry("index").or_insert(i.into());
            }
        }
    }
    Ok(Value::Object(m))
}

fn event(out: &mut Vec<u8>, e: &Value) {
    out.extend_from_slice(b"data: ");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, e);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(sse: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(sse).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap().to_string())
            .collect()
    }

    const CHAT: &str = r#"{"id":"c1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

    #[test]
    fn chat_completion_becomes_chunks_then_done() {
        let e = events(&answer_as_sse(CHAT.as_bytes(), false).unwrap());
        assert_eq!(e.len(), 3);
        let first: Value = serde_json::from_str(&e[0]).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["id"], "c1");
        assert_eq!(first["choices"][0]["delta"]["content"], "Hi there");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
        assert!(first.get("usage").is_none());
        let second: Value = serde_json::from_str(&e[1]).unwrap();
        assert_eq!(second["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(second["choices"][0]["delta"], json!({}));
        assert_eq!(e[2], "[DONE]");
    }

    #[test]
    fn usage_chunk_only_when_asked() {
        let e = events(&answer_as_sse(CHAT.as_bytes(), true).unwrap());
        assert_eq!(e.len(), 4);
        let first: Value = serde_json::from_str(&e[0]).unwrap();
        assert_eq!(first["usage"], Value::Null);
        let last: Value = serde_json::from_str(&e[2]).unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["total_tokens"], 5);
    }

    #[test]
    fn text_completion_is_one_chunk() {
        let a = r#"{"id":"x","object":"text_completion","created":1,"model":"m","choices":[{"text":"ok","index":0,"logprobs":null,"finish_reason":"stop"}]}"#;
        let e = events(&answer_as_sse(a.as_bytes(), false).unwrap());
        assert_eq!(e.len(), 2);
        let first: Value = serde_json::from_str(&e[0]).unwrap();
        assert_eq!(first["choices"][0]["text"], "ok");
    }

    #[test]
    fn other_answers_are_refused() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"object":"list","data":[]}"#,
            r#"{"object":"chat.completion"}"#,
            r#"{"object":"chat.completion","choices":[1]}"#,
            r#"{"object":"chat.completion","choices":[{"index":0}]}"#,
        ] {
            assert!(answer_as_sse(bad.as_bytes(), false).is_err(), "{bad}");
        }
    }
}
