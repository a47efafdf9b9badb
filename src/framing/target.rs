//! The request target and Host rules of the head reader (docs/http.md
//! sections 2 and 3): which target forms are accepted, the byte and
//! dot-segment checks on the path, and `host[:port]` syntax.

/// Where the path of request target `t` starts, and the authority if `t` is
/// in absolute form (RFC 9112 3.2): origin form `/p?q`, or `http(s)://a/p?q`
/// as proxies send it. Every byte must be visible ASCII (httparse also lets
/// bytes above 0x7f through) and there is no fragment.
/// `None`: refused (400). The third value: whether the target has a byte that needs the path
/// checked for dot-segments ([`clean_path`]).
pub fn target_parts(t: &str) -> Option<(usize, Option<&str>, bool)> {
    // httparse admits 0x21..=0x7e and bytes above 0x7f in a target. One
    // table pass finds both the refused bytes and the ones worth a closer look.
    let class = t
        .bytes()
        .fold(0u8, |acc, c| acc | TARGET_CLASS[usize::from(c)]);
    if class & REFUSED != 0 {
        return None;
    }
    let special = class & SPECIAL != 0;
    if t.starts_with('/') {
        return Some((0, None, special));
    }
    let (scheme, rest) = t.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some((scheme.len() + 3 + end, Some(&rest[..end]), special))
}

const REFUSED: u8 = 1;
const SPECIAL: u8 = 2;

/// Per target byte: [`REFUSED`] (above 0x7f, `#`), [`SPECIAL`] (`.`, `%`,
/// `\`), else 0.
static TARGET_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x80;
    while c < 256 {
        t[c] = REFUSED;
        c += 1;
    }
    t[b'#' as usize] = REFUSED;
    t[b'.' as usize] = SPECIAL;
    t[b'%' as usize] = SPECIAL;
    t[b'\\' as usize] = SPECIAL;
    t
};

/// A path with valid percent-escapes and no dot-segment (`.`, `..`), also
/// when written with `%2e` or next to an encoded `/` or a `\`: the path
/// goes after an upstream's `base_url` path and must never climb out of it,
/// however the upstream decodes and normalises it.
pub fn clean_path(p: &[u8]) -> bool {
    let hex = |c: u8| (c as char).to_digit(16);
    let (mut len, mut dots) = (0usize, 0usize);
    let mut i = 0;
    loop {
        let c = match p.get(i) {
            None => None,
            Some(b'%') => {
                let (Some(h), Some(l)) = (
                    p.get(i + 1).and_then(|c| hex(*c)),
                    p.get(i + 2).and_then(|c| hex(*c)),
                ) else {
                    return false;
                };
                i += 2;
                Some((h * 16 + l) as u8)
            }
            Some(&c) => Some(c),
        };
        match c {
            None | Some(b'/' | b'\\') => {
                if len > 0 && len == dots && dots <= 2 {
                    return false;
                }
                if c.is_none() {
                    return true;
                }
                (len, dots) = (0, 0);
            }
            Some(c) => {
                len += 1;
                dots += usize::from(c == b'.');
            }
        }
        i += 1;
    }
}

/// `uri-host [":" port]` (RFC 9110 7.2): a reg-name (unreserved,
/// sub-delims, percent-escapes), an IPv4 address, or an IP literal in
/// brackets; the port digits only. An empty value is valid (RFC 9112 3.2).
pub fn valid_host(v: &[u8]) -> bool {
    if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&c| c == b']') else {
            return false;
        };
        let literal = &v[1..end];
        let port = match &v[end + 1..] {
            [] => &[][..],
            [b':', port @ ..] => port,
            _ => return false,
        };
        return !literal.is_empty()
            && literal
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
            && port.iter().all(u8::is_ascii_digit);
    }
    // reg-name or IPv4, then an optional `:port`: one table pass decides
    // a name without a port; with one, the part after the colon is digits.
    match v.iter().position(|&c| c == b':') {
        None => v.iter().all(|&c| REG_NAME[usize::from(c)]),
        Some(at) => {
            v[..at].iter().all(|&c| REG_NAME[usize::from(c)])
                && v[at + 1..].iter().all(u8::is_ascii_digit)
        }
    }
}

/// reg-name bytes (RFC 3986 3.2.2): unreserved, sub-delims, `%`.
static REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        c += 1;
    }
    t
};
