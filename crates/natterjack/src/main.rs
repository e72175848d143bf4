//! The `natterjack` command.
#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // One crypto provider for the whole process, installed before anything uses TLS.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a TLS crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let cli = natterjack::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(natterjack::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `RUST_LOG` (default `info`), with rustls' own messages at `error` unless `RUST_LOG` names
/// rustls: it warns once per handshake about things any client may send (an IP address as
/// SNI, say), so a scanner could flood the log. Handshake failures are counted in
/// `natterjack_tls_handshake_failures_total` instead.
fn log_filter(rust_log: Option<String>) -> tracing_subscriber::EnvFilter {
    let mut directives = rust_log
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned());
    if !directives.contains("rustls") {
        directives.push_str(",rustls=error");
    }
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"))
}
