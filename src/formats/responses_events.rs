//! Chat chunks written as the Responses API's event sequence (see the
//! parent module for the order).

use super::{call_item, id_from, message_item, response, status, Head};
use crate::formats::chat;
use crate::formats::sse::write_json_event;
use serde_json::{json, Value};

enum Out {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        n: u64,
        call_id: Value,
        name: Value,
        args: String,
    },
}

/// Chat chunks written as the Responses event sequence. The `.done` events
/// and the final response repeat each item whole, so the writer keeps the
/// text and arguments it has passed on.
#[derive(Default)]
pub struct Writer {
    head: Option<Head>,
    items: Vec<Out>,
    finish: String,
    usage: (u64, u64),
    seq: u64,
    ended: bool,
}

impl Writer {
    pub fn item(&mut self, item: &chat::Item, out: &mut Vec<u8>) {
        match item {
            chat::Item::Chunk(c) | chat::Item::Usage(c) => self.chunk(c, out),
            chat::Item::Done => self.end(out),
        }
    }

    fn event(&mut self, out: &mut Vec<u8>, kind: &str, mut v: Value) {
        v["type"] = kind.into();
        v["sequence_number"] = self.seq.into();
        self.seq += 1;
        write_json_event(out, Some(kind), &v);
    }

    fn chunk(&mut self, c: &Value, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if let Some(u) = chat::usage_of(c) {
            self.usage = u;
        }
        if self.head.is_none() {
            let head = Head::of(c);
            let r = response(&head, "in_progress", None, vec![], None);
            self.head = Some(head);
            self.event(out, "response.created", json!({"response": r}));
            self.event(out, "response.in_progress", json!({"response": r}));
        }
        let Some(delta) = chat::delta(c) else {
            return;
        };
        if let Some(t) = delta.text {
            if !matches!(self.items.last(), Some(Out::Message { .. })) {
                self.open_message(out);
            }
            let at = self.items.len() - 1;
            let e = match self.items.last_mut() {
                Some(Out::Message { id, text }) => {
                    text.push_str(t);
                    Some(
                        json!({"item_id": id, "output_index": at, "content_index": 0, "delta": t, "logprobs": []}),
                    )
                }
                _ => None,
            };
            if let Some(e) = e {
                self.event(out, "response.output_text.delta", e);
            }
        }
        for call in delta.calls {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let same = matches!(self.items.last(), Some(Out::Call { n: m, .. }) if *m == n);
            if !same {
                self.open_call(out, n, call);
            }
            let args = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty());
            let at = self.items.len() - 1;
            let e = match (args, self.items.last_mut()) {
                (Some(a), Some(Out::Call { id, args, .. })) => {
                    args.push_str(a);
                    Some(json!({"item_id": id, "output_index": at, "delta": a}))
                }
                _ => None,
            };
            if let Some(e) = e {
                self.event(out, "response.function_call_arguments.delta", e);
            }
        }
        if let Some(f) = delta.finish {
            self.finish = f.to_string();
        }
    }

    fn open_message(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        let at = self.items.len();
        let base = self.head.as_ref().map_or("", |h| h.id.as_str());
        let id = format!("{}_{at}", id_from(base, "msg_"));
        let item = message_item(&id, "", "in_progress");
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": at, "item": item}),
        );
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        let e = json!({"item_id": id, "output_index": at, "content_index": 0, "part": part});
        self.event(out, "response.content_part.added", e);
        self.items.push(Out::Message {
            id,
            text: String::new(),
        });
    }

    fn open_call(&mut self, out: &mut Vec<u8>, n: u64, call: &Value) {
        self.close(out);
        let at = self.items.len();
        let call_id = call
            .get("id")
            .filter(|v| v.is_string())
            .cloned()
            .unwrap_or_else(|| format!("call_{at}").into());
        let name = call.pointer("/function/name").cloned().unwrap_or_default();
        let id = format!("fc_{}", call_id.as_str().unwrap_or(""));
        let item = call_item(&id, &call_id, &name, "", "in_progress");
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": at, "item": item}),
        );
        self.items.push(Out::Call {
            id,
            n,
            call_id,
            name,
            args: String::new(),
        });
    }

    /// The `.done` events of the last item, the one open (items are
    /// written one after another: opening one closes the one before).
    fn close(&mut self, out: &mut Vec<u8>) {
        let at = self.items.len().saturating_sub(1);
        let done = match self.items.last() {
            Some(Out::Message { id, text }) => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                vec![
                    (
                        "response.output_text.done",
                        json!({"item_id": id, "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                    ),
                    (
                        "response.content_part.done",
                        json!({"item_id": id, "output_index": at, "content_index": 0, "part": part}),
                    ),
                    (
                        "response.output_item.done",
                        json!({"output_index": at, "item": message_item(id, text, "completed")}),
                    ),
                ]
            }
            Some(Out::Call {
                id,
                call_id,
                name,
                args,
                ..
            }) => vec![
                (
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": at, "name": name, "arguments": args}),
                ),
                (
                    "response.output_item.done",
                    json!({"output_index": at, "item": call_item(id, call_id, name, args, "completed")}),
                ),
            ],
            None => vec![],
        };
        for (kind, e) in done {
            self.event(out, kind, e);
        }
    }

    /// The closing events (once): the open item done, then the whole
    /// response with its status and usage.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended || self.head.is_none() {
            return;
        }
        self.ended = true;
        self.close(out);
        let output = self
            .items
            .iter()
            .map(|i| match i {
                Out::Message { id, text } => message_item(id, text, "completed"),
                Out::Call {
                    id,
                    call_id,
                    name,
                    args,
                    ..
                } => call_item(id, call_id, name, args, "completed"),
            })
            .collect();
        let (status, reason) = status(&self.finish);
        let Some(head) = self.head.as_ref() else {
            return;
        };
        let r = response(head, status, reason, output, Some(self.usage));
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.event(out, kind, json!({"response": r}));
    }
}
