//! OpenAI chat completions to a Gemini upstream (`generateContent`,
//! `streamGenerateContent?alt=sse`) and its answers back, after Google's
//! API reference (ai.google.dev/api/generate-content).

use super::chat::{self, ChunkMaker, Unsupported};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The generateContent request for an OpenAI chat request.
pub fn request(chat: &Map<String, Value>) -> Result<Value, Unsupported> {
    chat::refuse_unsupported(chat, "gemini")?;
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini's function responses name the function, not the call's id.
    let mut names: HashMap<String, String> = HashMap::new();
    for m in chat::messages(chat)? {
        match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                for text in chat::texts(m.get("content"))? {
                    system.push(json!({"text": text}));
                }
            }
            "user" => {
                let parts = chat::parts(m.get("content"))?
                    .into_iter()
                    .map(|p| match p {
                        chat::Part::Text(t) => json!({"text": t}),
                        chat::Part::Image(chat::Image::Base64 { media_type, data }) => {
                            json!({"inlineData": {"mimeType": media_type, "data": data}})
                        }
                        chat::Part::Image(chat::Image::Url(url)) => {
                            json!({"fileData": {"mimeType": mime_of(&url), "fileUri": url}})
                        }
                    })
                    .collect();
                push(&mut contents, "user", parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                for text in chat::texts(m.get("content"))? {
                    if !text.is_empty() {
                        parts.push(json!({"text": text}));
                    }
                }
                for call in chat::tool_calls(m) {
                    names.insert(call.id.clone(), call.name.clone());
                    parts.push(json!({"functionCall": {"name": call.name, "args": call.input}}));
                }
                push(&mut contents, "model", parts);
            }
            "tool" | "function" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let name = names
                    .get(id)
                    .cloned()
                    .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                let text = chat::texts(m.get("content"))?.join("");
                // A function's response must be an object: JSON objects go as
                // they are, anything else under `content`.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                let part = json!({"functionResponse": {"name": name, "response": response}});
                push(&mut contents, "user", vec![part]);
            }
            other => return Err(Unsupported(format!("message role `{other}` is not known"))),
        }
    }
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = chat.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(max) = chat
        .get("max_completion_tokens")
        .or_else(|| chat.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        config.insert("maxOutputTokens".into(), max.clone());
    }
    if let Some(stop) = chat::stop(chat) {
        config.insert("stopSequences".into(), stop);
    }
    match chat
        .get("response_format")
        .and_then(|r| r.get("type"))
        .and_then(Value::as_str)
    {
        None | Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(s) = chat["response_format"].pointer("/json_schema/schema") {
                config.insert("responseJsonSchema".into(), s.clone());
            }
        }
        Some(other) => {
            return Err(Unsupported(format!(
                "response_format `{other}` is not supported by format gemini"
            )))
        }
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = chat::tools(chat)? {
        let decls: Vec<Value> = tools
            .into_iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": schema(t.parameters)}))
            .collect();
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let config = match chat::tool_choice(chat) {
            chat::ToolChoice::Auto => json!({"mode": "AUTO"}),
            chat::ToolChoice::Required => json!({"mode": "ANY"}),
            chat::ToolChoice::None => json!({"mode": "NONE"}),
            chat::ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    Ok(Value::Object(out))
}

/// A JSON Schema as Gemini's `parameters` take it: the OpenAPI subset has
/// no `$schema` nor `additionalProperties` (Gemini refuses them).
fn schema(mut v: Value) -> Value {
    match &mut v {
        Value::Object(o) => {
            o.remove("$schema");
            o.remove("additionalProperties");
            for (_, x) in o.iter_mut() {
                *x = schema(x.take());
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = schema(x.take());
            }
        }
        _ => {}
    }
    v
}

fn mime_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

fn push(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last["role"] == role {
            if let Some(Value::Array(p)) = last.get_mut("parts") {
                p.extend(parts);
                return;
            }
        }
    }
    contents.push(json!({"role": role, "parts": parts}));
}

