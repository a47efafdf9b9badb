//! Usage accounting through sockets: `GET /admin/usage` totals by key, model
//! and upstream with time windows, estimates flagged, and the usage log
//! (one line per answered request, reopened on SIGUSR1).

mod common;
use common::*;
use std::time::Duration;

use common::admin::ADMIN_KEY as ADMIN;

async fn usage(gw: &Gateway, query: &str) -> Response {
    let auth = format!("Bearer {ADMIN}");
    request(
        &gw.admin,
        "GET",
        &format!("/admin/usage{query}"),
        &[("authorization", &auth)],
        b"",
    )
    .await
}

/// The rows of a usage answer by name, once `requests` reached `want` in total
/// (records are added by a writer thread a moment after each answer).
async fn rows(gw: &Gateway, query: &str, want: u64) -> serde_json::Map<String, serde_json::Value> {
    for _ in 0..330 {
        let r = usage(gw, query).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let rows: serde_json::Map<_, _> = v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| (row["name"].as_str().expect("name").to_string(), row.clone()))
            .collect();
        let total: u64 = rows.values().filter_map(|r| r["requests"].as_u64()).sum();
        if total >= want {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("usage never reached {want} requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn totals_by_key_model_and_upstream() {
    let (a, b) = (ok_mock().await, ok_mock().await);
    let ups = upstream("a", &a.url(), "") + &upstream("b", &b.url(), "");
    let models = "  chat: [{upstream: a}]\n  other: [{upstream: b}]\n";
    let cfg = config(&ups, models, "").replace(
        &format!("    - {{name: tester, key: {CLIENT_KEY}}}\n"),
        &format!("    - {{name: tester, key: {CLIENT_KEY}}}\n    - {{name: second, key: sk-second-key-22}}\n"),
    ) + &format!("admin: {{listen: \"@ADMIN@\", api_key: {ADMIN}}}\nusage: {{log: \"@DIR@/usage.log\"}}\n");
    let gw = Gateway::start(&cfg).await;
    let second = [("authorization", "Bearer sk-second-key-22")];
    for _ in 0..2 {
        assert_eq!(gw.chat("chat").await.status, 200);
    }
    let r = gw
        .post("/v1/chat/completions", &second, &chat_body("other", false))
        .await;
    assert_eq!(r.status, 200);
    // Not answered by an upstream: not usage.
    assert_eq!(gw.chat("nope").await.status, 404);

    // The mock reports 9 prompt + 6 completion tokens per answer.
    let by_key = rows(&gw, "?group_by=key", 3).await;
    assert_eq!(by_key["tester"]["requests"], 2);
    assert_eq!(by_key["tester"]["prompt_tokens"], 18);
    assert_eq!(by_key["tester"]["completion_tokens"], 12);
    assert_eq!(by_key["tester"]["total_tokens"], 30);
    assert_eq!(by_key["tester"]["estimated_tokens"], 0);
    assert_eq!(by_key["second"]["total_tokens"], 15);
    let by_model = rows(&gw, "?group_by=model", 3).await;
    assert_eq!(by_model["chat"]["requests"], 2);
    assert_eq!(by_model["other"]["requests"], 1);
    let by_upstream = rows(&gw, "?group_by=upstream&since=2020-01-01T00:00:00Z", 3).await;
    assert_eq!(by_upstream["b"]["requests"], 1);
    // The shape, and windows that hold nothing.
    let v = usage(&gw, "?group_by=upstream&since=2020-01-01T00:00:00Z")
        .await
        .json();
    assert_eq!(v["group_by"], "upstream");
    assert_eq!(v["since"], "2020-01-01T00:00:00Z");
    assert_eq!(v["until"], serde_json::Value::Null);
    let future = usage(&gw, "?since=2099-01-01T00:00:00%2B01:00").await;
    assert_eq!(future.status, 200, "{}", future.text());
    assert_eq!(future.json()["rows"], serde_json::json!([]));
    let past = usage(&gw, "?until=2020-01-01T00:00:00Z").await.json();
    assert_eq!(past["rows"], serde_json::json!([]));
    for bad in ["?group_by=team", "?since=yesterday", "?x=1"] {
        let r = usage(&gw, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.error_type(), "invalid_request_error");
    }

    // The usage log: one line per answered request, key names only.
    let mut log = String::new();
    // The writer thread may lag on a loaded machine: wait up to 10 s.
    for _ in 0..330 {
        log = std::fs::read_to_string(gw.dir().join("usage.log")).unwrap_or_default();
        if log.lines().count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert_eq!(lines[2]["key"], "second");
    assert_eq!(lines[2]["model"], "other");
    assert_eq!(lines[2]["upstream"], "b");
    assert_eq!(lines[2]["prompt_tokens"], 9);
    assert_eq!(lines[2]["estimated"], false);
    assert!(!log.contains("sk-"), "no key in the usage log");

    // Rotated: renamed, SIGUSR1, then the next line goes to a new file.
    std::fs::rename(gw.dir().join("usage.log"), gw.dir().join("usage.log.1")).unwrap();
    gw.signal("USR1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.chat("chat").await.status, 200);
    let mut fresh = String::new();
    for _ in 0..330 {
        fresh = std::fs::read_to_string(gw.dir().join("usage.log")).unwrap_or_default();
        if !fresh.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(fresh.lines().count(), 1, "{fresh}");
    let old = std::fs::read_to_string(gw.dir().join("usage.log.1")).unwrap();
    assert_eq!(old.lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_without_usage_is_estimated_and_flagged() {
    // An upstream that ignores `stream_options`: no usage anywhere.
    let raw = RawUpstream::start().await;
    let events: String = (0..3)
        .map(|i| llmgate::mock::sse_event("chat", i))
        .collect();
    let body = format!("{events}data: [DONE]\n\n");
    raw.script([RawReply::Send(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )]);
    let ups = upstream("up", &raw.url(), "");
    let cfg = config(&ups, "  chat: [{upstream: up}]\n", "")
        + &format!("admin: {{listen: \"@ADMIN@\", api_key: {ADMIN}}}\n");
    let gw = Gateway::start(&cfg).await;
    let r = gw
        .post("/v1/chat/completions", &auth(), &chat_body("chat", true))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), body, "passed through unchanged");
    let row = rows(&gw, "?group_by=model", 1).await["chat"].clone();
    let total = row["total_tokens"].as_u64().unwrap();
    assert!(total > 0, "{row}");
    assert_eq!(row["estimated_tokens"].as_u64(), Some(total), "{row}");
}

/// The body of a stream straight from the mock, as a client would get it.
async fn direct(m: &Mock, body: &str) -> Vec<u8> {
    let r = request(
        &m.addr.to_string(),
        "POST",
        "/v1/chat/completions",
        &[],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    r.body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_is_asked_for_usage_and_the_client_gets_the_bytes_it_would_have() {
    let m = mock(Behavior::Ok {
        events: 5,
        event_delay: Duration::from_millis(1),
    })
    .await;
    let ups = upstream("up", &m.url(), "");
    let cfg = config(&ups, "  chat: [{upstream: up}]\n", "")
        + &format!("admin: {{listen: \"@ADMIN@\", api_key: {ADMIN}}}\n");
    let gw = Gateway::start(&cfg).await;

    // The client did not ask for usage: llmgate does, and takes out what
    // that adds — the bytes equal a direct stream without the option.
    let plain = chat_body("chat", true);
    let want = direct(&m, &plain).await;
    assert!(!String::from_utf8_lossy(&want).contains("usage"));
    let r = gw.post("/v1/chat/completions", &auth(), &plain).await;
    assert_eq!(r.status, 200);
    assert!(r.complete && r.chunked);
    assert_eq!(r.text(), String::from_utf8_lossy(&want), "byte-identical");
    let sent = m.seen().last().expect("a request").body.clone();
    let sent = String::from_utf8(sent).unwrap();
    assert!(
        sent.starts_with(r#"{"stream_options":{"include_usage":true},"#),
        "{sent}"
    );
    // ... and the usage it reported is counted, not estimated.
    let row = rows(&gw, "?group_by=key", 1).await["tester"].clone();
    assert_eq!(row["prompt_tokens"], 9, "{row}");
    assert_eq!(row["completion_tokens"], 5, "{row}");
    assert_eq!(row["estimated_tokens"], 0, "{row}");

    // A client that asked for usage gets exactly what the upstream sent.
    let asked = plain.replacen('{', r#"{"stream_options":{"include_usage":true},"#, 1);
    let want = direct(&m, &asked).await;
    assert!(String::from_utf8_lossy(&want).contains(r#""choices":[],"#));
    let r = gw.post("/v1/chat/completions", &auth(), &asked).await;
    assert_eq!(r.text(), String::from_utf8_lossy(&want), "untouched");
    assert_eq!(m.seen().last().expect("a request").body, asked.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_with_stream_usage_false_gets_the_clients_bytes() {
    let m = mock(Behavior::Ok {
        events: 3,
        event_delay: Duration::from_millis(1),
    })
    .await;
    let ups = upstream("up", &m.url(), "stream_usage: false");
    let cfg = config(&ups, "  chat: [{upstream: up}]\n", "")
        + &format!("admin: {{listen: \"@ADMIN@\", api_key: {ADMIN}}}\n");
    let gw = Gateway::start(&cfg).await;
    let plain = chat_body("chat", true);
    let want = direct(&m, &plain).await;
    let r = gw.post("/v1/chat/completions", &auth(), &plain).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), String::from_utf8_lossy(&want));
    assert_eq!(m.seen().last().expect("a request").body, plain.as_bytes());
    // No usage came: estimated.
    let row = rows(&gw, "?group_by=key", 1).await["tester"].clone();
    assert!(
        row["estimated_tokens"].as_u64().is_some_and(|n| n > 0),
        "{row}"
    );
}
