//! Global options: limits, logging, persistence, process settings and Midge's own options.
//! They apply to the whole broker wherever they are written, inside a listener block too,
//! as in Mosquitto.

use super::line::Line;
use super::{value, Parser, Target};

/// `log_*` options, applied by the `midge` binary (`crates/midge/src/logging`): Mosquitto's
/// line format, types and destinations over the broker's `tracing` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingOptions {
    /// `log_dest` lines in order (repeatable; `none` clears the earlier ones).
    pub destinations: Vec<LogDest>,
    /// `log_type` lines in order (repeatable); empty = error, warning, notice, information.
    pub types: Vec<LogType>,
    /// `log_facility` (syslog local0..local7); `None` = daemon.
    pub facility: Option<u8>,
    /// `log_timestamp` (default true).
    pub timestamp: bool,
    /// `log_timestamp_format` (strftime); `None` = seconds since the epoch.
    pub timestamp_format: Option<String>,
    /// `websockets_log_level`: libwebsockets' log mask, meaningless to Midge.
    pub websockets_log_level: Option<i64>,
}

impl Default for LoggingOptions {
    fn default() -> Self {
        LoggingOptions {
            destinations: Vec::new(),
            types: Vec::new(),
            facility: None,
            timestamp: true,
            timestamp_format: None,
            websockets_log_level: None,
        }
    }
}

/// One `log_dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDest {
    None,
    Stdout,
    Stderr,
    Syslog,
    Topic,
    Dlt,
    Android,
    /// `log_dest file <path>`; only one per configuration.
    File(String),
}

/// One `log_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    None,
    Information,
    Notice,
    Warning,
    Error,
    Debug,
    Subscribe,
    Unsubscribe,
    Internal,
    Websockets,
    All,
}

/// Persistence options: where the store lives and how durable an acknowledgement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistenceOptions {
    /// `persistence` / `retained_persistence` (default false).
    pub enabled: bool,
    /// `persistence_file` (default `mosquitto.db`).
    pub file: Option<String>,
    /// `persistence_location` (default the working directory).
    pub location: Option<String>,
    /// `autosave_interval` in seconds (default 1800; 0 = only on exit); negative reads as 0.
    pub autosave_interval: u32,
    /// `autosave_on_changes` (default false): `autosave_interval` counts changes instead.
    pub autosave_on_changes: bool,
    /// `persistence_fsync` (Midge, default false): an acknowledgement waits for the write to
    /// be on disk (survives power loss), not only in the operating system (survives a
    /// crash or `kill -9` of the broker).
    pub fsync: bool,
}

/// File name of the store when `persistence_file` is not given. Not Mosquitto's
/// `mosquitto.db`: the formats differ, and an existing Mosquitto file must not be mistaken
/// for Midge's.
pub const DEFAULT_PERSISTENCE_FILE: &str = "midge.db";

impl PersistenceOptions {
    /// `persistence_location` joined with `persistence_file` (Mosquitto joins them as
    /// strings, so the location is expected to end with `/`; both forms work here).
    pub fn path(&self) -> std::path::PathBuf {
        let file = self.file.as_deref().unwrap_or(DEFAULT_PERSISTENCE_FILE);
        match &self.location {
            Some(dir) => std::path::Path::new(dir).join(file),
            None => std::path::PathBuf::from(file),
        }
    }
}

impl Default for PersistenceOptions {
    fn default() -> Self {
        PersistenceOptions {
            enabled: false,
            file: None,
            location: None,
            autosave_interval: 1800,
            autosave_on_changes: false,
            fsync: false,
        }
    }
}

