//! One pass over a request body: its JSON syntax checked in full, its nesting
//! bounded, and the spans of the top-level values the gateway reads (`model`,
//! `stream`, `max_tokens`, `max_completion_tokens` or the Responses API's
//! `max_output_tokens`, `stream_options`) noted. Nothing is built or copied.
//!
//! Why not `serde_json` (used until this was measured): it walks every value
//! through its generic deserializer, and a separate pass had to bound the
//! nesting: a quarter of the gateway's user-space instructions per request on
//! a 1 KB chat body (callgrind). Here strings are skipped sixteen bytes a step
//! (SSE2), control characters found in the same step.
//!
//! What is accepted is RFC 8259 JSON, as `serde_json` accepts it when it
//! ignores a value, with every string valid UTF-8 (checked run by run in the
//! same pass); the tests check the two against each other on random and
//! mutated documents. A top-level key is compared after unescaping, and
//! `model` or `stream` twice is an error.

use super::json_run::plain_run;
use std::fmt;
use std::ops::Range;

/// Spans (in the scanned bytes) of the top-level values of interest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    pub model: Option<Range<usize>>,
    pub stream: Option<Range<usize>>,
    /// The last of each, for the token estimate of `tpm`.
    pub max_tokens: Option<Range<usize>>,
    pub max_completion_tokens: Option<Range<usize>>,
    pub stream_options: Option<Range<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    Syntax { at: usize, what: &'static str },
    TooDeep(usize),
    Duplicate(&'static str),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Syntax { at, what } => write!(f, "{what} at byte {at}"),
            ScanError::TooDeep(limit) => write!(f, "nests deeper than {limit} levels"),
            ScanError::Duplicate(key) => write!(f, "duplicate field `{key}`"),
        }
    }
}

/// Deepest nesting [`scan`] can track.
pub const DEPTH_LIMIT: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Model,
    Stream,
    MaxTokens,
    MaxCompletionTokens,
    StreamOptions,
    Other,
}

// Errors are built out of line: the scan's inlined steps stay small.
#[cold]
#[inline(never)]
fn syntax(at: usize, what: &'static str) -> ScanError {
    ScanError::Syntax { at, what }
}

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    // Most bodies are compact: one compare when no whitespace follows.
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Check the JSON document `b`, nesting at most `max_depth` (≤ [`DEPTH_LIMIT`]) levels.
pub fn scan(b: &[u8], max_depth: usize) -> Result<Fields, ScanError> {
    let max_depth = max_depth.min(DEPTH_LIMIT);
    let mut fields = Fields::default();
    let mut depth = 0usize;
    // objects[d - 1]: the container open at depth d is an object (a byte
    // each: a load is cheaper than shifting a 128-bit mask on every value).
    let mut objects = [false; DEPTH_LIMIT];
    let is_object = |objects: &[bool; DEPTH_LIMIT], depth: usize| objects[depth - 1];
    // The root object's key whose value is being read, and where it began.
    let mut key = Key::Other;
    let mut top_start = 0;
    let mut i = ws(b, 0);
    loop {
        if depth == 1 {
            top_start = i;
        }
        let opened = match b.get(i) {
            Some(&c @ (b'{' | b'[')) => {
                if depth == max_depth {
                    return Err(ScanError::TooDeep(max_depth));
                }
                depth += 1;
                objects[depth - 1] = c == b'{';
                i = ws(b, i + 1);
                let close = if c == b'{' { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    depth -= 1;
                    i += 1;
                    false
                } else {
                    if c == b'{' {
                        i = object_key(b, i, depth, &mut key, &fields)?;
                    }
                    true
                }
            }
            Some(b'"') => {
                i = string(b, i + 1)?.0;
                false
            }
            Some(b't') => {
                i = literal(b, i, b"true")?;
                false
            }
            Some(b'f') => {
                i = literal(b, i, b"false")?;
                false
            }
            Some(b'n') => {
                i = literal(b, i, b"null")?;
                false
            }
            Some(b'-' | b'0'..=b'9') => {
                i = number(b, i)?;
                false
            }
            Some(_) => return Err(syntax(i, "expected value")),
            None => return Err(syntax(i, "EOF while parsing a value")),
        };
        if opened {
            continue;
        }
        // A value ended at `i`: close containers until one wants another value.
        loop {
            if key != Key::Other && depth == 1 && is_object(&objects, 1) {
                let span = Some(top_start..i);
                match key {
                    Key::Model => fields.model = span,
                    Key::Stream => fields.stream = span,
                    Key::MaxTokens => fields.max_tokens = span,
                    Key::MaxCompletionTokens => fields.max_completion_tokens = span,
                    Key::StreamOptions => fields.stream_options = span,
                    Key::Other => {}
                }
            }
            i = ws(b, i);
            if depth == 0 {
                return if i == b.len() {
                    Ok(fields)
                } else {
                    Err(syntax(i, "trailing characters"))
                };
            }
            let object = is_object(&objects, depth);
            match b.get(i) {
                Some(b',') => {
                    i = ws(b, i + 1);
                    if object {
                        i = object_key(b, i, depth, &mut key, &fields)?;
                    }
                    break;
                }
                Some(b'}') if object => {
                    depth -= 1;
                    i += 1;
                }
                Some(b']') if !object => {
                    depth -= 1;
                    i += 1;
                }
                Some(_) if object => return Err(syntax(i, "expected `,` or `}`")),
                Some(_) => return Err(syntax(i, "expected `,` or `]`")),
                None => return Err(syntax(i, "EOF while parsing a container")),
            }
        }
    }
}

