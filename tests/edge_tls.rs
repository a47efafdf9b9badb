//! TLS termination, HTTP/2 (ALPN h2, h2c) and the AI gateway on those
//! listeners, through real sockets against the real binary; the CA and every
//! certificate are made by the test.

mod common;

use common::edge::{h1, h2_client, h2_request, path_str, presented_names, BulkBackend, Pki};
use common::*;
use std::time::Duration;

async fn wait_listening(addr: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{addr} never accepted");
}

struct Edge {
    gw: Gateway,
    tls: String,
    pki: Pki,
}

/// A `tls:` section listening on `addr` with `certs` (cert, key) in order.
fn tls_section(addr: &str, certs: &[(std::path::PathBuf, std::path::PathBuf)]) -> String {
    let mut s = format!("tls:\n  listen: [\"{addr}\"]\n  certs:\n");
    for (c, k) in certs {
        s += &format!("    - {{cert: {}, key: {}}}\n", path_str(c), path_str(k));
    }
    s
}

/// A gateway with a TLS listener (certificates `api.test`, default, and
/// `wiki.test` + `*.apps.test`), the AI models of `models`, and `routes`.
async fn edge(upstreams: &str, models: &str, extra: &str) -> Edge {
    let pki = Pki::new();
    let (api_c, api_k) = pki.leaf("api", &["api.test"], false);
    let (wiki_c, wiki_k) = pki.leaf("wiki", &["wiki.test", "*.apps.test"], false);
    let tls = format!("127.0.0.1:{}", free_port());
    let certs = [(api_c, api_k), (wiki_c, wiki_k)];
    let gw = Gateway::start(&config(
        upstreams,
        models,
        &(tls_section(&tls, &certs) + extra),
    ))
    .await;
    wait_listening(&tls).await;
    Edge { gw, tls, pki }
}

