//! `midge`: the broker, with Mosquitto's command line.

mod passwd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use midge_core::config::{self, Config, ListenerConfig};
use midge_server::Server;

/// Midge MQTT broker. Reads mosquitto.conf files unchanged.
#[derive(Parser, Debug)]
#[command(name = "midge", version, about)]
struct Cli {
    /// Configuration file (mosquitto.conf syntax). Without one, Midge listens on the
    /// loopback addresses only and allows anonymous clients.
    #[arg(short = 'c', long = "config-file")]
    config: Option<PathBuf>,
    /// Listen on this port (may be repeated). Without a configuration file the port is
    /// opened on the loopback addresses only.
    #[arg(short = 'p', long = "port")]
    ports: Vec<u16>,
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Verbose logging (debug level).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Check the configuration file and exit.
    #[arg(long = "test-config")]
    test_config: bool,
}

fn main() -> ExitCode {
    // `midge passwd ...` is mosquitto_passwd's command line, not the broker's: dispatched
    // before clap sees (and rejects) its options.
    if std::env::args_os().nth(1).is_some_and(|a| a == "passwd") {
        return passwd::main(std::env::args_os().skip(2).collect());
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(if cli.verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .with_writer(std::io::stderr)
        .init();

    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if cli.test_config {
        println!("Configuration OK");
        return ExitCode::SUCCESS;
    }
    if cli.daemon {
        if let Err(e) = nix::unistd::daemon(true, false) {
            eprintln!("Error: cannot run in the background: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            config::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?
        }
        None => config::parse("", "<none>").map_err(|e| e.to_string())?,
    };
    if !cli.ports.is_empty() {
        // As Mosquitto: without a config file, -p keeps the local-only mode on that port.
        let local = cli.config.is_none();
        for &port in &cli.ports {
            if local {
                for host in ["127.0.0.1", "::1"] {
                    config.listeners.push(ListenerConfig {
                        port,
                        bind_address: Some(host.to_string()),
                        line: 0,
                        max_qos: None,
                    });
                }
            } else {
                config.listeners.push(ListenerConfig {
                    port,
                    bind_address: None,
                    line: 0,
                    max_qos: None,
                });
            }
        }
        if local && config.allow_anonymous.is_none() {
            config.allow_anonymous = Some(true);
        }
    }
    Ok(config)
}

async fn serve(config: Config) -> ExitCode {
    tracing::info!("midge version {} starting", env!("CARGO_PKG_VERSION"));
    let server = match Server::bind(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("midge version {} terminating", env!("CARGO_PKG_VERSION"));
        handle.shutdown();
    });
    server.run().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
