//! The admin listener's client connections (Pingora's HTTP/1 server loop): a
//! deadline on reading each request head. The AI listener has its own loop
//! with the same deadline built in (`client.rs`).
//!
//! Pingora times out each *read* of a request head (60 s) but not the head as a
//! whole, so a client sending one byte every few seconds (slowloris) holds its
//! connection forever. [`HeadDeadline`] wraps the accepted stream and cuts it when
//! a head is not complete `limits.header_timeout` after its first byte;
//! [`Guarded`] is the HTTP/1 serving loop of Pingora's own `ServerApp` with the
//! wrapper put in and re-armed before every request on a kept-alive connection.
//!
//! The timer starts at a request's first byte, so idle keep-alive time is not
//! counted (Pingora's keep-alive timeout covers that), and a head that arrives in
//! one read — nearly all of them — never creates or touches a timer.

use super::client::TIMEOUT_RESPONSE;
use crate::state::SharedRuntime;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Finds the blank line that ends an HTTP/1 request head across reads; bare LF
/// line ends count too, as httparse accepts them.
#[derive(Debug, Default, Clone, Copy)]
struct HeadEnd {
    /// What the bytes seen so far end with: 0 mid-line, 1 `\n`, 2 `\n\r`.
    tail: u8,
}

impl HeadEnd {
    /// Feeds the next bytes; true once the head is complete.
    fn feed(&mut self, buf: &[u8]) -> bool {
        for i in memchr::memchr_iter(b'\n', buf) {
            let blank = match i {
                0 => self.tail != 0,
                1 => buf[0] == b'\n' || (buf[0] == b'\r' && self.tail == 1),
                _ => buf[i - 1] == b'\n' || (buf[i - 1] == b'\r' && buf[i - 2] == b'\n'),
            };
            if blank {
                return true;
            }
        }
        self.tail = match buf {
            [] => self.tail,
            [.., b'\n'] => 1,
            [.., b'\n', b'\r'] => 2,
            [b'\r'] if self.tail == 1 => 2,
            _ => 0,
        };
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet.
    Idle,
    /// Part of a head read; the deadline runs.
    Head,
    /// Head complete: reads pass straight through.
    Body,
}

/// An accepted stream whose request heads must complete within `limit` of
/// their first byte.
#[derive(Debug)]
pub struct HeadDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    head: HeadEnd,
    /// Made on the first slow head of the connection, then reused.
    timer: Option<Pin<Box<Sleep>>>,
}

impl HeadDeadline {
    pub fn new(inner: Stream, limit: Duration) -> Self {
        HeadDeadline {
            inner,
            limit,
            phase: Phase::Idle,
            head: HeadEnd::default(),
            timer: None,
        }
    }

    /// Expect a new request head (keep-alive reuse).
    fn rearm(&mut self, limit: Duration) {
        self.limit = limit;
        self.phase = Phase::Idle;
        self.head = HeadEnd::default();
    }

    fn start_timer(&mut self) {
        let deadline = Instant::now() + self.limit;
        match self.timer.as_mut() {
            Some(t) => t.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Re-arms a stream this module wrapped (Pingora hands the same one back on
    /// keep-alive); any other stream is wrapped now. `None` only if the type
    /// check and the downcast disagree, which cannot happen: the connection is
    /// then closed rather than served unguarded.
    fn rearmed(stream: Stream, limit: Duration) -> Option<Stream> {
        if !stream.as_any().is::<HeadDeadline>() {
            return Some(Box::new(HeadDeadline::new(stream, limit)));
        }
        let mut s = stream.into_any().downcast::<HeadDeadline>().ok()?;
        s.rearm(limit);
        Some(s)
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.phase == Phase::Body {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.phase == Phase::Head {
            if let Some(t) = this.timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    this.phase = Phase::Body;
                    // Best effort: on a fresh socket this fits the send buffer;
                    // if it does not, the client just sees the close.
                    let _ = Pin::new(&mut this.inner).poll_write(cx, TIMEOUT_RESPONSE);
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request header timeout",
                    )));
                }
            }
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                if this.head.feed(new) {
                    this.phase = Phase::Body;
                } else if this.phase == Phase::Idle {
                    this.phase = Phase::Head;
                    this.start_timer();
                }
            }
        }
        res
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// An HTTP/1 app (the proxy or the admin API) served with [`HeadDeadline`].
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub runtime: SharedRuntime,
}

impl<A> Guarded<A> {
    fn header_timeout(&self) -> Duration {
        self.runtime.load().config.limits.header_timeout
    }
}

#[async_trait]
impl<A> ServerApp for Guarded<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    /// Pingora's HTTP/1 loop (`impl ServerApp for HttpServerApp`) with the
    /// deadline re-armed before each request. h2 (by ALPN, or h2c prior
    /// knowledge when the app allows it) goes to Pingora's own h2 server,
    /// whose frames have limits of their own.
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.app, stream, shutdown).await;
        }
        let h2c =
            stream.get_ssl_digest().is_none() && self.app.server_options().is_some_and(|o| o.h2c);
        if h2c {
            const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
            let mut buf = [0u8; PREFACE.len()];
            // A peek that cannot tell (too few bytes yet) leaves it HTTP/1.
            if stream.try_peek(&mut buf).await.ok()? && buf == PREFACE {
                return ServerApp::process_new(&self.app, stream, shutdown).await;
            }
        }
        let stream = Box::new(HeadDeadline::new(stream, self.header_timeout()));
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        session.set_keepalive_reuses_remaining(
            self.app
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        let mut result = self.app.process_new_http(session, shutdown).await;
        while let Some((stream, settings)) = result.map(|r| r.consume()) {
            let stream = HeadDeadline::rearmed(stream, self.header_timeout())?;
            let mut session = ServerSession::new_http1(stream);
            if let Some(s) = settings {
                s.apply_to_session(&mut session);
            }
            result = self.app.process_new_http(session, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-at-a-time reference for HeadEnd.
    fn reference(bytes: &[u8]) -> Option<usize> {
        let mut tail = 0u8;
        for (i, &b) in bytes.iter().enumerate() {
            tail = match (tail, b) {
                (1 | 2, b'\n') => return Some(i),
                (_, b'\n') => 1,
                (1, b'\r') => 2,
                _ => 0,
            };
        }
        None
    }

    #[test]
    fn head_end_is_found_across_any_split() {
        let cases: [&[u8]; 6] = [
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\nbody",
            b"GET / HTTP/1.1\nhost: x\n\nbody",
            b"\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: x\r\n",
            b"GET / HTTP/1.1\r\nhost: x\r\n\r",
            b"GET / HTTP/1.1\r\nx: \r\r\n\n",
        ];
        for case in cases {
            let want = reference(case).is_some();
            for a in 0..=case.len() {
                for b in a..=case.len() {
                    let mut h = HeadEnd::default();
                    let got = h.feed(&case[..a]) || h.feed(&case[a..b]) || h.feed(&case[b..]);
                    assert_eq!(
                        got,
                        want,
                        "{:?} split at {a},{b}",
                        String::from_utf8_lossy(case)
                    );
                }
            }
        }
    }

    #[test]
    fn timeout_response_is_well_formed() {
        let text = std::str::from_utf8(TIMEOUT_RESPONSE).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
