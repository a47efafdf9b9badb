//! Writing answers the gateway makes itself (errors, /health, /v1/models) and the
//! headers every answer carries.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Headers on every answer: request id, and after an attempt loop who answered
/// and how many attempts it took.
pub fn stamp(resp: &mut ResponseHeader, ctx: &RequestCtx) {
    let _ = resp.insert_header("x-request-id", ctx.request_id.as_str());
    if !ctx.attempts.is_empty() {
        let _ = resp.insert_header("x-llmgate-attempts", ctx.attempts.len().to_string());
    }
    if let Some(up) = ctx.served_by.and_then(|i| ctx.runtime.upstreams.get(i)) {
        let _ = resp.insert_header("x-llmgate-upstream", up.name());
    }
}

pub async fn json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(6))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    for (k, v) in extra {
        resp.insert_header(*k, v.as_str())?;
    }
    stamp(&mut resp, ctx);
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

/// Prefix of framing errors: the body was not read, so the connection cannot be reused.
pub const FRAMING: &str = "ambiguous request framing";

pub async fn error(session: &mut Session, ctx: &RequestCtx, err: &GatewayError) -> Result<()> {
    let mut extra = Vec::new();
    if let Some(wait) = err.retry_after() {
        // Round up: "retry after 0" would invite an immediate retry storm.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        extra.push(("retry-after", secs.max(1).to_string()));
    }
    if matches!(err, GatewayError::MethodNotAllowed) {
        extra.push(("allow", "POST".to_string()));
    }
    if matches!(err, GatewayError::MissingKey | GatewayError::InvalidKey) {
        extra.push(("www-authenticate", "Bearer".to_string()));
    }
    if matches!(
        err,
        GatewayError::BodyTooLarge(_) | GatewayError::HeadersTooLarge(_)
    ) || matches!(err, GatewayError::BadRequest(m) if m.starts_with(FRAMING))
    {
        // The rest of an unread body would be parsed as the next request.
        session.as_downstream_mut().set_keepalive(None);
    }
    json(session, ctx, err.status(), err.body(), &extra).await
}
