//! The `models` section: each logical model's targets, their upstream,
//! priority, weight and request parameter overrides.

use super::file::{QuotaFile, TargetFile};
use super::issues::{Issues, MAX_TARGETS_PER_MODEL};
use super::model::{Format, ParamRule, QuotaConfig, TargetConfig};
use std::collections::BTreeMap;

pub(super) fn models(
    issues: &mut Issues,
    file: BTreeMap<String, Vec<TargetFile>>,
    index_of: &BTreeMap<String, usize>,
    formats: &[Format],
) -> BTreeMap<String, Vec<TargetConfig>> {
    let mut models = BTreeMap::new();
    if file.is_empty() {
        issues.add("models", "at least one logical model is required");
    }
    for (name, targets) in file {
        let p = format!("models.{name}");
        if targets.is_empty() {
            issues.add(&p, "has no targets");
        }
        if targets.len() > MAX_TARGETS_PER_MODEL {
            issues.add(
                &p,
                format!(
                    "has {} targets; at most {MAX_TARGETS_PER_MODEL} are supported",
                    targets.len()
                ),
            );
        }
        let mut out = Vec::with_capacity(targets.len());
        for (i, t) in targets.into_iter().enumerate() {
            let tp = format!("{p}[{i}]");
            let Some(&up) = index_of.get(&t.upstream) else {
                issues.add(
                    format!("{tp}.upstream"),
                    format!("`{}` is not defined under upstreams", t.upstream),
                );
                continue;
            };
            let weight = t.weight.unwrap_or(1);
            if weight == 0 {
                issues.add(
                    format!("{tp}.weight"),
                    "must be at least 1 (remove the target to disable it)",
                );
            }
            let quota = t.quota.map(|q| quota(issues, &tp, q));
            let model = t.model.unwrap_or_else(|| name.clone());
            if model.is_empty() {
                issues.add(format!("{tp}.model"), "must not be empty");
            }
            let params = params(issues, &tp, t.params.unwrap_or_default());
            let format = formats.get(up).copied().unwrap_or(Format::OpenAi);
            if format != Format::OpenAi && params.iter().any(|(_, r)| *r == ParamRule::NoStream) {
                issues.add(
                    format!("{tp}.params.stream"),
                    format!(
                        "`stream: false` is supported only for format openai upstreams (`{}` is {})",
                        t.upstream,
                        format.name()
                    ),
                );
            }
            out.push(TargetConfig {
                upstream: up,
                model,
                priority: t.priority.unwrap_or(1),
                weight: weight.max(1),
                params,
                quota,
            });
        }
        models.insert(name, out);
    }
    models
}

/// `quota`: at least one budget; `reset` a cron expression (UTC).
fn quota(issues: &mut Issues, tp: &str, q: QuotaFile) -> QuotaConfig {
    if q.requests.is_none() && q.tokens.is_none() {
        issues.add(format!("{tp}.quota"), "needs `requests`, `tokens` or both");
    }
    for (name, v) in [("requests", q.requests), ("tokens", q.tokens)] {
        if v == Some(0) {
            issues.add(format!("{tp}.quota.{name}"), "must be at least 1");
        }
    }
    let reset = q.reset.and_then(|text| match text.parse::<croner::Cron>() {
        Ok(c) => Some(c),
        Err(e) => {
            issues.add(
                format!("{tp}.quota.reset"),
                format!("`{text}` is not a cron expression ({e})"),
            );
            None
        }
    });
    QuotaConfig {
        requests: q.requests,
        tokens: q.tokens,
        reset,
    }
}

/// `params`: each key forced to its value, capped (`{max: N}`), or, for
/// `stream`, turned off.
fn params(
    issues: &mut Issues,
    tp: &str,
    file: BTreeMap<String, serde_json::Value>,
) -> Vec<(String, ParamRule)> {
    use serde_json::Value;
    let no_stream = file.get("stream") == Some(&Value::Bool(false));
    let mut out = Vec::with_capacity(file.len());
    for (key, value) in file {
        let kp = format!("{tp}.params.{key}");
        let rule = match (key.as_str(), value) {
            ("", _) => {
                issues.add(format!("{tp}.params"), "has an empty key");
                continue;
            }
            ("model", _) => {
                issues.add(
                    kp,
                    "set the upstream's model name with the target's `model`",
                );
                continue;
            }
            ("stream", Value::Bool(false)) => ParamRule::NoStream,
            ("stream", _) => {
                issues.add(
                    kp,
                    "only `false` can be forced (for an upstream that cannot stream; \
                     streaming clients then get its answer as one SSE stream)",
                );
                continue;
            }
            ("stream_options", _) if no_stream => {
                issues.add(kp, "cannot be set together with `stream: false`");
                continue;
            }
            (_, Value::Object(o)) if o.len() == 1 && o.contains_key("max") => match &o["max"] {
                Value::Number(n) => ParamRule::Max(n.clone()),
                _ => {
                    issues.add(format!("{kp}.max"), "must be a number");
                    continue;
                }
            },
            (_, v) => ParamRule::Set(v),
        };
        out.push((key, rule));
    }
    out
}
