//! The attempt loop and the commit rule (design.md section 3).
//!
//! Each attempt picks the next target (tiers, weights, stickiness, same-target
//! retries) and runs one exchange with it (`exchange`): the body goes with the
//! target's model spliced in, and the answer is ready once its first body
//! bytes (for SSE: its first complete `data:` event) are in. Only then is
//! anything written to the client (`commit`); every earlier failure moves on
//! to the next target unseen, and its effect on policy is `outcome`'s.

use super::commit::commit;
use super::ctx::{AttemptRecord, Done, Outcome, RequestCtx};
use super::exchange::{budget, outgoing, try_target, Translated};
use super::outcome::{record_failure, Verdict};
use super::respond;
use super::rewrite::ParsedBody;
use crate::clock::{ms_at, now_ms};
use crate::error::GatewayError;
use crate::formats::chat::Unsupported;
use crate::formats::{Pivot, Plan};
use crate::front::{ClientSide, Request};
use crate::limits::quota;
use crate::params::wants_usage;
use crate::routing::{key_hash, ModelRoute, Target, TriedSet};
use crate::state::Runtime;
use std::io;
use std::time::{Duration, Instant};

pub async fn run<C: ClientSide>(
    client: &mut C,
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
    // Disabled and drained upstreams get no requests, not even fail-open
    // ones; nor do targets whose quota is used up (which is no failure).
    // `quota_wait`: the soonest renewal among those, `Some(None)`: never.
    let mut quota_wait: Option<Option<Duration>> = None;
    // Targets that cannot carry this request in their format, and why: the
    // client hears it (400) when no target could.
    let mut unsupported: Vec<String> = Vec::new();
    let mut pivot: Option<Result<Pivot, Unsupported>> = None;
    for (i, t) in route.targets.iter().enumerate() {
        let up = &rt.upstreams[t.upstream];
        if let Err(Unsupported(why)) = ctx.dialect.plan(up.cfg.format) {
            tried.insert(i);
            unsupported.push(format!("{}: {why}", up.name()));
        } else if up.out_of_rotation().is_some() {
            tried.insert(i);
        } else if let Some(wait) = t.quota.as_ref().and_then(|q| q.used_up(quota::now_s())) {
            tried.insert(i);
            quota_wait = Some(match (quota_wait.flatten(), wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
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
        let wire = match ctx.dialect.plan(up.cfg.format) {
            Ok(Plan::Translate) => {
                let pivot = pivot.get_or_insert_with(|| Pivot::read(ctx.dialect, &body.body));
                let params = target.params.as_deref();
                let made = pivot
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|p| p.wire(up.cfg.format, &target.model, (&up.cfg).into(), params));
                match made {
                    Ok(w) => Some(w),
                    Err(Unsupported(why)) => {
                        unsupported.push(format!("{}: {why}", up.name()));
                        continue;
                    }
                }
            }
            _ => None,
        };
        let translated = wire.as_ref().map(|w| Translated {
            wire: w,
            dialect: ctx.dialect,
            format: up.cfg.format,
            include_usage: wants_usage(&body.body),
        });
        let breaker = &up.health.breaker;
        breaker.begin(now);
        let _in_flight = up.health.attempt();
        if let Some(q) = &target.quota {
            q.count_request();
        }
        // Not boxed (nor `commit` below): since connecting no longer goes through
        // Pingora's connector, the attempt future is ~1.6 KB and the commit one
        // ~1.3 KB; boxing them cost an allocation and a copy each per request
        // (~1k instructions of 28.8k) to keep an idle keep-alive connection's
        // task at 1.9 KB instead of 3.3 KB.
        let result = tokio::select! {
            biased;
            r = try_target(up, target, &out, translated.as_ref(), deadline) => r,
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
                ctx.quota = target.quota.clone();
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
                let verdict = f.verdict();
                last_timeout = verdict == Verdict::TimedOut;
                failed_tier = Some(target.priority);
                ctx.metrics
                    .attempts
                    .with_label_values(&[up.name(), f.label()])
                    .inc();
                if f.counts_against_upstream() {
                    up.health.count_failure();
                    record_failure(&rt, up, f.retry_after());
                }
                match verdict {
                    Verdict::RateLimited(Some(ra)) => {
                        soonest_retry = Some(soonest_retry.map_or(ra, |s| s.min(ra)));
                    }
                    Verdict::RateLimited(None) => {}
                    Verdict::TimedOut | Verdict::Failed => all_429 = false,
                }
                // Same target again if it has retries left, the failure
                // allows it, and its breaker is still closed.
                if retry < up.cfg.retries && f.same_target_may_retry() && up.health.usable(now_ms())
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
    let err = if let (false, true) = (unsupported.is_empty(), ctx.attempts.is_empty()) {
        GatewayError::BadRequest(format!(
            "model `{}` has no target that can serve this request: {}",
            route.name,
            unsupported.join("; ")
        ))
    } else if let (Some(retry_after), true) = (quota_wait, ctx.attempts.is_empty()) {
        GatewayError::QuotaExceeded { retry_after }
    } else if all_429 && !ctx.attempts.is_empty() {
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
