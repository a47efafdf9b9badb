//! systemd integration (`Type=notify`): READY=1 once every listener accepts
//! connections, STOPPING=1 when shutdown begins. After a graceful upgrade (`-u`)
//! the new process also announces itself as the service's main PID, so systemd
//! follows the hand-over. Without `NOTIFY_SOCKET` (not under systemd) all of this
//! is a no-op.
//!
//! `server.pid_file` is written at the same moment, by every process (Pingora
//! writes it only when it daemonizes, and llmgate runs in the foreground): so
//! during an upgrade it names the old process until the new one has the
//! listeners, and `kill -QUIT "$(cat pid_file)"` reaches the right one. It is
//! removed at exit only if it still names this process.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sd_notify::NotifyState;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Notifier {
    pub listen: Vec<String>,
    pub upgraded: bool,
    pub pid_file: Option<String>,
}

#[async_trait]
impl BackgroundService for Notifier {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
        if !systemd && self.pid_file.is_none() {
            return;
        }
        for addr in &self.listen {
            wait_listening(addr).await;
        }
        let pid = std::process::id();
        if let Some(path) = &self.pid_file {
            if let Err(e) = write_pid(path, pid) {
                log::error!("cannot write pid file {path}: {e}");
            }
        }
        if systemd {
            let mut states = vec![NotifyState::Ready, NotifyState::Status("serving")];
            if self.upgraded {
                states.push(NotifyState::MainPid(pid));
            }
            if let Err(e) = sd_notify::notify(&states) {
                log::warn!("systemd notify failed: {e}");
            }
        }
        let _ = shutdown.changed().await;
        if systemd {
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
        }
        if let Some(path) = &self.pid_file {
            let ours = std::fs::read_to_string(path).is_ok_and(|s| s.trim() == pid.to_string());
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Until a TCP connect to `addr` succeeds (0.0.0.0/:: checked on loopback).
async fn wait_listening(addr: &str) {
    let Ok(mut a) = addr.parse::<SocketAddr>() else {
        return;
    };
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(a).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log::warn!("listener {addr} not accepting after 30 s; telling systemd we are ready anyway");
}

/// Replace `path` atomically: a reader never sees it empty or half written.
fn write_pid(path: &str, pid: u32) -> std::io::Result<()> {
    let tmp = format!("{path}.{pid}.tmp");
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path)
}
