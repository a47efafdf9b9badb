use super::*;
use serde_json::json;

const OPTS: WireOpts = WireOpts {
    default_max_tokens: 10,
    stream_usage: true,
};

#[test]
fn plans_by_dialect_and_format() {
    assert_eq!(Dialect::Chat.plan(Format::OpenAi), Ok(Plan::Pass));
    assert_eq!(Dialect::Chat.plan(Format::Gemini), Ok(Plan::Translate));
    assert_eq!(Dialect::Messages.plan(Format::Anthropic), Ok(Plan::Pass));
    assert_eq!(Dialect::Messages.plan(Format::OpenAi), Ok(Plan::Translate));
    assert_eq!(Dialect::Responses.plan(Format::OpenAi), Ok(Plan::Pass));
    assert_eq!(
        Dialect::Responses.plan(Format::Anthropic),
        Ok(Plan::Translate)
    );
    assert_eq!(Dialect::Responses.plan(Format::Gemini), Ok(Plan::Translate));
    assert!(Dialect::Completions.plan(Format::Anthropic).is_err());
    assert!(Dialect::Other.plan(Format::Gemini).is_err());
    assert_eq!(Dialect::of("messages"), Dialect::Messages);
    assert_eq!(Dialect::of("embeddings"), Dialect::Other);
}

fn temperature_0() -> crate::params::Params {
    let rule = crate::config::ParamRule::Set(json!(0));
    crate::params::Params::new(&[("temperature".to_string(), rule)]).unwrap()
}

#[test]
fn wire_paths_per_format() {
    let p = Pivot::read(
        Dialect::Chat,
        br#"{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    let w = p
        .wire(Format::Gemini, "models/gemini 2", OPTS, None)
        .unwrap();
    assert_eq!(w.path, "/models/gemini%202:streamGenerateContent?alt=sse");
    let w = p
        .wire(Format::Anthropic, "c", OPTS, Some(&temperature_0()))
        .unwrap();
    assert_eq!(w.path, "/messages");
    let body: Value = serde_json::from_slice(&w.body).unwrap();
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["model"], "c");
    let m = Pivot::read(Dialect::Messages, br#"{"model":"x","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"system":"s","stream":true}"#).unwrap();
    let w = m.wire(Format::OpenAi, "gpt", OPTS, None).unwrap();
    assert_eq!(w.path, "/chat/completions");
    let body: Value = serde_json::from_slice(&w.body).unwrap();
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "s"})
    );
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["model"], "gpt");
}

#[test]
fn answers_and_errors_cross_dialects() {
    let anthropic = br#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":2,"output_tokens":1}}"#;
    let (out, usage) = answer(Dialect::Chat, Format::Anthropic, anthropic, "c").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "hi");
    assert_eq!(usage, Some((2, 1)));
    let chat = br#"{"id":"chatcmpl-9","object":"chat.completion","model":"gpt","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
    let (out, _) = answer(Dialect::Messages, Format::OpenAi, chat, "gpt").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_9");
    assert_eq!(v["content"][0]["text"], "yo");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert!(answer(Dialect::Chat, Format::Gemini, b"nope", "g").is_err());

    let e = error(
        Dialect::Chat,
        Format::Anthropic,
        400,
        br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
    );
    let v: Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(v["error"]["message"], "bad");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let e = error(
        Dialect::Messages,
        Format::OpenAi,
        404,
        br#"{"error":{"message":"no model","type":"invalid_request_error"}}"#,
    );
    let v: Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "not_found_error", "message": "no model"}})
    );
    let e = error(Dialect::Chat, Format::Gemini, 400, b"<html>");
    let v: Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(v["error"]["message"], "upstream answered 400");
}
