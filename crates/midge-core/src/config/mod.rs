//! The `mosquitto.conf` parser: text in, [`Config`] out. Reading the file (and the files of
//! an `include_dir`) is the caller's job: see [`parse_with`].
//!
//! The rules follow Mosquitto 2.0's `mosquitto.conf(5)` and its parser (`src/conf.c`), with
//! 2.1's options: one `name value...` option per line, `#` comment lines, options after a
//! `listener` line configure that listener, options after a `connection` line configure that
//! bridge, `per_listener_settings` decides where security options go. Midge fails closed:
//! an unknown option, a bad value or an option in the wrong place stops parsing with
//! `file:line: reason`, and a Mosquitto option Midge does not implement yet is refused with
//! `file:line: option 'name' is not supported yet` once the whole configuration has been
//! checked (its value is checked and kept like any other). Every option name lives in one
//! table, `options::OPTIONS`, documented in `OPTIONS.md`.
//!
//! Where Midge reads a file differently from Mosquitto 2.0.11 it is deliberate and listed in
//! `OPTIONS.md`: it is stricter with values (`max_connections abc` is an error, not 0), more
//! lenient with layout (indented lines, tabs), and it does not open port 1883 behind the
//! user's back for options written before the first `listener`.

mod bridge;
mod error;
mod general;
mod line;
mod listener;
mod options;
mod security;
mod tls;
mod value;

#[cfg(test)]
mod seed_tests;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Display;

pub use bridge::{
    BridgeAddress, BridgeConfig, BridgeProtocol, BridgeTls, BridgeTopic, Direction, ReloadType,
    RestartTimeout, StartType,
};
pub use error::ConfigError;
pub use general::{LogDest, LogType, LoggingOptions, PersistenceOptions};
pub use listener::{ListenerConfig, Protocol, SocketDomain};
/// Default cap, in seconds, of `auth_failure_delay`.
pub const DEFAULT_AUTH_FAILURE_DELAY: u32 = 10;
pub use security::{PluginConfig, ResolvedSecurity, SecurityOptions, DEFAULT_AUTO_ID_PREFIX};
pub use tls::{KeyForm, TlsOptions, TlsVersion};

use line::Line;
use listener::DefaultListener;
use options::{Scope, Support};

