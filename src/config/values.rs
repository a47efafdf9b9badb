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
