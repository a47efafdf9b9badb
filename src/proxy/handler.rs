//! What `request_filter` does for every request: pick the endpoint, authenticate,
//! read and parse the body, resolve the model, admit, then hand over to the
//! attempt loop. Errors here are answered before any upstream is contacted.

use super::attempt;
use super::ctx::RequestCtx;
use super::respond;
use super::rewrite::ParsedBody;
use crate::config::LimitsConfig;
use crate::error::GatewayError;
use crate::state::{ClientKey, Runtime};
use bytes::{Bytes, BytesMut};
use http::Method;
use pingora::prelude::fast_timeout::fast_timeout;
use pingora::proxy::Session;
use pingora::Result;

/// What the handler did; `Cut` asks Pingora to drop the connection (a committed
/// response could not be completed and must not look complete).
pub enum Done {
    Answered,
    Cut,
}

pub async fn handle(session: &mut Session, ctx: &mut RequestCtx) -> Result<Done> {
    let rt = ctx.runtime.clone();
    if let Err(e) = check_head(session, rt.config.limits.max_header_bytes) {
        return fail(session, ctx, e).await;
    }
    let req = session.req_header();
    let path = req.uri.path();
    let method = req.method.clone();

    if path == "/health" {
        return simple(
            session,
            ctx,
            method == Method::GET || method == Method::HEAD,
            health_answer(&rt),
        )
        .await;
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        respond::error(session, ctx, &GatewayError::NotFound).await?;
        return Ok(Done::Answered);
    };
    if rest == "models" {
        if method != Method::GET {
            respond::error(session, ctx, &GatewayError::MethodNotAllowed).await?;
            return Ok(Done::Answered);
        }
        let key = match authenticate(&rt, session) {
            Ok(k) => k,
            Err(e) => return fail(session, ctx, e).await,
        };
        ctx.key_name = key.map(|k| k.name.clone());
        let body = models_list(&rt, key);
        respond::json(session, ctx, 200, body, &[]).await?;
        return Ok(Done::Answered);
    }
    if method != Method::POST {
        respond::error(session, ctx, &GatewayError::MethodNotAllowed).await?;
        return Ok(Done::Answered);
    }
    let key = match authenticate(&rt, session) {
        Ok(k) => k,
        Err(e) => return fail(session, ctx, e).await,
    };
    ctx.key_name = key.map(|k| k.name.clone());

    let body = match read_body(session, &rt.config.limits).await {
        Ok(b) => b,
        Err(e) => return fail(session, ctx, e).await,
    };
    let parsed = match ParsedBody::parse(body) {
        Ok(p) => p,
        Err(msg) => return fail(session, ctx, GatewayError::BadRequest(msg)).await,
    };
    ctx.model = Some(parsed.model.clone());
    let Some(route) = rt.models.get(&parsed.model) else {
        return fail(
            session,
            ctx,
            GatewayError::UnknownModel(parsed.model.clone()),
        )
        .await;
    };
    if let Some(k) = key {
        if !k.may_use(&parsed.model) {
            return fail(
                session,
                ctx,
                GatewayError::ModelNotAllowed(parsed.model.clone()),
            )
            .await;
        }
        if let Some(Err(wait)) = k.rate.as_ref().map(|r| r.admit()) {
            return fail(
                session,
                ctx,
                GatewayError::RateLimited { retry_after: wait },
            )
            .await;
        }
    }
    attempt::run(session, ctx, route, &parsed).await
}

