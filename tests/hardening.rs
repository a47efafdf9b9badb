//! HTTP hardening rules (docs/http.md), one group per rule, through real
//! sockets: a raw upstream records every byte it receives, so each test
//! proves what was forwarded, what was not, and how many times.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `chat` -> the raw upstream first, then (priority 2) an OK mock.
/// One worker thread: upstream connections are pooled per thread, and the
/// replay rules are about pooled connections.
async fn raw_then_ok(raw: &RawUpstream, ok: &Mock, extra: &str) -> Gateway {
    Gateway::start(&config(
        &(upstream("raw", &raw.url(), "") + &upstream("ok", &ok.url(), "")),
        "  chat:\n    - {upstream: raw, model: m, priority: 1}\n    - {upstream: ok, model: m, priority: 2}\n",
        &format!("server: {{threads: 1}}\n{extra}"),
    ))
    .await
}

async fn raw_only(raw: &RawUpstream, extra: &str) -> Gateway {
    Gateway::start(&config(
        &upstream("raw", &raw.url(), ""),
        "  chat: [{upstream: raw, model: m}]\n",
        &format!("server: {{threads: 1}}\n{extra}"),
    ))
    .await
}

fn chat_wire(extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Everything the server sends until it closes (10 s cap).
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all)).await;
    all
}

async fn send_on(s: &mut TcpStream, wire: &[u8]) -> Response {
    s.write_all(wire).await.expect("send");
    tokio::time::timeout(Duration::from_secs(20), read_response(s))
        .await
        .expect("answer within 20 s")
}

