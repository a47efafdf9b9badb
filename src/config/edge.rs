//! The edge sections (design.md section 6): `tls` (termination for clients)
//! and `routes` (plain reverse-proxy routes, and hosts that are the AI
//! gateway), checked into the model the edge proxy runs on.

use super::file::{ByteSize, OneOrMany, RouteFile, TlsFile};
use super::issues::Issues;
use super::tls::LoadedCert;
use super::values::{duration, health_path, parse_byte_size};
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub listen: Vec<String>,
    /// The first is the default (a client without SNI, or with an unknown name).
    pub certs: Vec<LoadedCert>,
    /// Offer h2 by ALPN.
    pub h2: bool,
    /// Cleartext listeners answer 308 to https (except `/health`).
    pub redirect_http: bool,
}

/// Which `Host` a route is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    Any,
    /// Lowercase, without a port.
    Exact(String),
    /// `*.apps.test` kept as `.apps.test`: names ending in it, not `apps.test`.
    Suffix(String),
}

impl HostMatch {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    /// Exact hosts are tried before wildcards, wildcards before host-less.
    pub fn rank(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 0,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// As written (`10.0.0.5:8080`, `app.internal:80`).
    pub addr: String,
    /// Resolved once at load (Pingora does not refresh DNS).
    pub socket: SocketAddr,
    pub weight: u32,
    /// 1 is used first; a higher tier only while every lower one is down.
    pub priority: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteHealth {
    /// `Some`: an HTTP GET expecting 2xx; `None`: a TCP connect.
    pub path: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub host: HostMatch,
    pub path_prefix: String,
    /// Requests on this route are the AI gateway's.
    pub ai: bool,
    pub backends: Vec<BackendConfig>,
    pub tls: bool,
    pub ca_file: Option<String>,
    /// The name sent and verified for TLS backends.
    pub sni: String,
    /// `None`: no active check (`health_check: {enabled: false}`).
    pub health_check: Option<RouteHealth>,
    pub strip_prefix: bool,
    pub preserve_host: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_body_bytes: u64,
}

/// Defaults a route's health check takes from the global `health_check`.
pub(super) struct HealthDefaults {
    /// `health_check.enabled`: a route without its own `health_check` is
    /// checked only when this is on.
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

pub(super) fn tls(
    issues: &mut Issues,
    file: Option<TlsFile>,
    listen: &[String],
) -> Option<TlsConfig> {
    let file = file?;
    let addrs = match file.listen {
        None => vec!["0.0.0.0:8443".to_string()],
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let mut seen = HashSet::new();
    for (i, l) in addrs.iter().enumerate() {
        if l.parse::<SocketAddr>().is_err() {
            issues.add(
                format!("tls.listen[{i}]"),
                format!("`{l}` is not an IP:port address"),
            );
        }
        if !seen.insert(l.as_str()) || listen.contains(l) {
            issues.add(format!("tls.listen[{i}]"), format!("`{l}` is listed twice"));
        }
    }
    if file.certs.is_empty() {
        issues.add("tls.certs", "needs at least one {cert, key}");
    }
    let certs = file
        .certs
        .iter()
        .enumerate()
        .filter_map(|(i, c)| super::tls::load(issues, &format!("tls.certs[{i}]"), &c.cert, &c.key))
        .collect();
    Some(TlsConfig {
        listen: addrs,
        certs,
        h2: file.h2.unwrap_or(true),
        redirect_http: file.redirect_http.unwrap_or(false),
    })
}

pub(super) fn routes(
    issues: &mut Issues,
    files: Vec<RouteFile>,
    health: &HealthDefaults,
) -> Vec<RouteConfig> {
    let mut out = Vec::with_capacity(files.len());
    let mut seen = HashSet::new();
    for (i, f) in files.into_iter().enumerate() {
        let at = format!("routes[{i}]");
        let host = match f.host.as_deref().map(str::trim) {
            None | Some("") | Some("*") => HostMatch::Any,
            Some(h) if h.starts_with("*.") && h.len() > 2 => {
                HostMatch::Suffix(h[1..].to_ascii_lowercase())
            }
            Some(h) if h.contains('*') || h.contains(':') || h.contains('/') => {
                issues.add(
                    format!("{at}.host"),
                    format!("`{h}` is not a host name (use `name`, or `*.suffix` for a wildcard; no port)"),
                );
                HostMatch::Any
            }
            Some(h) => HostMatch::Exact(h.to_ascii_lowercase()),
        };
        let path_prefix = f.path_prefix.unwrap_or_else(|| "/".to_string());
        if !path_prefix.starts_with('/') {
            issues.add(format!("{at}.path_prefix"), "must start with /");
        }
        if !seen.insert((host.clone(), path_prefix.clone())) {
            issues.add(
                at.clone(),
                "another route has the same host and path_prefix",
            );
        }
        let ai = f.ai.unwrap_or(false);
        if ai && !f.backends.is_empty() {
            issues.add(
                format!("{at}.backends"),
                "an `ai: true` route is served by the AI gateway and takes no backends",
            );
        }
        if !ai && f.backends.is_empty() {
            issues.add(
                format!("{at}.backends"),
                "needs at least one backend (or `ai: true`)",
            );
        }
        let mut backends = Vec::with_capacity(f.backends.len());
        for (j, b) in f.backends.iter().enumerate() {
            let bat = format!("{at}.backends[{j}]");
            let socket = match b.addr.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(s)) => s,
                _ => {
                    issues.add(
                        format!("{bat}.addr"),
                        format!(
                            "`{}` is not a reachable host:port (DNS is resolved at load)",
                            b.addr
                        ),
                    );
                    continue;
                }
            };
            let weight = b.weight.unwrap_or(1);
            if weight == 0 {
                issues.add(format!("{bat}.weight"), "must be at least 1");
            }
            let priority = b.priority.unwrap_or(1);
            if priority == 0 {
                issues.add(format!("{bat}.priority"), "must be at least 1");
            }
            backends.push(BackendConfig {
                addr: b.addr.clone(),
                socket,
                weight: weight.max(1),
                priority: priority.max(1),
            });
        }
        let tls = f.tls.unwrap_or(false);
        if !tls && (f.ca_file.is_some() || f.sni.is_some()) {
            issues.add(
                at.clone(),
                "`ca_file` and `sni` apply only with `tls: true`",
            );
        }
        if let Some(ca) = &f.ca_file {
            match std::fs::read(ca) {
                Err(e) => issues.add(format!("{at}.ca_file"), format!("cannot read `{ca}`: {e}")),
                Ok(bytes) => {
                    let parsed = rustls_pemfile::certs(&mut bytes.as_slice())
                        .filter_map(Result::ok)
                        .filter(|der| x509_parser::parse_x509_certificate(der).is_ok())
                        .count();
                    if parsed == 0 {
                        issues.add(
                            format!("{at}.ca_file"),
                            format!("`{ca}` holds no PEM certificate"),
                        );
                    }
                }
            }
        }
        let sni = f.sni.clone().unwrap_or_else(|| {
            backends
                .first()
                .map(|b| host_of(&b.addr).to_string())
                .unwrap_or_default()
        });
        let health_check = match f.health_check {
            Some(h) if h.enabled == Some(false) => None,
            None if !health.enabled => None,
            h => {
                let h = h.as_ref();
                let c = RouteHealth {
                    path: h
                        .and_then(|h| h.path.as_deref())
                        .map(|p| health_path(issues, &format!("{at}.health_check.path"), p)),
                    interval: duration(
                        issues,
                        &format!("{at}.health_check.interval"),
                        h.and_then(|h| h.interval.as_ref()),
                        health.interval,
                    ),
                    timeout: duration(
                        issues,
                        &format!("{at}.health_check.timeout"),
                        h.and_then(|h| h.timeout.as_ref()),
                        health.timeout,
                    ),
                    unhealthy_after: h
                        .and_then(|h| h.unhealthy_after)
                        .unwrap_or(health.unhealthy_after)
                        .max(1),
                    healthy_after: h
                        .and_then(|h| h.healthy_after)
                        .unwrap_or(health.healthy_after)
                        .max(1),
                };
                (!ai).then_some(c)
            }
        };
        let t = f.timeouts.as_ref();
        let timeout = |issues: &mut Issues, key: &str, v: Option<&String>, d: u64| {
            duration(
                issues,
                &format!("{at}.timeouts.{key}"),
                v,
                Duration::from_secs(d),
            )
        };
        let connect_timeout = timeout(issues, "connect", t.and_then(|t| t.connect.as_ref()), 3);
        let read_timeout = timeout(issues, "read", t.and_then(|t| t.read.as_ref()), 60);
        let write_timeout = timeout(issues, "write", t.and_then(|t| t.write.as_ref()), 60);
        let max_body_bytes = match f.max_body_bytes {
            None => 1 << 30,
            Some(ByteSize::Number(n)) => n,
            Some(ByteSize::Text(t)) => parse_byte_size(&t).unwrap_or_else(|| {
                issues.add(
                    format!("{at}.max_body_bytes"),
                    format!("`{t}` is not a size (use e.g. 1GiB, 512MB)"),
                );
                1 << 30
            }),
        };
        out.push(RouteConfig {
            host,
            path_prefix,
            ai,
            backends,
            tls,
            ca_file: f.ca_file,
            sni,
            health_check,
            strip_prefix: f.strip_prefix.unwrap_or(false),
            preserve_host: f.preserve_host.unwrap_or(true),
            connect_timeout,
            read_timeout,
            write_timeout,
            max_body_bytes,
        });
    }
    out
}

/// `host` of `host:port` (`[v6]:port` too).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_match_subdomains_only() {
        let m = HostMatch::Suffix(".apps.test".into());
        assert!(m.matches("wiki.apps.test"));
        assert!(m.matches("A.B.Apps.Test"));
        assert!(!m.matches("apps.test"));
        assert!(!m.matches("xapps.test"));
        assert!(HostMatch::Exact("a.test".into()).matches("A.test"));
    }

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("10.0.0.5:8080"), "10.0.0.5");
        assert_eq!(host_of("app.internal:443"), "app.internal");
        assert_eq!(host_of("[::1]:443"), "::1");
    }
}
