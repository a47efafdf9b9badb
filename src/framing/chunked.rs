//! The chunked coding (RFC 9112 section 7.1), strictly, for both sides: the
//! decoder splits data off a read buffer without copying.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