/// A parsed configuration. `Default` is Mosquitto 2.0's behaviour with an empty file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listeners in file order, the `port`/`bind_address` default listener last. Empty =
    /// none configured: the broker then listens on the loopback interfaces only
    /// ("local only mode").
    pub listeners: Vec<ListenerConfig>,
    /// The settings of listeners the broker adds itself (local-only mode, `-p`): the
    /// listener options written before the first `listener` line when no `port` /
    /// `bind_address` made them the default listener's. Build such a listener with
    /// `ListenerConfig { port, bind_address, ..config.listener_defaults.clone() }`.
    pub listener_defaults: ListenerConfig,
    /// `per_listener_settings` (default false): whether security options belong to the
    /// listener block they are written in. Read the result through [`Config::security_for`].
    pub per_listener_settings: bool,
    /// The global security options (all of them when `per_listener_settings` is false;
    /// only `clientid_prefixes` and 2.1's `global_plugin`s when it is true).
    pub security: SecurityOptions,
    /// 2.1's `plugin_load <name> <path>` plugins, for listeners' `plugin_use` (issue 6).
    pub loaded_plugins: Vec<PluginConfig>,
    /// The global `allow_anonymous`, kept for code written before per-listener settings;
    /// same as `security.allow_anonymous`. `None` = not set: Mosquitto 2's default is
    /// false once a listener is configured and true in local-only mode: see
    /// [`Config::anonymous_allowed`] and [`Config::security_for`].
    pub allow_anonymous: Option<bool>,
    /// The global `allow_zero_length_clientid` (default true), as
    /// `security.allow_zero_length_clientid` with the default applied.
    pub allow_zero_length_clientid: bool,
    /// The global `auto_id_prefix` (default `auto-`), as `security.auto_id_prefix` with
    /// the default applied.
    pub auto_id_prefix: String,
    /// `check_retain_source` (default true): on subscribe, a retained message is only
    /// delivered if its publisher may still write to its topic.
    pub check_retain_source: bool,
    /// `max_keepalive` (default 65535): clients asking for a longer keep alive (or 0 in
    /// MQTT 5) are given this one as the server keep alive.
    pub max_keepalive: u16,
    /// `max_packet_size`, 20 or more; `None` = unlimited (the broker still applies the MQTT
    /// maximum of 268,435,455 bytes of remaining length).
    pub max_packet_size: Option<u32>,
    /// `message_size_limit` (default 0 = unlimited): largest accepted payload, at most
    /// 268,435,455. Deprecated in Mosquitto in favour of `max_packet_size` (a warning is
    /// added when set).
    pub message_size_limit: u32,
    /// Midge's `max_payload_size N` (from the seeds): the largest PUBLISH payload accepted;
    /// `None` (or 0) = no limit beyond the others.
    pub max_payload_size: Option<u32>,
    /// `max_inflight_messages` (default 20): outgoing QoS 1/2 messages in flight per client.
    /// 0 = unlimited (the broker uses 65535); negative values are read as 0, as Mosquitto does.
    pub max_inflight_messages: u16,
    /// `max_inflight_bytes` (default 0 = unlimited): payload bytes of outgoing QoS 1/2
    /// messages in flight per client; one message may always be in flight.
    pub max_inflight_bytes: usize,
    /// `max_queued_messages` (default 1000): messages queued per client beyond those in
    /// flight. 0 = unlimited; negative values are read as 0, as Mosquitto does.
    pub max_queued_messages: usize,
    /// `max_queued_bytes` (default 0 = unlimited): bytes of payload queued per client.
    pub max_queued_bytes: usize,
    /// `queue_qos0_messages` (default false): also queue QoS 0 messages for offline
    /// persistent clients (non-standard).
    pub queue_qos0_messages: bool,
    /// `memory_limit` (default 0 = unlimited): bytes of heap the broker may use; above it new
    /// connections and messages are refused.
    pub memory_limit: u64,
    /// Midge's `max_connections_per_IP N` (from the seeds): at most N new connections per
    /// source IP address per minute, the excess closed before any MQTT work. `None` (or 0)
    /// = no limit.
    pub max_connections_per_ip: Option<u32>,
    /// Midge's `auth_failure_delay` (default 10 s, 0 = off): the cap of the delay failed
    /// logins impose on the next attempts from the same address or username.
    pub auth_failure_delay: u32,
    /// Midge's `audit_log <file>`: refused logins, ACL denials, dynamic security commands
    /// and protocol violations as JSON lines.
    pub audit_log: Option<String>,
    /// Midge's `max_publish_rate`: PUBLISH packets per second per client; beyond it the
    /// broker reads from the client more slowly. `None` = no limit.
    pub max_publish_rate: Option<u64>,
    /// Midge's `max_publish_bytes_rate`: payload bytes per second per client, likewise.
    pub max_publish_bytes_rate: Option<u64>,
    /// 2.1's `global_max_clients` (sessions, connected or not); `None` = unlimited.
    pub global_max_clients: Option<u32>,
    /// 2.1's `global_max_connections` (connected clients); `None` = unlimited.
    pub global_max_connections: Option<u32>,
    /// `retain_available` (default true): false refuses retained messages.
    pub retain_available: bool,
    /// 2.1's `retain_expiry_interval` in minutes: how often expired retained messages are
    /// swept from memory.
    pub retain_expiry_interval: Option<u32>,
    /// `max_qos` (alias `maximum_qos`) given before the first `listener` (default 2): the
    /// highest QoS granted on listeners that do not set their own
    /// ([`ListenerConfig::max_qos`]).
    pub max_qos: u8,
    /// `upgrade_outgoing_qos` (default false): deliver at the subscription's QoS rather than
    /// the lower of publish and subscription QoS (non-standard).
    pub upgrade_outgoing_qos: bool,
    /// `allow_duplicate_messages` (deprecated, default true). Midge always sends one copy to
    /// a client whose subscriptions overlap.
    pub allow_duplicate_messages: bool,
    /// `set_tcp_nodelay` (default false): disable Nagle's algorithm on client sockets.
    pub set_tcp_nodelay: bool,
    /// `persistent_client_expiration` in seconds, parsed from Mosquitto's `1h`, `2d`, `1w`,
    /// `1m` (30 days), `1y` (365 days) or 2.1's `30s` form; `None` = sessions never expire.
    pub persistent_client_expiration: Option<u64>,
    /// `persistence` and its parameters (issue 7).
    pub persistence: PersistenceOptions,
    /// `connection_messages` (default true): log every client connection and
    /// disconnection.
    pub connection_messages: bool,
    /// `log_*` options (issue 7).
    pub logging: LoggingOptions,
    /// `sys_interval` (default 10, 0 = off): seconds between `$SYS` updates.
    pub sys_interval: u16,
    /// `user`: account to switch to when started as root (issue 7).
    pub user: Option<String>,
    /// `pid_file` (issue 7).
    pub pid_file: Option<String>,
    /// `websockets_headers_size` / 2.1's `packet_buffer_size`.
    pub packet_buffer_size: Option<u16>,
    /// 2.1's `enable_control_api`.
    pub enable_control_api: bool,
    /// `connection` blocks (issue 8).
    pub bridges: Vec<BridgeConfig>,
    /// Warnings for the broker to log, each `file:line: message`: deprecated options,
    /// values read differently from how they are written, options whose effect may
    /// surprise.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            listener_defaults: ListenerConfig::default(),
            per_listener_settings: false,
            security: SecurityOptions::default(),
            loaded_plugins: Vec::new(),
            allow_anonymous: None,
            allow_zero_length_clientid: true,
            auto_id_prefix: DEFAULT_AUTO_ID_PREFIX.to_owned(),
            check_retain_source: true,
            max_keepalive: u16::MAX,
            max_packet_size: None,
            message_size_limit: 0,
            max_payload_size: None,
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            queue_qos0_messages: false,
            memory_limit: 0,
            max_connections_per_ip: None,
            auth_failure_delay: DEFAULT_AUTH_FAILURE_DELAY,
            audit_log: None,
            max_publish_rate: None,
            max_publish_bytes_rate: None,
            global_max_clients: None,
            global_max_connections: None,
            retain_available: true,
            retain_expiry_interval: None,
            max_qos: 2,
            upgrade_outgoing_qos: false,
            allow_duplicate_messages: true,
            set_tcp_nodelay: false,
            persistent_client_expiration: None,
            persistence: PersistenceOptions::default(),
            connection_messages: true,
            logging: LoggingOptions::default(),
            sys_interval: 10,
            user: None,
            pid_file: None,
            packet_buffer_size: None,
            enable_control_api: false,
            bridges: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Whether clients without a username may connect, by the global setting:
    /// `allow_anonymous` if set, otherwise Mosquitto 2's default — true only in local-only
    /// mode (no listener configured). Per listener, use [`Config::security_for`].
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.listeners.is_empty())
    }

    /// The highest QoS granted on `listener`: its own `max_qos`, else the global one.
    pub fn listener_max_qos(&self, listener: &ListenerConfig) -> u8 {
        listener.max_qos.unwrap_or(self.max_qos)
    }
}

