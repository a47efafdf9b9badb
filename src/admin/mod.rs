//! Operations: metrics, the access log, config reload and the admin API.

pub mod api;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod status;
pub mod usage;
