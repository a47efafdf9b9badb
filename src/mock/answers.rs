//! What the mock answers, in each provider's real shape: the endpoint (path)
//! picks the shape, as it does at the providers — OpenAI chat, text
//! completions, embeddings and Responses; Anthropic Messages; Gemini
//! generateContent. Used by `llmgate mock`, which users load-test against.

use serde_json::json;

/// The API a request was made to, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Anthropic,
    /// Gemini; `true`: `streamGenerateContent`.
    Gemini(bool),
}

impl Api {
    pub fn of(path: &str) -> Api {
        let path = path.split('?').next().unwrap_or(path);
        if path.contains(":streamGenerateContent") {
            Api::Gemini(true)
        } else if path.contains(":generateContent") {
            Api::Gemini(false)
        } else if path.ends_with("/messages") {
            Api::Anthropic
        } else if path.ends_with("/embeddings") {
            Api::Embeddings
        } else if path.ends_with("/responses") {
            Api::Responses
        } else if path.ends_with("/completions") && !path.ends_with("/chat/completions") {
            Api::Completions
        } else {
            Api::Chat
        }
    }

    /// Gemini names the model in the path.
    pub fn model_in_path(path: &str) -> Option<&str> {
        let at = path.find("/models/")? + "/models/".len();
        path[at..].split(':').next()
    }
}

const CREATED: u64 = 1_700_000_000;
const TEXT: &str = "Hello from the mock provider.";

pub fn chat_completion(model: &str) -> String {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    })
    .to_string()
}

/// A Responses API `response` object as OpenAI sends it.
fn responses_object(
    model: &str,
    status: &str,
    output: serde_json::Value,
    usage: Option<serde_json::Value>,
) -> serde_json::Value {
    json!({
        "id": "resp_mock", "object": "response", "created_at": CREATED, "status": status,
        "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null,
        "model": model, "output": output, "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled", "usage": usage, "user": null, "metadata": {}
    })
}

/// A whole answer for `api`.
pub fn answer(api: Api, model: &str, body: &serde_json::Value) -> String {
    match api {
        Api::Chat => chat_completion(model),
        Api::Completions => json!({
            "id": "cmpl-mock", "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "text": TEXT, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
        })
        .to_string(),
        Api::Embeddings => {
            let n = match body.get("input") {
                Some(serde_json::Value::Array(a)) if a.first().is_some_and(|x| x.is_string()) => a.len(),
                _ => 1,
            };
            const VECTOR: [f32; 4] = [0.0023, -0.0093, 0.0157, 0.0041];
            // The official SDKs ask for base64 (little-endian f32s) unless told otherwise.
            let embedding = if body.get("encoding_format").and_then(|f| f.as_str()) == Some("base64") {
                use base64::Engine as _;
                let bytes: Vec<u8> = VECTOR.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(VECTOR)
            };
            let data: Vec<_> = (0..n)
                .map(|i| json!({"object": "embedding", "index": i, "embedding": embedding}))
                .collect();
            json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": 4 * n, "total_tokens": 4 * n}})
            .to_string()
        }
        Api::Responses => responses_object(
            model,
            "completed",
            json!([{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}]),
            Some(json!({"input_tokens": 9, "output_tokens": 6, "total_tokens": 15})),
        )
        .to_string(),
        Api::Anthropic => json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 6}
        })
        .to_string(),
        Api::Gemini(_) => json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 6, "totalTokenCount": 15},
            "modelVersion": model, "responseId": "mock"
        })
        .to_string(),
    }
}

