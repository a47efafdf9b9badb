//! Writing answers the gateway makes itself (errors, /health, /v1/models) and the
//! headers every answer carries.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::formats::{messages, Dialect};
use crate::front::ClientSide;
use std::io;

/// Headers on every answer: request id, and after an attempt loop who answered
/// and how many attempts it took.
pub fn stamp<C: ClientSide>(client: &mut C, ctx: &RequestCtx) {
    client.header(b"x-request-id", ctx.request_id.as_bytes());
    if !ctx.attempts.is_empty() {
        let mut n = itoa::Buffer::new();
        client.header(
            b"x-llmgate-attempts",
            n.format(ctx.attempts.len()).as_bytes(),
        );
    }
    if let Some(up) = ctx.served_by.and_then(|i| ctx.runtime.upstreams.get(i)) {
        client.header(b"x-llmgate-upstream", up.name().as_bytes());
    }
}

pub async fn json<C: ClientSide>(
    client: &mut C,
    ctx: &RequestCtx,
    status: u16,
    body: &[u8],
    extra: &[(&'static str, String)],
) -> io::Result<()> {
    client.start(status);
    client.header(b"content-type", b"application/json");
    client.header(b"cache-control", b"no-store");
    for (k, v) in extra {
        client.header(k.as_bytes(), v.as_bytes());
    }
    stamp(client, ctx);
    client.end_head(Some(body.len() as u64));
    client.write_body(body, true).await
}

pub async fn error<C: ClientSide>(
    client: &mut C,
    ctx: &RequestCtx,
    err: &GatewayError,
) -> io::Result<()> {
    // Nothing was answered: any reservation goes back before the client knows.
    ctx.settle_tokens(false);
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
    let body = match ctx.dialect {
        // Anthropic clients read Anthropic's error shape (design.md section 9).
        Dialect::Messages => bytes::Bytes::from(messages::error_body(
            messages::error_type(err.status()),
            &err.message(),
        )),
        _ => err.body(),
    };
    json(client, ctx, err.status(), &body, &extra).await
}
