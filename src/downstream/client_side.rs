//! The HTTP/1.1 front end as the exchange core's [`ClientSide`]: each call
//! is the connection's own method (inlined; the seam costs nothing).

use super::client::Client;
use crate::front::ClientSide;
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

impl ClientSide for Client {
    #[inline]
    fn body_length(&self) -> Option<u64> {
        Client::body_length(self)
    }

    #[inline]
    fn write_continue(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        Client::write_continue(self)
    }

    #[inline]
    fn read_body_within(
        &mut self,
        wait: Duration,
        deadline: Instant,
    ) -> impl Future<Output = io::Result<Option<Bytes>>> + Send {
        Client::read_body_within(self, wait, deadline)
    }

    #[inline]
    fn closed(&mut self) -> impl Future<Output = ()> + Send {
        Client::closed(self)
    }

    #[inline]
    fn release_buffer(&mut self) {
        Client::release_buffer(self)
    }

    #[inline]
    fn close_after(&mut self) {
        Client::close_after(self)
    }

    #[inline]
    fn start(&mut self, status: u16) {
        Client::start(self, status)
    }

    #[inline]
    fn header(&mut self, name: &[u8], value: &[u8]) {
        Client::header(self, name, value)
    }

    #[inline]
    fn header_lowercase(&mut self, name: &[u8], value: &[u8]) {
        Client::header_lowercase(self, name, value)
    }

    #[inline]
    fn end_head(&mut self, length: Option<u64>) {
        Client::end_head(self, length)
    }

    #[inline]
    fn write_body(
        &mut self,
        piece: &[u8],
        last: bool,
    ) -> impl Future<Output = io::Result<()>> + Send {
        Client::write_body(self, piece, last)
    }

    #[inline]
    fn status(&self) -> u16 {
        Client::status(self)
    }

    #[inline]
    fn bytes_sent(&self) -> usize {
        Client::bytes_sent(self)
    }
}
