//! The transport under an upstream connection.
//!
//! Plain TCP is opened here and read and written directly; TLS goes through
//! Pingora's connector (rustls, SNI, verification) and its `Stream`. Why not
//! Pingora's stream for plain TCP too: every read and write went through three
//! wrapper layers (`Stream`, `BufferedStream`, `RawStreamWrapper`) that also
//! time each pending read, a few percent of the gateway's instructions per
//! request (callgrind).

use pingora::protocols::Stream;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum Io {
    Tcp(TcpStream),
    Pingora(Stream),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Pingora(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, b),
            Io::Pingora(s) => Pin::new(s).poll_write(cx, b),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Pingora(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Pingora(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Pingora(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Pingora(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Why a new connection could not be made. Names only, safe for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    Timeout,
    /// Pingora's error type names (`ConnectRefused`, `ConnectNoRoute`, ...).
    Failed(String),
    /// The TCP connection was made but TLS was not (handshake failed or timed
    /// out, certificate refused): Pingora's error type name.
    Tls(String),
}

impl ConnectError {
    pub fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::TimedOut => ConnectError::Timeout,
            io::ErrorKind::ConnectionRefused => ConnectError::Failed("ConnectRefused".into()),
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectError::Failed("ConnectNoRoute".into())
            }
            _ => ConnectError::Failed("ConnectError".into()),
        }
    }
}
