//! The `ficus` command: parses the command line and wires the library's services.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ficus::settings::LogFormat;

#[derive(Parser)]
#[command(
    name = "ficus",
    version,
    about = "A strangler-fig reverse proxy: move a legacy app's routes to new services one at a time"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT.
    Run {
        /// The route table.
        #[arg(long, default_value = "routes.toml")]
        config: PathBuf,
        /// Take the listening sockets over from a running instance (send it SIGQUIT).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a route table without serving.
    Check {
        #[arg(default_value = "routes.toml")]
        file: PathBuf,
        /// Print at most this many errors, then `... and N more` (0 prints all).
        #[arg(long, value_name = "N", default_value_t = ficus::cli::DEFAULT_MAX_ERRORS)]
        max_errors: usize,
    },
    /// Show how a request would be routed.
    Explain {
        #[arg(long, default_value = "routes.toml")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The client address, for `sticky = "ip"` splits.
        #[arg(long)]
        client_ip: Option<IpAddr>,
        /// A request header, `-H 'Name: value'` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        method: String,
        url: String,
    },
    /// Start a legacy app, a new service and ficus in front of them on loopback, with a demo table.
    Demo {
        /// Where the demo proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

/// mimalloc serves Pingora's many small per-request allocations faster than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("ficus: internal error{place}: {msg}");
    }));
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ficus: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config, upgrade } => {
            let table = ficus::config::load_file(&config)
                .map_err(|e| anyhow::anyhow!("invalid route table:\n{e}"))?;
            init_logging(table.proxy.log_format);
            ficus::server::run(table, &config, upgrade)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { file, max_errors } => Ok(match ficus::cli::check(&file, max_errors) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        }),
        Command::Explain {
            config,
            json,
            client_ip,
            headers,
            method,
            url,
        } => {
            let table = ficus::config::load_file(&config)
                .map_err(|e| anyhow::anyhow!("invalid route table:\n{e}"))?;
            let spec = ficus::cli::RequestSpec::parse(&method, &url, &headers, client_ip)?;
            let explanation = spec.explain(&table);
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print!("{}", ficus::cli::render_text(&explanation));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen } => {
            init_logging(LogFormat::Text);
            ficus::demo::run(listen)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tracing` output in text or JSON, level from RUST_LOG (default info); Pingora's `log` records
/// come through tracing-log.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("ficus: logging is not available: {e}");
    }
}
