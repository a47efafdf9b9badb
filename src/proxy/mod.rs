//! The AI listener: one task per client connection runs [`Gateway::serve`]
//! for each request on it (see docs/phases.md):
//!
//! ```text
//! Client::read_request -> head, framing, header deadline    (downstream/client.rs)
//! handler::handle      -> endpoint, auth, body, model, admission
//! attempt::run         -> attempt loop (exchange, outcome) + commit, always answers
//! log                  -> metrics, one access-log line
//! ```
//! Pingora runs the process, signals and graceful restart (our listener
//! service takes part in its socket hand-over); its HTTP proxy phases are not
//! used here. They re-send a
//! body on retry only from a 64 KiB buffer (design.md section 7), and their
//! per-request server path cost more than the rest of the gateway together
//! (docs/performance.md).

mod as_stream;
mod attempt;
mod commit;
mod ctx;
mod exchange;
mod forward;
mod handler;
pub mod json;
mod json_run;
mod outcome;
mod respond;
pub mod rewrite;
pub mod sse;
pub mod usage;

pub use ctx::RequestCtx;

use crate::admin::access_log::AccessLog;
use crate::admin::metrics::{Metrics, Observed};
use crate::downstream::{Client, HeadError, HeadLimits, Request};
use crate::error::GatewayError;
use crate::state::SharedRuntime;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use tokio::net::TcpStream;

pub struct Gateway {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    pub access_log: Arc<AccessLog>,
}

impl Gateway {
    /// Serve every request of one accepted connection (`downstream::listener`);
    /// the connection is closed when this returns.
    pub async fn serve_connection(&self, stream: TcpStream, shutdown: ShutdownWatch) {
        let mut client = Client::new(stream, shutdown);
        loop {
            let limits = {
                let rt = self.runtime.load();
                HeadLimits {
                    max_header_bytes: rt.config.limits.max_header_bytes,
                    header_timeout: rt.config.limits.header_timeout,
                }
            };
            match client.read_request(&limits).await {
                Ok(req) => {
                    if !self.serve(&mut client, &req).await || !client.reusable().await {
                        return;
                    }
                }
                Err(e) => {
                    self.refuse(client, e, &limits).await;
                    return;
                }
            }
        }
    }

    /// One request, answered and logged. False: the connection must close (the
    /// client is gone, or a committed answer was cut).
    async fn serve(&self, client: &mut Client, req: &Request) -> bool {
        let mut ctx = RequestCtx::new(self.runtime.load_full(), self.metrics.clone());
        ctx.metrics.in_flight.inc();
        ctx.request_id = ctx::request_id(req.header("x-request-id"));
        let keep = match handler::handle(client, req, &mut ctx).await {
            Ok(handler::Done::Answered) => true,
            Ok(handler::Done::Cut) => false,
            Err(_) => {
                // A write to the client failed: it is gone.
                ctx.client_gone = true;
                false
            }
        };
        ctx.bytes_sent = client.bytes_sent();
        self.log(client.status(), Some(req), &ctx);
        keep
    }

    /// A request head that could not be read: answered (when there is someone to
    /// answer) and counted like any other request, then the connection closes.
    async fn refuse(&self, mut client: Client, e: HeadError, limits: &HeadLimits) {
        let err = match e {
            HeadError::Gone => return,
            HeadError::Timeout => {
                client
                    .write_raw_and_close(crate::downstream::client::TIMEOUT_RESPONSE)
                    .await;
                return;
            }
            HeadError::TooLarge => GatewayError::HeadersTooLarge(limits.max_header_bytes),
            HeadError::Malformed => GatewayError::BadRequest("malformed HTTP request head".into()),
            HeadError::BadTarget => GatewayError::BadRequest(
                "invalid request target: send a path such as /v1/chat/completions, in \
                 visible ASCII, without dot-segments (. or ..) or broken %-escapes"
                    .into(),
            ),
            HeadError::BadHost => GatewayError::BadRequest(
                "an HTTP/1.1 request needs exactly one Host header with a valid host[:port]".into(),
            ),
            HeadError::Framing => GatewayError::BadRequest(
                "ambiguous request framing: send either one Content-Length or \
                 Transfer-Encoding: chunked"
                    .into(),
            ),
        };
        let mut ctx = RequestCtx::new(self.runtime.load_full(), self.metrics.clone());
        ctx.metrics.in_flight.inc();
        ctx.request_id = ctx::request_id(None);
        client.close_after();
        if respond::error(&mut client, &ctx, &err).await.is_err() {
            ctx.client_gone = true;
        }
        ctx.bytes_sent = client.bytes_sent();
        self.log(client.status(), None, &ctx);
    }

