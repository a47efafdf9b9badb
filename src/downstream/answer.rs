//! The answer side of one HTTP/1.1 exchange with a client: the status line
//! and headers as they are built, the body's framing (length, chunked,
//! close-delimited, none), and the pieces each write sends. No I/O: the
//! connection ([`super::Client`]) writes what this lays out.

use crate::framing::{self, FrameHead};
use bytes::BytesMut;
use std::io::IoSlice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length,
    Chunked,
    /// HTTP/1.0 client and no length: the close ends the body.
    Close,
    /// HEAD, 1xx, 204, 304: a head only.
    NoBody,
}

/// One answer: its head until sent, its framing, what was sent.
pub(super) struct Answer {
    /// The head, built until the first write sends it.
    head: BytesMut,
    pub(super) head_sent: bool,
    pub(super) framing: Framing,
    /// The body's end was written.
    pub(super) finished: bool,
    pub(super) status: u16,
    pub(super) bytes_sent: usize,
    /// What the request asks of the answer.
    pub(super) http10: bool,
    pub(super) head_request: bool,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            head: BytesMut::new(),
            head_sent: false,
            framing: Framing::NoBody,
            finished: true,
            status: 0,
            bytes_sent: 0,
            http10: false,
            head_request: false,
        }
    }
}

impl Answer {
    /// A new request: nothing of its answer exists yet.
    #[inline]
    pub(super) fn reset(&mut self) {
        self.status = 0;
        self.head_sent = false;
        self.finished = false;
        self.bytes_sent = 0;
    }

