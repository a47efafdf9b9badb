//! Inbound OpenAI Responses (`POST /v1/responses`) for targets that do not
//! speak it (anthropic, gemini): the request read as a chat request, chat
//! answers written as a `response` object and chat chunks as the Responses
//! event sequence (response.created, response.in_progress, then per output
//! item output_item.added, content_part.added / output_text.delta / .done or
//! function_call_arguments.delta / .done, output_item.done, and finally
//! response.completed or response.incomplete). Text and function calls are
//! carried; hosted tools and server-side state are refused.

use super::chat::{self, Unsupported};
use serde_json::{json, Map, Value};

#[path = "responses_events.rs"]
mod events;
pub use events::Writer;

/// The chat request for a Responses request.
pub fn to_chat(m: &Map<String, Value>) -> Result<Map<String, Value>, Unsupported> {
    for (key, what) in [
        ("previous_response_id", "server-stored conversation state"),
        ("conversation", "server-stored conversation state"),
        ("prompt", "stored prompt templates"),
    ] {
        if m.get(key).is_some_and(|v| !v.is_null()) {
            return Err(Unsupported(format!(
                "`{key}` ({what}) exists only on OpenAI: it cannot be translated for this target"
            )));
        }
    }
    if m.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(Unsupported(
            "`background` responses exist only on OpenAI: they cannot be translated for this target"
                .into(),
        ));
    }
    let mut messages = Vec::new();
    match m.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(Unsupported("`instructions` must be a string".into())),
    }
    match m.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        _ => {
            return Err(Unsupported(
                "`input` must be a string or a list of items".into(),
            ))
        }
    }
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = m.get("max_output_tokens").filter(|v| !v.is_null()) {
        out.insert("max_tokens".into(), n.clone());
    }
    for k in ["temperature", "top_p", "parallel_tool_calls"] {
        if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(u) = ["user", "safety_identifier"]
        .iter()
        .find_map(|k| m.get(*k).filter(|v| v.is_string()))
    {
        out.insert("user".into(), u.clone());
    }
    if let Some(tools) = m
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        out.insert("tools".into(), Value::Array(function_tools(tools)?));
        if let Some(c) = m.get("tool_choice") {
            out.insert("tool_choice".into(), tool_choice(c)?);
        }
    }
    if let Some(f) = m.get("text").and_then(|t| t.get("format")) {
        match f.get("type").and_then(Value::as_str) {
            None | Some("text") => {}
            Some("json_object") => {
                out.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some("json_schema") => {
                let mut schema = Map::new();
                for k in ["name", "schema", "strict", "description"] {
                    if let Some(v) = f.get(k) {
                        schema.insert(k.into(), v.clone());
                    }
                }
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": schema}),
                );
            }
            Some(other) => {
                return Err(Unsupported(format!(
                    "text format `{other}` cannot be translated for this target"
                )))
            }
        }
    }
    if m.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(out)
}

/// `input` items as chat messages: messages by role, `function_call` items
/// joined to the assistant turn they belong to, `function_call_output` as
/// `tool` messages; reasoning items are the provider's own and dropped.
fn input_items(items: &[Value], messages: &mut Vec<Value>) -> Result<(), Unsupported> {
    // The assistant turn being built: its text and tool calls.
    let mut turn: Option<(String, Vec<Value>)> = None;
    let flush = |turn: &mut Option<(String, Vec<Value>)>, messages: &mut Vec<Value>| {
        if let Some((text, calls)) = turn.take() {
            messages.push(chat::message(text, calls));
        }
    };
    for item in items {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                let parts = content_parts(item.get("content"))?;
                match role {
                    "assistant" => turn
                        .get_or_insert_with(Default::default)
                        .0
                        .push_str(&text_of(&parts)),
                    "user" => {
                        flush(&mut turn, messages);
                        messages.push(json!({"role": "user", "content": parts}));
                    }
                    "system" | "developer" => {
                        flush(&mut turn, messages);
                        messages.push(json!({"role": "system", "content": text_of(&parts)}));
                    }
                    other => {
                        return Err(Unsupported(format!(
                            "input message role `{other}` is not known"
                        )))
                    }
                }
            }
            "function_call" => {
                let (_, calls) = turn.get_or_insert_with(Default::default);
                calls.push(json!({
                    "id": item.get("call_id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or_default(),
                        "arguments": item.get("arguments").cloned().unwrap_or_else(|| "{}".into()),
                    },
                }));
            }
            "function_call_output" => {
                flush(&mut turn, messages);
                let content = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => text_of(parts),
                    _ => String::new(),
                };
                messages.push(json!({"role": "tool", "tool_call_id": item.get("call_id").cloned().unwrap_or_default(), "content": content}));
            }
            "reasoning" => {}
            other => {
                return Err(Unsupported(format!(
                    "input item type `{other}` cannot be translated for this target"
                )))
            }
        }
    }
    flush(&mut turn, messages);
    Ok(())
}

