//! `tls.certs`: each certificate chain and key read, checked and loaded at
//! validation, so `llmgate -t` (and a reload) refuses a file that would fail at
//! the handshake and names it: unreadable, not PEM, expired or not yet valid,
//! or a key that does not belong to its certificate.

use super::issues::Issues;
use rustls::sign::CertifiedKey;
use std::fmt;
use std::sync::Arc;

/// One certificate ready for the TLS acceptor.
#[derive(Clone)]
pub struct LoadedCert {
    pub cert_path: String,
    pub key_path: String,
    /// The DNS names it is for (subjectAltName, else its CN), lowercase;
    /// `*.example.com` for a wildcard.
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .field("names", &self.names)
            .finish()
    }
}

impl PartialEq for LoadedCert {
    fn eq(&self, other: &Self) -> bool {
        self.cert_path == other.cert_path
            && self.key_path == other.key_path
            && self.key.cert == other.key.cert
    }
}

impl LoadedCert {
    /// Whether this certificate is for `name` (lowercase, no trailing dot).
    pub fn serves(&self, name: &str) -> bool {
        self.names.iter().any(|n| match n.strip_prefix("*.") {
            // A wildcard covers exactly one label.
            Some(suffix) => name
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => n == name,
        })
    }
}

/// Load `cert` and `key` (PEM), reporting problems under `path`.
pub(super) fn load(issues: &mut Issues, path: &str, cert: &str, key: &str) -> Option<LoadedCert> {
    let chain = match read_pem(cert) {
        Ok(bytes) => {
            let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut bytes.as_slice()).collect();
            match certs {
                Ok(c) if !c.is_empty() => c,
                _ => {
                    issues.add(
                        format!("{path}.cert"),
                        format!("`{cert}` holds no PEM certificate"),
                    );
                    return None;
                }
            }
        }
        Err(e) => {
            issues.add(format!("{path}.cert"), format!("cannot read `{cert}`: {e}"));
            return None;
        }
    };
    let private = match read_pem(key) {
        Ok(bytes) => match rustls_pemfile::private_key(&mut bytes.as_slice()) {
            Ok(Some(k)) => k,
            _ => {
                issues.add(
                    format!("{path}.key"),
                    format!("`{key}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
                );
                return None;
            }
        },
        Err(e) => {
            issues.add(format!("{path}.key"), format!("cannot read `{key}`: {e}"));
            return None;
        }
    };
    let names = match check_leaf(&chain[0]) {
        Ok(n) => n,
        Err(why) => {
            issues.add(format!("{path}.cert"), format!("`{cert}`: {why}"));
            return None;
        }
    };
    let provider = rustls::crypto::ring::default_provider();
    match CertifiedKey::from_der(chain, private, &provider) {
        Ok(k) => Some(LoadedCert {
            cert_path: cert.to_string(),
            key_path: key.to_string(),
            names,
            key: Arc::new(k),
        }),
        Err(rustls::Error::InconsistentKeys(_)) => {
            issues.add(
                format!("{path}.key"),
                format!("`{key}` is not the private key of the certificate in `{cert}`"),
            );
            None
        }
        Err(e) => {
            issues.add(
                format!("{path}.key"),
                format!("`{key}` cannot be used with `{cert}`: {e}"),
            );
            None
        }
    }
}

fn read_pem(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// The leaf's names, or why it cannot be served (expired, not yet valid,
/// not a certificate).
fn check_leaf(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the first certificate cannot be parsed: {e}"))?;
    let validity = cert.validity();
    let now = ASN1Time::now();
    if validity.not_after < now {
        return Err(format!("the certificate expired on {}", validity.not_after));
    }
    if validity.not_before > now {
        return Err(format!(
            "the certificate is not valid before {}",
            validity.not_before
        ));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.trim_end_matches('.').to_ascii_lowercase()),
                GeneralName::IPAddress(ip) => {
                    if let Some(text) = ip_text(ip) {
                        names.push(text);
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

fn ip_text(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => {
            let b: [u8; 4] = raw.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(b).to_string())
        }
        16 => {
            let b: [u8; 16] = raw.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(b).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `load` on a certificate for `cert_names` and the key of one for
    /// `key_names` (the same one when equal), written to a scratch dir.
    fn load_pair(cert_names: &[&str], key_names: &[&str]) -> (Option<LoadedCert>, Issues) {
        let gen = |names: &[&str]| {
            rcgen::generate_simple_self_signed(
                names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .expect("rcgen")
        };
        let a = gen(cert_names);
        let key = if cert_names == key_names {
            a.key_pair.serialize_pem()
        } else {
            gen(key_names).key_pair.serialize_pem()
        };
        let dir = std::env::temp_dir().join(format!(
            "llmgate-tls-unit-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let (c, k) = (dir.join("a.pem"), dir.join("b.key"));
        std::fs::write(&c, a.cert.pem()).expect("write");
        std::fs::write(&k, key).expect("write");
        let mut issues = Issues::default();
        let got = load(
            &mut issues,
            "tls.certs[0]",
            &c.display().to_string(),
            &k.display().to_string(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        (got, issues)
    }

    #[test]
    fn names_and_wildcards_match_as_browsers_do() {
        let names = ["api.example.com", "*.apps.test"];
        let c = load_pair(&names, &names).0.expect("loads");
        assert!(c.serves("api.example.com"));
        assert!(c.serves("wiki.apps.test"));
        assert!(!c.serves("apps.test"));
        assert!(!c.serves("a.b.apps.test"));
        assert!(!c.serves("example.com"));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_the_file() {
        let (got, issues) = load_pair(&["a.test"], &["b.test"]);
        assert!(got.is_none());
        let text = format!("{:?}", issues.0);
        assert!(
            text.contains("b.key") && text.contains("not the private key"),
            "{text}"
        );
    }
}
