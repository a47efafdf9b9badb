//! `GET /admin/usage?group_by=key|model|upstream&since=&until=`: usage
//! totals (design.md section 8): this process's per-minute totals, or with
//! `state: {backend: redis}` every instance's per-hour totals from Redis.

use crate::limits::redis::Store;
use crate::limits::usage::{GroupBy, UsageMeter};
use serde_json::{json, Value};

/// Why there is no answer.
pub enum Refusal {
    /// The query is wrong (400).
    Query(String),
    /// Redis did not answer (503).
    Unavailable,
}

/// The answer, or why there is none.
pub async fn answer(
    meter: &UsageMeter,
    store: Option<&Store>,
    query: Option<&str>,
) -> Result<Value, Refusal> {
    let mut by = GroupBy::Key;
    let (mut since, mut until) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // `+` stays itself: an unencoded `+01:00` offset is meant.
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
        match k {
            "group_by" => {
                by = match &*v {
                    "key" => GroupBy::Key,
                    "model" => GroupBy::Model,
                    "upstream" => GroupBy::Upstream,
                    _ => return bad("group_by must be one of key, model, upstream"),
                }
            }
            "since" | "until" => {
                let Ok(t) = chrono::DateTime::parse_from_rfc3339(&v) else {
                    return bad(&format!(
                        "{k} must be an RFC 3339 time such as 2026-12-01T00:00:00Z"
                    ));
                };
                let s = u64::try_from(t.timestamp()).unwrap_or(0);
                if k == "since" {
                    since = Some(s);
                } else {
                    until = Some(s);
                }
            }
            _ => return bad(&format!("unknown parameter `{k}`")),
        }
    }
    // Totals are kept per minute (per hour in Redis): `since` counts from
    // its minute, `until` up to the end of its minute.
    let rows = match store {
        None => meter.query(
            by,
            since.map_or(0, |s| s - s % 60),
            until.map_or(u64::MAX, |u| u - u % 60 + 60),
        ),
        Some(store) => store
            .usage(
                by,
                since.map_or(0, |s| s - s % 3600),
                until.map_or(u64::MAX, |u| u - u % 3600 + 3600),
            )
            .await
            .ok_or(Refusal::Unavailable)?,
    };
    let time = |s: Option<u64>| {
        s.map_or(Value::Null, |s| {
            json!(humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
            )
            .to_string())
        })
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(name, r)| {
            json!({"name": name, "requests": r.requests, "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens, "total_tokens": r.total_tokens,
                "estimated_tokens": r.estimated_tokens})
        })
        .collect();
    let group_by = match by {
        GroupBy::Key => "key",
        GroupBy::Model => "model",
        GroupBy::Upstream => "upstream",
    };
    Ok(json!({"group_by": group_by, "since": time(since), "until": time(until), "rows": rows}))
}

fn bad(message: &str) -> Result<Value, Refusal> {
    Err(Refusal::Query(message.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets_parse() {
        let v =
            percent_encoding::percent_decode_str("2099-01-01T00:00:00%2B01:00").decode_utf8_lossy();
        assert_eq!(v, "2099-01-01T00:00:00+01:00");
        assert!(chrono::DateTime::parse_from_rfc3339(&v).is_ok());
    }
}