/// The events of a stream of `n` tokens for `api`, in order (without the
/// terminator: see [`stream_end`]); `usage`: OpenAI's `include_usage`.
pub fn stream_events(api: Api, model: &str, n: usize, usage: bool) -> Vec<String> {
    match api {
        Api::Anthropic => {
            let mut out = vec![
                ev(Some("message_start"), json!({"type": "message_start", "message": {
                    "id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": model,
                    "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 9, "output_tokens": 1}}})),
                ev(Some("ping"), json!({"type": "ping"})),
                ev(Some("content_block_start"), json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})),
            ];
            for i in 0..n {
                out.push(ev(Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": format!("tok{i} ")}})));
            }
            out
        }
        Api::Gemini(_) => (0..n)
            .map(|i| {
                ev(None, json!({"candidates": [{"content": {"role": "model", "parts": [{"text": format!("tok{i} ")}]}, "index": 0}],
                    "modelVersion": model, "responseId": "mock"}))
            })
            .collect(),
        Api::Responses => {
            let r = responses_object(model, "in_progress", json!([]), None);
            let mut out = vec![
                ev(Some("response.created"), json!({"type": "response.created", "sequence_number": 0, "response": r})),
                ev(Some("response.in_progress"), json!({"type": "response.in_progress", "sequence_number": 1, "response": r})),
                ev(Some("response.output_item.added"), json!({"type": "response.output_item.added", "sequence_number": 2,
                    "output_index": 0, "item": {"type": "message", "id": "msg_mock", "status": "in_progress", "role": "assistant", "content": []}})),
                ev(Some("response.content_part.added"), json!({"type": "response.content_part.added", "sequence_number": 3,
                    "item_id": "msg_mock", "output_index": 0, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}})),
            ];
            for i in 0..n {
                out.push(ev(Some("response.output_text.delta"), json!({"type": "response.output_text.delta",
                    "sequence_number": i + 4, "item_id": "msg_mock", "output_index": 0, "content_index": 0,
                    "delta": format!("tok{i} "), "logprobs": []})));
            }
            out
        }
        _ => (0..n)
            .map(|i| {
                let mut chunk = json!({
                    "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                    "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]
                });
                if usage {
                    chunk["usage"] = serde_json::Value::Null;
                }
                format!("data: {chunk}\n\n")
            })
            .collect(),
    }
}

/// What ends a complete stream of `n` tokens for `api`.
pub fn stream_end(api: Api, model: &str, n: usize, usage: bool) -> Vec<String> {
    match api {
        Api::Anthropic => vec![
            ev(
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": 0}),
            ),
            ev(
                Some("message_delta"),
                json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": n}}),
            ),
            ev(Some("message_stop"), json!({"type": "message_stop"})),
        ],
        Api::Gemini(_) => vec![ev(
            None,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": n, "totalTokenCount": 9 + n},
            "modelVersion": model, "responseId": "mock"}),
        )],
        Api::Responses => {
            let text: String = (0..n).map(|i| format!("tok{i} ")).collect();
            let part = json!({"type": "output_text", "text": text, "annotations": []});
            let item = json!({"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant", "content": [part]});
            let usage = json!({"input_tokens": 9, "output_tokens": n, "total_tokens": 9 + n});
            let seq = n + 4;
            vec![
                ev(
                    Some("response.output_text.done"),
                    json!({"type": "response.output_text.done", "sequence_number": seq,
                    "item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
                ),
                ev(
                    Some("response.content_part.done"),
                    json!({"type": "response.content_part.done", "sequence_number": seq + 1,
                    "item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": part}),
                ),
                ev(
                    Some("response.output_item.done"),
                    json!({"type": "response.output_item.done", "sequence_number": seq + 2,
                    "output_index": 0, "item": item}),
                ),
                ev(
                    Some("response.completed"),
                    json!({"type": "response.completed", "sequence_number": seq + 3,
                    "response": responses_object(model, "completed", json!([item]), Some(usage))}),
                ),
            ]
        }
        _ => {
            let mut out = Vec::new();
            if usage {
                let chunk = json!({
                    "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                    "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n}
                });
                out.push(format!("data: {chunk}\n\n"));
            }
            out.push("data: [DONE]\n\n".to_string());
            out
        }
    }
}

/// An error answer's body in `api`'s shape.
pub fn error(api: Api, status: u16) -> String {
    let message = format!("mock failure {status}");
    match api {
        Api::Anthropic => {
            let kind = match status {
                529 => "overloaded_error",
                429 => "rate_limit_error",
                401 => "authentication_error",
                400 => "invalid_request_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
        }
        Api::Gemini(_) => {
            let kind = match status {
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                400 => "INVALID_ARGUMENT",
                401 | 403 => "PERMISSION_DENIED",
                _ => "INTERNAL",
            };
            json!({"error": {"code": status, "message": message, "status": kind}}).to_string()
        }
        _ => String::from_utf8_lossy(&crate::error::error_body(&message, "mock_error", "mock"))
            .into_owned(),
    }
}

fn ev(name: Option<&str>, data: serde_json::Value) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}
