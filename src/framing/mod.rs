//! HTTP/1.1 message framing shared by both sides (upstream answers, client
//! requests): Content-Length and Transfer-Encoding values, and the chunked
//! coding (RFC 9112 section 7.1): the decoder splits data off a read buffer
//! without copying; [`FrameHead`] frames what we send to clients.

use bytes::{Bytes, BytesMut};

mod chunked;
pub mod target;

pub use chunked::{is_field_line, is_tchar, parse_chunk_size, BadChunk, Decoder, Step};

/// The size line that opens a chunk: hex digits and CRLF, on the stack.
pub struct FrameHead {
    buf: [u8; 18],
    start: usize,
}

impl FrameHead {
    pub fn new(len: usize) -> Self {
        let mut buf = [0u8; 18];
        buf[16] = b'\r';
        buf[17] = b'\n';
        let mut i = 16;
        let mut n = len;
        loop {
            i -= 1;
            buf[i] = b"0123456789abcdef"[n & 0xf];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        FrameHead { buf, start: i }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Closes a chunked body.
/// Header lines of a parsed head, as offsets into the head's own bytes (one
/// copy of the head instead of an allocation per name and value). Names are
/// kept as sent; lookups are ASCII case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct HeaderLines {
    raw: Bytes,
    lines: Vec<((u32, u32), (u32, u32))>,
    /// A `Connection` header names other headers (besides `close` and
    /// `keep-alive`): noted by the parser, which looks at `Connection` anyway,
    /// so the common head is never searched for them.
    connection_names: bool,
}

impl HeaderLines {
    /// `lines`: slices of `head` (as httparse returns them); `keep` filters them.
    pub fn copy_from<'a>(
        head: &'a [u8],
        lines: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
        keep: impl Fn(&[u8]) -> bool,
    ) -> HeaderLines {
        let base = head.as_ptr() as usize;
        let span = |s: &[u8]| {
            let at = (s.as_ptr() as usize).wrapping_sub(base);
            (at as u32, (at + s.len()) as u32)
        };
        let mut v = Vec::with_capacity(lines.len());
        for (n, val) in lines {
            if keep(n) {
                v.push((span(n), span(val)));
            }
        }
        HeaderLines {
            raw: Bytes::copy_from_slice(head),
            lines: v,
            connection_names: false,
        }
    }

    /// Record that a `Connection` header lists header names ([`lists_names`]).
    pub fn set_connection_names(&mut self, yes: bool) {
        self.connection_names = yes;
    }

    pub fn connection_names(&self) -> bool {
        self.connection_names
    }

    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter().map(|(n, v)| {
            (
                &self.raw[n.0 as usize..n.1 as usize],
                &self.raw[v.0 as usize..v.1 as usize],
            )
        })
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        // Lengths first, from the offsets: most lines are passed over without
        // slicing or comparing a byte.
        let (_, v) = self.lines.iter().find(|(n, _)| {
            (n.1 - n.0) as usize == name.len()
                && self
                    .raw
                    .get(n.0 as usize..n.1 as usize)
                    .is_some_and(|n| eq_ci(n, name))
        })?;
        self.raw.get(v.0 as usize..v.1 as usize)
    }

    /// Every value of header `name`, in order (lengths compared first, as in
    /// [`Self::get`]).
    pub fn values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.lines.iter().filter_map(move |(n, v)| {
            if (n.1 - n.0) as usize != name.len() {
                return None;
            }
            let n = self.raw.get(n.0 as usize..n.1 as usize)?;
            if !eq_ci(n, name) {
                return None;
            }
            self.raw.get(v.0 as usize..v.1 as usize)
        })
    }
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Split the next piece of a Content-Length body (`left` bytes still to come)
/// off a non-empty read buffer: the piece and what is left after it.
pub fn take_length(buf: &mut BytesMut, left: u64) -> (Bytes, u64) {
    let n = (buf.len() as u64).min(left) as usize;
    (buf.split_to(n).freeze(), left - n as u64)
}

