//! The request body is parsed once (syntax checked in full, nothing built but the
//! `model` span); each attempt splices the target's model into the original bytes.
//! Every other byte of the body reaches the upstream unchanged.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// Bodies up to this size are sent as one contiguous buffer (one write); larger
/// ones as three zero-copy slices, so a 1 MiB body is never copied.
pub const CONCAT_LIMIT: usize = 16 * 1024;

/// Deepest JSON nesting accepted (serde_json's own limit for values it builds).
/// Skipped values are parsed without recursion, so this is checked explicitly: a
/// deeply nested body must not reach an upstream parser either.
pub const MAX_DEPTH: usize = 128;

/// Whether `[`/`{` nesting outside strings goes deeper than `limit`. Strings
/// (most of a chat body) are skipped with memchr, not byte by byte.
fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // Unterminated: the JSON parser reports it.
                let Some(j) = body.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r)) else {
                    return false;
                };
                let escape = body[i + j] == b'\\';
                i += j + 1;
                if !escape {
                    break;
                }
                i += 1; // the escaped byte
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[derive(Debug)]
pub struct ParsedBody {
    pub body: Bytes,
    /// The logical model the client asked for.
    pub model: String,
    /// The client asked for a stream (`"stream": true`).
    pub stream: bool,
    /// Byte range of the `model` value (quotes included) in `body`.
    span: Range<usize>,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    /// Raw, so a wrong type is the upstream's to reject, as before.
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
}

impl ParsedBody {
    pub fn parse(body: Bytes) -> Result<ParsedBody, String> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err("request body must be a JSON object".into());
        }
        if nesting_exceeds(&body, MAX_DEPTH) {
            return Err(format!("request body nests deeper than {MAX_DEPTH} levels"));
        }
        let probe: Probe = serde_json::from_slice(&body)
            .map_err(|e| format!("request body is not valid JSON: {e}"))?;
        let raw = probe.model.ok_or("request body has no `model`")?;
        let model: String =
            serde_json::from_str(raw.get()).map_err(|_| "`model` must be a string".to_string())?;
        if model.is_empty() {
            return Err("`model` must not be empty".into());
        }
        // The RawValue borrows from `body`, so its offset is a pointer difference.
        let start = (raw.get().as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let end = start + raw.get().len();
        if end > body.len() {
            return Err("internal: model span outside body".into());
        }
        let stream = probe.stream.is_some_and(|s| s.get() == "true");
        Ok(ParsedBody {
            body,
            model,
            stream,
            span: start..end,
        })
    }

    /// Give the body its own allocation if it is a slice of a larger buffer, so
    /// that buffer can be freed while the request lives on (a stream).
    pub fn detach(&mut self) {
        self.body = Bytes::copy_from_slice(&self.body);
    }

    /// The body with `model_json` (an encoded JSON string) in place of the model,
    /// as three slices to write one after the other (no copy).
    pub fn spliced<'a>(&'a self, model_json: &'a [u8]) -> [&'a [u8]; 3] {
        [
            &self.body[..self.span.start],
            model_json,
            &self.body[self.span.end..],
        ]
    }

    /// The body with `model_json` (an encoded JSON string) in place of the model:
    /// one or three buffers, and their total length.
    pub fn with_model(&self, model_json: &Bytes) -> (Vec<Bytes>, usize) {
        let prefix = self.body.slice(..self.span.start);
        let suffix = self.body.slice(self.span.end..);
        let len = prefix.len() + model_json.len() + suffix.len();
        if len <= CONCAT_LIMIT {
            let mut b = BytesMut::with_capacity(len);
            b.extend_from_slice(&prefix);
            b.extend_from_slice(model_json);
            b.extend_from_slice(&suffix);
            (vec![b.freeze()], len)
        } else {
            (vec![prefix, model_json.clone(), suffix], len)
        }
    }
}

#[cfg(test)]
mod tests {
    /// Byte-at-a-time reference for `nesting_exceeds`.
    fn nesting_reference(body: &[u8], limit: usize) -> bool {
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        for &b in body {
            if in_str {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_str = false;
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    #[test]
    fn nesting_scan_agrees_with_the_reference() {
        let alphabet = b"[]{}\"\\a";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..24);
            let body: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            for limit in [0, 1, 2, 3] {
                assert_eq!(
                    super::nesting_exceeds(&body, limit),
                    nesting_reference(&body, limit),
                    "{:?} limit {limit}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }

    use super::*;

    fn rewrite(body: &str, model: &str) -> String {
        let p = ParsedBody::parse(Bytes::from(body.to_string())).unwrap();
        let mj = Bytes::from(serde_json::Value::from(model).to_string());
        let (parts, len) = p.with_model(&mj);
        let out: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(out.len(), len);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn splices_only_the_model() {
        let body =
            r#"{ "messages":[{"role":"user","content":"model: \"x\""}], "model" : "chat", "n":1 }"#;
        assert_eq!(
            rewrite(body, "gpt-4o"),
            r#"{ "messages":[{"role":"user","content":"model: \"x\""}], "model" : "gpt-4o", "n":1 }"#
        );
        let p = ParsedBody::parse(Bytes::from(body)).unwrap();
        assert_eq!(p.model, "chat");
    }

    #[test]
    fn nested_model_keys_are_not_touched() {
        let body = r#"{"tools":[{"model":"inner"}],"model":"chat"}"#;
        assert_eq!(
            rewrite(body, "a\"b"),
            r#"{"tools":[{"model":"inner"}],"model":"a\"b"}"#
        );
    }

    #[test]
    fn escaped_model_is_decoded() {
        let p = ParsedBody::parse(Bytes::from(r#"{"model":"ch\u0061t"}"#)).unwrap();
        assert_eq!(p.model, "chat");
    }

    #[test]
    fn large_body_is_three_slices() {
        let big = format!(r#"{{"model":"chat","pad":"{}"}}"#, "x".repeat(100_000));
        let p = ParsedBody::parse(Bytes::from(big)).unwrap();
        let (parts, _) = p.with_model(&Bytes::from_static(b"\"m\""));
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn rejects_bad_bodies() {
        for bad in [
            "",
            "[]",
            "[\"model\"]",
            "{",
            "{\"x\":1}",
            "{\"model\":3}",
            "{\"model\":\"\"}",
            "{\"model\":\"a\",\"model\":\"b\"}",
        ] {
            assert!(ParsedBody::parse(Bytes::from(bad)).is_err(), "{bad}");
        }
        let ok = format!(
            "{{\"model\":\"a\",\"x\":{}{}}}",
            "[".repeat(120),
            "]".repeat(120)
        );
        assert!(ParsedBody::parse(Bytes::from(ok)).is_ok());
        let tricky = format!("{{\"model\":\"a\",\"x\":\"{}\\\"\"}}", "[".repeat(500));
        assert!(
            ParsedBody::parse(Bytes::from(tricky)).is_ok(),
            "brackets inside strings do not count"
        );
        let deep = format!(
            "{{\"model\":\"a\",\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(ParsedBody::parse(Bytes::from(deep)).is_err());
    }
}
