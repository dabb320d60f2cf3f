//! Mosquitto's logging options: `log_dest`, `log_type`, `log_timestamp`,
//! `log_timestamp_format` and `log_facility`, behind the `tracing` events the broker
//! emits. `format.rs` is the line and the type filter (pure), `dest.rs` the destinations,
//! `layer.rs` the tracing layer that joins them.
//!
//! Start-up installs stderr with the default types (so configuration problems are seen),
//! then [`Logging::configure`] applies the file's options; SIGHUP calls
//! [`Logging::reload`] (or [`Logging::reopen`] when the file cannot be read), which
//! re-opens the log file for logrotate.

mod dest;
mod format;
mod layer;

use std::sync::{Arc, OnceLock, RwLock};

use midge_core::config::LoggingOptions;
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use dest::{syslog, LogFile, Sinks, Wanted};
use format::{Stamp, Types};

/// Lines waiting to be published on `$SYS/broker/log/...`.
const TOPIC_QUEUE: usize = 1024;

/// What the layer reads for each event.
#[derive(Debug)]
struct Settings {
    stamp: Stamp,
    sinks: Sinks,
    /// The facility syslog is open with, when it is.
    syslog_facility: Option<libc::c_int>,
}

struct Shared {
    types: std::sync::atomic::AtomicU16,
    settings: RwLock<Arc<Settings>>,
    topic: OnceLock<mpsc::Sender<(&'static str, String)>>,
}

impl Shared {
    fn types(&self) -> Types {
        Types::from_bits(self.types.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The broker's logging, installed once as the global tracing subscriber.
#[derive(Clone)]
pub struct Logging {
    shared: Arc<Shared>,
}

/// What applying the options found: warnings for the log; at reload, errors too.
#[derive(Debug, Default)]
pub struct Applied {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Logging {
    /// Installs the subscriber: stderr, timestamps in epoch seconds, the default types
    /// (all with `-v`), until [`Logging::configure`].
    pub fn install(verbose: bool) -> Logging {
        let shared = Arc::new(Shared {
            types: Types::from_config(&[], verbose).bits().into(),
            settings: RwLock::new(Arc::new(Settings {
                stamp: Stamp::Epoch,
                sinks: Sinks {
                    stderr: true,
                    ..Sinks::default()
                },
                syslog_facility: None,
            })),
            topic: OnceLock::new(),
        });
        let layer = layer::MosquittoLayer {
            shared: Arc::clone(&shared),
        };
        tracing_subscriber::registry().with(layer).init();
        Logging { shared }
    }

    /// Applies the configuration's options at start-up. A log file that cannot be
    /// opened is an error.
    pub fn configure(&self, options: &LoggingOptions, verbose: bool) -> Result<Applied, String> {
        let wanted = Wanted::from_config(&options.destinations);
        let file = match &wanted.file {
            Some(path) => Some(Arc::new(
                LogFile::open(path).map_err(|e| format!("cannot open log file {path}: {e}"))?,
            )),
            None => None,
        };
        let mut applied = Applied::default();
        self.apply(options, verbose, &wanted, file, &mut applied);
        Ok(applied)
    }

    /// SIGHUP: applies the re-read options and re-opens the log file (logrotate). A file
    /// that cannot be opened leaves the previous one in use, with an error saying why.
    pub fn reload(&self, options: &LoggingOptions, verbose: bool) -> Applied {
        let wanted = Wanted::from_config(&options.destinations);
        let mut applied = Applied::default();
        let file = match &wanted.file {
            Some(path) => self.open_or_keep(path, &mut applied),
            None => None,
        };
        self.apply(options, verbose, &wanted, file, &mut applied);
        applied
    }

    /// SIGHUP with a configuration that cannot be read: only re-opens the log file.
    pub fn reopen(&self) -> Applied {
        let mut applied = Applied::default();
        let current = self.shared.settings();
        let Some(old) = &current.sinks.file else {
            return applied;
        };
        let file = self.open_or_keep(&old.path, &mut applied);
        let mut sinks = current.sinks.clone();
        sinks.file = file;
        self.store(Settings {
            stamp: current.stamp.clone(),
            sinks,
            syslog_facility: current.syslog_facility,
        });
        applied
    }

    /// Publishes the lines of `log_dest topic` through the running server, from a task
    /// of its runtime. Call once the listeners are bound.
    pub fn attach_topic(&self, server: midge_server::ServerHandle) {
        let (tx, mut rx) = mpsc::channel::<(&'static str, String)>(TOPIC_QUEUE);
        if self.shared.topic.set(tx).is_err() {
            return;
        }
        tokio::spawn(async move {
            while let Some((topic, line)) = rx.recv().await {
                layer::PUBLISHING.with(|p| p.set(true));
                server.publish(topic, line.as_bytes());
                layer::PUBLISHING.with(|p| p.set(false));
            }
        });
    }

    /// Opens `path` afresh; on failure keeps the file open now (if any) and says why.
    fn open_or_keep(&self, path: &str, applied: &mut Applied) -> Option<Arc<LogFile>> {
        match LogFile::open(path) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                let old = self.shared.settings().sinks.file.clone();
                applied.errors.push(match &old {
                    Some(old) => format!(
                        "cannot open log file {path}: {e}; still logging to the previous {}",
                        old.path
                    ),
                    None => format!("cannot open log file {path}: {e}; no log file"),
                });
                old
            }
        }
    }

    fn apply(
        &self,
        options: &LoggingOptions,
        verbose: bool,
        wanted: &Wanted,
        file: Option<Arc<LogFile>>,
        applied: &mut Applied,
    ) {
        for name in &wanted.unavailable {
            applied.warnings.push(format!(
                "log_dest {name} is not available in Midge; ignored"
            ));
        }
        let stamp = Stamp::from_config(options.timestamp, options.timestamp_format.as_deref());
        applied.warnings.extend(stamp.problem());
        let old = self.shared.settings();
        let facility = wanted.syslog.then(|| syslog::facility(options.facility));
        match (old.syslog_facility, facility) {
            (old, Some(new)) if old != Some(new) => syslog::open(new),
            (Some(_), None) => syslog::close(),
            _ => {}
        }
        self.store(Settings {
            stamp,
            sinks: Sinks {
                stdout: wanted.stdout,
                stderr: wanted.stderr,
                syslog: wanted.syslog,
                topic: wanted.topic,
                file,
            },
            syslog_facility: facility,
        });
        let types = Types::from_config(&options.types, verbose);
        self.shared
            .types
            .store(types.bits(), std::sync::atomic::Ordering::Relaxed);
        // Callsites cached as enabled or disabled are asked again.
        tracing::callsite::rebuild_interest_cache();
    }

    fn store(&self, settings: Settings) {
        *self
            .shared
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }
}
