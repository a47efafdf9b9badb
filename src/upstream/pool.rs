//! Idle keep-alive connections to upstreams, one pool per worker thread (as
//! nginx keeps one per worker): taking and returning a connection touches no
//! lock, spawns nothing and makes no system call.
//!
//! Why not Pingora's pool (used until this was measured): every returned
//! connection spawned an idle-watch task, every reuse cost a `getpeername`, and a
//! connection taken on another thread before that task had dropped its handle
//! was closed instead of reused (`failed to acquire reusable stream`): with two
//! threads, sequential requests opened a new upstream connection every few
//! requests. Here a connection the upstream closed while idle is noticed when it
//! is taken (one non-blocking read poll) or, failing that, by the attempt loop's
//! stale-connection retry; idle ones expire after [`POOL_IDLE`](super::POOL_IDLE).
//!
//! Connections come back with their read buffer, so a request on a pooled
//! connection allocates none.

use super::h1::Conn;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

/// The pool's keys are already hashes (Pingora's peer reuse hash, SipHash):
/// used as they are instead of hashed again on every take and give.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for a `u64` key; this keeps any other use sound.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Queues = HashMap<u64, VecDeque<Idle>, BuildHasherDefault<PreHashed>>;

struct Idle {
    conn: Conn,
    since: Instant,
}

thread_local! {
    /// Keyed by the peer's reuse hash (address, scheme, TLS settings).
    static IDLE: RefCell<Queues> = RefCell::new(Queues::default());
}

/// The most recently returned live connection for `key` (warm in caches and
/// least likely to have been closed by the upstream).
pub fn take(key: u64) -> Option<Conn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let queue = idle.get_mut(&key)?;
        while let Some(i) = queue.pop_back() {
            if i.since.elapsed() > super::POOL_IDLE {
                // Everything older is further down: expired too.
                queue.clear();
                return None;
            }
            let mut conn = i.conn;
            if conn.idle_and_open() {
                return Some(conn);
            }
        }
        None
    })
}

/// Keep `conn` for the next request to the same peer; at most `max` per peer
/// and thread (the oldest one goes first).
pub fn give(key: u64, conn: Conn, max: usize) {
    if max == 0 {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let queue = idle.entry(key).or_default();
        let now = Instant::now();
        while queue
            .front()
            .is_some_and(|i| now.duration_since(i.since) > super::POOL_IDLE)
        {
            queue.pop_front();
        }
        if queue.len() >= max {
            queue.pop_front();
        }
        queue.push_back(Idle { conn, since: now });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::io::Io;
    use tokio::io::AsyncWriteExt;

    async fn conn_to(listener: &tokio::net::TcpListener) -> (Conn, tokio::net::TcpStream) {
        let addr = listener.local_addr().expect("addr");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (Conn::new(Io::Tcp(tcp)), server)
    }

    #[tokio::test]
    async fn newest_live_connection_first_closed_ones_skipped_bounded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (a, mut sa) = conn_to(&listener).await;
        let (b, _sb) = conn_to(&listener).await;
        let (c, mut sc) = conn_to(&listener).await;
        give(1, a, 2);
        give(1, b, 2);
        give(1, c, 2); // pushes `a` out
        assert_eq!(IDLE.with(|i| i.borrow()[&1].len()), 2);
        // `c` (newest) was closed by its server: skipped, `b` comes back.
        sc.shutdown().await.expect("shutdown");
        drop(sc);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let got = take(1).expect("a live connection");
        assert!(IDLE.with(|i| i.borrow()[&1].is_empty()));
        drop(got);
        assert!(take(1).is_none());
        assert!(take(2).is_none());
        // The pushed-out connection was closed: its server reads end of stream.
        let mut end = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut sa, &mut end)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
