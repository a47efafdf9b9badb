//! The head rules of the fast front end (docs/http.md) on every edge
//! listener, so the same request gets the same 400/431 wherever it arrives.
//! Pingora's parser is more lenient: it frames a request that has both
//! Content-Length and Transfer-Encoding by the latter, forwards dot-segments
//! and reads heads up to its own limit. An HTTP/1 head is therefore parsed
//! again, from Pingora's raw bytes, by our reader; an h2 head (framing and
//! Host are h2's own business) gets the size and target rules.

use crate::downstream::head::{parse_head, HeadError};
use crate::error::GatewayError;
use crate::framing::target::{clean_path, target_parts};
use pingora::proxy::Session;

pub fn check(session: &Session, max_header_bytes: usize) -> Result<(), GatewayError> {
    if let Some(h1) = session.as_downstream().as_http1() {
        return match parse_head(&h1.get_headers_raw_bytes(), max_header_bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.answer(max_header_bytes)),
        };
    }
    let req = session.req_header();
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let size = req
        .headers
        .iter()
        .fold(target.len(), |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    if size > max_header_bytes {
        return Err(HeadError::TooLarge.answer(max_header_bytes));
    }
    let clean = target_parts(target).is_some_and(|(at, _, special)| {
        !special || clean_path(target[at..].split('?').next().unwrap_or("").as_bytes())
    });
    if !clean {
        return Err(HeadError::BadTarget.answer(max_header_bytes));
    }
    Ok(())
}