/// Reads the `*.conf` files of an `include_dir` directory: given the directory as written,
/// returns `(path, text)` for each file in the order to parse them, or the reason it cannot
/// (which becomes `file:line: include_dir: <reason>`).
///
/// Mosquitto's contract, which the reader must keep: only regular files whose name ends in
/// `.conf` (and is longer than that), see [`is_include_file`]; sorted with
/// [`include_order`] (upper case before lower case of the same letter); paths written
/// `<dir>/<name>`, which is what error messages show.
pub type IncludeReader<'r> = dyn FnMut(&str) -> Result<Vec<(String, String)>, String> + 'r;

/// Parses the text of a configuration file. `file_name` is used only in messages. An
/// `include_dir` line is an error here ("include_dir needs a file system"): use
/// [`parse_with`] to allow it.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
    Parser::new(file_name, None).run(text)
}

/// Parses the text of a configuration file, reading `include_dir` directories through
/// `include` (see [`IncludeReader`]). Each included file is parsed as Mosquitto does: with
/// its own name and line numbers in messages, starting outside any listener or bridge
/// block, after the lines before the `include_dir` and before the lines after it; an
/// `include_dir` inside an included file is ignored with a warning. Only the main file may
/// include others, so there is no recursion to guard against.
pub fn parse_with(
    text: &str,
    file_name: &str,
    include: &mut IncludeReader<'_>,
) -> Result<Config, ConfigError> {
    Parser::new(file_name, Some(include)).run(text)
}

