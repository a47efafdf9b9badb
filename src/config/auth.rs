//! The `auth` section: client keys, their models and rate limits.

use super::file::AuthFile;
use super::issues::Issues;
use super::model::*;
use crate::secret::Secret;
use std::collections::{BTreeMap, HashSet};

/// The client keys (`None`: authentication off).
pub(super) fn auth(
    issues: &mut Issues,
    file: Option<AuthFile>,
    models: &BTreeMap<String, Vec<TargetConfig>>,
) -> Option<Vec<ClientKeyConfig>> {
    file.map(|a| {
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        let mut out = Vec::new();
        for (i, k) in a.api_keys.into_iter().enumerate() {
            let kp = format!("auth.api_keys[{i}]");
            if k.name.is_empty() {
                issues.add(format!("{kp}.name"), "must not be empty");
            }
            if !names.insert(k.name.clone()) {
                issues.add(
                    format!("{kp}.name"),
                    format!("`{}` is used by another key", k.name),
                );
            }
            if k.key.len() < 8 {
                issues.add(format!("{kp}.key"), "must be at least 8 characters");
            }
            if !keys.insert(k.key.clone()) {
                issues.add(format!("{kp}.key"), "is the same as another key's");
            }
            if let Some(list) = &k.models {
                for (j, m) in list.iter().enumerate() {
                    if !models.contains_key(m) {
                        issues.add(
                            format!("{kp}.models[{j}]"),
                            format!("`{m}` is not defined under models"),
                        );
                    }
                }
            }
            let rpm = k.rate_limit.as_ref().and_then(|r| r.rpm);
            if rpm == Some(0) {
                issues.add(format!("{kp}.rate_limit.rpm"), "must be at least 1");
            }
            let tpm = k.rate_limit.as_ref().and_then(|r| r.tpm);
            if tpm == Some(0) {
                issues.add(format!("{kp}.rate_limit.tpm"), "must be at least 1");
            }
            out.push(ClientKeyConfig {
                name: k.name,
                key: Secret::new(k.key),
                models: k.models,
                rpm,
                tpm,
            });
        }
        if out.is_empty() {
            issues.add(
                "auth.api_keys",
                "is empty; remove `auth` to disable client authentication",
            );
        }
        out
    })
}