/// Whether a connection stays open after a `Connection` header value, given
/// what held before it: `close` ends it; `keep-alive` keeps an HTTP/1.0 one.
pub fn keep_alive(value: &[u8], http10: bool, before: bool) -> bool {
    value.split(|b| *b == b',').fold(before, |keep, t| {
        let t = t.trim_ascii();
        if eq_ci(t, b"close") {
            false
        } else if http10 && eq_ci(t, b"keep-alive") {
            true
        } else {
            keep
        }
    })
}

/// Whether a `Connection` value lists anything besides `close` and
/// `keep-alive`: header names that must not be forwarded.
pub fn lists_names(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    // What nearly every peer sends, without splitting.
    if eq_ci(v, b"keep-alive") || eq_ci(v, b"close") {
        return false;
    }
    v.split(|b| *b == b',').any(|t| {
        let t = t.trim_ascii();
        !t.is_empty() && !eq_ci(t, b"close") && !eq_ci(t, b"keep-alive")
    })
}

/// ASCII case-insensitive equality, as `<[u8]>::eq_ignore_ascii_case`, a word
/// at a time: header names are compared several times per request (lookups,
/// filters, framing headers), and std's byte-at-a-time loop was most of a
/// header lookup (~300 instructions for `authorization`, callgrind).
#[inline(always)]
pub fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Overlapping windows cover lengths that are not a multiple of the word.
    let word = |s: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        lower8(u64::from_le_bytes(w))
    };
    let half = |s: &[u8]| {
        let mut lo = [0u8; 4];
        let mut hi = [0u8; 4];
        lo.copy_from_slice(&s[..4]);
        hi.copy_from_slice(&s[s.len() - 4..]);
        lower8(u64::from(u32::from_le_bytes(lo)) | u64::from(u32::from_le_bytes(hi)) << 32)
    };
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y)),
        4..=7 => half(a) == half(b),
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if word(a, i) != word(b, i) {
                    return false;
                }
                i += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
    }
}

/// Each byte of `x` ASCII-lowercased (only `A`..=`Z` change). Per byte, with
/// `h` its low seven bits: `h + 0x3f` has bit 7 set iff `h >= b'A'`, and
/// `h + 0x25` iff `h > b'Z'`; neither sum carries into the next byte. A byte
/// with bit 7 set is not ASCII and stays as it is.
#[inline(always)]
fn lower8(x: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    let h = x & (0x7f * ONES);
    let from_a = h + 0x3f * ONES;
    let past_z = h + 0x25 * ONES;
    let upper = from_a & !past_z & !x & (0x80 * ONES);
    x | (upper >> 2)
}

/// `b` as text: ASCII (request targets, header values, model names nearly
/// always are) is checked a word at a time by `is_ascii`; anything else goes
/// through `from_utf8`, whose set-up alone cost ~90 instructions per call on
/// the short strings of a request (callgrind), several calls per request.
pub fn text(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: `b` is all ASCII, and every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// A Content-Length value: digits only, no sign, no overflow.
pub fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    // 19 digits always fit a u64: no overflow check needed.
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

/// The final coding of a Transfer-Encoding value: only `chunked` there frames
/// the body (RFC 9112 6.3).
pub fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|b| *b == b',').next().unwrap_or(v).trim_ascii()
}

