//! The upstream side of HTTP/1.1: write a request we serialized ourselves, read
//! the response head and body off a pooled connection ([`Io`]).
//!
//! Why not Pingora's client session: it reserves a fixed 64 KiB body buffer per
//! response (a large malloc and, for a stream, 64 KiB of RSS held for its whole
//! life), and its parsed header has to be cloned before we can edit it. Here the
//! read buffer starts at 2 KiB and grows only while reads fill it, body pieces are
//! split off that buffer without copying, and the parsed head is ours to keep.
//! New connections are opened by Pingora's
//! [`pingora::connectors::TransportConnector`] (TCP, TLS); idle ones wait in
//! [`super::pool`] with their read buffer.

use super::io::Io;
use crate::framing::write_all_vectored;
use crate::framing::{self, last_token, parse_length, HeaderLines};
use crate::timer::Deadline;
use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

/// Largest response head accepted (Pingora's own limit is 1 MiB).
const MAX_HEAD: usize = 1 << 20;
const MAX_HEADERS: usize = 256;
const MIN_READ: usize = 2 * 1024;
const MAX_READ: usize = 64 * 1024;
/// Chunk-extension and trailer bytes accepted in one chunked answer.
const MAX_TRAILERS: usize = 64 * 1024;

/// Why a response could not be read. Names only, safe for logs and error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H1Error {
    /// The peer closed the connection before the message was complete.
    Closed,
    /// A socket error.
    Io,
    /// Nothing arrived before the deadline.
    Timeout,
    /// The response head is not valid HTTP/1.x.
    BadHead,
    /// The response head is larger than we accept.
    HeadTooLarge,
    /// Broken chunked framing or contradictory lengths.
    BadFraming,
}

impl H1Error {
    pub fn as_str(self) -> &'static str {
        match self {
            H1Error::Closed => "ConnectionClosed",
            H1Error::Io => "ReadError",
            H1Error::Timeout => "ReadTimedout",
            H1Error::BadHead => "InvalidHTTPHeader",
            H1Error::HeadTooLarge => "InvalidHTTPHeader (too large)",
            H1Error::BadFraming => "InvalidChunk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Head not read yet.
    Head,
    /// Content-Length: bytes still to come.
    Length(u64),
    Chunked(framing::Decoder),
    /// No length: the body ends when the peer closes.
    UntilClose,
    Done,
}

/// A response head: its status and header lines as received, less a
/// Content-Length that Transfer-Encoding overrides.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: HeaderLines,
}

/// One upstream HTTP/1.1 connection carrying one exchange.
pub struct Conn {
    stream: Io,
    buf: BytesMut,
    read_size: usize,
    body: Body,
    keep_alive: bool,
    /// Some byte of an answer arrived in this exchange: from then on the
    /// request may have been processed, and must not be sent again.
    answered: bool,
    /// Bounds the exchange and every body read that waits; kept (and reused)
    /// with the connection.
    pub timer: Deadline,
}

impl Conn {
    pub fn new(stream: Io) -> Self {
        Conn {
            stream,
            buf: BytesMut::new(),
            read_size: MIN_READ,
            body: Body::Head,
            keep_alive: true,
            answered: false,
            timer: Deadline::default(),
        }
    }

    /// Write the request (head, then body pieces) and flush it.
    pub async fn send(&mut self, head: &[u8], rest: &[&[u8]]) -> std::io::Result<()> {
        let mut slices = [IoSlice::new(&[]); 4];
        slices[0] = IoSlice::new(head);
        let mut k = 1;
        // An empty piece would make a write of nothing, which reads as WriteZero.
        for p in rest.iter().filter(|p| !p.is_empty()) {
            if k == slices.len() {
                write_all_vectored(&mut self.stream, &mut slices[..k]).await?;
                k = 0;
            }
            slices[k] = IoSlice::new(p);
            k += 1;
        }
        write_all_vectored(&mut self.stream, &mut slices[..k]).await?;
        self.stream.flush().await
    }