    /// Metrics and the access-log line of one request.
    fn log(&self, status: u16, req: Option<&Request>, ctx: &RequestCtx) {
        let m = &ctx.metrics;
        m.in_flight.dec();
        let rt = &ctx.runtime;
        // Labels stay bounded: only configured model and upstream names.
        let (model, series) = match &ctx.model {
            Some(ctx::ModelSeen::Routed(r)) => (&*r.name, &r.series),
            _ => ("-", &rt.unrouted),
        };
        let upstream = ctx
            .served_by
            .and_then(|i| rt.upstreams.get(i).map(|u| (i, u.name())));
        let elapsed = ctx.started.elapsed();
        if let (Some((i, _)), Some((p, c))) = (upstream, ctx.usage) {
            rt.upstreams[i].health.add_tokens(p + c);
        }
        series.observe(
            m,
            &Observed {
                model,
                upstream,
                status,
                elapsed,
                ttfb: ctx.ttfb,
                usage: ctx.usage,
            },
        );
        if self.access_log.enabled() {
            self.access_log
                .write(access_line(req, ctx, status, elapsed));
        }
    }
}

/// One JSON access-log line. Names only: never a key, never a query string.
///
/// Serialized straight from borrowed fields (serde's derive into one
/// `String`): no `serde_json::Value` tree, no string per attempt.
fn access_line(
    req: Option<&Request>,
    ctx: &RequestCtx,
    status: u16,
    elapsed: std::time::Duration,
) -> String {
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let name = |i: usize| ctx.runtime.upstreams.get(i).map(|u| u.name());
    let line = AccessLine {
        time: Shown(humantime::format_rfc3339_millis(
            std::time::SystemTime::now(),
        )),
        request_id: &ctx.request_id,
        key: ctx.key_name.as_deref(),
        method: req.map_or("-", |r| r.method.as_str()),
        path: req.map_or("-", |r| r.path()),
        model: ctx.model_name(),
        upstream: ctx.served_by.and_then(name),
        attempts: Attempts(ctx),
        status,
        bytes: ctx.bytes_sent,
        duration_ms: ms(elapsed),
        ttfb_ms: ctx.ttfb.map(ms),
        prompt_tokens: ctx.usage.map(|u| u.0),
        completion_tokens: ctx.usage.map(|u| u.1),
        client_gone: ctx.client_gone,
        cut: ctx.cut.as_deref(),
    };
    // Serializing borrowed strs and numbers into a String cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

#[derive(serde::Serialize)]
struct AccessLine<'a> {
    time: Shown<humantime::Rfc3339Timestamp>,
    request_id: &'a str,
    key: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    model: Option<&'a str>,
    upstream: Option<&'a str>,
    attempts: Attempts<'a>,
    status: u16,
    bytes: usize,
    duration_ms: f64,
    ttfb_ms: Option<f64>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    client_gone: bool,
    cut: Option<&'a str>,
}

/// A `Display` value written as a JSON string, without a `String` between.
struct Shown<T>(T);

impl<T: std::fmt::Display> serde::Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `["upstream:outcome", ...]`, each element written in place.
struct Attempts<'a>(&'a RequestCtx);

impl serde::Serialize for Attempts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ctx = self.0;
        s.collect_seq(ctx.attempts.iter().map(|a| {
            let up = ctx
                .runtime
                .upstreams
                .get(a.upstream)
                .map_or("?", |u| u.name());
            Shown(Attempt(up, &a.outcome))
        }))
    }
}

/// `upstream:outcome`.
struct Attempt<'a>(&'a str, &'a ctx::Outcome);

impl std::fmt::Display for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}
