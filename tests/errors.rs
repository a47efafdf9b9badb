//! Client-facing contract through sockets: auth, every client error status and
//! its OpenAI JSON shape, /v1/models, /health, rate limits, and that no secret
//! ever reaches a response or a log line.

mod common;
use common::*;
use std::time::Duration;

async fn gateway_with(extra: &str) -> (Gateway, Mock) {
    let m = ok_mock().await;
    let ups = upstream("main", &m.url(), "");
    let models = "  chat: [{upstream: main, model: real-model}]\n  other: [{upstream: main}]\n";
    let yaml = config(&ups, models, extra).replace(
        &format!("    - {{name: tester, key: {CLIENT_KEY}}}\n"),
        &format!(
            "    - {{name: tester, key: {CLIENT_KEY}}}\n    - {{name: limited, key: sk-limited-key-2, models: [chat], rate_limit: {{rpm: 2}}}}\n"
        ),
    );
    (Gateway::start(&yaml).await, m)
}

fn assert_error_shape(r: &Response, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_variants() {
    let (gw, m) = gateway_with("").await;
    let body = chat_body("chat", false);
    let r = gw.post("/v1/chat/completions", &[], &body).await;
    assert_error_shape(&r, 401, "authentication_error");
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-wrong-key")],
            &body,
        )
        .await;
    assert_error_shape(&r, 401, "authentication_error");
    assert_eq!(r.error_code(), "invalid_api_key");
    for h in ["x-api-key", "api-key"] {
        let r = gw
            .post("/v1/chat/completions", &[(h, CLIENT_KEY)], &body)
            .await;
        assert_eq!(r.status, 200, "{h}: {}", r.text());
    }
    assert_eq!(gw.chat("chat").await.status, 200);
    assert_eq!(m.hits(), 3, "rejected requests never reach an upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_have_right_status_and_shape() {
    let (gw, m) = gateway_with("limits: {max_body_bytes: 4KiB}").await;
    let a = auth();
    let r = gw.post("/v1/chat/completions", &a, "not json").await;
    assert_error_shape(&r, 400, "invalid_request_error");
    let r = gw
        .post("/v1/chat/completions", &a, r#"{"messages":[]}"#)
        .await;
    assert_error_shape(&r, 400, "invalid_request_error");
    let r = gw.post("/v1/chat/completions", &a, r#"["model"]"#).await;
    assert_error_shape(&r, 400, "invalid_request_error");
    let deep = format!(
        r#"{{"model":"chat","x":{}{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let r = gw.post("/v1/chat/completions", &a, &deep).await;
    assert_error_shape(&r, 400, "invalid_request_error");
    let r = gw.get("/v1/chat/completions", &a).await;
    assert_error_shape(&r, 405, "invalid_request_error");
    let r = gw.chat("no-such-model").await;
    assert_error_shape(&r, 404, "invalid_request_error");
    assert_eq!(r.error_code(), "model_not_found");
    let big = format!(r#"{{"model":"chat","pad":"{}"}}"#, "x".repeat(5000));
    let r = gw.post("/v1/chat/completions", &a, &big).await;
    assert_error_shape(&r, 413, "invalid_request_error");
    assert_eq!(r.error_code(), "request_too_large");
    // Same without a Content-Length: the limit holds while reading a chunked body.
    let chunked = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let r = raw_request(&gw.addr, chunked.as_bytes()).await;
    assert_eq!(r.status, 413);
    let r = gw.get("/nope", &a).await;
    assert_error_shape(&r, 404, "invalid_request_error");
    // Model allow-list.
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-limited-key-2")],
            &chat_body("other", false),
        )
        .await;
    assert_error_shape(&r, 403, "permission_error");
    assert_eq!(m.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_continue_is_answered() {
    let (gw, _m) = gateway_with("").await;
    let body = chat_body("chat", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = front::connect(&gw.addr).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("100 Continue")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(body.as_bytes()).await.unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn models_list_respects_allow_list() {
    let (gw, _m) = gateway_with("").await;
    let ids = |r: &Response| -> Vec<String> {
        let v = r.json();
        assert_eq!(v["object"], "list");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let r = gw.get("/v1/models", &auth()).await;
    assert_eq!(ids(&r), vec!["chat", "other"]);
    let r = gw
        .get(
            "/v1/models",
            &[("authorization", "Bearer sk-limited-key-2")],
        )
        .await;
    assert_eq!(ids(&r), vec!["chat"]);
    assert_eq!(gw.get("/v1/models", &[]).await.status, 401);
    // Retrieve one (OpenAI's GET /v1/models/{id}); not allowed = not found.
    let r = gw.get("/v1/models/other", &auth()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "other");
    assert_eq!(r.json()["object"], "model");
    let limited = [("authorization", "Bearer sk-limited-key-2")];
    let r = gw.get("/v1/models/other", &limited).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "model_not_found")
    );
    let r = gw.get("/v1/models/no%2Fsuch", &auth()).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "model_not_found")
    );
    assert!(r.text().contains("no/such"), "{}", r.text());
    assert_eq!(gw.get("/v1/models/chat", &[]).await.status, 401);
    let r = gw.post("/v1/models/chat", &auth(), "{}").await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_per_key() {
    let (gw, _m) = gateway_with("").await;
    let h = [("authorization", "Bearer sk-limited-key-2")];
    let body = chat_body("chat", false);
    assert_eq!(gw.post("/v1/chat/completions", &h, &body).await.status, 200);
    // The minute window may roll over between requests; allow one extra success.
    let mut limited = None;
    for _ in 0..3 {
        let r = gw.post("/v1/chat/completions", &h, &body).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("rpm limit answered 429");
    assert_eq!(r.error_type(), "rate_limit_error");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_follows_upstream_checks() {
    let good = ok_mock().await;
    let bad = status_mock(500).await;
    let ups = upstream("good", &good.url(), "") + &upstream("bad", &bad.url(), "");
    let models = "  chat: [{upstream: bad}, {upstream: good}]\n";
    let yaml = config(&ups, models, "").replace(
        "health_check: {enabled: false, unhealthy_after: 1000}",
        "health_check: {interval: 100ms, timeout: 1s, unhealthy_after: 1, healthy_after: 1}",
    );
    let gw = Gateway::start(&yaml).await;
    let r = gw.get("/health", &[]).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    // The checks send the upstream's own key to GET <base_url>/models.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = good.seen();
    let check = seen
        .iter()
        .find(|s| s.method == "GET")
        .expect("health check reached the upstream");
    assert_eq!(check.path, "/v1/models");
    assert_eq!(
        check.header("authorization"),
        Some("Bearer sk-up-good-secret")
    );
    // Unhealthy `bad` is skipped although it comes first.
    // Count proxied requests only: health checks (GET) keep arriving meanwhile.
    let posts = |m: &Mock| m.seen().iter().filter(|s| s.method == "POST").count();
    let before = posts(&bad);
    let r = gw.chat("chat").await;
    assert_eq!((r.status, r.attempts()), (200, 1));
    assert_eq!(
        posts(&bad),
        before,
        "unhealthy upstream skipped while a healthy one exists"
    );
    good.set(Behavior::Status {
        status: 503,
        headers: vec![],
    });
    let mut status = 0;
    for _ in 0..50 {
        status = gw.get("/health", &[]).await.status;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 503, "no usable upstream -> /health 503");
    let r = gw.get("/health", &[]).await;
    assert_eq!(r.json()["status"], "unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_responses_or_logs() {
    let ok = ok_mock().await;
    let ups = upstream("good", &ok.url(), "")
        + &upstream("down", &dead_url(), "")
        + &upstream("limited", &status_mock(429).await.url(), "");
    let models = "  chat: [{upstream: down}, {upstream: good, priority: 2}]\n  fail: [{upstream: down}, {upstream: limited}]\n";
    let gw = Gateway::start(&config(&ups, models, "")).await;
    let mut texts = Vec::new();
    for r in [
        gw.chat("chat").await,
        gw.chat("fail").await,
        gw.chat("missing").await,
        gw.post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-client-test-key-1-wrong")],
            &chat_body("chat", false),
        )
        .await,
        gw.get("/v1/models", &auth()).await,
    ] {
        texts.push(format!("{:?} {}", r.headers, r.text()));
    }
    texts.push(gw.log());
    let all = texts.join("\n");
    for secret in [
        "sk-up-good-secret",
        "sk-up-down-secret",
        "sk-up-limited-secret",
        CLIENT_KEY,
    ] {
        assert!(!all.contains(secret), "secret {secret} leaked:\n{all}");
    }
    assert!(
        all.contains("down: connect error"),
        "attempts listed by upstream name:\n{all}"
    );
}
