//! Provider formats (design.md section 9): what a client speaks (its
//! [`Dialect`], from the endpoint), what a target speaks (its upstream's
//! [`Format`]), and the translation between them for requests, answers,
//! streams and errors. Same format on both sides is a [`Plan::Pass`]: the
//! exchange core splices the model and nothing here runs.
//!
//! Translations pivot on OpenAI chat completions (`chat`): a request is read
//! as a chat request and written for the target, an answer read into chat
//! form and written in the client's.

pub mod anthropic;
pub mod chat;
pub mod gemini;
pub mod messages;
#[cfg(test)]
mod properties;
pub mod responses;
pub mod sse;
pub mod stream;

pub use crate::config::Format;
use crate::config::UpstreamConfig;
use crate::params::Params;
use chat::Unsupported;

/// Prompt and completion tokens.
pub type Usage = (u64, u64);
use serde_json::{Map, Value};

/// What the client speaks, from the endpoint it called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions` (OpenAI only; takes `stream_options` too).
    Completions,
    /// `/v1/messages` (Anthropic).
    Messages,
    /// `/v1/responses` (OpenAI Responses).
    Responses,
    /// Any other `POST /v1/*` (embeddings, ...): OpenAI only.
    Other,
}

/// How one attempt carries the request to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The same format: the body goes with the model spliced, the answer as it comes.
    Pass,
    /// Translated both ways.
    Translate,
}

impl Dialect {
    /// The dialect of `rest`, the path after `/v1/` (no query).
    pub fn of(rest: &str) -> Dialect {
        match rest.trim_end_matches('/') {
            "chat/completions" => Dialect::Chat,
            "completions" => Dialect::Completions,
            "messages" => Dialect::Messages,
            "responses" => Dialect::Responses,
            _ => Dialect::Other,
        }
    }

    /// Whether llmgate may ask this endpoint's streams for usage
    /// (`stream_options`, which only these OpenAI endpoints take).
    pub fn takes_stream_options(self) -> bool {
        matches!(self, Dialect::Chat | Dialect::Completions)
    }

    /// How a target of format `f` serves this dialect; `Err`: it cannot.
    pub fn plan(self, f: Format) -> Result<Plan, Unsupported> {
        match (self, f) {
            (Dialect::Messages, Format::Anthropic) => Ok(Plan::Pass),
            (Dialect::Messages, _)
            | (Dialect::Chat | Dialect::Responses, Format::Anthropic | Format::Gemini) => {
                Ok(Plan::Translate)
            }
            (_, Format::OpenAi) => Ok(Plan::Pass),
            (d, f) => Err(Unsupported(format!(
                "{} cannot be translated to format {}",
                d.endpoint(),
                f.name()
            ))),
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Dialect::Chat => "/v1/chat/completions",
            Dialect::Completions => "/v1/completions",
            Dialect::Messages => "/v1/messages",
            Dialect::Responses => "/v1/responses",
            Dialect::Other => "this endpoint",
        }
    }
}

/// A translated request: the path after the upstream's base URL (query
/// included) and the body.
#[derive(Debug)]
pub struct Wire {
    pub path: String,
    pub body: Vec<u8>,
}

/// What of an upstream's config shapes a translated request.
#[derive(Debug, Clone, Copy)]
pub struct WireOpts {
    /// `max_tokens` for Anthropic when the request has none.
    pub default_max_tokens: u32,
    /// The upstream takes `stream_options` (OpenAI format).
    pub stream_usage: bool,
}

impl From<&UpstreamConfig> for WireOpts {
    fn from(u: &UpstreamConfig) -> Self {
        WireOpts {
            default_max_tokens: u.default_max_tokens,
            stream_usage: u.stream_usage,
        }
    }
}

/// The request body in the client's dialect, read once per request for
/// every translated attempt.
pub struct Pivot {
    /// The request as a chat request (model not set).
    chat: Map<String, Value>,
    pub stream: bool,
}

