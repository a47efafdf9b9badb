//! All per-request state, pinned to the runtime snapshot the request started on.

use super::usage::Usage;
use crate::formats::Dialect;
use crate::routing::ModelRoute;
use crate::state::Runtime;
use crate::telemetry::Metrics;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one attempt ended, for the access log and the all-failed message.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub upstream: usize,
    pub outcome: Outcome,
}

/// An attempt's end: the status of an answer that was used, else why it was
/// given up (a fixed text or a short formatted one; never a secret).
#[derive(Debug, Clone)]
pub enum Outcome {
    Answered(u16),
    Failed(std::borrow::Cow<'static, str>),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Answered(status) => write!(f, "{status}"),
            Outcome::Failed(reason) => f.write_str(reason),
        }
    }
}

/// The model a request named: its route once found (names and metric series
/// shared, no lookup again at the end), else the name as sent.
pub enum ModelSeen {
    Routed(Arc<ModelRoute>),
    Unrouted(String),
}

/// What the handler did; `Cut` drops the connection (a committed
/// response could not be completed and must not look complete).
pub enum Done {
    Answered,
    Cut,
}

pub struct RequestCtx {
    pub runtime: Arc<Runtime>,
    pub started: Instant,
    pub request_id: String,
    /// The client key's configured name (shared, not copied per request).
    pub key_name: Option<Arc<str>>,
    pub model: Option<ModelSeen>,
    pub attempts: Vec<AttemptRecord>,
    /// Name of the upstream whose answer reached the client.
    pub served_by: Option<usize>,
    /// Set when a committed response was cut (logged as such).
    pub cut: Option<String>,
    pub client_gone: bool,
    pub metrics: Arc<Metrics>,
    /// Request start to first response byte (set at commit).
    pub ttfb: Option<Duration>,
    pub bytes_sent: usize,
    pub usage: Option<Usage>,
    /// Tokens reserved against the key's `tpm`, settled when the request ends.
    pub reservation: Option<crate::limits::Reservation>,
    /// Prompt tokens estimated from the request body (bytes / 4), for usage
    /// an answer did not report.
    pub prompt_estimate: u64,
    /// The serving target's quota, which counts the answer's tokens.
    pub quota: Option<Arc<crate::limits::Quota>>,
    /// llmgate added `stream_options.include_usage` for its own accounting:
    /// a stream's answer gets what that adds taken out.
    pub strip_usage: bool,
    /// What the client speaks (its endpoint): the shape of its errors, and
    /// what each target's answer is translated into.
    pub dialect: Dialect,
}

impl RequestCtx {
    pub fn new(runtime: Arc<Runtime>, metrics: Arc<Metrics>) -> Self {
        RequestCtx {
            runtime,
            started: Instant::now(),
            request_id: String::new(),
            key_name: None,
            model: None,
            attempts: Vec::new(),
            served_by: None,
            cut: None,
            client_gone: false,
            metrics,
            ttfb: None,
            bytes_sent: 0,
            usage: None,
            reservation: None,
            prompt_estimate: 0,
            quota: None,
            strip_usage: false,
            dialect: Dialect::Chat,
        }
    }

    /// Settle the `tpm` reservation (once): the reported usage, else the
    /// estimate for a success (`answered_ok`), else nothing was used.
    pub fn settle_tokens(&self, answered_ok: bool) {
        if let Some(r) = &self.reservation {
            r.settle(self.tokens_used(answered_ok, r.tokens));
        }
    }

    /// The answer ended: the key's reservation settles and the serving
    /// target's quota counts its tokens (each once).
    pub fn answer_ended(&mut self, answered_ok: bool) {
        self.settle_tokens(answered_ok);
        if let Some(q) = self.quota.take() {
            let estimate = self.reservation.as_ref().map_or(0, |r| r.tokens);
            q.count_tokens(self.tokens_used(answered_ok, estimate));
        }
    }

    fn tokens_used(&self, answered_ok: bool, estimate: u64) -> u64 {
        match self.usage {
            Some((p, c)) => p + c,
            None if answered_ok => estimate,
            None => 0,
        }
    }

    pub fn model_name(&self) -> Option<&str> {
        match &self.model {
            Some(ModelSeen::Routed(r)) => Some(&r.name),
            Some(ModelSeen::Unrouted(m)) => Some(m),
            None => None,
        }
    }

    /// `upstream: reason; upstream: reason` — names only, never keys or URLs.
    pub fn attempt_summary(&self) -> String {
        let mut s = String::new();
        for a in &self.attempts {
            if !s.is_empty() {
                s.push_str("; ");
            }
            let name = self
                .runtime
                .upstreams
                .get(a.upstream)
                .map(|u| u.name())
                .unwrap_or("?");
            s.push_str(name);
            s.push_str(": ");
            let _ = write!(s, "{}", a.outcome);
        }
        s
    }
}

/// Keep the client's `x-request-id` when it is sane, else make one.
pub fn request_id(client: Option<&[u8]>) -> String {
    match client {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic()) => {
            crate::framing::text(v).unwrap_or_default().to_owned()
        }
        _ => {
            // By hand: `format!` through the formatting machinery cost more
            // than the rest of the request's bookkeeping.
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let v = fastrand::u128(..);
            let mut id = [0u8; 32];
            for (i, d) in id.iter_mut().enumerate() {
                *d = HEX[((v >> (4 * (31 - i))) & 0xf) as usize];
            }
            crate::framing::text(&id).unwrap_or_default().to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn request_ids_are_kept_or_made_as_32_hex_digits() {
        assert_eq!(request_id(Some(b"abc-123")), "abc-123");
        for bad in [&b""[..], b"has space", &[b'x'; 129]] {
            let id = request_id(Some(bad));
            assert_eq!(id.len(), 32, "{id}");
        }
        let a = request_id(None);
        assert!(
            a.len() == 32
                && a.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a, request_id(None));
    }
}
