//! The on-disk format: serde types that mirror design.md section 2 one to one.
//! Nothing here is used by the proxy directly; `validate.rs` turns it into the
//! checked model in `model.rs`, so the file format can change without touching
//! the request path.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub listen: Option<OneOrMany>,
    pub admin: Option<AdminFile>,
    pub auth: Option<AuthFile>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamFile>,
    #[serde(default)]
    pub models: BTreeMap<String, Vec<TargetFile>>,
    pub retry: Option<RetryFile>,
    pub health_check: Option<HealthCheckFile>,
    pub limits: Option<LimitsFile>,
    pub state: Option<StateFile>,
    pub usage: Option<UsageFile>,
    pub server: Option<ServerFile>,
    pub log: Option<LogFile>,
    pub tls: Option<TlsFile>,
    /// Plain nginx-style routes (design.md section 6).
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    pub sticky: Option<StickyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyFile {
    pub header: Option<String>,
    #[serde(default)]
    pub by_key: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub listen: String,
    pub api_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub api_keys: Vec<ApiKeyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub name: String,
    pub key: String,
    pub models: Option<Vec<String>>,
    pub rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub base_url: String,
    pub api_key: Option<String>,
    pub format: Option<String>,
    pub default_max_tokens: Option<u32>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub forward_headers: Vec<String>,
    pub enabled: Option<bool>,
    pub retries: Option<u32>,
    pub stream_usage: Option<bool>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub first_token_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub retry_on: Option<Vec<u16>>,
    pub health_check: Option<UpstreamHealthFile>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamHealthFile {
    pub path: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub upstream: String,
    pub model: Option<String>,
    pub priority: Option<u32>,
    pub weight: Option<u32>,
    pub quota: Option<QuotaFile>,
    pub params: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaFile {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub reset: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub on_status: Option<Vec<u16>>,
    pub max_attempts: Option<u32>,
    pub total_timeout: Option<String>,
    pub backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub path: Option<String>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
    pub cooldown: Option<String>,
    pub max_cooldown: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body_bytes: Option<ByteSize>,
    pub max_header_bytes: Option<ByteSize>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub body_total_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub backend: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub on_error: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub threads: Option<usize>,
    pub work_stealing: Option<bool>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub h2c: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageFile {
    pub log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub level: Option<String>,
    pub access: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub listen: Option<OneOrMany>,
    #[serde(default)]
    pub certs: Vec<CertFile>,
    pub h2: Option<bool>,
    pub redirect_http: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub backends: Vec<BackendFile>,
    pub ai: Option<bool>,
    pub tls: Option<bool>,
    pub ca_file: Option<String>,
    pub sni: Option<String>,
    pub health_check: Option<RouteHealthFile>,
    pub strip_prefix: Option<bool>,
    pub preserve_host: Option<bool>,
    pub timeouts: Option<RouteTimeoutsFile>,
    pub max_body_bytes: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    pub addr: String,
    pub weight: Option<u32>,
    pub priority: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteHealthFile {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTimeoutsFile {
    pub connect: Option<String>,
    pub read: Option<String>,
    pub write: Option<String>,
}
