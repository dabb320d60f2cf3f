//! The `mosquitto.conf` parser: text in, [`Config`] out. Reading the file (and any
//! `include_dir`) is the caller's job.
//!
//! The rules follow Mosquitto 2.0's `mosquitto.conf(5)`: one `name value...` option per
//! line, `#` comment lines, options after a `listener` line configure that listener.
//! Midge fails closed: an unknown option, a bad value, or a documented Mosquitto option
//! Midge does not implement yet stops parsing with `file:line: reason`, rather than being
//! silently ignored. Every option name lives in one table, `options::OPTIONS`.

mod error;
mod line;
mod listener;
mod options;
mod value;

use std::fmt::Display;

pub use error::ConfigError;
pub use listener::ListenerConfig;

use line::Line;
use listener::DefaultListener;

/// A parsed configuration. `Default` is Mosquitto 2.0's behaviour with an empty file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listeners in file order, the `port`/`bind_address` default listener last. Empty =
    /// none configured: the broker then listens on the loopback interfaces only
    /// ("local only mode").
    pub listeners: Vec<ListenerConfig>,
    /// `allow_anonymous`; `None` = not set. Mosquitto 2's default is false once a listener
    /// is configured and true in local-only mode: see [`Config::anonymous_allowed`].
    pub allow_anonymous: Option<bool>,
    /// `max_keepalive` (default 65535): clients asking for a longer keep alive (or 0 in
    /// MQTT 5) are given this one as the server keep alive.
    pub max_keepalive: u16,
    /// `max_packet_size`, 20 or more; `None` = unlimited (the broker still applies the MQTT
    /// maximum of 268,435,455 bytes of remaining length).
    pub max_packet_size: Option<u32>,
    /// `max_inflight_messages` (default 20): outgoing QoS 1/2 messages in flight per client.
    /// 0 = unlimited (the broker uses 65535); negative values are read as 0, as Mosquitto does.
    pub max_inflight_messages: u16,
    /// `max_queued_messages` (default 1000): messages queued per client beyond those in
    /// flight. 0 = unlimited; negative values are read as 0, as Mosquitto does.
    pub max_queued_messages: usize,
    /// `max_queued_bytes` (default 0 = unlimited): bytes of payload queued per client.
    pub max_queued_bytes: usize,
    /// `retain_available` (default true): false refuses retained messages.
    pub retain_available: bool,
    /// `persistent_client_expiration` in seconds, parsed from Mosquitto's `1h`, `2d`, `1w`,
    /// `1m` (30 days), `1y` (365 days) or 2.1's `30s` form; `None` = sessions never expire.
    pub persistent_client_expiration: Option<u64>,
    /// `message_size_limit` (default 0 = unlimited): largest accepted payload, at most
    /// 268,435,455. Deprecated in Mosquitto in favour of `max_packet_size` (a warning is
    /// added when set).
    pub message_size_limit: u32,
    /// `max_qos` (alias `maximum_qos`) given before the first `listener` (default 2): the
    /// highest QoS granted on listeners that do not set their own
    /// ([`ListenerConfig::max_qos`]).
    pub max_qos: u8,
    /// `upgrade_outgoing_qos` (default false): deliver at the subscription's QoS rather than
    /// the lower of publish and subscription QoS (non-standard).
    pub upgrade_outgoing_qos: bool,
    /// `allow_zero_length_clientid` (default true): an empty client id gets a generated one.
    pub allow_zero_length_clientid: bool,
    /// `auto_id_prefix` (default `auto-`, at most 50 characters): prefix of generated
    /// client ids.
    pub auto_id_prefix: String,
    /// Warnings for the broker to log, each `file:line: message`: deprecated options and
    /// values read differently from how they are written.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            allow_anonymous: None,
            max_keepalive: u16::MAX,
            max_packet_size: None,
            max_inflight_messages: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            retain_available: true,
            persistent_client_expiration: None,
            message_size_limit: 0,
            max_qos: 2,
            upgrade_outgoing_qos: false,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".to_owned(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Whether clients without a username may connect: `allow_anonymous` if set, otherwise
    /// Mosquitto 2's default — true only in local-only mode (no listener configured).
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.listeners.is_empty())
    }

    /// The highest QoS granted on `listener`: its own `max_qos`, else the global one.
    pub fn listener_max_qos(&self, listener: &ListenerConfig) -> u8 {
        listener.max_qos.unwrap_or(self.max_qos)
    }
}

