//! The usage log: one JSON line per answered request (`usage.log`), written
//! by its own thread from a channel, reopened on SIGUSR1 like the access log.

use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One answered request.
#[derive(Debug, Clone)]
pub struct Record {
    pub at_s: u64,
    pub request_id: String,
    pub key: Option<Arc<str>>,
    pub model: Arc<str>,
    pub upstream: Arc<str>,
    pub status: u16,
    pub prompt: u64,
    pub completion: u64,
    /// No usage in the answer: the counts are estimates.
    pub estimated: bool,
}

/// Where the usage log goes: `None` = off.
pub type LogPath = Option<String>;

/// Starts the thread that writes the usage log: a background service, so the
/// thread is born after Pingora daemonizes (`-d`).
pub struct UsageWriter {
    pub(super) rx: Mutex<Option<Receiver<Record>>>,
    pub(super) log: LogPath,
    pub(super) reopen: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for UsageWriter {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        let (Some(rx), Some(log)) = (
            self.rx.lock().ok().and_then(|mut g| g.take()),
            self.log.clone(),
        ) else {
            return;
        };
        let reopen = self.reopen.clone();
        let _ = std::thread::Builder::new()
            .name("usage-log".into())
            .spawn(move || run(rx, log, &reopen));
    }
}

fn open(path: &str) -> Option<std::io::BufWriter<std::fs::File>> {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(std::io::BufWriter::with_capacity(64 * 1024, f)),
        Err(e) => {
            log::error!("usage log: cannot open {path}: {e}");
            None
        }
    }
}

fn run(rx: Receiver<Record>, log: String, reopen: &AtomicU64) {
    let mut out = open(&log);
    let mut generation = reopen.load(Ordering::Relaxed);
    let mut batch = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(r) => batch.push(r),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        batch.extend(rx.try_iter());
        let now = reopen.load(Ordering::Relaxed);
        if now != generation {
            generation = now;
            if let Some(o) = out.as_mut() {
                let _ = o.flush();
            }
            out = open(&log);
        }
        if let (Some(o), false) = (out.as_mut(), batch.is_empty()) {
            for r in &batch {
                let _ = o.write_all(line(r).as_bytes());
            }
            let _ = o.flush();
        }
        batch.clear();
    }
}

/// One usage-log line: names and counts, never a key.
fn line(r: &Record) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        time: String,
        request_id: &'a str,
        key: Option<&'a str>,
        model: &'a str,
        upstream: &'a str,
        status: u16,
        prompt_tokens: u64,
        completion_tokens: u64,
        estimated: bool,
    }
    let time =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(r.at_s))
            .to_string();
    let mut s = serde_json::to_string(&Line {
        time,
        request_id: &r.request_id,
        key: r.key.as_deref(),
        model: &r.model,
        upstream: &r.upstream,
        status: r.status,
        prompt_tokens: r.prompt,
        completion_tokens: r.completion,
        estimated: r.estimated,
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_shape() {
        let l = line(&Record {
            at_s: 0,
            request_id: "r".into(),
            key: Some(Arc::from("dify")),
            model: Arc::from("chat"),
            upstream: Arc::from("a"),
            status: 200,
            prompt: 1,
            completion: 2,
            estimated: false,
        });
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["key"], "dify");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["completion_tokens"], 2);
    }
}
