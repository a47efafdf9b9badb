//! After commit: the chosen answer's head goes to the client with what was
//! read of its body, and the rest is pumped through; a stream cut midway
//! ends with an error event, a cut plain body with a cut connection.

use super::ctx::{Done, RequestCtx};
use super::exchange::{timed, Ready, Shape};
use super::outcome::record_failure;
use super::respond;
use super::strip::UsageStrip;
use super::usage::{Usage, UsageTail};
use crate::formats::stream::Translator;
use crate::formats::{self, Dialect};
use crate::framing::eq_ci;
use crate::front::ClientSide;
use crate::headers::{ConnectionNames, NOT_RETURNED_SET};
use crate::upstream::h1::Conn;
use crate::upstream::Upstream;
use bytes::Bytes;
use std::io;
use std::time::Instant;

/// Write the chosen answer to the client and pump the rest of the body through.
pub(super) async fn commit<C: ClientSide>(
    client: &mut C,
    ctx: &mut RequestCtx,
    up: &Upstream,
    ready: Ready,
    deadline: Instant,
) -> io::Result<Done> {
    let Ready {
        up: mut s,
        header: resp,
        chunks,
        sse,
        shape,
    } = ready;
    // The upstream's header passes through, except framing and hop-by-hop
    // headers, which are ours to set: its length when the body passes unchanged
    // (a made body: its own); streams are chunked so an in-band error event
    // can still be appended.
    let (made_type, known_usage) = match &shape {
        Shape::Made {
            content_type,
            usage,
        } => (Some(*content_type), Some(*usage)),
        _ => (None, None),
    };
    let length = if sse {
        None
    } else if made_type.is_some() {
        Some(chunks.iter().map(|c| c.len() as u64).sum())
    } else {
        resp.headers
            .get("content-length")
            .and_then(crate::framing::parse_length)
    };
    let fin = Finish {
        ok: (200..300).contains(&resp.status),
        usage: known_usage,
    };
    client.start(resp.status);
    let named = ConnectionNames::of(&resp.headers);
    for (k, v) in resp.headers.iter() {
        let replaced = made_type.is_some() && eq_ci(k, b"content-type");
        if !NOT_RETURNED_SET.contains(k) && !named.contains(k) && !replaced {
            client.header_lowercase(k, v);
        }
    }
    if let Some(t) = made_type {
        client.header_lowercase(b"content-type", t);
    }
    respond::stamp(client, ctx);
    client.end_head(length);
    drop(resp);
    ctx.ttfb = Some(ctx.started.elapsed());
    let metrics = sse.then(|| ctx.metrics.clone());
    let _stream = metrics.as_ref().map(|m| StreamGauge::new(&m.streams));
    let mut usage = UsageTail::default();
    // llmgate asked for usage the client did not: what that adds is taken out.
    let asked = ctx.strip_usage && up.cfg.stream_usage;
    let mut pipe = match shape {
        Shape::Translated(t) => Pipe::Translate(t),
        Shape::AsIs if sse && asked => Pipe::Strip(UsageStrip::default()),
        Shape::AsIs | Shape::Made { .. } => Pipe::Raw,
    };
    // What was read before commit leaves with the head, in one write.
    let first = match chunks.len() {
        0 => None,
        1 => chunks.into_iter().next(),
        _ => Some(Bytes::from(chunks.concat())),
    };
    if let Some(c) = first {
        if s.done() {
            // The whole answer was read before commit (the common plain case).
            return last_piece(client, ctx, up, s, &mut usage, &c, fin, &mut pipe).await;
        }
        usage.push(&c);
        send(client, &mut pipe, &c).await?;
    }
    let reason = loop {
        // Finish as soon as the body is complete, before the client (which has its
        // whole answer) closes the connection and looks like a disconnect.
        let next = if s.done() {
            Some(Ok(None))
        } else {
            tokio::select! {
                biased;
                r = s.read_body_within(up.cfg.idle_timeout, deadline) => timed(r),
                _ = client.closed() => {
                    ctx.client_gone = true;
                    return Ok(Done::Cut);
                }
            }
        };
        match next {
            Some(Ok(Some(b))) => {
                if s.done() {
                    return last_piece(client, ctx, up, s, &mut usage, &b, fin, &mut pipe).await;
                }
                usage.push(&b);
                send(client, &mut pipe, &b).await?;
            }
            Some(Ok(None)) => {
                return last_piece(client, ctx, up, s, &mut usage, &[], fin, &mut pipe).await
            }
            Some(Err(e)) => {
                break format!("upstream connection broke mid-response ({})", e.as_str())
            }
            None if Instant::now() >= deadline => {
                break "total_timeout reached mid-response".to_string()
            }
            None => break "upstream idle timeout mid-response".to_string(),
        }
    };
    log::warn!("{} {}: {reason}", ctx.request_id, up.name());
    record_failure(&ctx.runtime, up, None);
    ctx.metrics.cut.with_label_values(&[up.name()]).inc();
    ctx.cut = Some(reason.clone());
    if !sse {
        // A cut plain body must look cut: drop the connection, never end it cleanly.
        return Ok(Done::Cut);
    }
    let message = format!("upstream {}: {reason}", up.name());
    let frame = pipe.cut(ctx.dialect, &message);
    if let Pipe::Translate(t) = &pipe {
        ctx.usage = t.usage();
    }
    client.write_body(&frame, true).await?;
    Ok(Done::Answered)
}

