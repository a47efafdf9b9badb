//! HTTP/1.1 message framing shared by both sides (upstream answers, client
//! requests): Content-Length and Transfer-Encoding values, and the chunked
//! coding (RFC 9112 section 7.1): the decoder splits data off a read buffer
//! without copying; [`FrameHead`] frames what we send to clients.

use bytes::{Buf, Bytes, BytesMut};

/// Most hex digits a chunk size may have (a `u64`).
const MAX_SIZE_DIGITS: usize = 16;

/// Broken chunked framing: a size line, extension or trailer outside the RFC
/// 9112 grammar, a bare LF, data not followed by CRLF, or more extension and
/// trailer bytes than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data: `Decoder::left` bytes still to come.
    Data,
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
    Done,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A piece of body data, split off the buffer.
    Data(Bytes),
    /// Everything buffered was consumed; read more.
    More,
    /// The last chunk and the trailers were read.
    Done,
}

/// The chunked coding (RFC 9112 section 7.1), strictly: `chunk-size
/// [chunk-ext] CRLF`, data, CRLF; trailer lines are field lines; CRLF only.
/// Chunk extensions and trailers are read and dropped, and the bytes of both
/// together are bounded for the whole body, however they are spread over
/// chunks and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// Chunk data bytes still to come (in `State::Data`).
    left: u64,
    /// Extension and trailer bytes still allowed.
    meta_left: u32,
    state: State,
}

impl Decoder {
    /// A decoder allowing `meta_limit` bytes of chunk extensions and trailers
    /// (line ends of trailer lines included).
    pub fn new(meta_limit: usize) -> Self {
        Decoder {
            left: 0,
            meta_left: u32::try_from(meta_limit).unwrap_or(u32::MAX),
            state: State::Size,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Take `n` bytes from the extension/trailer budget.
    fn charge(&mut self, n: usize) -> Result<(), BadChunk> {
        let n = u32::try_from(n).map_err(|_| BadChunk)?;
        self.meta_left = self.meta_left.checked_sub(n).ok_or(BadChunk)?;
        Ok(())
    }

    fn meta_left(&self) -> usize {
        self.meta_left as usize
    }

    /// Advance over buffered bytes, consuming framing and returning data as soon
    /// as there is some.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, BadChunk> {
        loop {
            match self.state {
                State::Done => return Ok(Step::Done),
                State::Size => {
                    let Some(eol) = memchr::memchr(b'\n', buf) else {
                        // Digits, then at most what the budget still allows.
                        return more(buf.len() > MAX_SIZE_DIGITS + self.meta_left() + 1);
                    };
                    let line = buf[..eol].strip_suffix(b"\r").ok_or(BadChunk)?;
                    let (size, ext) = parse_chunk_size(line).ok_or(BadChunk)?;
                    self.charge(ext)?;
                    buf.advance(eol + 1);
                    self.left = size;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = (buf.len() as u64).min(self.left) as usize;
                    self.left -= n as u64;
                    if self.left == 0 {
                        self.state = State::DataEnd;
                    }
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                State::DataEnd => match (buf.first(), buf.get(1)) {
                    (None, _) | (Some(b'\r'), None) => return Ok(Step::More),
                    (Some(b'\r'), Some(b'\n')) => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    _ => return Err(BadChunk),
                },
                State::Trailers => {
                    let Some(eol) = memchr::memchr(b'\n', buf) else {
                        return more(buf.len() > self.meta_left() + 1);
                    };
                    let line = buf[..eol].strip_suffix(b"\r").ok_or(BadChunk)?;
                    if line.is_empty() {
                        buf.advance(eol + 1);
                        self.state = State::Done;
                        continue;
                    }
                    if !is_field_line(line) {
                        return Err(BadChunk);
                    }
                    self.charge(eol + 1)?;
                    buf.advance(eol + 1);
                }
            }
        }
    }
}

fn more(too_long: bool) -> Result<Step, BadChunk> {
    if too_long {
        Err(BadChunk)
    } else {
        Ok(Step::More)
    }
}

/// A chunk-size line without its CRLF: `1*HEXDIG [chunk-ext]` -> the size
/// and the length of the extension part. At most 16 hex digits.
///
/// `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, names
/// tokens, values tokens or quoted strings (RFC 9112 7.1.1).
pub fn parse_chunk_size(line: &[u8]) -> Option<(u64, usize)> {
    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_SIZE_DIGITS {
        return None;
    }
    let mut n = 0u64;
    for d in &line[..digits] {
        n = n << 4 | u64::from((*d as char).to_digit(16)?);
    }
    let ext = &line[digits..];
    chunk_ext(ext).then_some((n, ext.len()))
}

fn chunk_ext(mut s: &[u8]) -> bool {
    let bws = |s: &[u8]| -> usize { s.iter().take_while(|c| matches!(c, b' ' | b'\t')).count() };
    while !s.is_empty() {
        s = &s[bws(s)..];
        let Some(rest) = s.strip_prefix(b";") else {
            return false;
        };
        s = &rest[bws(rest)..];
        let name = token_len(s);
        if name == 0 {
            return false;
        }
        s = &s[name..];
        let ws = bws(s);
        if let Some(rest) = s[ws..].strip_prefix(b"=") {
            s = &rest[bws(rest)..];
            let value = if s.first() == Some(&b'"') {
                quoted_len(s)
            } else {
                token_len(s)
            };
            if value == 0 {
                return false;
            }
            s = &s[value..];
        }
    }
    true
}

/// `tchar` (RFC 9110 5.6.2).
pub fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|c| is_tchar(**c)).count()
}