/// Reads a count or byte size where Mosquitto treats a negative value as 0 (unlimited).
fn non_negative_or_zero(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<u64, String> {
    let text = line.single()?;
    if let Ok(negative @ ..0) = value::parse_integer(text) {
        parser.warn(
            line,
            format!(
                "{}: negative value {negative} read as 0 (unlimited)",
                line.name
            ),
        );
        return Ok(0);
    }
    value::parse_size(text).map_err(|reason| line.invalid(reason))
}

/// A byte count that must not be negative (Mosquitto refuses negative `memory_limit`).
fn size(line: &Line<'_>) -> Result<u64, String> {
    let text = line.single()?;
    if let Ok(negative @ ..0) = value::parse_integer(text) {
        return Err(line.invalid(format!("value {negative} must not be negative")));
    }
    value::parse_size(text).map_err(|reason| line.invalid(reason))
}

fn to_usize(line: &Line<'_>, value: u64) -> Result<usize, String> {
    usize::try_from(value).map_err(|_| line.invalid(format!("value {value} out of range")))
}

pub(crate) fn max_inflight_messages(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_inflight_messages = u16::try_from(value)
        .map_err(|_| line.invalid(format!("value {value} out of range 0..={}", u16::MAX)))?;
    Ok(())
}

pub(crate) fn max_inflight_bytes(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_inflight_bytes = to_usize(line, value)?;
    Ok(())
}

pub(crate) fn max_keepalive(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.max_keepalive = line.integer_in(0..=u16::MAX)?;
    Ok(())
}

/// Smallest `max_packet_size` Mosquitto allows: below it not even CONNECT fits.
const MIN_PACKET_SIZE: u32 = 20;

pub(crate) fn max_packet_size(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.max_packet_size = Some(line.integer_in(MIN_PACKET_SIZE..=u32::MAX)?);
    Ok(())
}

pub(crate) fn max_queued_bytes(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_queued_bytes = to_usize(line, value)?;
    Ok(())
}

pub(crate) fn max_queued_messages(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_queued_messages = to_usize(line, value)?;
    Ok(())
}

/// The largest payload an MQTT packet can carry (the largest remaining length).
const MAX_PAYLOAD: u32 = 268_435_455;

pub(crate) fn message_size_limit(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.message_size_limit = line.integer_in(0..=MAX_PAYLOAD)?;
    parser.warn(
        line,
        "the 'message_size_limit' option is deprecated; use 'max_packet_size' instead",
    );
    Ok(())
}

/// Midge's `max_payload_size N` (from the seeds): the largest PUBLISH payload accepted;
/// 0 = no limit.
pub(crate) fn max_payload_size(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer_in(0..=MAX_PAYLOAD)?;
    parser.config.max_payload_size = (n > 0).then_some(n);
    Ok(())
}

/// Midge's `max_connections_per_IP N` (from the seeds, spelled so): at most N new
/// connections per source address per minute; 0 = no limit.
pub(crate) fn max_connections_per_ip(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let n = line.integer_in(0..=u32::MAX)?;
    parser.config.max_connections_per_ip = (n > 0).then_some(n);
    Ok(())
}

/// Midge's `max_publish_rate <messages per second>` per client; 0 = no limit.
pub(crate) fn max_publish_rate(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer_in(0..=u32::MAX)?;
    parser.config.max_publish_rate = (n > 0).then_some(u64::from(n));
    Ok(())
}

/// Midge's `max_publish_bytes_rate <payload bytes per second>` per client; 0 = no limit.
pub(crate) fn max_publish_bytes_rate(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let n = size(line)?;
    parser.config.max_publish_bytes_rate = (n > 0).then_some(n);
    Ok(())
}

/// Midge's `audit_log <file>`: security events as JSON lines.
pub(crate) fn audit_log(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_string(parser, line, "audit_log", |c| &mut c.audit_log)
}

/// Midge's `auth_failure_delay <seconds>`: the longest a login waits after failed ones
/// from the same address or with the same username; 0 = no slowing down.
pub(crate) fn auth_failure_delay(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.auth_failure_delay = line.integer_in(0..=3600)?;
    Ok(())
}

pub(crate) fn memory_limit(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.memory_limit = size(line)?;
    Ok(())
}

/// A global boolean, written through `field`.
fn global_bool(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
    field: fn(&mut super::Config) -> &mut bool,
) -> Result<(), String> {
    let value = line.bool()?;
    *field(&mut parser.config) = value;
    Ok(())
}

pub(crate) fn queue_qos0_messages(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.queue_qos0_messages)
}

