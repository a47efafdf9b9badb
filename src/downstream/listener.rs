//! The AI listener's sockets and accept loop, as a Pingora service.
//!
//! Why not Pingora's listening service: it runs every connection in a task
//! whose future holds the TLS handshake state inline even for plain TCP
//! (8.8 KB per open connection by heaptrack, 88 MB at 10,000 streams) behind a
//! 60 s handshake timeout, and hands the app a boxed `Stream` that reads the
//! clock around each pending read. Here a connection's task is the gateway's
//! own connection future over a plain `TcpStream`.
//!
//! What Pingora's service did and this one keeps: a listening socket is taken
//! over from the old process in a graceful upgrade (`-u`), else bound here
//! (SO_REUSEADDR, backlog 65535, bind retried while the address is in use) and
//! entered in the same fd table, so the next upgrade hands it on; TCP_NODELAY
//! on every connection; accepting stops when the server starts to stop (the
//! connections then finish as `Client` decides); running out of file
//! descriptors backs off instead of spinning.

use crate::proxy::Gateway;
use async_trait::async_trait;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use pingora_runtime::current_handle;
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const BACKLOG: i32 = 65535;
/// Pingora's figures: a restarted unit may find its address still held by the
/// process it replaces for a few seconds.
const BIND_TRIES: u32 = 30;
const BIND_RETRY: Duration = Duration::from_secs(1);

pub struct AiListener {
    addrs: Vec<String>,
    gateway: Option<Gateway>,
}

impl AiListener {
    pub fn new(addrs: Vec<String>, gateway: Gateway) -> Self {
        AiListener {
            addrs,
            gateway: Some(gateway),
        }
    }
}

#[async_trait]
impl Service for AiListener {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let Some(gateway) = self.gateway.take() else {
            return;
        };
        let gateway = Arc::new(gateway);
        let mut loops = Vec::new();
        for addr in &self.addrs {
            let listener = match open(addr, fds.as_ref()).await {
                Ok(l) => {
                    log::info!("accepting on {addr}");
                    Arc::new(l)
                }
                Err(e) => {
                    // Serving without one of the configured addresses would
                    // look healthy to systemd while clients are refused.
                    log::error!("cannot listen on {addr}: {e}");
                    std::process::exit(1);
                }
            };
            for _ in 0..listeners_per_fd.max(1) {
                let run = accept_loop(listener.clone(), gateway.clone(), shutdown.clone());
                loops.push(current_handle().spawn(run));
            }
        }
        for l in loops {
            let _ = l.await;
        }
    }

    fn name(&self) -> &str {
        "llmgate"
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(self.addrs.clone())
    }
}

/// The listening socket for `addr`: the one handed over by the old process in
/// an upgrade, else a new one, entered in the fd table for the next upgrade.
async fn open(addr: &str, fds: Option<&ListenFds>) -> std::io::Result<TcpListener> {
    let inherited = fds.and_then(|t| t.lock().get(addr).copied());
    let std_listener = match inherited {
        Some(fd) => {
            // SAFETY: `fd` is a listening socket the old process sent over the
            // upgrade socket (SCM_RIGHTS); Pingora's bootstrap received it and
            // only records its number. Addresses are unique (config
            // validation), so this is the one owner that wraps it.
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            // Listening again on a listening socket only updates its backlog.
            Socket::from(l.try_clone()?).listen(BACKLOG)?;
            l
        }
        None => {
            let l = bind(addr).await?;
            if let Some(t) = fds {
                t.lock().add(addr.to_string(), l.as_raw_fd());
            }
            l
        }
    };
    std_listener.set_nonblocking(true)?;
    TcpListener::from_std(std_listener)
}

async fn bind(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not IP:port"))?;
    let mut tries = 0;
    loop {
        match listen_socket(sa) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries + 1 < BIND_TRIES => {
                tries += 1;
                log::warn!("{addr} is in use, will try again");
                tokio::time::sleep(BIND_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A listening socket on `sa` with SO_REUSEADDR and a deep accept queue
/// (the kernel caps it at `net.core.somaxconn`): a burst of thousands of
/// connections must not overflow it (tokio's default backlog is 1024).
pub fn listen_socket(sa: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&sa.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    gateway: Arc<Gateway>,
    mut shutdown: ShutdownWatch,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                let gw = gateway.clone();
                let sd = shutdown.clone();
                let here = std::thread::current().id();
                // Boxed: tokio copies a task's whole future when it spawns it and
                // again when it stores its output; the connection's future is
                // ~3.3 KB (callgrind: ~2k instructions per new connection).
                current_handle().spawn(Box::pin(async move {
                    if let Some(tcp) = on_this_thread(tcp, here) {
                        super::connection::serve_connection(&gw, tcp, sd).await;
                    }
                }));
            }
            // EMFILE / ENFILE (Linux numbers): accept() would fail again at once.
            Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                log::error!("accept: out of file descriptors; pausing 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => log::debug!("accept: {}", e.kind()),
        }
    }
}

/// With several single-threaded runtimes the connection's task may land on
/// another thread than the one whose reactor accepted it; re-register it
/// there (two `epoll_ctl`s once) instead of paying a cross-thread wake-up for
/// every event of the connection's life.
fn on_this_thread(tcp: TcpStream, accepted_on: std::thread::ThreadId) -> Option<TcpStream> {
    if std::thread::current().id() == accepted_on {
        return Some(tcp);
    }
    tcp.into_std().and_then(TcpStream::from_std).ok()
}
