//! Property tests: the body rewrite keeps every byte but the model value, never
//! panics on any input; the SSE first-event scanner finds the same event under
//! any chunking; the chunked decoder gives back exactly what was encoded under
//! any cuts and never panics on mutated input; the request head reader never
//! panics and accepts only clean targets. (cargo-fuzz targets for the same
//! four readers are in `fuzz/`.)

use bytes::{Bytes, BytesMut};
use llmgate::downstream::head::parse_head;
use llmgate::framing::{Decoder, Step};
use llmgate::proxy::rewrite::ParsedBody;
use llmgate::proxy::sse::FirstEvent;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-z\"\\\\ ]{1,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rewrite_changes_only_the_model(
        fields in prop::collection::vec(("[a-z]{1,8}", json_value()), 0..6),
        at in 0usize..6,
        model in ".{1,20}",
        target in ".{1,20}",
        pretty in any::<bool>(),
    ) {
        // Build the object text by hand so field order and spacing are arbitrary.
        let mut parts: Vec<String> = fields
            .iter()
            .filter(|(k, _)| k != "model")
            .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), if pretty { serde_json::to_string_pretty(v).unwrap() } else { v.to_string() }))
            .collect();
        let model_json = Value::from(model.as_str()).to_string();
        parts.insert(at.min(parts.len()), format!("\"model\" :  {model_json}"));
        let text = format!("{{ {} }}", parts.join(if pretty { ",\n  " } else { "," }));
        let parsed = ParsedBody::parse(Bytes::from(text.clone())).expect("valid body parses");
        prop_assert_eq!(&parsed.model, &model);
        let target_json = Bytes::from(Value::from(target.as_str()).to_string());
        let out: Vec<u8> = parsed.spliced(&target_json).concat();
        let expected = text.replacen(&format!("\"model\" :  {model_json}"), &format!("\"model\" :  {}", String::from_utf8_lossy(&target_json)), 1);
        prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = ParsedBody::parse(Bytes::from(bytes));
    }

    #[test]
    fn parse_never_panics_on_near_json(s in "[{}\\[\\]\":,a-z0-9 \\\\]{0,200}") {
        let _ = ParsedBody::parse(Bytes::from(format!("{{\"model\":\"m\",{s}")));
    }

    #[test]
    fn sse_first_event_is_found_under_any_chunking(
        events in prop::collection::vec(("(event|id|: ping)?", "[a-z0-9 {}\":]{0,30}", any::<bool>()), 1..8),
        crlf in any::<bool>(),
        cuts in prop::collection::vec(1usize..40, 1..30),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut stream = String::new();
        for (prefix, data, has_data) in &events {
            if !prefix.is_empty() {
                stream.push_str(prefix);
                stream.push_str(nl);
            }
            if *has_data {
                stream.push_str("data: ");
                stream.push_str(data);
                stream.push_str(nl);
            }
            stream.push_str(nl);
        }
        let bytes = stream.as_bytes();
        // Reference: byte by byte.
        let mut one = FirstEvent::default();
        let reference = (0..bytes.len()).find(|&i| one.feed(&bytes[i..=i])).map(|i| i + 1);
        // Any chunking: done in exactly the chunk that holds the reference byte.
        let mut s = FirstEvent::default();
        let (mut fed, mut found, mut cut) = (0usize, None, 0usize);
        while fed < bytes.len() {
            let n = cuts[cut % cuts.len()].min(bytes.len() - fed);
            cut += 1;
            let done = s.feed(&bytes[fed..fed + n]);
            if done && found.is_none() {
                found = Some((fed, fed + n));
            }
            fed += n;
        }
        match (reference, found) {
            (None, None) => {}
            (Some(r), Some((start, end))) => prop_assert!(start < r && r <= end, "ref {} chunk {}..{}", r, start, end),
            other => prop_assert!(false, "mismatch {:?}", other),
        }
        prop_assert_eq!(reference.is_some(), events.iter().any(|e| e.2));
    }

    #[test]
    fn chunked_round_trips_under_any_cuts(
        chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 1..40), r#"(;[a-z]{1,5}(=([a-z0-9]{1,5}|"([a-z ]|\\[a-z"]){0,6}"))?)?"#), 0..8),
        trailers in prop::collection::vec("[a-z-]{1,8}: [ -~]{0,10}", 0..3),
        upper in any::<bool>(),
        cuts in prop::collection::vec(1usize..30, 1..20),
    ) {
        let mut wire = Vec::new();
        let mut data = Vec::new();
        for (piece, ext) in &chunks {
            let size = if upper { format!("{:X}", piece.len()) } else { format!("{:x}", piece.len()) };
            wire.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
            data.extend_from_slice(piece);
        }
        wire.extend_from_slice(b"0\r\n");
        for t in &trailers {
            wire.extend_from_slice(t.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        let (out, done) = decode(&wire, &cuts).expect("valid encoding decodes");
        prop_assert!(done);
        prop_assert_eq!(out, data);
    }

    #[test]
    fn chunked_decoder_never_panics_on_mutated_input(
        seed in prop::collection::vec(any::<u8>(), 0..40),
        flips in prop::collection::vec((0usize..200, any::<u8>()), 0..6),
        cuts in prop::collection::vec(1usize..30, 1..10),
    ) {
        let mut wire = format!("{:x};a=b\r\n", seed.len()).into_bytes();
        wire.extend_from_slice(&seed);
        wire.extend_from_slice(b"\r\n0\r\nt: v\r\n\r\n");
        for (at, b) in flips {
            if !wire.is_empty() {
                let at = at % wire.len();
                wire[at] = b;
            }
        }
        // Whatever it says, it never gives more data than was sent.
        if let Ok((out, _)) = decode(&wire, &cuts) {
            prop_assert!(out.len() <= wire.len());
        }
    }

    #[test]
    fn head_reader_never_panics_and_accepts_only_clean_targets(
        line in "(GET|POST|HEAD|PUT|X) (/|http://|https://|\\*|[a-z]{1,5}:)[ -~]{0,30} HTTP/1\\.[019]",
        headers in prop::collection::vec("[ -~]{0,30}", 0..6),
        junk in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut wire = line.into_bytes();
        wire.extend_from_slice(b"\r\n");
        for h in &headers {
            wire.extend_from_slice(h.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(&junk);
        wire.extend_from_slice(b"\r\n\r\n");
        if let Ok(Some(p)) = parse_head(&wire, 4096) {
            let path = p.request.path();
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.split(['/', '\\']).any(|s| s == "." || s == ".."), "{}", path);
            prop_assert!(path.bytes().all(|c| (0x21..0x7f).contains(&c)));
        }
    }
}

/// Decode `wire` fed in pieces of the sizes in `cuts` (cycled).
fn decode(wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool), ()> {
    let mut d = Decoder::new(64 * 1024);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let (mut at, mut k) = (0, 0);
    while at < wire.len() {
        let n = cuts[k % cuts.len()].min(wire.len() - at);
        k += 1;
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
        loop {
            match d.step(&mut buf).map_err(|_| ())? {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::More => break,
                Step::Done => return Ok((out, true)),
            }
        }
    }
    Ok((out, false))
}
