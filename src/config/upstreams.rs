//! The `upstreams` section.

use super::file::UpstreamFile;
use super::issues::Issues;
use super::model::*;
use super::values::{duration, health_path, statuses};
use crate::secret::Secret;
use http::{HeaderName, HeaderValue, Uri};
use std::collections::BTreeMap;
use std::time::Duration;

/// The upstreams, sorted by name (so indices are stable for a given file),
/// and each name's index.
pub(super) fn upstreams(
    issues: &mut Issues,
    file: BTreeMap<String, UpstreamFile>,
    default_on_status: &[u16],
    global_health_path: &str,
) -> (Vec<UpstreamConfig>, BTreeMap<String, usize>) {
    let mut upstreams = Vec::with_capacity(file.len());
    let mut index_of = BTreeMap::new();
    if file.is_empty() {
        issues.add("upstreams", "at least one upstream is required");
    }
    for (name, u) in file {
        let p = format!("upstreams.{name}");
        let parsed = parse_base_url(issues, &format!("{p}.base_url"), &u.base_url);
        let format = match u.format.as_deref().unwrap_or("openai") {
            "openai" => Format::OpenAi,
            "anthropic" => Format::Anthropic,
            "gemini" => Format::Gemini,
            other => {
                issues.add(
                    format!("{p}.format"),
                    format!("`{other}` is not one of openai, anthropic, gemini"),
                );
                Format::OpenAi
            }
        };
        let mut headers = Vec::new();
        for (k, v) in &u.headers {
            let hp = format!("{p}.headers.{k}");
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(n), Ok(val)) => {
                    if matches!(
                        n.as_str(),
                        "host" | "content-length" | "transfer-encoding" | "connection"
                    ) {
                        issues.add(hp, "is set by the gateway and cannot be overridden");
                    } else {
                        headers.push((n, val));
                    }
                }
                (Err(_), _) => issues.add(hp, "is not a valid header name"),
                (_, Err(_)) => issues.add(hp, "value has characters not allowed in a header"),
            }
        }
        let (key_header, _) = format.key_header();
        if u.api_key.is_some() && headers.iter().any(|(n, _)| n == key_header) {
            issues.add(
                format!("{p}.headers.{key_header}"),
                format!(
                    "conflicts with api_key, which sets {key_header} for format {}",
                    format.name()
                ),
            );
        }
        if u.default_max_tokens == Some(0) {
            issues.add(format!("{p}.default_max_tokens"), "must be at least 1");
        }
        let mut forward_headers = Vec::new();
        for (i, n) in u.forward_headers.iter().enumerate() {
            let fp = format!("{p}.forward_headers[{i}]");
            match HeaderName::from_bytes(n.as_bytes()) {
                Ok(h) if crate::headers::is_guarded(h.as_str().as_bytes()) => {
                    forward_headers.push(h)
                }
                Ok(_) => issues.add(
                    fp,
                    format!(
                        "`{n}` is not a guarded header (client credentials, OpenAI-Organization, \
                         OpenAI-Project, Forwarded, X-Forwarded-*, X-Real-IP); other headers \
                         are forwarded by default or never (hop-by-hop)"
                    ),
                ),
                Err(_) => issues.add(fp, "is not a valid header name"),
            }
        }
        if let Some(k) = &u.api_key {
            if HeaderValue::from_str(&format!("Bearer {k}")).is_err() {
                issues.add(
                    format!("{p}.api_key"),
                    "has characters not allowed in a header",
                );
            }
        }
        let retry_on = match &u.retry_on {
            Some(list) => {
                statuses(issues, &format!("{p}.retry_on"), list);
                list.clone()
            }
            None => default_on_status.to_vec(),
        };
        let enabled = u
            .health_check
            .as_ref()
            .and_then(|h| h.enabled)
            .unwrap_or(true);
        let hpath = match u.health_check.as_ref().and_then(|h| h.path.as_deref()) {
            Some(hp) => health_path(issues, &format!("{p}.health_check.path"), hp),
            None => global_health_path.to_string(),
        };
        if let Some(ca) = &u.ca_file {
            if !std::path::Path::new(ca).is_file() {
                issues.add(
                    format!("{p}.ca_file"),
                    format!("`{ca}` is not a readable file"),
                );
            }
        }
        let (tls, host, port, base_path) =
            parsed.unwrap_or((false, String::new(), 0, String::new()));
        index_of.insert(name.clone(), upstreams.len());
        upstreams.push(UpstreamConfig {
            connect_timeout: duration(
                issues,
                &format!("{p}.connect_timeout"),
                u.connect_timeout.as_ref(),
                Duration::from_secs(3),
            ),
            response_timeout: duration(
                issues,
                &format!("{p}.response_timeout"),
                u.response_timeout.as_ref(),
                Duration::from_secs(300),
            ),
            first_token_timeout: duration(
                issues,
                &format!("{p}.first_token_timeout"),
                u.first_token_timeout.as_ref(),
                Duration::from_secs(60),
            ),
            idle_timeout: duration(
                issues,
                &format!("{p}.idle_timeout"),
                u.idle_timeout.as_ref(),
                Duration::from_secs(60),
            ),
            name,
            enabled: u.enabled.unwrap_or(true),
            retries: u.retries.unwrap_or(0),
            tls,
            host,
            port,
            base_path,
            api_key: u.api_key.map(Secret::new),
            format,
            default_max_tokens: u.default_max_tokens.unwrap_or(4096),
            headers,
            forward_headers,
            retry_on,
            health_path: enabled.then_some(hpath),
            ca_file: u.ca_file,
            stream_usage: u.stream_usage.unwrap_or(true),
        });
    }

    (upstreams, index_of)
}

fn parse_base_url(
    issues: &mut Issues,
    path: &str,
    text: &str,
) -> Option<(bool, String, u16, String)> {
    let uri: Uri = match text.parse() {
        Ok(u) => u,
        Err(_) => {
            issues.add(path, format!("`{text}` is not a URL"));
            return None;
        }
    };
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            issues.add(path, "must start with http:// or https://");
            return None;
        }
    };
    let Some(authority) = uri.authority() else {
        issues.add(path, "has no host");
        return None;
    };
    if authority.as_str().contains('@') {
        issues.add(path, "must not contain credentials; use api_key");
        return None;
    }
    if uri.query().is_some() {
        issues.add(path, "must not contain a query string");
        return None;
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        issues.add(path, "has no host");
        return None;
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let base_path = uri.path().trim_end_matches('/').to_string();
    Some((tls, host, port, base_path))
}
