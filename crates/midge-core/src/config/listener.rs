//! Listeners: `listener`, the deprecated `port` / `bind_address` default listener, and the
//! options that apply to the listener they follow.
//!
//! Where a listener option lands depends on where it is written, as in Mosquitto:
//! * after a `listener` line (in the same file): that listener;
//! * before the first `listener` line of a file: Mosquitto's *default listener*. Midge opens
//!   the default listener, as Mosquitto does, when `port` or `bind_address` is given (the
//!   1.x configuration style). Without them Mosquitto would still open a default listener on
//!   port 1883 on every interface for these options (with anonymous access allowed in
//!   2.0.11 when no `listener` line exists); Midge instead applies them to every listener that
//!   does not set them itself, and warns. See [`super::Config::listener_defaults`].
//!
//! A few options (`mount_point`, 2.1's `listener_allow_anonymous`…) need a `listener` line
//! first, as in Mosquitto.

use super::line::Line;
use super::security::SecurityOptions;
use super::tls::TlsOptions;
use super::value;
use super::Parser;

/// One listener to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// TCP port, 1..=65535; 0 for a Unix socket listener ([`ListenerConfig::unix_socket`]).
    pub port: u16,
    /// Address or host name to bind; `None` = all interfaces.
    pub bind_address: Option<String>,
    /// Line of the `listener` option (or of the first `port` / `bind_address` for the
    /// default listener), so bind failures can point at the configuration. 0 for listeners
    /// the broker adds itself.
    pub line: usize,
    /// File holding [`ListenerConfig::line`]: the main file or one read by `include_dir`.
    pub file: String,
    /// `max_qos` given inside this listener's block; `None` = the global
    /// [`super::Config::max_qos`] applies (see [`super::Config::listener_max_qos`]).
    pub max_qos: Option<u8>,
    /// `listener 0 <path>`: the path of the Unix socket to create instead of a TCP socket.
    pub unix_socket: Option<String>,
    /// `max_connections`: clients connected through this listener at once; `None` (the
    /// default, `-1`, and also `0` as in Mosquitto) = unlimited.
    pub max_connections: Option<u32>,
    /// Midge's `max_connection_rate`: new connections per second this listener accepts
    /// (burst: one second's worth); the excess is closed at accept. `None` = no limit.
    pub max_connection_rate: Option<u32>,
    /// `mount_point`: prefix added to every topic of this listener's clients (and removed
    /// from what they receive), isolating them in their own subtree. No wildcards.
    pub mount_point: Option<String>,
    /// `max_topic_alias` (default 10, 0 = none): topic aliases an MQTT 5 client may create
    /// towards the broker; announced in CONNACK.
    pub max_topic_alias: u16,
    /// `max_topic_alias_broker` (2.1): aliases the broker may create towards clients.
    /// Midge, like Mosquitto 2.0, sends none; the value is kept for later.
    pub max_topic_alias_broker: Option<u16>,
    /// `use_username_as_clientid` (default false): the client id becomes the username, so
    /// one user cannot take over another's session; clients without a username are refused.
    pub use_username_as_clientid: bool,
    /// `socket_domain`: only IPv4 or only IPv6; `None` = both.
    pub socket_domain: Option<SocketDomain>,
    /// `bind_interface`: bind to this network device (`SO_BINDTODEVICE`), taking priority
    /// over the bind address.
    pub bind_interface: Option<String>,
    /// `protocol` (default `mqtt`).
    pub protocol: Protocol,
    /// Security options given in this listener's block: only used when
    /// `per_listener_settings` is true, except 2.1's `listener_allow_anonymous` /
    /// `listener_auto_id_prefix` and `plugin_use`, which always apply here. Read them
    /// through [`super::Config::security_for`].
    pub security: SecurityOptions,
    /// Certificate and PSK TLS options (issue 5).
    pub tls: TlsOptions,
    /// `http_dir`: static files served by a WebSockets listener (issue 5).
    pub http_dir: Option<String>,
    /// `websockets_origin` (2.1, repeatable): allowed `Origin` headers (issue 5).
    pub websockets_origins: Vec<String>,
    /// `accept_protocol_versions` (2.1): the MQTT protocol levels (3, 4, 5) accepted;
    /// `None` = all.
    pub accept_protocol_versions: Option<Vec<u8>>,
    /// `enable_proxy_protocol` (2.1): expect a PROXY protocol v1 or v2 header.
    pub enable_proxy_protocol: Option<u8>,
    /// `proxy_protocol_v2_require_tls` (2.1).
    pub proxy_protocol_v2_require_tls: bool,
}

