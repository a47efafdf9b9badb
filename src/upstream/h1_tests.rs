//! Socket tests of the HTTP/1.1 answer reader (`h1.rs`): every cut of a
//! message, framing, informational answers, and what is refused.

use super::*;
use tokio::io::AsyncWriteExt;

/// Serve `wire` in the given cuts over a real loopback socket and read it back.
async fn read_all(wire: &[u8], cuts: &[usize]) -> Result<(u16, Vec<u8>, bool, Head), H1Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let wire = wire.to_vec();
    let cuts = cuts.to_vec();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut at = 0;
        for c in cuts.iter().chain(std::iter::once(&wire.len())) {
            let c = (*c).min(wire.len());
            if c > at {
                s.write_all(&wire[at..c]).await.expect("write");
                s.flush().await.expect("flush");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                at = c;
            }
        }
        // Keep the socket open until the client is done (or 200 ms, which ends
        // a close-delimited body), so keep-alive framing is what ends bodies.
        let mut end = [0u8; 1];
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            tokio::io::AsyncReadExt::read(&mut s, &mut end),
        )
        .await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut c = Conn::new(Io::Tcp(tcp));
    let head = c.read_head().await?;
    let mut body = Vec::new();
    while let Some(b) = c.read_body().await? {
        body.extend_from_slice(&b);
    }
    let reusable = c.into_reusable().is_some(); // drops the connection: the server ends
    server.await.expect("server");
    Ok((head.status, body, reusable, head))
}

#[tokio::test]
async fn content_length_body_any_cut() {
    let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    for cut in 1..wire.len() {
        let (s, b, r, _) = read_all(wire, &[cut]).await.expect("read");
        assert_eq!(
            (s, b.as_slice(), r),
            (200, &b"hello"[..], true),
            "cut {cut}"
        );
    }
}

#[tokio::test]
async fn chunked_body_any_cut_with_ext_and_trailers() {
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n";
    for cut in 1..wire.len() {
        let (s, b, r, _) = read_all(wire, &[cut, cut + 7]).await.expect("read");
        assert_eq!(
            (s, b.as_slice(), r),
            (200, &b"hello world"[..], true),
            "cut {cut}"
        );
    }
}

#[tokio::test]
async fn transfer_encoding_overrides_content_length() {
    let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let (s, b, r, head) = read_all(wire, &[]).await.expect("read");
    // Read as chunked, but a message framed two ways ends its connection.
    assert_eq!((s, b.as_slice(), r), (200, &b"ok"[..], false));
    assert!(head.headers.get("content-length").is_none());
}

#[tokio::test]
async fn statuses_outside_100_599_and_coded_http10_answers_are_refused() {
    for wire in [
        &b"HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n"[..],
        b"HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: folded\r\n  line\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: a\x01b\r\ncontent-length: 0\r\n\r\n",
    ] {
        assert_eq!(
            read_all(wire, &[]).await.err(),
            Some(H1Error::BadHead),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let wire = b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    assert_eq!(read_all(wire, &[]).await.err(), Some(H1Error::BadFraming));
    let (s, _, _, _) = read_all(b"HTTP/1.1 599 Edge\r\ncontent-length: 0\r\n\r\n", &[])
        .await
        .expect("599 is a status");
    assert_eq!(s, 599);
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok";
    let (s, b, _, _) = read_all(wire, &[10, 25]).await.expect("read");
    assert_eq!((s, b.as_slice()), (201, &b"ok"[..]));
}

#[tokio::test]
async fn close_delimited_and_connection_close_are_not_reused() {
    let wire = b"HTTP/1.1 200 OK\r\n\r\nuntil close";
    // The server task waits 200 ms for us, then closes: the body ends there.
    let (_, b, r, _) = read_all(wire, &[]).await.expect("read");
    assert_eq!((b.as_slice(), r), (&b"until close"[..], false));
    let wire = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx";
    let (_, _, r, _) = read_all(wire, &[]).await.expect("read");
    assert!(!r);
    let wire = b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx";
    let (_, _, r, _) = read_all(wire, &[]).await.expect("read");
    assert!(!r);
}

#[tokio::test]
async fn broken_framing_is_an_error() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"[..],
        &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabX\r\n"[..],
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab"[..],
        &b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"[..],
        &b"garbage\r\n\r\n"[..],
    ] {
        assert!(
            read_all(wire, &[]).await.is_err(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // A body cut short by the peer is Closed, not a clean end.
    let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
    assert_eq!(read_all(wire, &[]).await.err(), Some(H1Error::Closed));
}
