//! `state: {backend: redis}` through sockets, with a real `redis-server`:
//! two gateway processes enforce one combined limit exactly under concurrent
//! load, share quotas and usage totals, keep limits across a restart, and
//! follow `on_error` while Redis is away (then recover by themselves); the
//! Redis password never appears in any output.

mod common;
use common::redis_server::RedisServer;
use common::*;
use std::time::Duration;

const LIMITED: &str = "sk-limited-key-2";
use common::admin::ADMIN_KEY as ADMIN;
const PASSWORD: &str = "redis-pass-never-shown-7";

/// One model `chat` on `m`, the `limited` key with `rate_limit`, an admin
/// listener, and the state in `redis` (extra `state` keys in `state`).
fn shared_config(
    m: &Mock,
    redis: &RedisServer,
    rate_limit: &str,
    state: &str,
    target: &str,
) -> String {
    let ups = upstream("main", &m.url(), "");
    config(&ups, &format!("  chat: [{{upstream: main{target}}}]\n"), "")
        .replace(
            &format!("    - {{name: tester, key: {CLIENT_KEY}}}\n"),
            &format!(
                "    - {{name: tester, key: {CLIENT_KEY}}}\n    - {{name: limited, key: {LIMITED}, rate_limit: {rate_limit}}}\n"
            ),
        )
        + &format!(
            "admin: {{listen: \"@ADMIN@\", api_key: {ADMIN}}}\nstate: {{backend: redis, url: \"{}\"{state}}}\n",
            redis.url()
        )
}

fn limited() -> Vec<(&'static str, &'static str)> {
    vec![("authorization", "Bearer sk-limited-key-2")]
}

async fn send(gw: &Gateway) -> Response {
    gw.post(
        "/v1/chat/completions",
        &limited(),
        &chat_body("chat", false),
    )
    .await
}

/// A Redis, an OK mock and one gateway on them with `rate_limit` for the
/// `limited` key and extra `state` keys.
async fn one_gateway(rate_limit: &str, state: &str) -> (RedisServer, Mock, Gateway) {
    let redis = RedisServer::start(None).await;
    let m = ok_mock().await;
    let gw = Gateway::start(&shared_config(&m, &redis, rate_limit, state, "")).await;
    (redis, m, gw)
}

