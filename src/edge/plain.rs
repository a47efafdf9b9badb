//! What the plain-route phases do to a request and its answer: the upstream
//! head (X-Forwarded-*, Host, hop-by-hop headers, `strip_prefix`), the peer
//! for a backend, and the JSON errors the edge answers itself.

use crate::routes::PlainRoute;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::time::Duration;

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [http::HeaderName; 8] = [
    http::header::CONNECTION,
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// The hop-by-hop headers present and those the `Connection` header names,
/// to be removed (usually none: no allocation). An upgrade (WebSocket) keeps
/// `Upgrade` (and gets `Connection: upgrade` back), which Pingora needs to
/// switch the connection to a tunnel.
fn strip_hop_by_hop(headers: &http::HeaderMap, upgrade: bool) -> Vec<http::HeaderName> {
    let keep = |n: &http::HeaderName| upgrade && *n == http::header::UPGRADE;
    let mut out: Vec<http::HeaderName> = HOP_BY_HOP
        .iter()
        .filter(|n| !keep(n) && headers.contains_key(*n))
        .cloned()
        .collect();
    for v in headers.get_all(http::header::CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            let Ok(n) = http::HeaderName::from_bytes(token.trim_ascii()) else {
                continue;
            };
            if !keep(&n) && headers.contains_key(&n) && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The request as the backend gets it.
pub fn upstream_request(
    req: &mut RequestHeader,
    route: &PlainRoute,
    backend: SocketAddr,
    client: Option<std::net::IpAddr>,
    https: bool,
    upgrade: bool,
) {
    let host = req.headers.get(http::header::HOST).cloned().or_else(|| {
        req.uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    });
    for n in strip_hop_by_hop(&req.headers, upgrade) {
        req.remove_header(&n);
    }
    if upgrade && req.headers.contains_key(http::header::UPGRADE) {
        let _ = req.insert_header(http::header::CONNECTION, "upgrade");
    }
    if let Some(ip) = client {
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        let _ = req.insert_header("X-Forwarded-For", xff);
    }
    let _ = req.insert_header("X-Forwarded-Proto", if https { "https" } else { "http" });
    if let Some(h) = &host {
        let _ = req.insert_header("X-Forwarded-Host", h.clone());
    }
    let upstream_host = match (&host, route.cfg.preserve_host) {
        (Some(h), true) => h.clone(),
        _ => http::HeaderValue::from_str(&backend_host(route, backend))
            .unwrap_or_else(|_| http::HeaderValue::from_static("localhost")),
    };
    let _ = req.insert_header(http::header::HOST, upstream_host);
    if route.cfg.strip_prefix && route.cfg.path_prefix != "/" {
        if let Some(pq) = req.uri.path_and_query() {
            let rest = pq
                .as_str()
                .strip_prefix(route.cfg.path_prefix.as_str())
                .unwrap_or(pq.as_str());
            let path = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            if let Ok(uri) = path.parse::<http::Uri>() {
                req.set_uri(uri);
            }
        }
    }
    // h2 from the client, h1 to the backend: the authority rides in Host.
    if req.uri.authority().is_some() {
        if let Some(pq) = req.uri.path_and_query().cloned() {
            if let Ok(uri) =
                http::Uri::from_maybe_shared(Bytes::copy_from_slice(pq.as_str().as_bytes()))
            {
                req.set_uri(uri);
            }
        }
    }
    req.set_version(http::Version::HTTP_11);
}

/// The backend's `addr` as written in the config (its name, not the
/// resolved IP), for `Host` when `preserve_host: false`.
fn backend_host(route: &PlainRoute, backend: SocketAddr) -> String {
    route
        .cfg
        .backends
        .iter()
        .find(|b| b.socket == backend)
        .map_or_else(|| backend.to_string(), |b| b.addr.clone())
}

/// Hop-by-hop headers out of the backend's answer (Pingora frames it anew).
pub fn upstream_response(resp: &mut ResponseHeader, upgrade: bool) {
    let upgrade = upgrade && resp.status == 101;
    for n in strip_hop_by_hop(&resp.headers, upgrade) {
        resp.remove_header(&n);
    }
    if upgrade && resp.headers.contains_key(http::header::UPGRADE) {
        let _ = resp.insert_header(http::header::CONNECTION, "upgrade");
    }
}

pub fn peer(route: &PlainRoute, backend: SocketAddr) -> HttpPeer {
    let cfg = &route.cfg;
    let sni = if cfg.tls {
        cfg.sni.clone()
    } else {
        String::new()
    };
    let mut p = HttpPeer::new(backend, cfg.tls, sni);
    p.options.connection_timeout = Some(cfg.connect_timeout);
    p.options.read_timeout = Some(cfg.read_timeout);
    p.options.write_timeout = Some(cfg.write_timeout);
    p.options.idle_timeout = Some(Duration::from_secs(60));
    if let Some(ca) = &route.ca {
        p.options.ca = Some(ca.clone());
    }
    p
}

/// A JSON error answer (`{"error":{...}}`) from the edge itself.
pub fn error(status: u16, message: &str, code: &str) -> (ResponseHeader, Bytes) {
    let kind = match status {
        400..=499 => "invalid_request_error",
        _ => "upstream_error",
    };
    let body = crate::error::error_body(message, kind, code);
    let mut h = ResponseHeader::build_no_case(status, Some(3))
        .or_else(|_| ResponseHeader::build_no_case(500, Some(3)))
        .expect("500 is a valid status");
    let _ = h.insert_header(http::header::CONTENT_TYPE, "application/json");
    let _ = h.insert_header(http::header::CONTENT_LENGTH, body.len());
    (h, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_and_hop_by_hop_go() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().expect("v"));
        h.insert("x-secret", "1".parse().expect("v"));
        h.insert("keep-alive", "timeout=5".parse().expect("v"));
        h.insert("te", "trailers".parse().expect("v"));
        h.insert("x-keep", "1".parse().expect("v"));
        let mut gone: Vec<String> = strip_hop_by_hop(&h, false)
            .iter()
            .map(|n| n.to_string())
            .collect();
        gone.sort();
        assert_eq!(gone, ["connection", "keep-alive", "te", "x-secret"]);
    }

    #[test]
    fn an_upgrade_keeps_its_upgrade_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", "keep-alive, Upgrade".parse().expect("v"));
        h.insert("upgrade", "websocket".parse().expect("v"));
        let gone: Vec<String> = strip_hop_by_hop(&h, true)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            gone,
            ["connection"],
            "upgrade stays; keep-alive is not there to remove"
        );
    }
}