impl ListenerConfig {
    /// Where the listener was configured, for start-up errors: `file:line`, or the port of
    /// a listener the broker added itself.
    pub fn at(&self) -> String {
        if self.file.is_empty() {
            format!("listener on port {}", self.port)
        } else {
            format!("{}:{}", self.file, self.line)
        }
    }
}

impl Default for ListenerConfig {
    /// A listener with Mosquitto's defaults on port 1883, all interfaces.
    fn default() -> Self {
        ListenerConfig {
            port: DEFAULT_PORT,
            bind_address: None,
            line: 0,
            file: String::new(),
            max_qos: None,
            unix_socket: None,
            max_connections: None,
            max_connection_rate: None,
            mount_point: None,
            max_topic_alias: DEFAULT_MAX_TOPIC_ALIAS,
            max_topic_alias_broker: None,
            use_username_as_clientid: false,
            socket_domain: None,
            bind_interface: None,
            protocol: Protocol::Mqtt,
            security: SecurityOptions::default(),
            tls: TlsOptions::default(),
            http_dir: None,
            websockets_origins: Vec::new(),
            accept_protocol_versions: None,
            enable_proxy_protocol: None,
            proxy_protocol_v2_require_tls: false,
        }
    }
}

/// `socket_domain`: the one IP family a listener opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketDomain {
    Ipv4,
    Ipv6,
}

/// `protocol`: what a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT over TCP (or over TLS when configured): the default.
    #[default]
    Mqtt,
    /// MQTT over WebSockets (issue 5).
    Websockets,
    /// 2.1's read-only HTTP API (issue 7).
    HttpApi,
}

/// Mosquitto's port for the default listener and for `bind_address` without `port`.
const DEFAULT_PORT: u16 = 1883;

/// Mosquitto's `max_topic_alias` default.
const DEFAULT_MAX_TOPIC_ALIAS: u16 = 10;

/// The listener Mosquitto builds from the deprecated `port` and `bind_address` options.
#[derive(Debug, Default)]
pub(crate) struct DefaultListener {
    /// From `port`; 1883 when only `bind_address` was given.
    port: Option<u16>,
    /// From `bind_address`.
    bind_address: Option<String>,
    /// The first line that configured it, and its file.
    line: usize,
    file: String,
}

impl DefaultListener {
    /// The listener to open: `settings` (the options given before the first `listener`)
    /// on the default port and address.
    pub(crate) fn into_listener(self, settings: ListenerConfig) -> ListenerConfig {
        ListenerConfig {
            port: self.port.unwrap_or(DEFAULT_PORT),
            bind_address: self.bind_address,
            line: self.line,
            file: self.file,
            ..settings
        }
    }
}

/// `listener <port> [bind address]` or `listener 0 <unix socket path>`: opens a listener;
/// the options after it, up to the next `listener`, configure it.
pub(crate) fn listener(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let mut values = line.values();
    let port_text = values.next().ok_or_else(|| line.missing())?;
    let port: u16 =
        value::parse_in_range(port_text, 0..=u16::MAX).map_err(|reason| line.invalid(reason))?;
    let address = values.next();
    line.no_more(values)?;
    let (bind_address, unix_socket) = match (port, address) {
        (0, None) => {
            return Err(line.invalid("a listener with port 0 must provide a Unix socket path"))
        }
        (0, Some(path)) => (None, Some(path.to_owned())),
        (_, address) => (address.map(str::to_owned), None),
    };
    let config = ListenerConfig {
        port,
        bind_address,
        unix_socket,
        line: line.number,
        file: parser.file().to_owned(),
        ..ListenerConfig::default()
    };
    check_duplicate(&parser.config.listeners, &config).map_err(|reason| line.invalid(reason))?;
    parser.add_listener(config);
    Ok(())
}

