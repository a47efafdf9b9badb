//! The attempt loop and the commit rule (design.md section 3).
//!
//! Each attempt picks the next target, sends the already-read body with the
//! target's model spliced in, and waits for the upstream's first body bytes (for
//! SSE: its first complete `data:` event). Only then is anything written to the
//! client ("commit"); every earlier failure moves on to the next target unseen.

use super::as_stream::{answer_as_sse, MAX_ANSWER};
use super::ctx::{AttemptRecord, Outcome, RequestCtx};
use super::forward::ClientHeaders;
use super::handler::Done;
use super::respond;
use super::rewrite::{ParsedBody, CONCAT_LIMIT};
use super::sse::FirstEvent;
use super::usage::{Usage, UsageTail};
use crate::downstream::{Client, Request};
use crate::error::{error_body, GatewayError};
use crate::framing::eq_ci;
use crate::headers::{ConnectionNames, NOT_RETURNED_SET};
use crate::params::wants_usage;
use crate::routing::{key_hash, ModelRoute, Target, TriedSet};
use crate::state::Runtime;
use crate::upstream::circuit::{ms_at, now_ms};
use crate::upstream::h1::{put_header, Conn, H1Error, Head};
use crate::upstream::io::ConnectError;
use crate::upstream::Upstream;
use bytes::{Bytes, BytesMut};
use pingora::prelude::fast_timeout::fast_timeout;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant, SystemTime};

/// What went wrong with an attempt, as far as policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// No connection could be opened.
    Connect,
    /// A phase's timeout (connect, response, first token) or the total one.
    Timeout,
    /// A status in the upstream's `retry_on`, with its Retry-After.
    Status(u16, Option<Duration>),
    /// The connection broke or closed after the upstream may have taken the
    /// request (part of an answer had arrived, or it was a new connection).
    Broken,
    /// The answer was not valid HTTP (bad status line or status, broken
    /// framing, an unasked-for 101): the upstream took the request.
    Malformed,
    /// A pooled connection failed before any byte of an answer arrived (the
    /// write failed, or it closed with nothing read): the upstream never took
    /// the request, which may go again on a fresh connection (RFC 9112 9.3.1).
    Unanswered,
}

/// Why an attempt failed before commit.
struct Failure {
    reason: String,
    kind: FailKind,
}

impl Failure {
    fn new(kind: FailKind, reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            kind,
        }
    }

    /// Bounded label for metrics.
    fn label(&self) -> &'static str {
        match self.kind {
            FailKind::Timeout => "timeout",
            FailKind::Connect => "connect_error",
            FailKind::Status(429, _) => "status_429",
            FailKind::Status(s, _) if s >= 500 => "status_5xx",
            FailKind::Status(..) => "status_4xx",
            FailKind::Broken | FailKind::Unanswered => "closed",
            FailKind::Malformed => "malformed",
        }
    }

    /// The upstream's Retry-After, if it sent one with a retryable status.
    fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            FailKind::Status(_, ra) => ra,
            FailKind::Connect
            | FailKind::Timeout
            | FailKind::Broken
            | FailKind::Malformed
            | FailKind::Unanswered => None,
        }
    }
}

/// An upstream answer ready to commit: headers read, first bytes buffered.
struct Ready {
    up: Conn,
    header: Head,
    chunks: Vec<Bytes>,
    sse: bool,
    /// A plain answer turned into a stream (`whole_as_stream`), with the
    /// usage it reported: the stream itself may not carry it.
    converted: Option<Option<Usage>>,
}

/// The request as it goes to every upstream, prepared once.
struct Outgoing<'a> {
    /// Path after `/v1`, with the query string (e.g. `/chat/completions?x=1`).
    rest: String,
    /// Forwarded client headers and our `x-request-id`: serialized once,
    /// filtered per upstream only where its config asks for it.
    headers: ClientHeaders<'a>,
    body: &'a ParsedBody,
}