/// Length of the quoted string at the start of `s` (quotes included), 0 if
/// there is none.
fn quoted_len(s: &[u8]) -> usize {
    let mut i = 1;
    while let Some(&c) = s.get(i) {
        match c {
            b'"' => return i + 1,
            b'\\' => match s.get(i + 1) {
                Some(&q) if q == b'\t' || (q >= b' ' && q != 0x7f) => i += 2,
                _ => return 0,
            },
            b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => i += 1,
            _ => return 0,
        }
    }
    0
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 5): a token, a colon, and
/// a value of visible characters, spaces, tabs and obs-text.
pub fn is_field_line(line: &[u8]) -> bool {
    let name = token_len(line);
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..]
            .iter()
            .all(|&c| c == b'\t' || (c >= b' ' && c != 0x7f))
}

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
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const META: usize = 1024;

    fn decode_in_cuts(wire: &[u8], cut: usize) -> Result<(Vec<u8>, bool), BadChunk> {
        decode_with(wire, &[cut], META)
    }

    /// Feed `wire` in pieces cut at `cuts`, decoding as it arrives.
    fn decode_with(wire: &[u8], cuts: &[usize], meta: usize) -> Result<(Vec<u8>, bool), BadChunk> {
        let mut d = Decoder::new(meta);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
            let c = c.clamp(at, wire.len());
            buf.extend_from_slice(&wire[at..c]);
            at = c;
            loop {
                match d.step(&mut buf)? {
                    Step::Data(b) => out.extend_from_slice(&b),
                    Step::More => break,
                    Step::Done => return Ok((out, true)),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn decodes_at_every_cut() {
        let wire = b"5;x=y\r\nhello\r\n6 ; a ; b = \"q \\\" ;\"\r\n world\r\n0\r\nx-t: 1\r\n\r\n";
        for cut in 0..=wire.len() {
            assert_eq!(
                decode_in_cuts(wire, cut),
                Ok((b"hello world".to_vec(), true)),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn broken_framing_is_rejected() {
        for wire in [
            &b"zz\r\n"[..],
            b"2\r\nabX\r\n",
            // Bare LF anywhere: size line, after data, trailers, last line.
            b"2\nok\r\n0\r\n\r\n",
            b"2\r\nok\n0\r\n\r\n",
            b"2\r\nok\r\n0\r\nx: 1\n\r\n",
            b"2\r\nok\r\n0\r\n\n",
            // Size forms outside the grammar.
            b" 2\r\nok\r\n0\r\n\r\n",
            b"2 \r\nok\r\n0\r\n\r\n",
            b"+2\r\nok\r\n0\r\n\r\n",
            b"0x2\r\nok\r\n0\r\n\r\n",
            b"12345678901234567\r\n",
            // Extensions outside the grammar.
            b"2;\r\nok\r\n0\r\n\r\n",
            b"2;a=\r\nok\r\n0\r\n\r\n",
            b"2;a=\"open\r\nok\r\n0\r\n\r\n",
            b"2;a b\r\nok\r\n0\r\n\r\n",
            b"2;a\x01\r\nok\r\n0\r\n\r\n",
            b"2 x\r\nok\r\n0\r\n\r\n",
            // Data longer than its size; CR alone after data.
            b"2\r\nokk\r\n0\r\n\r\n",
            b"2\r\nok\rX0\r\n\r\n",
            // Trailer lines that are not fields.
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\nbad name: v\r\n\r\n",
            b"0\r\n x: folded\r\n\r\n",
            b"0\r\nx: ctl\x00\r\n\r\n",
        ] {
            for cut in 0..=wire.len() {
                assert_eq!(
                    decode_in_cuts(wire, cut),
                    Err(BadChunk),
                    "{:?} cut {cut}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
    }

    #[test]
    fn extension_and_trailer_bytes_are_bounded_however_they_arrive() {
        // Forty chunks, each with a 30-byte extension: 1,200 bytes in all.
        let ext = b";name=abcdefghijklmnopqrstuvwx";
        assert_eq!(ext.len(), 30);
        let mut wire = Vec::new();
        for _ in 0..40 {
            wire.extend_from_slice(&[&b"1"[..], ext, b"\r\nx\r\n"].concat());
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        assert!(decode_with(&wire, &[], 1_200).is_ok());
        assert_eq!(decode_with(&wire, &[], 1_199), Err(BadChunk));
        // One byte at a time changes nothing.
        let cuts: Vec<usize> = (0..wire.len()).collect();
        assert!(decode_with(&wire, &cuts, 1_200).is_ok());
        assert_eq!(decode_with(&wire, &cuts, 1_199), Err(BadChunk));
        // Trailers count too, with their line ends.
        let wire = b"0\r\na: 1\r\nb: 2\r\n\r\n";
        assert!(decode_with(wire, &[], 12).is_ok());
        assert_eq!(decode_with(wire, &[], 11), Err(BadChunk));
        // A size line that never ends is refused once it exceeds the budget.
        let long = vec![b'1'; MAX_SIZE_DIGITS + META + 2];
        assert_eq!(decode_with(&long, &[], META), Err(BadChunk));
        let long = [&b"1;"[..], &vec![b'a'; 5000]].concat();
        assert_eq!(decode_with(&long, &[], META), Err(BadChunk));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1A"), Some((26, 0)));
        assert_eq!(parse_chunk_size(b"0"), Some((0, 0)));
        assert_eq!(parse_chunk_size(b"ff ; name=v"), Some((255, 9)));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff"), Some((u64::MAX, 0)));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"1234567890abcdef0"), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(parse_chunk_size(b"1\r"), None);
    }

    #[test]
    fn field_lines() {
        assert!(is_field_line(b"x-t: 1"));
        assert!(is_field_line(b"x-t:"));
        assert!(is_field_line(b"x:\tv a\xe9 "));
        assert!(!is_field_line(b"x t: 1"));
        assert!(!is_field_line(b"x-t 1"));
        assert!(!is_field_line(b"x: \x7f"));
        assert!(!is_field_line(b"x: a\rb"));
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
