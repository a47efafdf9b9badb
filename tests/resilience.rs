//! Passive health through sockets: the circuit breaker opens after repeated
//! failures, half-opens for one trial, closes on success; Retry-After cools an
//! upstream down; client errors never open it.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn breaker_cfg(a: &str, b: &str) -> String {
    let ups = upstream("a", a, "") + &upstream("b", b, "");
    config(
        &ups,
        "  chat:\n    - {upstream: a, priority: 1}\n    - {upstream: b, priority: 2}\n",
        "",
    )
    .replace(
        "unhealthy_after: 1000",
        "unhealthy_after: 2, cooldown: 400ms, max_cooldown: 2s",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn breaker_opens_half_opens_and_closes() {
    let a = status_mock(503).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&breaker_cfg(&a.url(), &b.url())).await;
    for _ in 0..2 {
        assert_eq!(gw.chat("chat").await.attempts(), 2);
    }
    // Open: a is skipped while b works.
    for _ in 0..5 {
        let r = gw.chat("chat").await;
        assert_eq!(
            (r.status, r.attempts(), r.header("x-llmgate-upstream")),
            (200, 1, Some("b"))
        );
    }
    assert_eq!(a.hits(), 2);
    // After the cooldown (400 ms +-20%) one trial goes to a; it succeeds and closes it.
    a.set(Behavior::default());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.header("x-llmgate-upstream"), Some("a"), "half-open trial");
    assert_eq!(a.hits(), 3);
    for _ in 0..3 {
        assert_eq!(
            gw.chat("chat").await.header("x-llmgate-upstream"),
            Some("a")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_trial_reopens() {
    let a = status_mock(500).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&breaker_cfg(&a.url(), &b.url())).await;
    gw.chat("chat").await;
    gw.chat("chat").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        gw.chat("chat").await.attempts(),
        2,
        "trial went to a and failed"
    );
    assert_eq!(a.hits(), 3);
    for _ in 0..3 {
        assert_eq!(
            gw.chat("chat").await.attempts(),
            1,
            "re-opened at once after a failed trial"
        );
    }
    assert_eq!(a.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_cools_an_upstream_down() {
    let a = mock(Behavior::Status {
        status: 429,
        headers: vec![("retry-after".into(), "1".into())],
    })
    .await;
    let b = ok_mock().await;
    let gw = Gateway::start(
        &breaker_cfg(&a.url(), &b.url()).replace("unhealthy_after: 2", "unhealthy_after: 100"),
    )
    .await;
    assert_eq!(gw.chat("chat").await.attempts(), 2);
    a.set(Behavior::default());
    for _ in 0..3 {
        assert_eq!(
            gw.chat("chat").await.header("x-llmgate-upstream"),
            Some("b"),
            "a cooling down"
        );
    }
    assert_eq!(a.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        gw.chat("chat").await.header("x-llmgate-upstream"),
        Some("a"),
        "back after Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_never_open_the_breaker() {
    let a = status_mock(400).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&breaker_cfg(&a.url(), &b.url())).await;
    for _ in 0..6 {
        assert_eq!(gw.chat("chat").await.status, 400);
    }
    assert_eq!((a.hits(), b.hits()), (6, 0));
}

/// `retry.backoff`: a retry on the same tier waits between half and all of it;
/// moving to the next tier does not wait.
#[tokio::test(flavor = "multi_thread")]
async fn same_tier_retries_back_off() {
    let fail = || {
        mock(Behavior::Status {
            status: 503,
            headers: vec![],
        })
    };
    let (a, b, c) = (fail().await, fail().await, ok_mock().await);
    let ups =
        upstream("a", &a.url(), "") + &upstream("b", &b.url(), "") + &upstream("c", &c.url(), "");
    let gw = Gateway::start(&config(
        &ups,
        "  same:\n    - {upstream: a, priority: 1}\n    - {upstream: b, priority: 1}\n    - {upstream: c, priority: 2}\n  cross:\n    - {upstream: a, priority: 1}\n    - {upstream: c, priority: 2}\n",
        "retry: {backoff: 2s}",
    ))
    .await;
    // Any pause is at least 1 s (half of 2 s).
    let t = Instant::now();
    let r = gw.chat("cross").await;
    assert_eq!((r.status, r.attempts()), (200, 2));
    assert!(t.elapsed() < Duration::from_secs(1), "paused between tiers");
    let t = Instant::now();
    let r = gw.chat("same").await;
    assert_eq!((r.status, r.attempts()), (200, 3));
    assert_eq!(r.header("x-llmgate-upstream"), Some("c"));
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "no pause inside a tier"
    );
}
