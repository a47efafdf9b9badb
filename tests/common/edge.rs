//! Edge test tools: a CA made by the test (rcgen) and certificates it signs,
//! TLS and h2 clients that trust it, and backends for plain routes (echo of
//! what arrived, large bodies, slow answers, WebSocket echo).

use super::{read_response, Response};
use bytes::Bytes;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

pub struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "llmgate test CA");
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca = params.self_signed(&ca_key).expect("ca");
        let dir = std::env::temp_dir().join(format!(
            "llmgate-pki-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca");
        Pki { ca, ca_key, dir }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` signed by the CA, written as
    /// `{file}.pem`/`{file}.key`; `expired`: valid only in 2020.
    pub fn leaf(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("x"),
        );
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign leaf");
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca.der().clone())
            .expect("ca into root store");
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// A verified TLS connection to `addr` for `sni`.
    pub async fn connect(&self, addr: &str, sni: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("sni");
        tokio_rustls::TlsConnector::from(self.client_config(alpn))
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The DNS names of the certificate the server presented.
pub fn presented_names(s: &TlsStream<TcpStream>) -> Vec<String> {
    use x509_parser::prelude::*;
    let (_, conn) = s.get_ref();
    let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
        return vec![];
    };
    let Ok((_, x)) = X509Certificate::from_der(cert.as_ref()) else {
        return vec![];
    };
    let mut out = vec![];
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                out.push(d.to_string());
            }
        }
    }
    out
}

/// One HTTP/1.1 request over any stream (the connection is closed after).
pub async fn h1<S>(
    s: &mut S,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    s.write_all(raw.as_bytes()).await.expect("send head");
    s.write_all(body).await.expect("send body");
    read_response(s).await
}

/// An h2 connection over `io`; its driver runs on a task.
pub async fn h2_client<S>(io: S) -> h2::client::SendRequest<Bytes>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .handshake(io)
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// An h2 request; the answer's status, headers, and body pieces as they
/// arrived.
pub async fn h2_request(
    send: &h2::client::SendRequest<Bytes>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, http::HeaderMap, Vec<Bytes>) {
    // A server frees a stream's slot only once its handler lets go of the
    // stream, a moment after the client saw the last frame, so a client that
    // keeps the connection full can be refused. REFUSED_STREAM means "not
    // processed, safe to retry" (RFC 9113 section 8.7), and browsers, curl and
    // nghttp2 retry it; so does this client, a bounded number of times.
    let mut refused = 0;
    let resp = loop {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).expect("request");
        let mut send = send.clone().ready().await.expect("h2 ready");
        let (resp, mut stream) = send
            .send_request(req, body.is_empty())
            .expect("send_request");
        if !body.is_empty() {
            stream
                .send_data(Bytes::copy_from_slice(body), true)
                .expect("send body");
        }
        match resp.await {
            Err(e) if e.reason() == Some(h2::Reason::REFUSED_STREAM) && refused < 5 => {
                refused += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * refused)).await;
            }
            r => break r.expect("h2 response"),
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut pieces = vec![];
    while let Some(d) = body.data().await {
        let d = d.expect("h2 data");
        let _ = body.flow_control().release_capacity(d.len());
        pieces.push(d);
    }
    (status, headers, pieces)
}

/// A backend that answers `GET /big?n` with `n` bytes, reads `POST` bodies
/// of any size to their end answering how many bytes came, and sleeps on
/// `/slow` for 2 s; every answer names the backend in `x-backend`.
pub struct BulkBackend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl BulkBackend {
    pub async fn start(name: &'static str) -> BulkBackend {
        Self::start_on("127.0.0.1:0", name).await
    }

    pub async fn start_on(addr: &str, name: &'static str) -> BulkBackend {
        let l = TcpListener::bind(addr).await.expect("bind bulk backend");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve_bulk(s, name));
            }
        });
        BulkBackend { addr, task }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for BulkBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_bulk(mut s: TcpStream, name: &'static str) {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 << 10];
    loop {
        let end = loop {
            if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break e + 4;
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let len: u64 = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // Read the body to its end, keeping nothing.
        let mut got = buf.len() as u64;
        buf.clear();
        while got < len {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n as u64,
            }
        }
        if got > len {
            return;
        }
        if target.starts_with("/slow") {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        let size: u64 = target
            .strip_prefix("/big?")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if size > 0 {
            let head =
                format!("HTTP/1.1 200 OK\r\nx-backend: {name}\r\ncontent-length: {size}\r\n\r\n");
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'x'; 64 << 10];
            let mut left = size;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                if s.write_all(&block[..n]).await.is_err() {
                    return;
                }
                left -= n as u64;
            }
        } else {
            let body =
                format!("{{\"backend\":\"{name}\",\"received\":{got},\"target\":\"{target}\"}}");
            let head = format!(
                "HTTP/1.1 200 OK\r\nx-backend: {name}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if s.write_all(head.as_bytes()).await.is_err()
                || s.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }
}

/// A WebSocket echo backend.
pub async fn ws_echo() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
