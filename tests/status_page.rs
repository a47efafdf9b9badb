//! The admin status page in a real browser: Debian's headless Chromium loads
//! `GET /` with the admin key as Basic credentials, runs the page's script,
//! and the DOM it leaves must show the numbers `/admin/upstreams` reports,
//! and new ones after more traffic. Skipped, saying so, only where no
//! Chromium is installed (.ci/run installs it).

mod common;
use common::*;
use std::process::Command;

const ADMIN_KEY: &str = "sk-admin-status-test-3";

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The DOM after the page's script ran for a few (virtual) seconds.
fn dom(browser: &str, admin: &str) -> String {
    let out = Command::new("timeout")
        .args(["90", browser, "--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://admin:{ADMIN_KEY}@{admin}/"))
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cells of the table row `data-upstream="name"`.
fn row(dom: &str, attr: &str, name: &str) -> Vec<String> {
    let start = dom
        .find(&format!("<tr data-{attr}=\"{name}\">"))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    dom[start..end]
        .split("<td")
        .skip(1)
        .map(|c| {
            let text = c.split_once('>').map_or("", |(_, t)| t);
            text.split("</td>").next().unwrap_or("").to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_live_numbers_in_a_browser() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let a = status_mock(503).await;
    let b = ok_mock().await;
    let ups = upstream("a", &a.url(), "") + &upstream("b", &b.url(), "");
    let gw = Gateway::start(&format!(
        "{}admin: {{listen: \"@ADMIN@\", api_key: {ADMIN_KEY}}}\n",
        config(
            &ups,
            "  chat:\n    - {upstream: a, priority: 1}\n    - {upstream: b, priority: 2}\n",
            "",
        )
        .replace(
            &format!("{{name: tester, key: {CLIENT_KEY}}}"),
            &format!("{{name: tester, key: {CLIENT_KEY}, rate_limit: {{rpm: 1000}}}}"),
        )
    ))
    .await;
    let upstreams = || async {
        request(
            &gw.admin,
            "GET",
            "/admin/upstreams",
            &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
            b"",
        )
        .await
        .json()
    };
    let count = |v: &serde_json::Value, name: &str, field: &str| {
        v["upstreams"]
            .as_array()
            .and_then(|l| l.iter().find(|u| u["name"] == name))
            .map(|u| u[field].to_string())
            .unwrap_or_default()
    };
    for _ in 0..4 {
        assert_eq!(gw.chat("chat").await.status, 200);
    }
    let shown = dom(browser, &gw.admin);
    let truth = upstreams().await;
    let b_row = row(&shown, "upstream", "b");
    let a_row = row(&shown, "upstream", "a");
    // Columns: name, state, breaker, cooldown, in flight, req/s, errors, p50,
    // p99, requests, failures, tokens, last error.
    assert_eq!(b_row[9], count(&truth, "b", "requests"), "{b_row:?}");
    assert_eq!(a_row[10], count(&truth, "a", "failures"), "{a_row:?}");
    assert_eq!(b_row[9], "4");
    assert_eq!(b_row[1], "healthy");
    assert_ne!(b_row[11], "0", "tokens from the answers' usage");
    let key = row(&shown, "key", "tester");
    assert_eq!((key[1].as_str(), key[3].as_str()), ("4", "1000"));
    // More traffic: the page shows the new numbers.
    for _ in 0..3 {
        assert_eq!(gw.chat("chat").await.status, 200);
    }
    let reload = request(
        &gw.admin,
        "POST",
        "/admin/reload",
        &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
        b"",
    )
    .await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    let shown = dom(browser, &gw.admin);
    assert!(shown.contains("UTC — applied"), "reloads listed:\n{shown}");
    let truth = upstreams().await;
    let b_row = row(&shown, "upstream", "b");
    assert_eq!(b_row[9], "7");
    assert_eq!(b_row[9], count(&truth, "b", "requests"));
    assert_eq!(row(&shown, "key", "tester")[1], "7");
    // Without the key: a Basic challenge, no page.
    let r = request(&gw.admin, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic")));
}