// Rule 1: no replay after the upstream answered.

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_answered_is_never_sent_the_request_twice() {
    let raw = RawUpstream::start().await;
    let ok = ok_mock().await;
    let gw = raw_then_ok(&raw, &ok, "").await;
    let malformed: Vec<RawReply> = vec![
        RawReply::Send(b"HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n".to_vec()),
        RawReply::Send(b"HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n".to_vec()),
        RawReply::Send(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello".to_vec(),
        ),
        RawReply::Send(b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\ncontent-length: 0\r\n\r\n".to_vec()),
        RawReply::Send(b"HTTP/1.1 200 OK\r\nx: a\x01b\r\ncontent-length: 0\r\n\r\n".to_vec()),
        RawReply::Send(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n".to_vec()),
        RawReply::Send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec()),
        // Part of a head, then the close: the upstream did take the request.
        RawReply::SendAndClose(b"HTTP/1.1 200 OK\r\ncontent-le".to_vec()),
    ];
    let mut client = TcpStream::connect(&gw.addr).await.unwrap();
    for (i, bad) in malformed.into_iter().enumerate() {
        // A good exchange first leaves a pooled connection; the bad answer
        // comes on it.
        raw.script([RawReply::Send(ok_answer()), bad.clone()]);
        let body = chat_body("chat", false);
        let first = send_on(&mut client, &chat_wire("", &body)).await;
        assert_eq!(first.status, 200, "{bad:?}");
        assert_eq!(first.header("x-llmgate-upstream"), Some("raw"));
        let second = send_on(&mut client, &chat_wire("", &body)).await;
        assert_eq!(second.status, 200, "{bad:?}: {}", second.text());
        assert_eq!(second.header("x-llmgate-upstream"), Some("ok"), "{bad:?}");
        assert_eq!(second.attempts(), 2, "{bad:?}");
        assert_eq!(
            raw.seen().len(),
            2 * (i + 1),
            "{bad:?}: the raw upstream got the request once per attempt"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_closed_before_answering_is_retried_once_on_a_new_one() {
    let raw = RawUpstream::start().await;
    let ok = ok_mock().await;
    let gw = raw_then_ok(&raw, &ok, "").await;
    raw.script([
        RawReply::Send(ok_answer()),
        RawReply::Close,
        RawReply::Send(ok_answer()),
    ]);
    let mut client = TcpStream::connect(&gw.addr).await.unwrap();
    let body = chat_body("chat", false);
    assert_eq!(
        send_on(&mut client, &chat_wire("", &body)).await.status,
        200
    );
    let r = send_on(&mut client, &chat_wire("", &body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-llmgate-upstream"), Some("raw"));
    assert_eq!(r.attempts(), 1, "the re-send is not another attempt");
    let conns: Vec<usize> = raw.seen().iter().map(|s| s.conn).collect();
    assert_eq!(conns, [0, 0, 1], "sent again once, on a new connection");
    assert_eq!(ok.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_connection_closed_before_answering_fails_over_without_a_resend() {
    let raw = RawUpstream::start().await;
    let ok = ok_mock().await;
    let gw = raw_then_ok(&raw, &ok, "").await;
    raw.script([RawReply::Close]);
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-llmgate-upstream"), Some("ok"));
    assert_eq!(r.attempts(), 2);
    assert_eq!(raw.seen().len(), 1);
}

// Rules 2 and 3: request targets and Host.

#[tokio::test(flavor = "multi_thread")]
async fn request_targets_and_hosts_are_checked_before_anything_is_forwarded() {
    let raw = RawUpstream::start().await;
    let gw = raw_only(&raw, "").await;
    let body = chat_body("chat", false);
    let with = |line: &str, host: &str| {
        format!(
            "{line}\r\n{host}authorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let refused: Vec<(Vec<u8>, &str)> = vec![
        (with("POST /v1/../admin HTTP/1.1", "host: gw\r\n"), "target"),
        (
            with("POST /v1/%2e%2e/admin HTTP/1.1", "host: gw\r\n"),
            "target",
        ),
        (
            with(
                "POST /v1/chat/completions/..%2f..%2fx HTTP/1.1",
                "host: gw\r\n",
            ),
            "target",
        ),
        (
            with("POST /v1/./chat/completions HTTP/1.1", "host: gw\r\n"),
            "target",
        ),
        (with("POST /v1/chat%zz HTTP/1.1", "host: gw\r\n"), "target"),
        (
            with("POST /v1/chat/completions#f HTTP/1.1", "host: gw\r\n"),
            "target",
        ),
        (
            with("POST /v1/chat/\u{e9}x HTTP/1.1", "host: gw\r\n"),
            "target",
        ),
        (with("OPTIONS * HTTP/1.1", "host: gw\r\n"), "target"),
        (
            with("CONNECT gw.example:443 HTTP/1.1", "host: gw\r\n"),
            "target",
        ),
        (
            with("POST ftp://gw/v1/chat/completions HTTP/1.1", "host: gw\r\n"),
            "target",
        ),
        (with("POST /v1/chat/completions HTTP/1.1", ""), "Host"),
        (
            with(
                "POST /v1/chat/completions HTTP/1.1",
                "host: gw\r\nhost: gw\r\n",
            ),
            "Host",
        ),
        (
            with("POST /v1/chat/completions HTTP/1.1", "host: g w\r\n"),
            "Host",
        ),
        (
            with("POST /v1/chat/completions HTTP/1.1", "host: gw/x\r\n"),
            "Host",
        ),
        (
            with(
                "POST http://u@gw/v1/chat/completions HTTP/1.1",
                "host: gw\r\n",
            ),
            "Host",
        ),
    ];
    for (wire, what) in &refused {
        let mut s = TcpStream::connect(&gw.addr).await.unwrap();
        let r = send_on(&mut s, wire).await;
        let shown = String::from_utf8_lossy(&wire[..40]);
        assert_eq!(r.status, 400, "{shown}");
        assert_eq!(r.error_type(), "invalid_request_error", "{shown}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(what),
            "{shown}: {}",
            r.text()
        );
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert!(raw.seen().is_empty(), "nothing refused was forwarded");
    // Accepted: absolute form (its path goes upstream), dots in the query,
    // HTTP/1.0 without Host, and an encoded slash that is no dot-segment.
    for (wire, target) in [
        (
            with(
                "POST http://gw.example/v1/chat/completions?x=1 HTTP/1.1",
                "host: gw\r\n",
            ),
            "/v1/chat/completions?x=1",
        ),
        (
            with(
                "POST /v1/chat/completions?next=../.. HTTP/1.1",
                "host: gw\r\n",
            ),
            "/v1/chat/completions?next=../..",
        ),
        (
            with("POST /v1/chat/completions HTTP/1.0", ""),
            "/v1/chat/completions",
        ),
        (
            with("POST /v1/chat/a%2Fb HTTP/1.1", "host: gw\r\n"),
            "/v1/chat/a%2Fb",
        ),
    ] {
        let mut s = TcpStream::connect(&gw.addr).await.unwrap();
        let r = send_on(&mut s, &wire).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let seen = raw.seen();
        assert_eq!(seen.last().map(|s| s.target()).as_deref(), Some(target));
    }
}

// Rule 4: forwarded headers.

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_headers_follow_the_policy() {
    let strict = RawUpstream::start().await;
    let open = RawUpstream::start().await;
    let hop = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-up: kept\r\ncontent-length: 2\r\n\r\n{}".to_vec();
    strict.script([RawReply::Send(hop)]);
    let gw = Gateway::start(&config(
        &(upstream(
            "strict",
            &strict.url(),
            "headers: {OpenAI-Beta: from-config}",
        ) + &upstream(
            "open",
            &open.url(),
            "forward_headers: [OpenAI-Organization, X-Forwarded-For, Authorization]",
        )),
        "  chat: [{upstream: strict, model: m}]\n  chat2: [{upstream: open, model: m}]\n",
        "",
    ))
    .await;
    let client_headers = "connection: keep-alive, X-Secret\r\nx-secret: 1\r\nkeep-alive: timeout=5\r\nte: trailers\r\nupgrade: h2c\r\nproxy-authorization: Basic YTpi\r\nx-api-key: client-x\r\napi-key: client-a\r\nx-goog-api-key: client-g\r\nopenai-organization: org-client\r\nopenai-project: proj-client\r\nforwarded: for=192.0.2.1\r\nx-forwarded-for: 192.0.2.1\r\nx-forwarded-host: evil.example\r\nx-real-ip: 192.0.2.1\r\nx_custom_underscore: 1\r\nx-custom: kept\r\nopenai-beta: from-client\r\nuser-agent: hardening-test\r\nx-request-id: client-id-1\r\n";
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    let r = send_on(
        &mut s,
        &chat_wire(client_headers, &chat_body("chat", false)),
    )
    .await;
    assert_eq!(r.status, 200);
    // Upstream -> client: hop-by-hop and Connection-named headers dropped.
    assert_eq!(r.header("x-up"), Some("kept"));
    assert_eq!(r.header("x-hop"), None);
    assert_eq!(r.header("keep-alive"), None);
    let r = send_on(
        &mut s,
        &chat_wire(client_headers, &chat_body("chat2", false)),
    )
    .await;
    assert_eq!(r.status, 200);

    let got = &strict.seen()[0];
    let never = [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "openai-organization",
        "openai-project",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-real-ip",
        "x_custom_underscore",
    ];
    for name in never {
        assert!(
            got.header_values(name).is_empty(),
            "{name}:\n{}",
            got.head()
        );
    }
    assert_eq!(got.header_values("x-custom"), ["kept"]);
    assert_eq!(got.header_values("user-agent"), ["hardening-test"]);
    assert_eq!(got.header_values("openai-beta"), ["from-config"]);
    assert_eq!(
        got.header_values("authorization"),
        ["Bearer sk-up-strict-secret"]
    );
    assert_eq!(got.header_values("x-request-id"), ["client-id-1"]);
    assert_eq!(got.header_values("host").len(), 1);
    assert!(!String::from_utf8_lossy(&got.bytes).contains(CLIENT_KEY));

    let got = &open.seen()[0];
    assert_eq!(got.header_values("openai-organization"), ["org-client"]);
    assert_eq!(got.header_values("x-forwarded-for"), ["192.0.2.1"]);
    // Allowed, but set by the upstream's own key: the client's never goes.
    assert_eq!(
        got.header_values("authorization"),
        ["Bearer sk-up-open-secret"]
    );
    for name in [
        "openai-project",
        "x-forwarded-host",
        "x-api-key",
        "x-secret",
        "forwarded",
    ] {
        assert!(
            got.header_values(name).is_empty(),
            "{name}:\n{}",
            got.head()
        );
    }
    assert!(!String::from_utf8_lossy(&got.bytes).contains(CLIENT_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_headers_outside_the_guarded_set_are_a_config_error() {
    let dir = std::env::temp_dir().join(format!("llmgate-fh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        config(
            &upstream(
                "u",
                "http://127.0.0.1:9/v1",
                "forward_headers: [Content-Type, x_y]",
            ),
            "  chat: [{upstream: u}]\n",
            "",
        )
        .replace("@LISTEN@", "127.0.0.1:0"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
        .args(["-t", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("upstreams.u.forward_headers[0]"), "{text}");
    assert!(text.contains("upstreams.u.forward_headers[1]"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

// Rule 5: chunked request bodies.

#[tokio::test(flavor = "multi_thread")]
async fn chunked_request_bodies_are_read_strictly() {
    let raw = RawUpstream::start().await;
    let gw = raw_only(&raw, "limits: {max_header_bytes: 2KiB}").await;
    let body = chat_body("chat", false);
    let chunked = |chunks: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {CLIENT_KEY}\r\ntransfer-encoding: chunked\r\n\r\n{chunks}"
        )
        .into_bytes()
    };
    let (a, b) = body.split_at(9);
    let good = chunked(&format!(
        "{:x};name=\"quoted \\\" value\"\r\n{a}\r\n{:X} ; x ; y=z\r\n{b}\r\n0\r\nx-trailer: 1\r\n\r\n",
        a.len(),
        b.len()
    ));
    let r = raw_request(&gw.addr, &good).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = raw.seen();
    assert_eq!(seen.len(), 1);
    // Re-framed with a length, the model spliced in, the bytes otherwise intact.
    let sent = body.replace("\"chat\"", "\"m\"");
    assert_eq!(
        seen[0].header_values("content-length"),
        [sent.len().to_string()]
    );
    assert!(seen[0].bytes.ends_with(sent.as_bytes()));
    assert!(seen[0].header_values("transfer-encoding").is_empty());
    assert!(seen[0].header_values("x-trailer").is_empty());

    let many_ext: String = body
        .bytes()
        .map(|c| format!("1;e=abcdefghijklmnopqrstuvwxyz\r\n{}\r\n", c as char))
        .collect::<String>()
        + "0\r\n\r\n";
    let ext_bytes = ";e=abcdefghijklmnopqrstuvwxyz".len() * body.len();
    assert!(ext_bytes > 2048, "extensions exceed the 2 KiB budget");
    let bad = [
        format!("{:x}\n{body}\r\n0\r\n\r\n", body.len()),
        format!("{:x}\r\n{body}\n0\r\n\r\n", body.len()),
        format!("{:x}\r\n{body}\r\n0\r\n\n", body.len()),
        format!("{:x}\r\n{body}XX\r\n0\r\n\r\n", body.len()),
        format!("{:x} \r\n{body}\r\n0\r\n\r\n", body.len()),
        format!("0x{:x}\r\n{body}\r\n0\r\n\r\n", body.len()),
        format!("{:x};=v\r\n{body}\r\n0\r\n\r\n", body.len()),
        format!("{:x};a=\"open\r\n{body}\r\n0\r\n\r\n", body.len()),
        format!("{:x}\r\n{body}\r\n0\r\nnot a field\r\n\r\n", body.len()),
        format!("{:x}\r\n{body}\r\n0\r\n folded: x\r\n\r\n", body.len()),
        many_ext,
    ];
    for chunks in &bad {
        let mut s = TcpStream::connect(&gw.addr).await.unwrap();
        s.write_all(&chunked(chunks)).await.unwrap();
        let raw_answer = read_to_close(&mut s).await;
        let text = String::from_utf8_lossy(&raw_answer);
        assert!(text.starts_with("HTTP/1.1 400 "), "{chunks:?}: {text}");
        assert!(text.contains("connection: close"), "{text}");
        assert!(text.contains("chunked"), "{text}");
    }
    assert_eq!(raw.seen().len(), 1, "no broken body was forwarded");
}

// Rule 6: junk cannot reset timers.

#[tokio::test(flavor = "multi_thread")]
async fn empty_lines_are_bounded_and_do_not_restart_the_header_deadline() {
    let raw = RawUpstream::start().await;
    let gw = raw_only(&raw, "limits: {header_timeout: 500ms}").await;
    let wire = chat_wire("", &chat_body("chat", false));
    // A few empty lines before a request are fine (RFC 9112 2.2).
    let few = [&b"\r\n\r\n\r\n"[..], &wire].concat();
    assert_eq!(raw_request(&gw.addr, &few).await.status, 200);
    // Many are junk.
    let many = [&b"\r\n".repeat(20)[..], &wire].concat();
    assert_eq!(raw_request(&gw.addr, &many).await.status, 400);
    // One every 200 ms: the header deadline runs from the first one.
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let drip = async {
        for _ in 0..8 {
            if wr.write_all(b"\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut answer));
    let (_, _) = tokio::join!(drip, read);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert_eq!(raw.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_body_meets_the_overall_body_deadline() {
    let raw = RawUpstream::start().await;
    let gw = raw_only(&raw, "limits: {body_timeout: 5s, body_total_timeout: 1s}").await;
    let body = chat_body("chat", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let drip = async {
        wr.write_all(head.as_bytes()).await.expect("head");
        // One byte every 150 ms: each wait is far below body_timeout.
        for c in body.bytes() {
            if wr.write_all(&[c]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    };
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut answer));
    tokio::select! {
        _ = drip => {}
        _ = read => {}
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text:?}");
    assert!(
        text.contains("timed out reading the request body"),
        "{text}"
    );
    assert!(raw.seen().is_empty());
}

// Rule 7: answers from upstreams.

#[tokio::test(flavor = "multi_thread")]
async fn upstream_answers_outside_the_rules_fail_the_attempt_or_end_the_connection() {
    let raw = RawUpstream::start().await;
    let gw = raw_only(&raw, "").await;
    for bad in [
        &b"HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n"[..],
        b"HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ] {
        raw.script([RawReply::Send(bad.to_vec())]);
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(bad));
        assert_eq!(r.error_type(), "upstream_error");
    }
    // Both lengths: read as chunked, and the connection is not used again.
    raw.script([RawReply::Send(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
            .to_vec(),
    )]);
    let mut s = TcpStream::connect(&gw.addr).await.unwrap();
    let wire = chat_wire("", &chat_body("chat", false));
    let r = send_on(&mut s, &wire).await;
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));
    assert_eq!(send_on(&mut s, &wire).await.status, 200);
    let seen = raw.seen();
    let n = seen.len();
    assert_ne!(
        seen[n - 1].conn,
        seen[n - 2].conn,
        "a connection whose answer had both lengths was reused"
    );
}

// Rule 8: JSON bodies are valid JSON, UTF-8 included.

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_json_string_is_a_400() {
    let raw = RawUpstream::start().await;
    let gw = raw_only(&raw, "").await;
    let mut body = br#"{"model":"chat","messages":[{"role":"user","content":"caf"#.to_vec();
    body.extend_from_slice(b"\xc3\x28\"}]}");
    let mut wire = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(&body);
    let r = raw_request(&gw.addr, &wire).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_type(), "invalid_request_error");
    assert!(r.text().contains("UTF-8"), "{}", r.text());
    assert!(raw.seen().is_empty());
    let good = r#"{"model":"chat","messages":[{"role":"user","content":"café 世界 🎉"}]}"#;
    let r = gw.post("/v1/chat/completions", &auth(), good).await;
    assert_eq!(r.status, 200);
    assert!(raw.seen()[0].bytes.ends_with("🎉\"}]}".as_bytes()));
}
