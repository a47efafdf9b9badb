//! Values shared by the sections' validation.

use super::issues::Issues;
use std::time::Duration;

/// A duration such as `250ms` or `2m` (greater than zero), else `default`.
pub(super) fn duration(
    issues: &mut Issues,
    path: &str,
    value: Option<&String>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                issues.add(path, "must be greater than zero");
                default
            }
            Err(_) => {
                issues.add(
                    path,
                    format!("`{text}` is not a duration (use e.g. 250ms, 5s, 2m)"),
                );
                default
            }
        },
    }
}

pub(super) fn statuses(issues: &mut Issues, path: &str, list: &[u16]) {
    for (i, s) in list.iter().enumerate() {
        if !(100..=599).contains(s) {
            issues.add(format!("{path}[{i}]"), format!("{s} is not an HTTP status"));
        }
    }
}

pub(super) fn health_path(issues: &mut Issues, path: &str, p: &str) -> String {
    if !p.starts_with('/') {
        issues.add(path, "must start with /");
    }
    p.to_string()
}

/// "32MiB", "512KB", "1048576" -> bytes.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}
