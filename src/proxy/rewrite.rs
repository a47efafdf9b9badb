//! The request body is parsed once (`json::scan`: syntax checked in full, nothing
//! built but the `model` span); each attempt splices the target's model into the original bytes.
//! Every other byte of the body reaches the upstream unchanged.

use super::json::ScanError;
use crate::params::Params;
use bytes::Bytes;
use std::ops::Range;

/// Bodies up to this size are sent as one contiguous buffer (one write); larger
/// ones as three zero-copy slices, so a 1 MiB body is never copied.
pub const CONCAT_LIMIT: usize = 16 * 1024;

/// What [`ParsedBody::ask_for_usage`] adds after a stream body's opening brace.
const ASK: &[u8] = br#""stream_options":{"include_usage":true},"#;

/// Deepest JSON nesting accepted (serde_json's own limit for values it builds):
/// a deeply nested body must not reach an upstream parser either.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug)]
pub struct ParsedBody {
    pub body: Bytes,
    /// The logical model the client asked for.
    pub model: String,
    /// The client asked for a stream (`"stream": true`).
    pub stream: bool,
    /// Byte range of the `model` value (quotes included) in `body`.
    span: Range<usize>,
    /// `max_completion_tokens` (Responses: `max_output_tokens`), else
    /// `max_tokens`, when a plain integer.
    pub max_completion: Option<u64>,
    /// The client sent `stream_options`.
    pub stream_options: bool,
    /// llmgate asks for usage ([`ParsedBody::ask_for_usage`]).
    pub usage_asked: bool,
    /// Where the request for it goes (just after the opening brace).
    asked_at: usize,
}

impl ParsedBody {
    pub fn parse(body: Bytes) -> Result<ParsedBody, String> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err("request body must be a JSON object".into());
        }
        let fields = super::json::scan(&body, MAX_DEPTH).map_err(|e| match e {
            ScanError::TooDeep(_) => format!("request body nests deeper than {MAX_DEPTH} levels"),
            e => format!("request body is not valid JSON: {e}"),
        })?;
        let span = fields.model.ok_or("request body has no `model`")?;
        let model = match &body[span.clone()] {
            // Plain (the usual case): already checked as UTF-8 by the scan.
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => crate::framing::text(inner)
                .ok_or("`model` must be a string")?
                .to_owned(),
            raw => {
                serde_json::from_slice(raw).map_err(|_| "`model` must be a string".to_string())?
            }
        };
        if model.is_empty() {
            return Err("`model` must not be empty".into());
        }
        let stream = fields.stream.is_some_and(|s| &body[s] == b"true");
        let int = |r: Option<Range<usize>>| {
            r.and_then(|r| crate::framing::text(&body[r]))
                .and_then(|t| t.parse::<u64>().ok())
        };
        let max_completion = int(fields.max_completion_tokens).or_else(|| int(fields.max_tokens));
        Ok(ParsedBody {
            body,
            model,
            stream,
            span,
            max_completion,
            stream_options: fields.stream_options.is_some(),
            usage_asked: false,
            asked_at: 0,
        })
    }

    /// A stream whose client did not send `stream_options` asks its upstream
    /// for usage: `"stream_options":{"include_usage":true},` spliced in after
    /// the opening brace when the body is sent ([`ParsedBody::spliced_for`]);
    /// true if it will be. The client's bytes are not touched.
    pub fn ask_for_usage(&mut self) -> bool {
        if !self.stream || self.stream_options || self.usage_asked {
            return false;
        }
        let Some(open) = self.body.iter().position(|&b| b == b'{') else {
            return false;
        };
        self.usage_asked = true;
        self.asked_at = open + 1;
        true
    }

    /// The body as sent to one upstream, in pieces to write one after the
    /// other (no copy): `model_json` (an encoded JSON string) in place of the
    /// model, and the usage request spliced in when it was asked for and the
    /// upstream takes it (`ask`: its `stream_usage`).
    pub fn spliced_for<'a>(&'a self, model_json: &'a [u8], ask: bool) -> [&'a [u8]; 5] {
        let [a, b, c] = self.spliced(model_json);
        if !(ask && self.usage_asked) {
            return [a, b, c, &[], &[]];
        }
        [
            &self.body[..self.asked_at],
            ASK,
            &self.body[self.asked_at..self.span.start],
            model_json,
            &self.body[self.span.end..],
        ]
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

    /// The body with `model_json` in place of the model and a target's
    /// parameter overrides applied (`None`: its entries could not be read).
    pub fn with_params(&self, model_json: &[u8], params: &Params, ask: bool) -> Option<Vec<u8>> {
        if !(ask && self.usage_asked) {
            return params.apply(&self.body, self.span.clone(), model_json);
        }
        // A target with overrides is rebuilt anyway: the usage request goes in first.
        let mut body = Vec::with_capacity(self.body.len() + ASK.len());
        body.extend_from_slice(&self.body[..self.asked_at]);
        body.extend_from_slice(ASK);
        body.extend_from_slice(&self.body[self.asked_at..]);
        let span = self.span.start + ASK.len()..self.span.end + ASK.len();
        params.apply(&body, span, model_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, model: &str) -> String {
        let p = ParsedBody::parse(Bytes::from(body.to_string())).unwrap();
        let mj = Bytes::from(serde_json::Value::from(model).to_string());
        String::from_utf8(p.spliced(&mj).concat()).unwrap()
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
    fn completion_limit_for_the_token_estimate() {
        let limit = |b: &str| {
            ParsedBody::parse(Bytes::from(b.to_string()))
                .unwrap()
                .max_completion
        };
        assert_eq!(limit(r#"{"model":"m","max_tokens":300}"#), Some(300));
        assert_eq!(
            limit(r#"{"max_completion_tokens":7,"model":"m","max_tokens":300}"#),
            Some(7)
        );
        assert_eq!(
            limit(r#"{"model":"m","input":"hi","max_output_tokens":64}"#),
            Some(64)
        );
        assert_eq!(limit(r#"{"model":"m","x":{"max_tokens":5}}"#), None);
        assert_eq!(limit(r#"{"model":"m","max_tokens":"5"}"#), None);
        assert_eq!(limit(r#"{"model":"m","max_tokens":null}"#), None);
    }

    #[test]
    fn a_stream_without_stream_options_asks_for_usage() {
        let mut p = ParsedBody::parse(Bytes::from(r#" {"stream":true, "model":"chat"}"#)).unwrap();
        assert!(p.ask_for_usage());
        assert_eq!(
            p.spliced_for(b"\"m\"", true).concat(),
            br#" {"stream_options":{"include_usage":true},"stream":true, "model":"m"}"#
        );
        assert!(!p.ask_for_usage(), "once");
        assert_eq!(
            p.spliced_for(b"\"m\"", false).concat(),
            br#" {"stream":true, "model":"m"}"#,
            "for an upstream with stream_usage: false"
        );
        assert_eq!(
            &p.body[..],
            br#" {"stream":true, "model":"chat"}"#,
            "untouched"
        );
        for other in [
            r#"{"model":"chat"}"#,
            r#"{"model":"chat","stream":true,"stream_options":{"include_usage":false}}"#,
        ] {
            assert!(!ParsedBody::parse(Bytes::from(other))
                .unwrap()
                .ask_for_usage());
        }
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