pub(crate) fn set_tcp_nodelay(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.set_tcp_nodelay)
}

pub(crate) fn connection_messages(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.connection_messages)
}

pub(crate) fn retain_available(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.retain_available)
}

pub(crate) fn upgrade_outgoing_qos(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.upgrade_outgoing_qos)
}

/// Deprecated in Mosquitto. Midge always sends one copy of a message to a client whose
/// subscriptions overlap (see docs/compat.md), whatever the value.
pub(crate) fn allow_duplicate_messages(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.allow_duplicate_messages)?;
    parser.warn(
        line,
        "the 'allow_duplicate_messages' option is deprecated and will be removed in a future version; Midge sends one copy per client for overlapping subscriptions",
    );
    Ok(())
}

pub(crate) fn persistent_client_expiration(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let seconds = value::parse_duration(line.single()?).map_err(|reason| line.invalid(reason))?;
    parser.config.persistent_client_expiration = Some(seconds);
    Ok(())
}

/// Removed from Mosquitto long ago; it still accepts the option with a warning.
pub(crate) fn retry_interval(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.warn(
        line,
        "the 'retry_interval' option is no longer available and is ignored",
    );
    Ok(())
}

/// `sys_interval`: seconds between `$SYS` updates (0 = none).
pub(crate) fn sys_interval(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.sys_interval = line.integer_in(0..=u16::MAX)?;
    Ok(())
}

/// `persistence` / `retained_persistence`.
pub(crate) fn persistence(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.persistence.enabled = line.bool()?;
    Ok(())
}

/// `persistence_fsync` (Midge): acknowledge only what is on disk (fsync per commit), rather
/// than what reached the operating system.
pub(crate) fn persistence_fsync(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.persistence.fsync)
}

/// A global string option that may be given once, as in Mosquitto.
fn global_string(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
    name: &'static str,
    field: fn(&mut super::Config) -> &mut Option<String>,
) -> Result<(), String> {
    let text = parser.string(line)?;
    parser.once(Target::Global, line, name)?;
    *field(&mut parser.config) = Some(text);
    Ok(())
}

pub(crate) fn persistence_file(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_string(parser, line, "persistence_file", |c| {
        &mut c.persistence.file
    })
}

pub(crate) fn persistence_location(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_string(parser, line, "persistence_location", |c| {
        &mut c.persistence.location
    })
}

pub(crate) fn autosave_interval(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.persistence.autosave_interval = u32::try_from(value)
        .map_err(|_| line.invalid(format!("value {value} out of range 0..={}", u32::MAX)))?;
    Ok(())
}

pub(crate) fn autosave_on_changes(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.persistence.autosave_on_changes)
}

/// `pid_file`: the binary writes it once the listeners are bound and removes it at exit.
pub(crate) fn pid_file(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_string(parser, line, "pid_file", |c| &mut c.pid_file)
}

/// `user`: the last one wins, as in Mosquitto. The binary drops root privileges to it
/// after binding; without it Midge stays root (and warns) where Mosquitto would switch to
/// `mosquitto`.
pub(crate) fn user(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.user = Some(parser.string(line)?);
    Ok(())
}

