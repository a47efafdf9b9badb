//! The seam between the exchange core (`proxy/`) and the client-side
//! transports that drive it: the request head the core reads, and
//! [`ClientSide`], what it needs from the connection — body reads, noticing
//! the client left, sending the answer's head and body. The HTTP/1.1 front end
//! (`downstream::Client`) implements it; the core is generic over it
//! (monomorphised: the fast path pays nothing for the seam), so another front
//! end is an adapter, not a copy of the AI logic.

use crate::framing::{self, HeaderLines};
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

/// What the exchange core needs from the client side of one request.
pub trait ClientSide: Send {
    /// The declared body length, when the framing says it.
    fn body_length(&self) -> Option<u64>;
    /// Answer `100 Continue` (the client sent `Expect: 100-continue`).
    fn write_continue(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// The next piece of the request body (`None`: its end), waiting at most
    /// `wait` and never past `deadline` (`TimedOut`); bad framing is
    /// `InvalidData`.
    fn read_body_within(
        &mut self,
        wait: Duration,
        deadline: Instant,
    ) -> impl Future<Output = io::Result<Option<bytes::Bytes>>> + Send;
    /// Resolves when the client has gone (closed or reset); pending while it
    /// is there.
    fn closed(&mut self) -> impl Future<Output = ()> + Send;
    /// The request body is no longer needed: memory held for it may go.
    fn release_buffer(&mut self);
    /// The connection ends after this answer.
    fn close_after(&mut self);
    /// Begin the answer's head.
    fn start(&mut self, status: u16);
    fn header(&mut self, name: &[u8], value: &[u8]);
    /// A header whose name is already lowercase.
    fn header_lowercase(&mut self, name: &[u8], value: &[u8]);
    /// End the head: `Some(n)`, a body of `n` bytes; `None`, a body of
    /// unknown length (chunked or its transport's equivalent).
    fn end_head(&mut self, length: Option<u64>);
    /// Send a piece of the body (with the head, if not sent yet); `last`
    /// ends the answer.
    fn write_body(
        &mut self,
        piece: &[u8],
        last: bool,
    ) -> impl Future<Output = io::Result<()>> + Send;
    /// The status of the answer sent (0: none).
    fn status(&self) -> u16;
    /// Body bytes sent so far.
    fn bytes_sent(&self) -> usize;
}

/// A byte range `[start, end)` of the head.
pub type Span = (u32, u32);

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
    /// A head in `head`'s bytes; `path` and `query` are offsets into them.
    pub fn new(
        method: http::Method,
        path: Span,
        query: Option<Span>,
        http10: bool,
        head: HeaderLines,
    ) -> Request {
        Request {
            method,
            path,
            query,
            http10,
            head,
        }
    }

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

    /// The header lines themselves (for lookups by name).
    pub fn lines(&self) -> &HeaderLines {
        &self.head
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.get(name)
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(framing::text)
    }
}
