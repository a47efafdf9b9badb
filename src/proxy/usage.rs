//! Token usage from the tail of an upstream answer: `"usage":{"prompt_tokens":N,
//! "completion_tokens":M,...}` sits at the end of a chat completion and in the last
//! chunk of a stream (with `stream_options.include_usage`). Only the last two body
//! chunks are kept (reference-counted, not copied) and scanned once at the end.

use bytes::Bytes;

#[derive(Default)]
pub struct UsageTail {
    prev: Option<Bytes>,
    last: Option<Bytes>,
}

/// (prompt tokens, completion tokens)
pub type Usage = (u64, u64);

impl UsageTail {
    pub fn push(&mut self, chunk: &Bytes) {
        self.prev = self.last.replace(chunk.clone());
    }

    pub fn scan(&self) -> Option<Usage> {
        [&self.last, &self.prev]
            .into_iter()
            .flatten()
            .find_map(|b| scan(b))
    }
}

/// The last `"usage"` object's prompt and completion token counts in `body`.
pub fn scan(body: &[u8]) -> Option<Usage> {
    let at = rfind(body, b"\"usage\"")?;
    let tail = &body[at..];
    Some((
        number_after(tail, b"\"prompt_tokens\"")?,
        number_after(tail, b"\"completion_tokens\"")?,
    ))
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = hay[at..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == b':');
    let digits: Vec<u8> = rest.take_while(|b| b.is_ascii_digit()).copied().collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_usage_in_completion_and_stream_tail() {
        let body = br#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens": 6,"total_tokens":15}}"#;
        assert_eq!(scan(body), Some((9, 6)));
        let mut t = UsageTail::default();
        t.push(&Bytes::from_static(
            b"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
        ));
        t.push(&Bytes::from_static(b"data: [DONE]\n\n"));
        assert_eq!(t.scan(), Some((3, 4)));
        assert_eq!(scan(b"{\"choices\":[]}"), None);
    }
}
