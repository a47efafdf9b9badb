//! A translated stream: the upstream's events (its format) read into chat
//! chunks, written as the client's dialect — incrementally, each upstream
//! chunk giving whatever complete events it holds.

use super::chat::{self, Item};
use super::sse::{write_event, write_json_event, Event, SseReader};
use super::{anthropic, gemini, messages, responses, Dialect, Format};

enum Up {
    OpenAi,
    Anthropic(anthropic::Stream),
    Gemini(gemini::Stream),
}

enum Down {
    Chat { include_usage: bool },
    Messages(messages::Writer),
    Responses(responses::Writer),
}

pub struct Translator {
    reader: SseReader,
    events: Vec<Event>,
    items: Vec<Item>,
    up: Up,
    down: Down,
    out: Vec<u8>,
    usage: Option<(u64, u64)>,
    /// The client's stream is complete (its end, or an error event, sent).
    done: bool,
    dialect: Dialect,
}

impl Translator {
    /// A stream from a target of format `f` (model `model`) to a client
    /// speaking `d`; `include_usage`: a chat client asked for the usage chunk.
    pub fn new(d: Dialect, f: Format, model: &str, include_usage: bool) -> Self {
        Translator {
            reader: SseReader::default(),
            events: Vec::new(),
            items: Vec::new(),
            up: match f {
                Format::OpenAi => Up::OpenAi,
                Format::Anthropic => Up::Anthropic(anthropic::Stream::default()),
                Format::Gemini => Up::Gemini(gemini::Stream::new(model)),
            },
            down: match d {
                Dialect::Messages => Down::Messages(messages::Writer::default()),
                Dialect::Responses => Down::Responses(responses::Writer::default()),
                _ => Down::Chat { include_usage },
            },
            out: Vec::new(),
            usage: None,
            done: false,
            dialect: d,
        }
    }

    /// The client's bytes for the next upstream chunk (possibly none).
    pub fn feed(&mut self, chunk: &[u8]) -> &[u8] {
        self.out.clear();
        if self.done {
            return &self.out;
        }
        let mut events = std::mem::take(&mut self.events);
        if let Err(e) = self.reader.feed(chunk, &mut events) {
            self.fail(&chat::stream_error(
                &format!("upstream stream unreadable: {e}"),
                "api_error",
            ));
            return &self.out;
        }
        for ev in events.drain(..) {
            if let Err(e) = self.event(&ev) {
                self.fail(&e);
                break;
            }
        }
        self.events = events;
        self.write_items();
        &self.out
    }

    /// The upstream's body ended: the client's stream is closed properly.
    pub fn end(&mut self) -> &[u8] {
        self.out.clear();
        if !self.done {
            match &mut self.up {
                Up::Gemini(g) => {
                    g.end(&mut self.items);
                    self.usage = g.usage_seen().then(|| g.usage());
                }
                Up::Anthropic(_) | Up::OpenAi => self.items.push(Item::Done),
            }
            self.write_items();
        }
        &self.out
    }

    /// The stream was cut (`reason`): the error event in the client's dialect.
    pub fn cut(&mut self, reason: &str) -> &[u8] {
        self.out.clear();
        if !self.done {
            self.fail(&chat::stream_error(reason, "stream_interrupted"));
        }
        &self.out
    }

    pub fn usage(&self) -> Option<(u64, u64)> {
        self.usage
    }

    fn event(&mut self, ev: &Event) -> Result<(), chat::StreamError> {
        match &mut self.up {
            Up::Anthropic(a) => {
                a.event(&ev.name, &ev.data, &mut self.items)?;
                if a.usage_seen {
                    self.usage = Some(a.usage());
                }
            }
            Up::Gemini(g) => {
                g.event(&ev.data, &mut self.items)?;
                self.usage = g.usage_seen().then(|| g.usage());
            }
            Up::OpenAi => {
                if ev.data == "[DONE]" {
                    self.items.push(Item::Done);
                    return Ok(());
                }
                let v = chat::event_json(&ev.data, "type")?;
                if let Some(u) = chat::usage_of(&v) {
                    self.usage = Some(u);
                }
                self.items.push(Item::Chunk(v));
            }
        }
        Ok(())
    }

    fn write_items(&mut self) {
        for item in self.items.drain(..) {
            if self.done {
                break;
            }
            match &mut self.down {
                Down::Chat { include_usage } => match &item {
                    Item::Chunk(c) => write_json_event(&mut self.out, None, c),
                    Item::Usage(c) if *include_usage => write_json_event(&mut self.out, None, c),
                    Item::Usage(_) => {}
                    Item::Done => write_event(&mut self.out, None, b"[DONE]"),
                },
                Down::Messages(w) => w.item(&item, &mut self.out),
                Down::Responses(w) => w.item(&item, &mut self.out),
            }
            if item == Item::Done {
                self.done = true;
            }
        }
    }

    fn fail(&mut self, e: &chat::StreamError) {
        self.items.clear();
        super::error_event(self.dialect, &mut self.out, &e.message, &e.kind);
        self.done = true;
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