/// [`parse`] that returns the configuration even when it uses options not supported yet,
/// so tests can check the values kept for later issues.
#[cfg(test)]
pub(crate) fn parse_keeping_unsupported(
    text: &str,
    file_name: &str,
) -> Result<Config, ConfigError> {
    let mut parser = Parser::new(file_name, None);
    parser.keep_unsupported = true;
    parser.run(text)
}

/// Whether a directory entry named `file_name` is read by `include_dir`: Mosquitto reads
/// names ending in `.conf` with at least one character before it.
pub fn is_include_file(file_name: &str) -> bool {
    file_name.len() > ".conf".len() && file_name.ends_with(".conf")
}

/// Mosquitto's `include_dir` order (`scmp_p` in its source): byte by byte, comparing upper
/// case first and then the exact byte, so `A.conf` < `a.conf` < `B.conf` < `b.conf`, and a
/// shorter name before a longer one it starts.
pub fn include_order(a: &str, b: &str) -> Ordering {
    let key = |s: &str| -> Vec<(u8, u8)> {
        s.bytes()
            .map(|byte| (byte.to_ascii_uppercase(), byte))
            .collect()
    };
    key(a).cmp(&key(b))
}

/// What a scoped value belongs to, for "duplicate value" checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// The whole broker.
    Global,
    /// Listener options given before the first `listener` line.
    Pre,
    Listener(usize),
    Bridge(usize),
}

/// The plugin that `plugin_opt_*` lines currently add to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PluginRef {
    /// In [`Config::security`] (`listener: None`) or a listener's security options.
    Security {
        listener: Option<usize>,
        index: usize,
    },
    /// In the default listener's security options (`per_listener_settings true` after
    /// `port`).
    Pre(usize),
    /// In [`Config::loaded_plugins`].
    Loaded(usize),
}

/// The blocks a line is in. Like Mosquitto, every file (main or included) starts outside
/// any listener, bridge or plugin.
#[derive(Debug, Clone, Copy, Default)]
struct FileScope {
    listener: Option<usize>,
    bridge: Option<usize>,
    plugin: Option<PluginRef>,
}

/// A place in the configuration, for messages about another line.
#[derive(Debug, Clone)]
struct Location {
    file: String,
    line: usize,
}

/// A listener option written before the first `listener` line, applied again to every
/// listener that does not set it.
struct StoredLine {
    file: String,
    number: usize,
    text: String,
}

/// Parsing state shared by the option handlers.
pub(crate) struct Parser<'r> {
    /// The file being read, for messages.
    file: String,
    /// The main file, which an `include_dir` must not contain.
    main_file: String,
    /// 0 in the main file, 1 in included files.
    level: usize,
    /// The configuration built so far; handlers write into it.
    pub(crate) config: Config,
    scope: FileScope,
    /// `port` / `bind_address`.
    default: DefaultListener,
    /// Listener options written before the first `listener` line.
    pre: ListenerConfig,
    pre_lines: Vec<StoredLine>,
    /// For each listener, the listener options its own block sets.
    listener_set: Vec<Vec<&'static str>>,
    /// Where each once-only value was set.
    seen: HashMap<(Target, &'static str), Location>,
    /// The first security option, which `per_listener_settings true` must precede.
    first_security: Option<(String, Location)>,
    /// Security options written in a listener block while `per_listener_settings` is
    /// false: they apply to every listener, which a warning says when there are several.
    global_in_listener: Vec<(String, Location)>,
    /// The first option not supported yet, reported once everything else is checked.
    not_yet: Option<ConfigError>,
    /// Applying stored pre-listener lines to listeners: no warnings or once-only checks.
    replaying: bool,
    /// Tests only: return the configuration despite options not supported yet.
    #[cfg(test)]
    keep_unsupported: bool,
    include: Option<&'r mut IncludeReader<'r>>,
}

