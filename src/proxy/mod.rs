//! The exchange core: [`Gateway::serve`] answers one request from any client
//! transport ([`crate::front::ClientSide`]; today the HTTP/1.1 front end's
//! connection loop in `downstream/connection.rs`), see docs/phases.md:
//!
//! ```text
//! Client::read_request -> head, framing, header deadline    (downstream/)
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

mod access_line;
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
mod strip;
pub mod usage;

pub use ctx::RequestCtx;

use crate::access_log::AccessLog;
use crate::error::GatewayError;
use crate::front::{ClientSide, Request};
use crate::limits::usage::{Record, UsageMeter};
use crate::state::SharedRuntime;
use crate::telemetry::{Metrics, Observed};
use std::sync::Arc;

#[derive(Clone)]
pub struct Gateway {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    pub access_log: Arc<AccessLog>,
    pub usage: Arc<UsageMeter>,
}

impl Gateway {
    /// One request, answered and logged. False: the connection must close (the
    /// client is gone, or a committed answer was cut).
    pub async fn serve<C: ClientSide>(&self, client: &mut C, req: &Request) -> bool {
        let mut ctx = RequestCtx::new(self.runtime.load_full(), self.metrics.clone());
        ctx.metrics.in_flight.inc();
        ctx.request_id = ctx::request_id(req.header("x-request-id"));
        let keep = match handler::handle(client, req, &mut ctx).await {
            Ok(ctx::Done::Answered) => true,
            Ok(ctx::Done::Cut) => false,
            Err(_) => {
                // A write to the client failed: it is gone.
                ctx.client_gone = true;
                false
            }
        };
        ctx.bytes_sent = client.bytes_sent();
        self.log(client.status(), Some(req), &mut ctx);
        keep
    }

    /// A request that was refused before it could be read (its head): the
    /// error answered (when there is someone to answer) and counted like any
    /// other request. The transport closes the connection after it.
    pub async fn refused<C: ClientSide>(&self, client: &mut C, err: GatewayError) {
        let mut ctx = RequestCtx::new(self.runtime.load_full(), self.metrics.clone());
        ctx.metrics.in_flight.inc();
        ctx.request_id = ctx::request_id(None);
        client.close_after();
        if respond::error(client, &ctx, &err).await.is_err() {
            ctx.client_gone = true;
        }
        ctx.bytes_sent = client.bytes_sent();
        self.log(client.status(), None, &mut ctx);
    }

    /// An answered request's usage, to the totals and the usage log: as
    /// reported, else estimated (prompt from the body, completion from the
    /// answer's bytes, both / 4).
    fn record_usage(&self, status: u16, ctx: &RequestCtx) {
        let (Some(up), Some(ctx::ModelSeen::Routed(route))) = (
            ctx.served_by.and_then(|i| ctx.runtime.upstreams.get(i)),
            &ctx.model,
        ) else {
            return;
        };
        let (prompt, completion, estimated) = match ctx.usage {
            Some((p, c)) => (p, c, false),
            None if (200..300).contains(&status) => (
                ctx.prompt_estimate,
                (ctx.bytes_sent as u64).div_ceil(4),
                true,
            ),
            None => (0, 0, false),
        };
        let record = Record {
            at_s: crate::limits::quota::now_s(),
            request_id: if self.usage.logs {
                ctx.request_id.clone()
            } else {
                String::new()
            },
            key: ctx.key_name.clone(),
            model: route.name.clone(),
            upstream: up.label.clone(),
            status,
            prompt,
            completion,
            estimated,
        };
        if let Some(store) = &ctx.runtime.store {
            store.record(&record);
        }
        self.usage.record(record);
    }

    /// Metrics and the access-log line of one request.
    fn log(&self, status: u16, req: Option<&Request>, ctx: &mut RequestCtx) {
        // Settled already where the answer ended; this covers cut streams and
        // clients that left.
        ctx.answer_ended(ctx.served_by.is_some() && (200..300).contains(&status));
        let ctx = &*ctx;
        self.record_usage(status, ctx);
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
                .write(access_line::line(req, ctx, status, elapsed));
        }
    }
}
