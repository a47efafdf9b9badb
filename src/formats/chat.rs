//! The pivot: OpenAI chat completions. Every translation goes through it —
//! a request is read as a chat request, an answer or stream event becomes a
//! chat completion or chunk — so N formats need 2N mappings, not N².
//! Reading helpers for chat requests and builders for chat answers live here.

use serde_json::{json, Map, Value};

/// A request a target's format cannot carry: the client hears why (400)
/// when no other target can serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// What a translated stream yields, in chat terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A `chat.completion.chunk`.
    Chunk(Value),
    /// The usage-only chunk that ends a stream (sent to chat clients only when
    /// they asked for `stream_options.include_usage`).
    Usage(Value),
    /// The stream is complete.
    Done,
}

/// An error event from the provider, mid-stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub message: String,
    pub kind: String,
}

pub fn stream_error(message: &str, kind: &str) -> StreamError {
    StreamError {
        message: message.to_string(),
        kind: kind.to_string(),
    }
}

/// A stream event's data as JSON, or its own `error` object (`kind_key`:
/// where the provider names the error's kind) as the stream's error.
pub fn event_json(data: &str, kind_key: &str) -> Result<Value, StreamError> {
    let v: Value = serde_json::from_str(data)
        .map_err(|_| stream_error("stream event is not JSON", "api_error"))?;
    match v.get("error") {
        Some(e) if e.is_object() => Err(stream_error(
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("provider error"),
            e.get(kind_key)
                .and_then(Value::as_str)
                .unwrap_or("api_error"),
        )),
        _ => Ok(v),
    }
}

/// Refuse what no non-OpenAI format can do rather than drop it silently.
pub fn refuse_unsupported(chat: &Map<String, Value>, format: &str) -> Result<(), Unsupported> {
    if chat.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(Unsupported(format!(
            "`n` greater than 1 is not supported by format {format}"
        )));
    }
    if chat.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(Unsupported(format!(
            "`logprobs` is not supported by format {format}"
        )));
    }
    if chat.get("audio").is_some_and(|a| !a.is_null()) {
        return Err(Unsupported(format!(
            "audio output is not supported by format {format}"
        )));
    }
    Ok(())
}

pub fn messages(chat: &Map<String, Value>) -> Result<&Vec<Value>, Unsupported> {
    chat.get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported("`messages` must be a list".into()))
}

/// The text parts of a message's content (a string, or a list of parts);
/// images are refused where only text can go.
pub fn texts(content: Option<&Value>) -> Result<Vec<String>, Unsupported> {
    parts(content)?
        .into_iter()
        .map(|p| match p {
            Part::Text(t) => Ok(t),
            Part::Image(_) => Err(Unsupported(
                "images are only supported in user messages".into(),
            )),
        })
        .collect()
}

pub enum Part {
    Text(String),
    Image(Image),
}

pub enum Image {
    Base64 { media_type: String, data: String },
    Url(String),
}

/// A message's content as parts: a string is one text part.
pub fn parts(content: Option<&Value>) -> Result<Vec<Part>, Unsupported> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(list)) => list.iter().map(part).collect(),
        Some(_) => Err(Unsupported(
            "message `content` must be a string or a list".into(),
        )),
    }
}

fn part(p: &Value) -> Result<Part, Unsupported> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::Text(
            p.get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )),
        Some("image_url") => {
            let url = p
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| Unsupported("image_url part has no url".into()))?;
            Ok(Part::Image(image(url)?))
        }
        Some(other) => Err(Unsupported(format!(
            "content part type `{other}` is not supported by this translation"
        ))),
        None => Err(Unsupported("content part without `type`".into())),
    }
}

/// `data:<media>;base64,<data>` or a plain URL.
pub fn image(url: &str) -> Result<Image, Unsupported> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| Unsupported("image data URL has no data".into()))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| Unsupported("image data URLs must be base64".into()))?;
        return Ok(Image::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        });
    }
    Ok(Image::Url(url.to_string()))
}

pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments parsed (a JSON object; `{}` when they are not JSON).
    pub input: Value,
}

/// An assistant message's `tool_calls`.
pub fn tool_calls(m: &Value) -> Vec<ToolCall> {
    let Some(calls) = m.get("tool_calls").and_then(Value::as_array) else {
        return Vec::new();
    };
    calls
        .iter()
        .map(|c| {
            let f = &c["function"];
            let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            ToolCall {
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                input: serde_json::from_str(args).unwrap_or_else(|_| json!({})),
            }
        })
        .collect()
}

pub struct Tool {
    pub name: String,
    pub description: Value,
    pub parameters: Value,
}

/// The request's function tools (`None`: it has none).
pub fn tools(chat: &Map<String, Value>) -> Result<Option<Vec<Tool>>, Unsupported> {
    let Some(list) = chat.get("tools").and_then(Value::as_array) else {
        return Ok(None);
    };
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|t| {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Unsupported(
                    "only `function` tools can be translated".into(),
                ));
            }
            let f = &t["function"];
            Ok(Tool {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                description: f.get("description").cloned().unwrap_or_else(|| "".into()),
                parameters: f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub enum ToolChoice {
    Auto,
    Required,
    None,
    Named(String),
}

pub fn tool_choice(chat: &Map<String, Value>) -> ToolChoice {
    match chat.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => ToolChoice::Required,
        Some(Value::String(s)) if s == "none" => ToolChoice::None,
        Some(Value::Object(o)) => match o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(n) => ToolChoice::Named(n.to_string()),
            None => ToolChoice::Auto,
        },
        _ => ToolChoice::Auto,
    }
}

/// `stop` as a list (OpenAI takes a string or a list).
pub fn stop(chat: &Map<String, Value>) -> Option<Value> {
    match chat.get("stop")? {
        Value::String(s) => Some(json!([s])),
        Value::Array(a) if !a.is_empty() => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// An assistant message with text and tool calls (`content` null when it
/// is all tool calls, as OpenAI sends it).
pub fn message(text: String, calls: Vec<Value>) -> Value {
    let mut m = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            m["content"] = Value::Null;
        }
        m["tool_calls"] = Value::Array(calls);
    }
    m
}

/// A whole chat completion with one choice.
pub fn completion(id: &str, model: &str, message: Value, finish: &str, usage: (u64, u64)) -> Value {
    let finish = if message.get("tool_calls").is_some() && finish == "stop" {
        "tool_calls"
    } else {
        finish
    };
    json!({
        "id": id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_json(usage),
    })
}

pub fn usage_json((p, c): (u64, u64)) -> Value {
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Builds the chunks of one translated stream (same id, model and time).
#[derive(Default)]
pub struct ChunkMaker {
    id: String,
    model: String,
    created: u64,
}

impl ChunkMaker {
    pub fn new(id: &str, model: &str) -> Self {
        ChunkMaker {
            id: id.to_string(),
            model: model.to_string(),
            created: now(),
        }
    }

    pub fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    pub fn usage_chunk(&self, usage: (u64, u64)) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": usage_json(usage),
        })
    }

    pub fn started(&self) -> bool {
        !self.id.is_empty()
    }
}

/// What one chat chunk adds to the answer.
pub struct Delta<'a> {
    /// Its text, when it has some.
    pub text: Option<&'a str>,
    /// Its tool-call pieces (`index`, and `id`/`function.name` on the first).
    pub calls: &'a [Value],
    pub finish: Option<&'a str>,
}

/// The first choice's delta of a chunk (`None`: a chunk without choices,
/// such as the usage-only one).
pub fn delta(chunk: &Value) -> Option<Delta<'_>> {
    let choice = chunk.pointer("/choices/0")?;
    let d = &choice["delta"];
    Some(Delta {
        text: d
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty()),
        calls: d
            .get("tool_calls")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
        finish: choice.get("finish_reason").and_then(Value::as_str),
    })
}

/// `usage` of a chat completion or chunk as (prompt, completion).
pub fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some((
        u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        u.get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    ))
}
