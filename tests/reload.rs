//! Hot reload through sockets: by admin call and SIGHUP, valid and invalid
//! configs, under load with streams in flight, and what a reload reports it
//! could not apply.

mod common;
use common::admin::*;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn reload_valid_invalid_and_sighup() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &b.url(), "")).await;
    assert_eq!(
        gw.chat("chat").await.header("x-llmgate-upstream"),
        Some("a")
    );
    // Swap priorities and add a model via the admin API.
    let swapped = admin_cfg(&a.url(), &b.url(), "")
        .replace("{upstream: a, priority: 1}", "{upstream: a, priority: 3}")
        .replace("models:\n", "models:\n  fresh: [{upstream: a}]\n");
    gw.rewrite_config(&swapped);
    let r = admin(&gw, "POST", "/admin/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        gw.chat("chat").await.header("x-llmgate-upstream"),
        Some("b")
    );
    assert_eq!(gw.chat("fresh").await.status, 200);
    // A broken config is refused with the list of problems; the old one keeps serving.
    gw.rewrite_config(&swapped.replace("{upstream: a, priority: 3}", "{upstream: ghost}"));
    let r = admin(&gw, "POST", "/admin/reload", "").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("models.chat[0].upstream"), "{}", r.text());
    assert_eq!(
        gw.chat("chat").await.header("x-llmgate-upstream"),
        Some("b")
    );
    // SIGHUP reloads too.
    gw.rewrite_config(&admin_cfg(&a.url(), &b.url(), ""));
    gw.signal("HUP");
    let mut back = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if gw.chat("chat").await.header("x-llmgate-upstream") == Some("a") {
            back = true;
            break;
        }
    }
    assert!(back, "SIGHUP applied the new config:\n{}", gw.log());
    assert_eq!(
        gw.chat("fresh").await.status,
        404,
        "model removed by the reload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_under_load_with_streams_in_flight_loses_nothing() {
    let a = mock(Behavior::Ok {
        events: 10,
        event_delay: Duration::from_millis(30),
    })
    .await;
    let b = mock(Behavior::Ok {
        events: 10,
        event_delay: Duration::from_millis(30),
    })
    .await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &b.url(), "")).await;
    let addr = gw.addr.clone();
    let mut tasks = Vec::new();
    for c in 0..8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut bad = Vec::new();
            for i in 0..15 {
                let stream = (c + i) % 2 == 0;
                let r = request(
                    &addr,
                    "POST",
                    "/v1/chat/completions",
                    &auth(),
                    chat_body("chat", stream).as_bytes(),
                )
                .await;
                let ok = r.status == 200
                    && r.complete
                    && (!stream || sse_data(&r.body).last().map(String::as_str) == Some("[DONE]"));
                if !ok {
                    bad.push(format!("{} {}", r.status, r.text()));
                }
            }
            bad
        }));
    }
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let prio = if i % 2 == 0 { 3 } else { 1 };
        gw.rewrite_config(&admin_cfg(&a.url(), &b.url(), "").replace(
            "{upstream: a, priority: 1}",
            &format!("{{upstream: a, priority: {prio}}}"),
        ));
        assert_eq!(admin(&gw, "POST", "/admin/reload", "").await.status, 200);
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        a.hits() > 0 && b.hits() > 0,
        "reloads moved traffic: a {} b {}",
        a.hits(),
        b.hits()
    );
}

/// A reload says which changed settings did not take effect; everything
/// else applies, the admin key included.
#[tokio::test(flavor = "multi_thread")]
async fn reload_reports_the_settings_that_need_a_restart() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let gw = Gateway::start(&admin_cfg(&a.url(), &b.url(), "")).await;
    // Only applicable changes: nothing to report.
    gw.rewrite_config(&admin_cfg(&a.url(), &b.url(), "retry: {max_attempts: 1}"));
    let r = admin(&gw, "POST", "/admin/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["not_applied"], serde_json::json!([]));
    // Restart-only changes are named, with the reason.
    let changed = admin_cfg(
        &a.url(),
        &b.url(),
        "server: {threads: 3}\nlog: {access: off}",
    )
    .replace(
        "listen: [\"@LISTEN@\"]",
        "listen: [\"@LISTEN@\", \"127.0.0.1:1\"]",
    );
    gw.rewrite_config(&changed);
    let r = admin(&gw, "POST", "/admin/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let keys: Vec<String> = r.json()["not_applied"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|n| n["key"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        keys,
        ["listen", "server.threads", "log.access"],
        "{}",
        r.text()
    );
    assert!(r.text().contains("restart"), "{}", r.text());
    assert!(
        gw.log().contains("reload: `listen` changed but"),
        "{}",
        gw.log()
    );
    // The admin key is re-read: the new one works at once, the old one no more.
    let rotated = changed.replace(ADMIN_KEY, "sk-admin-rotated-key-7");
    gw.rewrite_config(&rotated);
    assert_eq!(admin(&gw, "POST", "/admin/reload", "").await.status, 200);
    assert_eq!(admin(&gw, "GET", "/admin/upstreams", "").await.status, 401);
    let r = request(
        &gw.admin,
        "GET",
        "/admin/upstreams",
        &[("authorization", "Bearer sk-admin-rotated-key-7")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
}
