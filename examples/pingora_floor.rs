//! The floor: the smallest Pingora reverse proxy that does the bench's job
//! (fixed upstream, one header set), none of llmgate's logic. It answers on
//! 127.0.0.1:18084 like `conf/bench.yaml`, so the shared harness can measure what
//! Pingora itself costs per request on this machine:
//!
//! ```sh
//! cargo build --release --example pingora_floor
//! GATEWAY_CMD=target/release/examples/pingora_floor GATEWAY_URL=http://127.0.0.1:18084 \
//!   ../shared/bench/compare.sh direct nginx gateway
//! ```
//! `WORK_STEALING=1` switches to Pingora's default work-stealing runtime.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Floor;

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            "127.0.0.1:18080",
            false,
            String::new(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        r: &mut RequestHeader,
        _c: &mut (),
    ) -> Result<()> {
        r.insert_header("authorization", "Bearer sk-bench-upstream-key")?;
        Ok(())
    }
}

fn main() {
    let conf = ServerConf {
        threads: 1,
        work_stealing: std::env::var_os("WORK_STEALING").is_some(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, Floor);
    svc.add_tcp("127.0.0.1:18084");
    server.add_service(svc);
    server.run_forever();
}
