//! One JSON access-log line per request. Names only: never a key, never a
//! query string.
//!
//! Written field by field into one `String`: the shape is fixed, and the
//! strings in it (ids, names, paths, reasons) almost never need escaping, so
//! each is checked in one pass and copied, with serde_json's escaping for the
//! rare one that needs it. The time's seconds part is formatted once per
//! second per thread. Through serde's derive the line cost ~5.8k instructions
//! (docs/performance.md), most of it escaping byte by byte.

use super::ctx::{Outcome, RequestCtx};
use crate::front::Request;
use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn line(req: Option<&Request>, ctx: &RequestCtx, status: u16, elapsed: Duration) -> String {
    let name = |i: usize| ctx.runtime.upstreams.get(i).map(|u| u.name());
    let mut s = String::with_capacity(384);
    s.push_str("{\"time\":\"");
    push_time(&mut s, SystemTime::now());
    s.push_str("\",\"request_id\":");
    push_str(&mut s, &ctx.request_id);
    s.push_str(",\"key\":");
    push_opt(&mut s, ctx.key_name.as_deref());
    s.push_str(",\"method\":");
    push_str(&mut s, req.map_or("-", |r| r.method.as_str()));
    s.push_str(",\"path\":");
    push_str(&mut s, req.map_or("-", |r| r.path()));
    s.push_str(",\"model\":");
    push_opt(&mut s, ctx.model_name());
    s.push_str(",\"upstream\":");
    push_opt(&mut s, ctx.served_by.and_then(name));
    s.push_str(",\"attempts\":[");
    for (i, a) in ctx.attempts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let up = name(a.upstream).unwrap_or("?");
        match &a.outcome {
            Outcome::Answered(status) => {
                push_str(&mut s, up);
                s.pop();
                s.push(':');
                push_int(&mut s, *status as u64);
                s.push('"');
            }
            Outcome::Failed(reason) => push_str(&mut s, &format!("{up}:{reason}")),
        }
    }
    s.push_str("],\"status\":");
    push_int(&mut s, status as u64);
    s.push_str(",\"bytes\":");
    push_int(&mut s, ctx.bytes_sent as u64);
    s.push_str(",\"duration_ms\":");
    push_ms(&mut s, elapsed);
    s.push_str(",\"ttfb_ms\":");
    match ctx.ttfb {
        Some(t) => push_ms(&mut s, t),
        None => s.push_str("null"),
    }
    s.push_str(",\"prompt_tokens\":");
    push_opt_int(&mut s, ctx.usage.map(|u| u.0));
    s.push_str(",\"completion_tokens\":");
    push_opt_int(&mut s, ctx.usage.map(|u| u.1));
    s.push_str(",\"client_gone\":");
    s.push_str(if ctx.client_gone { "true" } else { "false" });
    s.push_str(",\"cut\":");
    push_opt(&mut s, ctx.cut.as_deref());
    s.push('}');
    s
}

/// A JSON string: copied when nothing in it needs escaping (the usual case).
fn push_str(s: &mut String, v: &str) {
    if v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        s.push('"');
        s.push_str(v);
        s.push('"');
    } else {
        // Serializing a str cannot fail.
        s.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
}

fn push_opt(s: &mut String, v: Option<&str>) {
    match v {
        Some(v) => push_str(s, v),
        None => s.push_str("null"),
    }
}

fn push_int(s: &mut String, n: u64) {
    s.push_str(itoa::Buffer::new().format(n));
}

fn push_opt_int(s: &mut String, n: Option<u64>) {
    match n {
        Some(n) => push_int(s, n),
        None => s.push_str("null"),
    }
}

/// Milliseconds with microsecond precision, trailing zeros trimmed (`12.5`,
/// `0.042`, `3.0`).
fn push_ms(s: &mut String, d: Duration) {
    let us = d.as_micros().min(u64::MAX as u128) as u64;
    push_int(s, us / 1000);
    s.push('.');
    let frac = us % 1000;
    let digits = [frac / 100, frac / 10 % 10, frac % 10];
    let keep = digits.iter().rposition(|&d| d != 0).map_or(1, |i| i + 1);
    for d in &digits[..keep] {
        s.push(char::from(b'0' + *d as u8));
    }
}

/// RFC 3339 UTC with milliseconds (`2026-12-02T13:15:37.060Z`).
fn push_time(s: &mut String, t: SystemTime) {
    thread_local! {
        /// The last second formatted on this thread, and its text without `Z`.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            text.clear();
            let full = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
            text.push_str(full.to_string().trim_end_matches('Z'));
        }
        s.push_str(text);
    });
    let ms = since.subsec_millis();
    s.push('.');
    for d in [ms / 100, ms / 10 % 10, ms % 10] {
        s.push(char::from(b'0' + d as u8));
    }
    s.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_numbers_and_time() {
        let mut s = String::new();
        push_str(&mut s, "plain/path");
        push_str(&mut s, "q\"uo\\te\n\u{1}é");
        assert_eq!(s, r#""plain/path""q\"uo\\te\n\u0001é""#);
        for (us, want) in [
            (0, "0.0"),
            (42, "0.042"),
            (12_500, "12.5"),
            (3_000_000, "3000.0"),
        ] {
            let mut s = String::new();
            push_ms(&mut s, Duration::from_micros(us));
            assert_eq!(s, want);
        }
        let mut s = String::new();
        push_time(
            &mut s,
            UNIX_EPOCH + Duration::from_millis(1_764_683_737_060),
        );
        assert_eq!(s, "2025-12-02T13:55:37.060Z");
        let again = UNIX_EPOCH + Duration::from_millis(1_764_683_737_999);
        let mut s = String::new();
        push_time(&mut s, again);
        assert_eq!(s, humantime::format_rfc3339_millis(again).to_string());
    }
}
