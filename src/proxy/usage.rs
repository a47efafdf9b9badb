//! Token usage from the tail of an upstream answer: `"usage":{"prompt_tokens":N,
//! "completion_tokens":M,...}` sits at the end of a chat completion and in the last
//! chunk of a stream (with `stream_options.include_usage`). Only the last
//! [`TAIL`] bytes of the body are kept (copied) and scanned once at the end.
//!
//! Copied, not reference-counted: holding on to the upstream's body chunks kept
//! the reader's buffer shared, so every read of a stream had to allocate a new one
//! (12 KB per open stream in a heap profile).

use memchr::memmem::Finder;
use once_cell::sync::Lazy;

/// Bytes of the answer's end kept for the scan: OpenAI's final usage chunk is
/// ~500 bytes, and only the part from `"usage"` to the two counts is needed.
const TAIL: usize = 1024;

#[derive(Default, Clone)]
pub struct UsageTail {
    tail: Vec<u8>,
}

pub type Usage = (u64, u64);

impl UsageTail {
    pub fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(TAIL)..];
        let excess = (self.tail.len() + chunk.len()).saturating_sub(TAIL);
        self.tail.drain(..excess);
        if self.tail.capacity() == 0 {
            self.tail.reserve_exact(TAIL);
        }
        self.tail.extend_from_slice(chunk);
    }

    /// Usage in the answer whose last piece is `last`: scanned in place when
    /// it is the only piece (a plain answer read in one go, no copy).
    pub fn finish(&mut self, last: &[u8]) -> Option<Usage> {
        if self.tail.is_empty() {
            return scan(last);
        }
        self.push(last);
        scan(&self.tail)
    }
}

// Built once: `memmem::find` builds its searcher on every call, which cost
// more than the search itself on a 1 KB answer.
static USAGE: Lazy<Finder<'static>> = Lazy::new(|| Finder::new(b"\"usage\""));
static PROMPT: Lazy<Finder<'static>> = Lazy::new(|| Finder::new(b"\"prompt_tokens\""));
static COMPLETION: Lazy<Finder<'static>> = Lazy::new(|| Finder::new(b"\"completion_tokens\""));
static INPUT: Lazy<Finder<'static>> = Lazy::new(|| Finder::new(b"\"input_tokens\""));
static OUTPUT: Lazy<Finder<'static>> = Lazy::new(|| Finder::new(b"\"output_tokens\""));

/// The last `"usage"` object's prompt and completion token counts in `body`.
pub fn scan(body: &[u8]) -> Option<Usage> {
    // The last match, found forwards: the forward searcher is vectorized, the
    // reverse one (Two-Way) walked the whole answer a byte at a time.
    let at = last_usage(body)?;
    let tail = &body[at..];
    if let Some(both) = compact(tail) {
        return Some(both);
    }
    match (number_after(tail, &PROMPT), number_after(tail, &COMPLETION)) {
        (Some(p), Some(c)) => Some((p, c)),
        // Anthropic Messages and OpenAI Responses (passed through in their
        // own format) count `input_tokens` and `output_tokens`.
        _ => Some((number_after(tail, &INPUT)?, number_after(tail, &OUTPUT)?)),
    }
}

/// Where the usage object sits from the end of a chat completion (OpenAI and
/// the bench mock: 100-300 bytes, before `service_tier`/`system_fingerprint`).
const NEAR_END: usize = 512;

/// The start of the last `"usage"` in `body`: looked for in its last
/// [`NEAR_END`] bytes first, so a plain answer is not searched from its start
/// (half the searcher's work on a 784-byte answer); then in the rest, up to
/// matches that cross into the end part.
fn last_usage(body: &[u8]) -> Option<usize> {
    let near = body.len().saturating_sub(NEAR_END);
    if let Some(at) = USAGE.find_iter(&body[near..]).last() {
        return Some(near + at);
    }
    if near == 0 {
        return None;
    }
    let upto = (near + USAGE.needle().len() - 1).min(body.len());
    USAGE.find_iter(&body[..upto]).last()
}

/// The two counts where they are written as OpenAI writes them (first, in this
/// order, no spaces): read in place, without two more searches.
fn compact(tail: &[u8]) -> Option<Usage> {
    let rest = tail.strip_prefix(b"\"usage\":{\"prompt_tokens\":")?;
    let (prompt, rest) = digits(rest)?;
    let rest = rest.strip_prefix(b",\"completion_tokens\":")?;
    let (completion, _) = digits(rest)?;
    Some((prompt, completion))
}

