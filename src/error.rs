//! Client-facing errors (design.md section 4): each knows its status, OpenAI
//! `type`/`code`, and renders `{"error":{"message","type","code"}}`.

use bytes::Bytes;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    BadRequest(String),
    MethodNotAllowed,
    NotFound,
    MissingKey,
    InvalidKey,
    ModelNotAllowed(String),
    UnknownModel(String),
    BodyTooLarge(usize),
    HeadersTooLarge(usize),
    /// A key's `rpm` (`tokens: false`) or `tpm` refused the request.
    RateLimited {
        retry_after: Duration,
        tokens: bool,
    },
    /// Every target of the model has used up its `quota`; `retry_after`:
    /// the soonest renewal (`None`: never renewed).
    QuotaExceeded {
        retry_after: Option<Duration>,
    },
    /// Every attempt failed; `attempts` is the `upstream: reason` list.
    Upstream {
        status: u16,
        attempts: String,
        retry_after: Option<Duration>,
    },
    /// The shared limit state (Redis) cannot be reached and
    /// `state.on_error` is `deny`.
    StateUnavailable,
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::MethodNotAllowed => 405,
            Self::NotFound => 404,
            Self::MissingKey | Self::InvalidKey => 401,
            Self::ModelNotAllowed(_) => 403,
            Self::UnknownModel(_) => 404,
            Self::BodyTooLarge(_) => 413,
            Self::HeadersTooLarge(_) => 431,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => 429,
            Self::Upstream { status, .. } => *status,
            Self::StateUnavailable => 503,
        }
    }

    /// OpenAI `type` and `code`.
    pub fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("invalid_request_error", "invalid_request"),
            Self::MethodNotAllowed => ("invalid_request_error", "method_not_allowed"),
            Self::NotFound => ("invalid_request_error", "not_found"),
            Self::MissingKey => ("authentication_error", "missing_api_key"),
            Self::InvalidKey => ("authentication_error", "invalid_api_key"),
            Self::ModelNotAllowed(_) => ("permission_error", "model_not_allowed"),
            Self::UnknownModel(_) => ("invalid_request_error", "model_not_found"),
            Self::BodyTooLarge(_) => ("invalid_request_error", "request_too_large"),
            Self::HeadersTooLarge(_) => {
                ("invalid_request_error", "request_header_fields_too_large")
            }
            Self::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            Self::QuotaExceeded { .. } => ("rate_limit_error", "quota_exceeded"),
            Self::Upstream { status: 504, .. } => ("upstream_error", "upstream_timeout"),
            Self::Upstream { status: 429, .. } => ("rate_limit_error", "upstream_rate_limited"),
            Self::Upstream { .. } => ("upstream_error", "upstream_error"),
            Self::StateUnavailable => ("server_error", "state_unavailable"),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::MethodNotAllowed => "method not allowed for this path".into(),
            Self::NotFound => "no such endpoint".into(),
            Self::MissingKey => "missing API key: send Authorization: Bearer <key>".into(),
            Self::InvalidKey => "invalid API key".into(),
            Self::ModelNotAllowed(m) => format!("this API key may not use model `{m}`"),
            Self::UnknownModel(m) => format!("the model `{m}` does not exist"),
            Self::BodyTooLarge(max) => format!("request body exceeds the limit of {max} bytes"),
            Self::HeadersTooLarge(max) => {
                format!("request headers exceed the limit of {max} bytes")
            }
            Self::RateLimited { tokens: false, .. } => {
                "rate limit exceeded for this API key: requests per minute (rpm)".into()
            }
            Self::RateLimited { tokens: true, .. } => {
                "rate limit exceeded for this API key: tokens per minute (tpm)".into()
            }
            Self::QuotaExceeded { .. } => {
                "every target of this model has used up its quota until its next reset".into()
            }
            Self::Upstream {
                attempts, status, ..
            } => {
                let what = match status {
                    504 => "timed out",
                    429 => "are rate limited",
                    _ => "failed",
                };
                format!("all upstreams {what}: {attempts}")
            }
            Self::StateUnavailable => {
                "the shared rate-limit state is unreachable; try again shortly".into()
            }
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::StateUnavailable => Some(Duration::from_secs(1)),
            Self::Upstream { retry_after, .. } | Self::QuotaExceeded { retry_after } => {
                *retry_after
            }
            _ => None,
        }
    }

    pub fn body(&self) -> Bytes {
        let (kind, code) = self.kind();
        error_body(&self.message(), kind, code)
    }
}

/// `{"error":{"message":..,"type":..,"code":..}}`, also used for in-band SSE errors.
pub fn error_body(message: &str, kind: &str, code: &str) -> Bytes {
    let v = serde_json::json!({"error": {"message": message, "type": kind, "code": code}});
    Bytes::from(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_shape() {
        let e = GatewayError::UnknownModel("x\"y".into());
        assert_eq!(e.status(), 404);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "the model `x\"y` does not exist");
    }

    #[test]
    fn upstream_kinds() {
        let e = GatewayError::Upstream {
            status: 504,
            attempts: "a: timeout".into(),
            retry_after: None,
        };
        assert_eq!(e.kind(), ("upstream_error", "upstream_timeout"));
        assert!(e.message().contains("a: timeout"));
    }
}
