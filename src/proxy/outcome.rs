//! What an attempt's failure means for policy: its kind (exhaustive
//! matches for the metric label and Retry-After), how a broken answer is
//! classified, and its effect on the upstream's breaker.

use crate::state::Runtime;
use crate::upstream::circuit::now_ms;
use crate::upstream::h1::{H1Error, Head};
use crate::upstream::Upstream;
use std::time::{Duration, SystemTime};

/// What went wrong with an attempt, as far as policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailKind {
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
pub(super) struct Failure {
    pub(super) reason: String,
    pub(super) kind: FailKind,
}

impl Failure {
    pub(super) fn new(kind: FailKind, reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            kind,
        }
    }

    /// Bounded label for metrics.
    pub(super) fn label(&self) -> &'static str {
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
    pub(super) fn retry_after(&self) -> Option<Duration> {
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

/// A body read that failed before commit: bad framing is a malformed answer.
pub(super) fn body_failure(e: H1Error) -> FailKind {
    match e {
        H1Error::BadHead | H1Error::HeadTooLarge | H1Error::BadFraming => FailKind::Malformed,
        H1Error::Closed | H1Error::Io => FailKind::Broken,
        H1Error::Timeout => FailKind::Timeout,
    }
}

/// `Retry-After` (seconds or HTTP date) or OpenAI's `x-ratelimit-reset-*` ("1s", "6m0s").
pub(super) fn retry_after(h: &Head) -> Option<Duration> {
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

pub(super) fn record_failure(rt: &Runtime, up: &Upstream, wait: Option<Duration>) {
    if up.health.breaker.failure(now_ms(), &rt.breaker, wait) {
        log::warn!(
            "upstream {} circuit opened after repeated failures",
            up.name()
        );
    }
}
