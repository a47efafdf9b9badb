//! systemd integration (`Type=notify`): READY=1 once every listener accepts
//! connections, STOPPING=1 when shutdown begins. After a graceful upgrade (`-u`)
//! the new process also announces itself as the service's main PID, so systemd
//! follows the hand-over. Without `NOTIFY_SOCKET` (not under systemd) all of this
//! is a no-op.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sd_notify::NotifyState;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Notifier {
    pub listen: Vec<String>,
    pub upgraded: bool,
}

#[async_trait]
impl BackgroundService for Notifier {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        for addr in &self.listen {
            wait_listening(addr).await;
        }
        let pid = std::process::id();
        let mut states = vec![NotifyState::Ready, NotifyState::Status("serving")];
        if self.upgraded {
            states.push(NotifyState::MainPid(pid));
        }
        if let Err(e) = sd_notify::notify(&states) {
            log::warn!("systemd notify failed: {e}");
        }
        let _ = shutdown.changed().await;
        let _ = sd_notify::notify(&[NotifyState::Stopping]);
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
