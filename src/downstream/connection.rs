//! The HTTP/1.1 front end's connection loop: read a request head, hand the
//! request to the exchange core ([`Gateway::serve`]), keep the connection
//! while it may be reused; a head that cannot be read is refused here.

use super::client::{Client, HeadLimits, TIMEOUT_RESPONSE};
use super::head::HeadError;
use crate::proxy::Gateway;
use pingora::server::ShutdownWatch;
use tokio::net::TcpStream;

/// Serve every request of one accepted connection; it is closed when this
/// returns.
pub async fn serve_connection(gw: &Gateway, stream: TcpStream, shutdown: ShutdownWatch) {
    let mut client = Client::new(stream, shutdown);
    loop {
        let limits = {
            let rt = gw.runtime.load();
            HeadLimits {
                max_header_bytes: rt.config.limits.max_header_bytes,
                header_timeout: rt.config.limits.header_timeout,
            }
        };
        match client.read_request(&limits).await {
            Ok(req) => {
                if !gw.serve(&mut client, &req).await || !client.reusable().await {
                    return;
                }
            }
            Err(e) => {
                refuse(gw, client, e, &limits).await;
                return;
            }
        }
    }
}

/// A request head that could not be read: answered (when there is someone to
/// answer), then the connection closes.
async fn refuse(gw: &Gateway, mut client: Client, e: HeadError, limits: &HeadLimits) {
    let err = match e {
        HeadError::Gone => return,
        HeadError::Timeout => {
            client.write_raw_and_close(TIMEOUT_RESPONSE).await;
            return;
        }
        e => e.answer(limits.max_header_bytes),
    };
    gw.refused(&mut client, err).await;
}