/// `port <n>` (deprecated): the port of the default listener.
pub(crate) fn port(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let port = line.integer_in(1..=u16::MAX)?;
    parser.warn(
        line,
        "the 'port' option is deprecated and will be removed in a future version; use 'listener' instead",
    );
    let default = parser.default_listener(line);
    let repeated = default.port.replace(port).is_some();
    if repeated {
        parser.warn(
            line,
            "default listener port specified multiple times; only the latest is used",
        );
    }
    Ok(())
}

/// `bind_address <host>` (deprecated): the bind address of the default listener, wherever it
/// appears (as in Mosquitto, not the current `listener`'s).
pub(crate) fn bind_address(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let host = line.single()?;
    parser.warn(
        line,
        "the 'bind_address' option is deprecated and will be removed in a future version; use 'listener <port> <address>' instead",
    );
    let default = parser.default_listener(line);
    if default.bind_address.is_some() {
        return Err(line.invalid("duplicate value"));
    }
    default.bind_address = Some(host.to_owned());
    Ok(())
}

impl DefaultListener {
    pub(crate) fn start(&mut self, file: &str, line: usize) {
        if self.line == 0 {
            self.line = line;
            self.file = file.to_owned();
        }
    }

    /// Whether `port` or `bind_address` asked for the default listener.
    pub(crate) fn requested(&self) -> bool {
        self.line != 0
    }
}

/// `max_qos` / `maximum_qos`: inside a listener block it applies to that listener; before
/// the first `listener` it is the default for every listener.
///
/// Mosquitto instead applies a `max_qos` placed before any `listener` to an implicit default
/// listener on port 1883, which it then opens (a pitfall its users report, #2231); Midge
/// treats it as a global default, also when `port` configures a default listener.
pub(crate) fn max_qos(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let qos: u8 = line.integer_in(0..=2)?;
    match parser.current_listener() {
        Some(listener) => listener.max_qos = Some(qos),
        None => parser.config.max_qos = qos,
    }
    Ok(())
}

/// `max_connections <n>`: -1 (or any negative value, or 0, as Mosquitto reads them) =
/// unlimited.
pub(crate) fn max_connection_rate(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer_in(0..=u32::MAX)?;
    parser.listener_mut().max_connection_rate = (n > 0).then_some(n);
    Ok(())
}

pub(crate) fn max_connections(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer()?;
    let limit = match n {
        ..=-1 => None,
        0 => {
            parser.warn(
                line,
                "max_connections: 0 means unlimited, as in Mosquitto (use -1 to say so)",
            );
            None
        }
        _ => Some(
            u32::try_from(n)
                .map_err(|_| line.invalid(format!("value {n} out of range -1..={}", u32::MAX)))?,
        ),
    };
    parser.listener_mut().max_connections = limit;
    Ok(())
}

/// `mount_point <prefix>`: needs a listener (as in Mosquitto); no wildcards.
pub(crate) fn mount_point(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.require_listener(line)?;
    let prefix = parser.string(line)?;
    if prefix.contains(['+', '#']) || prefix.contains('\0') {
        return Err(line.invalid(format!(
            "invalid value '{}' (a mount point must not contain + or #)",
            prefix.escape_debug()
        )));
    }
    parser.once(parser.listener_target(), line, "mount_point")?;
    parser.listener_mut().mount_point = Some(prefix);
    Ok(())
}

pub(crate) fn max_topic_alias(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.listener_mut().max_topic_alias = line.integer_in(0..=u16::MAX)?;
    Ok(())
}

pub(crate) fn max_topic_alias_broker(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.listener_mut().max_topic_alias_broker = Some(line.integer_in(0..=u16::MAX)?);
    Ok(())
}

pub(crate) fn use_username_as_clientid(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.listener_mut().use_username_as_clientid = line.bool()?;
    Ok(())
}

