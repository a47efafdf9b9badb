//! Takes back what `stream_options.include_usage` adds to an OpenAI stream
//! when llmgate asked for it and the client did not: the usage-only chunk
//! (`"choices":[]` with a `usage` object) and the `"usage":null` member of
//! every other chunk. The client gets the bytes it would have got without the
//! option; llmgate reads the usage from the upstream's bytes before this.
//!
//! Events pass whole: a chunk's bytes up to its last complete event go out at
//! once, an incomplete event waits for the rest (it is sent unchanged if the
//! stream ends or breaks first).

use memchr::memmem;

#[derive(Debug, Default)]
pub struct UsageStrip {
    /// The start of an event whose end has not arrived.
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl UsageStrip {
    /// The bytes to send for `chunk`: its complete events, rewritten.
    pub fn feed(&mut self, chunk: &[u8]) -> &[u8] {
        self.out.clear();
        let joined;
        let data: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let mut at = 0;
        while let Some(end) = event_end(&data[at..]) {
            let event = &data[at..at + end];
            rewrite(event, &mut self.out);
            at += end;
        }
        self.pending.extend_from_slice(&data[at..]);
        &self.out
    }

    /// What is left at the end of the stream (an incomplete event, as it came).
    pub fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// The length of the first complete event in `b` (its blank line included).
fn event_end(b: &[u8]) -> Option<usize> {
    let lf = memmem::find(b, b"\n\n").map(|i| i + 2);
    let crlf = memmem::find(b, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// One event to `out`: dropped if it only carries usage, else without its
/// `"usage":null` member.
fn rewrite(event: &[u8], out: &mut Vec<u8>) {
    let Some(key) = memmem::find(event, b"\"usage\"") else {
        out.extend_from_slice(event);
        return;
    };
    let after = skip_ws(event, key + 7);
    if event.get(after) != Some(&b':') {
        out.extend_from_slice(event);
        return;
    }
    let value = skip_ws(event, after + 1);
    if event.get(value) == Some(&b'{') {
        // A usage object: the usage-only chunk when it has no choices.
        if is_usage_only(event) {
            return;
        }
        out.extend_from_slice(event);
        return;
    }
    if event.get(value..value + 4) != Some(b"null") {
        out.extend_from_slice(event);
        return;
    }
    let end = value + 4;
    // The member and one comma: the one before it, else the one after it.
    let before = rskip_ws(event, key);
    if before > 0 && event[before - 1] == b',' {
        out.extend_from_slice(&event[..before - 1]);
        out.extend_from_slice(&event[end..]);
        return;
    }
    let next = skip_ws(event, end);
    if event.get(next) == Some(&b',') {
        out.extend_from_slice(&event[..key]);
        out.extend_from_slice(&event[skip_ws(event, next + 1)..]);
        return;
    }
    out.extend_from_slice(event);
}

/// `"choices":[]` (spacing allowed): the chunk carries nothing but usage.
fn is_usage_only(event: &[u8]) -> bool {
    let Some(k) = memmem::find(event, b"\"choices\"") else {
        return false;
    };
    let colon = skip_ws(event, k + 9);
    if event.get(colon) != Some(&b':') {
        return false;
    }
    let open = skip_ws(event, colon + 1);
    event.get(open) == Some(&b'[') && event.get(skip_ws(event, open + 1)) == Some(&b']')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The index just after the last non-blank byte before `i`.
fn rskip_ws(b: &[u8], mut i: usize) -> usize {
    while i > 0 && matches!(b[i - 1], b' ' | b'\t') {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"id\":\"x\",\"usage\":null}\n\n\
        data: {\"usage\": null, \"id\":\"y\"}\n\n\
        data: {\"choices\":[],\"id\":\"x\",\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\
        data: [DONE]\n\n";
    const WITHOUT: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"id\":\"x\"}\n\n\
        data: {\"id\":\"y\"}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn gives_the_stream_without_the_option_under_any_chunking() {
        for size in 1..WITH.len() {
            let mut s = UsageStrip::default();
            let mut got = Vec::new();
            for c in WITH.as_bytes().chunks(size) {
                got.extend_from_slice(s.feed(c));
            }
            got.extend(s.rest());
            assert_eq!(String::from_utf8(got).unwrap(), WITHOUT, "chunks of {size}");
        }
    }

    #[test]
    fn leaves_everything_else_alone() {
        let other = "data: {\"content\":\"\\\"usage\\\":null\",\"usage\":{\"total_tokens\":3},\"choices\":[{}]}\n\n\
            : comment\r\n\r\nevent: x\ndata: {\"usage\":5}\n\ndata: part";
        let mut s = UsageStrip::default();
        let mut got = s.feed(other.as_bytes()).to_vec();
        got.extend(s.rest());
        assert_eq!(String::from_utf8(got).unwrap(), other);
    }
}
