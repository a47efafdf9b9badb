//! `ProxyHttp` for the AI routes. Phase chart (see docs/phases.md):
//!
//! ```text
//! request_filter  -> handler::handle: endpoint, auth, body, model, admission,
//!                    attempt::run (attempt loop + commit), always answers itself
//! upstream_peer   -> never reached (request_filter always answers)
//! fail_to_proxy   -> only for errors after our own answer started: write nothing
//! logging         -> one access-log line
//! ```
//! Pingora's native upstream phases are bypassed on purpose: its retry buffer
//! holds 64 KiB, so a larger body read in `request_filter` could not be re-sent
//! (design.md section 7).

mod attempt;
mod ctx;
mod handler;
mod respond;
pub mod rewrite;
pub mod sse;

pub use ctx::RequestCtx;

use crate::state::SharedRuntime;
use async_trait::async_trait;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

pub struct Gateway {
    pub runtime: SharedRuntime,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.runtime.load_full())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = ctx::request_id(
            session
                .req_header()
                .headers
                .get("x-request-id")
                .map(|v| v.as_bytes()),
        );
        match handler::handle(session, ctx).await? {
            handler::Done::Answered => Ok(true),
            handler::Done::Cut => Error::e_explain(ErrorType::ConnectionClosed, "response cut"),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Error::e_explain(
            ErrorType::InternalError,
            "request_filter answers every request",
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        // Our handler answers everything it can; what reaches here is a broken
        // client connection or a deliberately cut response: nothing more to write.
        let error_code = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        if error_code == 0 && !ctx.client_gone && ctx.cut.is_none() {
            log::debug!("{} request failed: {}", ctx.request_id, e.etype().as_str());
        }
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _e: &Error) -> bool {
        ctx.client_gone || ctx.cut.is_some()
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let path = session.req_header().uri.path();
        log::info!(
            target: "access",
            "id={} key={} model={} path={} status={} attempts=[{}] duration_ms={:.1}{}{}",
            ctx.request_id,
            ctx.key_name.as_deref().unwrap_or("-"),
            ctx.model.as_deref().unwrap_or("-"),
            path,
            status,
            ctx.attempt_summary(),
            ctx.started.elapsed().as_secs_f64() * 1000.0,
            if ctx.client_gone { " client_gone" } else { "" },
            ctx.cut.as_deref().map(|c| format!(" cut=\"{c}\"")).unwrap_or_default(),
        );
    }
}