pub async fn run(
    client: &mut Client,
    req: &Request,
    ctx: &mut RequestCtx,
    route: &ModelRoute,
    body: ParsedBody,
) -> io::Result<Done> {
    let rt = ctx.runtime.clone();
    let deadline = ctx.started + rt.config.retry.total_timeout;
    // Every target once, plus each one's same-target retries.
    let possible: usize = route
        .targets
        .iter()
        .map(|t| 1 + rt.upstreams[t.upstream].cfg.retries as usize)
        .sum();
    let max_attempts = rt
        .config
        .retry
        .max_attempts
        .map_or(usize::MAX, |m| m as usize)
        .min(possible);
    let session = session_key(&rt, req, ctx);
    let out = outgoing(req, ctx, &body);
    let mut tried = TriedSet::default();
    // Disabled and drained upstreams get no requests, not even fail-open ones.
    for (i, t) in route.targets.iter().enumerate() {
        if rt.upstreams[t.upstream].out_of_rotation().is_some() {
            tried.insert(i);
        }
    }
    let mut rng = fastrand::Rng::new();
    let mut all_429 = true;
    let mut last_timeout = false;
    let mut soonest_retry: Option<Duration> = None;
    let mut failed_tier: Option<u32> = None;
    // The same target once more (`retries`), and which retry that is.
    let mut again: Option<(usize, u32)> = None;

    while ctx.attempts.len() < max_attempts {
        // One clock read for the choice, the deadline check and the breaker.
        let at = Instant::now();
        let mut now = ms_at(at);
        let (ti, retry) = match again.take() {
            Some(x) => x,
            None => {
                let usable = |t: &Target| rt.upstreams[t.upstream].health.usable(now);
                let pick = match session {
                    Some(s) => route.next_sticky(tried, usable, s),
                    None => route.next(tried, usable, &mut rng),
                };
                let Some(ti) = pick else {
                    break;
                };
                tried.insert(ti);
                (ti, 0)
            }
        };
        let target = &route.targets[ti];
        let up = &rt.upstreams[target.upstream];
        if at >= deadline {
            last_timeout = true;
            all_429 = false;
            break;
        }
        if retry > 0 {
            // Exponential from `retry.backoff` (100 ms when unset), equal jitter.
            let base = match rt.config.retry.backoff {
                b if b.is_zero() => Duration::from_millis(100),
                b => b,
            };
            let b = base.saturating_mul(1 << (retry - 1).min(10));
            let pause = b / 2 + b.mul_f64(rng.f64() / 2.0);
            tokio::time::sleep(budget(pause, deadline)).await;
            now = now_ms();
        } else if failed_tier == Some(target.priority) && !rt.config.retry.backoff.is_zero() {
            // Equal jitter: spread retries out, yet always pause at least half.
            let b = rt.config.retry.backoff;
            let pause = b / 2 + b.mul_f64(rng.f64() / 2.0);
            tokio::time::sleep(budget(pause, deadline)).await;
            now = now_ms();
        }
        let breaker = &up.health.breaker;
        breaker.begin(now);
        let _in_flight = up.health.attempt();
        // Not boxed (nor `commit` below): since connecting no longer goes through
        // Pingora's connector, the attempt future is ~1.6 KB and the commit one
        // ~1.3 KB; boxing them cost an allocation and a copy each per request
        // (~1k instructions of 28.8k) to keep an idle keep-alive connection's
        // task at 1.9 KB instead of 3.3 KB.
        let result = tokio::select! {
            biased;
            r = try_target(up, target, &out, deadline) => r,
            _ = client.closed() => {
                breaker.abandon();
                ctx.metrics.attempts.with_label_values(&[up.name(), "client_gone"]).inc();
                ctx.client_gone = true;
                ctx.attempts.push(AttemptRecord { upstream: target.upstream, outcome: Outcome::Failed("client disconnected".into()) });
                return Ok(Done::Cut);
            }
        };
        match result {
            Ok(ready) => {
                let status = ready.header.status;
                up.health
                    .observe_latency(at.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
                up.attempts.answered(&ctx.metrics, up.name(), status);
                if status >= 500 || status == 429 {
                    // Passed through (not in retry_on), but still a sign of trouble.
                    record_failure(&rt, up, None);
                } else if breaker.success() {
                    log::warn!("upstream {} circuit closed: answered again", up.name());
                }
                ctx.attempts.push(AttemptRecord {
                    upstream: target.upstream,
                    outcome: Outcome::Answered(status),
                });
                ctx.served_by = Some(target.upstream);
                // The request body is no longer needed (no more attempts): an open
                // stream should not hold it, nor the client buffer it sits in.
                drop(out);
                drop(body);
                if ready.sse {
                    client.release_buffer();
                }
                return commit(client, ctx, up, ready, deadline).await;
            }
            Err(f) => {
                log::debug!(
                    "{} attempt {} on {} failed: {}",
                    ctx.request_id,
                    tried.len(),
                    up.name(),
                    f.reason
                );
                last_timeout = f.kind == FailKind::Timeout;
                failed_tier = Some(target.priority);
                up.health.count_failure();
                ctx.metrics
                    .attempts
                    .with_label_values(&[up.name(), f.label()])
                    .inc();
                record_failure(&rt, up, f.retry_after());
                match f.kind {
                    FailKind::Status(429, ra) => {
                        if let Some(ra) = ra {
                            soonest_retry = Some(soonest_retry.map_or(ra, |s| s.min(ra)));
                        }
                    }
                    _ => all_429 = false,
                }
                // Same target again if it has retries left, did not name a
                // time to come back, and its breaker is still closed.
                if retry < up.cfg.retries && f.retry_after().is_none() && up.health.usable(now_ms())
                {
                    again = Some((ti, retry + 1));
                }
                ctx.attempts.push(AttemptRecord {
                    upstream: target.upstream,
                    outcome: Outcome::Failed(f.reason.into()),
                });
            }
        }
    }

    let attempts = ctx.attempt_summary();
    let err = if all_429 && !ctx.attempts.is_empty() {
        GatewayError::Upstream {
            status: 429,
            attempts,
            retry_after: Some(soonest_retry.unwrap_or(Duration::from_secs(1))),
        }
    } else if last_timeout || Instant::now() >= deadline {
        GatewayError::Upstream {
            status: 504,
            attempts,
            retry_after: None,
        }
    } else {
        GatewayError::Upstream {
            status: 502,
            attempts,
            retry_after: None,
        }
    };
    respond::error(client, ctx, &err).await?;
    Ok(Done::Answered)
}

/// The request's session key hashed (`sticky`): the configured header, else
/// the client key's name when `by_key`.
fn session_key(rt: &Runtime, req: &Request, ctx: &RequestCtx) -> Option<u64> {
    let sticky = rt.config.sticky.as_ref()?;
    sticky
        .header
        .as_deref()
        .and_then(|h| req.header(h))
        .filter(|v| !v.is_empty())
        .map(key_hash)
        .or_else(|| {
            ctx.key_name
                .as_deref()
                .filter(|_| sticky.by_key)
                .map(|k| key_hash(k.as_bytes()))
        })
}

fn record_failure(rt: &Runtime, up: &Upstream, wait: Option<Duration>) {
    if up.health.breaker.failure(now_ms(), &rt.breaker, wait) {
        log::warn!(
            "upstream {} circuit opened after repeated failures",
            up.name()
        );
    }
}

fn outgoing<'a>(req: &'a Request, ctx: &RequestCtx, body: &'a ParsedBody) -> Outgoing<'a> {
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

fn budget(t: Duration, deadline: Instant) -> Duration {
    t.min(deadline.saturating_duration_since(Instant::now()))
}

/// A body read with its timeout as `None`, like [`within`].
fn timed(r: Result<Option<Bytes>, H1Error>) -> Option<Result<Option<Bytes>, H1Error>> {
    match r {
        Err(H1Error::Timeout) => None,
        r => Some(r),
    }
}

/// `f`, or `None` after `t` (capped by the deadline).
///
/// Pingora's timer wheel (10 ms resolution, one clock thread) rather than tokio's:
/// a tokio timer that becomes the earliest one wakes the runtime's driver through
/// its eventfd, two extra syscalls per request on the hot path.
async fn within<T>(t: Duration, deadline: Instant, f: impl Future<Output = T>) -> Option<T> {
    fast_timeout(budget(t, deadline), f).await.ok()
}

async fn try_target(
    up: &Upstream,
    target: &Target,
    out: &Outgoing<'_>,
    deadline: Instant,
) -> Result<Ready, Failure> {
    let cfg = &up.cfg;
    let (mut s, header) = {
        // A pooled connection the upstream closed meanwhile fails on first
        // use, before any answer: not the upstream's fault, so the request goes
        // once more, on a new connection. Anything else fails the attempt: an
        // upstream that answered (even with garbage) is never sent it twice.
        let mut fresh = false;
        loop {
            let pooled = if fresh { None } else { up.pooled() };
            let (conn, reused) = match pooled {
                Some(c) => (c, true),
                None => (connect(up, deadline).await?, false),
            };
            match send(conn, up, target, out, deadline).await {
                Ok(x) => break x,
                Err(f) if reused && f.kind == FailKind::Unanswered => fresh = true,
                Err(f) => return Err(f),
            }
        }
    };
    let status = header.status;
    if up.retries_on(status) {
        return Err(Failure::new(
            FailKind::Status(status, retry_after(&header)),
            format!("status {status}"),
        ));
    }
    if !(200..300).contains(&status) {
        // The client's problem (400, 404, 422, ...): passed through as sent.
        return Ok(Ready {
            up: s,
            header,
            chunks: Vec::new(),
            sse: false,
            converted: None,
        });
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
    if !sse && out.body.stream && target.params.as_ref().is_some_and(|p| p.no_stream) {
        return whole_as_stream(s, header, out.body, cfg.response_timeout, deadline).await;
    }
    let mut scan = FirstEvent::default();
    let mut chunks = Vec::new();
    loop {
        match timed(s.read_body_within(wait, deadline).await) {
            None if sse => return Err(Failure::new(FailKind::Timeout, "first token timeout")),
            None => return Err(Failure::new(FailKind::Timeout, "response timeout")),
            Some(Err(e)) => {
                return Err(Failure::new(
                    body_failure(e),
                    format!("connection broke before first data ({})", e.as_str()),
                ))
            }
            Some(Ok(None)) if sse => {
                return Err(Failure::new(
                    FailKind::Broken,
                    "stream ended before its first event",
                ))
            }
            Some(Ok(None)) => {
                return Ok(Ready {
                    up: s,
                    header,
                    chunks,
                    sse,
                    converted: None,
                })
            }
            Some(Ok(Some(b))) => {
                let done = !sse || scan.feed(&b);
                if !b.is_empty() {
                    chunks.push(b);
                }
                if done && !chunks.is_empty() {
                    return Ok(Ready {
                        up: s,
                        header,
                        chunks,
                        sse,
                        converted: None,
                    });
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
    let mut answer = BytesMut::new();
    loop {
        match timed(s.read_body_within(wait, deadline).await) {
            None => return Err(Failure::new(FailKind::Timeout, "response timeout")),
            Some(Err(e)) => {
                return Err(Failure::new(
                    body_failure(e),
                    format!("connection broke before the answer ended ({})", e.as_str()),
                ))
            }
            Some(Ok(Some(b))) if answer.len() + b.len() > MAX_ANSWER => {
                return Err(Failure::new(
                    FailKind::Malformed,
                    "answer too large to turn into a stream",
                ))
            }
            Some(Ok(Some(b))) => answer.extend_from_slice(&b),
            Some(Ok(None)) => break,
        }
    }
    let usage = super::usage::scan(&answer);
    let sse = answer_as_sse(&answer, wants_usage(&body.body))
        .map_err(|e| Failure::new(FailKind::Malformed, format!("cannot stream it: {e}")))?;
    Ok(Ready {
        up: s,
        header,
        chunks: vec![Bytes::from(sse)],
        sse: true,
        converted: Some(usage),
    })
}

/// A new connection within `connect_timeout`.
async fn connect(up: &Upstream, deadline: Instant) -> Result<Conn, Failure> {
    match within(up.cfg.connect_timeout, deadline, up.open()).await {
        None | Some(Err(ConnectError::Timeout)) => {
            Err(Failure::new(FailKind::Timeout, "connect timeout"))
        }
        Some(Err(ConnectError::Failed(kind))) => Err(Failure::new(
            FailKind::Connect,
            format!("connect error ({kind})"),
        )),
        Some(Ok(c)) => Ok(c),
    }
}

/// A body read that failed before commit: bad framing is a malformed answer.
fn body_failure(e: H1Error) -> FailKind {
    match e {
        H1Error::BadHead | H1Error::HeadTooLarge | H1Error::BadFraming => FailKind::Malformed,
        H1Error::Closed | H1Error::Io => FailKind::Broken,
        H1Error::Timeout => FailKind::Timeout,
    }
}

/// Send the request and read the response header.
///
/// The request head and, for bodies up to 16 KiB, the body go out in one write:
/// on loopback or a LAN every extra segment costs both ends a full trip through
/// the TCP stack.
async fn send(
    mut conn: Conn,
    up: &Upstream,
    target: &Target,
    out: &Outgoing<'_>,
    deadline: Instant,
) -> Result<(Conn, Head), Failure> {
    let cfg = &up.cfg;
    let edited;
    let params = target.params.as_deref();
    let body = match params.and_then(|p| out.body.with_params(&target.model_json, p)) {
        Some(b) => {
            edited = b;
            [&edited[..], &[], &[]]
        }
        None => out.body.spliced(&target.model_json),
    };
    let len: usize = body.iter().map(|p| p.len()).sum();
    // Small bodies are copied behind the head (one write); larger ones are
    // written from the client's buffer, in three pieces.
    let inline = len <= CONCAT_LIMIT;
    let mut head = BytesMut::with_capacity(256 + out.headers.len() + if inline { len } else { 0 });
    head.extend_from_slice(b"POST ");
    head.extend_from_slice(cfg.base_path.as_bytes());
    head.extend_from_slice(out.rest.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(&mut head, b"host", up.authority.as_bytes());
    if let Some(a) = &up.auth {
        put_header(&mut head, b"authorization", a.as_bytes());
    }
    for (k, v) in &cfg.headers {
        put_header(&mut head, k.as_str().as_bytes(), v.as_bytes());
    }
    let mut itoa = itoa::Buffer::new();
    put_header(&mut head, b"content-length", itoa.format(len).as_bytes());
    out.headers.write_for(&mut head, &up.sets, &up.allows);
    head.extend_from_slice(b"\r\n");
    let rest: &[&[u8]] = if inline {
        for p in body {
            head.extend_from_slice(p);
        }
        &[]
    } else {
        &body
    };

    // One timer for the whole exchange (the send rarely waits), the one the
    // connection keeps: armed anew only when it fires before this deadline.
    let until = (Instant::now() + cfg.response_timeout).min(deadline);
    let mut timer = std::mem::take(&mut conn.timer);
    let exchange = async {
        conn.send(&head, rest).await.map_err(|e| {
            // Nothing of an answer can have come: the request did not get through.
            Failure::new(
                FailKind::Unanswered,
                format!("connection broke sending request ({})", e.kind()),
            )
        })?;
        conn.read_head().await.map_err(|e| {
            let kind = match body_failure(e) {
                FailKind::Broken if !conn.answered() => FailKind::Unanswered,
                k => k,
            };
            Failure::new(
                kind,
                format!("connection closed before response ({})", e.as_str()),
            )
        })
    };
    let result = timer.within(until, exchange).await;
    conn.timer = timer;
    match result {
        None => Err(Failure::new(FailKind::Timeout, "response timeout")),
        Some(Err(f)) => Err(f),
        Some(Ok(h)) => Ok((conn, h)),
    }
}

/// `Retry-After` (seconds or HTTP date) or OpenAI's `x-ratelimit-reset-*` ("1s", "6m0s").
fn retry_after(h: &Head) -> Option<Duration> {
    let text = |name: &str| {
        h.headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    if let Some(v) = text("retry-after") {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|k| text(k))
        .filter_map(|v| humantime::parse_duration(v.trim()).ok())
        .min()
}

/// Write the chosen answer to the client and pump the rest of the body through.
async fn commit(
    client: &mut Client,
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
    let _stream = sse.then(|| StreamGauge::new(&ctx.metrics.streams));
    let mut usage = UsageTail::default();
    // What was read before commit leaves with the head, in one write.
    let first = match chunks.len() {
        0 => None,
        1 => chunks.into_iter().next(),
        _ => Some(Bytes::from(chunks.concat())),
    };
    if let Some(c) = first {
        if s.done() {
            // The whole answer was read before commit (the common plain case).
            let done = last_piece(client, &mut ctx.usage, up, s, &mut usage, &c).await;
            if let Some(u) = converted {
                ctx.usage = u;
            }
            return done;
        }
        usage.push(&c);
        client.write_body(&c, false).await?;
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
                    return last_piece(client, &mut ctx.usage, up, s, &mut usage, &b).await;
                }
                usage.push(&b);
                client.write_body(&b, false).await?;
            }
            Some(Ok(None)) => {
                return last_piece(client, &mut ctx.usage, up, s, &mut usage, &[]).await
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
    let mut frame = Vec::with_capacity(event.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(&event);
    frame.extend_from_slice(b"\n\n");
    client.write_body(&frame, true).await?;
    Ok(Done::Answered)
}

/// End a complete answer with its last piece (possibly empty). The upstream
/// connection goes back to the pool before the client can see the end of its
/// answer: the client's next request must find it there.
async fn last_piece(
    client: &mut Client,
    found: &mut Option<Usage>,
    up: &Upstream,
    s: Conn,
    usage: &mut UsageTail,
    last: &[u8],
) -> io::Result<Done> {
    *found = usage.finish(last);
    up.keep(s);
    client.write_body(last, true).await?;
    Ok(Done::Answered)
}

/// Counts one SSE stream in flight while alive.
struct StreamGauge<'a>(&'a prometheus::IntGauge);

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
