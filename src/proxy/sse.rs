//! Incremental scan for the first complete SSE event that carries a `data:` line
//! (the commit point for streams). Fed chunk by chunk, never re-scans a byte, and
//! handles `\n`, `\r\n` and `\r` line ends split anywhere across chunks.

#[derive(Debug, Default)]
pub struct FirstEvent {
    /// Bytes of the current line seen so far (only the first 5 are kept).
    line_len: usize,
    prefix: [u8; 5],
    event_has_data: bool,
    prev_cr: bool,
    done: bool,
}

impl FirstEvent {
    /// Feed the next chunk; true once a complete event with data has been seen.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            if self.done {
                break;
            }
            match b {
                b'\n' if self.prev_cr => self.prev_cr = false,
                b'\n' | b'\r' => {
                    self.prev_cr = b == b'\r';
                    self.end_line();
                }
                _ => {
                    self.prev_cr = false;
                    if self.line_len < 5 {
                        self.prefix[self.line_len] = b;
                    }
                    self.line_len += 1;
                }
            }
        }
        self.done
    }

    fn end_line(&mut self) {
        if self.line_len == 0 {
            if self.event_has_data {
                self.done = true;
            }
            self.event_has_data = false;
        } else if self.line_len >= 4
            && &self.prefix[..4] == b"data"
            && (self.line_len == 4 || self.prefix[4] == b':')
        {
            self.event_has_data = true;
        }
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_event_end(stream: &[u8], chunk: usize) -> Option<usize> {
        let mut s = FirstEvent::default();
        let mut fed = 0;
        for c in stream.chunks(chunk) {
            fed += c.len();
            if s.feed(c) {
                return Some(fed);
            }
        }
        None
    }

    #[test]
    fn finds_first_data_event_under_any_chunking() {
        let stream = b": keep-alive\n\nevent: x\n\ndata: {\"a\":1}\n\ndata: 2\n\n";
        for chunk in 1..stream.len() {
            let at = first_event_end(stream, chunk).unwrap();
            assert!(at >= 38, "chunk {chunk}: {at}");
        }
        assert!(first_event_end(b"data: x\r\n\r\n", 1).is_some());
        assert!(first_event_end(b"data: x\r\rmore", 3).is_some());
    }

    #[test]
    fn incomplete_or_dataless_is_not_an_event() {
        assert!(first_event_end(b"data: partial\n", 4).is_none());
        assert!(first_event_end(b": comment\n\nevent: ping\n\n", 4).is_none());
        assert!(first_event_end(b"dat: x\n\n", 4).is_none());
        assert!(first_event_end(b"database: x\n\n", 4).is_none());
    }
}