/// Write all of `slices` (few system calls: one, unless the socket is full).
pub async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    mut slices: &mut [std::io::IoSlice<'_>],
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    // Empty slices first would make a write of nothing (as std's does).
    std::io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// One `name: value` header line, appended to a head being serialized
/// (requests to upstreams, answers to clients). Callers pass names and
/// values free of CR and LF.
pub fn put_header(buf: &mut bytes::BytesMut, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_slices_are_no_write_of_nothing() {
        use tokio::io::AsyncReadExt;
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut slices = [
            std::io::IoSlice::new(b""),
            std::io::IoSlice::new(b"ab"),
            std::io::IoSlice::new(b""),
            std::io::IoSlice::new(b"c"),
            std::io::IoSlice::new(b""),
        ];
        write_all_vectored(&mut a, &mut slices).await.unwrap();
        let mut only_empty = [std::io::IoSlice::new(b"")];
        write_all_vectored(&mut a, &mut only_empty).await.unwrap();
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
    }

    #[test]
    fn eq_ci_agrees_with_std() {
        // Every byte value in every lane of the word step.
        for lane in 0..8 {
            for c in 0..=255u8 {
                let mut w = [b'x'; 8];
                w[lane] = c;
                let got = lower8(u64::from_le_bytes(w)).to_le_bytes();
                assert_eq!(got[lane], c.to_ascii_lowercase(), "byte {c:#x} lane {lane}");
            }
        }
        for (a, b) in [
            (&b"Content-Length"[..], &b"content-length"[..]),
            (b"TE", b"te"),
            (b"X-Api-Key", b"x-api-kez"),
        ] {
            assert_eq!(eq_ci(a, b), a.eq_ignore_ascii_case(b));
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"aAzZ@[`{-_09\x7f\x80\xc3\xa9\r ";
        for _ in 0..20_000 {
            let n = rng.usize(0..40);
            let a: Vec<u8> = (0..n)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let mut b = a.clone();
            // Case flips (still equal), sometimes one other byte (usually not).
            for c in b.iter_mut() {
                if rng.bool() {
                    *c ^= if c.is_ascii_alphabetic() { 0x20 } else { 0 };
                }
            }
            if n > 0 && rng.u8(..4) == 0 {
                let i = rng.usize(..n);
                b[i] = alphabet[rng.usize(..alphabet.len())];
            }
            if rng.u8(..8) == 0 {
                b.push(b'a');
            }
            assert_eq!(eq_ci(&a, &b), a.eq_ignore_ascii_case(&b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn text_is_ascii_or_utf8_and_nothing_else() {
        assert_eq!(text(b"/v1/chat?x=1"), Some("/v1/chat?x=1"));
        assert_eq!(text(b""), Some(""));
        assert_eq!(text("modèle".as_bytes()), Some("modèle"));
        assert_eq!(text(b"bad \xff byte"), None);
        assert_eq!(text(b"\xe2\x82"), None, "cut multi-byte sequence");
    }

    #[test]
    fn header_lines_find_the_first_value_of_a_name_in_any_case() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: a\r\nX-Long-Name: b\r\ncontent-type: c\r\nTE: d\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut slots);
        assert!(resp.parse(head).expect("valid head").is_complete());
        let lines = resp.headers.iter().map(|h| (h.name.as_bytes(), h.value));
        let h = HeaderLines::copy_from(head, lines, |n| !n.eq_ignore_ascii_case(b"te"));
        assert_eq!(h.get("content-type"), Some(&b"a"[..]));
        assert_eq!(h.get("x-long-name"), Some(&b"b"[..]));
        assert_eq!(h.get("CONTENT-TYPE"), Some(&b"a"[..]));
        assert_eq!(h.get("te"), None, "filtered out");
        assert_eq!(h.get("content-typ"), None);
        assert_eq!(h.get(""), None);
        assert_eq!(h.iter().count(), 3);
    }

    #[test]
    fn lengths_and_codings() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(parse_length(b"-1"), None);
        assert_eq!(parse_length(b"+1"), None);
        assert_eq!(parse_length(b"99999999999999999999"), None);
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_length(b"0012"), Some(12));
        assert_eq!(parse_length(b""), None);
        assert_eq!(parse_length(b"1 2"), None);
        assert_eq!(parse_length(b"12a"), None);
        assert_eq!(last_token(b"gzip, chunked"), b"chunked");
        assert_eq!(last_token(b"chunked, gzip"), b"gzip");
        assert!(!keep_alive(b"Keep-Alive, close", false, true));
        assert!(keep_alive(b"keep-alive", true, false));
        assert!(!keep_alive(b"keep-alive", false, false));
        assert!(keep_alive(b"upgrade", false, true));
    }

    #[test]
    fn frame_heads_round_trip() {
        for len in [1usize, 9, 10, 15, 16, 255, 4096, 1 << 20, usize::MAX >> 4] {
            let f = FrameHead::new(len);
            let out = f.as_bytes();
            assert!(out.ends_with(b"\r\n"));
            assert_eq!(
                parse_chunk_size(&out[..out.len() - 2]),
                Some((len as u64, 0))
            );
        }
    }
}