pub(crate) fn socket_domain(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let domain = value::one_of(
        line.single()?,
        &[("ipv4", SocketDomain::Ipv4), ("ipv6", SocketDomain::Ipv6)],
    )
    .map_err(|reason| line.invalid(reason))?;
    parser.listener_mut().socket_domain = Some(domain);
    Ok(())
}

/// Longest network interface name Linux accepts (`IFNAMSIZ` - 1).
const MAX_INTERFACE_NAME: usize = 15;

pub(crate) fn bind_interface(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let device = line.single()?;
    if device.len() > MAX_INTERFACE_NAME || device.contains('/') {
        return Err(line.invalid(format!(
            "invalid interface name '{}' (at most {MAX_INTERFACE_NAME} bytes, no '/')",
            device.escape_debug()
        )));
    }
    parser.once(parser.listener_target(), line, "bind_interface")?;
    parser.listener_mut().bind_interface = Some(device.to_owned());
    Ok(())
}

/// `protocol mqtt`, `websockets` (MQTT over WebSockets, plain or over TLS) or 2.1's
/// `http_api` (the read-only HTTP API and `/metrics`).
pub(crate) fn protocol(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let word = line.single()?;
    let protocol = value::one_of(
        word,
        &[
            ("mqtt", Protocol::Mqtt),
            ("websockets", Protocol::Websockets),
            ("http_api", Protocol::HttpApi),
        ],
    )
    .map_err(|reason| line.invalid(reason))?;
    parser.listener_mut().protocol = protocol;
    Ok(())
}

pub(crate) fn http_dir(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let dir = parser.string(line)?;
    parser.once(parser.listener_target(), line, "http_dir")?;
    parser.listener_mut().http_dir = Some(dir);
    Ok(())
}

pub(crate) fn websockets_origin(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.require_listener(line)?;
    let origin = parser.string(line)?;
    parser.listener_mut().websockets_origins.push(origin);
    Ok(())
}

/// `accept_protocol_versions 3,4,5` (2.1): Mosquitto ignores unknown numbers; Midge refuses
/// them, so a typo cannot silently lock every client out.
pub(crate) fn accept_protocol_versions(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.require_listener(line)?;
    let list: Vec<&str> = line
        .values()
        .flat_map(|word| word.split(','))
        .filter(|part| !part.is_empty())
        .collect();
    if list.is_empty() {
        return Err(line.missing());
    }
    let mut versions = Vec::new();
    for part in list {
        let version = value::one_of(part, &[("3", 3u8), ("4", 4), ("5", 5)])
            .map_err(|reason| line.invalid(reason))?;
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    versions.sort_unstable();
    parser.listener_mut().accept_protocol_versions = Some(versions);
    Ok(())
}

pub(crate) fn enable_proxy_protocol(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.require_listener(line)?;
    parser.listener_mut().enable_proxy_protocol = Some(line.integer_in(1..=2)?);
    Ok(())
}

pub(crate) fn proxy_protocol_v2_require_tls(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.require_listener(line)?;
    parser.listener_mut().proxy_protocol_v2_require_tls = line.bool()?;
    Ok(())
}

/// Two listeners on the same port and address, or on the same Unix socket, cannot both
/// bind.
pub(crate) fn check_duplicate(
    existing: &[ListenerConfig],
    new: &ListenerConfig,
) -> Result<(), String> {
    let clash = existing.iter().find(|l| {
        l.port == new.port && l.bind_address == new.bind_address && l.unix_socket == new.unix_socket
    });
    match clash {
        None => Ok(()),
        Some(other) => {
            let what = match &new.unix_socket {
                Some(path) => format!("Unix socket {path}"),
                None => format!(
                    "port {}{}",
                    new.port,
                    new.bind_address
                        .as_deref()
                        .map(|a| format!(" on {a}"))
                        .unwrap_or_default()
                ),
            };
            Err(format!(
                "duplicate listener for {what} (already defined on line {})",
                other.line
            ))
        }
    }
}