/// A leading run of digits as a number, and what follows it.
fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    // No digits, or more than 19 (past what a count can be): no count.
    let n = crate::framing::parse_length(&s[..end])?;
    Some((n, &s[end..]))
}

fn number_after(hay: &[u8], key: &Finder<'_>) -> Option<u64> {
    let at = key.find(hay)? + key.needle().len();
    let rest = &hay[at..];
    let start = rest
        .iter()
        .position(|b| !(b.is_ascii_whitespace() || *b == b':'))?;
    digits(&rest[start..]).map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn finds_messages_and_responses_usage() {
        let msg = br#"{"type":"message","usage":{"cache_creation_input_tokens":3,"input_tokens":12,"output_tokens":7}}"#;
        assert_eq!(scan(msg), Some((12, 7)));
        let delta = b"event: message_delta\ndata: {\"usage\":{\"output_tokens\":15}}\n\n";
        assert_eq!(scan(delta), None, "no input count: estimated instead");
    }

    #[test]
    fn finds_usage_in_completion_and_stream_tail() {
        let body = br#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens": 6,"total_tokens":15}}"#;
        assert_eq!(scan(body), Some((9, 6)));
        let mut t = UsageTail::default();
        t.push(&Bytes::from_static(
            b"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
        ));
        assert_eq!(t.finish(b"data: [DONE]\n\n"), Some((3, 4)));
        assert_eq!(UsageTail::default().finish(body), Some((9, 6)));
        assert_eq!(scan(b"{\"choices\":[]}"), None);
        // Spaced, reordered or cut short: the general search, same answers.
        let spaced = br#"{"usage": {"completion_tokens": 6, "prompt_tokens": 9}}"#;
        assert_eq!(scan(spaced), Some((9, 6)));
        assert_eq!(
            scan(br#"{"usage":{"prompt_tokens":9,"completion_tokens":"#),
            None
        );
        assert_eq!(
            scan(br#"{"usage":{"prompt_tokens":9,"total_tokens":15}}"#),
            None
        );
        let huge = br#"{"usage":{"prompt_tokens":99999999999999999999999,"completion_tokens":1}}"#;
        assert_eq!(scan(huge), None);
    }

    #[test]
    fn the_last_usage_is_found_near_the_end_far_from_it_and_across_the_boundary() {
        let usage = br#""usage":{"prompt_tokens":5,"completion_tokens":6}"#;
        for pad_after in [0, 100, NEAR_END - 3, NEAR_END, NEAR_END + 1, 3000] {
            // An earlier decoy must never win over the real, last one.
            let mut body = br#"{"a":{"usage":{"prompt_tokens":1,"completion_tokens":2}},"#.to_vec();
            body.extend_from_slice(&vec![b' '; 700]);
            body.extend_from_slice(usage);
            body.extend_from_slice(&vec![b' '; pad_after]);
            let at = body.len() - pad_after - usage.len();
            assert_eq!(last_usage(&body), Some(at), "pad {pad_after}");
            assert_eq!(scan(&body), Some((5, 6)), "pad {pad_after}");
        }
        // `"usage"` starting 1..6 bytes before the end part: cut by its boundary.
        for k in 1..7 {
            let mut body = vec![b' '; 600];
            body.extend_from_slice(usage);
            body.extend_from_slice(&vec![b' '; NEAR_END + k - usage.len()]);
            assert_eq!(body.len() - NEAR_END, 600 + k);
            assert_eq!(last_usage(&body), Some(600), "cut {k}");
            assert_eq!(scan(&body), Some((5, 6)), "cut {k}");
        }
        assert_eq!(last_usage(&vec![b'u'; 2000]), None);
    }

    #[test]
    fn tail_keeps_only_the_last_bytes_across_chunks() {
        let mut t = UsageTail::default();
        let usage = b"{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":8}}";
        // The usage object split over two chunks, after a long stream.
        t.push(&vec![b'x'; 10_000]);
        t.push(&usage[..12]);
        assert_eq!(t.clone().finish(&usage[12..]), Some((7, 8)));
        t.push(&usage[12..]);
        assert!(t.tail.len() <= TAIL && t.tail.capacity() <= 2 * TAIL);
        // Pushed out by more than TAIL bytes after it: gone.
        assert_eq!(t.finish(&vec![b'y'; TAIL]), None);
    }
}
