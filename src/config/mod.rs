//! Configuration: on-disk format (`file`), environment interpolation (`env`),
//! validation (`validate`) into the model the gateway runs on (`model`).

mod auth;
mod edge;
mod env;
mod file;
mod issues;
mod model;
mod state;
mod targets;
mod tls;
mod upstreams;
mod validate;
mod values;

pub use env::interpolate;
pub use issues::{Problem, Problems, MAX_TARGETS_PER_MODEL};
pub use model::*;
pub use values::parse_byte_size;

use std::fmt;
use std::path::Path;

/// Everything wrong with one config file, each problem on its own line.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub problems: Problems,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} problem(s)", self.file, self.problems.0.len())?;
        for p in &self.problems.0 {
            write!(f, "\n  {}: {p}", self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Read, interpolate, parse and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let err = |problems| ConfigError {
        file: file.clone(),
        problems,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(Problems::whole(format!("cannot read: {e}"))))?;
    parse_str(&text, |k| std::env::var(k).ok()).map_err(err)
}

/// Parse config text with the given environment lookup (tests pass their own).
pub fn parse_str(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Problems> {
    let text = interpolate(text, lookup).map_err(|lines| {
        Problems(
            lines
                .into_iter()
                .map(|message| Problem {
                    path: None,
                    message,
                })
                .collect(),
        )
    })?;
    let parsed: file::FileConfig =
        serde_yaml::from_str(&text).map_err(|e| Problems::whole(redact_serde(&e.to_string())))?;
    validate::validate(parsed)
}

/// serde_yaml quotes offending scalars in type errors ("invalid type: string \"sk-…\"");
/// after interpolation that scalar may be a secret, so quoted text is masked.
fn redact_serde(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_quote = false;
    for c in msg.chars() {
        if c == '"' {
            in_quote = !in_quote;
            out.push(c);
            if in_quote {
                out.push('…');
            }
        } else if !in_quote {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen: ["127.0.0.1:8080"]
auth:
  api_keys:
    - {name: app, key: "${APP_KEY}", models: [chat]}
upstreams:
  openai: {base_url: "https://api.openai.com/v1", api_key: "${OPENAI_KEY}"}
  local: {base_url: "http://127.0.0.1:9000", retry_on: [500]}
models:
  chat:
    - {upstream: openai, model: gpt-4o-mini, priority: 1, weight: 3}
    - {upstream: local, model: qwen, priority: 2}
limits: {max_body_bytes: 1MiB}
"#;

    fn env(k: &str) -> Option<String> {
        match k {
            "APP_KEY" => Some("sk-app-0123456789".into()),
            "OPENAI_KEY" => Some("sk-openai-secret".into()),
            _ => None,
        }
    }

    #[test]
    fn parses_good_config_with_defaults() {
        let c = parse_str(GOOD, env).unwrap();
        assert_eq!(c.upstreams.len(), 2);
        let local = &c.upstreams[0];
        assert_eq!(
            (local.name.as_str(), local.port, local.base_path.as_str()),
            ("local", 9000, "")
        );
        assert_eq!(local.retry_on, vec![500]);
        let openai = &c.upstreams[1];
        assert!(openai.tls && openai.port == 443 && openai.base_path == "/v1");
        assert_eq!(openai.retry_on, DEFAULT_RETRY_ON.to_vec());
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
        assert_eq!(c.models["chat"][0].weight, 3);
        assert_eq!(c.retry.total_timeout, std::time::Duration::from_secs(600));
        assert!(c.retry.backoff.is_zero());
        assert_eq!(c.limits.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.limits.body_timeout, std::time::Duration::from_secs(30));
    }

    #[test]
    fn backoff_and_client_timeouts() {
        let with = |extra: &str| parse_str(&format!("{GOOD}{extra}\n"), env);
        let c = with("retry: {backoff: 0}").unwrap();
        assert!(c.retry.backoff.is_zero());
        let c = with("retry: {backoff: 50ms}").unwrap();
        assert_eq!(c.retry.backoff, std::time::Duration::from_millis(50));
        let errs = with("retry: {backoff: 1m}").unwrap_err();
        assert!(
            errs.join("").contains("retry.backoff: must be at most 10s"),
            "{errs:?}"
        );
        let errs = with("retry: {backoff: soon}").unwrap_err();
        assert!(errs.join("").contains("retry.backoff"), "{errs:?}");
        let good = GOOD.replace(
            "limits: {max_body_bytes: 1MiB}",
            "limits: {header_timeout: 2s, body_timeout: 5s}",
        );
        let c = parse_str(&good, env).unwrap();
        assert_eq!(c.limits.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.limits.body_timeout, std::time::Duration::from_secs(5));
        let bad = GOOD.replace(
            "limits: {max_body_bytes: 1MiB}",
            "limits: {header_timeout: 0s}",
        );
        let errs = parse_str(&bad, env).unwrap_err();
        assert!(errs.join("").contains("limits.header_timeout"), "{errs:?}");
    }

    #[test]
    fn lists_every_problem_with_key_path_and_no_secret() {
        let bad = r#"
upstreams:
  a: {base_url: "ftp://x", api_key: "sk-openai-secret", connect_timeout: soon}
models:
  chat:
    - {upstream: nope}
    - {upstream: a, weight: 0}
  empty: []
auth:
  api_keys:
    - {name: x, key: "sk-openai-secret", models: [ghost]}
    - {name: x, key: "sk-openai-secret"}
"#;
        let errs = parse_str(bad, env).unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "upstreams.a.base_url",
            "upstreams.a.connect_timeout",
            "models.chat[0].upstream: `nope`",
            "models.chat[1].weight",
            "models.empty: has no targets",
            "auth.api_keys[0].models[0]",
            "auth.api_keys[1].name",
            "auth.api_keys[1].key: is the same",
        ] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
        assert!(!all.contains("sk-openai-secret"));
    }

    #[test]
    fn unknown_keys_are_errors_without_values() {
        let errs = parse_str(
            "upstreams:\n  a: {base_url: 'http://x', api_kye: sk-zzz}\nmodels: {}\n",
            env,
        )
        .unwrap_err();
        assert!(errs.join("").contains("api_kye"), "{errs:?}");
        let errs = parse_str(
            "upstreams:\n  a: {base_url: 'http://x', connect_timeout: [\"sk-zzz\"]}\n",
            env,
        )
        .unwrap_err();
        assert!(!errs.join("").contains("sk-zzz"), "{errs:?}");
    }

    #[test]
    fn target_params() {
        let with = |params: &str| {
            let cfg = GOOD.replace(
                "model: qwen, priority: 2}",
                &format!("model: qwen, priority: 2, params: {params}}}"),
            );
            parse_str(&cfg, env)
        };
        let c = with("{temperature: 0.2, max_tokens: {max: 512}, stream: false}").unwrap();
        let p = &c.models["chat"][1].params;
        assert!(p.contains(&("stream".into(), ParamRule::NoStream)));
        assert!(p.contains(&("max_tokens".into(), ParamRule::Max(512.into()))));
        assert!(p.contains(&("temperature".into(), ParamRule::Set(0.2.into()))));
        for (bad, needle) in [
            ("{model: x}", "models.chat[1].params.model"),
            (
                "{stream: true}",
                "models.chat[1].params.stream: only `false`",
            ),
            (
                "{stream: false, stream_options: {}}",
                "params.stream_options: cannot",
            ),
            (
                "{max_tokens: {max: lots}}",
                "params.max_tokens.max: must be a number",
            ),
        ] {
            let errs = with(bad).unwrap_err().join("\n");
            assert!(errs.contains(needle), "{bad}: {errs}");
        }
    }

    #[test]
    fn target_quota() {
        let with = |quota: &str| {
            let cfg = GOOD.replace(
                "model: qwen, priority: 2}",
                &format!("model: qwen, priority: 2, quota: {quota}}}"),
            );
            parse_str(&cfg, env)
        };
        let c = with("{requests: 10, tokens: 5000, reset: \"0 0 * * *\"}").unwrap();
        let q = c.models["chat"][1].quota.as_ref().unwrap();
        assert_eq!((q.requests, q.tokens), (Some(10), Some(5000)));
        assert!(q.reset.is_some());
        for (bad, needle) in [
            ("{reset: \"0 0 * * *\"}", "models.chat[1].quota: needs"),
            (
                "{requests: 0}",
                "models.chat[1].quota.requests: must be at least 1",
            ),
            (
                "{requests: 1, reset: \"every day\"}",
                "models.chat[1].quota.reset: `every day`",
            ),
        ] {
            let errs = with(bad).unwrap_err().join("\n");
            assert!(errs.contains(needle), "{bad}: {errs}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("32MiB"), Some(32 << 20));
        assert_eq!(parse_byte_size("512KB"), Some(512_000));
        assert_eq!(parse_byte_size("100"), Some(100));
        assert_eq!(parse_byte_size("lots"), None);
    }
}
