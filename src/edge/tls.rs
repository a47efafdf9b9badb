//! TLS for clients: Pingora's rustls acceptor with our certificate resolver,
//! which picks by SNI from the *current* config, so a reload (SIGHUP or
//! `/admin/reload`) swaps certificates for new handshakes while connections
//! already open keep theirs.

use crate::state::SharedRuntime;
use pingora::listeners::tls::TlsSettings;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

pub struct SniResolver {
    pub runtime: SharedRuntime,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let rt = self.runtime.load();
        let certs = &rt.config.tls.as_ref()?.certs;
        let chosen = hello
            .server_name()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|name| {
                // An exact name before a wildcard that also covers it.
                certs
                    .iter()
                    .find(|c| c.names.contains(&name))
                    .or_else(|| certs.iter().find(|c| c.serves(&name)))
            })
            .or_else(|| certs.first());
        chosen.map(|c| c.key.clone())
    }
}

/// The acceptor settings of a TLS listener: TLS 1.2 and 1.3 (Pingora's
/// rustls builder offers no older), h2 by ALPN when `h2`.
pub fn settings(runtime: &SharedRuntime, h2: bool) -> pingora::Result<TlsSettings> {
    // No files: the resolver supplies every certificate.
    let mut s = TlsSettings::intermediate("", "")?;
    s.set_cert_resolver(Arc::new(SniResolver {
        runtime: runtime.clone(),
    }));
    if h2 {
        s.enable_h2();
    } else {
        s.set_alpn(pingora::protocols::ALPN::H1);
    }
    Ok(s)
}
