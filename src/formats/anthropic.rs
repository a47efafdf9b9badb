//! OpenAI chat completions to an Anthropic Messages upstream and its answers
//! back (plain and streamed), after Anthropic's API reference
//! (docs.anthropic.com/en/api/messages, .../messages-streaming).

use super::chat::{self, ChunkMaker, Unsupported};
use serde_json::{json, Map, Value};

/// The Messages request for an OpenAI chat request (`chat`, already with the
/// target's parameter overrides).
pub fn request(
    chat: &Map<String, Value>,
    model: &str,
    stream: bool,
    default_max_tokens: u32,
) -> Result<Value, Unsupported> {
    chat::refuse_unsupported(chat, "anthropic")?;
    if let Some(rf) = chat.get("response_format") {
        if rf.get("type").and_then(Value::as_str) != Some("text") {
            return Err(Unsupported(
                "response_format other than text is not supported by format anthropic".into(),
            ));
        }
    }
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in chat::messages(chat)? {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                for text in chat::texts(m.get("content"))? {
                    system.push(json!({"type": "text", "text": text}));
                }
            }
            "user" => push(&mut messages, "user", user_blocks(m.get("content"))?),
            "assistant" => {
                let mut blocks = Vec::new();
                for text in chat::texts(m.get("content"))? {
                    if !text.is_empty() {
                        blocks.push(json!({"type": "text", "text": text}));
                    }
                }
                for call in chat::tool_calls(m) {
                    blocks.push(json!({
                        "type": "tool_use", "id": call.id, "name": call.name, "input": call.input,
                    }));
                }
                push(&mut messages, "assistant", blocks);
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let text = chat::texts(m.get("content"))?.join("");
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": text});
                push(&mut messages, "user", vec![block]);
            }
            other => return Err(Unsupported(format!("message role `{other}` is not known"))),
        }
    }
    let max_tokens = chat
        .get("max_completion_tokens")
        .or_else(|| chat.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(default_max_tokens));
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), max_tokens.into());
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
    ] {
        if let Some(v) = chat.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = chat::stop(chat) {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(user) = chat.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = chat::tools(chat)? {
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        let parallel = chat.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false);
        let choice = match chat::tool_choice(chat) {
            chat::ToolChoice::Auto => Some(json!({"type": "auto"})),
            chat::ToolChoice::Required => Some(json!({"type": "any"})),
            chat::ToolChoice::None => Some(json!({"type": "none"})),
            chat::ToolChoice::Named(n) => Some(json!({"type": "tool", "name": n})),
        };
        if let Some(mut c) = choice {
            if !parallel {
                c["disable_parallel_tool_use"] = true.into();
            }
            out.insert("tool_choice".into(), c);
        }
    }
    if stream {
        out.insert("stream".into(), true.into());
    }
    Ok(Value::Object(out))
}

/// Anthropic wants user and assistant turns to alternate: consecutive
/// messages of one role (several tool results, say) become one.
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut() {
        if last["role"] == role {
            if let Some(Value::Array(c)) = last.get_mut("content") {
                c.extend(blocks);
                return;
            }
        }
    }
    messages.push(json!({"role": role, "content": blocks}));
}

fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>, Unsupported> {
    chat::parts(content)?
        .into_iter()
        .map(|p| match p {
            chat::Part::Text(t) => Ok(json!({"type": "text", "text": t})),
            chat::Part::Image(chat::Image::Base64 { media_type, data }) => Ok(json!({
                "type": "image", "source": {"type": "base64", "media_type": media_type, "data": data},
            })),
            chat::Part::Image(chat::Image::Url(url)) => {
                Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
            }
        })
        .collect()
}

/// An Anthropic `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// `usage` of a Messages answer as (prompt, completion): cached input
/// counts as prompt, as OpenAI counts it.
pub fn usage(u: &Value) -> (u64, u64) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    (
        n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens"),
        n("output_tokens"),
    )
}