    /// Start the head: the status line.
    #[inline]
    pub(super) fn start(&mut self, status: u16) {
        self.status = status;
        self.head.clear();
        self.head.reserve(256);
        self.head.extend_from_slice(if self.http10 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        let mut n = itoa::Buffer::new();
        self.head.extend_from_slice(n.format(status).as_bytes());
        self.head.extend_from_slice(b" ");
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        self.head.extend_from_slice(reason.as_bytes());
        self.head.extend_from_slice(b"\r\n");
    }

    /// One header line. Callers pass names and values free of CR and LF (our
    /// constants, or values an HTTP parser accepted).
    #[inline]
    pub(super) fn header(&mut self, name: &[u8], value: &[u8]) {
        crate::framing::put_header(&mut self.head, name, value);
    }

    /// [`Self::header`] with the name in lower case, as HTTP/2 and most
    /// proxies pass names on (an upstream's own spelling is not kept).
    #[inline]
    pub(super) fn header_lowercase(&mut self, name: &[u8], value: &[u8]) {
        let at = self.head.len();
        self.header(name, value);
        self.head[at..at + name.len()].make_ascii_lowercase();
    }

    /// End the head: `length` for a body of known size, else chunked (or,
    /// for an HTTP/1.0 client, ended by closing, which clears `keep_alive`).
    /// `keep_alive` false: the head says `connection: close`.
    #[inline]
    pub(super) fn end_head(&mut self, length: Option<u64>, keep_alive: &mut bool) {
        let bodiless = matches!(self.status, 204 | 304) || (100..200).contains(&self.status);
        self.framing = match length {
            _ if bodiless => Framing::NoBody,
            Some(l) => {
                let mut n = itoa::Buffer::new();
                self.header(b"content-length", n.format(l).as_bytes());
                Framing::Length
            }
            None if self.http10 => {
                *keep_alive = false;
                Framing::Close
            }
            None => {
                self.header(b"transfer-encoding", b"chunked");
                Framing::Chunked
            }
        };
        if self.head_request {
            self.framing = Framing::NoBody;
        }
        if !*keep_alive {
            self.header(b"connection", b"close");
        } else if self.http10 {
            self.header(b"connection", b"keep-alive");
        }
        self.head.extend_from_slice(b"\r\n");
    }

    /// The pieces of one write into `out`, in order (their count returned):
    /// the head if not sent yet, then `piece` in its framing (`frame`: its
    /// chunk-size line), then the last chunk when `last` ends a chunked
    /// body. Counts the body bytes and marks the head sent and the body
    /// finished, as the write will.
    #[inline]
    pub(super) fn slices<'a>(
        &'a mut self,
        piece: &'a [u8],
        last: bool,
        frame: &'a FrameHead,
        out: &mut [IoSlice<'a>; 5],
    ) -> usize {
        let mut k = 0;
        if !self.head_sent {
            out[k] = IoSlice::new(&self.head);
            k += 1;
        }
        let chunked = self.framing == Framing::Chunked;
        if self.framing != Framing::NoBody {
            if !piece.is_empty() {
                if chunked {
                    out[k] = IoSlice::new(frame.as_bytes());
                    k += 1;
                }
                out[k] = IoSlice::new(piece);
                k += 1;
                self.bytes_sent += piece.len();
                if chunked {
                    out[k] = IoSlice::new(b"\r\n");
                    k += 1;
                }
            }
            if last && chunked {
                out[k] = IoSlice::new(framing::LAST_CHUNK);
                k += 1;
            }
        }
        self.head_sent = true;
        if last {
            self.finished = true;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of one write.
    fn write(a: &mut Answer, piece: &[u8], last: bool) -> String {
        let frame = FrameHead::new(piece.len());
        let mut out = [IoSlice::new(&[]); 5];
        let k = a.slices(piece, last, &frame, &mut out);
        out[..k]
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    fn answer(http10: bool, head_request: bool) -> Answer {
        let mut a = Answer {
            http10,
            head_request,
            ..Answer::default()
        };
        a.reset();
        a
    }

    #[test]
    fn a_known_length_goes_with_the_head_in_one_write() {
        let mut a = answer(false, false);
        let mut keep = true;
        a.start(200);
        a.header(b"content-type", b"application/json");
        a.end_head(Some(2), &mut keep);
        assert_eq!(
            write(&mut a, b"{}", true),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
        assert!(keep && a.finished && a.head_sent);
        assert_eq!(a.bytes_sent, 2);
    }

    #[test]
    fn an_unknown_length_is_chunked_and_ends_with_the_last_chunk() {
        let mut a = answer(false, false);
        let mut keep = true;
        a.start(200);
        a.end_head(None, &mut keep);
        assert_eq!(
            write(&mut a, b"data: x\n\n", false),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n"
        );
        assert!(!a.finished);
        assert_eq!(write(&mut a, b"", true), "0\r\n\r\n");
        assert!(a.finished);
    }

    #[test]
    fn http10_without_length_is_ended_by_closing() {
        let mut a = answer(true, false);
        let mut keep = true;
        a.start(200);
        a.end_head(None, &mut keep);
        assert!(!keep);
        assert_eq!(a.framing, Framing::Close);
        assert_eq!(
            write(&mut a, b"ab", true),
            "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\nab"
        );
        let mut a = answer(true, false);
        let mut keep = true;
        a.start(200);
        a.end_head(Some(0), &mut keep);
        assert!(keep);
        assert_eq!(
            write(&mut a, b"", true),
            "HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn head_requests_and_bodiless_statuses_send_no_body() {
        let mut a = answer(false, true);
        let mut keep = true;
        a.start(200);
        a.end_head(Some(5), &mut keep);
        assert_eq!(
            write(&mut a, b"hello", true),
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            "HEAD: the length of what GET would send, no body"
        );
        assert_eq!(a.bytes_sent, 0);
        for status in [204, 304] {
            let mut a = answer(false, false);
            a.start(status);
            a.end_head(Some(5), &mut keep);
            assert_eq!(a.framing, Framing::NoBody);
            assert!(!write(&mut a, b"hello", true).contains("content-length"));
        }
    }

    #[test]
    fn closing_is_said_in_the_head_and_names_are_lowered_on_request() {
        let mut a = answer(false, false);
        let mut keep = false;
        a.start(502);
        a.header_lowercase(b"X-LLMGate-Upstream", b"A");
        a.end_head(Some(0), &mut keep);
        assert_eq!(
            write(&mut a, b"", true),
            "HTTP/1.1 502 Bad Gateway\r\nx-llmgate-upstream: A\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }
}
