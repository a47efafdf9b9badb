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

use crate::framing::eq_ci;
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
pub static NOT_RETURNED_SET: Lazy<NameSet> = Lazy::new(|| NameSet::new(NOT_RETURNED));
static GUARDED_SET: Lazy<NameSet> = Lazy::new(|| NameSet::new(GUARDED));

/// A client header that only an upstream's `forward_headers` lets through.
pub fn is_guarded(name: &[u8]) -> bool {
    GUARDED_SET.contains(name)
        || (name.len() > X_FORWARDED.len() && eq_ci(&name[..X_FORWARDED.len()], X_FORWARDED))
}

/// The names a `Connection` header lists besides `close` and `keep-alive`
/// (which are never forwarded anyway). Empty, and not allocated, for nearly
/// every request.
pub struct ConnectionNames<'a>(Vec<&'a [u8]>);

impl<'a> ConnectionNames<'a> {
    pub fn of(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut names = Vec::new();
        for (k, v) in headers {
            if !eq_ci(k, b"connection") {
                continue;
            }
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
    }

    #[test]
    fn connection_names_skip_close_and_keep_alive() {
        let h: Vec<(&[u8], &[u8])> = vec![
            (b"Connection", b"keep-alive, X-Secret ,close"),
            (b"connection", b"x-other"),
            (b"x-secret", b"1"),
        ];
        let c = ConnectionNames::of(h.into_iter());
        assert!(c.contains(b"x-SECRET"));
        assert!(c.contains(b"x-other"));
        assert!(!c.contains(b"keep-alive"));
        let none: Vec<(&[u8], &[u8])> = vec![(b"connection", b"keep-alive")];
        assert!(ConnectionNames::of(none.into_iter()).0.is_empty());
    }
}