/// Parses the text of a configuration file. `file_name` is used only in messages.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
    let mut parser = Parser::new(file_name);
    // Editors on some systems start files with a byte order mark; it is not part of the
    // first option's name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let Some(line) = Line::parse(index + 1, raw) else {
            continue;
        };
        let handler = match options::lookup(line.name) {
            Some(options::Support::Handled(handler)) => handler,
            Some(options::Support::NotYet) => {
                return Err(parser.error(
                    line.number,
                    format!("option '{}' is not supported yet", line.name),
                ))
            }
            None => {
                return Err(parser.error(
                    line.number,
                    format!("unknown option '{}'", line.name.escape_debug()),
                ))
            }
        };
        handler(&mut parser, &line).map_err(|message| parser.error(line.number, message))?;
    }
    parser.finish()
}

/// Parsing state shared by the option handlers.
pub(crate) struct Parser<'f> {
    /// File name for messages.
    file: &'f str,
    /// The configuration built so far; handlers write into it.
    pub(crate) config: Config,
    /// Index in `config.listeners` of the latest `listener`: listener options apply to it.
    /// `None` before the first one, where they set global defaults.
    pub(crate) current: Option<usize>,
    /// The listener built from the deprecated `port` / `bind_address`, if either appeared;
    /// appended to the listeners at the end, as Mosquitto does.
    default: Option<DefaultListener>,
    /// Whether `auto_id_prefix` has appeared: like Mosquitto, a second one is an error.
    pub(crate) auto_id_prefix_set: bool,
}

impl<'f> Parser<'f> {
    fn new(file: &'f str) -> Self {
        Parser {
            file,
            config: Config::default(),
            current: None,
            default: None,
            auto_id_prefix_set: false,
        }
    }

    /// Records a warning for the broker to log.
    pub(crate) fn warn(&mut self, line: &Line<'_>, message: impl Display) {
        self.config
            .warnings
            .push(format!("{}:{}: {}", self.file, line.number, message));
    }

    /// The default listener, created at `line` if this is its first option.
    pub(crate) fn default_listener(&mut self, line: &Line<'_>) -> &mut DefaultListener {
        self.default
            .get_or_insert_with(|| DefaultListener::new(line.number))
    }

    /// The listener whose block we are in, if any.
    pub(crate) fn current_listener(&mut self) -> Option<&mut ListenerConfig> {
        self.config.listeners.get_mut(self.current?)
    }