    /// Read more bytes into the buffer (waiting at most `limit`: a time, capped
    /// by a deadline); `Ok(0)` is end of stream. A wait that pends uses the
    /// connection's timer, so a stream's event reads arm one timer per idle
    /// period, not one per event.
    async fn fill(&mut self, limit: Option<(Duration, Instant)>) -> Result<usize, H1Error> {
        self.buf.reserve(self.read_size);
        let read = self.stream.read_buf(&mut self.buf);
        let n = match limit {
            None => read.await,
            Some((t, deadline)) => self
                .timer
                .within_by(|| (Instant::now() + t).min(deadline), read)
                .await
                .ok_or(H1Error::Timeout)?,
        }
        .map_err(|_| H1Error::Io)?;
        self.answered |= n > 0;
        // Grow reads for large bodies; small answers and SSE events keep the
        // buffer (and each open stream's memory) small.
        if n >= self.read_size && self.read_size < MAX_READ {
            self.read_size *= 2;
        }
        Ok(n)
    }

    /// Whether any byte of an answer has arrived since this exchange began. A
    /// pooled connection that failed with `false` here was closed before the
    /// upstream took the request (RFC 9112 9.3.1: then it may be sent again).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Read the response head, skipping informational (1xx) answers.
    pub async fn read_head(&mut self) -> Result<Head, H1Error> {
        loop {
            if !self.buf.is_empty() {
                if let Some(head) = self.parse_head()? {
                    return Ok(head);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(H1Error::HeadTooLarge);
                }
            }
            if self.fill(None).await? == 0 {
                return Err(H1Error::Closed);
            }
        }
    }

    /// `Ok(None)`: incomplete (or a skipped 1xx and nothing more buffered).
    fn parse_head(&mut self) -> Result<Option<Head>, H1Error> {
        loop {
            let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let n = match parse_response(&mut resp, &self.buf, &mut slots) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(H1Error::HeadTooLarge),
                Err(_) => return Err(H1Error::BadHead),
            };
            let code = resp.code.ok_or(H1Error::BadHead)?;
            if code < 100 {
                return Err(H1Error::BadHead);
            }
            if (100..200).contains(&code) {
                // 101 would switch protocols; we never ask for an upgrade.
                if code == 101 {
                    return Err(H1Error::BadHead);
                }
                self.buf.advance(n);
                if self.buf.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            if code > 599 {
                return Err(H1Error::BadHead);
            }
            let mut length: Option<u64> = None;
            let mut chunked = false;
            let mut coded = false;
            let http10 = resp.version == Some(0);
            let mut keep_alive = !http10;
            let mut connection_names = false;
            for h in resp.headers.iter() {
                let name = h.name.as_bytes();
                if framing::eq_ci(name, b"content-length") {
                    let l = parse_length(h.value).ok_or(H1Error::BadFraming)?;
                    if length.is_some_and(|prev| prev != l) {
                        return Err(H1Error::BadFraming);
                    }
                    length = Some(l);
                } else if framing::eq_ci(name, b"transfer-encoding") {
                    // Only "chunked" as the final coding frames the body (RFC 9112 6.3).
                    coded = true;
                    chunked = framing::eq_ci(last_token(h.value), b"chunked");
                } else if framing::eq_ci(name, b"connection") {
                    keep_alive = framing::keep_alive(h.value, http10, keep_alive);
                    connection_names |= framing::lists_names(h.value);
                }
            }
            if coded && http10 {
                // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is
                // faulty framing, whatever Content-Length says.
                return Err(H1Error::BadFraming);
            }
            if coded && length.is_some() {
                // Transfer-Encoding wins (RFC 9112 6.3), but a message with
                // both is how responses are split: never reuse the connection.
                keep_alive = false;
                length = None;
            }
            // Copied: a slice of the read buffer would keep it shared for as
            // long as the head lives (a whole stream), and then every later
            // read would need a new buffer. Transfer-Encoding overrides
            // Content-Length (RFC 9112 6.3): the length must not reach the
            // client with a body framed otherwise.
            let lines = resp.headers.iter().map(|h| (h.name.as_bytes(), h.value));
            let mut headers = HeaderLines::copy_from(&self.buf[..n], lines, |name| {
                !(coded && framing::eq_ci(name, b"content-length"))
            });
            headers.set_connection_names(connection_names);
            self.buf.advance(n);
            let head = Head {
                status: code,
                headers,
            };
            self.keep_alive = keep_alive;
            self.body = if code == 204 || code == 304 {
                Body::Done
            } else if chunked {
                Body::Chunked(framing::Decoder::new(MAX_TRAILERS))
            } else if coded {
                // Another final coding: only the close ends the body.
                self.keep_alive = false;
                Body::UntilClose
            } else if let Some(l) = length {
                if l == 0 {
                    Body::Done
                } else {
                    Body::Length(l)
                }
            } else {
                self.keep_alive = false;
                Body::UntilClose
            };
            return Ok(Some(head));
        }
    }

