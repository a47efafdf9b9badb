//! One attempt with one target: the request as it goes to every upstream
//! (prepared once), its bytes for this target (model and parameter
//! overrides spliced in, or the translated request), the exchange
//! (`upstream/exchange.rs`: connect, send, head), what the head means for
//! policy, and the wait for the first body bytes (for SSE: the first
//! complete `data:` event) that makes an answer ready to commit.

use super::as_stream::{answer_as_sse, MAX_ANSWER};
use super::ctx::RequestCtx;
use super::forward::ClientHeaders;
use super::outcome::{
    body_failure, exchange_failure, retry_after, timed_out, FailKind, Failure, Phase,
};
use super::rewrite::{ParsedBody, CONCAT_LIMIT};
use super::sse::FirstEvent;
use super::usage::Usage;
use crate::formats::stream::Translator;
use crate::formats::{self, Dialect, Format, Wire};
use crate::framing::put_header;
use crate::front::Request;
use crate::params::wants_usage;
use crate::routing::Target;
use crate::upstream::h1::{Conn, H1Error, Head};
use crate::upstream::Upstream;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// An upstream answer ready to commit: headers read, first bytes buffered.
pub(super) struct Ready {
    pub(super) up: Conn,
    pub(super) header: Head,
    pub(super) chunks: Vec<Bytes>,
    pub(super) sse: bool,
    pub(super) shape: Shape,
}

/// What the client gets of the upstream's answer.
pub(super) enum Shape {
    /// The answer as it came.
    AsIs,
    /// A body made here in full from a complete answer (translated, or a
    /// plain answer told as a stream): its own type and length, its usage
    /// known before it is sent.
    Made {
        content_type: &'static [u8],
        usage: Option<Usage>,
    },
    /// A stream translated event by event into the client's dialect.
    Translated(Box<Translator>),
}

impl Ready {
    fn plain(up: Conn, header: Head, chunks: Vec<Bytes>, sse: bool) -> Ready {
        Ready {
            up,
            header,
            chunks,
            sse,
            shape: Shape::AsIs,
        }
    }

    fn made(up: Conn, header: Head, body: Vec<u8>, sse: bool, usage: Option<Usage>) -> Ready {
        let content_type: &'static [u8] = if sse {
            b"text/event-stream"
        } else {
            b"application/json"
        };
        Ready {
            up,
            header,
            chunks: vec![Bytes::from(body)],
            sse,
            shape: Shape::Made {
                content_type,
                usage,
            },
        }
    }
}

/// A translated attempt: the request as written for the target, and what
/// the answer is translated into.
pub(super) struct Translated<'a> {
    pub(super) wire: &'a Wire,
    pub(super) dialect: Dialect,
    pub(super) format: Format,
    /// A chat client asked for the usage chunk.
    pub(super) include_usage: bool,
}

/// The request as it goes to every upstream, prepared once.
pub(super) struct Outgoing<'a> {
    /// Path after `/v1`, with the query string (e.g. `/chat/completions?x=1`).
    pub(super) rest: String,
    /// Forwarded client headers and our `x-request-id`: serialized once,
    /// filtered per upstream only where its config asks for it.
    pub(super) headers: ClientHeaders<'a>,
    pub(super) body: &'a ParsedBody,
}

pub(super) fn outgoing<'a>(
    req: &'a Request,
    ctx: &RequestCtx,
    body: &'a ParsedBody,
) -> Outgoing<'a> {
    let path = req.path();
    let mut rest = path.strip_prefix("/v1").unwrap_or(path).to_string();
    if let Some(q) = req.query() {
        rest.push('?');
        rest.push_str(q);
    }
    Outgoing {
        rest,
        headers: ClientHeaders::new(req, &ctx.request_id),
        body,
    }
}

pub(super) fn budget(t: Duration, deadline: Instant) -> Duration {
    t.min(deadline.saturating_duration_since(Instant::now()))
}

/// A body read with its timeout as `None`, like [`within`].
pub(super) fn timed(r: Result<Option<Bytes>, H1Error>) -> Option<Result<Option<Bytes>, H1Error>> {
    match r {
        Err(H1Error::Timeout) => None,
        r => Some(r),
    }
}