    fn error(&self, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line,
            message,
        }
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        if let Some(default) = self.default.take() {
            let listener = default.into_listener();
            listener::check_duplicate(&self.config.listeners, &listener).map_err(|reason| {
                self.error(listener.line, format!("port/bind_address: {reason}"))
            })?;
            self.config.listeners.push(listener);
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        match parse(text, "test.conf") {
            Ok(config) => config,
            Err(error) => panic!("unexpected error: {error}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text, "test.conf") {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn listener(port: u16, bind_address: Option<&str>, line: usize) -> ListenerConfig {
        ListenerConfig {
            port,
            bind_address: bind_address.map(str::to_owned),
            line,
            max_qos: None,
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = ok("");
        assert_eq!(config, Config::default());
        assert!(config.listeners.is_empty());
        assert_eq!(config.allow_anonymous, None);
        assert!(
            config.anonymous_allowed(),
            "local-only mode allows anonymous"
        );
        assert_eq!(config.max_keepalive, 65535);
        assert_eq!(config.max_packet_size, None);
        assert_eq!(config.max_inflight_messages, 20);
        assert_eq!(config.max_queued_messages, 1000);
        assert_eq!(config.max_queued_bytes, 0);
        assert!(config.retain_available);
        assert_eq!(config.persistent_client_expiration, None);
        assert_eq!(config.message_size_limit, 0);
        assert_eq!(config.max_qos, 2);
        assert!(!config.upgrade_outgoing_qos);
        assert!(config.allow_zero_length_clientid);
        assert_eq!(config.auto_id_prefix, "auto-");
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn typical_config() {
        let config = ok("listener 1883\n\
                         allow_anonymous true\n\
                         max_keepalive 120\n\
                         max_packet_size 1024\n\
                         max_inflight_messages 10\n\
                         max_queued_messages 100\n");
        assert_eq!(config.listeners, [listener(1883, None, 1)]);
        assert_eq!(config.allow_anonymous, Some(true));
        assert!(config.anonymous_allowed());
        assert_eq!(config.max_keepalive, 120);
        assert_eq!(config.max_packet_size, Some(1024));
        assert_eq!(config.max_inflight_messages, 10);
        assert_eq!(config.max_queued_messages, 100);
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn a_listener_makes_anonymous_default_to_false() {
        let config = ok("listener 1883\n");
        assert_eq!(config.allow_anonymous, None);
        assert!(!config.anonymous_allowed());
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let config = ok("\u{feff}# a comment\n\
                         \n\
                         \t  \n\
                         \x20  # an indented comment\n\
                         listener\t1884   127.0.0.1   \r\n\
                         max_keepalive 60 # one minute\n\
                         retain_available false\t\n");
        assert_eq!(config.listeners, [listener(1884, Some("127.0.0.1"), 5)]);
        assert_eq!(config.max_keepalive, 60);
        assert!(!config.retain_available);
    }

    #[test]
    fn listeners_in_order_with_their_own_max_qos() {
        let config = ok("max_qos 1\n\
                         listener 1883\n\
                         listener 8883 0.0.0.0\n\
                         max_qos 0\n\
                         listener 1884 ::1 # loopback only\n\
                         maximum_qos 2\n");
        assert_eq!(config.max_qos, 1);
        let qos: Vec<Option<u8>> = config.listeners.iter().map(|l| l.max_qos).collect();
        assert_eq!(qos, [None, Some(0), Some(2)]);
        let effective: Vec<u8> = config
            .listeners
            .iter()
            .map(|l| config.listener_max_qos(l))
            .collect();
        assert_eq!(effective, [1, 0, 2]);
        assert_eq!(config.listeners[1].bind_address.as_deref(), Some("0.0.0.0"));
        assert_eq!(config.listeners[2].bind_address.as_deref(), Some("::1"));
        assert_eq!(config.listeners[2].line, 5);
    }

    #[test]
    fn listener_errors() {
        assert_eq!(err("listener\n"), "test.conf:1: listener: missing value");
        assert_eq!(
            err("listener 70000\n"),
            "test.conf:1: listener: value 70000 out of range 0..=65535"
        );
        assert_eq!(
            err("listener 1883 0.0.0.0 extra\n"),
            "test.conf:1: listener: unexpected extra value 'extra'"
        );
        assert_eq!(
            err("listener 0\n"),
            "test.conf:1: listener: a listener with port 0 must provide a Unix socket path"
        );
        assert_eq!(
            err("listener 0 /run/midge.sock\n"),
            "test.conf:1: listener: Unix socket listeners are not supported yet"
        );
        assert_eq!(
            err("listener 1883\nlistener 1883\n"),
            "test.conf:2: listener: duplicate listener for port 1883 (already defined on line 1)"
        );
        // Same port on different addresses is fine.
        assert_eq!(
            ok("listener 1883 127.0.0.1\nlistener 1883 ::1\n")
                .listeners
                .len(),
            2
        );
    }

    #[test]
    fn deprecated_port_and_bind_address_make_the_default_listener() {
        let config = ok("bind_address 127.0.0.1\nlistener 8883\nport 1884\n");
        assert_eq!(
            config.listeners,
            [
                listener(8883, None, 2),
                listener(1884, Some("127.0.0.1"), 1)
            ]
        );
        assert_eq!(config.warnings.len(), 2);
        assert!(
            config.warnings[0].starts_with("test.conf:1: the 'bind_address' option is deprecated")
        );
        assert!(config.warnings[1].starts_with("test.conf:3: the 'port' option is deprecated"));

        let config = ok("port 1883\n");
        assert_eq!(config.listeners, [listener(1883, None, 1)]);
        assert!(!config.anonymous_allowed());

        let config = ok("bind_address localhost\n");
        assert_eq!(config.listeners, [listener(1883, Some("localhost"), 1)]);

        let config = ok("port 1883\nport 1884\n");
        assert_eq!(config.listeners, [listener(1884, None, 1)]);
        assert_eq!(config.warnings.len(), 3);

        assert_eq!(
            err("port 0\n"),
            "test.conf:1: port: value 0 out of range 1..=65535"
        );
        assert_eq!(
            err("bind_address a\nbind_address b\n"),
            "test.conf:2: bind_address: duplicate value"
        );
        assert_eq!(
            err("listener 1883\nport 1883\n"),
            "test.conf:2: port/bind_address: duplicate listener for port 1883 (already defined on line 1)"
        );
    }

    #[test]
    fn unknown_and_unsupported_options() {
        assert_eq!(err("foo bar\n"), "test.conf:1: unknown option 'foo'");
        assert_eq!(err("\n\nfoo\n"), "test.conf:3: unknown option 'foo'");
        assert_eq!(
            err("listener 1883\npassword_file /etc/mosquitto/passwd\n"),
            "test.conf:2: option 'password_file' is not supported yet"
        );
        for name in [
            "acl_file",
            "cafile",
            "certfile",
            "connection",
            "include_dir",
            "plugin",
        ] {
            assert_eq!(
                err(&format!("{name} x\n")),
                format!("test.conf:1: option '{name}' is not supported yet")
            );
        }
        assert_eq!(
            err("plugin_opt_config_file /x\n"),
            "test.conf:1: option 'plugin_opt_config_file' is not supported yet"
        );
        assert_eq!(
            err("persistence true\n"),
            "test.conf:1: option 'persistence true' is not supported yet"
        );
        assert_eq!(
            err("per_listener_settings true\n"),
            "test.conf:1: option 'per_listener_settings true' is not supported yet"
        );
        assert_eq!(
            err("listener 8080\nprotocol websockets\n"),
            "test.conf:2: option 'protocol websockets' is not supported yet"
        );
        // Option names are case sensitive, as in Mosquitto.
        assert_eq!(
            err("Listener 1883\n"),
            "test.conf:1: unknown option 'Listener'"
        );
    }

    #[test]
    fn harmless_options_are_accepted_and_ignored() {
        let config = ok("log_dest stdout\n\
                         log_dest file /var/log/mosquitto/mosquitto.log\n\
                         log_type error\n\
                         log_type all\n\
                         log_timestamp true\n\
                         log_timestamp_format %Y-%m-%dT%H:%M:%S\n\
                         log_facility 5\n\
                         connection_messages false\n\
                         persistence false\n\
                         retained_persistence false\n\
                         per_listener_settings false\n\
                         sys_interval 10\n\
                         pid_file /run/mosquitto/mosquitto.pid\n\
                         user mosquitto\n\
                         protocol mqtt\n");
        assert_eq!(config, Config::default());
        // Their values are still checked.
        assert_eq!(
            err("log_dest carrier-pigeon\n"),
            "test.conf:1: log_dest: invalid value 'carrier-pigeon'"
        );
        assert_eq!(
            err("log_dest file\n"),
            "test.conf:1: log_dest: missing file path after 'file'"
        );
        assert_eq!(
            err("log_type loud\n"),
            "test.conf:1: log_type: invalid value 'loud'"
        );
        assert_eq!(
            err("connection_messages yes\n"),
            "test.conf:1: connection_messages: invalid value 'yes' (expected true or false)"
        );
        assert_eq!(
            err("sys_interval -1\n"),
            "test.conf:1: sys_interval: value -1 out of range 0..=65535"
        );
        assert_eq!(err("pid_file\n"), "test.conf:1: pid_file: missing value");
        assert_eq!(err("user\n"), "test.conf:1: user: missing value");
    }

    #[test]
    fn value_errors_name_the_option() {
        assert_eq!(
            err("max_keepalive 70000\n"),
            "test.conf:1: max_keepalive: value 70000 out of range 0..=65535"
        );
        assert_eq!(
            err("max_keepalive\n"),
            "test.conf:1: max_keepalive: missing value"
        );
        assert_eq!(
            err("max_keepalive 10 20\n"),
            "test.conf:1: max_keepalive: unexpected extra value '20'"
        );
        assert_eq!(
            err("max_keepalive ten\n"),
            "test.conf:1: max_keepalive: 'ten' is not an integer"
        );
        assert_eq!(
            err("allow_anonymous maybe\n"),
            "test.conf:1: allow_anonymous: invalid value 'maybe' (expected true or false)"
        );
        assert_eq!(
            err("max_packet_size 19\n"),
            "test.conf:1: max_packet_size: value 19 out of range 20..=4294967295"
        );
        assert_eq!(
            err("max_qos 3\n"),
            "test.conf:1: max_qos: value 3 out of range 0..=2"
        );
        assert_eq!(
            err("max_inflight_messages 65536\n"),
            "test.conf:1: max_inflight_messages: value 65536 out of range 0..=65535"
        );
        assert_eq!(
            err("message_size_limit 268435456\n"),
            "test.conf:1: message_size_limit: value 268435456 out of range 0..=268435455"
        );
        assert_eq!(
            err("persistent_client_expiration 14\n"),
            "test.conf:1: persistent_client_expiration: invalid duration '14' \
             (expected a number followed by s, h, d, w, m or y)"
        );
    }

    #[test]
    fn limits_and_flags() {
        let config = ok("max_queued_bytes 1048576\n\
                         max_inflight_messages 0\n\
                         retain_available false\n\
                         upgrade_outgoing_qos true\n\
                         allow_zero_length_clientid false\n\
                         allow_anonymous 0\n\
                         persistent_client_expiration 2d\n");
        assert_eq!(config.max_queued_bytes, 1_048_576);
        assert_eq!(config.max_inflight_messages, 0);
        assert!(!config.retain_available);
        assert!(config.upgrade_outgoing_qos);
        assert!(!config.allow_zero_length_clientid);
        assert_eq!(config.allow_anonymous, Some(false));
        assert_eq!(config.persistent_client_expiration, Some(2 * 86_400));
    }

    #[test]
    fn negative_limits_read_as_unlimited_with_a_warning() {
        let config = ok("max_queued_messages -1\nmax_inflight_messages -5\nmax_queued_bytes -1\n");
        assert_eq!(config.max_queued_messages, 0);
        assert_eq!(config.max_inflight_messages, 0);
        assert_eq!(config.max_queued_bytes, 0);
        assert_eq!(
            config.warnings,
            [
                "test.conf:1: max_queued_messages: negative value -1 read as 0 (unlimited)",
                "test.conf:2: max_inflight_messages: negative value -5 read as 0 (unlimited)",
                "test.conf:3: max_queued_bytes: negative value -1 read as 0 (unlimited)",
            ]
        );
    }

    #[test]
    fn deprecated_and_removed_options_warn() {
        let config = ok("message_size_limit 1000\nretry_interval 20\n");
        assert_eq!(config.message_size_limit, 1000);
        assert_eq!(
            config.warnings,
            [
                "test.conf:1: the 'message_size_limit' option is deprecated; use 'max_packet_size' instead",
                "test.conf:2: the 'retry_interval' option is no longer available and is ignored",
            ]
        );
    }

    #[test]
    fn auto_id_prefix_takes_the_rest_of_the_line() {
        assert_eq!(ok("auto_id_prefix midge-\n").auto_id_prefix, "midge-");
        assert_eq!(ok("auto_id_prefix  a b \n").auto_id_prefix, "a b");
        assert_eq!(
            err("auto_id_prefix a\nauto_id_prefix b\n"),
            "test.conf:2: auto_id_prefix: duplicate value"
        );
        assert_eq!(
            err(&format!("auto_id_prefix {}\n", "x".repeat(51))),
            "test.conf:1: auto_id_prefix: longer than 50 characters"
        );
        assert_eq!(
            err("auto_id_prefix\n"),
            "test.conf:1: auto_id_prefix: missing value"
        );
    }

    #[test]
    fn error_carries_file_and_line() {
        let error = parse("listener 1883\nbogus\n", "/etc/midge/midge.conf")
            .err()
            .map(|e| (e.file, e.line, e.message));
        assert_eq!(
            error,
            Some((
                "/etc/midge/midge.conf".to_owned(),
                2,
                "unknown option 'bogus'".to_owned()
            ))
        );
    }
}
