//! Routing, rewrite and the attempt loop through real sockets: priority, weights,
//! every pre-commit failure mode failing over, pass-through of client errors,
//! all-failed statuses, and large bodies re-sent intact.

mod common;
use common::*;
use std::time::Duration;

fn two_tier(a: &str, b: &str, a_opts: &str) -> String {
    let ups = upstream("a", a, a_opts) + &upstream("b", b, "");
    config(&ups, "  chat:\n    - {upstream: a, model: model-a, priority: 1}\n    - {upstream: b, model: model-b, priority: 2}\n", "")
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrites_model_and_auth_and_never_forwards_client_key() {
    let m = ok_mock().await;
    let ups = upstream("up", &m.url(), "headers: {OpenAI-Organization: org-test}");
    let gw = Gateway::start(&config(
        &ups,
        "  chat: [{upstream: up, model: \"gpt-4o-mini\"}]\n",
        "",
    ))
    .await;
    let body = r#"{"messages":[{"role":"user","content":"say \"model\": chat"}],"model":"chat","temperature":0.5}"#;
    let mut h = auth();
    h.push(("x-api-key", CLIENT_KEY));
    h.push(("x-request-id", "req-abc-123"));
    h.push(("openai-beta", "assistants=v2"));
    let r = gw.post("/v1/chat/completions?trace=1", &h, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
    assert_eq!(r.header("x-llmgate-upstream"), Some("up"));
    assert_eq!(r.header("x-llmgate-attempts"), Some("1"));
    let seen = m.seen().pop().expect("upstream got the request");
    assert_eq!(seen.path, "/v1/chat/completions?trace=1");
    assert_eq!(
        String::from_utf8(seen.body.clone()).unwrap(),
        r#"{"messages":[{"role":"user","content":"say \"model\": chat"}],"model":"gpt-4o-mini","temperature":0.5}"#,
        "only the model value changes"
    );
    assert_eq!(seen.header("authorization"), Some("Bearer sk-up-up-secret"));
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(seen.header("openai-organization"), Some("org-test"));
    assert_eq!(seen.header("openai-beta"), Some("assistants=v2"));
    assert_eq!(seen.header("x-request-id"), Some("req-abc-123"));
    assert_eq!(seen.header("host"), Some(m.addr.to_string().as_str()));
    assert!(!format!("{:?}", seen.headers).contains(CLIENT_KEY));
    // Embeddings and any other POST /v1/* with a model route the same way.
    let r = gw
        .post("/v1/embeddings", &auth(), r#"{"model":"chat","input":"x"}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(m.seen().pop().unwrap().path, "/v1/embeddings");
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_order_and_failover_on_503() {
    let a = status_mock(503).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "")).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.attempts(), r.header("x-llmgate-upstream")),
        (2, Some("b"))
    );
    assert_eq!(
        r.json()["model"],
        "model-b",
        "second target gets its own model name"
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
    a.set(Behavior::default());
    let r = gw.chat("chat").await;
    assert_eq!(
        (r.attempts(), r.header("x-llmgate-upstream")),
        (1, Some("a")),
        "tier 1 first when it works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_split_traffic_within_a_tier() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let ups = upstream("a", &a.url(), "") + &upstream("b", &b.url(), "");
    let gw = Gateway::start(&config(
        &ups,
        "  chat: [{upstream: a, weight: 3}, {upstream: b, weight: 1}]\n",
        "",
    ))
    .await;
    let n = 400;
    for _ in 0..n {
        assert_eq!(gw.chat("chat").await.status, 200);
    }
    // Expected 300; binomial sd ~8.7, bounds are > 5 sd.
    let share = a.hits();
    assert!((255..=345).contains(&share), "a got {share} of {n}");
    assert_eq!(a.hits() + b.hits(), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_on_every_pre_commit_failure() {
    let b = ok_mock().await;
    let cases: Vec<(&str, Behavior)> = vec![
        // No Retry-After here: that would (rightly) cool `a` down for the next cases.
        (
            "429",
            Behavior::Status {
                status: 429,
                headers: vec![],
            },
        ),
        (
            "500",
            Behavior::Status {
                status: 500,
                headers: vec![],
            },
        ),
        (
            "401",
            Behavior::Status {
                status: 401,
                headers: vec![],
            },
        ),
        (
            "403",
            Behavior::Status {
                status: 403,
                headers: vec![],
            },
        ),
        ("close before response", Behavior::Close),
        (
            "stall before headers",
            Behavior::StallBeforeHeaders(Duration::from_secs(10)),
        ),
    ];
    let a = ok_mock().await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "response_timeout: 300ms")).await;
    for (name, behavior) in cases {
        a.set(behavior);
        let before = b.hits();
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.attempts(), 2, "{name}");
        assert_eq!(r.header("x-llmgate-upstream"), Some("b"), "{name}");
        assert_eq!(b.hits(), before + 1, "{name}");
        assert!(r.complete);
    }
    // Connection refused.
    let gw = Gateway::start(&two_tier(&dead_url(), &b.url(), "")).await;
    let r = gw.chat("chat").await;
    assert_eq!((r.status, r.attempts()), (200, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_from_upstream_pass_through_without_failover() {
    let a = mock(Behavior::Status {
        status: 400,
        headers: vec![("x-upstream-thing".into(), "1".into())],
    })
    .await;
    let b = ok_mock().await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "")).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "mock failure 400",
        "upstream body as sent"
    );
    assert_eq!(r.header("x-upstream-thing"), Some("1"));
    assert_eq!((a.hits(), b.hits()), (1, 0));
    // Per-upstream retry_on narrows what fails over: 503 not listed -> passed through.
    a.set(Behavior::Status {
        status: 503,
        headers: vec![],
    });
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "retry_on: [500]")).await;
    let r = gw.chat("chat").await;
    assert_eq!((r.status, b.hits()), (503, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_failed_statuses() {
    // Every failure a 429: 429 with the smallest Retry-After.
    let a = mock(Behavior::Status {
        status: 429,
        headers: vec![("retry-after".into(), "7".into())],
    })
    .await;
    let b = mock(Behavior::Status {
        status: 429,
        headers: vec![("retry-after".into(), "3".into())],
    })
    .await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "")).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.error_type(), "rate_limit_error");
    assert_eq!(r.attempts(), 2);
    // Last failure a timeout: 504.
    a.set(Behavior::Status {
        status: 502,
        headers: vec![],
    });
    b.set(Behavior::StallBeforeHeaders(Duration::from_secs(10)));
    let ups = upstream("a", &a.url(), "") + &upstream("b", &b.url(), "response_timeout: 200ms");
    let gw = Gateway::start(&config(
        &ups,
        "  chat:\n    - {upstream: a}\n    - {upstream: b, priority: 2}\n",
        "",
    ))
    .await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.error_code(), "upstream_timeout");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("a: status 502") && msg.contains("b: response timeout"),
        "{msg}"
    );
    // Otherwise 502.
    let gw = Gateway::start(&two_tier(&dead_url(), &a.url(), "")).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.error_type(), "upstream_error");
    // total_timeout bounds all attempts together.
    let ups = upstream("a", &b.url(), "") + &upstream("b", &b.url(), "");
    let yaml = config(
        &ups,
        "  chat: [{upstream: a}, {upstream: b}]\n",
        "retry: {total_timeout: 300ms}",
    );
    let gw = Gateway::start(&yaml).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 504);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_attempts_caps_the_loop() {
    let a = status_mock(500).await;
    let ups =
        upstream("a", &a.url(), "") + &upstream("b", &a.url(), "") + &upstream("c", &a.url(), "");
    let yaml = config(
        &ups,
        "  chat: [{upstream: a}, {upstream: b}, {upstream: c}]\n",
        "retry: {max_attempts: 2}",
    );
    let gw = Gateway::start(&yaml).await;
    let r = gw.chat("chat").await;
    assert_eq!((r.status, r.attempts(), a.hits()), (502, 2, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mib_body_intact_on_first_attempt_and_after_failover() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "")).await;
    let filler: String = (0..(1 << 20))
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let body = format!(r#"{{"model":"chat","messages":[{{"role":"user","content":"{filler}"}}]}}"#);
    let expect = |m: &str| body.replacen(r#""model":"chat""#, &format!(r#""model":"{m}""#), 1);
    let r = gw.post("/v1/chat/completions", &auth(), &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(a.seen().pop().unwrap().body, expect("model-a").into_bytes());
    a.set(Behavior::Status {
        status: 503,
        headers: vec![],
    });
    let r = gw.post("/v1/chat/completions", &auth(), &body).await;
    assert_eq!((r.status, r.attempts()), (200, 2));
    assert_eq!(
        a.seen().pop().unwrap().body,
        expect("model-a").into_bytes(),
        "failed attempt got the whole body"
    );
    assert_eq!(b.seen().pop().unwrap().body, expect("model-b").into_bytes());
}

/// `retries: N` tries the same upstream again (after a short jittered pause)
/// before moving on; every try counts in x-llmgate-attempts.
#[tokio::test(flavor = "multi_thread")]
async fn same_target_retries_come_before_the_next_target_and_are_counted() {
    let fail = || Behavior::Status {
        status: 503,
        headers: vec![],
    };
    let a = ok_mock().await;
    let b = ok_mock().await;
    let gw =
        Gateway::start(&(two_tier(&a.url(), &b.url(), "retries: 2") + "retry: {backoff: 10ms}\n"))
            .await;
    // One 503, then the same upstream answers.
    a.once(fail());
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-llmgate-upstream"), Some("a"));
    assert_eq!(r.attempts(), 2);
    // Always failing: three tries on a, then b.
    a.set(fail());
    let before = a.hits();
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-llmgate-upstream"), Some("b"));
    assert_eq!(r.attempts(), 4);
    assert_eq!(a.hits() - before, 3);
    // A 429 that says when to come back moves on at once.
    a.set(Behavior::Status {
        status: 429,
        headers: vec![("retry-after".into(), "30".into())],
    });
    let before = a.hits();
    let r = gw.chat("chat").await;
    assert_eq!((r.status, r.attempts()), (200, 2));
    assert_eq!(a.hits() - before, 1);
}

/// `sticky: {header: ...}`: a session keeps its target of the tier while it
/// is usable (for providers' prompt caches), sessions spread over the
/// targets, and a session whose target fails moves, consistently.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_stick_to_one_target_and_move_when_it_fails() {
    let mocks = [ok_mock().await, ok_mock().await, ok_mock().await];
    let ups: String = ["a", "b", "c"]
        .iter()
        .zip(&mocks)
        .map(|(n, m)| upstream(n, &m.url(), ""))
        .collect();
    let gw = Gateway::start(&config(
        &ups,
        "  chat:\n    - {upstream: a}\n    - {upstream: b}\n    - {upstream: c}\n",
        "sticky: {header: X-Session-Id}",
    ))
    .await;
    let ask = |session: String| {
        let gw = &gw;
        async move {
            let mut h: Vec<(&str, &str)> = auth();
            h.push(("x-session-id", &session));
            gw.post("/v1/chat/completions", &h, &chat_body("chat", false))
                .await
        }
    };
    let mut seen = std::collections::HashSet::new();
    for s in 0..20 {
        let first = ask(format!("session-{s}")).await;
        let up = first.header("x-llmgate-upstream").unwrap_or("").to_string();
        for _ in 0..5 {
            let r = ask(format!("session-{s}")).await;
            assert_eq!(
                r.header("x-llmgate-upstream"),
                Some(up.as_str()),
                "session-{s}"
            );
        }
        seen.insert(up);
    }
    assert!(seen.len() >= 2, "sessions spread over targets: {seen:?}");
    // session-0's target fails: it moves, to the same place every time.
    let home = ask("session-0".into())
        .await
        .header("x-llmgate-upstream")
        .unwrap_or("")
        .to_string();
    let idx = ["a", "b", "c"].iter().position(|n| *n == home).unwrap_or(0);
    mocks[idx].set(Behavior::Status {
        status: 503,
        headers: vec![],
    });
    let moved = ask("session-0".into()).await;
    assert_eq!(moved.status, 200);
    let new_home = moved.header("x-llmgate-upstream").unwrap_or("").to_string();
    assert_ne!(new_home, home);
    for _ in 0..10 {
        let r = ask("session-0".into()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-llmgate-upstream"), Some(new_home.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_failure_fails_over_and_is_named_as_tls() {
    // A plain-HTTP server behind an https:// base URL: TCP connects, TLS fails.
    let plain = ok_mock().await;
    let b = ok_mock().await;
    let tls_url = format!("https://{}/v1", plain.addr);
    let ups = upstream("a", &tls_url, "connect_timeout: 2s") + &upstream("b", &b.url(), "");
    let gw = Gateway::start(&config(
        &ups,
        "  chat:\n    - {upstream: a, model: m, priority: 1}\n    - {upstream: b, model: m, priority: 2}\n  only-a: [{upstream: a, model: m}]\n",
        "",
    ))
    .await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.attempts(), 2);
    assert_eq!(r.header("x-llmgate-upstream"), Some("b"));
    let r = gw.chat("only-a").await;
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("a: TLS error"), "{message}");
}
