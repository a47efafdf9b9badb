//! Which headers cross the gateway, by name (docs/http.md has the table).
//! The lists live here, low in the crate, because config validation checks
//! `forward_headers` against them and the exchange applies them.
//!
//! Client → upstream: hop-by-hop headers, every header the client names in
//! `Connection`, framing, and the ones the gateway sets itself are never
//! forwarded; names with `_` are dropped (nginx's `underscores_in_headers
//! off`: `x_api_key` and `x-api-key` must not be two spellings of one
//! header); client credentials, billing identity and forwarding claims
//! (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`) go only to an upstream whose
//! `forward_headers` names them; a header the upstream's config sets replaces
//! the client's. Upstream → client: hop-by-hop headers and those the upstream
//! names in `Connection` are dropped; framing is ours.

use crate::framing::{eq_ci, HeaderLines};
use once_cell::sync::Lazy;

/// Client headers never forwarded: hop-by-hop, framing, and the ones the
/// gateway sets itself. `accept-encoding` is dropped so streams arrive
/// uncompressed and their events can be seen.
pub const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "accept-encoding",
    "x-request-id",
];

/// Client headers forwarded only to upstreams that allow them by name
/// (`forward_headers`); `X-Forwarded-*` belongs here too.
pub const GUARDED: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
    "forwarded",
    "x-real-ip",
];

const X_FORWARDED: &[u8] = b"x-forwarded-";

/// Upstream response headers not copied to the client.
pub const NOT_RETURNED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// Header names grouped by length, matched ASCII case-insensitively: a header
/// is compared only with the listed names of its own length (most have none).
pub struct NameSet(Vec<Vec<&'static [u8]>>);

impl NameSet {
    pub fn new(names: &[&'static str]) -> Self {
        let longest = names.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut by_len = vec![Vec::new(); longest + 1];
        for n in names {
            by_len[n.len()].push(n.as_bytes());
        }
        NameSet(by_len)
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.0
            .get(name.len())
            .is_some_and(|same| same.iter().any(|n| eq_ci(n, name)))
    }
}

pub static NOT_FORWARDED_SET: Lazy<NameSet> = Lazy::new(|| NameSet::new(NOT_FORWARDED));
/// [`NOT_FORWARDED`] and [`GUARDED`] together: one lookup per client header
/// decides the common case.
static NOT_BY_DEFAULT_SET: Lazy<NameSet> =
    Lazy::new(|| NameSet::new(&[NOT_FORWARDED, GUARDED].concat()));
pub static NOT_RETURNED_SET: Lazy<NameSet> = Lazy::new(|| NameSet::new(NOT_RETURNED));
static GUARDED_SET: Lazy<NameSet> = Lazy::new(|| NameSet::new(GUARDED));

/// A client header that only an upstream's `forward_headers` lets through.
pub fn is_guarded(name: &[u8]) -> bool {
    GUARDED_SET.contains(name) || is_x_forwarded(name)
}

#[inline]
fn is_x_forwarded(name: &[u8]) -> bool {
    name.len() > X_FORWARDED.len() && eq_ci(&name[..X_FORWARDED.len()], X_FORWARDED)
}

/// Whether a client header goes to every upstream, before per-upstream
/// rules: not hop-by-hop, framing or ours, not guarded, no `_` in its name,
/// not named in the client's `Connection`.
#[inline(always)]
pub fn forwarded_by_default(name: &[u8], connection: &ConnectionNames) -> bool {
    !NOT_BY_DEFAULT_SET.contains(name)
        && !has_underscore(name)
        && !is_x_forwarded(name)
        && (connection.0.is_empty() || !connection.contains(name))
}

/// `name.contains(&b'_')` a word at a time: header names are short, and the
/// byte search's set-up cost more than the search (callgrind).
#[inline]
pub fn has_underscore(name: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut chunks = name.chunks_exact(8);
    for w in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(b'_'));
        if x.wrapping_sub(ONES) & !x & HIGH != 0 {
            return true;
        }
    }
    chunks.remainder().contains(&b'_')
}

