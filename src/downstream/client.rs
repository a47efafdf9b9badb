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
//! bodies, graceful shutdown (idle connections close when the server stops;
//! answers then carry `connection: close`), and closing whenever framing is in
//! doubt.

use crate::framing::{self, parse_length, write_all_vectored, Decoder, HeaderLines, Step};
use crate::timer::Deadline;
use bytes::{Buf, Bytes, BytesMut};
use pingora::prelude::fast_timeout::fast_timeout;
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a kept-alive connection may idle before the next request.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const MAX_HEADERS: usize = 256;
const READ_SIZE: usize = 4 * 1024;
/// Bytes of a head beyond `max_header_bytes` we still wait for: the request
/// line, line ends and the blank line are not counted in that limit.
const HEAD_SLACK: usize = 8 * 1024;
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

/// Why no request could be read; the connection is answered (except `Gone`)
/// and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Closed, reset, idle too long, or the server is stopping: nothing to answer.
    Gone,
    /// The head did not complete within the header deadline (408).
    Timeout,
    /// Larger than `max_header_bytes`, or too many header lines (431).
    TooLarge,
    /// Not an HTTP/1.x request head, or too many empty lines before it (400).
    Malformed,
    /// A request target other than origin form (or absolute form with an
    /// http/https scheme), bytes outside visible ASCII, a broken
    /// percent-escape, or a dot-segment in the path (400).
    BadTarget,
    /// An HTTP/1.1 request without exactly one Host header, or a Host (or an
    /// absolute-form authority) that is not a valid `host[:port]` (400).
    BadHost,
    /// Content-Length and Transfer-Encoding together, several lengths, or a
    /// coding we cannot frame (400): what request smuggling relies on.
    Framing,
}

type Span = (u32, u32);

/// One parsed request head. The target's parts are offsets into the head.
#[derive(Debug)]
pub struct Request {
    pub method: http::Method,
    path: Span,
    query: Option<Span>,
    pub http10: bool,
    head: HeaderLines,
}

impl Request {
    fn text(&self, s: Span) -> &str {
        // Request targets are checked by httparse to be visible ASCII.
        framing::text(&self.head.raw()[s.0 as usize..s.1 as usize]).unwrap_or("")
    }

    /// The path without the query (`/v1/chat/completions`).
    pub fn path(&self) -> &str {
        match self.text(self.path) {
            "" => "/",
            p => p,
        }
    }

    pub fn query(&self) -> Option<&str> {
        self.query.map(|q| self.text(q))
    }

    /// All header lines, in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.head.iter()
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.get(name)
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(framing::text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqBody {
    Length(u64),
    Chunked(Decoder),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length,
    Chunked,
    /// HTTP/1.0 client and no length: the close ends the body.
    Close,
    /// HEAD, 204, 304: a head only.
    NoBody,
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
    /// The answer's head, built until the first write sends it.
    head: BytesMut,
    head_sent: bool,
    framing: Framing,
    finished: bool,
    status: u16,
    keep_alive: bool,
    http10: bool,
    head_request: bool,
    bytes_sent: usize,
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
            head: BytesMut::new(),
            head_sent: false,
            framing: Framing::NoBody,
            finished: true,
            status: 0,
            keep_alive: true,
            http10: false,
            head_request: false,
            bytes_sent: 0,
        }
    }

