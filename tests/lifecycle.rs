//! Process lifecycle through real signals and sockets: systemd readiness
//! notification, graceful upgrades (new process with `-u`, SIGQUIT to the
//! old) and a graceful stop (SIGTERM) under load with a stream in flight.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn tells_systemd_when_ready_and_when_stopping() {
    let m = ok_mock().await;
    let dir = std::env::temp_dir().join(format!("llmgate-notify-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        "",
    );
    let gw = Gateway::start_with_env(&cfg, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]).await;
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY notification");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.contains("READY=1"), "{msg}");
    // Ready means serving.
    assert_eq!(gw.chat("chat").await.status, 200);
    gw.signal("TERM");
    let n = sock.recv(&mut buf).expect("STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_upgrade_under_load_drops_nothing() {
    let m = mock(Behavior::Ok {
        events: 20,
        event_delay: Duration::from_millis(100),
    })
    .await;
    let fast = ok_mock().await;
    let ups = upstream("slow", &m.url(), "") + &upstream("fast", &fast.url(), "");
    let cfg = config(&ups, "  stream: [{upstream: slow}]\n  chat: [{upstream: fast}]\n", "")
        + "server: {upgrade_sock: \"@DIR@/upgrade.sock\", pid_file: \"@DIR@/llmgate.pid\", grace_period_seconds: 3, graceful_shutdown_timeout_seconds: 3}\n";
    let mut gw = Gateway::start(&cfg).await;
    let addr = gw.addr.clone();

    // A 2-second stream that starts on the old process.
    let stream_addr = addr.clone();
    let stream = tokio::spawn(async move {
        request(
            &stream_addr,
            "POST",
            "/v1/chat/completions",
            &auth(),
            chat_body("stream", true).as_bytes(),
        )
        .await
    });
    // Bounded load across the upgrade: 4 clients until told to stop (at most 2000 requests).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (addr, stop, ok, bad) = (addr.clone(), stop.clone(), ok.clone(), bad.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..500 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = request(
                    &addr,
                    "POST",
                    "/v1/chat/completions",
                    &auth(),
                    chat_body("chat", false).as_bytes(),
                )
                .await;
                if r.status == 200 && r.complete {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_pid = gw.pid();
    let pid_file = gw.dir().join("llmgate.pid");
    assert_eq!(pid_once_written(&pid_file).await, old_pid);
    let mut old = gw.spawn_upgrade();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The new process waits for the listeners: the file still names the old one,
    // so `kill -QUIT "$(cat pid_file)"` (docs/operations.md) reaches it.
    assert_eq!(pid_once_written(&pid_file).await, old_pid);
    let _ = std::process::Command::new("kill")
        .arg("-QUIT")
        .arg(old_pid.to_string())
        .status();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        pid_once_written(&pid_file).await,
        gw.pid(),
        "new process wrote its pid"
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let s = stream.await.unwrap();
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "load ran: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "failed requests across the upgrade:\n{}",
        gw.log()
    );
    assert_eq!(s.status, 200);
    assert!(s.complete, "in-flight stream completed on the old process");
    assert_eq!(sse_data(&s.body).last().map(String::as_str), Some("[DONE]"));
    // The old process exits on its own after the grace period; the new one serves.
    let mut exited = false;
    for _ in 0..100 {
        if old.try_wait().ok().flatten().is_some() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exited, "old process exited after its grace period");
    assert_eq!(gw.chat("chat").await.status, 200, "new process serves");
    assert_eq!(
        pid_once_written(&pid_file).await,
        gw.pid(),
        "the old process left the new one's pid file in place"
    );
}

