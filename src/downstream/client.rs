//! The client side of HTTP/1.1 for the AI listener: read request heads and
//! bodies off the accepted `TcpStream`, write answers back with the right framing.
//!
//! Why not Pingora's server session: per request it boxed a 14 KB future
//! (`HttpServerApp::process_new_http` is an async-trait method), built two
//! `http::HeaderMap`s and formatted the answer's head through them, and each open
//! stream held that future plus two 4 KiB buffers. Here a request head is parsed
//! once into offsets over the bytes it arrived in (nothing copied), and an answer
//! leaves in one `writev` of its head and body pieces.
//!
//! What Pingora's loop did and this one keeps: keep-alive (60 s idle) and
//! pipelining, the header deadline against slowloris (`limits.header_timeout`
//! from the first byte of a head), `Expect: 100-continue`, chunked request
//! bodies, graceful shutdown (idle connections close when the server stops,
//! after a short quiet period in which a request already on its way is still
//! served; answers then carry `connection: close`), and closing whenever
//! framing is in doubt.

use super::answer::{Answer, Framing};
use super::head::{parse_head, HeadError, Request};
use super::request_body::{Next, ReqBody};
use crate::framing::{self, write_all_vectored};
use crate::timer::Deadline;
use bytes::{Buf, Bytes, BytesMut};
use pingora::prelude::fast_timeout::fast_timeout;
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a kept-alive connection may idle before the next request.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const READ_SIZE: usize = 4 * 1024;
/// Bytes of a head beyond `max_header_bytes` we still wait for: the request
/// line, line ends and the blank line are not counted in that limit.
const HEAD_SLACK: usize = 8 * 1024;
/// How long an idle kept-alive connection is still read from once the server
/// starts to stop (graceful stop or upgrade) before it is closed.
const STOP_QUIET: Duration = Duration::from_secs(1);
/// Bytes of empty lines accepted before a request line (RFC 9112 2.2 asks
/// servers to skip at least one; more is junk).
const MAX_BLANK: usize = 16;
/// A body left unread (an early error answer) is drained up to this much so
/// the connection can be reused; a larger one closes it.
const DRAIN_LIMIT: u64 = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Best-effort answer to a client cut for slowness; the connection closes after it.
pub const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 107\r\nconnection: close\r\n\r\n{\"error\":{\"message\":\"request header not received in time\",\"type\":\"invalid_request_error\",\"code\":\"timeout\"}}";

/// Limits for reading one request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
}

/// One accepted client connection.
pub struct Client {
    stream: TcpStream,
    shutdown: ShutdownWatch,
    /// Resolves when the server starts to stop. Made once per connection and
    /// kept: its waiter registration (a lock inside tokio's watch channel) is
    /// then not repeated for every request.
    stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The keep-alive idle timer, kept from one wait to the next.
    idle: Deadline,
    buf: BytesMut,
    /// Bytes of empty lines skipped before the current request's line.
    blank: usize,
    body: ReqBody,
    /// The answer to the current request (head, framing, what was sent).
    answer: Answer,
    keep_alive: bool,
}

impl Client {
    pub fn new(stream: TcpStream, shutdown: ShutdownWatch) -> Self {
        Client {
            stream,
            shutdown,
            stop: None,
            idle: Deadline::default(),
            buf: BytesMut::new(),
            blank: 0,
            body: ReqBody::Done,
            answer: Answer::default(),
            keep_alive: true,
        }
    }

