//! What an attempt's failure means for policy: its kind (exhaustive
//! matches for the metric label and Retry-After), how a broken answer is
//! classified, and its effect on the upstream's breaker.

use crate::clock::now_ms;
use crate::state::Runtime;
use crate::upstream::exchange::ExchangeError;
use crate::upstream::h1::{H1Error, Head};
use crate::upstream::Upstream;
use std::time::{Duration, Instant, SystemTime};

/// What went wrong with an attempt, as far as policy cares. Every decision
/// about a failure is an exhaustive match on this (no wildcard arm): a new
/// kind cannot be added without deciding each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailKind {
    /// No connection could be opened.
    Connect,
    /// The connection was opened but TLS was not (handshake, certificate).
    Tls,
    /// A phase's timeout, or the request's total one.
    Timeout(Phase),
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

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// `connect_timeout`: TCP (and TLS) connect.
    Connect,
    /// `response_timeout`: request sent -> response head (and a plain
    /// answer's body).
    Response,
    /// `first_token_timeout`: a stream's head -> its first complete event.
    FirstToken,
    /// `retry.total_timeout`: the whole request.
    Total,
}

/// How a failed attempt weighs on the answer the client gets when every
/// attempt fails (design.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A 429, with the Retry-After it gave.
    RateLimited(Option<Duration>),
    /// A timeout: 504 when it is the last failure.
    TimedOut,
    /// Anything else: 502.
    Failed,
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
            FailKind::Timeout(
                Phase::Connect | Phase::Response | Phase::FirstToken | Phase::Total,
            ) => "timeout",
            FailKind::Connect => "connect_error",
            FailKind::Tls => "tls_error",
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
            | FailKind::Tls
            | FailKind::Timeout(_)
            | FailKind::Broken
            | FailKind::Malformed
            | FailKind::Unanswered => None,
        }
    }

    /// Whether it counts against the upstream (its health's failure count
    /// and its breaker). Every kind does today: even a fresh connection that
    /// closes unanswered or a malformed answer is the upstream's doing (a
    /// stale pooled connection never gets here: the exchange retries it).
    pub(super) fn counts_against_upstream(&self) -> bool {
        match self.kind {
            FailKind::Connect
            | FailKind::Tls
            | FailKind::Timeout(_)
            | FailKind::Status(..)
            | FailKind::Broken
            | FailKind::Malformed
            | FailKind::Unanswered => true,
        }
    }

    /// Its weight on the all-failed answer.
    pub(super) fn verdict(&self) -> Verdict {
        match self.kind {
            FailKind::Status(429, ra) => Verdict::RateLimited(ra),
            FailKind::Timeout(_) => Verdict::TimedOut,
            FailKind::Status(..)
            | FailKind::Connect
            | FailKind::Tls
            | FailKind::Broken
            | FailKind::Malformed
            | FailKind::Unanswered => Verdict::Failed,
        }
    }

    /// Whether the same target may be tried again (its `retries`): not when
    /// it named a time to come back, nor past the request's deadline.
    pub(super) fn same_target_may_retry(&self) -> bool {
        match self.kind {
            FailKind::Status(_, ra) => ra.is_none(),
            FailKind::Timeout(Phase::Total) => false,
            FailKind::Timeout(Phase::Connect | Phase::Response | Phase::FirstToken)
            | FailKind::Connect
            | FailKind::Tls
            | FailKind::Broken
            | FailKind::Malformed
            | FailKind::Unanswered => true,
        }
    }
}

/// A wait of `phase` ran out: the request's total timeout if its deadline
/// is what cut it short.
pub(super) fn timed_out(phase: Phase, deadline: Instant) -> FailKind {
    if Instant::now() >= deadline {
        FailKind::Timeout(Phase::Total)
    } else {
        FailKind::Timeout(phase)
    }
}

/// An exchange that got no answer head, as an attempt failure. The reasons
/// are what the client's all-failed message and the log show.
pub(super) fn exchange_failure(e: ExchangeError, deadline: Instant) -> Failure {
    match e {
        ExchangeError::ConnectTimeout => {
            Failure::new(timed_out(Phase::Connect, deadline), "connect timeout")
        }
        ExchangeError::Connect(kind) => {
            Failure::new(FailKind::Connect, format!("connect error ({kind})"))
        }
        ExchangeError::Tls(kind) => Failure::new(FailKind::Tls, format!("TLS error ({kind})")),
        ExchangeError::Unanswered(reason) => Failure::new(FailKind::Unanswered, reason),
        ExchangeError::Head(e) => Failure::new(
            body_failure(e, Phase::Response),
            format!("connection closed before response ({})", e.as_str()),
        ),
        ExchangeError::ResponseTimeout => {
            Failure::new(timed_out(Phase::Response, deadline), "response timeout")
        }
    }
}

/// A read that failed before commit, waiting in `phase`: bad framing is a
/// malformed answer.
pub(super) fn body_failure(e: H1Error, phase: Phase) -> FailKind {
    match e {
        H1Error::BadHead | H1Error::HeadTooLarge | H1Error::BadFraming => FailKind::Malformed,
        H1Error::Closed | H1Error::Io => FailKind::Broken,
        H1Error::Timeout => FailKind::Timeout(phase),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FailKind) -> Failure {
        Failure::new(kind, "x")
    }

    #[test]
    fn each_kind_decides_label_verdict_and_same_target_retry() {
        let wait = Some(Duration::from_secs(3));
        let cases = [
            (FailKind::Connect, "connect_error", Verdict::Failed, true),
            (FailKind::Tls, "tls_error", Verdict::Failed, true),
            (
                FailKind::Timeout(Phase::Connect),
                "timeout",
                Verdict::TimedOut,
                true,
            ),
            (
                FailKind::Timeout(Phase::FirstToken),
                "timeout",
                Verdict::TimedOut,
                true,
            ),
            (
                FailKind::Timeout(Phase::Total),
                "timeout",
                Verdict::TimedOut,
                false,
            ),
            (
                FailKind::Status(429, wait),
                "status_429",
                Verdict::RateLimited(wait),
                false,
            ),
            (
                FailKind::Status(429, None),
                "status_429",
                Verdict::RateLimited(None),
                true,
            ),
            (
                FailKind::Status(503, None),
                "status_5xx",
                Verdict::Failed,
                true,
            ),
            (
                FailKind::Status(401, None),
                "status_4xx",
                Verdict::Failed,
                true,
            ),
            (FailKind::Broken, "closed", Verdict::Failed, true),
            (FailKind::Unanswered, "closed", Verdict::Failed, true),
            (FailKind::Malformed, "malformed", Verdict::Failed, true),
        ];
        for (kind, label, verdict, again) in cases {
            let x = f(kind);
            assert_eq!(x.label(), label, "{kind:?}");
            assert_eq!(x.verdict(), verdict, "{kind:?}");
            assert_eq!(x.same_target_may_retry(), again, "{kind:?}");
            assert!(x.counts_against_upstream(), "{kind:?}");
        }
        assert_eq!(f(FailKind::Status(429, wait)).retry_after(), wait);
        assert_eq!(f(FailKind::Tls).retry_after(), None);
    }

    #[test]
    fn a_read_timeout_carries_its_phase() {
        assert_eq!(
            body_failure(H1Error::Timeout, Phase::FirstToken),
            FailKind::Timeout(Phase::FirstToken)
        );
        assert_eq!(
            body_failure(H1Error::BadFraming, Phase::Response),
            FailKind::Malformed
        );
        assert_eq!(
            body_failure(H1Error::Closed, Phase::Response),
            FailKind::Broken
        );
    }
}