/// The pid in `path`, waiting (bounded) for it to be written.
async fn pid_once_written(path: &std::path::Path) -> u32 {
    for _ in 0..100 {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pid in {}", path.display());
}

/// Closed-loop keep-alive clients (each sends its next request the moment
/// the answer is complete, on the same connection, and reconnects only when
/// told `connection: close`) see no error across ten upgrades in a row, and
/// streams in flight complete.
#[tokio::test(flavor = "multi_thread")]
async fn ten_upgrades_under_keep_alive_load_lose_no_request() {
    let slow = mock(Behavior::Ok {
        events: 10,
        event_delay: Duration::from_millis(50),
    })
    .await;
    let fast = ok_mock().await;
    let ups = upstream("slow", &slow.url(), "") + &upstream("fast", &fast.url(), "");
    let cfg = config(&ups, "  stream: [{upstream: slow}]\n  chat: [{upstream: fast}]\n", "")
        + "server: {upgrade_sock: \"@DIR@/upgrade.sock\", pid_file: \"@DIR@/llmgate.pid\", grace_period_seconds: 2, graceful_shutdown_timeout_seconds: 1}\n";
    let mut gw = Gateway::start(&cfg).await;
    let addr = gw.addr.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (addr, stop, ok, bad, failures) = (
            addr.clone(),
            stop.clone(),
            ok.clone(),
            bad.clone(),
            failures.clone(),
        );
        clients.push(tokio::spawn(async move {
            let stream = c == 0;
            let wire = keep_alive_request(stream);
            let mut conn: Option<tokio::net::TcpStream> = None;
            // Bounded: at most 20,000 requests per client, and the test's stop flag.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if conn.is_none() {
                    conn = tokio::net::TcpStream::connect(&addr).await.ok();
                }
                let Some(s) = conn.as_mut() else {
                    bad.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (good, close, r) = one_request(s, &wire, stream).await;
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!("{:?}", r.map(|r| (r.status, r.complete, r.text()))));
                    }
                }
                if close {
                    conn = None;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut olds = Vec::new();
    for _ in 0..10 {
        let old_pid = gw.pid();
        olds.push(gw.spawn_upgrade());
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = std::process::Command::new("kill")
            .arg("-QUIT")
            .arg(old_pid.to_string())
            .status();
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    for mut o in olds {
        let _ = o.kill();
        let _ = o.wait();
    }
    let failed = failures.lock().map(|f| f.clone()).unwrap_or_default();
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "load ran: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "failed requests across ten upgrades: {:?}",
        &failed[..failed.len().min(5)]
    );
}

/// A graceful stop (SIGTERM) under closed-loop keep-alive load: every request
/// sent gets its whole answer (the last one on each connection says
/// `connection: close`), and a stream in flight completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_stop_under_keep_alive_load_loses_no_request() {
    let slow = mock(Behavior::Ok {
        events: 10,
        event_delay: Duration::from_millis(50),
    })
    .await;
    let fast = ok_mock().await;
    let ups = upstream("slow", &slow.url(), "") + &upstream("fast", &fast.url(), "");
    let cfg = config(
        &ups,
        "  stream: [{upstream: slow}]\n  chat: [{upstream: fast}]\n",
        "",
    ) + "server: {grace_period_seconds: 2, graceful_shutdown_timeout_seconds: 2}\n";
    let gw = Gateway::start(&cfg).await;
    let addr = gw.addr.clone();
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..9 {
        let (addr, ok, bad, failures) = (addr.clone(), ok.clone(), bad.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let stream = c == 0;
            let wire = keep_alive_request(stream);
            let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                bad.fetch_add(1, Ordering::Relaxed);
                return;
            };
            // Bounded: at most 20,000 requests; ends when told `connection: close`.
            for _ in 0..20_000 {
                let (good, close, r) = one_request(&mut s, &wire, stream).await;
                if !good {
                    bad.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!("{:?}", r.map(|r| (r.status, r.complete, r.text()))));
                    }
                    return;
                }
                ok.fetch_add(1, Ordering::Relaxed);
                if close {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.signal("TERM");
    for c in clients {
        let _ = c.await;
    }
    let failed = failures.lock().map(|f| f.join("\n")).unwrap_or_default();
    assert!(ok.load(Ordering::Relaxed) > 20, "load ran");
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "failed requests across the stop:\n{failed}\n{}",
        gw.log()
    );
}

/// A keep-alive client's request: `stream` asks the streaming model.
fn keep_alive_request(stream: bool) -> String {
    let body = chat_body(if stream { "stream" } else { "chat" }, stream);
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {CLIENT_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Send `wire` on `s` and read its answer (10 s cap): whether it is whole (a
/// stream to its `[DONE]`), whether the connection is done (no answer, or
/// `connection: close`), and the answer.
async fn one_request(
    s: &mut tokio::net::TcpStream,
    wire: &str,
    stream: bool,
) -> (bool, bool, Option<Response>) {
    use tokio::io::AsyncWriteExt;
    let r = match s.write_all(wire.as_bytes()).await {
        Ok(()) => tokio::time::timeout(Duration::from_secs(10), read_response(s))
            .await
            .ok(),
        Err(_) => None,
    };
    let good = r.as_ref().is_some_and(|r| {
        r.status == 200
            && r.complete
            && (!stream || sse_data(&r.body).last().map(String::as_str) == Some("[DONE]"))
    });
    let close = r
        .as_ref()
        .is_none_or(|r| r.header("connection") == Some("close"));
    (good, close, r)
}