/// A Messages answer as a chat completion.
pub fn answer(v: &Value) -> Result<Value, String> {
    if v.get("type").and_then(Value::as_str) != Some("message") {
        return Err("answer is not a Messages `message`".into());
    }
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("answer has no `content` list")?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": block.get("input").map_or_else(|| "{}".into(), Value::to_string),
                },
            })),
            _ => {} // thinking and server-tool blocks have no chat counterpart
        }
    }
    let stop = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let (prompt, completion) = usage(v.get("usage").unwrap_or(&Value::Null));
    let id = v.get("id").and_then(Value::as_str).unwrap_or("msg");
    let model = v.get("model").and_then(Value::as_str).unwrap_or("");
    Ok(chat::completion(
        id,
        model,
        chat::message(text, calls),
        finish_reason(stop),
        (prompt, completion),
    ))
}

/// An Anthropic event stream read event by event into chat chunks.
#[derive(Default)]
pub struct Stream {
    maker: ChunkMaker,
    /// Content block index -> tool call index, for `input_json_delta`s.
    tools: Vec<(u64, usize)>,
    prompt: u64,
    completion: u64,
    pub usage_seen: bool,
}

impl Stream {
    /// One event; chat chunks it makes are pushed to `out`. `Err`: the
    /// provider's own error event (or one that cannot be read).
    pub fn event(
        &mut self,
        name: &str,
        data: &str,
        out: &mut Vec<chat::Item>,
    ) -> Result<(), chat::StreamError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|_| chat::stream_error(&format!("`{name}` event is not JSON"), "api_error"))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(name);
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.maker = ChunkMaker::new(
                    m.get("id").and_then(Value::as_str).unwrap_or("msg"),
                    m.get("model").and_then(Value::as_str).unwrap_or(""),
                );
                let (p, c) = usage(m.get("usage").unwrap_or(&Value::Null));
                self.prompt = p;
                self.completion = c;
                out.push(chat::Item::Chunk(
                    self.maker
                        .chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                ));
            }
            "content_block_start" => {
                let block = &v["content_block"];
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tools.len();
                        self.tools.push((index, n));
                        out.push(chat::Item::Chunk(self.maker.chunk(
                            json!({"tool_calls": [{"index": n, "id": block["id"], "type": "function",
                                "function": {"name": block["name"], "arguments": ""}}]}),
                            Value::Null,
                        )));
                    }
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(chat::Item::Chunk(
                                self.maker.chunk(json!({"content": t}), Value::Null),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.push(chat::Item::Chunk(
                        self.maker.chunk(json!({"content": d["text"]}), Value::Null),
                    )),
                    Some("input_json_delta") => {
                        if let Some(&(_, n)) = self.tools.iter().find(|(i, _)| *i == index) {
                            out.push(chat::Item::Chunk(self.maker.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": d["partial_json"]}}]}),
                                Value::Null,
                            )));
                        }
                    }
                    _ => {} // thinking, signatures, citations
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    let (p, c) = usage(u);
                    if p > 0 {
                        self.prompt = p;
                    }
                    self.completion = c;
                    self.usage_seen = true;
                }
                if let Some(stop) = v["delta"].get("stop_reason").and_then(Value::as_str) {
                    out.push(chat::Item::Chunk(
                        self.maker.chunk(json!({}), finish_reason(stop).into()),
                    ));
                }
            }
            "message_stop" => {
                out.push(chat::Item::Usage(self.maker.usage_chunk(self.usage())));
                out.push(chat::Item::Done);
            }
            "error" => {
                let e = &v["error"];
                return Err(chat::stream_error(
                    e.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("provider error"),
                    e.get("type").and_then(Value::as_str).unwrap_or("api_error"),
                ));
            }
            _ => {} // ping, content_block_stop, and event types added later
        }
        Ok(())
    }

    pub fn usage(&self) -> (u64, u64) {
        (self.prompt, self.completion)
    }
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