/// The names a `Connection` header lists besides `close` and `keep-alive`
/// (which are never forwarded anyway). Empty, and not allocated, for nearly
/// every request.
pub struct ConnectionNames<'a>(Vec<&'a [u8]>);

impl<'a> ConnectionNames<'a> {
    /// The names listed by the `Connection` headers of a head.
    pub fn of(head: &'a HeaderLines) -> Self {
        if !head.connection_names() {
            return ConnectionNames(Vec::new());
        }
        Self::of_values(head.values(b"connection"))
    }

    pub fn of_values(values: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut names = Vec::new();
        for v in values {
            for t in v.split(|b| *b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty() && !eq_ci(t, b"close") && !eq_ci(t, b"keep-alive") {
                    names.push(t);
                }
            }
        }
        ConnectionNames(names)
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.0.iter().any(|n| eq_ci(n, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_match_any_case_and_nothing_else() {
        for (list, set) in [
            (NOT_FORWARDED, &*NOT_FORWARDED_SET),
            (NOT_RETURNED, &*NOT_RETURNED_SET),
            (GUARDED, &*GUARDED_SET),
        ] {
            for n in list {
                assert_eq!(*n, n.to_ascii_lowercase(), "lists are lower case");
                assert!(set.contains(n.as_bytes()));
                assert!(set.contains(n.to_ascii_uppercase().as_bytes()));
                // Same length, one byte off.
                let mut off = n.as_bytes().to_vec();
                let last = off.len() - 1;
                off[last] ^= 0x01;
                assert!(!set.contains(&off), "{n}");
            }
        }
        for kept in [
            "content-type",
            "accept",
            "user-agent",
            "openai-beta",
            "x",
            "",
        ] {
            assert!(!NOT_FORWARDED_SET.contains(kept.as_bytes()), "{kept}");
            assert!(!is_guarded(kept.as_bytes()), "{kept}");
        }
        assert!(!NOT_RETURNED_SET.contains(b"content-type"));
        let long = "x".repeat(100);
        assert!(
            !NOT_FORWARDED_SET.contains(long.as_bytes()),
            "longer than any name"
        );
        assert!(!NameSet::new(&[]).contains(b""));
        assert!(is_guarded(b"X-Forwarded-For"));
        assert!(is_guarded(b"x-forwarded-proto"));
        assert!(!is_guarded(b"x-forwarded-"));
        assert!(is_guarded(b"OpenAI-Organization"));
        for n in 0..40 {
            for at in 0..=n {
                let mut name = vec![b'a'; n];
                if at < n {
                    name[at] = b'_';
                }
                assert_eq!(has_underscore(&name), at < n, "{n} {at}");
                // Bytes next to `_` (0x5e, 0x60, 0xdf) are not it.
                let near: Vec<u8> = (0..n).map(|i| [0x5e, 0x60, 0xdf][i % 3]).collect();
                assert!(!has_underscore(&near));
            }
        }
    }

    #[test]
    fn connection_names_skip_close_and_keep_alive() {
        let head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret ,close\r\nx-secret: 1\r\nconnection: x-other\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut slots);
        assert!(resp.parse(head).expect("valid head").is_complete());
        let lines = resp.headers.iter().map(|h| (h.name.as_bytes(), h.value));
        let mut h = HeaderLines::copy_from(head, lines, |_| true);
        // The parsers note this while they read `Connection`; without it the
        // head is not searched.
        assert!(ConnectionNames::of(&h).0.is_empty());
        assert!(crate::framing::lists_names(b"keep-alive, X-Secret ,close"));
        h.set_connection_names(true);
        let c = ConnectionNames::of(&h);
        assert!(c.contains(b"x-SECRET"));
        assert!(c.contains(b"x-other"));
        assert!(!c.contains(b"keep-alive"));
        for v in [
            &b"keep-alive"[..],
            b" Close ",
            b"close, keep-alive",
            b"",
            b" , ",
        ] {
            assert!(!crate::framing::lists_names(v), "{v:?}");
        }
        let none: Vec<&[u8]> = vec![b"keep-alive", b" close"];
        assert!(ConnectionNames::of_values(none.into_iter()).0.is_empty());
    }
}
