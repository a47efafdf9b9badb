//! Per-key rate limits through sockets: `rpm` and `tpm` exactly at the
//! boundary with a truthful `Retry-After`, token reservations settled to the
//! real usage (and given back when nothing was answered), and a reload that
//! keeps what was used while applying a changed limit.

mod common;
use common::*;
use std::time::Duration;

const LIMITED: &str = "sk-limited-key-2";

fn with_limits(ups: &str, models: &str, rate_limit: &str) -> String {
    config(ups, models, "").replace(
        &format!("    - {{name: tester, key: {CLIENT_KEY}}}\n"),
        &format!(
            "    - {{name: tester, key: {CLIENT_KEY}}}\n    - {{name: limited, key: {LIMITED}, rate_limit: {rate_limit}}}\n"
        ),
    )
}

/// The gateway with one model, `chat`, on an OK mock, and the limited key.
async fn one_model(rate_limit: &str) -> (Gateway, Mock) {
    let m = ok_mock().await;
    let ups = upstream("main", &m.url(), "");
    let gw = Gateway::start(&with_limits(
        &ups,
        "  chat: [{upstream: main}]\n",
        rate_limit,
    ))
    .await;
    (gw, m)
}

fn limited() -> Vec<(&'static str, &'static str)> {
    vec![("authorization", "Bearer sk-limited-key-2")]
}

