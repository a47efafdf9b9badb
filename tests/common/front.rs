//! Which client-side front end the AI suites run against
//! (`LLMGATE_TEST_FRONT`): unset, llmgate's own HTTP/1.1 front end;
//! `pingora`, the cleartext listeners on Pingora's HTTP server
//! (`server.h2c: true` puts them there); `tls`, the test's address as a TLS
//! listener (Pingora's server, a certificate from a CA this process made),
//! every connection of the suites to it made through TLS. One suite, every
//! transport: behaviour cannot drift between them.

use super::edge::Pki;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A client connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(PartialEq)]
enum Front {
    Own,
    Pingora,
    Tls,
}

fn front() -> Front {
    match std::env::var("LLMGATE_TEST_FRONT").as_deref() {
        Ok("pingora") => Front::Pingora,
        Ok("tls") => Front::Tls,
        _ => Front::Own,
    }
}

/// The CA, the gateways' certificate (for 127.0.0.1) and the addresses
/// that are TLS listeners, for this test process.
struct Tls {
    pki: Pki,
    cert: PathBuf,
    key: PathBuf,
    client: Arc<rustls::ClientConfig>,
    addrs: Mutex<HashSet<String>>,
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        // A static is never dropped, so its directory outlives the process:
        // clear those of test processes that have ended.
        sweep_dead_pki_dirs();
        let pki = Pki::new();
        let (cert, key) = pki.leaf("gateway", &["127.0.0.1", "localhost"], false);
        let client = pki.client_config(&[b"http/1.1"]);
        Tls {
            pki,
            cert,
            key,
            client,
            addrs: Mutex::new(HashSet::new()),
        }
    })
}

/// `yaml` (placeholders replaced) for the front end under test. `addr`: the
/// address the test talks to; `plain`: a spare address for the cleartext
/// listener a config must keep when `addr` becomes the TLS one.
pub fn on_front_end(yaml: &str, addr: &str, plain: &str) -> String {
    let front = front();
    if front == Front::Own {
        return yaml.to_string();
    }
    let Ok(mut v) = serde_yaml::from_str::<serde_yaml::Value>(yaml) else {
        return yaml.to_string();
    };
    let Some(map) = v.as_mapping_mut() else {
        return yaml.to_string();
    };
    match front {
        Front::Pingora => {
            let server = map
                .entry("server".into())
                .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            if let Some(s) = server.as_mapping_mut() {
                s.insert("h2c".into(), true.into());
            }
        }
        Front::Tls if !map.contains_key("tls") => {
            let t = tls();
            t.addrs
                .lock()
                .expect("TLS address set")
                .insert(addr.to_string());
            // `addr` becomes the TLS listener, `plain` takes its place among
            // the cleartext ones (a config needs one; others stay as written).
            let listen: Vec<String> = map
                .get("listen")
                .and_then(|l| l.as_sequence())
                .map(|l| {
                    l.iter()
                        .filter_map(|a| a.as_str())
                        .map(|a| if a == addr { plain } else { a }.to_string())
                        .collect()
                })
                .unwrap_or_else(|| vec![plain.to_string()]);
            map.insert("listen".into(), listen.into());
            let section = format!(
                "{{listen: [\"{addr}\"], certs: [{{cert: \"{}\", key: \"{}\"}}]}}",
                t.cert.display(),
                t.key.display()
            );
            map.insert(
                "tls".into(),
                serde_yaml::from_str(&section).expect("tls section"),
            );
        }
        Front::Tls | Front::Own => return yaml.to_string(),
    }
    serde_yaml::to_string(&v).unwrap_or_else(|_| yaml.to_string())
}

/// A connection to `addr`: through TLS (verified against the test CA) when
/// it is a gateway's TLS listener, else plain TCP.
pub async fn connect(addr: &str) -> Box<dyn Io> {
    let tcp = TcpStream::connect(addr).await.expect("connect to gateway");
    let is_tls =
        front() == Front::Tls && tls().addrs.lock().expect("TLS address set").contains(addr);
    if !is_tls {
        return Box::new(tcp);
    }
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1".to_string()).expect("name");
    let s = tokio_rustls::TlsConnector::from(tls().client.clone())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    Box::new(s)
}

/// Whether `addr` is a gateway's TLS listener made by [`on_front_end`].
pub fn is_tls(addr: &str) -> bool {
    front() == Front::Tls && tls().addrs.lock().expect("TLS address set").contains(addr)
}

/// Remove `llmgate-pki-<pid>-*` directories whose process is gone.
fn sweep_dead_pki_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("llmgate-pki-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
