//! What every request on the AI listener goes through: pick the endpoint, authenticate,
//! read and parse the body, resolve the model, admit, then hand over to the
//! attempt loop. Errors here are answered before any upstream is contacted.

use super::attempt;
use super::ctx::{Done, ModelSeen, RequestCtx};
use super::respond;
use super::rewrite::{ParsedBody, CONCAT_LIMIT};
use crate::config::LimitsConfig;
use crate::error::GatewayError;
use crate::formats::Dialect;
use crate::front::{ClientSide, Request};
use crate::limits::redis::Denied;
use crate::limits::Refused;
use crate::state::{ClientKey, Runtime};
use bytes::{Bytes, BytesMut};
use http::Method;
use std::io;

pub async fn handle<C: ClientSide>(
    client: &mut C,
    req: &Request,
    ctx: &mut RequestCtx,
) -> io::Result<Done> {
    let rt = ctx.runtime.clone();
    let path = req.path();
    let method = &req.method;

    if path == "/health" {
        return simple(
            client,
            ctx,
            *method == Method::GET || *method == Method::HEAD,
            health_answer(&rt),
        )
        .await;
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        respond::error(client, ctx, &GatewayError::NotFound).await?;
        return Ok(Done::Answered);
    };
    let count_tokens = rest == "messages/count_tokens";
    ctx.dialect = if count_tokens {
        Dialect::Messages
    } else {
        Dialect::of(rest)
    };
    let one_model = rest.strip_prefix("models/");
    if rest == "models" || one_model.is_some() {
        if *method != Method::GET {
            respond::error(client, ctx, &GatewayError::MethodNotAllowed).await?;
            return Ok(Done::Answered);
        }
        let key = match authenticate(&rt, req) {
            Ok(k) => k,
            Err(e) => return fail(client, ctx, e).await,
        };
        ctx.key_name = key.map(|k| k.name.clone());
        let body = match one_model {
            None => models_list(&rt, key),
            // OpenAI's retrieve; SDKs percent-encode the id (`org%2Fname`).
            Some(id) => {
                let id = percent_decode(id);
                match model_object(&rt, key, &id) {
                    Some(b) => b,
                    // A model the key may not use is as unknown as a missing one.
                    None => return fail(client, ctx, GatewayError::UnknownModel(id)).await,
                }
            }
        };
        respond::json(client, ctx, 200, &body, &[]).await?;
        return Ok(Done::Answered);
    }
    if *method != Method::POST {
        respond::error(client, ctx, &GatewayError::MethodNotAllowed).await?;
        return Ok(Done::Answered);
    }
    let key = match authenticate(&rt, req) {
        Ok(k) => k,
        Err(e) => return fail(client, ctx, e).await,
    };
    ctx.key_name = key.map(|k| k.name.clone());
    if let Some(k) = key {
        k.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    let body_deadline = ctx.started + rt.config.limits.body_total_timeout;
    let body = match read_body(client, req, &rt.config.limits, body_deadline).await {
        Ok(b) => b,
        Err(e) => {
            // Whatever is left of the body cannot be told from a next request.
            client.close_after();
            return fail(client, ctx, e).await;
        }
    };
    let mut parsed = match ParsedBody::parse(body) {
        Ok(p) => p,
        Err(msg) => return fail(client, ctx, GatewayError::BadRequest(msg)).await,
    };
    if parsed.stream && parsed.body.len() <= CONCAT_LIMIT {
        // A stream may stay open for minutes: it keeps a copy of its (small)
        // body, not the connection's whole read buffer.
        parsed.detach();
        client.release_buffer();
    }
    // Usage of every stream is counted: llmgate asks for it when the client
    // did not (and takes out of the answer what that adds), where the
    // endpoint takes `stream_options`.
    ctx.strip_usage = ctx.dialect.takes_stream_options() && parsed.ask_for_usage();
    let Some(route) = rt.models.get(&parsed.model) else {
        ctx.model = Some(ModelSeen::Unrouted(parsed.model.clone()));
        return fail(client, ctx, GatewayError::UnknownModel(parsed.model)).await;
    };
    ctx.model = Some(ModelSeen::Routed(route.clone()));
    ctx.prompt_estimate = crate::limits::prompt_estimate(parsed.body.len());
    if let Some(k) = key {
        if !k.may_use(&parsed.model) {
            return fail(
                client,
                ctx,
                GatewayError::ModelNotAllowed(parsed.model.clone()),
            )
            .await;
        }
    }
    if count_tokens {
        // Anthropic's token count, estimated as usage estimates are (bytes / 4):
        // exact counts need the target's own tokenizer, which no target shares.
        let body = format!("{{\"input_tokens\":{}}}", ctx.prompt_estimate);
        respond::json(client, ctx, 200, body.as_bytes(), &[]).await?;
        return Ok(Done::Answered);
    }
    if let Some(k) = key {
        if let Some(limits) = &k.limits {
            let tokens = match limits.tpm {
                Some(_) => ctx.prompt_estimate + parsed.max_completion.unwrap_or(0),
                None => 0,
            };
            let verdict = match &rt.store {
                Some(store) => store.admit(&k.name, limits, tokens).await,
                None => limits
                    .admit(crate::limits::now_us(), tokens)
                    .map_err(Denied::Limit),
            };
            match verdict {
                Ok(reservation) => ctx.reservation = reservation,
                Err(Denied::Limit(refused)) => {
                    let (retry_after, tokens) = match refused {
                        Refused::Requests(w) => (w, false),
                        Refused::Tokens(w) => (w, true),
                    };
                    let e = GatewayError::RateLimited {
                        retry_after,
                        tokens,
                    };
                    return fail(client, ctx, e).await;
                }
                Err(Denied::Unavailable) => {
                    return fail(client, ctx, GatewayError::StateUnavailable).await;
                }
            }
        }
    }
    attempt::run(client, req, ctx, route, parsed).await
}

async fn fail<C: ClientSide>(
    client: &mut C,
    ctx: &mut RequestCtx,
    e: GatewayError,
) -> io::Result<Done> {
    respond::error(client, ctx, &e).await?;
    Ok(Done::Answered)
}

async fn simple<C: ClientSide>(
    client: &mut C,
    ctx: &mut RequestCtx,
    method_ok: bool,
    answer: (u16, Bytes),
) -> io::Result<Done> {
    if !method_ok {
        respond::error(client, ctx, &GatewayError::MethodNotAllowed).await?;
    } else {
        respond::json(client, ctx, answer.0, &answer.1, &[]).await?;
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
fn authenticate<'a>(rt: &'a Runtime, req: &Request) -> Result<Option<&'a ClientKey>, GatewayError> {
    let Some(keys) = &rt.keys else {
        return Ok(None);
    };
    let presented = req
        .header_str("authorization")
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .or_else(|| req.header_str("x-api-key"))
        .or_else(|| req.header_str("api-key"));
    match presented {
        None | Some("") => Err(GatewayError::MissingKey),
        Some(k) => keys.get(k).map(Some).ok_or(GatewayError::InvalidKey),
    }
}

/// One logical model in OpenAI's model object shape, if the key may use it.
fn model_object(rt: &Runtime, key: Option<&ClientKey>, id: &str) -> Option<Bytes> {
    if !rt.config.models.contains_key(id) || key.is_some_and(|k| !k.may_use(id)) {
        return None;
    }
    Some(Bytes::from(model_json(id).to_string()))
}

/// OpenAI's model object for a logical model.
fn model_json(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "llmgate"})
}