/// A Gemini `finishReason` as OpenAI's `finish_reason`.
pub fn finish_reason(r: &str) -> &'static str {
    match r {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

pub fn usage(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usageMetadata")?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    // Thinking tokens are billed as output, as OpenAI counts reasoning.
    Some((
        n("promptTokenCount"),
        n("candidatesTokenCount") + n("thoughtsTokenCount"),
    ))
}

/// Text and function calls of a response's first candidate; `calls_before`
/// numbers the calls (ids `call_N`) across a stream.
fn content(v: &Value, calls_before: usize) -> (String, Vec<Value>, Option<&str>) {
    let cand = &v["candidates"][0];
    let mut text = String::new();
    let mut calls = Vec::new();
    if let Some(parts) = cand.pointer("/content/parts").and_then(Value::as_array) {
        for p in parts {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                text.push_str(t);
            } else if let Some(f) = p.get("functionCall") {
                let n = calls_before + calls.len();
                calls.push(json!({
                    "index": n,
                    "id": format!("call_{n}"),
                    "type": "function",
                    "function": {
                        "name": f.get("name").cloned().unwrap_or_default(),
                        "arguments": f.get("args").map_or_else(|| "{}".into(), Value::to_string),
                    },
                }));
            }
        }
    }
    let finish = cand
        .get("finishReason")
        .and_then(Value::as_str)
        .or_else(|| {
            v.pointer("/promptFeedback/blockReason")
                .and_then(Value::as_str)
                .map(|_| "SAFETY")
        });
    (text, calls, finish)
}

/// An answer's id and model (its `modelVersion`, else the target's).
fn id_and_model<'a>(v: &'a Value, model: &'a str) -> (&'a str, &'a str) {
    (
        v.get("responseId")
            .and_then(Value::as_str)
            .unwrap_or("gemini"),
        v.get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or(model),
    )
}

/// A generateContent answer as a chat completion.
pub fn answer(v: &Value, model: &str) -> Result<Value, String> {
    if v.get("candidates").is_none() && v.get("promptFeedback").is_none() {
        return Err("answer has no `candidates`".into());
    }
    let (text, mut calls, finish) = content(v, 0);
    for c in &mut calls {
        if let Some(o) = c.as_object_mut() {
            o.remove("index");
        }
    }
    let (id, model) = id_and_model(v, model);
    Ok(chat::completion(
        id,
        model,
        chat::message(text, calls),
        finish.map_or("stop", finish_reason),
        usage(v).unwrap_or((0, 0)),
    ))
}

/// A Gemini SSE stream (each event a partial answer) into chat chunks.
pub struct Stream {
    maker: ChunkMaker,
    model: String,
    calls: usize,
    usage: Option<(u64, u64)>,
    finished: bool,
}

impl Stream {
    pub fn new(model: &str) -> Self {
        Stream {
            maker: ChunkMaker::default(),
            model: model.to_string(),
            calls: 0,
            usage: None,
            finished: false,
        }
    }

    pub fn event(
        &mut self,
        data: &str,
        out: &mut Vec<chat::Item>,
    ) -> Result<(), chat::StreamError> {
        let v = chat::event_json(data, "status")?;
        if !self.maker.started() {
            let (id, model) = id_and_model(&v, &self.model);
            self.maker = ChunkMaker::new(id, model);
            out.push(chat::Item::Chunk(
                self.maker
                    .chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            ));
        }
        let (text, calls, finish) = content(&v, self.calls);
        if !text.is_empty() {
            out.push(chat::Item::Chunk(
                self.maker.chunk(json!({"content": text}), Value::Null),
            ));
        }
        if !calls.is_empty() {
            self.calls += calls.len();
            out.push(chat::Item::Chunk(
                self.maker.chunk(json!({"tool_calls": calls}), Value::Null),
            ));
        }
        if let Some(u) = usage(&v) {
            self.usage = Some(u);
        }
        if let Some(f) = finish {
            let reason = if self.calls > 0 && f == "STOP" {
                "tool_calls"
            } else {
                finish_reason(f)
            };
            self.finished = true;
            out.push(chat::Item::Chunk(
                self.maker.chunk(json!({}), reason.into()),
            ));
        }
        Ok(())
    }

    /// Gemini's stream has no end marker: its end is the body's end.
    pub fn end(&mut self, out: &mut Vec<chat::Item>) {
        if !self.maker.started() {
            return;
        }
        out.push(chat::Item::Usage(self.maker.usage_chunk(self.usage())));
        out.push(chat::Item::Done);
    }

    pub fn usage(&self) -> (u64, u64) {
        self.usage.unwrap_or((0, 0))
    }

    pub fn usage_seen(&self) -> bool {
        self.usage.is_some()
    }
}

#[cfg(test)]
#[path = "gemini_tests.rs"]
mod tests;