    /// True once the whole body has been read.
    pub fn done(&self) -> bool {
        self.body == Body::Done
    }

    /// The next piece of the body; `Ok(None)` at its end.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>, H1Error> {
        self.read_body_by(None).await
    }

    /// [`Self::read_body`], or `Timeout` if a read has to wait longer than `t`
    /// or past `deadline`. A piece already buffered costs no timer (nor clock).
    pub async fn read_body_within(
        &mut self,
        t: Duration,
        deadline: Instant,
    ) -> Result<Option<Bytes>, H1Error> {
        self.read_body_by(Some((t, deadline))).await
    }

    async fn read_body_by(
        &mut self,
        limit: Option<(Duration, Instant)>,
    ) -> Result<Option<Bytes>, H1Error> {
        loop {
            match self.body {
                Body::Head => return Err(H1Error::BadHead),
                Body::Done => return Ok(None),
                Body::Length(left) => {
                    if self.buf.is_empty() && self.fill(limit).await? == 0 {
                        return Err(H1Error::Closed);
                    }
                    let (piece, left) = framing::take_length(&mut self.buf, left);
                    self.body = if left == 0 {
                        Body::Done
                    } else {
                        Body::Length(left)
                    };
                    return Ok(Some(piece));
                }
                Body::UntilClose => {
                    if self.buf.is_empty() && self.fill(limit).await? == 0 {
                        self.body = Body::Done;
                        return Ok(None);
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                Body::Chunked(mut d) => {
                    let step = d.step(&mut self.buf).map_err(|_| H1Error::BadFraming)?;
                    self.body = if d.is_done() {
                        Body::Done
                    } else {
                        Body::Chunked(d)
                    };
                    match step {
                        framing::Step::Data(piece) => return Ok(Some(piece)),
                        framing::Step::Done => return Ok(None),
                        framing::Step::More => {}
                    }
                    if self.fill(limit).await? == 0 {
                        return Err(H1Error::Closed);
                    }
                }
            }
        }
    }

    /// The connection, ready for another exchange, if it can carry one: the body
    /// was read to its end, nothing extra arrived, and neither side asked to
    /// close. Its read buffer stays with it.
    pub fn into_reusable(mut self) -> Option<Conn> {
        if self.body != Body::Done || !self.keep_alive || !self.buf.is_empty() {
            return None;
        }
        self.body = Body::Head;
        self.read_size = MIN_READ;
        self.answered = false;
        Some(self)
    }

    /// For an idle pooled connection: still open, with nothing unasked-for to
    /// read. One read poll that never waits; a close the runtime has not seen
    /// yet passes, and the first write or read on it fails instead.
    pub fn idle_and_open(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }
}

fn parse_response<'h, 'b>(
    resp: &mut httparse::Response<'h, 'b>,
    buf: &'b [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> httparse::Result<usize> {
    httparse::ParserConfig::default().parse_response_with_uninit_headers(resp, buf, slots)
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
