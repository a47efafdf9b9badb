//! The request head reader of the HTTP/1.1 front end: one complete head in
//! a buffer -> a [`Request`] (offsets into one copy of the head), its body
//! framing and keep-alive, or the reason it is refused. Pure, so it can be
//! tested and fuzzed without a socket (`fuzz/`).
//!
//! Stricter than httparse alone, as nginx is: the request target is origin
//! form (or absolute form with an http/https scheme) of visible ASCII with no
//! dot-segment; an HTTP/1.1 request has exactly one valid Host; one framing
//! source (one Content-Length, or `Transfer-Encoding: chunked` alone).

use crate::error::GatewayError;
use crate::framing::target::{clean_path, target_parts, valid_host};
use crate::framing::{self, parse_length, HeaderLines};
pub use crate::front::Request;
use crate::front::Span;
use std::mem::MaybeUninit;

const MAX_HEADERS: usize = 256;

/// Why no request could be read; the connection is answered (except `Gone`)
/// and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Closed, reset, idle too long, or the server is stopping: nothing to answer.
    Gone,
    /// The head did not complete within the header deadline (408).
    Timeout,
    /// Larger than `max_header_bytes`, or too many header lines (431).
    TooLarge,
    /// Not an HTTP/1.x request head, or too many empty lines before it (400).
    Malformed,
    /// A request target other than origin form (or absolute form with an
    /// http/https scheme), bytes outside visible ASCII, a broken
    /// percent-escape, or a dot-segment in the path (400).
    BadTarget,
    /// An HTTP/1.1 request without exactly one Host header, or a Host (or an
    /// absolute-form authority) that is not a valid `host[:port]` (400).
    BadHost,
    /// Content-Length and Transfer-Encoding together, several lengths, or a
    /// coding we cannot frame (400): what request smuggling relies on.
    Framing,
}

