//! The `state` section: where limit, quota and usage state lives.

use super::file::StateFile;
use super::issues::Issues;
use super::model::{OnError, RedisConfig};
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// `(state.path, redis)`: at most one of them is set.
pub(super) fn state(
    issues: &mut Issues,
    state: Option<StateFile>,
) -> (Option<PathBuf>, Option<RedisConfig>) {
    let Some(state) = state else {
        return (None, None);
    };
    match state.backend.as_deref().unwrap_or("local") {
        "local" => {
            for (key, set) in [
                ("url", state.url.is_some()),
                ("prefix", state.prefix.is_some()),
                ("on_error", state.on_error.is_some()),
                ("timeout", state.timeout.is_some()),
            ] {
                if set {
                    issues.add(format!("state.{key}"), "applies only to backend: redis");
                }
            }
            let path = state.path.map(|p| {
                if !std::path::Path::new(&p).is_dir() {
                    issues.add("state.path", format!("`{p}` is not a directory"));
                }
                PathBuf::from(p)
            });
            (path, None)
        }
        "redis" => {
            if state.path.is_some() {
                issues.add("state.path", "applies only to backend: local");
            }
            let Some(url) = state.url else {
                issues.add("state.url", "is required with backend: redis");
                return (None, None);
            };
            // The URL may carry a password: no message quotes it.
            if redis::Client::open(url.as_str()).is_err() {
                issues.add(
                    "state.url",
                    "is not a Redis URL (redis://[:password@]host[:port][/db] or rediss://…)",
                );
            }
            let on_error = match state.on_error.as_deref() {
                None | Some("allow") => OnError::Allow,
                Some("deny") => OnError::Deny,
                Some(other) => {
                    issues.add(
                        "state.on_error",
                        format!("`{other}` is not one of allow, deny"),
                    );
                    OnError::Allow
                }
            };
            let timeout = super::values::duration(
                issues,
                "state.timeout",
                state.timeout.as_ref(),
                Duration::from_millis(250),
            );
            let prefix = state.prefix.unwrap_or_else(|| "llmgate:".to_string());
            let redis = RedisConfig {
                url: Secret::new(url),
                prefix,
                on_error,
                timeout,
            };
            (None, Some(redis))
        }
        other => {
            issues.add(
                "state.backend",
                format!("`{other}` is not one of local, redis"),
            );
            (None, None)
        }
    }
}
