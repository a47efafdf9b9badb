//! Fault injection through real sockets: one test per upstream fault mode,
//! asserting exactly what the client sees and that it arrives in bounded time,
//! plus a load run while one upstream flips between faults.

mod common;
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound for any single faulty exchange with the timeouts below: no hang.
const BOUND: Duration = Duration::from_secs(5);
const TIMEOUTS: &str = "response_timeout: 500ms, first_token_timeout: 500ms, idle_timeout: 500ms";

fn cfg(a: &str, b: &str) -> String {
    let ups = upstream("a", a, TIMEOUTS) + &upstream("b", b, "");
    config(
        &ups,
        "  chat:\n    - {upstream: a, priority: 1}\n    - {upstream: b, priority: 2}\n",
        "",
    )
}

async fn timed(gw: &Gateway, stream: bool) -> (Response, Duration) {
    let t = Instant::now();
    let r = gw
        .post("/v1/chat/completions", &auth(), &chat_body("chat", stream))
        .await;
    (r, t.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_commit_faults_fail_over_invisibly() {
    let a = ok_mock().await;
    let b = mock(Behavior::Ok {
        events: 3,
        event_delay: Duration::ZERO,
    })
    .await;
    let gw = Gateway::start(&cfg(&a.url(), &b.url())).await;
    let modes: Vec<(&str, Behavior, bool)> = vec![
        ("reset", Behavior::Reset, false),
        ("close before response", Behavior::Close, false),
        ("garbage instead of HTTP", Behavior::Garbage, false),
        ("2 MiB response header", Behavior::HugeHeaders, false),
        (
            "stall before headers",
            Behavior::StallBeforeHeaders(Duration::from_secs(30)),
            false,
        ),
        (
            "503",
            Behavior::Status {
                status: 503,
                headers: vec![],
            },
            false,
        ),
        (
            "200 then close before data",
            Behavior::CloseAfterHeaders,
            true,
        ),
        (
            "200 then stall before first event",
            Behavior::StallAfterHeaders(Duration::from_secs(30)),
            true,
        ),
        (
            "stream closes before first event",
            Behavior::StreamThenDrop { events: 0 },
            true,
        ),
    ];
    for (name, behavior, stream) in modes {
        a.set(behavior);
        let (r, took) = timed(&gw, stream).await;
        println!(
            "{name}: status {} attempts {} in {took:?}",
            r.status,
            r.attempts()
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(
            (r.attempts(), r.header("x-llmgate-upstream")),
            (2, Some("b")),
            "{name}"
        );
        assert!(r.complete, "{name}: complete answer");
        if stream {
            assert_eq!(
                sse_data(&r.body).last().map(String::as_str),
                Some("[DONE]"),
                "{name}"
            );
        } else {
            assert_eq!(r.json()["object"], "chat.completion", "{name}");
        }
        assert!(took < BOUND, "{name}: took {took:?}");
    }
    // Refused connection.
    let gw = Gateway::start(&cfg(&dead_url(), &b.url())).await;
    let (r, took) = timed(&gw, false).await;
    assert_eq!((r.status, r.attempts()), (200, 2));
    assert!(took < BOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_commit_faults_end_cleanly_and_visibly() {
    let a = ok_mock().await;
    let b = ok_mock().await;
    let gw = Gateway::start(&cfg(&a.url(), &b.url())).await;
    for (name, behavior) in [
        (
            "stream drops after 2 events",
            Behavior::StreamThenDrop { events: 2 },
        ),
        (
            "garbage framing after first event",
            Behavior::GarbageAfterFirstEvent,
        ),
        (
            "stream stalls after 2 events",
            Behavior::StreamThenStall {
                events: 2,
                stall: Duration::from_secs(30),
            },
        ),
    ] {
        a.set(behavior);
        let (r, took) = timed(&gw, true).await;
        println!("{name}: status {} in {took:?}", r.status);
        assert_eq!(r.status, 200, "{name}");
        assert!(
            r.complete,
            "{name}: the chunked response is terminated, not hung"
        );
        let events = sse_data(&r.body);
        let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["type"], "upstream_error",
            "{name}: {events:?}"
        );
        assert!(
            events.len() >= 2,
            "{name}: events before the error were delivered"
        );
        assert!(took < BOUND, "{name}: took {took:?}");
    }
    assert_eq!(b.hits(), 0, "nothing is retried after commit");
    // A plain answer shorter than its Content-Length: cut, never a clean short 200.
    a.set(Behavior::WrongContentLength);
    let (r, took) = timed(&gw, false).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "client sees an incomplete body");
    assert!(took < BOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn trickled_answers_pass_through_intact() {
    let a = mock(Behavior::Trickle {
        piece: 7,
        delay: Duration::from_millis(2),
    })
    .await;
    let b = ok_mock().await;
    let gw = Gateway::start(&cfg(&a.url(), &b.url())).await;
    for stream in [false, true] {
        let (r, took) = timed(&gw, stream).await;
        let direct = request(
            &a.addr.to_string(),
            "POST",
            "/v1/chat/completions",
            &[],
            chat_body("chat", stream).as_bytes(),
        )
        .await;
        assert_eq!((r.status, r.attempts()), (200, 1));
        assert!(r.complete);
        assert_eq!(r.body, direct.body, "stream={stream}: byte-identical");
        assert!(took < BOUND);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_429_is_honoured_and_reported() {
    let a = mock(Behavior::Status {
        status: 429,
        headers: vec![("retry-after".into(), "30".into())],
    })
    .await;
    let b = mock(Behavior::Status {
        status: 429,
        headers: vec![("x-ratelimit-reset-requests".into(), "6s".into())],
    })
    .await;
    let gw = Gateway::start(&cfg(&a.url(), &b.url())).await;
    let (r, took) = timed(&gw, false).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("retry-after"),
        Some("6"),
        "soonest reset of all upstreams"
    );
    assert!(took < BOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients_get_clear_errors() {
    let m = ok_mock().await;
    let gw = Gateway::start(&config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        "limits: {max_header_bytes: 8KiB}",
    ))
    .await;
    let body = chat_body("chat", false);
    let k = format!("authorization: Bearer {CLIENT_KEY}\r\n");
    let big = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{k}x-big: {}\r\ncontent-length: {}\r\n\r\n{body}", "a".repeat(10_000), body.len());
    let r = raw_request(&gw.addr, big.as_bytes()).await;
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["error"]["code"], "request_header_fields_too_large");
    let smuggle = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{k}content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let r = raw_request(&gw.addr, smuggle.as_bytes()).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("framing"));
    let dup = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{k}content-length: {0}\r\ncontent-length: {0}\r\n\r\n{body}", body.len());
    assert_eq!(raw_request(&gw.addr, dup.as_bytes()).await.status, 400);
    assert_eq!(m.hits(), 0, "nothing of a rejected request is forwarded");
    // Slow clients do not hold up others: 20 connections trickling headers.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = front::connect(&gw.addr).await;
        use tokio::io::AsyncWriteExt;
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let t = Instant::now();
    assert_eq!(gw.chat("chat").await.status, 200);
    assert!(t.elapsed() < BOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn load_while_one_upstream_flips_between_faults() {
    let a = ok_mock().await;
    let b = mock(Behavior::Ok {
        events: 5,
        event_delay: Duration::from_millis(2),
    })
    .await;
    let ups = upstream(
        "a",
        &a.url(),
        "response_timeout: 300ms, first_token_timeout: 300ms",
    ) + &upstream("b", &b.url(), "");
    // Breaker off (unhealthy_after 1000): every request may meet the faults.
    let yaml = config(&ups, "  chat: [{upstream: a}, {upstream: b}]\n", "");
    let gw = Arc::new(Gateway::start(&yaml).await);
    let flipper = {
        let a = a.clone();
        tokio::spawn(async move {
            let modes = [
                Behavior::default(),
                Behavior::Status {
                    status: 503,
                    headers: vec![],
                },
                Behavior::Close,
                Behavior::StallBeforeHeaders(Duration::from_secs(5)),
                Behavior::Reset,
                Behavior::CloseAfterHeaders,
            ];
            for i in 0..200 {
                a.set(modes[i % modes.len()].clone());
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    let mut clients = Vec::new();
    for c in 0..16 {
        let gw = gw.clone();
        clients.push(tokio::spawn(async move {
            let mut bad = Vec::new();
            for i in 0..50 {
                let stream = (c + i) % 2 == 0;
                let r = gw
                    .post("/v1/chat/completions", &auth(), &chat_body("chat", stream))
                    .await;
                let complete = r.complete
                    && if stream {
                        sse_data(&r.body).last().map(String::as_str) == Some("[DONE]")
                    } else {
                        r.json()["object"] == "chat.completion"
                    };
                if r.status != 200 || !complete {
                    bad.push(format!("status {} stream {stream}: {}", r.status, r.text()));
                }
            }
            bad
        }));
    }
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    flipper.abort();
    assert!(
        failures.is_empty(),
        "{} of 800 failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        a.hits() > 200,
        "about half the requests met the flapping upstream: {}",
        a.hits()
    );
}

/// Slowloris: a head still incomplete `header_timeout` after its first byte is
/// cut with a 408; a slow head inside the limit, and keep-alive idle time longer
/// than the limit, are not.
#[tokio::test(flavor = "multi_thread")]
async fn trickled_request_heads_are_cut_at_the_header_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = ok_mock().await;
    let gw = Gateway::start(&config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        "limits: {header_timeout: 1s}",
    ))
    .await;
    let body = chat_body("chat", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );

    // A byte every 100 ms would take ~15 s for this head; it is cut after ~1 s.
    let mut s = front::connect(&gw.addr).await;
    let t = Instant::now();
    let mut cut = false;
    for b in head.as_bytes() {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
                cut = true;
                break;
            }
            Ok(Err(_)) => {
                cut = true;
                break;
            }
        }
    }
    let took = t.elapsed();
    assert!(cut, "a trickling client was never cut");
    assert!(
        took >= Duration::from_millis(900),
        "cut too early: {took:?}"
    );
    assert!(took < BOUND, "cut too late: {took:?}");
    assert_eq!(m.hits(), 0);

    // Slow but inside the limit: the head comes in two pieces 400 ms apart; then
    // the connection idles 1.5 s (longer than the limit) and is used again.
    let mut s = front::connect(&gw.addr).await;
    let (a, b) = head.split_at(30);
    s.write_all(a.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.write_all(format!("{b}{body}").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.status, 200);
    assert_eq!(m.hits(), 2);
}
