//! The request body as its framing says (Content-Length or chunked), taken
//! piece by piece off the connection's read buffer. No I/O: the connection
//! ([`super::Client`]) reads more when this asks for it.

use super::head::BodyFraming;
use crate::framing::{self, Decoder, Step};
use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReqBody {
    /// Bytes still to come.
    Length(u64),
    Chunked(Decoder),
    Done,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A piece of the body, split off the buffer (not copied).
    Piece(Bytes),
    /// The body ended.
    End,
    /// Nothing usable buffered: read more.
    More,
}

/// Chunked framing that breaks RFC 9112 7.1.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadChunk;

impl ReqBody {
    /// The body a head announced; `meta_limit` bounds chunk extensions and
    /// trailers (like the head they extend).
    pub(super) fn of(framing: BodyFraming, meta_limit: usize) -> Self {
        match framing {
            BodyFraming::Chunked => ReqBody::Chunked(Decoder::new(meta_limit)),
            BodyFraming::Length(l) => ReqBody::Length(l),
            BodyFraming::None => ReqBody::Done,
        }
    }

    /// The length still to come, when Content-Length gave it.
    #[inline]
    pub(super) fn length(&self) -> Option<u64> {
        match self {
            ReqBody::Length(l) => Some(*l),
            ReqBody::Chunked(_) | ReqBody::Done => None,
        }
    }

    /// The next piece from `buf`.
    #[inline]
    pub(super) fn next(&mut self, buf: &mut BytesMut) -> Result<Next, BadChunk> {
        match *self {
            ReqBody::Done => Ok(Next::End),
            ReqBody::Length(_) if buf.is_empty() => Ok(Next::More),
            ReqBody::Length(left) => {
                let (piece, left) = framing::take_length(buf, left);
                *self = if left == 0 {
                    ReqBody::Done
                } else {
                    ReqBody::Length(left)
                };
                Ok(Next::Piece(piece))
            }
            ReqBody::Chunked(mut d) => {
                let step = d.step(buf).map_err(|_| BadChunk)?;
                *self = if d.is_done() {
                    ReqBody::Done
                } else {
                    ReqBody::Chunked(d)
                };
                Ok(match step {
                    Step::Data(b) => Next::Piece(b),
                    Step::Done => Next::End,
                    Step::More => Next::More,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All pieces from `bytes` fed `chunk` at a time, and how it ended.
    fn run(mut body: ReqBody, bytes: &[u8], chunk: usize) -> (Vec<u8>, Result<bool, BadChunk>) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut feed = bytes.chunks(chunk);
        loop {
            match body.next(&mut buf) {
                Ok(Next::Piece(p)) => out.extend_from_slice(&p),
                Ok(Next::End) => return (out, Ok(true)),
                Ok(Next::More) => match feed.next() {
                    Some(c) => buf.extend_from_slice(c),
                    None => return (out, Ok(false)),
                },
                Err(e) => return (out, Err(e)),
            }
        }
    }

    #[test]
    fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
        for chunk in [1, 3, 64] {
            let (got, end) = run(ReqBody::Length(5), b"hello", chunk);
            assert_eq!(
                (got.as_slice(), end),
                (&b"hello"[..], Ok(true)),
                "chunk {chunk}"
            );
        }
        let mut body = ReqBody::Length(2);
        let mut buf = BytesMut::from(&b"abGET /"[..]);
        assert_eq!(
            body.next(&mut buf),
            Ok(Next::Piece(Bytes::from_static(b"ab")))
        );
        assert_eq!(body.next(&mut buf), Ok(Next::End));
        assert_eq!(&buf[..], b"GET /", "the next request stays in the buffer");
        assert_eq!(ReqBody::Length(9).length(), Some(9));
    }

    #[test]
    fn a_chunked_body_under_any_split() {
        let wire = b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n";
        for chunk in 1..wire.len() {
            let (got, end) = run(ReqBody::of(BodyFraming::Chunked, 1024), wire, chunk);
            assert_eq!(
                (got.as_slice(), end),
                (&b"abcde"[..], Ok(true)),
                "chunk {chunk}"
            );
        }
        assert_eq!(ReqBody::of(BodyFraming::Chunked, 1024).length(), None);
    }

    #[test]
    fn bad_chunked_framing_is_an_error_and_an_unfinished_body_waits() {
        let (_, end) = run(ReqBody::of(BodyFraming::Chunked, 1024), b"zz\r\n", 4);
        assert_eq!(end, Err(BadChunk));
        let (got, end) = run(ReqBody::Length(10), b"abc", 2);
        assert_eq!((got.as_slice(), end), (&b"abc"[..], Ok(false)));
        assert_eq!(run(ReqBody::of(BodyFraming::None, 0), b"", 1).1, Ok(true));
    }
}