/// A key and its colon, starting at `b[i]`; returns where the value starts.
/// Keys of the root object (depth 1) are classified for [`scan`].
#[inline(always)]
fn object_key(
    b: &[u8],
    i: usize,
    depth: usize,
    key: &mut Key,
    fields: &Fields,
) -> Result<usize, ScanError> {
    if b.get(i) != Some(&b'"') {
        return Err(syntax(i, "expected key"));
    }
    let (end, escaped) = string(b, i + 1)?;
    if depth == 1 {
        *key = match classify(&b[i..end], escaped) {
            Some(k) => k,
            None => return Err(syntax(i, "invalid unicode in key")),
        };
        match *key {
            Key::Model if fields.model.is_some() => return Err(ScanError::Duplicate("model")),
            Key::Stream if fields.stream.is_some() => return Err(ScanError::Duplicate("stream")),
            _ => {}
        }
    }
    let j = ws(b, end);
    if b.get(j) != Some(&b':') {
        return Err(syntax(j, "expected `:`"));
    }
    Ok(ws(b, j + 1))
}

/// `quoted`: a syntactically valid JSON string, quotes included, `escaped` if
/// it has a backslash. `None` where serde would refuse it as a field name (not
/// UTF-8, a lone surrogate escape).
fn classify(quoted: &[u8], escaped: bool) -> Option<Key> {
    let inner = &quoted[1..quoted.len() - 1];
    let named = |name: &str| -> Key {
        match name {
            "model" => Key::Model,
            "stream" => Key::Stream,
            "max_tokens" => Key::MaxTokens,
            "max_completion_tokens" | "max_output_tokens" => Key::MaxCompletionTokens,
            "stream_options" => Key::StreamOptions,
            _ => Key::Other,
        }
    };
    if !escaped {
        return match inner {
            b"model" => Some(Key::Model),
            b"stream" => Some(Key::Stream),
            b"max_tokens" => Some(Key::MaxTokens),
            b"max_completion_tokens" | b"max_output_tokens" => Some(Key::MaxCompletionTokens),
            b"stream_options" => Some(Key::StreamOptions),
            // Its UTF-8 was checked by `string`.
            _ => Some(Key::Other),
        };
    }
    serde_json::from_slice::<String>(quoted)
        .ok()
        .map(|s| named(&s))
}

