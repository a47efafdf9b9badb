//! Micro benchmarks of the per-request work that is ours (not Pingora's):
//! body parse + model splice, target selection, SSE first-event scan, client key
//! lookup, config load, format translation. `cargo bench` runs them; CI only
//! checks they build and run.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use llmgate::config::{self, TargetConfig};
use llmgate::proxy::rewrite::ParsedBody;
use llmgate::proxy::sse::FirstEvent;
use llmgate::routing::{ModelRoute, TriedSet};
use std::collections::HashMap;
use std::hint::black_box;

fn chat_body(size: usize) -> Bytes {
    let head = r#"{"model":"chat","temperature":0.2,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":""#;
    let pad = size.saturating_sub(head.len() + 4);
    Bytes::from(format!("{head}{}\"}}]}}", "x".repeat(pad)))
}

fn rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite");
    let model = Bytes::from_static(b"\"gpt-4o-mini\"");
    let mut parse_and_splice = |name: &str, body: Bytes| {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("parse_and_splice", name),
            &body,
            |b, body| {
                b.iter(|| {
                    let p = ParsedBody::parse(body.clone()).expect("valid");
                    black_box(p.spliced(&model));
                })
            },
        );
    };
    for (name, size) in [("1KB", 1 << 10), ("100KB", 100 << 10), ("1MiB", 1 << 20)] {
        parse_and_splice(name, chat_body(size));
    }
    // A chat body shaped like real traffic (many short keys and strings, a few
    // numbers, nested objects): the per-token cost, where the padded bodies
    // above measure the per-byte cost.
    parse_and_splice("chat_1KB", Bytes::from_static(CHAT_1KB));
    // The same shape in Chinese: every string run is checked as UTF-8.
    parse_and_splice("chat_1KB_utf8", Bytes::from(chat_utf8()));
    g.finish();
}

fn chat_utf8() -> String {
    let text = "我们的网关把流量按三比一的权重发给两个服务商，第三个作为备用。今天早上第一个服务商有几分钟返回了五零三。";
    format!(
        r#"{{"model":"chat","messages":[{{"role":"system","content":"{text}"}},{{"role":"user","content":"{text}"}},{{"role":"assistant","content":"{text}"}}],"temperature":0.3,"max_tokens":300,"stream":false}}"#
    )
}

const CHAT_1KB: &[u8] = br#"{"model":"chat","messages":[{"role":"system","content":"You are a careful assistant for a support team. Answer briefly, quote the setting you rely on, and say so when you are unsure."},{"role":"user","content":"Our gateway sends traffic to two providers with weights 3 and 1, and a third one as a fallback. This morning the first provider answered 503 for a few minutes."},{"role":"assistant","content":"Requests it refused were retried on the second provider; the fallback was only used when both failed."},{"role":"user","content":"What would the clients have seen in latency and errors during those minutes, and should we change the retry settings? Keep the answer short."}],"temperature":0.3,"top_p":1,"max_tokens":300,"n":1,"presence_penalty":0,"frequency_penalty":0,"stream":false,"user":"support-bench-01","metadata":{"team":"support","trace":"bench"}}"#;

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    // 3 tiers x 4 weighted targets.
    let targets: Vec<TargetConfig> = (0..12)
        .map(|i| TargetConfig {
            upstream: i,
            model: format!("m{i}"),
            priority: (i / 4) as u32,
            weight: (i % 4 + 1) as u32,
            params: Vec::new(),
            quota: None,
        })
        .collect();
    let route = ModelRoute::new("chat", &targets);
    let mut rng = fastrand::Rng::with_seed(1);
    g.bench_function("pick_first", |b| {
        b.iter(|| black_box(route.next(TriedSet::default(), |_| true, &mut rng)))
    });
    let mut tried = TriedSet::default();
    for i in 0..6 {
        tried.insert(i);
    }
    g.bench_function("pick_with_6_tried_2_unhealthy", |b| {
        b.iter(|| black_box(route.next(tried, |t| t.upstream % 5 != 0, &mut rng)))
    });
    g.finish();
}

fn sse(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse");
    let mut stream = Vec::new();
    while stream.len() < 1 << 20 {
        stream.extend_from_slice(b": keep-alive\n\n");
    }
    stream.extend_from_slice(b"data: {\"x\":1}\n\n");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("first_event_scan_1MiB", |b| {
        b.iter(|| {
            let mut s = FirstEvent::default();
            black_box(stream.chunks(16 << 10).any(|c| s.feed(c)))
        })
    });
    g.finish();
}

fn keys(c: &mut Criterion) {
    let keys: HashMap<String, usize> = (0..10_000)
        .map(|i| (format!("sk-client-{i:08}-abcdefghijklmnop"), i))
        .collect();
    let probe = "sk-client-00004242-abcdefghijklmnop".to_string();
    c.bench_function("client_key_lookup_10k", |b| {
        b.iter(|| black_box(keys.get(black_box(probe.as_str()))))
    });
}

