use clap::{Parser, Subcommand};
use llmgate::{config, demo, mock, server};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// High-availability OpenAI-compatible AI gateway.
#[derive(Parser)]
#[command(name = "llmgate", version)]
struct Cli {
    /// Config file.
    #[arg(
        short = 'c',
        long = "config",
        default_value = "/etc/llmgate/llmgate.yaml",
        global = true
    )]
    config: PathBuf,
    /// Validate the config and exit: 0 if valid, 1 with every problem listed.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Take over the listeners of a running instance (graceful upgrade; send the old one SIGQUIT).
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway on the built-in demo config with two mock providers (offline).
    Demo,
    /// Run the mock provider alone (for tests and load runs): OpenAI, Anthropic
    /// (/v1/messages) and Gemini (:generateContent) shapes, by endpoint.
    Mock {
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: String,
        /// Fraction of requests answered with 503 (0..1).
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
        /// Delay before each answer, e.g. 20ms.
        #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
        latency: Duration,
        /// SSE events per streaming answer.
        #[arg(long, default_value_t = 20)]
        stream_events: usize,
        /// Pause between SSE events, e.g. 100ms (long-lived streams).
        #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
        event_delay: Duration,
    },
}

fn init_logging(level: Option<&str>) {
    let mut b = env_logger::Builder::new();
    // RUST_LOG, when set, wins over the config file. Otherwise the logger
    // lets everything through and the global maximum (which every log macro
    // checks first) is the config's level, so a reload can change it.
    let rust_log = std::env::var("RUST_LOG").ok();
    match &rust_log {
        Some(spec) => {
            b.parse_filters(spec);
        }
        None => {
            b.filter_level(log::LevelFilter::Trace);
        }
    }
    b.format_timestamp_millis().init();
    if rust_log.is_none() {
        log::set_max_level(llmgate::admin::reload::level_of(level));
    }
}

// glibc's malloc spent ~4.9k instructions per proxied request (a tenth of the
// gateway's user-space work; callgrind): request futures and buffers are
// larger than its per-thread cache serves, so most calls took the locked
// arena path. mimalloc's thread-local free lists serve them in a few dozen
// (`alloc.rs`: why not through the `mimalloc` crate's wrapper).
#[global_allocator]
static ALLOCATOR: llmgate::alloc::Mimalloc = llmgate::alloc::Mimalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Mock {
            listen,
            fail_rate,
            latency,
            stream_events,
            event_delay,
        }) => run_mock(listen, fail_rate, latency, stream_events, event_delay),
        Some(Command::Demo) => {
            init_logging(None);
            let key =
                std::env::var("LLMGATE_DEMO_KEY").unwrap_or_else(|_| "sk-llmgate-demo".into());
            let cfg = match config::parse_str(demo::DEMO_CONFIG, |k| std::env::var(k).ok()) {
                Ok(c) => c,
                Err(e) => return fail(&format!("demo config: {}", e.join("; "))),
            };
            if let Err(e) = demo::start_mocks() {
                return fail(&e);
            }
            // Written whole, and a closed stdout (a reader that went away)
            // must not stop the demo: `println!` would panic on EPIPE.
            {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", demo::banner(&cfg.listen[0], &key))
                    .and_then(|()| out.flush());
            }
            run(cfg, None, cli.upgrade, cli.daemon)
        }
        None => {
            let cfg = match config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            if cli.test {
                println!("{}: configuration is valid", cli.config.display());
                return ExitCode::SUCCESS;
            }
            init_logging(cfg.log_level.as_deref());
            // Absolute, so reload still finds it after daemonizing changes directory.
            let path = std::fs::canonicalize(&cli.config).unwrap_or(cli.config);
            run(cfg, Some(path), cli.upgrade, cli.daemon)
        }
    }
}

fn run(cfg: config::Config, path: Option<PathBuf>, upgrade: bool, daemon: bool) -> ExitCode {
    match server::run(cfg, path, server::RunFlags { upgrade, daemon }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("llmgate: {msg}");
    ExitCode::from(1)
}

fn run_mock(
    listen: String,
    fail_rate: f64,
    latency: Duration,
    events: usize,
    event_delay: Duration,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    rt.block_on(async move {
        let behavior = mock::Behavior::Ok {
            events,
            event_delay,
        };
        let opts = mock::MockOptions {
            fail_rate,
            latency,
            record: 0,
        };
        match mock::Mock::start(&listen, behavior, opts).await {
            Ok(m) => {
                // A closed stdout must not end the mock (println! panics on EPIPE).
                use std::io::Write;
                let _ = writeln!(
                    std::io::stdout(),
                    "mock provider on http://{}/v1 (fail_rate {fail_rate}, latency {latency:?})",
                    m.addr
                );
                let _ = tokio::signal::ctrl_c().await;
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot listen on {listen}: {e}")),
        }
    })
}
