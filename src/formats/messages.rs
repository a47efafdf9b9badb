//! Inbound Anthropic Messages (`POST /v1/messages`) for targets that do not
//! speak it: the request read as a chat request, chat answers and chunks
//! written as Anthropic's message and event sequence (message_start, ping,
//! content_block_start/delta/stop, message_delta, message_stop).

use super::chat::{self, Unsupported};
use super::sse::{write_event, write_json_event};
use serde_json::{json, Map, Value};

/// The chat request for a Messages request.
pub fn to_chat(m: &Map<String, Value>) -> Result<Map<String, Value>, Unsupported> {
    let mut messages = Vec::new();
    match m.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            messages.push(json!({"role": "system", "content": text.join("\n")}));
        }
        Some(_) => return Err(Unsupported("`system` must be a string or a list".into())),
    }
    let list = m
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported("`messages` must be a list".into()))?;
    for msg in list {
        let role = msg.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(Unsupported(format!("message role `{role}` is not known")));
        }
        let blocks = match msg.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(b)) => b.clone(),
            _ => {
                return Err(Unsupported(
                    "message `content` must be a string or a list".into(),
                ))
            }
        };
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for b in &blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
                Some("image") => {
                    let s = &b["source"];
                    let url = match s.get("type").and_then(Value::as_str) {
                        Some("base64") => format!(
                            "data:{};base64,{}",
                            s.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
                            s.get("data").and_then(Value::as_str).unwrap_or("")
                        ),
                        Some("url") => s.get("url").and_then(Value::as_str).unwrap_or("").to_string(),
                        _ => return Err(Unsupported("image source must be base64 or url".into())),
                    };
                    parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                }
                Some("tool_use") => calls.push(json!({
                    "id": b["id"], "type": "function",
                    "function": {"name": b["name"], "arguments": b.get("input").map_or_else(|| "{}".into(), Value::to_string)},
                })),
                Some("tool_result") => {
                    // Tool results answer the previous assistant turn: they
                    // go first, each as its own `tool` message.
                    let content = match b.get("content") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Array(c)) => c
                            .iter()
                            .filter_map(|x| x.get("text").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join(""),
                        _ => String::new(),
                    };
                    messages.push(json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}));
                }
                Some("thinking") | Some("redacted_thinking") => {}
                Some(other) => {
                    return Err(Unsupported(format!(
                        "content block type `{other}` cannot be translated for this target"
                    )))
                }
                None => return Err(Unsupported("content block without `type`".into())),
            }
        }
        if role == "assistant" {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            messages.push(chat::message(text, calls));
        } else if !parts.is_empty() {
            messages.push(json!({"role": "user", "content": parts}));
        }
    }
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = m.get("max_tokens") {
        out.insert("max_tokens".into(), n.clone());
    }
    for k in ["temperature", "top_p", "top_k"] {
        if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = m.get("stop_sequences").filter(|v| !v.is_null()) {
        out.insert("stop".into(), s.clone());
    }
    if let Some(u) = m.get("metadata").and_then(|x| x.get("user_id")) {
        out.insert("user".into(), u.clone());
    }
    if let Some(tools) = m
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        let mut list = Vec::new();
        for t in tools {
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "custom")
            {
                return Err(Unsupported(format!(
                    "server tool `{}` runs only on Anthropic",
                    t["type"].as_str().unwrap_or("")
                )));
            }
            list.push(json!({"type": "function", "function": {
                "name": t["name"], "description": t.get("description").cloned().unwrap_or_else(|| "".into()),
                "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
            }}));
        }
        out.insert("tools".into(), Value::Array(list));
        let tc = m.get("tool_choice");
        let choice = match tc.and_then(|c| c.get("type")).and_then(Value::as_str) {
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": tc.map(|c| &c["name"])}})
            }
            _ => json!("auto"),
        };
        out.insert("tool_choice".into(), choice);
        if tc
            .and_then(|c| c.get("disable_parallel_tool_use"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
    if m.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(out)
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{}", id.trim_start_matches("chatcmpl-"))
    }
}