/// `%XX` escapes decoded (the target reader has checked they are well formed);
/// bytes that do not make UTF-8 are replaced, which no configured name matches.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn models_list(rt: &Runtime, key: Option<&ClientKey>) -> Bytes {
    // config.models is a BTreeMap: the list comes out sorted.
    let data: Vec<serde_json::Value> = rt
        .config
        .models
        .keys()
        .filter(|m| key.is_none_or(|k| k.may_use(m)))
        .map(|m| model_json(m))
        .collect();
    Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string())
}

/// Read the whole request body, bounded by `max_body_bytes`, by
/// `body_timeout` for each wait and by `deadline` for all of it.
async fn read_body<C: ClientSide>(
    client: &mut C,
    req: &Request,
    limits: &LimitsConfig,
    deadline: std::time::Instant,
) -> Result<Bytes, GatewayError> {
    let max = limits.max_body_bytes;
    let declared = client
        .body_length()
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > max) {
        return Err(GatewayError::BodyTooLarge(max));
    }
    let expects_continue = req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // Without this, curl-like clients wait a second before sending the body.
        client
            .write_continue()
            .await
            .map_err(|_| GatewayError::BadRequest("client went away".into()))?;
    }
    // A body that arrives in one piece (the common case) is kept as is, not copied.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    loop {
        let chunk = client
            .read_body_within(limits.body_timeout, deadline)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => {
                    GatewayError::BadRequest("timed out reading the request body".into())
                }
                io::ErrorKind::InvalidData => {
                    GatewayError::BadRequest("malformed chunked request body (RFC 9112 7.1)".into())
                }
                k => GatewayError::BadRequest(format!("could not read the request body: {k}")),
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