    /// Wait for and parse the next request head. Idle time before its first byte
    /// is bounded by [`KEEPALIVE_IDLE`] and ends early when the server stops;
    /// from its first byte the whole head must arrive within `header_timeout`.
    pub async fn read_request(&mut self, limits: &HeadLimits) -> Result<Request, HeadError> {
        self.status = 0;
        self.head_sent = false;
        self.finished = false;
        self.bytes_sent = 0;
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
                        return Err(HeadError::Gone);
                    }
                    let stop = self.stop.get_or_insert_with(|| {
                        let mut rx = self.shutdown.clone();
                        Box::pin(async move { stopping(&mut rx).await })
                    });
                    let read = self.idle.within_by(
                        || Instant::now() + KEEPALIVE_IDLE,
                        self.stream.read_buf(&mut self.buf),
                    );
                    tokio::select! {
                        biased;
                        r = read => r.ok_or(HeadError::Gone)?,
                        _ = stop.as_mut() => return Err(HeadError::Gone),
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
        let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let n = match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, &self.buf, &mut slots)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        };
        let base = self.buf.as_ptr() as usize;
        let span = |s: &[u8]| -> Span {
            let at = s.as_ptr() as usize - base;
            (at as u32, (at + s.len()) as u32)
        };
        let method = req.method.unwrap_or("");
        let method =
            http::Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed)?;
        let target = req.path.unwrap_or("");
        let (path_at, authority) = target_parts(target)?;
        let (tspan_at, _) = span(target.as_bytes());
        let rel = &target[path_at..];
        let (p, q) = match rel.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rel, None),
        };
        if !clean_path(p.as_bytes()) {
            return Err(HeadError::BadTarget);
        }
        let p_at = tspan_at + path_at as u32;
        let path = if p.is_empty() {
            // `http://host` alone: the root.
            (0, 0)
        } else {
            (p_at, p_at + p.len() as u32)
        };
        let query = q.map(|q| {
            let at = p_at + p.len() as u32 + 1;
            (at, at + q.len() as u32)
        });
        let http10 = req.version == Some(0);
        let mut size = target.len();
        let mut lengths = 0usize;
        let mut length: Option<u64> = None;
        let mut codings = 0usize;
        let mut chunked = false;
        let mut hosts = 0usize;
        let mut host_ok = true;
        let mut keep_alive = !http10;
        for h in req.headers.iter() {
            size += h.name.len() + h.value.len() + 4;
            let name = h.name.as_bytes();
            if framing::eq_ci(name, b"content-length") {
                lengths += 1;
                length = parse_length(h.value);
                if length.is_none() {
                    return Err(HeadError::Framing);
                }
            } else if framing::eq_ci(name, b"transfer-encoding") {
                // Only `chunked` alone: any other coding would reach the
                // upstream as if it were the body.
                codings += 1;
                chunked = framing::eq_ci(h.value.trim_ascii(), b"chunked");
            } else if framing::eq_ci(name, b"host") {
                hosts += 1;
                host_ok &= valid_host(h.value);
            } else if framing::eq_ci(name, b"connection") {
                keep_alive = framing::keep_alive(h.value, http10, keep_alive);
            }
        }
        // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host; none may
        // have two or an invalid one. An absolute-form authority must be a
        // valid host as well (it then stands for the Host).
        if hosts > 1 || (hosts == 0 && !http10) || !host_ok {
            return Err(HeadError::BadHost);
        }
        if authority.is_some_and(|a| a.is_empty() || !valid_host(a.as_bytes())) {
            return Err(HeadError::BadHost);
        }
        if size > max_header_bytes {
            return Err(HeadError::TooLarge);
        }
        let coded = codings > 0;
        if lengths > 1 || (lengths == 1 && coded) || (coded && (codings > 1 || !chunked || http10))
        {
            return Err(HeadError::Framing);
        }
        // Copied out (a few hundred bytes): a slice would keep the whole read
        // buffer alive for as long as the request, i.e. for a whole stream.
        let lines = req.headers.iter().map(|h| (h.name.as_bytes(), h.value));
        let head = HeaderLines::copy_from(&self.buf[..n], lines, |_| true);
        self.buf.advance(n);
        self.body = if chunked {
            // Extensions and trailers are bounded like the head they extend.
            ReqBody::Chunked(Decoder::new(max_header_bytes))
        } else {
            match length {
                Some(l) if l > 0 => ReqBody::Length(l),
                _ => ReqBody::Done,
            }
        };
        self.keep_alive = keep_alive;
        self.http10 = http10;
        self.head_request = method == http::Method::HEAD;
        Ok(Some(Request {
            method,
            path,
            query,
            http10,
            head,
        }))
    }

    /// The request body's length as its Content-Length gave it, before any of
    /// it is read (`None`: chunked or already read).
    pub fn body_length(&self) -> Option<u64> {
        match self.body {
            ReqBody::Length(l) => Some(l),
            _ => None,
        }
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
            match self.body {
                ReqBody::Done => return Ok(None),
                ReqBody::Length(left) => {
                    if !self.buf.is_empty() {
                        let (piece, left) = framing::take_length(&mut self.buf, left);
                        self.body = if left == 0 {
                            ReqBody::Done
                        } else {
                            ReqBody::Length(left)
                        };
                        return Ok(Some(piece));
                    }
                }
                ReqBody::Chunked(mut d) => {
                    let step = d
                        .step(&mut self.buf)
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk"))?;
                    self.body = if d.is_done() {
                        ReqBody::Done
                    } else {
                        ReqBody::Chunked(d)
                    };
                    match step {
                        Step::Data(b) => return Ok(Some(b)),
                        Step::Done => return Ok(None),
                        Step::More => {}
                    }
                }
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
        if self.http10 {
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
        self.status = status;
        self.head.clear();
        self.head.reserve(256);
        self.head.extend_from_slice(if self.http10 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        let mut n = itoa::Buffer::new();
        self.head.extend_from_slice(n.format(status).as_bytes());
        self.head.extend_from_slice(b" ");
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        self.head.extend_from_slice(reason.as_bytes());
        self.head.extend_from_slice(b"\r\n");
    }

    /// One header line. Callers pass names and values free of CR and LF (our
    /// constants, or values an HTTP parser accepted).
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        crate::upstream::h1::put_header(&mut self.head, name, value);
    }

    /// [`Self::header`] with the name in lower case, as HTTP/2 and most
    /// proxies pass names on (an upstream's own spelling is not kept).
    pub fn header_lowercase(&mut self, name: &[u8], value: &[u8]) {
        let at = self.head.len();
        self.header(name, value);
        self.head[at..at + name.len()].make_ascii_lowercase();
    }

    /// End the head: `length` for a body of known size, else chunked (or, for
    /// an HTTP/1.0 client, ended by closing). While the server shuts down, every
    /// answer is its connection's last.
    pub fn end_head(&mut self, length: Option<u64>) {
        if *self.shutdown.borrow() {
            self.keep_alive = false;
        }
        let bodiless = matches!(self.status, 204 | 304) || (100..200).contains(&self.status);
        self.framing = match length {
            _ if bodiless => Framing::NoBody,
            Some(l) => {
                let mut n = itoa::Buffer::new();
                self.header(b"content-length", n.format(l).as_bytes());
                Framing::Length
            }
            None if self.http10 => {
                self.keep_alive = false;
                Framing::Close
            }
            None => {
                self.header(b"transfer-encoding", b"chunked");
                Framing::Chunked
            }
        };
        if self.head_request {
            self.framing = Framing::NoBody;
        }
        if !self.keep_alive {
            self.header(b"connection", b"close");
        } else if self.http10 {
            self.header(b"connection", b"keep-alive");
        }
        self.head.extend_from_slice(b"\r\n");
    }

    /// Send a body piece (and the head, if not sent yet) in one write. `last`:
    /// nothing follows, so a chunked body's end goes with it.
    pub async fn write_body(&mut self, piece: &[u8], last: bool) -> io::Result<()> {
        let frame = framing::FrameHead::new(piece.len());
        let mut slices = [IoSlice::new(&[]); 5];
        let mut k = 0;
        if !self.head_sent {
            slices[k] = IoSlice::new(&self.head);
            k += 1;
        }
        let chunked = self.framing == Framing::Chunked;
        if self.framing != Framing::NoBody {
            if !piece.is_empty() {
                if chunked {
                    slices[k] = IoSlice::new(frame.as_bytes());
                    k += 1;
                }
                slices[k] = IoSlice::new(piece);
                k += 1;
                self.bytes_sent += piece.len();
                if chunked {
                    slices[k] = IoSlice::new(b"\r\n");
                    k += 1;
                }
            }
            if last && chunked {
                slices[k] = IoSlice::new(framing::LAST_CHUNK);
                k += 1;
            }
        }
        let r = write_all_vectored(&mut self.stream, &mut slices[..k]).await;
        self.head_sent = true;
        if last {
            self.finished = true;
        }
        r
    }

    /// Status of the answer begun for this request (0: none).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Body bytes sent to the client for this request.
    pub fn bytes_sent(&self) -> usize {
        self.bytes_sent
    }

    /// Whether the connection can carry another request: the answer was
    /// completed with its framing and nothing forbids reuse. An unread request
    /// body is drained first (bounded), so the next head is found where it starts.
    pub async fn reusable(&mut self) -> bool {
        if !self.finished || !self.keep_alive || self.framing == Framing::Close {
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

/// Where the path of request target `t` starts, and the authority if `t` is
/// in absolute form (RFC 9112 3.2): origin form `/p?q`, or `http(s)://a/p?q`
/// as proxies send it. Every byte must be visible ASCII (httparse also lets
/// bytes above 0x7f through) and there is no fragment.
fn target_parts(t: &str) -> Result<(usize, Option<&str>), HeadError> {
    if !t.bytes().all(|c| (0x21..0x7f).contains(&c) && c != b'#') {
        return Err(HeadError::BadTarget);
    }
    if t.starts_with('/') {
        return Ok((0, None));
    }
    let (scheme, rest) = t.split_once("://").ok_or(HeadError::BadTarget)?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(HeadError::BadTarget);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Ok((scheme.len() + 3 + end, Some(&rest[..end])))
}

/// A path with valid percent-escapes and no dot-segment (`.`, `..`), also
/// when written with `%2e` or next to an encoded `/` or a `\`: the path
/// goes after an upstream's `base_url` path and must never climb out of it,
/// however the upstream decodes and normalises it.
fn clean_path(p: &[u8]) -> bool {
    // The common path has none of the three: one pass, no decoding.
    if !p.iter().any(|&c| c == b'.' || c == b'%' || c == b'\\') {
        return true;
    }
    let hex = |c: u8| (c as char).to_digit(16);
    let (mut len, mut dots) = (0usize, 0usize);
    let mut i = 0;
    loop {
        let c = match p.get(i) {
            None => None,
            Some(b'%') => {
                let (Some(h), Some(l)) = (
                    p.get(i + 1).and_then(|c| hex(*c)),
                    p.get(i + 2).and_then(|c| hex(*c)),
                ) else {
                    return false;
                };
                i += 2;
                Some((h * 16 + l) as u8)
            }
            Some(&c) => Some(c),
        };
        match c {
            None | Some(b'/' | b'\\') => {
                if len > 0 && len == dots && dots <= 2 {
                    return false;
                }
                if c.is_none() {
                    return true;
                }
                (len, dots) = (0, 0);
            }
            Some(c) => {
                len += 1;
                dots += usize::from(c == b'.');
            }
        }
        i += 1;
    }
}

/// `uri-host [":" port]` (RFC 9110 7.2): a reg-name (unreserved,
/// sub-delims, percent-escapes), an IPv4 address, or an IP literal in
/// brackets; the port digits only. An empty value is valid (RFC 9112 3.2).
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&c| c == b']') else {
            return false;
        };
        let literal = &v[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..0], port),
            _ => return false,
        }
    } else {
        match v.iter().position(|&c| c == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &v[..0]),
        }
    };
    host.iter()
        .all(|&c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&c))
        && port.iter().all(u8::is_ascii_digit)
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
