//! Properties of the translations: nothing a client or provider sends makes
//! them panic, and OpenAI -> Anthropic -> OpenAI keeps content, tool calls,
//! tool results and usage.

use super::chat::Item;
use super::stream::Translator;
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z_ ]{0,8}".prop_map(Value::from),
        prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "tool",
            "text",
            "image_url",
            "tool_use",
            "function",
            "message",
            "content",
            "data:image/png;base64,AA",
            "message_start",
            "[DONE]",
            "function_call",
            "function_call_output",
            "input_text",
            "input_image",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "role",
                        "content",
                        "messages",
                        "type",
                        "text",
                        "tool_calls",
                        "function",
                        "arguments",
                        "name",
                        "id",
                        "tools",
                        "tool_choice",
                        "stop",
                        "n",
                        "system",
                        "image_url",
                        "url",
                        "source",
                        "choices",
                        "delta",
                        "usage",
                        "candidates",
                        "parts",
                        "index",
                        "message",
                        "stream",
                        "max_tokens",
                        "input",
                        "instructions",
                        "call_id",
                        "output",
                        "max_output_tokens",
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

const FORMATS: [Format; 3] = [Format::OpenAi, Format::Anthropic, Format::Gemini];
const DIALECTS: [Dialect; 3] = [Dialect::Chat, Dialect::Messages, Dialect::Responses];
const OPTS: WireOpts = WireOpts {
    default_max_tokens: 16,
    stream_usage: true,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn requests_never_panic(v in arb_json()) {
        let body = v.to_string();
        for d in DIALECTS {
            if let Ok(p) = Pivot::read(d, body.as_bytes()) {
                for f in FORMATS {
                    let _ = p.wire(f, "m", OPTS, None);
                }
            }
        }
    }

    #[test]
    fn answers_and_errors_never_panic(v in arb_json(), status in 100u16..600) {
        let body = v.to_string();
        for d in DIALECTS {
            for f in FORMATS {
                let _ = answer(d, f, body.as_bytes(), "m");
                let _ = error(d, f, status, body.as_bytes());
            }
        }
    }

    #[test]
    fn streams_never_panic(events in prop::collection::vec((prop::option::of("[a-z_]{1,20}"), arb_json()), 0..8), cut in 1usize..64) {
        let mut wire = Vec::new();
        for (name, data) in &events {
            sse::write_event(&mut wire, name.as_deref(), data.to_string().as_bytes());
        }
        for d in DIALECTS {
            for f in FORMATS {
                let mut t = Translator::new(d, f, "m", true);
                for c in wire.chunks(cut) {
                    let _ = t.feed(c);
                }
                let _ = t.end();
                let _ = t.cut("x");
            }
        }
    }

    #[test]
    fn openai_to_anthropic_and_back_keeps_content_tools_and_results(
        system in "[a-zA-Z ]{1,20}",
        turns in prop::collection::vec(("[a-zA-Z ]{1,20}", prop::option::of(("[a-z]{1,8}", 0i64..100))), 1..4),
    ) {
        let mut messages = vec![json!({"role": "system", "content": system})];
        for (i, (text, call)) in turns.iter().enumerate() {
            messages.push(json!({"role": "user", "content": text}));
            if let Some((name, arg)) = call {
                let id = format!("call_{i}");
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": id, "type": "function", "function": {"name": name, "arguments": json!({"a": arg}).to_string()}}]}));
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": format!("r{arg}")}));
            }
        }
        let chat = json!({"model": "x", "messages": messages, "max_tokens": 5,
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]});
        let sent = anthropic::request(chat.as_object().unwrap(), "c", false, 16).unwrap();
        let back = messages::to_chat(sent.as_object().unwrap()).unwrap();
        // Consecutive turns of one role become one Anthropic turn: the text
        // is kept in order, not the message boundaries.
        let texts = |ms: &Value| -> String {
            ms.as_array().unwrap().iter().filter_map(|m| {
                let c = &m["content"];
                c.as_str().map(str::to_string).or_else(|| c.as_array().map(|parts| {
                    parts.iter().filter_map(|p| p["text"].as_str()).collect::<String>()
                }))
            }).collect()
        };
        prop_assert_eq!(texts(&chat["messages"]), texts(&back["messages"]));
        let calls = |ms: &Value| -> Vec<(String, Value)> {
            ms.as_array().unwrap().iter().flat_map(|m| m["tool_calls"].as_array().cloned().unwrap_or_default())
                .map(|c| (c["id"].as_str().unwrap_or("").to_string(),
                    serde_json::from_str(c["function"]["arguments"].as_str().unwrap_or("{}")).unwrap_or(Value::Null)))
                .collect()
        };
        prop_assert_eq!(calls(&chat["messages"]), calls(&back["messages"]));
        prop_assert_eq!(&back["tools"][0]["function"]["name"], "f");
        prop_assert_eq!(&back["max_tokens"], 5);
    }

    #[test]
    fn answers_round_trip_through_anthropic(text in "[a-zA-Z ]{0,30}", call in prop::option::of("[a-z]{1,8}"), p in 0u64..10_000, c in 0u64..10_000) {
        let calls: Vec<Value> = call.iter().map(|n| json!({"id": "toolu_1", "type": "function",
            "function": {"name": n, "arguments": "{\"k\":1}"}})).collect();
        let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
        let chat = chat::completion("chatcmpl-1", "m", chat::message(text.clone(), calls.clone()), finish, (p, c));
        let msg = messages::answer(&chat).unwrap();
        let back = anthropic::answer(&msg).unwrap();
        let m = &back["choices"][0]["message"];
        prop_assert_eq!(m["content"].as_str().unwrap_or(""), text.as_str());
        prop_assert_eq!(&back["choices"][0]["finish_reason"], finish);
        prop_assert_eq!(chat::usage_of(&back), Some((p, c)));
        if let Some(n) = &call {
            prop_assert_eq!(&m["tool_calls"][0]["function"]["name"], n.as_str());
            prop_assert_eq!(&m["tool_calls"][0]["function"]["arguments"], "{\"k\":1}");
        }
    }

    #[test]
    fn streamed_text_round_trips_through_anthropic_events(pieces in prop::collection::vec("[a-zA-Z ]{1,10}", 1..6), cut in 1usize..40) {
        // Chat chunks -> Anthropic events (an Anthropic client of an OpenAI
        // target), then those events -> chat chunks again.
        let mut chat_sse = Vec::new();
        for piece in &pieces {
            let c = json!({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
            sse::write_event(&mut chat_sse, None, c.to_string().as_bytes());
        }
        sse::write_event(&mut chat_sse, None, b"[DONE]");
        let mut to_anthropic = Translator::new(Dialect::Messages, Format::OpenAi, "m", false);
        let mut anthropic_sse = Vec::new();
        for c in chat_sse.chunks(cut) {
            anthropic_sse.extend_from_slice(to_anthropic.feed(c));
        }
        anthropic_sse.extend_from_slice(to_anthropic.end());
        let mut back = Translator::new(Dialect::Chat, Format::Anthropic, "m", false);
        let mut out = Vec::new();
        for c in anthropic_sse.chunks(cut) {
            out.extend_from_slice(back.feed(c));
        }
        out.extend_from_slice(back.end());
        let mut reader = sse::SseReader::default();
        let mut events = Vec::new();
        reader.feed(&out, &mut events).unwrap();
        let text: String = events.iter().filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string)).collect();
        prop_assert_eq!(text, pieces.concat());
        prop_assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
        let _ = Item::Done;
    }
}
