//! llmgate: a high-availability OpenAI-compatible AI gateway on Pingora.
//! The binary (`main.rs`) only parses the CLI; everything lives here so tests and
//! benches drive the real code.

pub mod access_log;
pub mod admin;
pub mod alloc;
pub mod clock;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod edge;
pub mod error;
pub mod formats;
pub mod framing;
pub mod front;
pub mod headers;
pub mod health_checks;
pub mod limits;
pub mod mock;
pub mod params;
pub mod persist;
pub mod proxy;
pub mod routes;
pub mod routing;
pub mod secret;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod timer;
pub mod upstream;