    /// Wait for and parse the next request head. Idle time before its first byte
    /// is bounded by [`KEEPALIVE_IDLE`] and ends early when the server stops;
    /// from its first byte the whole head must arrive within `header_timeout`.
    pub async fn read_request(&mut self, limits: &HeadLimits) -> Result<Request, HeadError> {
        self.answer.reset();
        self.blank = 0;
        let mut started: Option<Instant> = None;
        loop {
            if !self.buf.is_empty() {
                if let Some(req) = self.parse(limits.max_header_bytes)? {
                    return Ok(req);
                }
                if self.buf.len() > limits.max_header_bytes + HEAD_SLACK {
                    return Err(HeadError::TooLarge);
                }
            }
            self.buf.reserve(READ_SIZE);
            let n = match started {
                // Idle between requests: nothing of the next one has come yet
                // (empty lines count as something, so sending them cannot
                // restart the header deadline).
                None if self.buf.is_empty() && self.blank == 0 => {
                    if *self.shutdown.borrow() {
                        // Stopping already: the quiet period (see below).
                        fast_timeout(STOP_QUIET, self.stream.read_buf(&mut self.buf))
                            .await
                            .map_err(|_| HeadError::Gone)?
                    } else {
                        let stop = self.stop.get_or_insert_with(|| {
                            let mut rx = self.shutdown.clone();
                            Box::pin(async move { stopping(&mut rx).await })
                        });
                        let read = self.idle.within_by(
                            || Instant::now() + KEEPALIVE_IDLE,
                            self.stream.read_buf(&mut self.buf),
                        );
                        let stopped = tokio::select! {
                            biased;
                            r = read => Some(r.ok_or(HeadError::Gone)?),
                            _ = stop.as_mut() => None,
                        };
                        match stopped {
                            Some(n) => n,
                            // The server is stopping, and a request may already be
                            // on its way: a client that sends within the quiet
                            // period is served (with `connection: close`), one
                            // that stays quiet is closed. Closing at once lost the
                            // requests of keep-alive clients caught in the gap.
                            None => fast_timeout(STOP_QUIET, self.stream.read_buf(&mut self.buf))
                                .await
                                .map_err(|_| HeadError::Gone)?,
                        }
                    }
                }
                _ => {
                    let t0 = *started.get_or_insert_with(Instant::now);
                    let left = limits.header_timeout.saturating_sub(t0.elapsed());
                    fast_timeout(left, self.stream.read_buf(&mut self.buf))
                        .await
                        .map_err(|_| HeadError::Timeout)?
                }
            };
            // The deadline starts with the first read after a partial head
            // (microseconds after its first byte), so a head that arrives whole
            // never reads the clock.
            if matches!(n, Ok(0) | Err(_)) {
                return Err(HeadError::Gone);
            }
        }
    }

    /// `Ok(None)`: incomplete.
    fn parse(&mut self, max_header_bytes: usize) -> Result<Option<Request>, HeadError> {
        // Leading empty lines before a request are allowed (RFC 9112 2.2), a few.
        while self.buf.starts_with(b"\r\n") || self.buf.starts_with(b"\n") {
            let n = if self.buf[0] == b'\r' { 2 } else { 1 };
            self.buf.advance(n);
            self.blank += n;
            if self.blank > MAX_BLANK {
                return Err(HeadError::Malformed);
            }
        }
        let Some(parsed) = parse_head(&self.buf, max_header_bytes)? else {
            return Ok(None);
        };
        self.buf.advance(parsed.len);
        // Extensions and trailers are bounded like the head they extend.
        self.body = ReqBody::of(parsed.body, max_header_bytes);
        let req = parsed.request;
        self.keep_alive = parsed.keep_alive;
        self.answer.http10 = req.http10;
        self.answer.head_request = req.method == http::Method::HEAD;
        Ok(Some(req))
    }

    /// The request body's length as its Content-Length gave it, before any of
    /// it is read (`None`: chunked or already read).
    pub fn body_length(&self) -> Option<u64> {
        self.body.length()
    }

    /// The next piece of the request body; `Ok(None)` at its end. Pieces are
    /// split off the read buffer, not copied.
    pub async fn read_body(&mut self) -> io::Result<Option<Bytes>> {
        self.read_body_by(None).await
    }

    /// [`Self::read_body`], or a `TimedOut` error if a read has to wait for the
    /// client longer than `t`, or past `deadline`. A piece already received
    /// costs no timer (nor clock read).
    pub async fn read_body_within(
        &mut self,
        t: Duration,
        deadline: Instant,
    ) -> io::Result<Option<Bytes>> {
        self.read_body_by(Some((t, deadline))).await
    }