/// `log_dest`: repeatable; `file` takes the rest of the line as its path, once.
pub(crate) fn log_dest(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let (first, rest) = line.first_and_rest()?;
    let dest = match first {
        "file" => {
            if rest.is_empty() || rest.starts_with('#') {
                return Err(line.invalid("missing file path after 'file'"));
            }
            let duplicate = parser
                .config
                .logging
                .destinations
                .iter()
                .any(|d| matches!(d, LogDest::File(_)));
            if duplicate {
                return Err(line.invalid("only one 'log_dest file' is allowed"));
            }
            LogDest::File(rest.to_owned())
        }
        other => {
            let dest = value::one_of(
                other,
                &[
                    ("none", LogDest::None),
                    ("stdout", LogDest::Stdout),
                    ("stderr", LogDest::Stderr),
                    ("syslog", LogDest::Syslog),
                    ("topic", LogDest::Topic),
                    ("dlt", LogDest::Dlt),
                    ("android", LogDest::Android),
                    // Handled above; listed so the error names it.
                    ("file", LogDest::None),
                ],
            )
            .map_err(|reason| line.invalid(reason))?;
            line.no_more(line.values().skip(1))?;
            dest
        }
    };
    parser.config.logging.destinations.push(dest);
    Ok(())
}

/// `log_type`: repeatable.
pub(crate) fn log_type(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let kind = value::one_of(
        line.single()?,
        &[
            ("none", LogType::None),
            ("information", LogType::Information),
            ("notice", LogType::Notice),
            ("warning", LogType::Warning),
            ("error", LogType::Error),
            ("debug", LogType::Debug),
            ("subscribe", LogType::Subscribe),
            ("unsubscribe", LogType::Unsubscribe),
            ("internal", LogType::Internal),
            ("websockets", LogType::Websockets),
            ("all", LogType::All),
        ],
    )
    .map_err(|reason| line.invalid(reason))?;
    parser.config.logging.types.push(kind);
    Ok(())
}

/// `log_facility`: syslog local0..local7.
pub(crate) fn log_facility(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.logging.facility = Some(line.integer_in(0u8..=7)?);
    Ok(())
}

pub(crate) fn log_timestamp(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_bool(parser, line, |c| &mut c.logging.timestamp)
}

pub(crate) fn log_timestamp_format(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    global_string(parser, line, "log_timestamp_format", |c| {
        &mut c.logging.timestamp_format
    })
}

pub(crate) fn websockets_log_level(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.logging.websockets_log_level = Some(line.integer()?);
    Ok(())
}

/// `websockets_headers_size` (2.0) / `packet_buffer_size` (2.1): a buffer size with no
/// effect a client can see.
pub(crate) fn packet_buffer_size(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.packet_buffer_size = Some(line.integer_in(0..=u16::MAX)?);
    Ok(())
}

/// 2.1's `enable_control_api` (`$CONTROL/broker/v1`): `false` is what Midge does.
pub(crate) fn enable_control_api(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let enabled = line.bool()?;
    parser.config.enable_control_api = enabled;
    if enabled {
        parser.not_yet_with(line, "true");
    }
    Ok(())
}

/// 2.1's `global_max_clients` / `global_max_connections`: negative (the default, -1) is
/// unlimited, which is what Midge does; a limit is not implemented yet.
pub(crate) fn global_max(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer()?;
    let limit = match n {
        ..=-1 => None,
        _ => Some(
            u32::try_from(n)
                .map_err(|_| line.invalid(format!("value {n} out of range -1..={}", u32::MAX)))?,
        ),
    };
    if line.name == "global_max_clients" {
        parser.config.global_max_clients = limit;
    } else {
        parser.config.global_max_connections = limit;
    }
    if limit.is_some() {
        parser.not_yet_with(line, &n.to_string());
    }
    Ok(())
}

/// 2.1's `retain_expiry_interval <minutes>`: how often expired retained messages are swept
/// from memory; expiry itself does not depend on it, so it changes nothing a client sees.
pub(crate) fn retain_expiry_interval(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.config.retain_expiry_interval = Some(line.integer_in(0..=u32::MAX)?);
    Ok(())
}

/// `include_dir <dir>`: the value is checked here; the parser reads the files.
pub(crate) fn include_dir(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.string(line).map(drop)
}
