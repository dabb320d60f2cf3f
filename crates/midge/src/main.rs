//! `midge`: the broker, with Mosquitto's command line.

mod ctrl;
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
    // `midge ctrl ...` is mosquitto_ctrl's command line.
    if std::env::args_os().nth(1).is_some_and(|a| a == "ctrl") {
        return ctrl::main(std::env::args_os().skip(2).collect());
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
    runtime.block_on(serve(config, cli))
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            config::parse_with(&text, &path.display().to_string(), &mut read_include_dir)
                .map_err(|e| e.to_string())?
        }
        None => config::parse("", "<none>").map_err(|e| e.to_string())?,
    };
    if !cli.ports.is_empty() {
        // As Mosquitto: without a config file, -p keeps the local-only mode on that port.
        let local = cli.config.is_none();
        for &port in &cli.ports {
            let hosts: &[Option<&str>] = if local {
                &[Some("127.0.0.1"), Some("::1")]
            } else {
                &[None]
            };
            for host in hosts {
                config.listeners.push(ListenerConfig {
                    port,
                    bind_address: host.map(str::to_string),
                    ..config.listener_defaults.clone()
                });
            }
        }
        if local && config.security.allow_anonymous.is_none() {
            config.security.allow_anonymous = Some(true);
            config.allow_anonymous = Some(true);
        }
    }
    Ok(config)
}

/// `include_dir`: the `.conf` files of a directory, as the parser wants them (it filters
/// and sorts them the way Mosquitto does).
fn read_include_dir(dir: &str) -> Result<Vec<(String, String)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read directory {dir}: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read directory {dir}: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !config::is_include_file(&name) {
            continue;
        }
        let path = format!("{dir}/{name}");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        files.push((path, text));
    }
    files.sort_by(|a, b| config::include_order(&a.0, &b.0));
    Ok(files)
}

async fn serve(config: Config, cli: Cli) -> ExitCode {
    tracing::info!("midge version {} starting", env!("CARGO_PKG_VERSION"));
    let server = match Server::bind(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = server.handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("midge version {} terminating", env!("CARGO_PKG_VERSION"));
        handle.shutdown();
    });
    let handle = server.handle();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            reload(&cli, &handle);
        }
    });
    server.run().await;
    ExitCode::SUCCESS
}

/// SIGHUP: re-read the configuration and the files it names. Anything that fails keeps
/// the settings in force and is logged with `file:line: reason`.
fn reload(cli: &Cli, handle: &midge_server::ServerHandle) {
    tracing::info!("Reloading config.");
    match load_config(cli) {
        Ok(config) => {
            for e in handle.reload(&config) {
                tracing::error!("Reload: {e}");
            }
        }
        Err(e) => tracing::error!("Reload failed, keeping the previous settings: {e}"),
    }
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