/// Admission (key lookup, rpm + tpm cells, settlement) with one key and with
/// 10k keys in `auth.api_keys`: the per-key state is its own pair of atomics,
/// so the count of keys must not show.
fn admission(c: &mut Criterion) {
    use llmgate::limits::{now_us, KeyLimits};
    let mut g = c.benchmark_group("admission");
    // (keys configured, distinct keys the requests use in turn)
    for (n, used) in [(1usize, 1usize), (10_000, 1), (10_000, 10_000)] {
        let keys: HashMap<String, KeyLimits> = (0..n)
            .map(|i| {
                let l = KeyLimits::new(Some(1_000_000_000), Some(1_000_000_000), None);
                (
                    format!("sk-client-{i:08}-abcdefghijklmnop"),
                    l.expect("limits"),
                )
            })
            .collect();
        let names: Vec<String> = keys.keys().take(used).cloned().collect();
        let mut i = 0;
        let id = format!("{n}_keys_{used}_used");
        g.bench_function(BenchmarkId::new("lookup_admit_settle", id), |b| {
            b.iter(|| {
                i = (i + 1) % names.len();
                let l = keys.get(black_box(names[i].as_str())).expect("key");
                if let Ok(Some(r)) = l.admit(now_us(), 300) {
                    r.settle(120);
                }
            })
        });
    }
    g.finish();
}

fn config_load(c: &mut Criterion) {
    let text = include_str!("../conf/llmgate.example.yaml");
    c.bench_function("config_parse_validate_example", |b| {
        b.iter(|| black_box(config::parse_str(text, |_| None).expect("valid")))
    });
}

/// Translation per 1 KB request (pivot read + target write) and per streamed
/// event, for each client dialect x target format pair that translates.
fn formats(c: &mut Criterion) {
    use llmgate::formats::stream::Translator;
    use llmgate::formats::{Dialect, Format, Pivot, WireOpts};
    let mut g = c.benchmark_group("formats");
    let opts = WireOpts {
        default_max_tokens: 4096,
        stream_usage: true,
    };
    let messages_1kb = {
        let v: serde_json::Value = serde_json::from_slice(CHAT_1KB).expect("json");
        let mut m = serde_json::json!({"model": "chat", "max_tokens": 256, "messages": []});
        for msg in v["messages"].as_array().into_iter().flatten() {
            match msg["role"].as_str() {
                Some("system") => m["system"] = msg["content"].clone(),
                _ => m["messages"]
                    .as_array_mut()
                    .expect("list")
                    .push(msg.clone()),
            }
        }
        Bytes::from(m.to_string())
    };
    let responses_1kb = {
        let v: serde_json::Value = serde_json::from_slice(CHAT_1KB).expect("json");
        let mut m = serde_json::json!({"model": "chat", "max_output_tokens": 256, "input": []});
        for msg in v["messages"].as_array().into_iter().flatten() {
            match msg["role"].as_str() {
                Some("system") => m["instructions"] = msg["content"].clone(),
                _ => m["input"].as_array_mut().expect("list").push(msg.clone()),
            }
        }
        Bytes::from(m.to_string())
    };
    let pairs = [
        (
            "chat_to_anthropic",
            Dialect::Chat,
            Format::Anthropic,
            Bytes::from_static(CHAT_1KB),
        ),
        (
            "chat_to_gemini",
            Dialect::Chat,
            Format::Gemini,
            Bytes::from_static(CHAT_1KB),
        ),
        (
            "messages_to_openai",
            Dialect::Messages,
            Format::OpenAi,
            messages_1kb.clone(),
        ),
        (
            "messages_to_gemini",
            Dialect::Messages,
            Format::Gemini,
            messages_1kb,
        ),
        (
            "responses_to_anthropic",
            Dialect::Responses,
            Format::Anthropic,
            responses_1kb,
        ),
    ];
    for (name, d, f, body) in &pairs {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(BenchmarkId::new("request_1KB", name), |b| {
            b.iter(|| {
                let p = Pivot::read(*d, body).expect("valid");
                black_box(
                    p.wire(*f, "target-model", opts, None)
                        .expect("translatable"),
                )
            })
        });
    }
    let anthropic = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there\"}}\n\n";
    let gemini = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hello there\"}]},\"index\":0}],\"modelVersion\":\"g\"}\n\n";
    let chat = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there\"},\"finish_reason\":null}]}\n\n";
    let streams = [
        (
            "anthropic_to_chat",
            Dialect::Chat,
            Format::Anthropic,
            anthropic,
        ),
        ("gemini_to_chat", Dialect::Chat, Format::Gemini, gemini),
        (
            "openai_to_messages",
            Dialect::Messages,
            Format::OpenAi,
            chat,
        ),
        (
            "gemini_to_messages",
            Dialect::Messages,
            Format::Gemini,
            gemini,
        ),
        (
            "anthropic_to_responses",
            Dialect::Responses,
            Format::Anthropic,
            anthropic,
        ),
    ];
    g.throughput(Throughput::Elements(1));
    for (name, d, f, event) in streams {
        let mut t = Translator::new(d, f, "m", false);
        // Past the stream's opening (message_start and the first block).
        let _ = t.feed(event.as_bytes());
        g.bench_function(BenchmarkId::new("stream_event", name), |b| {
            b.iter(|| black_box(t.feed(event.as_bytes()).len()))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    rewrite,
    routing,
    sse,
    keys,
    admission,
    config_load,
    formats
);
criterion_main!(benches);
