use super::*;

fn run(t: &mut Translator, stream: &[u8], chunk: usize) -> String {
    let mut out = Vec::new();
    for c in stream.chunks(chunk) {
        out.extend_from_slice(t.feed(c));
    }
    out.extend_from_slice(t.end());
    String::from_utf8(out).unwrap()
}

const ANTHROPIC: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn anthropic_to_chat_under_any_chunking() {
    let whole = run(
        &mut Translator::new(Dialect::Chat, Format::Anthropic, "c", true),
        ANTHROPIC,
        ANTHROPIC.len(),
    );
    for chunk in [1, 7, 64] {
        let t = run(
            &mut Translator::new(Dialect::Chat, Format::Anthropic, "c", true),
            ANTHROPIC,
            chunk,
        );
        assert_eq!(
            t.lines().filter(|l| l.starts_with("data:")).count(),
            whole.lines().filter(|l| l.starts_with("data:")).count()
        );
    }
    assert!(whole.contains("\"content\":\"Hi\""));
    assert!(whole.contains("\"finish_reason\":\"stop\""));
    assert!(
        whole.contains("\"prompt_tokens\":3"),
        "usage chunk when asked: {whole}"
    );
    assert!(whole.ends_with("data: [DONE]\n\n"));
    let plain = run(
        &mut Translator::new(Dialect::Chat, Format::Anthropic, "c", false),
        ANTHROPIC,
        5,
    );
    assert!(!plain.contains("prompt_tokens"));
    let mut t = Translator::new(Dialect::Chat, Format::Anthropic, "c", false);
    run(&mut t, ANTHROPIC, 3);
    assert_eq!(t.usage(), Some((3, 2)));
}

#[test]
fn chat_chunks_to_messages_events() {
    let chat = b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\ndata: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\ndata: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\ndata: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\ndata: [DONE]\n\n";
    let mut t = Translator::new(Dialect::Messages, Format::OpenAi, "gpt", false);
    let out = run(&mut t, chat, 11);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(out.contains("\"stop_reason\":\"tool_use\""));
    assert!(out.contains("\"output_tokens\":7"));
    assert_eq!(t.usage(), Some((5, 7)));
}

#[test]
fn errors_and_cuts_in_the_clients_dialect() {
    let mut t = Translator::new(Dialect::Messages, Format::Gemini, "g", false);
    let out = String::from_utf8(
        t.feed(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n")
            .to_vec(),
    )
    .unwrap();
    assert!(out.starts_with("event: message_start"));
    let cut = String::from_utf8(t.cut("upstream x: idle").to_vec()).unwrap();
    assert!(
        cut.starts_with("event: error\ndata: {\"error\":{\"message\":\"upstream x: idle\""),
        "{cut}"
    );
    assert!(
        t.feed(b"data: {}\n\n").is_empty(),
        "nothing after the error"
    );
    let mut t = Translator::new(Dialect::Chat, Format::Anthropic, "c", false);
    let out = String::from_utf8(t.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n").to_vec()).unwrap();
    assert_eq!(out, "data: {\"error\":{\"code\":\"overloaded_error\",\"message\":\"Overloaded\",\"type\":\"upstream_error\"}}\n\n");
}