    async fn read_body_by(
        &mut self,
        limit: Option<(Duration, Instant)>,
    ) -> io::Result<Option<Bytes>> {
        loop {
            let next = self
                .body
                .next(&mut self.buf)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk"))?;
            match next {
                Next::Piece(b) => return Ok(Some(b)),
                Next::End => return Ok(None),
                Next::More => {}
            }
            self.buf.reserve(READ_SIZE);
            let read = self.stream.read_buf(&mut self.buf);
            let n = match limit {
                None => read.await?,
                Some((t, deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    fast_timeout(t.min(left), read)
                        .await
                        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??
                }
            };
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Answer `Expect: 100-continue` (HTTP/1.1 only; 1.0 clients never wait).
    pub async fn write_continue(&mut self) -> io::Result<()> {
        if self.answer.http10 {
            return Ok(());
        }
        self.stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
    }

    /// Resolves when the client closes its connection (or it breaks); pends
    /// forever if it sends more instead (a pipelined request, kept for later).
    /// Only for use once the request body has been read.
    ///
    /// Waits on the socket's readiness, not on a read: tokio clears readiness
    /// when a read leaves the socket drained, so while the client stays quiet
    /// this costs no system call and no timer.
    pub async fn closed(&mut self) {
        loop {
            if self.stream.readable().await.is_err() {
                return;
            }
            self.buf.reserve(64);
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => return,
                Ok(_) => std::future::pending::<()>().await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Give up the read buffer while nothing is buffered: an open stream then
    /// holds no read buffer on the client side (the close watch reads into a
    /// small one, and the next request gets a new one).
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// Do not reuse the connection after this answer (an unread or unreadable
    /// request body would be taken for the next request).
    pub fn close_after(&mut self) {
        self.keep_alive = false;
    }

    /// Start the answer's head.
    pub fn start(&mut self, status: u16) {
        self.answer.start(status);
    }

    /// One header line (names and values free of CR and LF).
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.answer.header(name, value);
    }

    /// A header whose name goes out in lower case.
    pub fn header_lowercase(&mut self, name: &[u8], value: &[u8]) {
        self.answer.header_lowercase(name, value);
    }

    /// End the head (see [`Answer::end_head`]). While the server shuts down,
    /// every answer is its connection's last.
    pub fn end_head(&mut self, length: Option<u64>) {
        if *self.shutdown.borrow() {
            self.keep_alive = false;
        }
        self.answer.end_head(length, &mut self.keep_alive);
    }

    /// Send a body piece (and the head, if not sent yet) in one write. `last`:
    /// nothing follows, so a chunked body's end goes with it.
    pub async fn write_body(&mut self, piece: &[u8], last: bool) -> io::Result<()> {
        let frame = framing::FrameHead::new(piece.len());
        let mut slices = [IoSlice::new(&[]); 5];
        let k = self.answer.slices(piece, last, &frame, &mut slices);
        write_all_vectored(&mut self.stream, &mut slices[..k]).await
    }

    /// Status of the answer begun for this request (0: none).
    pub fn status(&self) -> u16 {
        self.answer.status
    }

    /// Body bytes sent to the client for this request.
    pub fn bytes_sent(&self) -> usize {
        self.answer.bytes_sent
    }

    /// Whether the connection can carry another request: the answer was
    /// completed with its framing and nothing forbids reuse. An unread request
    /// body is drained first (bounded), so the next head is found where it starts.
    pub async fn reusable(&mut self) -> bool {
        if !self.answer.finished || !self.keep_alive || self.answer.framing == Framing::Close {
            return false;
        }
        if self.body == ReqBody::Done {
            return true;
        }
        if matches!(self.body, ReqBody::Length(l) if l > DRAIN_LIMIT) {
            return false;
        }
        let drain = async {
            let mut total = 0u64;
            while let Some(b) = self.read_body().await? {
                total += b.len() as u64;
                if total > DRAIN_LIMIT {
                    return Err(io::ErrorKind::InvalidData.into());
                }
            }
            Ok::<_, io::Error>(())
        };
        matches!(fast_timeout(DRAIN_TIME, drain).await, Ok(Ok(())))
    }

    /// Write raw bytes (a canned answer) and give up the connection.
    pub async fn write_raw_and_close(mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }
}

/// Resolves once the server begins to shut down.
async fn stopping(shutdown: &mut ShutdownWatch) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            // No sender: no shutdown will ever be signalled.
            std::future::pending::<()>().await;
        }
    }
}
