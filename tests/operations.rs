//! Operations through sockets: admin auth and every admin endpoint, Prometheus
//! metrics, drain/enable, the JSON access log and its secrecy (hot reload:
//! tests/reload.rs).

mod common;
use common::admin::*;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn admin_requires_its_key() {
    let a = ok_mock().await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &a.url(), "")).await;
    for path in ["/metrics", "/admin/upstreams", "/admin/config"] {
        let r = request(&gw.admin, "GET", path, &[], b"").await;
        assert_eq!(r.status, 401, "{path}");
        let r = request(
            &gw.admin,
            "GET",
            path,
            &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
            b"",
        )
        .await;
        assert_eq!(r.status, 401, "client key is not the admin key: {path}");
        assert_eq!(admin(&gw, "GET", path, "").await.status, 200, "{path}");
    }
    assert_eq!(admin(&gw, "GET", "/admin/reload", "").await.status, 405);
    assert_eq!(admin(&gw, "GET", "/nope", "").await.status, 404);
    // The admin API is not on the main listener.
    assert_eq!(gw.get("/admin/upstreams", &auth()).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_count() {
    let a = status_mock(503).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &b.url(), "")).await;
    for _ in 0..3 {
        assert_eq!(gw.chat("chat").await.status, 200);
    }
    gw.chat("nope").await;
    // Metrics are counted after the client has its answer (and requests may
    // end on either worker thread, in any order): scrape until every request
    // shows (bounded).
    let mut r = admin(&gw, "GET", "/metrics", "").await;
    for _ in 0..40 {
        let t = r.text();
        if t.contains(r#"status="4xx""#)
            && t.contains(r#"llmgate_requests_total{model="chat",status="2xx",upstream="b"} 3"#)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = admin(&gw, "GET", "/metrics", "").await;
    }
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').expect("sample line: name value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        samples.insert(name.to_string(), v);
    }
    let get = |k: &str| {
        samples
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("missing {k} in\n{text}"))
    };
    assert_eq!(
        get(r#"llmgate_requests_total{model="chat",status="2xx",upstream="b"}"#),
        3.0
    );
    assert_eq!(
        get(r#"llmgate_requests_total{model="-",status="4xx",upstream="-"}"#),
        1.0
    );
    assert_eq!(
        get(r#"llmgate_attempts_total{outcome="status_5xx",upstream="a"}"#),
        3.0
    );
    assert_eq!(
        get(r#"llmgate_attempts_total{outcome="ok",upstream="b"}"#),
        3.0
    );
    assert_eq!(
        get(r#"llmgate_tokens_total{kind="prompt",model="chat",upstream="b"}"#),
        27.0
    );
    assert_eq!(
        get(r#"llmgate_request_duration_seconds_count{model="chat"}"#),
        3.0
    );
    assert_eq!(
        get(r#"llmgate_time_to_first_byte_seconds_count{model="chat"}"#),
        3.0
    );
    assert_eq!(get(r#"llmgate_upstream_healthy{upstream="a"}"#), 1.0);
    assert!(samples.contains_key("llmgate_in_flight_requests"));
    assert!(samples.contains_key(r#"llmgate_upstream_circuit_state{upstream="a"}"#));
    assert!(!text.contains("sk-"), "no secret in metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_config_drain_and_route() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &b.url(), "")).await;
    gw.chat("chat").await;
    let v = admin(&gw, "GET", "/admin/upstreams", "").await.json();
    let ups = v["upstreams"].as_array().unwrap();
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0]["name"], "a");
    assert_eq!(ups[0]["state"], "healthy");
    assert_eq!(ups[0]["requests"], 1);
    let cfg = admin(&gw, "GET", "/admin/config", "").await;
    assert_eq!(cfg.json()["models"]["chat"][0]["upstream"], "a");
    for secret in ["sk-up-a-secret", CLIENT_KEY, ADMIN_KEY] {
        assert!(!cfg.text().contains(secret), "config leaks {secret}");
    }
    // Dry run: a first, then b; nothing is sent upstream.
    let before = a.hits();
    let route = admin(&gw, "POST", "/admin/route", &chat_body("chat", false))
        .await
        .json();
    let order: Vec<&str> = route["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["upstream"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec!["a", "b"]);
    assert_eq!(a.hits(), before);
    assert_eq!(
        admin(&gw, "POST", "/admin/route", &chat_body("ghost", false))
            .await
            .status,
        404
    );
    // Drain a: no new requests, not even fail-open ones.
    assert_eq!(
        admin(&gw, "POST", "/admin/upstreams/a/drain", "")
            .await
            .json()["state"],
        "drained"
    );
    for _ in 0..3 {
        assert_eq!(
            gw.chat("chat").await.header("x-llmgate-upstream"),
            Some("b")
        );
    }
    b.set(Behavior::Status {
        status: 500,
        headers: vec![],
    });
    assert_eq!(
        gw.chat("chat").await.status,
        502,
        "drained a is not used even when b fails"
    );
    assert_eq!(a.hits(), before);
    let route = admin(&gw, "POST", "/admin/route", &chat_body("chat", false))
        .await
        .json();
    assert_eq!(route["skipped"][0]["why"], "drained");
    admin(&gw, "POST", "/admin/upstreams/a/enable", "").await;
    assert_eq!(
        gw.chat("chat").await.header("x-llmgate-upstream"),
        Some("a")
    );
    assert_eq!(
        admin(&gw, "POST", "/admin/upstreams/zzz/drain", "")
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_is_json_and_has_no_secrets() {
    let a = status_mock(503).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &b.url(), "")).await;
    let mut h = auth();
    h.push(("x-request-id", "trace-me-42"));
    gw.post(
        "/v1/chat/completions?api_key=sk-in-query",
        &h,
        &chat_body("chat", false),
    )
    .await;
    gw.post(
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-wrong-client-key")],
        &chat_body("chat", false),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.starts_with("{") && l.contains("trace-me-42"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("access line is JSON");
    assert_eq!(v["key"], "tester");
    assert_eq!(v["model"], "chat");
    assert_eq!(v["status"], 200);
    assert_eq!(v["upstream"], "b");
    assert_eq!(v["attempts"], serde_json::json!(["a:status 503", "b:200"]));
    assert_eq!(v["prompt_tokens"], 9);
    assert!(v["duration_ms"].as_f64().is_some() && v["ttfb_ms"].as_f64().is_some());
    for secret in [
        "sk-up-a-secret",
        "sk-up-b-secret",
        CLIENT_KEY,
        ADMIN_KEY,
        "sk-in-query",
        "sk-wrong-client-key",
    ] {
        assert!(!log.contains(secret), "log leaks {secret}:\n{log}");
    }
}

/// logrotate's way: rename the file, send SIGUSR1. The process keeps
/// running, lines before the signal are in the renamed file, lines after it
/// in a new file at the configured path, and none is lost. SIGUSR2 and
/// SIGWINCH are ignored (by default they would end the process).
#[tokio::test(flavor = "multi_thread")]
async fn sigusr1_reopens_the_access_log_without_losing_a_line() {
    let m = ok_mock().await;
    let gw = one_route(&m, "log: {access: \"@DIR@/access.log\"}").await;
    let path = gw.dir().join("access.log");
    let count = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().filter(|l| l.contains("\"request_id\"")).count())
            .unwrap_or(0)
    };
    for _ in 0..5 {
        assert_eq!(gw.chat("chat").await.status, 200);
    }
    let wait_for = |p: std::path::PathBuf, n: usize| async move {
        for _ in 0..100 {
            if count(&p) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for(path.clone(), 5).await;
    let rotated = gw.dir().join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    gw.signal("USR1");
    gw.signal("USR2");
    gw.signal("WINCH");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..7 {
        assert_eq!(gw.chat("chat").await.status, 200, "{}", gw.log());
    }
    wait_for(path.clone(), 7).await;
    assert_eq!(
        count(&rotated),
        5,
        "lines before the signal stay in the old file"
    );
    assert_eq!(
        count(&path),
        7,
        "lines after it go to the new file:\n{}",
        gw.log()
    );
    assert!(gw.log().contains("SIGUSR1: reopening log files"));
}

/// `enabled: false` keeps an upstream in the config but out of rotation: it
/// gets no request (not even fail-open) and no health check, and the admin
/// API shows it as disabled.
#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_upstream_is_never_tried_and_shown_as_disabled() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let ups = upstream("a", &a.url(), "enabled: false") + &upstream("b", &b.url(), "");
    let gw = Gateway::start(
        &(config(
            &ups,
            "  chat:\n    - {upstream: a, priority: 1}\n    - {upstream: b, priority: 2}\n  only-a: [{upstream: a}]\n",
            "",
        ) + &format!("admin: {{listen: \"@ADMIN@\", api_key: {ADMIN_KEY}}}\n"))
            .replace("health_check: {enabled: false, unhealthy_after: 1000}", "health_check: {interval: 100ms}"),
    )
    .await;
    for _ in 0..10 {
        let r = gw.chat("chat").await;
        assert_eq!(r.header("x-llmgate-upstream"), Some("b"));
    }
    let r = gw.chat("only-a").await;
    assert_eq!(r.status, 502, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.hits(), 0, "no request and no health check reached it");
    assert!(b.hits() >= 10);
    let ups = admin(&gw, "GET", "/admin/upstreams", "").await.json();
    let a_json = ups["upstreams"]
        .as_array()
        .and_then(|l| l.iter().find(|u| u["name"] == "a"))
        .cloned()
        .unwrap_or_else(|| panic!("{ups}"));
    assert_eq!(a_json["state"], "disabled");
    assert_eq!(a_json["enabled"], false);
}
