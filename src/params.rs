//! Per-target request parameter overrides (`params:` on a model target): a
//! value forced, a number capped, or `stream: false` for an upstream that
//! cannot stream. Applied to the client's bytes as splices, like the model:
//! the edited values change, every other byte goes upstream as the client
//! sent it.
//!
//! Only targets with `params` pay for this: their body's top-level entries
//! are located (serde over borrowed raw values, nothing built) once per
//! attempt, a path the plain splice never takes.

use crate::config::ParamRule;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::ops::Range;

/// One target's overrides, pre-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    rules: Vec<Rule>,
    /// `stream: false`: the upstream is asked for a plain answer, and
    /// `stream_options` (valid only with a stream) is set to `null`.
    pub no_stream: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    key: String,
    /// `"key":value,` as inserted when the client did not send the key.
    insert: Vec<u8>,
    value: Vec<u8>,
    /// `Some(limit)`: only values above it (or `null`) are replaced.
    max: Option<f64>,
}

impl Params {
    /// `None` when there is nothing to override.
    pub fn new(rules: &[(String, ParamRule)]) -> Option<Params> {
        let mut out = Params {
            rules: Vec::new(),
            no_stream: false,
        };
        for (key, rule) in rules {
            let (value, max) = match rule {
                ParamRule::NoStream => {
                    out.no_stream = true;
                    continue;
                }
                ParamRule::Set(v) => (v.to_string(), None),
                ParamRule::Max(n) => (n.to_string(), n.as_f64()),
            };
            let key_json = serde_json::Value::from(key.as_str()).to_string();
            let insert = format!("{key_json}:{value},").into_bytes();
            out.rules.push(Rule {
                key: key.clone(),
                insert,
                value: value.into_bytes(),
                max,
            });
        }
        (out.no_stream || !out.rules.is_empty()).then_some(out)
    }

    /// `body` (a JSON object, already checked) with `model_json` spliced over
    /// `model` and these overrides applied. `None` if the body's entries
    /// cannot be read (it was checked, so this does not happen in practice).
    pub fn apply(&self, body: &[u8], model: Range<usize>, model_json: &[u8]) -> Option<Vec<u8>> {
        let entries = top_level(body)?;
        let open = body.iter().position(|&b| b == b'{')?;
        let mut edits: Vec<(Range<usize>, &[u8])> = vec![(model, model_json)];
        let mut inserted = Vec::new();
        for rule in &self.rules {
            let mut found = false;
            for (_, span) in entries.iter().filter(|(k, _)| *k == rule.key) {
                found = true;
                let replace = match rule.max {
                    None => true,
                    Some(limit) => above(&body[span.clone()], limit),
                };
                if replace {
                    edits.push((span.clone(), &rule.value));
                }
            }
            if !found {
                inserted.extend_from_slice(&rule.insert);
            }
        }
        if self.no_stream {
            for (k, span) in &entries {
                match k.as_str() {
                    "stream" => edits.push((span.clone(), b"false")),
                    "stream_options" => edits.push((span.clone(), b"null")),
                    _ => {}
                }
            }
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = Vec::with_capacity(body.len() + inserted.len() + 64);
        out.extend_from_slice(&body[..=open]);
        out.extend_from_slice(&inserted);
        let mut at = open + 1;
        for (r, v) in edits {
            out.extend_from_slice(&body[at..r.start]);
            out.extend_from_slice(v);
            at = r.end;
        }
        out.extend_from_slice(&body[at..]);
        Some(out)
    }
}

impl Params {
    /// These overrides applied to a request already parsed (a translated
    /// attempt's chat form). `stream: false` is refused by the config for
    /// targets that translate, so it is not handled here.
    pub fn apply_value(&self, body: &mut serde_json::Map<String, serde_json::Value>) {
        for rule in &self.rules {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&rule.value) else {
                continue;
            };
            let replace = match (rule.max, body.get(&rule.key)) {
                (None, _) | (_, None) => true,
                (Some(limit), Some(v)) => above(v.to_string().as_bytes(), limit),
            };
            if replace {
                body.insert(rule.key.clone(), value);
            }
        }
    }
}

/// A number above `limit`, or `null` (the provider's default, unbounded).
/// Other values are left for the upstream to judge.
fn above(value: &[u8], limit: f64) -> bool {
    value == b"null"
        || std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|n| n > limit)
}