/// A chat completion as a Messages answer.
pub fn answer(c: &Value) -> Result<Value, String> {
    let choice = c.pointer("/choices/0").ok_or("answer has no choices")?;
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in chat::tool_calls(msg) {
        content.push(
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}),
        );
    }
    let (p, o) = chat::usage_of(c).unwrap_or((0, 0));
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    Ok(json!({
        "id": message_id(c.get("id").and_then(Value::as_str).unwrap_or("")),
        "type": "message", "role": "assistant",
        "model": c.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(finish), "stop_sequence": null,
        "usage": {"input_tokens": p, "output_tokens": o},
    }))
}

#[derive(PartialEq)]
enum Block {
    None,
    Text,
    Tool(u64),
}

/// Chat chunks written as Anthropic's event sequence.
pub struct Writer {
    started: bool,
    block: Block,
    index: u64,
    stop: &'static str,
    usage: (u64, u64),
    ended: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            started: false,
            block: Block::None,
            index: 0,
            stop: "end_turn",
            usage: (0, 0),
            ended: false,
        }
    }
}

impl Writer {
    pub fn item(&mut self, item: &chat::Item, out: &mut Vec<u8>) {
        match item {
            chat::Item::Chunk(c) | chat::Item::Usage(c) => self.chunk(c, out),
            chat::Item::Done => self.end(out),
        }
    }

    fn chunk(&mut self, c: &Value, out: &mut Vec<u8>) {
        if let Some(u) = chat::usage_of(c) {
            self.usage = u;
        }
        if !self.started {
            self.started = true;
            let start = json!({"type": "message_start", "message": {
                "id": message_id(c.get("id").and_then(Value::as_str).unwrap_or("")),
                "type": "message", "role": "assistant",
                "model": c.get("model").cloned().unwrap_or_default(),
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.usage.0, "output_tokens": 0},
            }});
            event(out, "message_start", &start);
            event(out, "ping", &json!({"type": "ping"}));
        }
        let Some(delta) = chat::delta(c) else {
            return;
        };
        if let Some(t) = delta.text {
            if self.block != Block::Text {
                self.open(out, Block::Text, json!({"type": "text", "text": ""}));
            }
            let d = json!({"type": "content_block_delta", "index": self.index, "delta": {"type": "text_delta", "text": t}});
            event(out, "content_block_delta", &d);
        }
        for call in delta.calls {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let f = &call["function"];
            if self.block != Block::Tool(n) {
                let block = json!({"type": "tool_use", "id": call.get("id").cloned().unwrap_or_else(|| format!("toolu_{n}").into()),
                    "name": f.get("name").cloned().unwrap_or_default(), "input": {}});
                self.open(out, Block::Tool(n), block);
            }
            if let Some(args) = f
                .get("arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                let d = json!({"type": "content_block_delta", "index": self.index,
                    "delta": {"type": "input_json_delta", "partial_json": args}});
                event(out, "content_block_delta", &d);
            }
        }
        if let Some(f) = delta.finish {
            self.stop = stop_reason(f);
        }
    }

    fn open(&mut self, out: &mut Vec<u8>, block: Block, content: Value) {
        if self.block != Block::None {
            self.close(out);
            self.index += 1;
        }
        self.block = block;
        let e =
            json!({"type": "content_block_start", "index": self.index, "content_block": content});
        event(out, "content_block_start", &e);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": self.index}),
        );
        self.block = Block::None;
    }

    /// The closing events (once): the open block stopped, the stop reason
    /// and usage, message_stop.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended || !self.started {
            return;
        }
        self.ended = true;
        if self.block != Block::None {
            self.close(out);
        }
        let d = json!({"type": "message_delta", "delta": {"stop_reason": self.stop, "stop_sequence": null},
            "usage": {"input_tokens": self.usage.0, "output_tokens": self.usage.1}});
        event(out, "message_delta", &d);
        event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

fn event(out: &mut Vec<u8>, name: &str, v: &Value) {
    write_json_event(out, Some(name), v);
}

/// Anthropic's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":..,"message":..}}`.
pub fn error_body(kind: &str, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}

/// The `event: error` that ends a cut stream.
pub fn error_event(out: &mut Vec<u8>, message: &str) {
    write_event(out, Some("error"), &error_body("api_error", message));
}
