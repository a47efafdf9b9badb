//! Client connections. The AI listener is served by [`client::Client`], our own
//! HTTP/1.1 server side (docs/performance.md: Pingora's per-request server path
//! was the largest cost left); the admin listener keeps Pingora's HTTP/1 loop
//! with a header deadline added ([`guard::Guarded`]).

mod answer;
pub mod client;
mod client_side;
pub mod connection;
pub mod guard;
pub mod head;
pub mod listener;
mod request_body;

pub use client::{Client, HeadLimits};
pub use guard::Guarded;
pub use head::{HeadError, Request};
pub use listener::AiListener;