impl<'r> Parser<'r> {
    fn new(file: &str, include: Option<&'r mut IncludeReader<'r>>) -> Self {
        Parser {
            file: file.to_owned(),
            main_file: file.to_owned(),
            level: 0,
            config: Config::default(),
            scope: FileScope::default(),
            default: DefaultListener::default(),
            pre: ListenerConfig::default(),
            pre_lines: Vec::new(),
            listener_set: Vec::new(),
            seen: HashMap::new(),
            first_security: None,
            global_in_listener: Vec::new(),
            not_yet: None,
            replaying: false,
            #[cfg(test)]
            keep_unsupported: false,
            include,
        }
    }

    fn run(mut self, text: &str) -> Result<Config, ConfigError> {
        self.parse_text(text)?;
        self.finish()
    }

    /// Parses one file's text in a fresh scope.
    fn parse_text(&mut self, text: &str) -> Result<(), ConfigError> {
        let outer = std::mem::take(&mut self.scope);
        // Editors on some systems start files with a byte order mark; it is not part of the
        // first option's name.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let Some(line) = Line::parse(index + 1, raw) else {
                continue;
            };
            self.apply(&line)?;
        }
        self.scope = outer;
        Ok(())
    }

    fn apply(&mut self, line: &Line<'_>) -> Result<(), ConfigError> {
        let Some(&(name, scope, support)) = options::lookup(line.name) else {
            return Err(self.unknown(line));
        };
        let (handler, not_yet) = match support {
            Support::Handled(handler) | Support::Ignored(handler) => (handler, false),
            Support::NotYet(handler, _) => (handler, true),
        };
        handler(self, line).map_err(|message| self.error(line.number, message))?;
        if scope == Scope::Listener {
            match self.scope.listener {
                Some(index) => {
                    if let Some(set) = self.listener_set.get_mut(index) {
                        set.push(name);
                    }
                }
                None => self.pre_lines.push(StoredLine {
                    file: self.file.clone(),
                    number: line.number,
                    text: format!("{} {}", line.name, line.rest),
                }),
            }
        }
        if not_yet {
            self.record_not_yet(
                line.number,
                format!("option '{}' is not supported yet", line.name),
            );
        }
        if name == "include_dir" {
            self.include_dir(line)?;
        }
        Ok(())
    }

    fn unknown(&self, line: &Line<'_>) -> ConfigError {
        let name = line.name.escape_debug();
        let message = match options::case_insensitive(line.name) {
            Some(known) => format!(
                "unknown option '{name}' (option names are case sensitive: did you mean '{known}'?)"
            ),
            None => format!("unknown option '{name}'"),
        };
        self.error(line.number, message)
    }

    /// Reads an `include_dir` through the caller's reader and parses each file.
    fn include_dir(&mut self, line: &Line<'_>) -> Result<(), ConfigError> {
        let dir = line.rest.trim();
        if self.level > 0 {
            self.warn(
                line,
                "include_dir is ignored in an included file: only the main configuration file may include others (as in Mosquitto)",
            );
            return Ok(());
        }
        let Some(reader) = self.include.as_mut() else {
            return Err(self.error(line.number, "include_dir needs a file system".to_owned()));
        };
        let files = reader(dir);
        let files =
            files.map_err(|reason| self.error(line.number, format!("include_dir: {reason}")))?;
        for (path, text) in files {
            if path == self.main_file {
                return Err(self.error(
                    line.number,
                    format!("include_dir: {dir} contains the main configuration file {path}"),
                ));
            }
            let outer = std::mem::replace(&mut self.file, path);
            self.level += 1;
            let result = self.parse_text(&text);
            self.level -= 1;
            self.file = outer;
            result?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        self.resolve_default_listener()?;
        self.check_listeners()?;
        let plugins = self
            .config
            .security
            .plugins
            .iter()
            .chain(&self.config.loaded_plugins)
            .chain(
                self.config
                    .listeners
                    .iter()
                    .flat_map(|l| &l.security.plugins),
            );
        for plugin in plugins {
            plugin
                .dynamic_security_file()
                .map_err(|message| ConfigError {
                    file: plugin.file.clone(),
                    line: plugin.line,
                    message,
                })?;
        }
        for bridge in &self.config.bridges {
            bridge::check(bridge).map_err(|message| ConfigError {
                file: bridge.file.clone(),
                line: bridge.line,
                message,
            })?;
        }
        if self.config.listeners.len() > 1 {
            for (option, location) in std::mem::take(&mut self.global_in_listener) {
                self.warn_at(
                    &location,
                    format!(
                        "{option} applies to every listener, not only to the one it follows, because per_listener_settings is false"
                    ),
                );
            }
        }
        let security = &self.config.security;
        self.config.allow_anonymous = security.allow_anonymous;
        self.config.allow_zero_length_clientid =
            security.allow_zero_length_clientid.unwrap_or(true);
        self.config.auto_id_prefix = security
            .auto_id_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_AUTO_ID_PREFIX.to_owned());
        // Mosquitto starts such a listener and then fails every handshake on it; say why
        // up front.
        let unkeyed: Vec<(String, usize)> = self
            .config
            .listeners
            .iter()
            .filter(|l| l.tls.psk_hint.is_some() && self.config.security_for(l).psk_file.is_none())
            .map(|l| (l.file.clone(), l.line))
            .collect();
        for (file, line) in unkeyed {
            self.warnings_push(
                &file,
                line,
                "psk_hint is set but no psk_file applies to this listener: every TLS-PSK handshake on it will fail",
            );
        }
        #[cfg(test)]
        if self.keep_unsupported {
            return Ok(self.config);
        }
        match self.not_yet.take() {
            Some(error) => Err(error),
            None => Ok(self.config),
        }
    }

    /// Listener options written before the first `listener`: the default listener's when
    /// `port` / `bind_address` ask for one (Mosquitto's 1.x style), otherwise every
    /// listener's that does not set them (and [`Config::listener_defaults`]).
    fn resolve_default_listener(&mut self) -> Result<(), ConfigError> {
        let pre = std::mem::take(&mut self.pre);
        let lines = std::mem::take(&mut self.pre_lines);
        if self.default.requested() {
            let listener = std::mem::take(&mut self.default).into_listener(pre);
            listener::check_duplicate(&self.config.listeners, &listener).map_err(|reason| {
                ConfigError {
                    file: listener.file.clone(),
                    line: listener.line,
                    message: format!("port/bind_address: {reason}"),
                }
            })?;
            self.config.listeners.push(listener);
            return Ok(());
        }
        for stored in &lines {
            let name = stored.text.split_whitespace().next().unwrap_or_default();
            self.warnings_push(
                &stored.file,
                stored.number,
                format!(
                    "{name} before the first 'listener' line applies to every listener that does not set its own (Mosquitto would give it to a default listener on port 1883 instead)"
                ),
            );
        }
        self.replaying = true;
        for index in 0..self.config.listeners.len() {
            for stored in &lines {
                let Some(line) = Line::parse(stored.number, &stored.text) else {
                    continue;
                };
                let Some(&(name, _, support)) = options::lookup(line.name) else {
                    continue;
                };
                let own = self
                    .listener_set
                    .get(index)
                    .is_some_and(|set| set.contains(&name));
                if own {
                    continue;
                }
                let handler = match support {
                    Support::Handled(h) | Support::Ignored(h) | Support::NotYet(h, _) => h,
                };
                self.scope.listener = Some(index);
                self.file.clone_from(&stored.file);
                handler(self, &line).map_err(|message| self.error(line.number, message))?;
            }
        }
        self.replaying = false;
        self.file.clone_from(&self.main_file);
        self.scope = FileScope::default();
        self.config.listener_defaults = pre;
        Ok(())
    }

    /// Checks made once every listener is complete.
    fn check_listeners(&self) -> Result<(), ConfigError> {
        for (index, listener) in self.config.listeners.iter().enumerate() {
            if let Err((option, message)) = tls::check(&listener.tls) {
                let location = self
                    .seen
                    .get(&(Target::Listener(index), option))
                    .or_else(|| self.seen.get(&(Target::Pre, option)));
                let (file, line) = match location {
                    Some(location) => (location.file.clone(), location.line),
                    None => (listener.file.clone(), listener.line),
                };
                return Err(ConfigError {
                    file,
                    line,
                    message,
                });
            }
        }
        Ok(())
    }

    // ---- services for the option handlers ----

    /// The file being read.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// Records a warning for the broker to log.
    pub(crate) fn warn(&mut self, line: &Line<'_>, message: impl Display) {
        if !self.replaying {
            let file = self.file.clone();
            self.warnings_push(&file, line.number, message);
        }
    }

    fn warn_at(&mut self, location: &Location, message: impl Display) {
        self.warnings_push(&location.file, location.line, message);
    }

    fn warnings_push(&mut self, file: &str, line: usize, message: impl Display) {
        self.config
            .warnings
            .push(format!("{file}:{line}: {message}"));
    }

    fn location(&self, line: &Line<'_>) -> Location {
        Location {
            file: self.file.clone(),
            line: line.number,
        }
    }

    /// `line N`, or `file:N` when it is in another file than the one being read.
    fn describe(&self, location: &Location) -> String {
        if location.file == self.file {
            format!("line {}", location.line)
        } else {
            format!("{}:{}", location.file, location.line)
        }
    }

    fn error(&self, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            message,
        }
    }

    fn record_not_yet(&mut self, line: usize, message: String) {
        if self.not_yet.is_none() && !self.replaying {
            self.not_yet = Some(self.error(line, message));
        }
    }

    /// `option '<name> <value>' is not supported yet`, for options Midge handles only with
    /// some values (`persistence true`).
    pub(crate) fn not_yet_with(&mut self, line: &Line<'_>, value: &str) {
        let message = format!(
            "option '{} {}' is not supported yet",
            line.name,
            value.escape_debug()
        );
        self.record_not_yet(line.number, message);
    }

    /// The default listener, created at `line` if this is its first option.
    pub(crate) fn default_listener(&mut self, line: &Line<'_>) -> &mut DefaultListener {
        self.default.start(&self.file, line.number);
        &mut self.default
    }

    pub(crate) fn add_listener(&mut self, listener: ListenerConfig) {
        self.config.listeners.push(listener);
        self.listener_set.push(Vec::new());
        self.scope.listener = Some(self.config.listeners.len() - 1);
    }

    pub(crate) fn add_bridge(&mut self, bridge: BridgeConfig) {
        self.config.bridges.push(bridge);
        self.scope.bridge = Some(self.config.bridges.len() - 1);
    }

    /// The index of the listener whose block we are in, if any.
    pub(crate) fn scope_listener(&self) -> Option<usize> {
        self.scope.listener
    }

    /// The listener whose block we are in, if any.
    pub(crate) fn current_listener(&mut self) -> Option<&mut ListenerConfig> {
        self.config.listeners.get_mut(self.scope.listener?)
    }

    /// Where listener options go: the current listener, or before the first `listener`
    /// line the pre-listener settings.
    pub(crate) fn listener_mut(&mut self) -> &mut ListenerConfig {
        match self.scope.listener {
            Some(index) if index < self.config.listeners.len() => &mut self.config.listeners[index],
            _ => &mut self.pre,
        }
    }

    pub(crate) fn listener_target(&self) -> Target {
        match self.scope.listener {
            Some(index) => Target::Listener(index),
            None => Target::Pre,
        }
    }

    /// The current listener's index, or the error Mosquitto 2.1 gives for options that
    /// need one.
    pub(crate) fn require_listener(&self, line: &Line<'_>) -> Result<usize, String> {
        self.scope
            .listener
            .ok_or_else(|| line.invalid("requires a 'listener' line before it"))
    }

    /// The current bridge's index.
    pub(crate) fn require_bridge(&self, line: &Line<'_>) -> Result<usize, String> {
        self.scope
            .bridge
            .ok_or_else(|| line.invalid("requires a 'connection' line (a bridge) before it"))
    }

    /// A string value: the rest of the line, as Mosquitto reads it. A `#` in it is not a
    /// comment (in Mosquitto either), which a warning points out.
    pub(crate) fn string(&mut self, line: &Line<'_>) -> Result<String, String> {
        let text = line.rest_of_line()?;
        if text
            .split_whitespace()
            .skip(1)
            .any(|word| word.starts_with('#'))
        {
            self.warn(
                line,
                format!(
                    "{}: the value '{text}' includes what looks like a comment; as in Mosquitto, a '#' after the value is part of it",
                    line.name,
                ),
            );
        }
        Ok(text.to_owned())
    }

    /// Fails if `name` was already set for `target`, as Mosquitto does for string options;
    /// otherwise remembers this line.
    pub(crate) fn once(
        &mut self,
        target: Target,
        line: &Line<'_>,
        name: &'static str,
    ) -> Result<(), String> {
        if self.replaying {
            return Ok(());
        }
        if let Some(earlier) = self.seen.get(&(target, name)) {
            let mut reason = format!(
                "duplicate value (already set on {})",
                self.describe(earlier)
            );
            let security_option =
                options::lookup(line.name).is_some_and(|(_, scope, _)| *scope == Scope::Security);
            if target == Target::Global
                && security_option
                && !self.config.per_listener_settings
                && self.scope.listener.is_some()
            {
                reason.push_str("; with per_listener_settings false it applies to every listener");
            }
            return Err(line.invalid(reason));
        }
        let location = self.location(line);
        self.seen.insert((target, name), location);
        Ok(())
    }

    /// Remembers the first security option, which `per_listener_settings true` must come
    /// before.
    pub(crate) fn note_security_option(&mut self, line: &Line<'_>) {
        if self.first_security.is_none() && !self.replaying {
            self.first_security = Some((line.name.to_owned(), self.location(line)));
        }
    }

    pub(crate) fn first_security_option(&self) -> Option<(String, String)> {
        self.first_security
            .as_ref()
            .map(|(name, location)| (name.clone(), self.describe(location)))
    }

    pub(crate) fn note_global_in_listener_block(&mut self, line: &Line<'_>) {
        if !self.replaying {
            let location = self.location(line);
            self.global_in_listener
                .push((line.name.to_owned(), location));
        }
    }

    pub(crate) fn set_plugin(&mut self, plugin: PluginRef) {
        self.scope.plugin = Some(plugin);
    }

    /// The plugin the latest `plugin` (or `plugin_load`, `plugin_use`, `global_plugin`) of
    /// this file made current; an error without one, as in Mosquitto.
    pub(crate) fn current_plugin(&mut self, line: &Line<'_>) -> Result<&mut PluginConfig, String> {
        let missing = || line.invalid("requires a 'plugin' line before it");
        let plugin = match self.scope.plugin.ok_or_else(missing)? {
            PluginRef::Security {
                listener: None,
                index,
            } => self.config.security.plugins.get_mut(index),
            PluginRef::Security {
                listener: Some(listener),
                index,
            } => self
                .config
                .listeners
                .get_mut(listener)
                .and_then(|l| l.security.plugins.get_mut(index)),
            PluginRef::Pre(index) => self.pre.security.plugins.get_mut(index),
            PluginRef::Loaded(index) => self.config.loaded_plugins.get_mut(index),
        };
        plugin.ok_or_else(missing)
    }
}