impl HeadError {
    /// The error a refused head is answered with (`Gone` and `Timeout` have
    /// their own handling: nothing, and a fixed 408).
    pub fn answer(self, max_header_bytes: usize) -> GatewayError {
        match self {
            HeadError::TooLarge => GatewayError::HeadersTooLarge(max_header_bytes),
            HeadError::Gone | HeadError::Timeout | HeadError::Malformed => {
                GatewayError::BadRequest("malformed HTTP request head".into())
            }
            HeadError::BadTarget => GatewayError::BadRequest(
                "invalid request target: send a path such as /v1/chat/completions, in \
                 visible ASCII, without dot-segments (. or ..) or broken %-escapes"
                    .into(),
            ),
            HeadError::BadHost => GatewayError::BadRequest(
                "an HTTP/1.1 request needs exactly one Host header with a valid host[:port]".into(),
            ),
            HeadError::Framing => GatewayError::BadRequest(
                "ambiguous request framing: send either one Content-Length or \
                 Transfer-Encoding: chunked"
                    .into(),
            ),
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// A complete, accepted request head.
#[derive(Debug)]
pub struct Parsed {
    pub request: Request,
    /// Bytes of the head in the buffer (up to and with its blank line).
    pub len: usize,
    pub body: BodyFraming,
    /// Neither side asked to close (HTTP/1.0: the client asked to keep it).
    pub keep_alive: bool,
}

/// Parse the request head at the start of `buf`; `Ok(None)`: incomplete.
/// `max_header_bytes` bounds the target plus header names and values.
/// Inlined into its one caller: the parsed head is then built in place, not
/// moved out through a return value.
#[inline]
pub fn parse_head(buf: &[u8], max_header_bytes: usize) -> Result<Option<Parsed>, HeadError> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let n = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| -> Span {
        let at = s.as_ptr() as usize - base;
        (at as u32, (at + s.len()) as u32)
    };
    let method = req.method.unwrap_or("");
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed)?;
    let target = req.path.unwrap_or("");
    let (path_at, authority, special) = target_parts(target).ok_or(HeadError::BadTarget)?;
    let (tspan_at, _) = span(target.as_bytes());
    let rel = &target[path_at..];
    let (p, q) = match rel.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rel, None),
    };
    if special && !clean_path(p.as_bytes()) {
        return Err(HeadError::BadTarget);
    }
    let p_at = tspan_at + path_at as u32;
    let path = if p.is_empty() {
        // `http://host` alone: the root.
        (0, 0)
    } else {
        (p_at, p_at + p.len() as u32)
    };
    let query = q.map(|q| {
        let at = p_at + p.len() as u32 + 1;
        (at, at + q.len() as u32)
    });
    let http10 = req.version == Some(0);
    let mut size = target.len();
    let mut lengths = 0usize;
    let mut length: Option<u64> = None;
    let mut codings = 0usize;
    let mut chunked = false;
    let mut hosts = 0usize;
    let mut host_ok = true;
    let mut keep_alive = !http10;
    let mut connection_names = false;
    for h in req.headers.iter() {
        size += h.name.len() + h.value.len() + 4;
        let name = h.name.as_bytes();
        if framing::eq_ci(name, b"content-length") {
            lengths += 1;
            length = parse_length(h.value);
            if length.is_none() {
                return Err(HeadError::Framing);
            }
        } else if framing::eq_ci(name, b"transfer-encoding") {
            // Only `chunked` alone: any other coding would reach the
            // upstream as if it were the body.
            codings += 1;
            chunked = framing::eq_ci(h.value.trim_ascii(), b"chunked");
        } else if framing::eq_ci(name, b"host") {
            hosts += 1;
            host_ok &= valid_host(h.value);
        } else if framing::eq_ci(name, b"connection") {
            keep_alive = framing::keep_alive(h.value, http10, keep_alive);
            connection_names |= framing::lists_names(h.value);
        }
    }
    // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host; none may
    // have two or an invalid one. An absolute-form authority must be a
    // valid host as well (it then stands for the Host).
    if hosts > 1 || (hosts == 0 && !http10) || !host_ok {
        return Err(HeadError::BadHost);
    }
    if authority.is_some_and(|a| a.is_empty() || !valid_host(a.as_bytes())) {
        return Err(HeadError::BadHost);
    }
    if size > max_header_bytes {
        return Err(HeadError::TooLarge);
    }
    let coded = codings > 0;
    if lengths > 1 || (lengths == 1 && coded) || (coded && (codings > 1 || !chunked || http10)) {
        return Err(HeadError::Framing);
    }
    // Copied out (a few hundred bytes): a slice would keep the whole read
    // buffer alive for as long as the request, i.e. for a whole stream.
    let lines = req.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    let mut head = HeaderLines::copy_from(&buf[..n], lines, |_| true);
    head.set_connection_names(connection_names);
    let body = match length {
        _ if chunked => BodyFraming::Chunked,
        Some(l) if l > 0 => BodyFraming::Length(l),
        _ => BodyFraming::None,
    };
    Ok(Some(Parsed {
        request: Request::new(method, path, query, http10, head),
        len: n,
        body,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Option<Parsed>, HeadError> {
        parse_head(head.as_bytes(), 64 * 1024)
    }

    fn verdict(head: &str) -> Result<(), HeadError> {
        parse(head).map(|p| assert!(p.is_some(), "incomplete: {head:?}"))
    }

    #[test]
    fn request_targets() {
        let ok = |t: &str| format!("POST {t} HTTP/1.1\r\nhost: gw\r\n\r\n");
        for (t, path, query) in [
            ("/v1/chat/completions", "/v1/chat/completions", None),
            ("/v1/x?a=../b", "/v1/x", Some("a=../b")),
            ("http://gw.example/v1/x?q=1", "/v1/x", Some("q=1")),
            ("HTTPS://gw.example:8443/v1/x", "/v1/x", None),
            ("http://gw.example", "/", None),
            ("http://gw.example?x", "/", Some("x")),
            (
                "/v1/models/meta-llama%2FLlama-3",
                "/v1/models/meta-llama%2FLlama-3",
                None,
            ),
            ("/v1/a.b/.well/..x/x..", "/v1/a.b/.well/..x/x..", None),
        ] {
            let p = parse(&ok(t)).expect(t).expect(t);
            assert_eq!(p.request.path(), path, "{t}");
            assert_eq!(p.request.query(), query, "{t}");
        }
        for t in [
            "*",
            "gw.example:443",
            "ftp://gw.example/v1/x",
            "v1/x",
            "/v1/../admin",
            "/v1/./x",
            "/v1/x/..",
            "/v1/%2e%2E/admin",
            "/v1/.%2e/admin",
            "/v1/x/..%2f..%2fadmin",
            "/v1/x/..%5c..%5cadmin",
            "/v1/x\\..\\admin",
            "/v1/chat%zz",
            "/v1/chat%2",
            "/v1/chat#frag",
        ] {
            assert_eq!(verdict(&ok(t)), Err(HeadError::BadTarget), "{t}");
        }
        // Bytes above 0x7f (httparse lets them through).
        let raw = b"POST /v1/\xc3\xa9 HTTP/1.1\r\nhost: gw\r\n\r\n";
        assert_eq!(parse_head(raw, 1024).err(), Some(HeadError::BadTarget));
    }

    #[test]
    fn host_rules() {
        let with = |v: &str, hosts: &str| format!("POST /v1/x {v}\r\n{hosts}\r\n");
        assert!(verdict(&with("HTTP/1.1", "host: a.example:8080\r\n")).is_ok());
        assert!(verdict(&with("HTTP/1.1", "host: [::1]:80\r\n")).is_ok());
        assert!(verdict(&with("HTTP/1.1", "host: 10.0.0.1\r\n")).is_ok());
        assert!(
            verdict(&with("HTTP/1.1", "host:\r\n")).is_ok(),
            "empty is valid"
        );
        assert!(verdict(&with("HTTP/1.0", "")).is_ok(), "1.0 may omit it");
        for (v, hosts) in [
            ("HTTP/1.1", ""),
            ("HTTP/1.1", "host: a\r\nhost: a\r\n"),
            ("HTTP/1.0", "host: a\r\nHost: b\r\n"),
            ("HTTP/1.1", "host: a b\r\n"),
            ("HTTP/1.1", "host: a/b\r\n"),
            ("HTTP/1.1", "host: user@a\r\n"),
            ("HTTP/1.1", "host: a:80x\r\n"),
            ("HTTP/1.1", "host: [::1\r\n"),
            ("HTTP/1.1", "host: [zz]\r\n"),
        ] {
            assert_eq!(
                verdict(&with(v, hosts)),
                Err(HeadError::BadHost),
                "{hosts:?}"
            );
        }
        let abs = |a: &str| format!("POST http://{a}/v1/x HTTP/1.1\r\nhost: gw\r\n\r\n");
        assert!(verdict(&abs("gw.example:80")).is_ok());
        for a in ["", "u@gw.example", "gw example"] {
            let r = verdict(&abs(a));
            assert!(
                matches!(
                    r,
                    Err(HeadError::BadHost | HeadError::BadTarget | HeadError::Malformed)
                ),
                "{a:?}: {r:?}"
            );
        }
    }

    #[test]
    fn framing_rules() {
        let with = |h: &str| format!("POST /v1/x HTTP/1.1\r\nhost: gw\r\n{h}\r\n");
        let body = |h: &str| parse(&with(h)).map(|p| p.map(|p| p.body));
        assert_eq!(
            body("content-length: 5\r\n"),
            Ok(Some(BodyFraming::Length(5)))
        );
        assert_eq!(body("content-length: 0\r\n"), Ok(Some(BodyFraming::None)));
        assert_eq!(
            body("transfer-encoding: Chunked\r\n"),
            Ok(Some(BodyFraming::Chunked))
        );
        for h in [
            "content-length: 5\r\ncontent-length: 5\r\n",
            "content-length: 5\r\ntransfer-encoding: chunked\r\n",
            "transfer-encoding: gzip, chunked\r\n",
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            "transfer-encoding: gzip\r\n",
            "content-length: +5\r\n",
            "content-length: 5, 5\r\n",
        ] {
            assert_eq!(body(h).err(), Some(HeadError::Framing), "{h:?}");
        }
        let ten = "POST /v1/x HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(verdict(ten), Err(HeadError::Framing));
        // Limits.
        let big = with(&format!("x-big: {}\r\n", "a".repeat(2000)));
        assert_eq!(
            parse_head(big.as_bytes(), 1000).err(),
            Some(HeadError::TooLarge)
        );
        assert!(matches!(
            parse("POST /v1/x HTTP/1.1\r\nhost: gw\r\n"),
            Ok(None)
        ));
    }

    /// Random and mutated heads: never a panic, and whatever is accepted
    /// keeps the promises the rest of the gateway relies on.
    #[test]
    fn mutated_heads_never_panic_and_accepted_ones_are_clean() {
        let seeds = [
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
            "POST http://gw/v1/x?a=b HTTP/1.1\r\nhost: gw:80\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET /health HTTP/1.0\r\n\r\n",
        ];
        let noise = b"\r\n :/.%2e\\?#@\x00\x7f\x80\xffHhTt0-,;";
        let mut rng = fastrand::Rng::with_seed(17);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut b = seeds[rng.usize(..seeds.len())].as_bytes().to_vec();
            for _ in 0..rng.usize(1..5) {
                let at = rng.usize(..=b.len());
                match rng.u8(..4) {
                    0 => b.insert(at, noise[rng.usize(..noise.len())]),
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    2 if at < b.len() => b[at] = noise[rng.usize(..noise.len())],
                    _ => b.truncate(at),
                }
            }
            let Ok(Some(p)) = parse_head(&b, 4096) else {
                continue;
            };
            accepted += 1;
            let path = p.request.path();
            assert!(path.starts_with('/'), "{path:?} from {b:?}");
            assert!(clean_path(path.as_bytes()), "{path:?}");
            assert!(path.bytes().all(|c| (0x21..0x7f).contains(&c)), "{path:?}");
            assert!(p.len <= b.len());
        }
        assert!(accepted > 500, "too few accepted: {accepted}");
    }
}