/// Reject before reading any body: oversized headers, and framing a smuggling
/// attempt relies on (Content-Length with Transfer-Encoding, or Content-Length
/// given more than once). Nothing of such a request is forwarded.
fn check_head(session: &Session, max_header_bytes: usize) -> Result<(), GatewayError> {
    let req = session.req_header();
    // Measured without formatting the URI: this runs on every request.
    let size: usize = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > max_header_bytes {
        return Err(GatewayError::HeadersTooLarge(max_header_bytes));
    }
    let mut lengths = req
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .count();
    let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
    if chunked && lengths == 0 {
        // Pingora drops Content-Length when Transfer-Encoding is present (RFC 9112
        // 6.3); the raw head still tells whether the client sent both.
        if let Some(h1) = session.as_downstream().as_http1() {
            lengths = count_raw_header(&h1.get_headers_raw_bytes(), b"content-length");
        }
    }
    if lengths > 1 || (lengths == 1 && chunked) {
        return Err(GatewayError::BadRequest(format!(
            "{}: send either one Content-Length or Transfer-Encoding: chunked",
            respond::FRAMING
        )));
    }
    Ok(())
}

/// How many header lines in a raw HTTP/1 head are named `name` (lowercase).
fn count_raw_header(raw: &[u8], name: &[u8]) -> usize {
    raw.split(|&b| b == b'\n')
        .filter(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name)
                && line[name.len()..].trim_ascii_start().starts_with(b":")
        })
        .count()
}

async fn fail(session: &mut Session, ctx: &mut RequestCtx, e: GatewayError) -> Result<Done> {
    respond::error(session, ctx, &e).await?;
    Ok(Done::Answered)
}

async fn simple(
    session: &mut Session,
    ctx: &mut RequestCtx,
    method_ok: bool,
    answer: (u16, Bytes),
) -> Result<Done> {
    if !method_ok {
        respond::error(session, ctx, &GatewayError::MethodNotAllowed).await?;
    } else {
        respond::json(session, ctx, answer.0, answer.1, &[]).await?;
    }
    Ok(Done::Answered)
}

fn health_answer(rt: &Runtime) -> (u16, Bytes) {
    if rt.any_healthy() {
        (200, Bytes::from_static(br#"{"status":"ok"}"#))
    } else {
        (503, Bytes::from_static(br#"{"status":"unavailable"}"#))
    }
}

/// The client key from `Authorization: Bearer`, `x-api-key` or `api-key`.
fn authenticate<'a>(
    rt: &'a Runtime,
    session: &Session,
) -> Result<Option<&'a ClientKey>, GatewayError> {
    let Some(keys) = &rt.keys else {
        return Ok(None);
    };
    let h = &session.req_header().headers;
    let presented = h
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| h.get("api-key").and_then(|v| v.to_str().ok()));
    match presented {
        None | Some("") => Err(GatewayError::MissingKey),
        Some(k) => keys.get(k).map(Some).ok_or(GatewayError::InvalidKey),
    }
}

fn models_list(rt: &Runtime, key: Option<&ClientKey>) -> Bytes {
    // config.models is a BTreeMap: the list comes out sorted.
    let data: Vec<serde_json::Value> = rt
        .config
        .models
        .keys()
        .filter(|m| key.is_none_or(|k| k.may_use(m)))
        .map(|m| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": "llmgate"}))
        .collect();
    Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string())
}

/// Read the whole request body, bounded by `max` bytes.
async fn read_body(session: &mut Session, limits: &LimitsConfig) -> Result<Bytes, GatewayError> {
    let max = limits.max_body_bytes;
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(GatewayError::BodyTooLarge(max));
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // Without this, curl-like clients wait a second before sending the body.
        session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(|_| GatewayError::BadRequest("client went away".into()))?;
    }
    // A body that arrives in one piece (the common case) is kept as is, not copied.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    loop {
        let chunk = fast_timeout(limits.body_timeout, session.read_request_body())
            .await
            .map_err(|_| GatewayError::BadRequest("timed out reading the request body".into()))?
            .map_err(|e| {
                GatewayError::BadRequest(format!(
                    "could not read the request body: {}",
                    e.etype().as_str()
                ))
            })?;
        let Some(c) = chunk else { break };
        total += c.len();
        if total > max {
            return Err(GatewayError::BodyTooLarge(max));
        }
        match first.take() {
            None if buf.is_empty() => first = Some(c),
            Some(f) => {
                buf.reserve(declared.unwrap_or(total).min(max));
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&c);
            }
            None => buf.extend_from_slice(&c),
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}
