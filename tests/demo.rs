//! The README's first command: `llmgate demo` starts, and every curl command
//! it prints works as printed (fixed ports 8080 and 18101-18103, as the demo
//! documents them).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_curl_command_the_demo_prints_works() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed for this test (.ci/run installs it)");
    }
    // The demo's own log, shown if it does not come up.
    let log_path =
        std::env::temp_dir().join(format!("llmgate-demo-test-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("demo log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmgate"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start llmgate demo");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = Demo(child);
    // The banner: lines up to "Ctrl-C stops it.".
    let mut banner = Vec::new();
    // The pipe stays open for the demo's life: it may write more.
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("banner line");
        let end = line.contains("Ctrl-C stops it.");
        banner.push(line);
        if end {
            break;
        }
    }
    // Commands, with their `\` continuation lines joined.
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in &banner {
        let t = line.trim();
        if current.is_empty() && !t.starts_with("curl ") {
            continue;
        }
        current.push_str(t.trim_end_matches('\\'));
        current.push(' ');
        if !t.ends_with('\\') {
            commands.push(std::mem::take(&mut current));
        }
    }
    assert!(
        commands.len() >= 5,
        "banner:\n{}\ndemo log (ports 8080 and 18101-18103 must be free):\n{}",
        banner.join("\n"),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let started = Instant::now();
    while Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "http://127.0.0.1:8080/health"])
        .status()
        .map_or(true, |s| !s.success())
    {
        // Generous: on a loaded CI machine the start has been seen to lag.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "demo did not start; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for cmd in &commands {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd} --max-time 20"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd}\n{text}");
        let ok = if cmd.contains("/health") {
            text.contains(r#""status":"ok""#)
        } else if cmd.contains("/v1/models") {
            text.contains(r#""object":"list""#) && text.contains("failover-demo")
        } else if cmd.contains(r#""stream":true"#) {
            text.trim_end().ends_with("data: [DONE]")
        } else if cmd.contains("/v1/responses") {
            text.contains(r#""object":"response""#) && text.contains(r#""status":"completed""#)
        } else if cmd.contains("/v1/messages") {
            text.contains(r#""type":"message""#) && text.contains(r#""role":"assistant""#)
        } else if cmd.contains("failover-demo") {
            text.starts_with("HTTP/1.1 200") && text.contains("x-llmgate-attempts: 2")
        } else {
            text.starts_with("HTTP/1.1 200") && text.contains("chat.completion")
        };
        assert!(ok, "{cmd}\n{text}");
    }
}
