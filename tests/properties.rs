//! Property tests: the body rewrite keeps every byte but the model value, never
//! panics on any input; the SSE first-event scanner finds the same event under
//! any chunking.

use bytes::Bytes;
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
        let (pieces, len) = parsed.with_model(&target_json);
        let out: Vec<u8> = pieces.iter().flat_map(|b| b.iter().copied()).collect();
        prop_assert_eq!(out.len(), len);
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
}