impl Pivot {
    /// `body` (JSON, checked) read as a chat request.
    pub fn read(d: Dialect, body: &[u8]) -> Result<Pivot, Unsupported> {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
            return Err(Unsupported("request body must be a JSON object".into()));
        };
        let stream = m.get("stream").and_then(Value::as_bool) == Some(true);
        let chat = match d {
            Dialect::Messages => messages::to_chat(&m)?,
            Dialect::Responses => responses::to_chat(&m)?,
            _ => m,
        };
        Ok(Pivot { chat, stream })
    }

    /// The request for one target: format `f`, model `model`, with the
    /// target's parameter overrides applied to the chat form.
    pub fn wire(
        &self,
        f: Format,
        model: &str,
        up: WireOpts,
        params: Option<&Params>,
    ) -> Result<Wire, Unsupported> {
        // Copied only for a target that edits it (parameter overrides) or
        // an OpenAI one (the model goes in).
        let mut chat = match (params, f) {
            (None, Format::Anthropic | Format::Gemini) => std::borrow::Cow::Borrowed(&self.chat),
            _ => std::borrow::Cow::Owned(self.chat.clone()),
        };
        if let Some(p) = params {
            p.apply_value(chat.to_mut());
        }
        let default_max_tokens = up.default_max_tokens;
        let (path, body) = match f {
            Format::OpenAi => {
                let mut chat = chat.into_owned();
                chat.insert("model".into(), model.into());
                if !up.stream_usage {
                    // A server that refuses unknown fields (`stream_usage: false`).
                    chat.remove("stream_options");
                }
                ("/chat/completions".to_string(), Value::Object(chat))
            }
            Format::Anthropic => (
                "/messages".to_string(),
                anthropic::request(&chat, model, self.stream, default_max_tokens)?,
            ),
            Format::Gemini => {
                let name = model.strip_prefix("models/").unwrap_or(model);
                let name = percent_encoding::utf8_percent_encode(name, SEGMENT);
                let path = if self.stream {
                    format!("/models/{name}:streamGenerateContent?alt=sse")
                } else {
                    format!("/models/{name}:generateContent")
                };
                (path, gemini::request(&chat)?)
            }
        };
        Ok(Wire {
            path,
            body: to_vec(&body),
        })
    }
}

/// A value's JSON, written straight to bytes (not through `Display`).
fn to_vec(v: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail: its keys are strings.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Characters escaped in a path segment (a model name in Gemini's path).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A complete 2xx answer of format `f` in the client's dialect, with its
/// usage; `Err`: it cannot be read (the attempt fails over).
pub fn answer(
    d: Dialect,
    f: Format,
    body: &[u8],
    model: &str,
) -> Result<(Vec<u8>, Option<Usage>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "answer is not JSON".to_string())?;
    let chat = match f {
        Format::OpenAi => v,
        Format::Anthropic => anthropic::answer(&v)?,
        Format::Gemini => gemini::answer(&v, model)?,
    };
    let usage = chat::usage_of(&chat);
    let out = match d {
        Dialect::Messages => messages::answer(&chat)?,
        Dialect::Responses => responses::answer(&chat)?,
        _ => chat,
    };
    Ok((to_vec(&out), usage))
}

/// A provider's error answer (format `f`, any shape) in the client's
/// dialect, keeping its message.
pub fn error(d: Dialect, f: Format, status: u16, body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("upstream answered {status}"));
    let provider_kind = match f {
        Format::Anthropic => e.get("type"),
        Format::Gemini => e.get("status"),
        Format::OpenAi => e.get("type"),
    }
    .and_then(Value::as_str);
    match d {
        Dialect::Messages => {
            let kind = match f {
                Format::Anthropic => provider_kind.unwrap_or_else(|| messages::error_type(status)),
                _ => messages::error_type(status),
            };
            messages::error_body(kind, &message)
        }
        _ => {
            let kind = openai_error_type(status);
            let code = provider_kind.unwrap_or(kind);
            crate::error::error_body(&message, kind, code).to_vec()
        }
    }
}

/// The event that ends a stream in error, in the client's dialect: chat's
/// in-band `data: {"error":{...,"code"}}`, Anthropic's `event: error`, the
/// Responses API's `event: error`. Used for a provider's own error event and
/// for a stream cut after commit alike.
pub fn error_event(d: Dialect, out: &mut Vec<u8>, message: &str, code: &str) {
    match d {
        Dialect::Messages => messages::error_event(out, message),
        Dialect::Responses => {
            let e = serde_json::json!({"type": "error", "code": code, "message": message, "param": null});
            sse::write_json_event(out, Some("error"), &e);
        }
        Dialect::Chat | Dialect::Completions | Dialect::Other => {
            let e = crate::error::error_body(message, "upstream_error", code);
            sse::write_event(out, None, &e);
        }
    }
}

/// OpenAI's error `type` for a status.
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 | 400 | 405 | 413 | 422 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
