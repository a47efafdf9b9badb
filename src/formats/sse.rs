//! Server-sent events read incrementally (the WHATWG event-stream rules the
//! providers follow): fed chunk by chunk, lines ended by `\n`, `\r\n` or `\r`
//! split anywhere, `event:` and `data:` fields gathered until the blank line
//! that dispatches the event. Only translated streams are read this way; a
//! stream in the client's own format passes as bytes.

/// Largest event accepted (a provider's single event is a few KB; a tool
/// call's arguments can be larger, never this large).
const MAX_EVENT: usize = 8 * 1024 * 1024;

/// One dispatched event: its `event:` name (empty when none) and its data
/// lines joined by `\n`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseReader {
    line: Vec<u8>,
    prev_cr: bool,
    name: String,
    data: String,
    has_data: bool,
}

impl SseReader {
    /// Read `chunk`; every event it completes is pushed to `out`. An event
    /// over the size limit, or one that is not UTF-8, is an error.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), &'static str> {
        while !chunk.is_empty() {
            if self.prev_cr && chunk[0] == b'\n' {
                chunk = &chunk[1..];
                self.prev_cr = false;
                continue;
            }
            self.prev_cr = false;
            match memchr::memchr2(b'\n', b'\r', chunk) {
                None => {
                    self.push_bytes(chunk)?;
                    break;
                }
                Some(at) => {
                    self.push_bytes(&chunk[..at])?;
                    self.prev_cr = chunk[at] == b'\r';
                    chunk = &chunk[at + 1..];
                    self.end_line(out)?;
                }
            }
        }
        Ok(())
    }

    fn push_bytes(&mut self, b: &[u8]) -> Result<(), &'static str> {
        if self.line.len() + b.len() + self.data.len() > MAX_EVENT {
            return Err("event too large");
        }
        self.line.extend_from_slice(b);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<Event>) -> Result<(), &'static str> {
        if self.line.is_empty() {
            if self.has_data {
                if self.data.ends_with('\n') {
                    self.data.pop();
                }
                out.push(Event {
                    name: std::mem::take(&mut self.name),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.name.clear();
            self.has_data = false;
            return Ok(());
        }
        let line = std::str::from_utf8(&self.line).map_err(|_| "event is not UTF-8")?;
        let (field, value) = match line.find(':') {
            Some(0) => ("", ""), // a comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "event" => self.name = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            _ => {}
        }
        self.line.clear();
        Ok(())
    }
}

/// Append one event in wire form: `event: NAME` when named, its data line,
/// the blank line.
pub fn write_event(out: &mut Vec<u8>, name: Option<&str>, data: &[u8]) {
    write_with(out, name, |out| out.extend_from_slice(data));
}

/// Append one event whose data is a JSON value, serialized straight into
/// `out` (not through `Display`, whose formatter machinery cost a fifth of a
/// translated request).
pub fn write_json_event(out: &mut Vec<u8>, name: Option<&str>, v: &serde_json::Value) {
    // Writing a Value to a Vec cannot fail (no I/O, string keys only).
    write_with(out, name, |out| {
        let _ = serde_json::to_writer(&mut *out, v);
    });
}

fn write_with(out: &mut Vec<u8>, name: Option<&str>, data: impl FnOnce(&mut Vec<u8>)) {
    if let Some(n) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(n.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    data(out);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(stream: &[u8], chunk: usize) -> Vec<Event> {
        let mut r = SseReader::default();
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            r.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_under_any_chunking_and_line_ends() {
        let stream =
            b": ping\n\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: x\rdata: y\r\revent: ping\n\n";
        let want = vec![
            Event {
                name: "message_start".into(),
                data: "{\"a\":1}".into(),
            },
            Event {
                name: String::new(),
                data: "x\ny".into(),
            },
        ];
        for chunk in 1..stream.len() {
            assert_eq!(events(stream, chunk), want, "chunk {chunk}");
        }
    }

    #[test]
    fn incomplete_event_is_held() {
        assert!(events(b"data: partial\n", 3).is_empty());
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut r = SseReader::default();
        let big = vec![b'x'; MAX_EVENT + 1];
        assert!(r.feed(&big, &mut Vec::new()).is_err());
    }
}
