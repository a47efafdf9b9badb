//! The validated configuration the gateway runs on. Every value here has been
//! checked and defaulted; durations are `Duration`, weights non-zero, secrets wrapped.

pub use super::edge::{BackendConfig, HostMatch, RouteConfig, RouteHealth, TlsConfig};
pub use super::tls::LoadedCert;
use crate::secret::Secret;
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<String>,
    /// TLS termination for clients (`None`: cleartext listeners only).
    pub tls: Option<TlsConfig>,
    /// Plain routes and AI hosts, in file order (matching ranks them).
    pub routes: Vec<RouteConfig>,
    pub admin: Option<AdminConfig>,
    /// `None`: no client authentication (a warning is logged at start).
    pub auth: Option<Vec<ClientKeyConfig>>,
    /// Sorted by name; targets refer to upstreams by index into this list.
    pub upstreams: Vec<UpstreamConfig>,
    pub models: BTreeMap<String, Vec<TargetConfig>>,
    pub retry: RetryConfig,
    /// Session stickiness; `None`: every pick is weighted random.
    pub sticky: Option<StickyConfig>,
    pub health_check: HealthCheckConfig,
    pub limits: LimitsConfig,
    /// `state: {backend: local, path}`: where limit and quota state is saved
    /// (`None`: kept in memory only).
    pub state_path: Option<std::path::PathBuf>,
    /// `state: {backend: redis, ...}`: limits, quotas and usage shared with
    /// every instance using the same Redis.
    pub redis: Option<RedisConfig>,
    /// `usage.log`: one JSON line per answered request to this file (`None`: off).
    pub usage_log: Option<String>,
    pub server: ServerSettings,
    pub log_level: Option<String>,
    /// Access log: `stdout` (default), `off`, or a file path.
    pub access_log: AccessLogTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// May carry a password: shown only as `redis://host:port/db`.
    pub url: Secret,
    pub prefix: String,
    pub on_error: OnError,
    /// Bound on one Redis call (connect or answer).
    pub timeout: Duration,
}

/// Where the access log goes (`log.access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(String),
}

/// What a request meets while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Serve, counting limits in this process alone.
    Allow,
    /// 503 for requests a limit applies to.
    Deny,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: String,
    pub api_key: Secret,
}

#[derive(Debug, Clone)]
pub struct ClientKeyConfig {
    pub name: String,
    pub key: Secret,
    /// `None`: every logical model is allowed.
    pub models: Option<Vec<String>>,
    /// Requests per minute; `None`: unlimited.
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute; `None`: unlimited.
    pub tpm: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
            Format::Gemini => "gemini",
        }
    }

    /// The provider's overload answers, failed over whatever `retry_on`
    /// lists (design.md section 9): Anthropic's 529, Gemini's
    /// RESOURCE_EXHAUSTED (429) and UNAVAILABLE (503).
    pub fn always_retries(self, status: u16) -> bool {
        match self {
            Format::OpenAi => false,
            Format::Anthropic => status == 529,
            Format::Gemini => status == 429 || status == 503,
        }
    }

    /// The header that carries the upstream's key, and how its value is made.
    pub fn key_header(self) -> (&'static str, &'static str) {
        match self {
            Format::OpenAi => ("authorization", "Bearer "),
            Format::Anthropic => ("x-api-key", ""),
            Format::Gemini => ("x-goog-api-key", ""),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// `false`: kept in the config, never tried nor health-checked.
    pub enabled: bool,
    /// Attempts again on this same upstream (after a jittered pause) before
    /// the next target.
    pub retries: u32,
    /// `stream_usage`: llmgate may add `stream_options.include_usage` to
    /// streams sent here (false for servers that refuse unknown fields).
    pub stream_usage: bool,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path of `base_url` without a trailing slash ("" or "/v1").
    pub base_path: String,
    pub api_key: Option<Secret>,
    pub format: Format,
    /// `max_tokens` sent to an Anthropic upstream when the request has none
    /// (Anthropic requires it).
    pub default_max_tokens: u32,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Guarded client headers (credentials, billing identity, forwarding
    /// claims) this upstream receives from the client; lower case.
    pub forward_headers: Vec<HeaderName>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
    pub retry_on: Vec<u16>,
    /// `None`: this upstream is not actively health-checked.
    pub health_path: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub upstream: usize,
    /// Model name sent to the upstream.
    pub model: String,
    pub priority: u32,
    pub weight: u32,
    /// Request parameter overrides, applied as splices (`crate::params`).
    pub params: Vec<(String, ParamRule)>,
    pub quota: Option<QuotaConfig>,
}

/// A quota as configured.
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    /// `None`: never renewed (a budget for as long as the state lives).
    pub reset: Option<croner::Cron>,
}

impl PartialEq for QuotaConfig {
    fn eq(&self, o: &Self) -> bool {
        self.requests == o.requests
            && self.tokens == o.tokens
            && self.reset.as_ref().map(|c| c.pattern.to_string())
                == o.reset.as_ref().map(|c| c.pattern.to_string())
    }
}

/// What a target does to one top-level request parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamRule {
    /// Replaced by this value, or added when absent.
    Set(serde_json::Value),
    /// Lowered to this number when above it or `null`, added when absent.
    Max(serde_json::Number),
    /// `stream: false`: the upstream gets a plain request; a streaming
    /// client gets the answer as SSE.
    NoStream,
}

/// Where a request's session key comes from: a header (lower case), else,
/// with `by_key`, the client key's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyConfig {
    pub header: Option<String>,
    pub by_key: bool,
}

#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub on_status: Vec<u16>,
    /// `None`: every target of the model once.
    pub max_attempts: Option<u32>,
    pub total_timeout: Duration,
    /// Pause before retrying on the same priority tier (zero: none); the
    /// actual pause is jittered between half and all of it.
    pub backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub path: String,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    /// Circuit breaker: first open period, doubled per failed trial up to `max_cooldown`.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    /// Request line plus headers; larger requests get 431.
    pub max_header_bytes: usize,
    /// From a request's first byte to the end of its header; a client slower
    /// than this (slowloris) is cut.
    pub header_timeout: Duration,
    /// Longest wait for each piece of a request body.
    pub body_timeout: Duration,
    /// The whole request body must have arrived this long after the request
    /// began, however steadily it trickles in.
    pub body_total_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    /// One work-stealing tokio runtime (`true`) or one single-threaded runtime
    /// per thread, each connection staying on one (`false`, like nginx workers).
    pub work_stealing: bool,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub upstream_keepalive_pool_size: usize,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    /// Cleartext listeners accept HTTP/2 with prior knowledge.
    pub h2c: bool,
}

pub const DEFAULT_RETRY_ON: [u16; 7] = [429, 500, 502, 503, 504, 401, 403];
