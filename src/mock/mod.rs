//! A small mock provider on raw tokio sockets (OpenAI, Anthropic and Gemini
//! shapes by endpoint, see `answers`), told how to behave:
//! answer, fail with a status, refuse/close/stall, or stream N SSE events (then
//! optionally drop). Used by `llmgate mock`, `llmgate demo` and the integration
//! tests. Hand-written over TCP on purpose: a fault injector has to be able to send
//! what a well-behaved HTTP library never would.

mod answers;

pub use answers::{chat_completion, Api};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the mock does with the next request.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answer like OpenAI: chat.completion JSON, or an SSE stream when the request
    /// has `"stream": true` (`events` chunks, then `data: [DONE]`).
    Ok {
        events: usize,
        event_delay: Duration,
    },
    /// Status with an OpenAI-format error body and optional extra headers.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Close the connection right after reading the request.
    Close,
    /// Sleep before sending anything.
    StallBeforeHeaders(Duration),
    /// Send 200 SSE headers, then sleep, then close.
    StallAfterHeaders(Duration),
    /// Send 200 SSE headers (chunked), then close before any event.
    CloseAfterHeaders,
    /// Stream `events` events, then close without `[DONE]` or the final chunk.
    StreamThenDrop { events: usize },
    /// Stream `events` events, then go silent for `stall`, then close.
    StreamThenStall { events: usize, stall: Duration },
    /// Reset the connection (RST) right after reading the request.
    Reset,
    /// Answer with bytes that are not HTTP, then close.
    Garbage,
    /// A normal answer sent `piece` bytes at a time with `delay` between pieces.
    Trickle { piece: usize, delay: Duration },
    /// 200 JSON that promises `Content-Length: 5000`, sends 100 bytes, closes.
    WrongContentLength,
    /// 200 with a 2 MiB response header.
    HugeHeaders,
    /// A valid first SSE event, then broken chunked framing.
    GarbageAfterFirstEvent,
    /// 200 with this content type and body, as given (a provider's answer
    /// or event stream written by the test).
    Raw { content_type: String, body: String },
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::Ok {
            events: 5,
            event_delay: Duration::ZERO,
        }
    }
}

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// Probability (0..=1) that a request gets a 503 instead of `behavior`.
    pub fail_rate: f64,
    /// Added before every answer.
    pub latency: Duration,
    /// Keep at most this many requests in `seen()` (0: record none).
    pub record: usize,
}

struct Shared {
    behavior: Mutex<Behavior>,
    once: Mutex<Vec<Behavior>>,
    opts: MockOptions,
    hits: AtomicUsize,
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// Handle to a running mock; the server runs until the process or runtime ends.
#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Mock {
    /// Bind `addr` (use port 0 for any) and serve on the current tokio runtime.
    pub async fn start(addr: &str, behavior: Behavior, opts: MockOptions) -> std::io::Result<Mock> {
        // The gateway's own listening socket: load tests open thousands of
        // upstream connections at once.
        let sa = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
        let listener = TcpListener::from_std(crate::downstream::listener::listen_socket(sa)?)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behavior: Mutex::new(behavior),
            once: Mutex::new(Vec::new()),
            opts,
            hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                s.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_conn(stream, s.clone()));
            }
        });
        Ok(Mock { addr, shared })
    }

    pub fn set(&self, b: Behavior) {
        *lock(&self.shared.behavior) = b;
    }

    /// Use `b` for the next request only (queued in order), then the standing behavior.
    pub fn once(&self, b: Behavior) {
        lock(&self.shared.once).push(b);
    }

    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve_conn(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        let Some(req) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        shared.hits.fetch_add(1, Ordering::SeqCst);
        let behavior = {
            let mut once = lock(&shared.once);
            if once.is_empty() {
                lock(&shared.behavior).clone()
            } else {
                once.remove(0)
            }
        };
        let behavior = if shared.opts.fail_rate > 0.0 && fastrand::f64() < shared.opts.fail_rate {
            Behavior::Status {
                status: 503,
                headers: vec![],
            }
        } else {
            behavior
        };
        if !shared.opts.latency.is_zero() {
            tokio::time::sleep(shared.opts.latency).await;
        }
        // Record before answering: a test may look as soon as its answer arrives.
        if shared.opts.record > 0 {
            let mut seen = lock(&shared.seen);
            if seen.len() >= shared.opts.record {
                seen.remove(0);
            }
            seen.push(req.clone());
        }
        let keep = respond(&mut stream, &req, behavior).await;
        if !keep {
            return;
        }
    }
}

async fn read_request(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Seen> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                let headers = owned_headers(req.headers);
                let len = content_length(&headers).unwrap_or(0);
                buf.advance(head_len);
                while buf.len() < len {
                    if stream.read_buf(buf).await.ok()? == 0 {
                        return None;
                    }
                }
                let body = buf.split_to(len).to_vec();
                return Some(Seen {
                    method,
                    path,
                    headers,
                    body,
                });
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > 1 << 20 || stream.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

/// A parsed head's headers as owned (name, value) pairs, values decoded
/// lossily: the mock's request reader and the tests' answer readers share it.
pub fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// The Content-Length among `headers` (any case), if there is a valid one.
pub fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
}

/// `stream_options.include_usage` of a request body (as OpenAI reads it).
fn include_usage(body: &[u8]) -> bool {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v.pointer("/stream_options/include_usage") == Some(&serde_json::Value::Bool(true))
}

