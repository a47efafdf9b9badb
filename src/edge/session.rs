//! The exchange core's client side over Pingora's `Session` (HTTP/1.1 or h2,
//! cleartext or TLS): the adapter that lets the edge listeners answer AI
//! requests with the same core as the fast HTTP/1.1 front end.

use crate::framing::HeaderLines;
use crate::front::{ClientSide, Request};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::io;
use std::time::{Duration, Instant};

/// Hop-by-hop headers: Pingora frames the answer itself, and h2 forbids them.
fn hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The request as the core reads it: target and header lines copied out of
/// Pingora's parsed head (for h2, `:authority` becomes `host`).
pub fn request_of(session: &Session) -> Option<Request> {
    let h = session.req_header();
    let path = h.uri.path();
    let query = h.uri.query();
    let mut raw = Vec::with_capacity(256);
    raw.extend_from_slice(path.as_bytes());
    let path_span = (0u32, raw.len() as u32);
    let query_span = query.map(|q| {
        raw.push(b'?');
        let start = raw.len() as u32;
        raw.extend_from_slice(q.as_bytes());
        (start, raw.len() as u32)
    });
    raw.push(b'\n');
    let mut spans = Vec::with_capacity(h.headers.len() + 1);
    let mut push = |raw: &mut Vec<u8>, n: &[u8], v: &[u8]| {
        let ns = raw.len();
        raw.extend_from_slice(n);
        let ne = raw.len();
        raw.extend_from_slice(b": ");
        let vs = raw.len();
        raw.extend_from_slice(v);
        let ve = raw.len();
        raw.extend_from_slice(b"\r\n");
        spans.push(((ns, ne), (vs, ve)));
    };
    if !h.headers.contains_key(http::header::HOST) {
        if let Some(a) = h.uri.authority() {
            push(&mut raw, b"host", a.as_str().as_bytes());
        }
    }
    for (n, v) in h.headers.iter() {
        push(&mut raw, n.as_str().as_bytes(), v.as_bytes());
    }
    let lines = spans
        .iter()
        .map(|&((ns, ne), (vs, ve))| (&raw[ns..ne], &raw[vs..ve]));
    let head = HeaderLines::copy_from(&raw, lines, |_| true);
    if raw.len() > u32::MAX as usize {
        return None;
    }
    Some(Request::new(
        h.method.clone(),
        path_span,
        query_span,
        h.version == http::Version::HTTP_10,
        head,
    ))
}

pub struct SessionClient<'a> {
    session: &'a mut Session,
    head: Option<Box<ResponseHeader>>,
    head_sent: bool,
    status: u16,
    sent: usize,
    h2: bool,
}

impl<'a> SessionClient<'a> {
    pub fn new(session: &'a mut Session) -> Self {
        let h2 = session.as_downstream().is_http2();
        SessionClient {
            session,
            head: None,
            head_sent: false,
            status: 0,
            sent: 0,
            h2,
        }
    }

    async fn send_head(&mut self) -> io::Result<()> {
        if self.head_sent {
            return Ok(());
        }
        self.head_sent = true;
        let head = match self.head.take() {
            Some(h) => h,
            None => Box::new(ResponseHeader::build_no_case(502, None).map_err(to_io)?),
        };
        self.session
            .write_response_header(head, false)
            .await
            .map_err(to_io)
    }
}

fn to_io(e: Box<pingora::Error>) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e.to_string())
}

impl ClientSide for SessionClient<'_> {
    fn body_length(&self) -> Option<u64> {
        self.session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| crate::framing::parse_length(v.as_bytes()))
    }

    async fn write_continue(&mut self) -> io::Result<()> {
        if self.h2 {
            // h2 clients do not wait for 100 before sending a body.
            return Ok(());
        }
        self.session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(to_io)
    }

    async fn read_body_within(
        &mut self,
        wait: Duration,
        deadline: Instant,
    ) -> io::Result<Option<Bytes>> {
        let left = deadline.saturating_duration_since(Instant::now()).min(wait);
        match tokio::time::timeout(left, self.session.read_request_body()).await {
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => Err(match e.etype() {
                pingora::ErrorType::ConnectionClosed
                | pingora::ErrorType::ReadError
                | pingora::ErrorType::H2Error => {
                    io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string())
                }
                // Bad chunked framing and the like.
                _ => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            }),
        }
    }

    async fn closed(&mut self) {
        // The body has been read: what comes now is the client leaving (h1:
        // EOF; h2: a reset of the stream).
        match self
            .session
            .as_downstream_mut()
            .read_body_or_idle(true)
            .await
        {
            Err(_) => {}
            Ok(_) => std::future::pending().await,
        }
    }

    fn release_buffer(&mut self) {}

    fn close_after(&mut self) {
        self.session.set_keepalive(None);
    }

    fn start(&mut self, status: u16) {
        self.status = status;
        self.head = ResponseHeader::build_no_case(status, Some(8))
            .ok()
            .map(Box::new);
    }

    fn header(&mut self, name: &[u8], value: &[u8]) {
        if hop_by_hop(name) {
            return;
        }
        if let (Some(h), Ok(n), Ok(v)) = (
            self.head.as_mut(),
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            let _ = h.append_header(n, v);
        }
    }

    fn header_lowercase(&mut self, name: &[u8], value: &[u8]) {
        self.header(name, value);
    }

    fn end_head(&mut self, length: Option<u64>) {
        let Some(h) = self.head.as_mut() else { return };
        match length {
            Some(n) => {
                let _ = h.insert_header(http::header::CONTENT_LENGTH, n);
            }
            // h1 needs chunked framing to keep the connection; h2 frames
            // by itself.
            None if !self.h2 => {
                let _ = h.insert_header(http::header::TRANSFER_ENCODING, "chunked");
            }
            None => {}
        }
    }

    async fn write_body(&mut self, piece: &[u8], last: bool) -> io::Result<()> {
        self.send_head().await?;
        if piece.is_empty() && !last {
            return Ok(());
        }
        self.sent += piece.len();
        self.session
            .write_response_body(Some(Bytes::copy_from_slice(piece)), last)
            .await
            .map_err(to_io)
    }

    fn status(&self) -> u16 {
        self.status
    }

    fn bytes_sent(&self) -> usize {
        self.sent
    }
}
