//! The client's headers as they go to each upstream: the policy of
//! [`crate::headers`] applied once per request, then per upstream.

use crate::framing::eq_ci;
use crate::framing::put_header;
use crate::front::Request;
use crate::headers::{forwarded_by_default, has_underscore, is_guarded, ConnectionNames};
use bytes::BytesMut;

/// The client's headers as they go upstream, written once per request.
pub struct ClientHeaders<'a> {
    req: &'a Request,
    connection: ConnectionNames<'a>,
    /// Headers every upstream gets, and our `x-request-id`, in wire format
    /// (`name: value\r\n` each).
    common: BytesMut,
    /// Where the `x-request-id` line starts in `common`.
    id_at: usize,
}

impl<'a> ClientHeaders<'a> {
    pub fn new(req: &'a Request, request_id: &str) -> Self {
        let connection = ConnectionNames::of(req.lines());
        let mut common = BytesMut::with_capacity(512);
        for (k, v) in req.headers() {
            if forwarded_by_default(k, &connection) {
                // The request parser admits no CR/LF in names or values: safe as is.
                put_header(&mut common, k, v);
            }
        }
        let id_at = common.len();
        put_header(&mut common, b"x-request-id", request_id.as_bytes());
        ClientHeaders {
            req,
            connection,
            common,
            id_at,
        }
    }

    /// Bytes of the headers every upstream gets (a size hint).
    pub fn len(&self) -> usize {
        self.common.len()
    }

    /// Append the client's headers for one upstream: `set` are the names its
    /// config headers set, which the client's never duplicate; `allowed` are
    /// the guarded names it accepts (none that the gateway sets for it).
    pub fn write_for(&self, head: &mut BytesMut, set: &[Box<[u8]>], allowed: &[Box<[u8]>]) {
        if set.is_empty() && allowed.is_empty() {
            head.extend_from_slice(&self.common);
            return;
        }
        let overridden = |k: &[u8]| set.iter().any(|n| eq_ci(n, k));

        for (k, v) in self.req.headers() {
            let pass = if forwarded_by_default(k, &self.connection) {
                true
            } else {
                is_guarded(k)
                    && allowed.iter().any(|n| eq_ci(n, k))
                    && !has_underscore(k)
                    && !self.connection.contains(k)
            };
            if pass && !overridden(k) {
                put_header(head, k, v);
            }
        }
        // Ours, never the client's (x-request-id is NOT_FORWARDED).
        head.extend_from_slice(&self.common[self.id_at..]);
    }
}
