//! `midge`: the broker, with Mosquitto's command line.

mod ctrl;
mod logging;
mod passwd;
mod prompt;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use midge_core::config::{self, Config, ListenerConfig};
use midge_server::Server;

/// Counts the heap in use once `memory_limit` asks for it (`$SYS/broker/heap/*` then too).
#[global_allocator]
static HEAP: midge_server::heap::CountingAlloc = midge_server::heap::CountingAlloc;

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
    /// Verbose logging: every `log_type`, whatever the configuration says.
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
    // stderr in Mosquitto's line format until the configuration's own options apply.
    let logging = logging::Logging::install(cli.verbose);

    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.memory_limit != 0 {
        midge_server::heap::enable();
    }
    if cli.test_config {
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        println!("Configuration OK");
        return ExitCode::SUCCESS;
    }
    match logging.configure(&config.logging, cli.verbose) {
        Ok(applied) => {
            for w in applied.warnings.iter().chain(&config.warnings) {
                tracing::warn!("{w}");
            }
        }
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
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
    runtime.block_on(serve(config, cli, logging))
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

async fn serve(config: Config, cli: Cli, logging: logging::Logging) -> ExitCode {
    tracing::info!("midge version {} starting", env!("CARGO_PKG_VERSION"));
    let server = match Server::bind(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // The listeners are bound and the log file is open: the pid file, then the user.
    let pid_file = config.pid_file.as_deref().map(Path::new);
    if let Some(path) = pid_file {
        if let Err(e) = write_pid_file(path) {
            tracing::error!("Unable to write pid file {}: {e}.", path.display());
            return ExitCode::FAILURE;
        }
    }
    logging.attach_topic(server.handle());
    if let Err(e) = drop_privileges(config.user.as_deref()) {
        tracing::error!("{e}");
        remove_pid_file(pid_file);
        return ExitCode::FAILURE;
    }
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
            reload(&cli, &handle, &logging);
        }
    });
    server.run().await;
    remove_pid_file(pid_file);
    ExitCode::SUCCESS
}

/// `pid_file`: the process id and a newline, replacing what the file held.
fn write_pid_file(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Removed at a clean exit. Once privileges are dropped the directory (`/run`) may not
/// let us: said, not an error (Mosquitto ignores it silently).
fn remove_pid_file(path: Option<&Path>) {
    if let Some(path) = path {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::info!("Cannot remove pid file {}: {e}.", path.display());
            }
        }
    }
}

/// `user`: run as root, switch to that user (its groups, then its group, then its id)
/// once the ports are bound, the log file open and the pid file written. `user root` or
/// a non-root start changes nothing. Unlike Mosquitto, which drops to `mosquitto` when
/// no `user` is given, Midge stays root then and says so (docs/compat.md).
fn drop_privileges(user: Option<&str>) -> Result<(), String> {
    use nix::unistd::{initgroups, setgid, setuid, Uid, User};
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let name = match user {
        None => {
            tracing::warn!(
                "Running as root without a 'user' option: Midge keeps root privileges. Set 'user <name>' to drop them once the listeners are bound."
            );
            return Ok(());
        }
        Some("root") => {
            tracing::warn!("Midge should not be run as root ('user root').");
            return Ok(());
        }
        Some(name) => name,
    };
    let account = User::from_name(name)
        .map_err(|e| format!("Unable to drop privileges to '{name}': {e}."))?
        .ok_or_else(|| {
            format!("Unable to drop privileges to '{name}' because this user does not exist.")
        })?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| format!("Unable to drop privileges to '{name}': invalid name."))?;
    initgroups(&cname, account.gid)
        .map_err(|e| format!("Error setting groups whilst dropping privileges: {e}."))?;
    setgid(account.gid)
        .map_err(|e| format!("Error setting gid whilst dropping privileges: {e}."))?;
    // glibc applies setuid to every thread of the process, the runtime's included.
    setuid(account.uid)
        .map_err(|e| format!("Error setting uid whilst dropping privileges: {e}."))?;
    tracing::info!(
        "Dropped privileges to user '{name}' (uid {}, gid {}).",
        account.uid,
        account.gid
    );
    Ok(())
}

/// SIGHUP: re-read the configuration and the files it names, and re-open the log file
/// (logrotate). Anything that fails keeps the settings in force and is logged with
/// `file:line: reason`.
fn reload(cli: &Cli, handle: &midge_server::ServerHandle, logging: &logging::Logging) {
    tracing::info!("Reloading config.");
    let applied = match load_config(cli) {
        Ok(config) => {
            let applied = logging.reload(&config.logging, cli.verbose);
            for e in handle.reload(&config) {
                tracing::error!("Reload: {e}");
            }
            applied
        }
        Err(e) => {
            tracing::error!("Reload failed, keeping the previous settings: {e}");
            logging.reopen()
        }
    };
    for w in &applied.warnings {
        tracing::warn!("Reload: {w}");
    }
    for e in &applied.errors {
        tracing::error!("Reload: {e}");
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
