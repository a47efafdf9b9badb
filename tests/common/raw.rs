//! A raw upstream for the tests: records every byte it receives and
//! answers from a script.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a [`RawUpstream`] does with the next request it reads.
#[derive(Clone, Debug)]
pub enum RawReply {
    /// Write these bytes and keep the connection for the next request.
    Send(Vec<u8>),
    /// Write these bytes, then close.
    SendAndClose(Vec<u8>),
    /// Close without answering.
    Close,
}

/// One request as a [`RawUpstream`] received it: every byte, and which of
/// its connections (numbered from 0 in accept order) carried it.
#[derive(Clone, Debug)]
pub struct RawSeen {
    pub conn: usize,
    pub bytes: Vec<u8>,
}

impl RawSeen {
    pub fn head(&self) -> String {
        let end = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.bytes.len(), |i| i + 4);
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }

    /// Values of header `name` (any case), in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.head()
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn target(&self) -> String {
        self.head()
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }
}

/// An upstream that records every byte of every request (framed by
/// Content-Length, as the gateway sends them) and answers from a script;
/// when the script is empty it answers a chat completion and keeps the
/// connection. Proves what was forwarded, and how many times.
pub struct RawUpstream {
    pub addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<RawSeen>>>,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<RawReply>>>,
}

pub fn ok_answer() -> Vec<u8> {
    let body = llmgate::mock::chat_completion("raw");
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl RawUpstream {
    pub async fn start() -> RawUpstream {
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw upstream");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<RawSeen>>> = Arc::default();
        let script: Arc<Mutex<std::collections::VecDeque<RawReply>>> = Arc::default();
        let (seen2, script2) = (seen.clone(), script.clone());
        tokio::spawn(async move {
            let mut conn = 0;
            while let Ok((s, _)) = listener.accept().await {
                let (seen, script) = (seen2.clone(), script2.clone());
                tokio::spawn(serve_raw(s, conn, seen, script));
                conn += 1;
            }
        });
        RawUpstream { addr, seen, script }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queue replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = RawReply>) {
        self.script.lock().expect("script").extend(replies);
    }

    pub fn seen(&self) -> Vec<RawSeen> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn serve_raw(
    mut s: TcpStream,
    conn: usize,
    seen: std::sync::Arc<std::sync::Mutex<Vec<RawSeen>>>,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<RawReply>>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 65536];
    loop {
        // One request: head, then Content-Length bytes.
        let total = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break end + 4 + len;
                }
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let bytes: Vec<u8> = buf.drain(..total).collect();
        seen.lock().expect("seen").push(RawSeen { conn, bytes });
        let reply = script.lock().expect("script").pop_front();
        match reply.unwrap_or_else(|| RawReply::Send(ok_answer())) {
            RawReply::Send(b) => {
                if s.write_all(&b).await.is_err() {
                    return;
                }
            }
            RawReply::SendAndClose(b) => {
                let _ = s.write_all(&b).await;
                return;
            }
            RawReply::Close => return,
        }
    }
}
