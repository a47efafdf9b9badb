//! Test harness: the real `llmgate` binary on a free loopback port, mock providers
//! in-process, and a raw HTTP/1.1 client that reports exactly what went over the
//! wire (framing, completeness, chunk arrival times).
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod admin;
pub mod edge;
pub mod formats;
pub mod front;
mod raw;
pub mod redis_server;
// Each test binary uses a part of this library.
#[allow(unused_imports)]
pub use raw::*;

pub use llmgate::mock::{Behavior, Mock, MockOptions};

pub const CLIENT_KEY: &str = "sk-client-test-key-1";

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A port where nothing listens (connection refused).
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}/v1", free_port())
}

pub async fn mock(b: Behavior) -> Mock {
    Mock::start(
        "127.0.0.1:0",
        b,
        MockOptions {
            record: 50,
            ..Default::default()
        },
    )
    .await
    .expect("mock")
}

/// A mock that answers every request with `status` (an error body in the
/// provider's shape for the endpoint).
pub async fn status_mock(status: u16) -> Mock {
    mock(Behavior::Status {
        status,
        headers: vec![],
    })
    .await
}

pub async fn ok_mock() -> Mock {
    mock(Behavior::default()).await
}

pub struct Gateway {
    pub addr: String,
    /// Admin listener address, when the config has `@ADMIN@`.
    pub admin: String,
    /// The cleartext listener when `addr` is a TLS one (see [`front`]).
    plain: String,
    child: Child,
    log: PathBuf,
    dir: PathBuf,
}

impl Gateway {
    /// Start the gateway with `yaml`, where `@LISTEN@` becomes a free address.
    pub async fn start(yaml: &str) -> Gateway {
        Self::start_with_env(yaml, &[]).await
    }

    /// Like `start`, with extra environment variables for the process.
    ///
    /// A free port is only free until someone takes it: when another process
    /// holds the address by the time the gateway binds, it starts again on
    /// new ports (the connect probe alone could reach that other process).
    pub async fn start_with_env(yaml: &str, envs: &[(&str, &str)]) -> Gateway {
        for _ in 0..5 {
            if let Some(gw) = Self::try_start(yaml, envs).await {
                return gw;
            }
        }
        panic!("no free port for the gateway after 5 tries");
    }

