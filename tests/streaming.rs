//! SSE through real sockets: byte-identical and incremental pass-through, the
//! commit point at the first data event, and what a client sees when a stream
//! breaks after commit.

mod common;
use common::*;
use std::time::Duration;

fn two_tier(a: &str, b: &str, a_opts: &str) -> String {
    let ups = upstream("a", a, a_opts) + &upstream("b", b, "");
    config(&ups, "  chat:\n    - {upstream: a, model: m, priority: 1}\n    - {upstream: b, model: m, priority: 2}\n", "")
}

/// A mock streaming `events` events at once, behind a gateway with one route.
async fn streaming_upstream(events: usize) -> (Mock, Gateway) {
    let m = mock(Behavior::Ok {
        events,
        event_delay: Duration::ZERO,
    })
    .await;
    let gw = one_route(&m, "").await;
    (m, gw)
}

async fn stream(gw: &Gateway) -> Response {
    gw.post("/v1/chat/completions", &auth(), &chat_body("chat", true))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_is_byte_identical_to_the_upstream() {
    let (m, gw) = streaming_upstream(30).await;
    let via = stream(&gw).await;
    let direct = request(
        &m.addr.to_string(),
        "POST",
        "/v1/chat/completions",
        &[],
        chat_body("m", true).as_bytes(),
    )
    .await;
    assert_eq!(via.status, 200);
    assert_eq!(via.header("content-type"), Some("text/event-stream"));
    assert!(via.chunked && via.complete);
    assert_eq!(via.body, direct.body, "events pass through unchanged");
    let events = sse_data(&via.body);
    assert_eq!(events.len(), 31);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_events_arrive_incrementally() {
    let delay = Duration::from_millis(150);
    let m = mock(Behavior::Ok {
        events: 6,
        event_delay: delay,
    })
    .await;
    let gw = Gateway::start(&config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        "",
    ))
    .await;
    let r = stream(&gw).await;
    assert!(r.complete);
    assert_eq!(sse_data(&r.body).len(), 7);
    // A buffering proxy would deliver everything in one burst at the end.
    assert!(r.arrivals.len() >= 4, "reads: {:?}", r.arrivals);
    let spread = *r.arrivals.last().unwrap() - r.arrivals[0];
    assert!(
        spread >= delay * 3,
        "first and last event {spread:?} apart: {:?}",
        r.arrivals
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_when_a_stream_dies_before_its_first_event() {
    let b = mock(Behavior::Ok {
        events: 3,
        event_delay: Duration::ZERO,
    })
    .await;
    let a = ok_mock().await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "first_token_timeout: 300ms")).await;
    for (name, behavior) in [
        ("headers then close", Behavior::CloseAfterHeaders),
        (
            "headers then stall",
            Behavior::StallAfterHeaders(Duration::from_secs(10)),
        ),
        ("close before headers", Behavior::Close),
    ] {
        a.set(behavior);
        let r = stream(&gw).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            (r.attempts(), r.header("x-llmgate-upstream")),
            (2, Some("b")),
            "{name}"
        );
        assert!(r.complete, "{name}");
        let events = sse_data(&r.body);
        assert_eq!(events.len(), 4, "{name}: {events:?}");
        assert!(
            !r.text().contains("error"),
            "{name}: no trace of the failed attempt"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_broken_after_commit_ends_with_an_error_event() {
    let a = mock(Behavior::StreamThenDrop { events: 3 }).await;
    let b = ok_mock().await;
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "")).await;
    let r = stream(&gw).await;
    assert_eq!(r.status, 200);
    assert!(r.complete, "chunked response ends cleanly");
    let events = sse_data(&r.body);
    assert_eq!(events.len(), 4, "{events:?}");
    let last: serde_json::Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error");
    assert_eq!(b.hits(), 0, "no retry after commit");
    // Silent past idle_timeout after commit: same outcome, and no hang.
    a.set(Behavior::StreamThenStall {
        events: 2,
        stall: Duration::from_secs(30),
    });
    let gw = Gateway::start(&two_tier(&a.url(), &b.url(), "idle_timeout: 300ms")).await;
    let r = stream(&gw).await;
    assert!(r.complete);
    let events = sse_data(&r.body);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[2].contains("idle timeout"), "{}", events[2]);
    assert_eq!(b.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_response_cut_after_commit_looks_cut() {
    // A plain JSON answer whose connection dies mid-body: never a clean short 200.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"partial\":").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let gw = Gateway::start(&config(
        &upstream("up", &format!("http://{addr}/v1"), ""),
        "  chat: [{upstream: up}]\n",
        "",
    ))
    .await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "client must see an incomplete body: {r:?}");
}

/// A chat request written raw on a new connection (so the test can drop it).
async fn raw_chat(gw: &Gateway, stream: bool) -> Box<dyn front::Io> {
    use tokio::io::AsyncWriteExt;
    let body = chat_body("chat", stream);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = front::connect(&gw.addr).await;
    s.write_all(req.as_bytes()).await.expect("write");
    s
}

/// Whether `needle` shows up in the gateway's log within 2.5 s.
async fn logged_soon(gw: &Gateway, needle: &str) -> bool {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if gw.log().contains(needle) {
            return true;
        }
    }
    false
}

/// The close watch during an attempt waits on the client socket's readiness
/// (no timer, no read): a client that leaves while the upstream has not
/// answered yet must still cancel the attempt at once.
#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_before_the_upstream_answers_is_noticed() {
    let m = mock(Behavior::StallBeforeHeaders(Duration::from_secs(10))).await;
    let gw = one_route(&m, "").await;
    let s = raw_chat(&gw, false).await;
    // Let the request reach the stalled upstream, then leave.
    for _ in 0..100 {
        if m.hits() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(m.hits(), 1, "the request reached the upstream");
    drop(s);
    assert!(
        logged_soon(&gw, "client disconnected").await,
        "gateway noticed the disconnect long before the 10 s stall ended:\n{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_mid_stream_is_noticed() {
    use tokio::io::AsyncReadExt;
    let m = mock(Behavior::Ok {
        events: 100,
        event_delay: Duration::from_millis(100),
    })
    .await;
    let gw = one_route(&m, "").await;
    let mut s = raw_chat(&gw, true).await;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    drop(s);
    assert!(
        logged_soon(&gw, "client_gone").await,
        "gateway noticed the disconnect long before the 10 s stream ended:\n{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_are_reused_across_plain_and_streamed_answers() {
    let (m, gw) = streaming_upstream(3).await;
    for i in 0..20 {
        let r = gw
            .post(
                "/v1/chat/completions",
                &auth(),
                &chat_body("chat", i % 2 == 0),
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(r.complete);
    }
    // One request at a time: every answer is read to its end, so the same
    // pooled connection carries all of them (health checks are off by default
    // in `config`; allow one spare in case one ran).
    assert_eq!(m.hits(), 20);
    assert!(
        m.connections() <= 2,
        "{} upstream connections for 20 sequential requests",
        m.connections()
    );
}