/// Whether a request of the `limited` key is admitted again within 5 s.
async fn admitted_again(gw: &Gateway) -> bool {
    for _ in 0..100 {
        if send(gw).await.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn admin_get(gw: &Gateway, path: &str) -> Response {
    let auth = format!("Bearer {ADMIN}");
    request(&gw.admin, "GET", path, &[("authorization", &auth)], b"").await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_enforce_one_combined_limit_exactly() {
    let redis = RedisServer::start(None).await;
    let m = ok_mock().await;
    let cfg = shared_config(&m, &redis, "{rpm: 25}", "", "");
    let (a, b) = (Gateway::start(&cfg).await, Gateway::start(&cfg).await);
    // 80 requests, 8 at a time on each instance.
    let mut tasks = Vec::new();
    for gw in [&a, &b] {
        for _ in 0..8 {
            let addr = gw.addr.clone();
            tasks.push(tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..5 {
                    let r = request(
                        &addr,
                        "POST",
                        "/v1/chat/completions",
                        &limited(),
                        chat_body("chat", false).as_bytes(),
                    )
                    .await;
                    codes.push((r.status, r.header("retry-after").map(str::to_string)));
                }
                codes
            }));
        }
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        for (status, retry_after) in t.await.expect("task") {
            match status {
                200 => ok += 1,
                429 => {
                    refused += 1;
                    let wait: u64 = retry_after
                        .and_then(|v| v.parse().ok())
                        .expect("Retry-After");
                    assert!((1..=60).contains(&wait), "Retry-After {wait}");
                }
                s => panic!("status {s}"),
            }
        }
    }
    assert_eq!(
        (ok, refused),
        (25, 55),
        "one limit of 25 across both instances"
    );
    // The 26th, on either instance, waits for the refill: 60 s / 25 = 2.4 s
    // after the first admission, so at most 3 s.
    let r = send(&b).await;
    assert_eq!(r.status, 429);
    assert!(r
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|w| w <= 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_settle_in_redis_and_quotas_and_usage_are_shared() {
    let redis = RedisServer::start(None).await;
    let m = ok_mock().await;
    // tpm 600: 100 ms a token. The mock reports 15 tokens per answer.
    let cfg = shared_config(
        &m,
        &redis,
        "{tpm: 600}",
        "",
        ", quota: {requests: 4, reset: \"0 0 * * *\"}",
    );
    let (a, b) = (Gateway::start(&cfg).await, Gateway::start(&cfg).await);
    // A reservation of ~45 prompt + 400 tokens, settled to 15 in Redis: the
    // next request of 445 fits only because the settlement reached Redis.
    let big = r#"{"model":"chat","max_tokens":400,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = a.post("/v1/chat/completions", &limited(), big).await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = b.post("/v1/chat/completions", &limited(), big).await;
    assert_eq!(r.status, 200, "settled: {}", r.text());
    // Quota of 4 requests on the one target: 2 spent above, 1 more each.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.chat("chat").await.status, 200);
    assert_eq!(b.chat("chat").await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for gw in [&a, &b] {
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.error_code(), "quota_exceeded");
    }
    // Usage totals of both instances, from either (sent a moment after
    // each answer).
    let mut rows = serde_json::Value::Null;
    for _ in 0..50 {
        let r = admin_get(&b, "/admin/usage?group_by=model").await;
        assert_eq!(r.status, 200, "{}", r.text());
        rows = r.json()["rows"].clone();
        if rows[0]["requests"] == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows[0]["name"], "chat", "{rows}");
    assert_eq!(rows[0]["requests"], 4, "{rows}");
    assert_eq!(rows[0]["total_tokens"], 60, "{rows}");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_survive_a_reload_and_a_restart() {
    let redis = RedisServer::start(None).await;
    let m = ok_mock().await;
    // A quick stop: the minute must not have refilled by the time it is back.
    let cfg = shared_config(&m, &redis, "{rpm: 3}", "", "")
        + "server: {grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 1}\n";
    let mut gw = Gateway::start(&cfg).await;
    for _ in 0..3 {
        assert_eq!(send(&gw).await.status, 200);
    }
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(&gw).await.status,
        429,
        "a reload keeps the minute's use"
    );
    gw.restart().await;
    let r = send(&gw).await;
    assert_eq!(
        r.status,
        429,
        "the minute's use is in Redis: {}\n{}",
        r.text(),
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_away_with_allow_counts_locally_then_recovers() {
    let (mut redis, _m, gw) = one_gateway("{rpm: 4}", ", on_error: allow, timeout: 200ms").await;
    assert_eq!(send(&gw).await.status, 200);
    redis.kill();
    // This process's own cells: 4 a minute, counted from now.
    for i in 0..4 {
        let r = send(&gw).await;
        assert_eq!(
            r.status,
            200,
            "request {i} while Redis is away: {}",
            r.text()
        );
    }
    assert_eq!(send(&gw).await.status, 429, "the local limit still holds");
    assert!(
        gw.log()
            .contains("admitting with this process's own limits"),
        "{}",
        gw.log()
    );
    let metrics = admin_get(&gw, "/metrics").await.text();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("llmgate_state_errors_total{backend=\"redis\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    // Back (empty): admissions go to Redis again, whose minute is fresh.
    redis.resume().await;
    assert!(admitted_again(&gw).await, "never recovered:\n{}", gw.log());
    assert!(gw.log().contains("reachable again"), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_away_with_deny_answers_503_then_recovers() {
    let (mut redis, _m, gw) = one_gateway("{rpm: 100}", ", on_error: deny, timeout: 200ms").await;
    assert_eq!(send(&gw).await.status, 200);
    redis.kill();
    let r = send(&gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "state_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Keys without limits do not need Redis.
    assert_eq!(gw.chat("chat").await.status, 200);
    redis.resume().await;
    assert!(admitted_again(&gw).await, "never recovered:\n{}", gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redis_password_never_appears() {
    let mut redis = RedisServer::start(Some(PASSWORD)).await;
    let m = ok_mock().await;
    let gw = Gateway::start(&shared_config(
        &m,
        &redis,
        "{rpm: 2}",
        ", on_error: deny",
        "",
    ))
    .await;
    assert_eq!(send(&gw).await.status, 200, "authenticated to Redis");
    let config = admin_get(&gw, "/admin/config").await.text();
    assert!(
        config.contains(&format!("127.0.0.1:{}/0", redis.port)),
        "{config}"
    );
    let mut seen = vec![config];
    seen.push(admin_get(&gw, "/metrics").await.text());
    seen.push(admin_get(&gw, "/admin/status").await.text());
    redis.kill();
    seen.push(send(&gw).await.text());
    seen.push(admin_get(&gw, "/admin/usage").await.text());
    seen.push(gw.log());
    for s in &seen {
        assert!(!s.contains(PASSWORD), "password leaked: {s}");
    }
    // A wrong password: the start-up and request paths still never print it.
    redis.resume().await;
    let wrong = shared_config(&m, &redis, "{rpm: 2}", ", on_error: deny", "")
        .replace(PASSWORD, "wrong-pass-also-secret");
    let gw2 = Gateway::start(&wrong).await;
    let r = send(&gw2).await;
    assert_eq!(r.status, 503);
    for s in [r.text(), gw2.log()] {
        assert!(!s.contains("wrong-pass-also-secret"), "{s}");
    }
}

/// Requests from 4 clients, each in a loop, until `stop`; their statuses.
fn load(
    gw: &Gateway,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<u16>>> {
    (0..4)
        .map(|_| {
            let (addr, stop) = (gw.addr.clone(), stop.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = chat_body("chat", false);
                    let r = request(
                        &addr,
                        "POST",
                        "/v1/chat/completions",
                        &limited(),
                        body.as_bytes(),
                    )
                    .await;
                    codes.push(r.status);
                }
                codes
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_mid_load_follows_on_error_and_comes_back() {
    for (on_error, allowed) in [("allow", &[200u16][..]), ("deny", &[200, 503][..])] {
        let mut redis = RedisServer::start(None).await;
        let m = ok_mock().await;
        let state = format!(", on_error: {on_error}, timeout: 200ms");
        let gw = Gateway::start(&shared_config(&m, &redis, "{rpm: 1000000}", &state, "")).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = load(&gw, &stop);
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.resume().await;
        let mut back = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if gw.log().contains("reachable again") {
                back = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut codes = Vec::new();
        for t in tasks {
            codes.extend(t.await.expect("task"));
        }
        assert!(back, "{on_error}: never reachable again:\n{}", gw.log());
        assert!(codes.len() > 20, "{on_error}: {} requests", codes.len());
        let odd: Vec<_> = codes.iter().filter(|c| !allowed.contains(c)).collect();
        assert!(odd.is_empty(), "{on_error}: statuses {odd:?}");
        if on_error == "deny" {
            assert!(codes.contains(&503), "deny while Redis was away");
        }
        assert_eq!(
            *codes.last().expect("codes"),
            200,
            "{on_error}: serving after recovery"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_limit_applies_to_what_was_used_in_redis() {
    let redis = RedisServer::start(None).await;
    let m = ok_mock().await;
    let gw = Gateway::start(&shared_config(&m, &redis, "{rpm: 10}", "", "")).await;
    for _ in 0..5 {
        assert_eq!(send(&gw).await.status, 200);
    }
    // 5 used of a new limit of 5: none left, at once.
    gw.rewrite_config(&shared_config(&m, &redis, "{rpm: 5}", "", ""));
    gw.signal("HUP");
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if gw.log().contains("is now active") {
            refused = send(&gw).await.status == 429;
            break;
        }
    }
    assert!(
        refused,
        "the lower limit counts the 5 already used:\n{}",
        gw.log()
    );
}