    async fn try_start(yaml: &str, envs: &[(&str, &str)]) -> Option<Gateway> {
        let addr = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let plain = format!("127.0.0.1:{}", free_port());
        let dir = std::env::temp_dir().join(format!(
            "llmgate-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let cfg = dir.join("llmgate.yaml");
        let wait_admin = yaml.contains("@ADMIN@");
        let yaml = yaml
            .replace("@LISTEN@", &addr)
            .replace("@ADMIN@", &admin)
            .replace("@DIR@", &dir.display().to_string());
        std::fs::write(&cfg, front::on_front_end(&yaml, &addr, &plain)).expect("write config");
        let log = dir.join("gateway.log");
        std::fs::File::create(&log).expect("log file");
        let child = spawn(&cfg, &log, &[], envs);
        let mut gw = Gateway {
            addr,
            admin,
            plain,
            child,
            log,
            dir,
        };
        // Serving when this process says it accepts on the address, and the
        // admin listener (a separate service, maybe a moment later) connects.
        let bound = if front::is_tls(&gw.addr) {
            format!("accepting on {} (TLS)", gw.addr)
        } else {
            format!("accepting on {}", gw.addr)
        };
        let start = Instant::now();
        loop {
            let log = gw.log();
            if log.contains("in use") {
                return None;
            }
            if log.contains(&bound)
                && TcpStream::connect(&gw.addr).await.is_ok()
                && (!wait_admin || TcpStream::connect(&gw.admin).await.is_ok())
            {
                return Some(gw);
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("gateway exited at start ({status}):\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "gateway did not start:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replace the config file (same placeholders as `start`).
    pub fn rewrite_config(&self, yaml: &str) {
        let yaml = yaml
            .replace("@LISTEN@", &self.addr)
            .replace("@ADMIN@", &self.admin)
            .replace("@DIR@", &self.dir.display().to_string());
        let yaml = front::on_front_end(&yaml, &self.addr, &self.plain);
        std::fs::write(self.dir.join("llmgate.yaml"), yaml).expect("write config");
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The test's scratch directory (`@DIR@` in configs).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Start a second process with `-u` on the same config (graceful upgrade);
    /// it takes the listeners once the old one gets SIGQUIT. Returns the old child,
    /// this handle now owns the new one.
    pub fn spawn_upgrade(&mut self) -> Child {
        let new = spawn(&self.dir.join("llmgate.yaml"), &self.log, &["-u"], &[]);
        std::mem::replace(&mut self.child, new)
    }

    /// Stop the process (SIGTERM, waited for) and start it again on the same
    /// config and directory.
    pub async fn restart(&mut self) {
        self.signal("TERM");
        let _ = self.child.wait();
        let bound = format!("accepting on {}", self.addr);
        let before = self.log().matches(&bound).count();
        let cfg = self.dir.join("llmgate.yaml");
        let admin = std::fs::read_to_string(&cfg).is_ok_and(|c| c.contains(&self.admin));
        self.child = spawn(&cfg, &self.log, &[], &[]);
        let start = Instant::now();
        while self.log().matches(&bound).count() == before
            || (admin && TcpStream::connect(&self.admin).await.is_err())
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no restart:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    pub async fn chat(&self, model: &str) -> Response {
        self.post("/v1/chat/completions", &auth(), &chat_body(model, false))
            .await
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        request(&self.addr, "POST", path, headers, body.as_bytes()).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(&self.addr, "GET", path, headers, b"").await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(
    cfg: &std::path::Path,
    log: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Child {
    let out = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmgate"));
    cmd.arg("-c").arg(cfg).args(args).env("RUST_LOG", "debug");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn llmgate")
}

pub fn auth() -> Vec<(&'static str, &'static str)> {
    vec![
        ("authorization", "Bearer sk-client-test-key-1"),
        ("content-type", "application/json"),
    ]
}

pub fn chat_body(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

/// The gateway with one route, `chat` -> upstream `up` (model `m`) at `m`,
/// plus `extra` at top level.
pub async fn one_route(m: &Mock, extra: &str) -> Gateway {
    Gateway::start(&config(
        &upstream("up", &m.url(), ""),
        "  chat: [{upstream: up, model: m}]\n",
        extra,
    ))
    .await
}

/// A config with the test client key; `upstreams` and `models` are YAML blocks
/// (already indented by two spaces), `extra` is appended at top level.
pub fn config(upstreams: &str, models: &str, extra: &str) -> String {
    format!(
        "listen: [\"@LISTEN@\"]\nauth:\n  api_keys:\n    - {{name: tester, key: {CLIENT_KEY}}}\nupstreams:\n{upstreams}\nmodels:\n{models}\nhealth_check: {{enabled: false, unhealthy_after: 1000}}\n{extra}\n"
    )
}

/// `  name: {base_url: URL, api_key: sk-up-name, <opts>}`
pub fn upstream(name: &str, url: &str, opts: &str) -> String {
    let sep = if opts.is_empty() { "" } else { ", " };
    format!("  {name}: {{base_url: \"{url}\", api_key: sk-up-{name}-secret{sep}{opts}}}\n")
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Arrival time of each read that carried body bytes, relative to the request.
    pub arrivals: Vec<Duration>,
    /// Body ended as its framing says (length reached / final chunk), not by a cut.
    pub complete: bool,
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    pub fn attempts(&self) -> u32 {
        self.header("x-llmgate-attempts")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(addr, &bytes).await
}

/// Send raw bytes, read one response (30 s cap).
pub async fn raw_request(addr: &str, bytes: &[u8]) -> Response {
    let fut = async {
        let mut s = front::connect(addr).await;
        s.write_all(bytes).await.expect("send");
        read_response(&mut s).await
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("response within 30 s")
}

pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Response {
    let t0 = Instant::now();
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 65536];
    let (status, headers, head_len) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
            let status = r.code.unwrap_or(0);
            let headers = llmgate::mock::owned_headers(r.headers);
            if status == 100 {
                buf.drain(..n);
                continue;
            }
            break (status, headers, n);
        }
        let n = s.read(&mut tmp).await.unwrap_or(0);
        if n == 0 {
            return Response {
                status: 0,
                headers: vec![],
                body: buf,
                arrivals: vec![],
                complete: false,
                chunked: false,
            };
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let mut raw: Vec<u8> = buf.split_off(head_len);
    let mut arrivals = if raw.is_empty() {
        vec![]
    } else {
        vec![t0.elapsed()]
    };
    let find = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = find("content-length").and_then(|v| v.parse::<usize>().ok());
    let mut complete;
    loop {
        complete = if chunked {
            dechunk(&raw).1
        } else {
            length.is_some_and(|l| raw.len() >= l)
        };
        if complete {
            break;
        }
        let n = s.read(&mut tmp).await.unwrap_or(0);
        if n == 0 {
            // Close-delimited bodies (no length, not chunked) end here legitimately.
            complete = !chunked && length.is_none();
            break;
        }
        arrivals.push(t0.elapsed());
        raw.extend_from_slice(&tmp[..n]);
    }
    let body = if chunked { dechunk(&raw).0 } else { raw };
    Response {
        status,
        headers,
        body,
        arrivals,
        complete,
        chunked,
    }
}

/// Decode chunked framing: (payload so far, saw the final zero chunk).
pub fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let Some(eol) = raw[i..].windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_txt = String::from_utf8_lossy(&raw[i..i + eol]);
        let Ok(size) = usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (out, false);
        };
        let start = i + eol + 2;
        if size == 0 {
            return (out, raw.len() >= start + 2);
        }
        if raw.len() < start + size + 2 {
            out.extend_from_slice(&raw[start..raw.len().min(start + size)]);
            return (out, false);
        }
        out.extend_from_slice(&raw[start..start + size]);
        i = start + size + 2;
    }
}

/// `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        })
        .collect()
}
