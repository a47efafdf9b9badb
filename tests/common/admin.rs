//! The admin listener in tests: one key, the config section that turns the
//! listener on, and calls that carry the key.

use super::*;

pub const ADMIN_KEY: &str = "sk-admin-test-key-9";

/// `admin:` on a free port (`@ADMIN@`) with [`ADMIN_KEY`].
pub fn admin_section() -> String {
    format!("admin: {{listen: \"@ADMIN@\", api_key: {ADMIN_KEY}}}\n")
}

/// Two upstreams `a` (priority 1) and `b` (priority 2) behind model `chat`,
/// with the admin listener; `extra`: more top-level config.
pub fn admin_cfg(a: &str, b: &str, extra: &str) -> String {
    let ups = upstream("a", a, "") + &upstream("b", b, "");
    config(
        &ups,
        "  chat:\n    - {upstream: a, priority: 1}\n    - {upstream: b, priority: 2}\n",
        extra,
    ) + &admin_section()
}

/// An admin request with the key.
pub async fn admin(gw: &Gateway, method: &str, path: &str, body: &str) -> Response {
    request(
        &gw.admin,
        method,
        path,
        &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
        body.as_bytes(),
    )
    .await
}