/// `stream_options.include_usage` of the client's body: a stream turned
/// from a plain answer ends with a usage chunk only when it was asked for.
pub fn wants_usage(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Options {
        include_usage: Option<bool>,
    }
    top_level(body).is_some_and(|entries| {
        entries.iter().any(|(k, span)| {
            k == "stream_options"
                && serde_json::from_slice::<Options>(&body[span.clone()])
                    .is_ok_and(|o| o.include_usage == Some(true))
        })
    })
}

/// The top-level entries of a JSON object: each key (unescaped) and the span
/// of its value, in order, duplicates included.
fn top_level(body: &[u8]) -> Option<Vec<(String, Range<usize>)>> {
    struct Entries<'de>(Vec<(String, &'de RawValue)>);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Entries<'de>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
            let mut v = Vec::new();
            while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                v.push(entry);
            }
            Ok(Entries(v))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let entries = (&mut de).deserialize_map(V).ok()?;
    de.end().ok()?;
    let base = body.as_ptr() as usize;
    entries
        .0
        .into_iter()
        .map(|(k, raw)| {
            let s = raw.get();
            // Borrowed raw values are slices of `body`: their offset is their span.
            let start = (s.as_ptr() as usize).checked_sub(base)?;
            let end = start.checked_add(s.len())?;
            (end <= body.len()).then_some((k, start..end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: serde_json::Value) -> Vec<(String, ParamRule)> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let rule = match v {
                    serde_json::Value::Object(o) if o.len() == 1 && o["max"].is_number() => {
                        ParamRule::Max(o["max"].as_number().unwrap().clone())
                    }
                    serde_json::Value::Bool(false) if k == "stream" => ParamRule::NoStream,
                    v => ParamRule::Set(v.clone()),
                };
                (k.clone(), rule)
            })
            .collect()
    }

    fn apply(params: serde_json::Value, body: &str) -> String {
        let p = Params::new(&rules(params)).unwrap();
        let at = body.find("\"chat\"").unwrap();
        let out = p.apply(body.as_bytes(), at..at + 6, b"\"gpt\"").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn forced_values_replace_or_are_added() {
        assert_eq!(
            apply(
                json!({"temperature": 0.2}),
                r#"{"model":"chat", "temperature" : 1.5e0,"n":1}"#
            ),
            r#"{"model":"gpt", "temperature" : 0.2,"n":1}"#
        );
        assert_eq!(
            apply(
                json!({"temperature": 0.2, "user": "a\"b"}),
                r#" {"model":"chat"}"#
            ),
            r#" {"temperature":0.2,"user":"a\"b","model":"gpt"}"#
        );
    }

    #[test]
    fn caps_lower_only_what_is_above() {
        let p = json!({"max_tokens": {"max": 100}});
        for (body, want) in [
            (
                r#"{"max_tokens":5000,"model":"chat"}"#,
                r#"{"max_tokens":100,"model":"gpt"}"#,
            ),
            (
                r#"{"max_tokens":50,"model":"chat"}"#,
                r#"{"max_tokens":50,"model":"gpt"}"#,
            ),
            (
                r#"{"max_tokens":null,"model":"chat"}"#,
                r#"{"max_tokens":100,"model":"gpt"}"#,
            ),
            (r#"{"model":"chat"}"#, r#"{"max_tokens":100,"model":"gpt"}"#),
            (
                r#"{"max_tokens":"x","model":"chat"}"#,
                r#"{"max_tokens":"x","model":"gpt"}"#,
            ),
        ] {
            assert_eq!(apply(p.clone(), body), want, "{body}");
        }
    }

    #[test]
    fn no_stream_turns_off_the_stream_and_its_options() {
        let body = r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(wants_usage(body.as_bytes()));
        assert_eq!(
            apply(json!({"stream": false}), body),
            r#"{"model":"gpt","stream":false,"stream_options":null}"#
        );
        assert!(!wants_usage(br#"{"model":"chat","stream":true}"#));
    }

    #[test]
    fn escaped_and_duplicate_keys_are_all_found() {
        assert_eq!(
            apply(
                json!({"temperature": 0}),
                r#"{"temperatur\u0065":1,"model":"chat","temperature":2}"#
            ),
            r#"{"temperatur\u0065":0,"model":"gpt","temperature":0}"#
        );
        // Nested keys of the same name are not touched.
        assert_eq!(
            apply(json!({"n": 1}), r#"{"model":"chat","x":{"n":3}}"#),
            r#"{"n":1,"model":"gpt","x":{"n":3}}"#
        );
    }

    #[test]
    fn nothing_to_do_is_none() {
        assert!(Params::new(&[]).is_none());
    }
}