/// The API, model and stream flag of a request (Gemini's are in its path).
fn request_model(req: &Seen) -> (Api, String, bool, serde_json::Value) {
    let api = Api::of(&req.path);
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let model = Api::model_in_path(&req.path)
        .filter(|_| matches!(api, Api::Gemini(_)))
        .or_else(|| v.get("model").and_then(|m| m.as_str()))
        .unwrap_or("unknown")
        .to_string();
    let stream = match api {
        Api::Gemini(s) => s,
        _ => v.get("stream").and_then(|s| s.as_bool()).unwrap_or(false),
    };
    (api, model, stream, v)
}

pub fn sse_event(model: &str, i: usize) -> String {
    let chunk = serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model,
        "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n")
}

async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).await
}

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";

/// Returns whether the connection may be kept alive.
async fn respond(stream: &mut TcpStream, req: &Seen, behavior: Behavior) -> bool {
    let (api, model, want_stream, parsed) = request_model(req);
    let res: std::io::Result<bool> = async {
        match behavior {
            Behavior::Ok { events, event_delay } => {
                if req.method == "GET" {
                    let body = r#"{"object":"list","data":[{"id":"mock-model","object":"model","owned_by":"mock"}]}"#;
                    write_json(stream, 200, &[], body).await?;
                } else if want_stream && api != Api::Embeddings {
                    stream.write_all(SSE_HEAD).await?;
                    let usage = include_usage(&req.body);
                    for ev in answers::stream_events(api, &model, events, usage) {
                        if !event_delay.is_zero() {
                            tokio::time::sleep(event_delay).await;
                        }
                        write_chunk(stream, ev.as_bytes()).await?;
                    }
                    for ev in answers::stream_end(api, &model, events, usage) {
                        write_chunk(stream, ev.as_bytes()).await?;
                    }
                    stream.write_all(b"0\r\n\r\n").await?;
                } else {
                    write_json(stream, 200, &[], &answers::answer(api, &model, &parsed)).await?;
                }
                Ok(true)
            }
            Behavior::Status { status, headers } => {
                write_json(stream, status, &headers, &answers::error(api, status)).await?;
                Ok(true)
            }
            Behavior::Close => Ok(false),
            Behavior::StallBeforeHeaders(d) => {
                tokio::time::sleep(d).await;
                write_json(stream, 200, &[], &chat_completion(&model)).await?;
                Ok(false)
            }
            Behavior::StallAfterHeaders(d) => {
                stream.write_all(SSE_HEAD).await?;
                tokio::time::sleep(d).await;
                Ok(false)
            }
            Behavior::CloseAfterHeaders => {
                stream.write_all(SSE_HEAD).await?;
                Ok(false)
            }
            Behavior::StreamThenDrop { events } => {
                stream.write_all(SSE_HEAD).await?;
                for ev in answers::stream_events(api, &model, events, false) {
                    write_chunk(stream, ev.as_bytes()).await?;
                }
                stream.flush().await?;
                Ok(false)
            }
            Behavior::Reset => {
                // SO_LINGER 0: close() sends RST instead of FIN.
                let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
                Ok(false)
            }
            Behavior::Garbage => {
                stream.write_all(b"\x00\xffSSH-2.0-not-http\r\n\r\n").await?;
                Ok(false)
            }
            Behavior::Trickle { piece, delay } => {
                let mut out = Vec::from(SSE_HEAD);
                if want_stream {
                    for i in 0..3 {
                        let ev = sse_event(&model, i);
                        out.extend_from_slice(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
                    }
                    out.extend_from_slice(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
                } else {
                    let body = chat_completion(&model);
                    out = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes();
                }
                for p in out.chunks(piece.max(1)) {
                    stream.write_all(p).await?;
                    tokio::time::sleep(delay).await;
                }
                Ok(true)
            }
            Behavior::WrongContentLength => {
                let body = chat_completion(&model);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n";
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body.as_bytes()[..100.min(body.len())]).await?;
                Ok(false)
            }
            Behavior::HugeHeaders => {
                let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
                for i in 0..2048 {
                    head.push_str(&format!("x-filler-{i}: {}\r\n", "z".repeat(1000)));
                }
                head.push_str("content-length: 2\r\n\r\n{}");
                stream.write_all(head.as_bytes()).await?;
                Ok(false)
            }
            Behavior::GarbageAfterFirstEvent => {
                stream.write_all(SSE_HEAD).await?;
                write_chunk(stream, sse_event(&model, 0).as_bytes()).await?;
                stream.write_all(b"ZZZZ this is not chunked framing\r\n").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(false)
            }
            Behavior::Raw { content_type, body } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
                stream.write_all(head.as_bytes()).await?;
                write_chunk(stream, body.as_bytes()).await?;
                stream.write_all(b"0\r\n\r\n").await?;
                Ok(true)
            }
            Behavior::StreamThenStall { events, stall } => {
                stream.write_all(SSE_HEAD).await?;
                for ev in answers::stream_events(api, &model, events, false) {
                    write_chunk(stream, ev.as_bytes()).await?;
                }
                tokio::time::sleep(stall).await;
                Ok(false)
            }
        }
    }
    .await;
    res.unwrap_or(false)
}

async fn write_json(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out).await
}