/// The text of content parts, joined.
fn text_of(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// A message's content as chat content parts.
fn content_parts(content: Option<&Value>) -> Result<Vec<Value>, Unsupported> {
    let list = match content {
        Some(Value::String(s)) => return Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(list)) => list,
        _ => {
            return Err(Unsupported(
                "message `content` must be a string or a list".into(),
            ))
        }
    };
    list.iter()
        .map(|p| match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                Ok(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()}))
            }
            Some("refusal") => {
                Ok(json!({"type": "text", "text": p.get("refusal").cloned().unwrap_or_default()}))
            }
            Some("input_image") => match p.get("image_url").and_then(Value::as_str) {
                Some(url) => Ok(json!({"type": "image_url", "image_url": {"url": url}})),
                None => Err(Unsupported(
                    "images by `file_id` exist only on OpenAI: give `image_url`".into(),
                )),
            },
            Some(other) => Err(Unsupported(format!(
                "content part type `{other}` cannot be translated for this target"
            ))),
            None => Err(Unsupported("content part without `type`".into())),
        })
        .collect()
}

/// Responses' flat function tools as chat tools; hosted tools (web search,
/// file search, ...) run only on OpenAI.
fn function_tools(tools: &[Value]) -> Result<Vec<Value>, Unsupported> {
    tools
        .iter()
        .map(|t| match t.get("type").and_then(Value::as_str) {
            Some("function") => Ok(json!({"type": "function", "function": {
                "name": t.get("name").cloned().unwrap_or_default(),
                "description": t.get("description").cloned().unwrap_or_else(|| "".into()),
                "parameters": t.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            }})),
            other => Err(Unsupported(format!(
                "tool type `{}` runs only on OpenAI: it cannot be translated for this target",
                other.unwrap_or("")
            ))),
        })
        .collect()
}

fn tool_choice(c: &Value) -> Result<Value, Unsupported> {
    match c {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(c.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Ok(json!({"type": "function", "function": {"name": o.get("name")}}))
        }
        _ => Err(Unsupported(
            "`tool_choice` must be auto, none, required or a function".into(),
        )),
    }
}

/// Chat's `finish_reason` as the response's status and, when incomplete,
/// the reason.
fn status(finish: &str) -> (&'static str, Option<&'static str>) {
    match finish {
        "length" => ("incomplete", Some("max_output_tokens")),
        "content_filter" => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

fn id_from(chat_id: &str, prefix: &str) -> String {
    let bare = chat_id
        .trim_start_matches("chatcmpl-")
        .trim_start_matches("msg_");
    format!("{prefix}{bare}")
}

/// A `response` object; `output` is its items; `usage` is null while it is
/// in progress.
fn response(
    head: &Head,
    status: &str,
    reason: Option<&str>,
    output: Vec<Value>,
    usage: Option<(u64, u64)>,
) -> Value {
    let usage = usage.map(|(p, o)| {
        json!({"input_tokens": p, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": o, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p + o})
    });
    json!({
        "id": head.id, "object": "response", "created_at": head.created, "status": status,
        "error": null,
        "incomplete_details": reason.map(|r| json!({"reason": r})),
        "instructions": null, "max_output_tokens": null, "model": head.model,
        "output": output, "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "store": false,
        "temperature": null, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": [], "top_p": null, "truncation": "disabled", "user": null, "metadata": {},
        "usage": usage,
    })
}

/// What every event of one response repeats.
#[derive(Default)]
struct Head {
    id: String,
    model: Value,
    created: u64,
}

impl Head {
    fn of(c: &Value) -> Head {
        Head {
            id: id_from(c.get("id").and_then(Value::as_str).unwrap_or(""), "resp_"),
            model: c.get("model").cloned().unwrap_or_default(),
            created: c.get("created").and_then(Value::as_u64).unwrap_or_else(now),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn call_item(id: &str, call_id: &Value, name: &Value, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// A chat completion as a `response` object.
pub fn answer(c: &Value) -> Result<Value, String> {
    let choice = c.pointer("/choices/0").ok_or("answer has no choices")?;
    let msg = &choice["message"];
    let head = Head::of(c);
    let mut output = Vec::new();
    if let Some(t) = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        output.push(message_item(&id_from(&head.id, "msg_"), t, "completed"));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let call_id = call.get("id").cloned().unwrap_or_default();
        let f = &call["function"];
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let id = format!("fc_{}", call_id.as_str().unwrap_or(""));
        output.push(call_item(&id, &call_id, &f["name"], args, "completed"));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let (status, reason) = status(finish);
    Ok(response(
        &head,
        status,
        reason,
        output,
        Some(chat::usage_of(c).unwrap_or((0, 0))),
    ))
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
