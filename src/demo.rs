//! `llmgate demo`: the gateway on conf/demo.yaml (compiled in) plus the mock
//! providers that config points at, all on loopback, no network needed.

use crate::mock::{Behavior, Mock, MockOptions};
use std::time::Duration;

pub const DEMO_CONFIG: &str = include_str!("../conf/demo.yaml");

/// Start the demo's mock providers on a background thread with its own runtime.
pub fn start_mocks() -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-mocks".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let ok = Behavior::Ok {
                    events: 8,
                    event_delay: Duration::from_millis(150),
                };
                let steady =
                    Mock::start("127.0.0.1:18101", ok.clone(), MockOptions::default()).await;
                let flaky = Mock::start(
                    "127.0.0.1:18102",
                    ok,
                    MockOptions {
                        fail_rate: 0.5,
                        ..Default::default()
                    },
                )
                .await;
                match (steady, flaky) {
                    (Ok(_), Ok(_)) => {
                        let _ = tx.send(Ok(()));
                        std::future::pending::<()>().await;
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = tx.send(Err(format!(
                            "cannot start demo mock providers on 127.0.0.1:18101-18102: {e}"
                        )));
                    }
                }
            });
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

pub fn banner(listen: &str, key: &str) -> String {
    format!(
        r#"
llmgate demo is up on http://{listen}  (mock providers on 127.0.0.1:18101 steady, :18102 flaky)

  # plain request; the flaky provider fails half the time, watch x-llmgate-attempts / x-llmgate-upstream
  curl -si http://{listen}/v1/chat/completions -H 'Authorization: Bearer {key}' \
       -H 'Content-Type: application/json' -d '{{"model":"chat","messages":[{{"role":"user","content":"hi"}}]}}'

  # always fails over: the first provider refuses connections (x-llmgate-attempts: 2)
  curl -si http://{listen}/v1/chat/completions -H 'Authorization: Bearer {key}' \
       -H 'Content-Type: application/json' -d '{{"model":"failover-demo","messages":[{{"role":"user","content":"hi"}}]}}'

  # streaming (SSE), events arrive one by one
  curl -sN http://{listen}/v1/chat/completions -H 'Authorization: Bearer {key}' \
       -H 'Content-Type: application/json' -d '{{"model":"chat","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'

  # Anthropic's Messages API in, any model out: here `chat` (OpenAI-format providers),
  # translated both ways; `claude` (an Anthropic-format provider) passes as is
  curl -s http://{listen}/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01' \
       -H 'Content-Type: application/json' -d '{{"model":"chat","max_tokens":64,"messages":[{{"role":"user","content":"hi"}}]}}'

  # and the other way: an OpenAI client reaching the Claude-format model
  curl -si http://{listen}/v1/chat/completions -H 'Authorization: Bearer {key}' \
       -H 'Content-Type: application/json' -d '{{"model":"claude","messages":[{{"role":"user","content":"hi"}}]}}'

  # OpenAI's Responses API, here to the Claude-format model (translated both ways)
  curl -s http://{listen}/v1/responses -H 'Authorization: Bearer {key}' \
       -H 'Content-Type: application/json' -d '{{"model":"claude","input":"hi"}}'

  curl -s http://{listen}/v1/models -H 'Authorization: Bearer {key}'
  curl -s http://{listen}/health

Ctrl-C stops it.
"#
    )
}