/// A chat body of about 100 bytes (25 estimated prompt tokens) asking for
/// `max_tokens` completion tokens.
fn body(max_tokens: u64) -> String {
    let b = format!(
        r#"{{"model":"chat","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    format!("{b:<100}")
}

fn retry_after(r: &Response) -> u64 {
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After")
}

#[tokio::test(flavor = "multi_thread")]
async fn rpm_admits_n_and_refuses_the_next_with_the_true_wait() {
    let (gw, _m) = one_model("{rpm: 3}").await;
    for i in 0..3 {
        let r = gw.post("/v1/chat/completions", &limited(), &body(5)).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let r = gw.post("/v1/chat/completions", &limited(), &body(5)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_type(), "rate_limit_error");
    assert_eq!(r.error_code(), "rate_limit_exceeded");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("rpm"));
    // 3 per minute: the next one fits 20 s after the first.
    let wait = retry_after(&r);
    assert!((19..=20).contains(&wait), "Retry-After {wait}");
    // Other keys are not affected.
    assert_eq!(gw.chat("chat").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tpm_reserves_an_estimate_and_settles_to_the_reported_usage() {
    // The mock reports 15 tokens per answer; tpm 600 is 100 ms per token.
    let (gw, _m) = one_model("{tpm: 600}").await;
    // 25 + 400 reserved, then settled to 15.
    let r = gw
        .post("/v1/chat/completions", &limited(), &body(400))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // 25 + 560 = 585 fits in what is left (585) only because the first settled.
    let r = gw
        .post("/v1/chat/completions", &limited(), &body(560))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // 25 + 580 is more than the whole limit: admitted only with the bucket
    // full, 30 tokens (3 s) from now.
    let r = gw
        .post("/v1/chat/completions", &limited(), &body(580))
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tpm"));
    let wait = retry_after(&r);
    assert!((2..=3).contains(&wait), "Retry-After {wait}");
    // A small request still fits.
    let r = gw.post("/v1/chat/completions", &limited(), &body(10)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A streaming chat body of 100 bytes (25 estimated prompt tokens).
fn stream_body(max_tokens: u64) -> String {
    let b = format!(
        r#"{{"model":"chat","stream":true,"max_tokens":{max_tokens},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    format!("{b:<100}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_settles_to_its_usage_when_it_ends_and_to_the_estimate_when_the_client_leaves() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = mock(Behavior::Ok {
        events: 5,
        event_delay: Duration::from_millis(1),
    })
    .await;
    let ups = upstream("main", &m.url(), "");
    let gw = Gateway::start(&with_limits(
        &ups,
        "  chat: [{upstream: main}]\n",
        "{tpm: 600}",
    ))
    .await;
    // 25 + 400 reserved; the stream reports 9 + 5 (llmgate asked for usage),
    // so the next 425 fits in the 586 left.
    let r = gw
        .post("/v1/chat/completions", &limited(), &stream_body(400))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.text().contains("usage"),
        "the client did not ask for usage"
    );
    let r = gw
        .post("/v1/chat/completions", &limited(), &stream_body(400))
        .await;
    assert_eq!(
        r.status,
        200,
        "settled at the first stream's end: {}",
        r.text()
    );

    // A client that leaves mid-stream: its reservation settles too, once,
    // and the estimate stands (nothing reported usage). A long stream now;
    // 3 s refill the 2.8 s the two settled streams used.
    m.set(Behavior::Ok {
        events: 100,
        event_delay: Duration::from_millis(50),
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wire = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LIMITED}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}",
        stream_body(400)
    );
    let mut s = front::connect(&gw.addr).await;
    s.write_all(wire.as_bytes()).await.expect("write");
    let mut buf = [0u8; 4096];
    assert!(s.read(&mut buf).await.expect("read") > 0);
    drop(s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 425 estimated (42.5 s) stand: 425 more need 85 s of a 60 s bucket, so
    // the wait is ~24.5 s. Given back, it would have been admitted.
    let r = gw
        .post("/v1/chat/completions", &limited(), &stream_body(400))
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    let wait = retry_after(&r);
    assert!((23..=26).contains(&wait), "Retry-After {wait}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_nobody_answered_gives_its_tokens_back() {
    let down = status_mock(503).await;
    let ups = upstream("down", &down.url(), "");
    let gw = Gateway::start(&with_limits(
        &ups,
        "  chat: [{upstream: down}]\n",
        "{tpm: 1000}",
    ))
    .await;
    // Each reserves 25 + 700: without the give-back the second would be refused.
    for _ in 0..3 {
        let r = gw
            .post("/v1/chat/completions", &limited(), &body(700))
            .await;
        assert_eq!(r.status, 502, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_what_was_used_and_applies_the_new_limit() {
    let m = ok_mock().await;
    let ups = upstream("main", &m.url(), "");
    let models = "  chat: [{upstream: main}]\n";
    let cfg = |rpm: u32| {
        with_limits(&ups, models, &format!("{{rpm: {rpm}}}"))
            + "admin: {listen: \"@ADMIN@\", api_key: sk-admin-test-key-9}\n"
    };
    let gw = Gateway::start(&cfg(10)).await;
    for _ in 0..4 {
        let r = gw.post("/v1/chat/completions", &limited(), &body(5)).await;
        assert_eq!(r.status, 200);
    }
    gw.rewrite_config(&cfg(4));
    let admin = [("authorization", "Bearer sk-admin-test-key-9")];
    let r = request(&gw.admin, "POST", "/admin/reload", &admin, b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // 4 used of the new limit of 4.
    let r = gw.post("/v1/chat/completions", &limited(), &body(5)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let r = request(&gw.admin, "GET", "/admin/status", &admin, b"").await;
    let keys = r.json()["keys"].clone();
    let key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "limited")
        .unwrap()
        .clone();
    assert_eq!(key["rpm"], 4);
    assert_eq!(key["rpm_left"], 0);
    assert_eq!(key["tpm"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_quota_skips_its_target_until_the_reset() {
    let (a, b) = (ok_mock().await, ok_mock().await);
    let ups = upstream("a", &a.url(), "") + &upstream("b", &b.url(), "");
    // `a` renews every 3 seconds (cron with a seconds field); `b` has a quota
    // of one request that never renews.
    let models = "  chat:\n    - {upstream: a, priority: 1, quota: {requests: 2, reset: \"*/3 * * * * *\"}}\n    - {upstream: b, priority: 2, quota: {requests: 1}}\n";
    let cfg =
        config(&ups, models, "") + "admin: {listen: \"@ADMIN@\", api_key: sk-admin-test-key-9}\n";
    let gw = Gateway::start(&cfg).await;
    let admin = [("authorization", "Bearer sk-admin-test-key-9")];
    // Start just after a renewal, so the next one is ~3 s away.
    let dry = request(
        &gw.admin,
        "POST",
        "/admin/route",
        &admin,
        chat_body("chat", false).as_bytes(),
    )
    .await;
    let next = dry.json()["targets"][0]["quota"]["next_reset"]
        .as_str()
        .unwrap()
        .to_string();
    let next = humantime::parse_rfc3339(&next).unwrap();
    let wait = next
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;
    for _ in 0..2 {
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-llmgate-upstream"), Some("a"));
    }
    // a is used up: b answers, at the first attempt (a skip is no failure).
    let r = gw.chat("chat").await;
    assert_eq!(r.header("x-llmgate-upstream"), Some("b"), "{}", r.text());
    assert_eq!(r.attempts(), 1);
    // The dry run shows why a is skipped, and its state.
    let dry = request(
        &gw.admin,
        "POST",
        "/admin/route",
        &admin,
        chat_body("chat", false).as_bytes(),
    )
    .await;
    let v = dry.json();
    let skipped = v["skipped"].as_array().unwrap();
    let a_skip = skipped.iter().find(|s| s["upstream"] == "a").unwrap();
    assert_eq!(a_skip["why"], "quota used up", "{v}");
    assert_eq!(a_skip["quota"]["requests"]["used"], 2, "{v}");
    assert!(a_skip["quota"]["next_reset"].is_string(), "{v}");
    // Both used up: 429 quota_exceeded, Retry-After = a's renewal.
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "quota_exceeded");
    let wait = retry_after(&r);
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    // After the renewal a serves again.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-llmgate-upstream"), Some("a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_and_quotas_survive_a_restart_with_local_state() {
    let m = ok_mock().await;
    let ups = upstream("main", &m.url(), "");
    let models = "  chat: [{upstream: main, quota: {requests: 3}}]\n";
    let cfg = with_limits(&ups, models, "{rpm: 1}")
        + "state: {backend: local, path: \"@DIR@\"}\n"
        + "server: {grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 1}\n"
        + "admin: {listen: \"@ADMIN@\", api_key: sk-admin-test-key-9}\n";
    let mut gw = Gateway::start(&cfg).await;
    let r = gw.post("/v1/chat/completions", &limited(), &body(5)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.chat("chat").await.status, 200);
    // Saved within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let saved = std::fs::read_to_string(gw.dir().join("state.json")).expect("state.json");
    assert!(
        saved.contains("\"limited\"") && saved.contains("chat/main/chat"),
        "{saved}"
    );
    gw.restart().await;
    // Usage totals were saved too.
    let admin = [("authorization", "Bearer sk-admin-test-key-9")];
    let u = request(&gw.admin, "GET", "/admin/usage?group_by=key", &admin, b"").await;
    assert_eq!(u.status, 200, "{}", u.text());
    let rows = u.json()["rows"].clone();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    assert!(
        rows.as_array().unwrap().iter().all(|r| r["requests"] == 1),
        "{rows}"
    );
    // The key's minute goes on where it was.
    let r = gw.post("/v1/chat/completions", &limited(), &body(5)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limit_exceeded");
    // One request of the quota's three is left, then none.
    assert_eq!(gw.chat("chat").await.status, 200);
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "quota_exceeded");
    assert!(
        r.header("retry-after").is_none(),
        "a quota without reset never renews"
    );
}
