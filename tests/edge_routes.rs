//! Plain routes (design.md section 6) on Pingora's proxy: matching, the
//! upstream request, tier failover, health checks, streaming bodies in
//! bounded memory, WebSocket, and errors — through real sockets.

mod common;

use common::edge::{rss_kib, ws_echo, BulkBackend};
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway whose `routes` section is `routes` (the AI part: one model on
/// `m`).
async fn routed(m: &Mock, routes: &str) -> Gateway {
    Gateway::start(&config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        &format!("routes:\n{routes}"),
    ))
    .await
}

async fn get_host(gw: &Gateway, host: &str, path: &str) -> Response {
    let raw = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
    raw_request(&gw.addr, raw.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_then_longest_prefix_pick_the_route_and_strip_prefix_rewrites() {
    let m = ok_mock().await;
    let (a, b, c, d) = (
        BulkBackend::start("a").await,
        BulkBackend::start("b").await,
        BulkBackend::start("c").await,
        BulkBackend::start("d").await,
    );
    let gw = routed(
        &m,
        &format!(
            "  - {{host: a.test, backends: [{{addr: \"{}\"}}]}}\n  - {{host: \"*.apps.test\", backends: [{{addr: \"{}\"}}]}}\n  - {{path_prefix: /api/, strip_prefix: true, backends: [{{addr: \"{}\"}}]}}\n  - {{path_prefix: /api/v2/, backends: [{{addr: \"{}\"}}]}}\n  - {{host: ai.test, ai: true}}\n",
            a.addr, b.addr, c.addr, d.addr
        ),
    )
    .await;
    let cases = [
        ("a.test:8080", "/x", "a", "/x"),
        ("A.TEST", "/api/x", "a", "/api/x"),
        ("wiki.apps.test", "/y", "b", "/y"),
        ("other", "/api/users?id=1", "c", "/users?id=1"),
        ("other", "/api/v2/users", "d", "/api/v2/users"),
        ("apps.test", "/api/z", "c", "/z"),
    ];
    for (host, path, backend, target) in cases {
        let r = get_host(&gw, host, path).await;
        assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
        assert_eq!(r.header("x-backend"), Some(backend), "{host}{path}");
        assert_eq!(r.json()["target"], target, "{host}{path}");
    }
    // No route: the AI gateway (its JSON 404 for other paths).
    let r = get_host(&gw, "other", "/nothing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    // An `ai: true` host is the AI gateway whatever the path.
    let r = get_host(&gw, "ai.test", "/v1/models").await;
    assert_eq!(r.status, 401, "the AI gateway's auth applies: {}", r.text());
    // Dot-segments cannot step out of a prefix.
    let r = get_host(&gw, "other", "/api/../admin").await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backend_gets_forwarded_headers_and_no_hop_by_hop_ones() {
    let m = ok_mock().await;
    let up = RawUpstream::start().await;
    let gw = routed(
        &m,
        &format!(
            "  - {{host: keep.test, backends: [{{addr: \"{0}\"}}]}}\n  - {{host: own.test, preserve_host: false, backends: [{{addr: \"{0}\"}}]}}\n",
            up.addr
        ),
    )
    .await;
    let raw = "GET /p HTTP/1.1\r\nhost: keep.test\r\nx-forwarded-for: 203.0.113.7\r\nconnection: keep-alive, x-drop\r\nx-drop: secret\r\nkeep-alive: timeout=5\r\nte: trailers\r\nproxy-authorization: Basic eA==\r\nx-keep: 1\r\n\r\n";
    let r = raw_request(&gw.addr, raw.as_bytes()).await;
    assert_eq!(r.status, 200);
    let seen = up.seen();
    let s = seen.last().expect("request reached the backend");
    assert_eq!(
        s.header_values("x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(s.header_values("x-forwarded-proto"), ["http"]);
    assert_eq!(s.header_values("x-forwarded-host"), ["keep.test"]);
    assert_eq!(s.header_values("host"), ["keep.test"]);
    assert_eq!(s.header_values("x-keep"), ["1"]);
    for gone in ["x-drop", "keep-alive", "te", "proxy-authorization"] {
        assert!(
            s.header_values(gone).is_empty(),
            "{gone} was forwarded:\n{}",
            s.head()
        );
    }
    let r = get_host(&gw, "own.test", "/p").await;
    assert_eq!(r.status, 200);
    let seen = up.seen();
    let s = seen.last().expect("second request");
    assert_eq!(s.header_values("host"), [up.addr.to_string()]);
    assert_eq!(s.header_values("x-forwarded-host"), ["own.test"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_tier_fails_over_to_the_next_and_all_down_is_a_502_json() {
    let m = ok_mock().await;
    let spare = BulkBackend::start("spare").await;
    let dead1 = format!("127.0.0.1:{}", free_port());
    let dead2 = format!("127.0.0.1:{}", free_port());
    let gw = routed(
        &m,
        &format!(
            "  - {{host: app.test, backends: [{{addr: \"{dead1}\"}}, {{addr: \"{dead2}\"}}, {{addr: \"{}\", priority: 2}}]}}\n  - {{host: down.test, backends: [{{addr: \"{dead1}\"}}, {{addr: \"{dead2}\"}}]}}\n",
            spare.addr
        ),
    )
    .await;
    for _ in 0..5 {
        let r = get_host(&gw, "app.test", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-backend"), Some("spare"));
    }
    let r = get_host(&gw, "down.test", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"]["code"], "bad_gateway");
    let log = gw.log();
    assert!(!log.contains("sk-up-"), "no secret in the log");
}

/// Wait (5 s at most) for `line` in the gateway's log.
async fn wait_for_log(gw: &Gateway, line: &str) {
    for _ in 0..100 {
        if gw.log().contains(line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no `{line}` in:\n{}", gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_mark_a_backend_down_and_up_again() {
    let m = ok_mock().await;
    let main = BulkBackend::start("main").await;
    let spare = BulkBackend::start("spare").await;
    let main_addr = main.addr;
    let gw = routed(
        &m,
        &format!(
            "  - backends: [{{addr: \"{main_addr}\"}}, {{addr: \"{}\", priority: 2}}]\n    health_check: {{path: /healthz, interval: 100ms, timeout: 500ms, unhealthy_after: 1, healthy_after: 1}}\n",
            spare.addr
        ),
    )
    .await;
    assert_eq!(
        get_host(&gw, "x", "/").await.header("x-backend"),
        Some("main")
    );
    main.stop();
    drop(main);
    wait_for_log(&gw, &format!("backend {main_addr} marked down")).await;
    let r = get_host(&gw, "x", "/").await;
    assert_eq!(r.header("x-backend"), Some("spare"));
    let _back = BulkBackend::start_on(&main_addr.to_string(), "main").await;
    wait_for_log(&gw, &format!("backend {main_addr} is up again")).await;
    assert_eq!(
        get_host(&gw, "x", "/").await.header("x-backend"),
        Some("main")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_mib_up_and_down_stream_through_in_bounded_memory() {
    const SIZE: u64 = 100 << 20;
    let m = ok_mock().await;
    let b = BulkBackend::start("bulk").await;
    let gw = routed(
        &m,
        &format!("  - {{backends: [{{addr: \"{}\"}}], max_body_bytes: 200MiB}}\n  - {{path_prefix: /small/, backends: [{{addr: \"{}\"}}], max_body_bytes: 1KiB}}\n", b.addr, b.addr),
    )
    .await;
    assert_eq!(get_host(&gw, "x", "/warm").await.status, 200);
    let base = rss_kib(gw.pid());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
    let sampler = {
        let (peak, pid) = (peak.clone(), gw.pid());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Upload.
    let mut s = tokio::net::TcpStream::connect(&gw.addr)
        .await
        .expect("connect");
    let head = format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {SIZE}\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("head");
    let block = vec![b'u'; 256 << 10];
    let mut left = SIZE;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        s.write_all(&block[..n]).await.expect("upload");
        left -= n as u64;
    }
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["received"], SIZE);
    // Download, read slowly enough that the gateway must not buffer ahead.
    let mut s = tokio::net::TcpStream::connect(&gw.addr)
        .await
        .expect("connect");
    s.write_all(format!("GET /big?{SIZE} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut got = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    let mut head_done = false;
    let mut pending = Vec::new();
    while got < SIZE {
        let n = s.read(&mut buf).await.expect("download");
        assert!(n > 0, "download cut at {got}");
        if head_done {
            got += n as u64;
        } else {
            pending.extend_from_slice(&buf[..n]);
            if let Some(e) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                head_done = true;
                got += (pending.len() - e - 4) as u64;
            }
        }
    }
    assert_eq!(got, SIZE);
    sampler.abort();
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(base);
    assert!(
        grew < 16 << 10,
        "gateway RSS grew by {grew} KiB moving 2 x 100 MiB"
    );
    // Over a route's max_body_bytes: 413 JSON before anything is sent.
    let raw = "POST /small/x HTTP/1.1\r\nhost: x\r\ncontent-length: 4096\r\n\r\n";
    let r = raw_request(&gw.addr, raw.as_bytes()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "body_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_does_not_hold_up_other_requests() {
    let m = ok_mock().await;
    let b = BulkBackend::start("b").await;
    let gw = routed(
        &m,
        &format!("  - {{backends: [{{addr: \"{}\"}}]}}\n", b.addr),
    )
    .await;
    let addr = gw.addr.clone();
    let slow =
        tokio::spawn(
            async move { raw_request(&addr, b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await },
        );
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..20 {
        assert_eq!(get_host(&gw, "x", "/fast").await.status, 200);
    }
    assert!(!slow.is_finished(), "the slow answer is still on its way");
    assert_eq!(slow.await.expect("slow").status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echo_both_ways_for_a_thousand_messages() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let m = ok_mock().await;
    let ws = ws_echo().await;
    let gw = routed(
        &m,
        &format!("  - {{host: ws.test, backends: [{{addr: \"{ws}\"}}]}}\n"),
    )
    .await;
    let tcp = tokio::net::TcpStream::connect(&gw.addr).await.expect("tcp");
    let req = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri("ws://ws.test/socket")
        .header("host", "ws.test")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .expect("request");
    let (mut client, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("upgrade through the gateway");
    assert_eq!(resp.status().as_u16(), 101);
    for i in 0..1000 {
        let msg = if i % 2 == 0 {
            Message::text(format!("message {i}"))
        } else {
            Message::binary(vec![i as u8; 1 + i % 300])
        };
        client.send(msg.clone()).await.expect("send");
        let back = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("echo in time")
            .expect("open")
            .expect("frame");
        assert_eq!(back, msg, "message {i}");
    }
    client.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_slower_than_the_route_read_timeout_is_a_504_json() {
    let m = ok_mock().await;
    let b = BulkBackend::start("b").await;
    let gw = routed(
        &m,
        &format!(
            "  - {{backends: [{{addr: \"{}\"}}], timeouts: {{read: 300ms}}}}\n",
            b.addr
        ),
    )
    .await;
    let r = get_host(&gw, "x", "/slow").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "gateway_timeout");
    assert_eq!(get_host(&gw, "x", "/fast").await.status, 200);
}