/// The rest of a string whose opening quote is at `i - 1`; returns the index
/// after its closing quote, and whether the string has an escape.
///
/// Inlined: a chat body is mostly short strings (keys, roles), where a call's
/// prologue and a returned error enum in memory cost more than the search.
#[inline(always)]
fn string(b: &[u8], mut i: usize) -> Result<(usize, bool), ScanError> {
    let mut escaped = false;
    loop {
        let (n, wide) = plain_run(b.get(i..).unwrap_or_default());
        if wide {
            // RFC 8259 8.1: text is UTF-8. Checked here, in the one pass: a
            // multi-byte sequence never holds a quote, backslash or control
            // byte, so each run between them is checked on its own.
            if let Err(e) = std::str::from_utf8(&b[i..i + n]) {
                return Err(syntax(i + e.valid_up_to(), "invalid UTF-8 in string"));
            }
        }
        i += n;
        match b.get(i) {
            None => return Err(syntax(b.len(), "EOF while parsing a string")),
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => escaped = true,
            Some(_) => return Err(syntax(i, "control character in string")),
        }
        i = match b.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i + 2,
            Some(b'u') => match b.get(i + 2..i + 6) {
                Some(h) if h.iter().all(u8::is_ascii_hexdigit) => i + 6,
                _ => return Err(syntax(i, "invalid escape")),
            },
            _ => return Err(syntax(i, "invalid escape")),
        };
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, ScanError> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(syntax(i, "expected value"))
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number(b: &[u8], mut i: usize) -> Result<usize, ScanError> {
    let digits = |b: &[u8], i: usize| i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i),
        _ => return Err(syntax(i, "invalid number")),
    }
    if b.get(i) == Some(&b'.') {
        let j = digits(b, i + 1);
        if j == i + 1 {
            return Err(syntax(j, "invalid number"));
        }
        i = j;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let j = digits(b, i);
        if j == i {
            return Err(syntax(j, "invalid number"));
        }
        i = j;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;
    use serde::Deserialize;
    use serde_json::value::RawValue;

    /// The serde derive this scanner replaced, as the reference.
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        model: Option<&'a RawValue>,
        #[serde(borrow)]
        stream: Option<&'a RawValue>,
    }

    fn span_of(body: &[u8], raw: Option<&RawValue>) -> Option<Range<usize>> {
        raw.map(|r| {
            let start = r.get().as_ptr() as usize - body.as_ptr() as usize;
            start..start + r.get().len()
        })
    }

    fn value(rng: &mut fastrand::Rng, depth: usize, out: &mut String) {
        let pick = if depth > 5 {
            rng.usize(0..6)
        } else {
            rng.usize(0..8)
        };
        match pick {
            0 => out.push_str(["true", "false", "null"][rng.usize(0..3)]),
            1 => out.push_str(["0", "-1", "12.5", "3e9", "-0.0E-2", "1E+2"][rng.usize(0..6)]),
            2..=5 => {
                let s = [
                    "",
                    "a",
                    "model",
                    "stream",
                    "é",
                    "x\\\"y",
                    "\\u00e9\\n",
                    "mod\\u0065l",
                    "{[]}",
                ][rng.usize(0..9)];
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            6 => {
                out.push('[');
                for k in 0..rng.usize(0..4) {
                    if k > 0 {
                        out.push(',');
                    }
                    value(rng, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for k in 0..rng.usize(0..4) {
                    if k > 0 {
                        out.push_str(if rng.bool() { "," } else { " ,\n" });
                    }
                    let key = ["model", "stream", "messages", "mod\\u0065l", "n"][rng.usize(0..5)];
                    out.push_str(&format!("\"{key}\" : "));
                    value(rng, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn agrees_with_serde_json_on_random_and_mutated_documents() {
        let noise = b"{}[]\",:\\ \t\nu0aeE.-+9tfnl\x01\x1f\xc3\xa9\xff\xe2\x80\xed\xa0";
        let mut rng = fastrand::Rng::with_seed(11);
        let mut valid = 0;
        for n in 0..60_000 {
            let mut doc = String::new();
            value(&mut rng, 0, &mut doc);
            let mut bytes = doc.into_bytes();
            // Most documents get mutated: inserted, deleted or replaced bytes.
            for _ in 0..rng.usize(0..3) {
                let at = rng.usize(0..=bytes.len());
                match rng.usize(0..3) {
                    0 => bytes.insert(at, noise[rng.usize(..noise.len())]),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = noise[rng.usize(..noise.len())],
                    _ => {}
                }
            }
            let ours = scan(&bytes, DEPTH_LIMIT);
            let text = String::from_utf8_lossy(&bytes);
            // serde checks UTF-8 only where it builds strings; JSON text is
            // UTF-8 throughout (outside strings only ASCII is valid anyway).
            let utf8 = std::str::from_utf8(&bytes).is_ok();
            let object = bytes.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{');
            if !object {
                let theirs = serde_json::from_slice::<IgnoredAny>(&bytes);
                assert_eq!(
                    ours.is_ok(),
                    theirs.is_ok() && utf8,
                    "#{n} {text:?}: {ours:?} vs {theirs:?}"
                );
                continue;
            }
            // An object: the derive is the reference (it also refuses a
            // duplicate `model` or `stream`), fields included.
            let theirs = serde_json::from_slice::<Probe>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|p| if utf8 { Ok(p) } else { Err("not UTF-8".into()) });
            match (&ours, theirs) {
                (Ok(f), Ok(p)) => {
                    // Serde reads `null` into an `Option` as `None`.
                    let not_null = |r: &Option<Range<usize>>| {
                        r.clone().filter(|r| &bytes[r.clone()] != b"null")
                    };
                    assert_eq!(not_null(&f.model), span_of(&bytes, p.model), "{text:?}");
                    assert_eq!(not_null(&f.stream), span_of(&bytes, p.stream), "{text:?}");
                    valid += 1;
                }
                (Err(_), Err(_)) => {}
                (o, t) => panic!("#{n} {text:?}: {o:?} vs {:?}", t.err()),
            }
        }
        assert!(valid > 2_000, "too few valid objects generated: {valid}");
    }

    #[test]
    fn strings_must_be_utf8() {
        assert!(scan("{\"messages\":[\"héllo 世界 🎉\"]}".as_bytes(), 8).is_ok());
        for bad in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":\"caf\xc3\"}",
            b"{\"a\":\"\xc0\xaf\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":\"\xf4\x90\x80\x80\"}",
            b"[\"0123456789abcdef0123456789abcdef\x80\"]",
            b"[\"\xe2\x82\\n\"]",
        ] {
            assert!(scan(bad, 8).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn finds_top_level_fields_only() {
        let b = br#" {"messages":[{"model":"inner"}], "model" : "chat","stream":true} "#;
        let f = scan(b, 8).unwrap();
        assert_eq!(&b[f.model.unwrap()], b"\"chat\"");
        assert_eq!(&b[f.stream.unwrap()], b"true");
        let b = br#"{"mod\u0065l":{"a":[1]},"x":1}"#;
        assert_eq!(&b[scan(b, 8).unwrap().model.unwrap()], br#"{"a":[1]}"#);
    }

    #[test]
    fn bounds_nesting_and_refuses_duplicates() {
        let nest = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert!(scan(nest(128).as_bytes(), 128).is_ok());
        assert_eq!(
            scan(nest(129).as_bytes(), 128),
            Err(ScanError::TooDeep(128))
        );
        assert_eq!(scan(nest(3).as_bytes(), 2), Err(ScanError::TooDeep(2)));
        assert_eq!(
            scan(br#"{"model":"a","model":"b"}"#, 8),
            Err(ScanError::Duplicate("model"))
        );
        assert!(scan(br#"{"x":{"model":"a","model":"b"}}"#, 8).is_ok());
        assert!(scan(b"{\"\xff\":1}", 8).is_err(), "root keys must be UTF-8");
    }
}
