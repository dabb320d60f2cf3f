//! Listeners: `listener`, the deprecated `port` / `bind_address` default listener, and the
//! options that apply to the listener they follow.

use super::line::Line;
use super::Parser;

/// One network listener to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// TCP port, 1..=65535.
    pub port: u16,
    /// Address or host name to bind; `None` = all interfaces.
    pub bind_address: Option<String>,
    /// Line of the `listener` option (or of the first `port` / `bind_address` for the
    /// default listener), so bind failures can point at the configuration.
    pub line: usize,
    /// `max_qos` given inside this listener's block; `None` = the global
    /// [`super::Config::max_qos`] applies (see [`super::Config::listener_max_qos`]).
    pub max_qos: Option<u8>,
}

/// The listener Mosquitto builds from the deprecated `port` and `bind_address` options.
#[derive(Debug)]
pub(crate) struct DefaultListener {
    /// From `port`; 1883 when only `bind_address` was given.
    port: Option<u16>,
    /// From `bind_address`.
    bind_address: Option<String>,
    /// The first line that configured it.
    line: usize,
}

/// Mosquitto's port when `bind_address` is given without `port`.
const DEFAULT_PORT: u16 = 1883;

impl DefaultListener {
    pub(crate) fn into_listener(self) -> ListenerConfig {
        ListenerConfig {
            port: self.port.unwrap_or(DEFAULT_PORT),
            bind_address: self.bind_address,
            line: self.line,
            max_qos: None,
        }
    }
}

/// `listener <port> [bind address]`: opens a listener; the options after it, up to the next
/// `listener`, configure it.
pub(crate) fn listener(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let mut values = line.values();
    let port_text = values.next().ok_or_else(|| line.missing())?;
    let port: u16 = super::value::parse_in_range(port_text, 0..=u16::MAX)
        .map_err(|reason| line.invalid(reason))?;
    let bind_address = values.next();
    line.no_more(values)?;
    if port == 0 {
        return Err(match bind_address {
            // Mosquitto's form for a Unix socket listener.
            Some(_) => line.invalid("Unix socket listeners are not supported yet"),
            None => line.invalid("a listener with port 0 must provide a Unix socket path"),
        });
    }
    let config = ListenerConfig {
        port,
        bind_address: bind_address.map(str::to_owned),
        line: line.number,
        max_qos: None,
    };
    check_duplicate(&parser.config.listeners, &config).map_err(|reason| line.invalid(reason))?;
    parser.current = Some(parser.config.listeners.len());
    parser.config.listeners.push(config);
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

/// `max_qos` / `maximum_qos`: inside a listener block it applies to that listener; before
/// the first `listener` it is the default for every listener.
///
/// Mosquitto instead applies a `max_qos` placed before any `listener` to an implicit default
/// listener on port 1883, which it then opens (a pitfall its users report, #2231); Midge
/// treats it as a global default.
pub(crate) fn max_qos(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let qos: u8 = line.integer_in(0..=2)?;
    match parser.current_listener() {
        Some(listener) => listener.max_qos = Some(qos),
        None => parser.config.max_qos = qos,
    }
    Ok(())
}

impl DefaultListener {
    pub(crate) fn new(line: usize) -> Self {
        DefaultListener {
            port: None,
            bind_address: None,
            line,
        }
    }
}

/// Two listeners on the same port and address cannot both bind.
pub(crate) fn check_duplicate(
    existing: &[ListenerConfig],
    new: &ListenerConfig,
) -> Result<(), String> {
    let clash = existing
        .iter()
        .find(|l| l.port == new.port && l.bind_address == new.bind_address);
    match clash {
        None => Ok(()),
        Some(other) => Err(format!(
            "duplicate listener for port {}{} (already defined on line {})",
            new.port,
            new.bind_address
                .as_deref()
                .map(|a| format!(" on {a}"))
                .unwrap_or_default(),
            other.line
        )),
    }
}
