//! The client side of HTTP/1.1 (our own server loop, `src/downstream/client.rs`)
//! through real sockets: keep-alive and pipelining, HTTP/1.0 framing, HEAD,
//! request-target forms, chunked request bodies, unread bodies, bad heads.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway() -> (Mock, Gateway) {
    let m = ok_mock().await;
    let gw = one_route(&m, "").await;
    (m, gw)
}

fn chat_request(version: &str, extra: &str, stream: bool) -> String {
    let body = chat_body("chat", stream);
    format!(
        "POST /v1/chat/completions {version}\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// Everything the server sends until it closes (10 s cap).
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all)).await;
    all
}

/// Status line, lowercase headers, body.
type Answer = (String, Vec<(String, String)>, Vec<u8>);

/// Split a byte stream into responses framed by Content-Length (what our JSON
/// answers carry).
fn split_responses(mut raw: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        let Ok(httparse::Status::Complete(n)) = r.parse(raw) else {
            panic!("not a response: {}", String::from_utf8_lossy(raw));
        };
        let line =
            String::from_utf8_lossy(&raw[..raw.iter().position(|b| *b == b'\r').unwrap_or(0)])
                .into_owned();
        let headers: Vec<(String, String)> = llmgate::mock::owned_headers(r.headers)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let len = llmgate::mock::content_length(&headers).unwrap_or(raw.len() - n);
        let end = (n + len).min(raw.len());
        out.push((line, headers, raw[n..end].to_vec()));
        raw = &raw[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (m, gw) = gateway().await;
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    // Three requests in one write, the last asking to close.
    let wire = chat_request("HTTP/1.1", "", false)
        + "GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
        + &chat_request("HTTP/1.1", "connection: close\r\n", false);
    s.write_all(wire.as_bytes()).await.unwrap();
    let answers = split_responses(&read_to_close(&mut s).await);
    let statuses: Vec<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        statuses,
        ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    );
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    assert_eq!(json(&answers[0].2)["object"], "chat.completion");
    assert_eq!(json(&answers[1].2)["status"], "ok");
    assert_eq!(json(&answers[2].2)["object"], "chat.completion");
    assert!(answers[2]
        .1
        .contains(&("connection".into(), "close".into())));
    assert_eq!(m.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn http10_clients_get_length_or_close_framing() {
    let (m, gw) = gateway().await;
    // Plain answer: Content-Length, then the connection closes (no keep-alive asked).
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    s.write_all(chat_request("HTTP/1.0", "", false).as_bytes())
        .await
        .unwrap();
    let answers = split_responses(&read_to_close(&mut s).await);
    assert_eq!(answers.len(), 1);
    assert!(answers[0].0.starts_with("HTTP/1.0 200"), "{}", answers[0].0);
    assert!(!answers[0].1.iter().any(|(k, _)| k == "transfer-encoding"));
    // A stream cannot be chunked for 1.0: it ends with the connection.
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    s.write_all(chat_request("HTTP/1.0", "", true).as_bytes())
        .await
        .unwrap();
    let raw = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("transfer-encoding"));
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // Keep-alive asked for: kept, and said so.
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    let ka = "connection: keep-alive\r\n";
    s.write_all(chat_request("HTTP/1.0", ka, false).as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    s.write_all(chat_request("HTTP/1.0", ka, false).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.status, 200);
    assert_eq!(m.hits(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn head_answers_have_no_body_and_keep_the_connection() {
    let (_m, gw) = gateway().await;
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    s.write_all(b"HEAD /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    // Two heads and one body: had the HEAD answer carried its body, the second
    // status line would follow it.
    let heads: Vec<&str> = text.split("\r\n\r\n").collect();
    assert_eq!(heads.len(), 3, "{text}");
    assert!(heads[0].starts_with("HTTP/1.1 200"), "{text}");
    assert!(heads[0].contains("content-length: 15"), "{text}");
    assert!(heads[1].starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(heads[2], r#"{"status":"ok"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_target_forms_and_chunked_bodies() {
    let (m, gw) = gateway().await;
    // Absolute form, as proxies send it; the query string is forwarded.
    let body = chat_body("chat", false);
    let wire = format!(
        "POST http://gateway.example/v1/chat/completions?x=1 HTTP/1.1\r\nhost: gateway.example\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw_request(&gw.addr, wire.as_bytes()).await.status, 200);
    // A chunked body in three chunks arrives whole, with the model rewritten.
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(7);
    let wire = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n{:x}\r\n{c}\r\n0\r\n\r\n",
        a.len(),
        b.len(),
        c.len()
    );
    assert_eq!(raw_request(&gw.addr, wire.as_bytes()).await.status, 200);
    let seen = m.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/v1/chat/completions?x=1");
    let sent: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(sent["model"], "m");
    assert_eq!(sent["messages"][0]["content"], "hi");
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_bodies_do_not_become_the_next_request() {
    let (m, gw) = gateway().await;
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    // Refused before its body is read (bad key); the body is skipped, and the
    // next request on the connection is served.
    let body = chat_body("chat", false);
    let bad = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-wrong\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(bad.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.status, 401);
    s.write_all(chat_request("HTTP/1.1", "", false).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.status, 200);
    assert_eq!(m.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_heads_get_a_json_400_and_a_close() {
    let (m, gw) = gateway().await;
    for wire in [
        &b"GARBAGE\r\n\r\n"[..],
        &b"POST /v1/chat/completions HTTP/1.1\r\nbad header line\r\n\r\n"[..],
        &b"POST /v1/chat/completions HTTP/9.9\r\nhost: x\r\n\r\n"[..],
        &b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n"[..],
        &b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: -5\r\n\r\n"[..],
    ] {
        let mut s = TcpStream::connect(&gw.addr).await.unwrap();
        s.write_all(wire).await.unwrap();
        let raw = read_to_close(&mut s).await;
        let answers = split_responses(&raw);
        assert_eq!(answers.len(), 1, "{}", String::from_utf8_lossy(wire));
        assert!(answers[0].0.starts_with("HTTP/1.1 400"), "{}", answers[0].0);
        let err: serde_json::Value = serde_json::from_slice(&answers[0].2).unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(answers[0]
            .1
            .contains(&("connection".into(), "close".into())));
    }
    assert_eq!(m.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_closes_idle_connections_and_ends_kept_ones() {
    let m = ok_mock().await;
    let gw = one_route(
        &m,
        "server: {grace_period_seconds: 10, graceful_shutdown_timeout_seconds: 1}",
    )
    .await;
    // One kept-alive connection idles; another is mid-request when the stop begins.
    let mut idle = TcpStream::connect(&gw.addr).await.unwrap();
    idle.write_all(chat_request("HTTP/1.1", "", false).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);
    let mut busy = TcpStream::connect(&gw.addr).await.unwrap();
    let wire = chat_request("HTTP/1.1", "", false);
    let (a, b) = wire.split_at(20);
    busy.write_all(a.as_bytes()).await.unwrap();
    gw.signal("TERM");
    // The idle one is closed at once, long before the 10 s grace period ends.
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut byte))
        .await
        .expect("idle connection closed within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The busy one is served, told it is the last answer, then closed.
    busy.write_all(b.as_bytes()).await.unwrap();
    let raw = read_to_close(&mut busy).await;
    let answers = split_responses(&raw);
    assert_eq!(answers.len(), 1);
    assert!(answers[0].0.starts_with("HTTP/1.1 200"), "{}", answers[0].0);
    assert!(answers[0]
        .1
        .contains(&("connection".into(), "close".into())));
}

/// 2,000 seeded mangled requests (bytes flipped, CR/LF, high bytes, dots,
/// `%` and spaces inserted, cut short, framing and Host lines added, leading
/// empty lines): each gets a well-formed answer or a close, never a hang or
/// a crash, and the gateway serves a normal request afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn mangled_requests_get_an_answer_or_a_close() {
    let m = ok_mock().await;
    let gw = one_route(&m, "limits: {header_timeout: 500ms, body_timeout: 500ms}").await;
    let valid = chat_request("HTTP/1.1", "connection: close\r\n", false).into_bytes();
    let mut rng = fastrand::Rng::with_seed(6);
    let lines: [&[u8]; 5] = [
        b"content-length: 7\r\n",
        b"transfer-encoding: chunked\r\n",
        b"host: other\r\n",
        b"x_under: 1\r\n",
        b"connection: x-a, close\r\n",
    ];
    for case in 0..2_000 {
        let mut wire = valid.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..wire.len());
            match rng.u8(..8) {
                0 => wire[at] = rng.u8(..),
                1 => wire.insert(at, if rng.bool() { b'\r' } else { b'\n' }),
                2 => wire.truncate(at.max(1)),
                3 => {
                    let line = lines[rng.usize(..lines.len())];
                    let at = wire.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
                    wire.splice(at..at, line.iter().copied());
                }
                4 => wire.insert(at, [b'.', b'%', 0x80, 0xff, b'#'][rng.usize(..5)]),
                5 => {
                    let n = rng.usize(1..12);
                    wire.splice(0..0, b"\r\n".repeat(n));
                }
                _ => wire.insert(at, b' '),
            }
        }
        let mut s = TcpStream::connect(&gw.addr).await.unwrap();
        s.write_all(&wire).await.unwrap();
        // Half-close: a request cut short ends here instead of waiting.
        let _ = s.shutdown().await;
        let raw = read_to_close(&mut s).await;
        if !raw.is_empty() {
            assert!(
                raw.starts_with(b"HTTP/1.1 ") || raw.starts_with(b"HTTP/1.0 "),
                "case {case}: {}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    // A panicking connection task would only drop its connection: check the log.
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}