/// [`edge`] with one model, `chat`, on an ok mock.
async fn chat_edge(extra: &str) -> (Mock, Edge) {
    let m = ok_mock().await;
    let e = edge(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        extra,
    )
    .await;
    (m, e)
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_the_certificate_and_unknown_names_get_the_first() {
    let (_m, e) = chat_edge("").await;
    let wiki = e.pki.connect(&e.tls, "wiki.test", &[b"http/1.1"]).await;
    assert_eq!(presented_names(&wiki), ["wiki.test", "*.apps.test"]);
    let wild = e
        .pki
        .connect(&e.tls, "docs.apps.test", &[b"http/1.1"])
        .await;
    assert_eq!(presented_names(&wild), ["wiki.test", "*.apps.test"]);
    let api = e.pki.connect(&e.tls, "api.test", &[b"http/1.1"]).await;
    assert_eq!(presented_names(&api), ["api.test"]);
    // An unknown name gets the default (first) certificate, which the
    // client then refuses as not valid for that name.
    let tcp = tokio::net::TcpStream::connect(&e.tls).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("unknown.test").expect("name");
    let err = tokio_rustls::TlsConnector::from(e.pki.client_config(&[]))
        .connect(name, tcp)
        .await
        .expect_err("the default certificate is not for unknown.test");
    assert!(
        err.to_string().contains("api.test") || err.to_string().contains("NotValidForName"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dash_t_refuses_expired_certificates_and_foreign_keys_naming_the_file() {
    let pki = Pki::new();
    let (old_c, old_k) = pki.leaf("old", &["old.test"], true);
    let (a_c, _) = pki.leaf("a", &["a.test"], false);
    let (_, b_k) = pki.leaf("b", &["b.test"], false);
    let run = |cert: &std::path::Path, key: &std::path::Path| {
        let cfg = pki.dir.join(format!("t-{}.yaml", fastrand::u32(..)));
        std::fs::write(
            &cfg,
            format!(
                "tls:\n  listen: [\"127.0.0.1:1\"]\n  certs:\n    - {{cert: {}, key: {}}}\n",
                path_str(cert),
                path_str(key)
            ),
        )
        .expect("write");
        std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .arg("-t")
            .arg("-c")
            .arg(&cfg)
            .output()
            .expect("run -t")
    };
    let out = run(&old_c, &old_k);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("old.pem") && text.contains("expired"),
        "{text}"
    );
    let out = run(&a_c, &b_k);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("b.key") && text.contains("not the private key"),
        "{text}"
    );
    let missing = pki.dir.join("missing.pem");
    let out = run(&missing, &b_k);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("missing.pem"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ai_over_tls_fails_over_streams_and_answers_errors_on_h1_and_h2() {
    let dead = dead_url();
    let m = mock(Behavior::Ok {
        events: 6,
        event_delay: Duration::from_millis(40),
    })
    .await;
    let ups = upstream("dead", &dead, "") + &upstream("ok", &m.url(), "");
    let e = edge(
        &ups,
        "  chat: [{upstream: dead, priority: 1}, {upstream: ok, priority: 2}]\n",
        "",
    )
    .await;
    let key = format!("Bearer {CLIENT_KEY}");
    // HTTP/1.1 over TLS: failover from a refused connection.
    let mut s = e.pki.connect(&e.tls, "api.test", &[b"http/1.1"]).await;
    let r = h1(
        &mut s,
        "POST",
        "/v1/chat/completions",
        "api.test",
        &[
            ("authorization", &key),
            ("content-type", "application/json"),
        ],
        chat_body("chat", false).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-llmgate-attempts"), Some("2"));
    assert_eq!(r.json()["object"], "chat.completion");
    // h2: the stream arrives event by event, and ends with [DONE].
    let s = e.pki.connect(&e.tls, "api.test", &[b"h2"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h2 = h2_client(s).await;
    let (status, headers, pieces) = h2_request(
        &h2,
        "POST",
        "https://api.test/v1/chat/completions",
        &[
            ("authorization", &key),
            ("content-type", "application/json"),
        ],
        chat_body("chat", true).as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    assert!(pieces.len() >= 4, "SSE arrived in {} pieces", pieces.len());
    let body: Vec<u8> = pieces.concat();
    let events = sse_data(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    // Errors keep their JSON shape and request id over h2.
    let (status, headers, pieces) = h2_request(
        &h2,
        "POST",
        "https://api.test/v1/chat/completions",
        &[("authorization", &key)],
        chat_body("no-such-model", false).as_bytes(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(headers.contains_key("x-request-id"));
    let v: serde_json::Value = serde_json::from_slice(&pieces.concat()).expect("json");
    assert_eq!(v["error"]["code"], "model_not_found");
    let (status, _, _) = h2_request(
        &h2,
        "POST",
        "https://api.test/v1/chat/completions",
        &[],
        chat_body("chat", false).as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_carries_100_concurrent_streams_to_ai_and_to_a_plain_route() {
    let b = BulkBackend::start("app").await;
    let routes = format!(
        "routes:\n  - host: wiki.test\n    backends: [{{addr: \"{}\"}}]\n",
        b.addr
    );
    let (m, e) = chat_edge(&routes).await;
    let key = format!("Bearer {CLIENT_KEY}");
    let s = e.pki.connect(&e.tls, "wiki.test", &[b"h2"]).await;
    let h2 = h2_client(s).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let h2 = h2.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                h2_request(
                    &h2,
                    "POST",
                    "https://api.test/v1/chat/completions",
                    &[("authorization", &key)],
                    chat_body("chat", false).as_bytes(),
                )
                .await
            } else {
                h2_request(&h2, "GET", &format!("https://wiki.test/page/{i}"), &[], b"").await
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, headers, body) = t.await.expect("task");
        assert_eq!(status, 200, "stream {i}");
        if i % 2 == 1 {
            assert_eq!(
                headers.get("x-backend").map(|v| v.as_bytes()),
                Some(&b"app"[..])
            );
            let v: serde_json::Value = serde_json::from_slice(&body.concat()).expect("json");
            assert_eq!(v["target"], format!("/page/{i}"));
        }
    }
    // Every AI stream reached the provider (a retried attempt may add one).
    assert!(m.hits() >= 100, "{} provider hits", m.hits());
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_with_prior_knowledge_on_a_cleartext_listener() {
    let m = ok_mock().await;
    let gw = Gateway::start(&config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        "server: {h2c: true}\n",
    ))
    .await;
    let tcp = tokio::net::TcpStream::connect(&gw.addr).await.expect("tcp");
    let h2 = h2_client(tcp).await;
    let key = format!("Bearer {CLIENT_KEY}");
    let (status, _, body) = h2_request(
        &h2,
        "POST",
        &format!("http://{}/v1/chat/completions", gw.addr),
        &[("authorization", &key)],
        chat_body("chat", false).as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body.concat()).expect("json");
    assert_eq!(v["object"], "chat.completion");
    // HTTP/1.1 on the same listener still works.
    assert_eq!(gw.chat("chat").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_the_certificate_under_load_without_a_failed_request() {
    let (m, e) = chat_edge("").await;
    let before = e.pki.connect(&e.tls, "api.test", &[b"http/1.1"]).await;
    assert_eq!(presented_names(&before), ["api.test"]);
    // Under load: clients making new TLS connections all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, tls) = (stop.clone(), e.tls.clone());
        let cfg = e.pki.client_config(&[b"http/1.1"]);
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tcp = tokio::net::TcpStream::connect(&tls).await.expect("tcp");
                let name = rustls::pki_types::ServerName::try_from("api.test").expect("name");
                let Ok(mut s) = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                else {
                    failed += 1;
                    continue;
                };
                let key = format!("Bearer {CLIENT_KEY}");
                let r = h1(
                    &mut s,
                    "POST",
                    "/v1/chat/completions",
                    "api.test",
                    &[("authorization", &key)],
                    chat_body("chat", false).as_bytes(),
                )
                .await;
                if r.status == 200 {
                    ok += 1
                } else {
                    failed += 1
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new certificate for api.test that also names renewed.test.
    let certs = [
        e.pki.leaf("api2", &["api.test", "renewed.test"], false),
        e.pki.leaf("wiki2", &["wiki.test"], false),
    ];
    let yaml = config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up}]\n",
        &tls_section(&e.tls, &certs),
    );
    e.gw.rewrite_config(&yaml);
    e.gw.signal("HUP");
    let mut swapped = false;
    for _ in 0..100 {
        let s = e.pki.connect(&e.tls, "api.test", &[b"http/1.1"]).await;
        if presented_names(&s) == ["api.test", "renewed.test"] {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        swapped,
        "the new certificate was never presented:\n{}",
        e.gw.log()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in load {
        let (o, f) = t.await.expect("load task");
        ok += o;
        failed += f;
    }
    assert!(ok > 20, "only {ok} requests went through");
    assert_eq!(failed, 0, "{failed} requests failed across the reload");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_http_sends_cleartext_clients_to_https_except_health() {
    let (_m, e) = chat_edge("  redirect_http: true\n").await;
    let r = e.gw.get("/v1/models?x=1", &[]).await;
    assert_eq!(r.status, 308);
    let port = e.tls.rsplit(':').next().unwrap_or_default();
    let host = e.gw.addr.split(':').next().unwrap_or_default();
    assert_eq!(
        r.header("location"),
        Some(format!("https://{host}:{port}/v1/models?x=1").as_str())
    );
    assert_eq!(e.gw.get("/health", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_h2_stream_resets_leaves_the_gateway_serving() {
    let (_m, e) = chat_edge("").await;
    let s = e.pki.connect(&e.tls, "api.test", &[b"h2"]).await;
    let h2 = h2_client(s).await;
    // "Rapid reset" (CVE-2023-44487): open a stream and cancel it at once,
    // thousands of times on one connection.
    let mut sent = 0;
    for _ in 0..5000 {
        let Ok(mut ready) = h2.clone().ready().await else {
            break;
        };
        let req = http::Request::builder()
            .method("GET")
            .uri("https://api.test/health")
            .body(())
            .expect("request");
        let Ok((resp, stream)) = ready.send_request(req, true) else {
            break;
        };
        drop(resp);
        drop(stream);
        sent += 1;
    }
    assert!(sent > 0);
    // Another client is served at once; the gateway is alive and well.
    let s = e.pki.connect(&e.tls, "api.test", &[b"h2"]).await;
    let other = h2_client(s).await;
    let (status, _, _) = h2_request(&other, "GET", "https://api.test/health", &[], b"").await;
    assert_eq!(status, 200);
    let key = format!("Bearer {CLIENT_KEY}");
    let (status, _, _) = h2_request(
        &other,
        "POST",
        "https://api.test/v1/chat/completions",
        &[("authorization", &key)],
        chat_body("chat", false).as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
}
