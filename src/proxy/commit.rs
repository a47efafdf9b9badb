//! After commit: the chosen answer's head goes to the client with what was
//! read of its body, and the rest is pumped through; a stream cut midway
//! ends with an error event, a cut plain body with a cut connection.

use super::ctx::{Done, RequestCtx};
use super::exchange::{timed, Ready};
use super::outcome::record_failure;
use super::respond;
use super::strip::UsageStrip;
use super::usage::{Usage, UsageTail};
use crate::error::error_body;
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
        converted,
    } = ready;
    // The upstream's header passes through, except framing and hop-by-hop
    // headers, which are ours to set: its length when the body passes unchanged;
    // streams are chunked so an in-band error event can still be appended.
    let length = if sse {
        None
    } else {
        resp.headers
            .get("content-length")
            .and_then(crate::framing::parse_length)
    };
    let fin = Finish {
        ok: (200..300).contains(&resp.status),
        usage: converted,
    };
    client.start(resp.status);
    let named = ConnectionNames::of(&resp.headers);
    for (k, v) in resp.headers.iter() {
        let replaced = converted.is_some() && eq_ci(k, b"content-type");
        if !NOT_RETURNED_SET.contains(k) && !named.contains(k) && !replaced {
            client.header_lowercase(k, v);
        }
    }
    if converted.is_some() {
        client.header_lowercase(b"content-type", b"text/event-stream");
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
    let mut strip = (sse && converted.is_none() && asked).then(UsageStrip::default);
    // What was read before commit leaves with the head, in one write.
    let first = match chunks.len() {
        0 => None,
        1 => chunks.into_iter().next(),
        _ => Some(Bytes::from(chunks.concat())),
    };
    if let Some(c) = first {
        if s.done() {
            // The whole answer was read before commit (the common plain case).
            let done = last_piece(client, ctx, up, s, &mut usage, &c, fin, strip.as_mut()).await;
            return done;
        }
        usage.push(&c);
        send(client, strip.as_mut(), &c).await?;
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
                    return last_piece(client, ctx, up, s, &mut usage, &b, fin, strip.as_mut())
                        .await;
                }
                usage.push(&b);
                send(client, strip.as_mut(), &b).await?;
            }
            Some(Ok(None)) => {
                return last_piece(client, ctx, up, s, &mut usage, &[], fin, strip.as_mut()).await
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
    let event = error_body(
        &format!("upstream {}: {reason}", up.name()),
        "upstream_error",
        "stream_interrupted",
    );
    // An event cut short goes out as it came, before the error event.
    let mut frame = strip.map(|mut s| s.rest()).unwrap_or_default();
    frame.reserve(event.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(&event);
    frame.extend_from_slice(b"\n\n");
    client.write_body(&frame, true).await?;
    Ok(Done::Answered)
}

/// Body bytes to the client, through the usage strip when there is one.
async fn send<C: ClientSide>(
    client: &mut C,
    strip: Option<&mut UsageStrip>,
    b: &[u8],
) -> io::Result<()> {
    let out = match strip {
        Some(s) => s.feed(b),
        None => b,
    };
    if !out.is_empty() {
        client.write_body(out, false).await?;
    }
    Ok(())
}

/// How a complete answer ends: a success or not, and its usage when known
/// before the body was read (a plain answer told as a stream).
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
    strip: Option<&mut UsageStrip>,
) -> io::Result<Done> {
    ctx.usage = match fin.usage {
        Some(known) => known,
        None => usage.finish(last),
    };
    // Before the client sees its end, like the pooled connection: its next
    // request meets the settled limit.
    ctx.answer_ended(fin.ok);
    up.keep(s);
    match strip {
        None => client.write_body(last, true).await?,
        Some(strip) => {
            let mut out = strip.feed(last).to_vec();
            out.extend(strip.rest());
            client.write_body(&out, true).await?;
        }
    }
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