pub(super) async fn try_target(
    up: &Upstream,
    target: &Target,
    out: &Outgoing<'_>,
    tr: Option<&Translated<'_>>,
    deadline: Instant,
) -> Result<Ready, Failure> {
    let cfg = &up.cfg;
    let edited;
    let params = target.params.as_deref();
    let ask = cfg.stream_usage;
    let (path, body) = match tr {
        Some(t) => (
            t.wire.path.as_bytes(),
            [&t.wire.body[..], &[], &[], &[], &[]],
        ),
        None => match params.and_then(|p| out.body.with_params(&target.model_json, p, ask)) {
            Some(b) => {
                edited = b;
                (out.rest.as_bytes(), [&edited[..], &[], &[], &[], &[]])
            }
            None => (
                out.rest.as_bytes(),
                out.body.spliced_for(&target.model_json, ask),
            ),
        },
    };
    let (head, inline) = request_head(up, out, path, &body);
    let rest: &[&[u8]] = if inline { &[] } else { &body };
    let (mut s, header) = up
        .exchange(&head, rest, deadline)
        .await
        .map_err(|e| exchange_failure(e, deadline))?;
    let status = header.status;
    if up.retries_on(status) {
        return Err(Failure::new(
            FailKind::Status(status, retry_after(&header)),
            format!("status {status}"),
        ));
    }
    if !(200..300).contains(&status) {
        // The client's problem (400, 404, 422, ...): passed through as sent,
        // in the client's error shape when the target speaks another.
        if let Some(t) = tr {
            let body = read_whole(&mut s, cfg.response_timeout, deadline).await?;
            let body = formats::error(t.dialect, t.format, status, &body);
            return Ok(Ready::made(s, header, body, false, None));
        }
        return Ok(Ready::plain(s, header, Vec::new(), false));
    }
    let sse = header
        .headers
        .get("content-type")
        .is_some_and(|v| v.starts_with(b"text/event-stream"));
    let wait = if sse {
        cfg.first_token_timeout
    } else {
        cfg.response_timeout
    };
    if let (Some(t), false) = (tr, sse) {
        let answer = read_whole(&mut s, cfg.response_timeout, deadline).await?;
        let (body, usage) =
            formats::answer(t.dialect, t.format, &answer, &target.model).map_err(|e| {
                Failure::new(
                    FailKind::Malformed,
                    format!("cannot translate the answer: {e}"),
                )
            })?;
        return Ok(Ready::made(s, header, body, false, usage));
    }
    if !sse && out.body.stream && target.params.as_ref().is_some_and(|p| p.no_stream) {
        return whole_as_stream(s, header, out.body, cfg.response_timeout, deadline).await;
    }
    let (phase, timeout) = if sse {
        (Phase::FirstToken, "first token timeout")
    } else {
        (Phase::Response, "response timeout")
    };
    let mut scan = FirstEvent::default();
    let mut chunks = Vec::new();
    loop {
        match timed(s.read_body_within(wait, deadline).await) {
            None => return Err(Failure::new(timed_out(phase, deadline), timeout)),
            Some(Err(e)) => {
                return Err(Failure::new(
                    body_failure(e, phase),
                    format!("connection broke before first data ({})", e.as_str()),
                ))
            }
            Some(Ok(None)) if sse => {
                return Err(Failure::new(
                    FailKind::Broken,
                    "stream ended before its first event",
                ))
            }
            Some(Ok(None)) => return Ok(Ready::plain(s, header, chunks, sse)),
            Some(Ok(Some(b))) => {
                let done = !sse || scan.feed(&b);
                if !b.is_empty() {
                    chunks.push(b);
                }
                if done && !chunks.is_empty() {
                    let mut ready = Ready::plain(s, header, chunks, sse);
                    if let Some(t) = tr {
                        ready.shape = Shape::Translated(Box::new(Translator::new(
                            t.dialect,
                            t.format,
                            &target.model,
                            t.include_usage,
                        )));
                    }
                    return Ok(ready);
                }
            }
        }
    }
}

/// A plain answer from an upstream that cannot stream, read whole and
/// told as the stream the client asked for; nothing is committed before it
/// is complete, so any failure still moves on to the next target.
async fn whole_as_stream(
    mut s: Conn,
    header: Head,
    body: &ParsedBody,
    wait: Duration,
    deadline: Instant,
) -> Result<Ready, Failure> {
    let answer = read_whole(&mut s, wait, deadline).await?;
    let usage = super::usage::scan(&answer);
    let sse = answer_as_sse(&answer, wants_usage(&body.body))
        .map_err(|e| Failure::new(FailKind::Malformed, format!("cannot stream it: {e}")))?;
    Ok(Ready::made(s, header, sse, true, usage))
}

/// The whole answer body (up to [`MAX_ANSWER`]), read before commit: any
/// failure still moves on to the next target.
async fn read_whole(s: &mut Conn, wait: Duration, deadline: Instant) -> Result<BytesMut, Failure> {
    let mut answer = BytesMut::new();
    loop {
        match timed(s.read_body_within(wait, deadline).await) {
            None => {
                return Err(Failure::new(
                    timed_out(Phase::Response, deadline),
                    "response timeout",
                ))
            }
            Some(Err(e)) => {
                return Err(Failure::new(
                    body_failure(e, Phase::Response),
                    format!("connection broke before the answer ended ({})", e.as_str()),
                ))
            }
            Some(Ok(Some(b))) if answer.len() + b.len() > MAX_ANSWER => {
                return Err(Failure::new(
                    FailKind::Malformed,
                    "answer too large to translate",
                ))
            }
            Some(Ok(Some(b))) => answer.extend_from_slice(&b),
            Some(Ok(None)) => return Ok(answer),
        }
    }
}

/// The request head for one upstream, and for bodies up to 16 KiB the body
/// behind it (true: it is there): one write, since on loopback or a LAN
/// every extra segment costs both ends a full trip through the TCP stack.
/// Larger bodies are written from the client's buffer, in pieces.
fn request_head(
    up: &Upstream,
    out: &Outgoing<'_>,
    path: &[u8],
    body: &[&[u8]],
) -> (BytesMut, bool) {
    let len: usize = body.iter().map(|p| p.len()).sum();
    let inline = len <= CONCAT_LIMIT;
    let extra = out.headers.len() + if inline { len } else { 0 };
    let mut head = up.head_start(b"POST", path, extra);
    let mut itoa = itoa::Buffer::new();
    put_header(&mut head, b"content-length", itoa.format(len).as_bytes());
    out.headers.write_for(&mut head, &up.sets, &up.allows);
    head.extend_from_slice(b"\r\n");
    if inline {
        for p in body {
            head.extend_from_slice(p);
        }
    }
    (head, inline)
}