/// What the answer's body goes through on its way to the client.
enum Pipe {
    /// Unchanged.
    Raw,
    /// The usage chunk llmgate asked for taken out.
    Strip(UsageStrip),
    /// Translated into the client's dialect.
    Translate(Box<Translator>),
}

impl Pipe {
    fn feed<'a>(&'a mut self, b: &'a [u8]) -> &'a [u8] {
        match self {
            Pipe::Raw => b,
            Pipe::Strip(s) => s.feed(b),
            Pipe::Translate(t) => t.feed(b),
        }
    }

    /// The body's last piece with what is still held (`None`: `b` as it
    /// is, nothing held).
    fn last(&mut self, b: &[u8]) -> Option<Vec<u8>> {
        match self {
            Pipe::Raw => None,
            Pipe::Strip(s) => {
                let mut out = s.feed(b).to_vec();
                out.extend(s.rest());
                Some(out)
            }
            Pipe::Translate(t) => {
                let mut out = t.feed(b).to_vec();
                out.extend_from_slice(t.end());
                Some(out)
            }
        }
    }

    /// The event that ends a cut stream, in the client's dialect; an event
    /// cut short goes out as it came, before it.
    fn cut(&mut self, dialect: Dialect, message: &str) -> Vec<u8> {
        let mut frame = match self {
            Pipe::Translate(t) => return t.cut(message).to_vec(),
            Pipe::Strip(s) => s.rest(),
            Pipe::Raw => Vec::new(),
        };
        formats::error_event(dialect, &mut frame, message, "stream_interrupted");
        frame
    }
}

/// Body bytes to the client, through the pipe.
async fn send<C: ClientSide>(client: &mut C, pipe: &mut Pipe, b: &[u8]) -> io::Result<()> {
    let out = pipe.feed(b);
    if !out.is_empty() {
        client.write_body(out, false).await?;
    }
    Ok(())
}

/// How a complete answer ends: a success or not, and its usage when known
/// before the body was read (a body made here).
#[derive(Clone, Copy)]
pub(super) struct Finish {
    ok: bool,
    usage: Option<Option<Usage>>,
}

/// End a complete answer with its last piece (possibly empty). The upstream
/// connection goes back to the pool before the client can see the end of its
/// answer: the client's next request must find it there.
#[allow(clippy::too_many_arguments)]
async fn last_piece<C: ClientSide>(
    client: &mut C,
    ctx: &mut RequestCtx,
    up: &Upstream,
    s: Conn,
    usage: &mut UsageTail,
    last: &[u8],
    fin: Finish,
    pipe: &mut Pipe,
) -> io::Result<Done> {
    let out = pipe.last(last);
    ctx.usage = match (fin.usage, &*pipe) {
        (Some(known), _) => known,
        (None, Pipe::Translate(t)) => t.usage(),
        (None, _) => usage.finish(last),
    };
    // Before the client sees its end, like the pooled connection: its next
    // request meets the settled limit.
    ctx.answer_ended(fin.ok);
    up.keep(s);
    client
        .write_body(out.as_deref().unwrap_or(last), true)
        .await?;
    Ok(Done::Answered)
}

/// Counts one SSE stream in flight while alive.
pub(super) struct StreamGauge<'a>(&'a prometheus::IntGauge);

impl<'a> StreamGauge<'a> {
    fn new(g: &'a prometheus::IntGauge) -> Self {
        g.inc();
        StreamGauge(g)
    }
}

impl Drop for StreamGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
