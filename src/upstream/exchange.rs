//! One request to an upstream, up to its answer's head: a pooled connection
//! or a new one (within `connect_timeout`), the request written, the head
//! read (within `response_timeout`), never past the request's deadline. The
//! caller builds the request and decides what a failure means; this is the
//! only place that connects, and the place a second upstream protocol
//! (HTTP/2 to providers) would go behind the same call.

use super::h1::{Conn, H1Error, Head};
use super::io::ConnectError;
use super::Upstream;
use pingora::prelude::fast_timeout::fast_timeout;
use std::time::Instant;

/// Why an exchange got no answer head. Names and fixed words only: safe for
/// logs and for the client's all-failed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// `connect_timeout` (or the deadline) ran out connecting.
    ConnectTimeout,
    /// No TCP connection (Pingora's error type name).
    Connect(String),
    /// TCP connected, TLS did not (Pingora's error type name).
    Tls(String),
    /// The request did not get through (the write failed, or the connection
    /// closed with nothing of an answer read): the upstream never took it.
    Unanswered(String),
    /// Reading the head failed after the upstream took the request.
    Head(H1Error),
    /// `response_timeout` (or the deadline) ran out waiting for the head.
    ResponseTimeout,
}

impl Upstream {
    /// Send `head` and then `body` (pieces written in order, possibly none)
    /// and read the answer's head.
    ///
    /// A pooled connection the upstream closed meanwhile fails on first use,
    /// before any answer: not the upstream's fault, so the request goes once
    /// more, on a new connection (RFC 9112 9.3.1). Anything else fails the
    /// exchange: an upstream that answered (even with garbage) is never sent
    /// the request twice.
    pub async fn exchange(
        &self,
        head: &[u8],
        body: &[&[u8]],
        deadline: Instant,
    ) -> Result<(Conn, Head), ExchangeError> {
        let mut fresh = false;
        loop {
            let pooled = if fresh { None } else { self.pooled() };
            let (conn, reused) = match pooled {
                Some(c) => (c, true),
                None => (self.connect(deadline).await?, false),
            };
            match self.send(conn, head, body, deadline).await {
                Err(ExchangeError::Unanswered(_)) if reused => fresh = true,
                r => return r,
            }
        }
    }

    /// A new connection within `connect_timeout`.
    async fn connect(&self, deadline: Instant) -> Result<Conn, ExchangeError> {
        let wait = self
            .cfg
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        // Pingora's timer wheel (10 ms resolution, one clock thread) rather
        // than tokio's: a tokio timer that becomes the earliest one wakes the
        // runtime's driver through its eventfd, two extra syscalls per request.
        match fast_timeout(wait, self.open()).await {
            Err(_) | Ok(Err(ConnectError::Timeout)) => Err(ExchangeError::ConnectTimeout),
            Ok(Err(ConnectError::Tls(kind))) => Err(ExchangeError::Tls(kind)),
            Ok(Err(ConnectError::Failed(kind))) => Err(ExchangeError::Connect(kind)),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// Write the request, read the head. One timer for both (the write
    /// rarely waits), the one the connection keeps: armed anew only when it
    /// fires before this deadline.
    async fn send(
        &self,
        mut conn: Conn,
        head: &[u8],
        body: &[&[u8]],
        deadline: Instant,
    ) -> Result<(Conn, Head), ExchangeError> {
        let until = (Instant::now() + self.cfg.response_timeout).min(deadline);
        let mut timer = std::mem::take(&mut conn.timer);
        let exchange = async {
            conn.send(head, body).await.map_err(|e| {
                ExchangeError::Unanswered(format!(
                    "connection broke sending request ({})",
                    e.kind()
                ))
            })?;
            conn.read_head().await.map_err(|e| match e {
                H1Error::Closed | H1Error::Io if !conn.answered() => ExchangeError::Unanswered(
                    format!("connection closed before response ({})", e.as_str()),
                ),
                e => ExchangeError::Head(e),
            })
        };
        let result = timer.within(until, exchange).await;
        conn.timer = timer;
        match result {
            None => Err(ExchangeError::ResponseTimeout),
            Some(Err(e)) => Err(e),
            Some(Ok(h)) => Ok((conn, h)),
        }
    }
}
