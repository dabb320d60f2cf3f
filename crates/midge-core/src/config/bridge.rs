//! Bridges (issue 8): a `connection <name>` line starts a bridge and the bridge options
//! after it, in the same file, belong to it. Every value is checked and kept now.

use super::line::Line;
use super::tls::{self, TlsVersion};
use super::value;
use super::{Parser, Target};

/// One `connection` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// `connection <name>`; unique.
    pub name: String,
    /// Line of the `connection` option, and its file.
    pub line: usize,
    pub file: String,
    /// `address` / `addresses`: remote brokers, port 1883 unless given.
    pub addresses: Vec<BridgeAddress>,
    /// `topic` lines, in order.
    pub topics: Vec<BridgeTopic>,
    /// `remote_clientid` (alias `clientid`); `None` = `<hostname>.<name>`.
    pub remote_clientid: Option<String>,
    /// `remote_username` (alias `username`).
    pub remote_username: Option<String>,
    /// `remote_password` (alias `password`).
    pub remote_password: Option<String>,
    /// `local_clientid`; `None` = `local.<remote client id>`.
    pub local_clientid: Option<String>,
    pub local_username: Option<String>,
    pub local_password: Option<String>,
    /// `cleansession` (default false).
    pub cleansession: bool,
    /// `local_cleansession`; `None` = as `cleansession`.
    pub local_cleansession: Option<bool>,
    /// `keepalive_interval` (default 60, at least 5).
    pub keepalive_interval: u16,
    /// `start_type` (default automatic).
    pub start_type: StartType,
    /// `threshold` (default 10, at least 1): queued messages that start a lazy bridge.
    pub threshold: u32,
    /// `idle_timeout` (default 60, at least 1): seconds before a lazy bridge stops.
    pub idle_timeout: u32,
    /// `restart_timeout` (default backoff from 5 to 30 seconds).
    pub restart_timeout: RestartTimeout,
    /// `round_robin` (default false).
    pub round_robin: bool,
    /// `try_private` (default true).
    pub try_private: bool,
    /// `notifications` (default true).
    pub notifications: bool,
    /// `notifications_local_only` (default false).
    pub notifications_local_only: bool,
    /// `notification_topic`; `None` = `$SYS/broker/connection/<remote client id>/state`.
    pub notification_topic: Option<String>,
    /// `bridge_attempt_unsubscribe` (default true).
    pub attempt_unsubscribe: bool,
    /// `bridge_bind_address`.
    pub bind_address: Option<String>,
    /// `bridge_max_packet_size`; `None` = unlimited (0, or negative as Mosquitto reads it).
    pub max_packet_size: Option<u32>,
    /// `bridge_outgoing_retain` (default true).
    pub outgoing_retain: bool,
    /// `bridge_protocol_version` (default mqttv311).
    pub protocol_version: BridgeProtocol,
    /// `bridge_max_topic_alias` (2.1, default 10).
    pub max_topic_alias: u16,
    /// `bridge_receive_maximum` (2.1); `None` = `max_inflight_messages`.
    pub receive_maximum: Option<u16>,
    /// `bridge_session_expiry_interval` (2.1); `None` = none with `cleansession true`,
    /// never expiring without (a 3.1.1 persistent session's equivalent).
    pub session_expiry_interval: Option<u32>,
    /// `bridge_tcp_keepalive <idle> <interval> <count>` (2.1).
    pub tcp_keepalive: Option<(u32, u32, u32)>,
    /// `bridge_tcp_user_timeout <ms>` (2.1).
    pub tcp_user_timeout: Option<u32>,
    /// `bridge_reload_type` (2.1, default lazy).
    pub reload_type: ReloadType,
    /// TLS towards the remote broker.
    pub tls: BridgeTls,
}

/// One remote broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeAddress {
    pub host: String,
    pub port: u16,
}

/// `topic <pattern> [out|in|both [qos [local-prefix [remote-prefix]]]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTopic {
    /// The pattern; empty when written `""` (then both prefixes are the whole topics).
    pub pattern: String,
    pub direction: Direction,
    pub qos: u8,
    /// `None` when absent or written `""`.
    pub local_prefix: Option<String>,
    pub remote_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartType {
    Automatic,
    Lazy,
    Once,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartTimeout {
    /// `restart_timeout <seconds>`.
    Constant(u32),
    /// `restart_timeout <base> <cap>`: decorrelated jitter between them.
    Backoff { base: u32, cap: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeProtocol {
    Mqtt31,
    Mqtt311,
    Mqtt5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadType {
    Lazy,
    Immediate,
}

/// `bridge_*` TLS options. Certificates and PSK exclude each other, as in Mosquitto.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeTls {
    pub cafile: Option<String>,
    pub capath: Option<String>,
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
    /// `bridge_insecure`: skip the host name check (never in production).
    pub insecure: bool,
    /// `bridge_tls_version`; `None` = tlsv1.2.
    pub tls_version: Option<TlsVersion>,
    pub ciphers: Option<String>,
    pub ciphers_tls13: Option<String>,
    pub alpn: Option<String>,
    pub require_ocsp: bool,
    /// `bridge_tls_use_os_certs` (2.1).
    pub use_os_certs: bool,
    /// `bridge_identity`: PSK identity.
    pub identity: Option<String>,
    /// `bridge_psk`: PSK key, hexadecimal.
    pub psk: Option<String>,
}

impl BridgeConfig {
    /// A bridge named `name` with every option at its default.
    pub fn new(name: &str, line: usize, file: &str) -> Self {
        BridgeConfig {
            name: name.to_owned(),
            line,
            file: file.to_owned(),
            addresses: Vec::new(),
            topics: Vec::new(),
            remote_clientid: None,
            remote_username: None,
            remote_password: None,
            local_clientid: None,
            local_username: None,
            local_password: None,
            cleansession: false,
            local_cleansession: None,
            keepalive_interval: 60,
            start_type: StartType::Automatic,
            threshold: 10,
            idle_timeout: 60,
            restart_timeout: RestartTimeout::Backoff { base: 5, cap: 30 },
            round_robin: false,
            try_private: true,
            notifications: true,
            notifications_local_only: false,
            notification_topic: None,
            attempt_unsubscribe: true,
            bind_address: None,
            max_packet_size: None,
            outgoing_retain: true,
            protocol_version: BridgeProtocol::Mqtt311,
            max_topic_alias: 10,
            receive_maximum: None,
            session_expiry_interval: None,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            reload_type: ReloadType::Lazy,
            tls: BridgeTls::default(),
        }
    }
}

/// `connection <name>`: starts a bridge.
pub(crate) fn connection(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let name = line.single()?;
    if let Some(other) = parser.config.bridges.iter().find(|b| b.name == name) {
        return Err(line.invalid(format!(
            "duplicate bridge name '{}' (already used on line {})",
            name.escape_debug(),
            other.line
        )));
    }
    let bridge = BridgeConfig::new(name, line.number, parser.file());
    parser.add_bridge(bridge);
    Ok(())
}

/// The bridge of the current `connection` block.
fn bridge<'p>(parser: &'p mut Parser<'_>, line: &Line<'_>) -> Result<&'p mut BridgeConfig, String> {
    let index = parser.require_bridge(line)?;
    parser
        .config
        .bridges
        .get_mut(index)
        .ok_or_else(|| line.invalid("requires a 'connection' to be defined first"))
}

fn bridge_index(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<usize, String> {
    parser.require_bridge(line)
}

/// `address host[:port] [host[:port]...]` / `addresses`: once per bridge.
pub(crate) fn address(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    bridge_index(parser, line)?;
    let mut addresses = Vec::new();
    for word in line.values() {
        addresses.push(parse_address(line, word)?);
    }
    if addresses.is_empty() {
        return Err(line.missing());
    }
    let bridge = bridge(parser, line)?;
    if !bridge.addresses.is_empty() {
        return Err(line.invalid(format!(
            "bridge '{}' already has its addresses",
            bridge.name
        )));
    }
    bridge.addresses = addresses;
    Ok(())
}

/// `host[:port]`; the port is what follows the last `:`, so an IPv6 address needs one
/// (as the man page says).
fn parse_address(line: &Line<'_>, word: &str) -> Result<BridgeAddress, String> {
    let (host, port) = match word.rsplit_once(':') {
        Some((host, port)) => {
            let port = value::parse_in_range(port, 1..=u16::MAX)
                .map_err(|reason| line.invalid(format!("port of '{word}': {reason}")))?;
            (host, port)
        }
        None => (word, 1883),
    };
    if host.is_empty() {
        return Err(line.invalid(format!("missing host in '{}'", word.escape_debug())));
    }
    Ok(BridgeAddress {
        host: host.to_owned(),
        port,
    })
}

/// Whether `filter` is a valid subscription filter: `+` and `#` fill a whole level, `#`
/// only last.
fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == last,
        "+" => true,
        other => !other.contains(['+', '#']),
    }) && !filter.contains('\0')
}

/// `""` is Mosquitto's marker for an empty pattern or prefix.
fn unquote(word: &str) -> Option<&str> {
    (word != "\"\"").then_some(word)
}

/// `topic <pattern> [out|in|both [qos [local-prefix [remote-prefix]]]]`. The pattern may be
/// `#` itself; after it, a word starting with `#` begins a comment.
pub(crate) fn topic(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    bridge_index(parser, line)?;
    let mut words = line.words();
    let pattern = words.next().ok_or_else(|| line.missing())?;
    let mut rest = words.take_while(|w| !w.starts_with('#'));
    let direction = match rest.next() {
        None => Direction::Out,
        Some(word) => match word.to_ascii_lowercase().as_str() {
            "out" => Direction::Out,
            "in" => Direction::In,
            "both" => Direction::Both,
            _ => {
                return Err(line.invalid(format!(
                    "invalid direction '{}' (expected out, in or both)",
                    word.escape_debug()
                )))
            }
        },
    };
    let qos = match rest.next() {
        None => 0,
        Some(word) => value::parse_in_range(word, 0..=2u8)
            .map_err(|reason| line.invalid(format!("QoS: {reason}")))?,
    };
    let local_prefix = rest.next().and_then(unquote);
    let remote_prefix = rest.next().and_then(unquote);
    line.no_more(rest)?;
    for (what, prefix) in [("local", local_prefix), ("remote", remote_prefix)] {
        if let Some(prefix) = prefix {
            if prefix.contains(['+', '#']) {
                return Err(line.invalid(format!(
                    "invalid {what} prefix '{}' (no wildcards)",
                    prefix.escape_debug()
                )));
            }
        }
    }
    let pattern = unquote(pattern).unwrap_or("");
    if pattern.is_empty() && (local_prefix.is_none() || remote_prefix.is_none()) {
        return Err(line.invalid("an empty pattern (\"\") needs both a local and a remote prefix"));
    }
    if !pattern.is_empty() && !valid_filter(pattern) {
        return Err(line.invalid(format!(
            "invalid topic pattern '{}'",
            pattern.escape_debug()
        )));
    }
    bridge(parser, line)?.topics.push(BridgeTopic {
        pattern: pattern.to_owned(),
        direction,
        qos,
        local_prefix: local_prefix.map(str::to_owned),
        remote_prefix: remote_prefix.map(str::to_owned),
    });
    Ok(())
}

/// A string option of the bridge; a second one is an error, as in Mosquitto.
fn bridge_string(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
    name: &'static str,
    field: fn(&mut BridgeConfig) -> &mut Option<String>,
) -> Result<(), String> {
    let index = bridge_index(parser, line)?;
    let text = parser.string(line)?;
    parser.once(Target::Bridge(index), line, name)?;
    *field(bridge(parser, line)?) = Some(text);
    Ok(())
}

macro_rules! string_options {
    ($($handler:ident => $name:literal, $($field:ident).+;)*) => {
        $(
            pub(crate) fn $handler(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
                bridge_string(parser, line, $name, |b| &mut b.$($field).+)
            }
        )*
    };
}

string_options! {
    remote_clientid => "remote_clientid", remote_clientid;
    remote_username => "remote_username", remote_username;
    remote_password => "remote_password", remote_password;
    local_clientid => "local_clientid", local_clientid;
    local_username => "local_username", local_username;
    local_password => "local_password", local_password;
    notification_topic => "notification_topic", notification_topic;
    bind_address => "bridge_bind_address", bind_address;
    alpn => "bridge_alpn", tls.alpn;
    ciphers => "bridge_ciphers", tls.ciphers;
    ciphers_tls13 => "bridge_ciphers_tls1.3", tls.ciphers_tls13;
}

macro_rules! bool_options {
    ($($handler:ident => $($field:ident).+;)*) => {
        $(
            pub(crate) fn $handler(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
                let value = line.bool()?;
                bridge(parser, line)?.$($field).+ = value;
                Ok(())
            }
        )*
    };
}

bool_options! {
    cleansession => cleansession;
    round_robin => round_robin;
    try_private => try_private;
    notifications => notifications;
    notifications_local_only => notifications_local_only;
    attempt_unsubscribe => attempt_unsubscribe;
    outgoing_retain => outgoing_retain;
    require_ocsp => tls.require_ocsp;
    tls_use_os_certs => tls.use_os_certs;
}

pub(crate) fn local_cleansession(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = line.bool()?;
    bridge(parser, line)?.local_cleansession = Some(value);
    Ok(())
}

pub(crate) fn insecure(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = line.bool()?;
    let bridge = bridge(parser, line)?;
    bridge.tls.insecure = value;
    let name = bridge.name.clone();
    if value {
        parser.warn(
            line,
            format!("bridge '{name}' does not check the remote host name (bridge_insecure)"),
        );
    }
    Ok(())
}

/// Mosquitto's smallest bridge keep alive.
const MIN_KEEPALIVE: u16 = 5;

/// `keepalive_interval`: above 65535 is an error, below 5 is raised to 5 (as Mosquitto).
pub(crate) fn keepalive_interval(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer()?;
    let seconds = match u16::try_from(n) {
        Ok(seconds) if seconds >= MIN_KEEPALIVE => seconds,
        _ if n < i64::from(MIN_KEEPALIVE) => {
            parser.warn(line, "keepalive_interval: too low, using 5 seconds");
            MIN_KEEPALIVE
        }
        _ => return Err(line.invalid(format!("value {n} out of range 5..=65535"))),
    };
    bridge(parser, line)?.keepalive_interval = seconds;
    Ok(())
}

/// A count where Mosquitto raises values below 1 to 1 (`threshold`, `idle_timeout`).
fn at_least_one(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<u32, String> {
    let n = line.integer()?;
    if n < 1 {
        parser.warn(line, format!("{}: too low, using 1", line.name));
        return Ok(1);
    }
    u32::try_from(n).map_err(|_| line.invalid(format!("value {n} out of range 1..={}", u32::MAX)))
}

pub(crate) fn threshold(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = at_least_one(parser, line)?;
    bridge(parser, line)?.threshold = n;
    Ok(())
}

pub(crate) fn idle_timeout(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = at_least_one(parser, line)?;
    bridge(parser, line)?.idle_timeout = n;
    Ok(())
}

/// `restart_timeout <seconds>` or `restart_timeout <base> <cap>`.
pub(crate) fn restart_timeout(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let mut values = line.values();
    let first = values.next().ok_or_else(|| line.missing())?;
    let second = values.next();
    line.no_more(values)?;
    let parse = |text: &str| -> Result<u32, String> {
        match value::parse_integer(text).map_err(|reason| line.invalid(reason))? {
            n if n < 1 => Ok(1),
            n => u32::try_from(n).map_err(|_| line.invalid(format!("value {n} out of range"))),
        }
    };
    let base = parse(first)?;
    let timeout = match second {
        None => RestartTimeout::Constant(base),
        Some(cap) => {
            let cap = parse(cap)?;
            if cap < base {
                return Err(
                    line.invalid(format!("backoff cap {cap} is lower than the base {base}"))
                );
            }
            RestartTimeout::Backoff { base, cap }
        }
    };
    bridge(parser, line)?.restart_timeout = timeout;
    Ok(())
}

pub(crate) fn start_type(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let word = line.single()?;
    if word == "manual" {
        return Err(line.invalid("the 'manual' start type is not supported (as in Mosquitto)"));
    }
    let start = value::one_of(
        word,
        &[
            ("automatic", StartType::Automatic),
            ("lazy", StartType::Lazy),
            ("once", StartType::Once),
        ],
    )
    .map_err(|reason| line.invalid(reason))?;
    bridge(parser, line)?.start_type = start;
    Ok(())
}

pub(crate) fn max_packet_size(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer()?;
    let size = match n {
        ..=0 => None,
        _ => Some(
            u32::try_from(n)
                .map_err(|_| line.invalid(format!("value {n} out of range 0..={}", u32::MAX)))?,
        ),
    };
    bridge(parser, line)?.max_packet_size = size;
    Ok(())
}

pub(crate) fn protocol_version(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let version = value::one_of(
        line.single()?,
        &[
            ("mqttv31", BridgeProtocol::Mqtt31),
            ("mqttv311", BridgeProtocol::Mqtt311),
            ("mqttv50", BridgeProtocol::Mqtt5),
        ],
    )
    .map_err(|reason| line.invalid(reason))?;
    bridge(parser, line)?.protocol_version = version;
    Ok(())
}

pub(crate) fn max_topic_alias(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer_in(0..=u16::MAX)?;
    bridge(parser, line)?.max_topic_alias = n;
    Ok(())
}

pub(crate) fn receive_maximum(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer_in(1..=u16::MAX)?;
    bridge(parser, line)?.receive_maximum = Some(n);
    Ok(())
}

pub(crate) fn session_expiry_interval(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let n = line.integer_in(0..=u32::MAX)?;
    bridge(parser, line)?.session_expiry_interval = Some(n);
    Ok(())
}

/// `bridge_tcp_keepalive <idle> <interval> <count>`, each above 0.
pub(crate) fn tcp_keepalive(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let mut values = line.values();
    let mut next = |what: &str| -> Result<u32, String> {
        let text = values.next().ok_or_else(|| {
            line.invalid(format!("missing {what} (expected idle interval count)"))
        })?;
        value::parse_in_range(text, 1..=u32::MAX)
            .map_err(|reason| line.invalid(format!("{what}: {reason}")))
    };
    let keepalive = (next("idle")?, next("interval")?, next("count")?);
    line.no_more(values)?;
    bridge(parser, line)?.tcp_keepalive = Some(keepalive);
    Ok(())
}

pub(crate) fn tcp_user_timeout(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let n = line.integer_in(0..=u32::MAX)?;
    bridge(parser, line)?.tcp_user_timeout = Some(n);
    Ok(())
}

pub(crate) fn reload_type(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let kind = value::one_of(
        line.single()?,
        &[
            ("lazy", ReloadType::Lazy),
            ("immediate", ReloadType::Immediate),
        ],
    )
    .map_err(|reason| line.invalid(reason))?;
    bridge(parser, line)?.reload_type = kind;
    Ok(())
}

pub(crate) fn tls_version(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let version = tls::tls_version_value(line)?;
    bridge(parser, line)?.tls.tls_version = Some(version);
    Ok(())
}

/// Certificate options exclude PSK on one bridge, as in Mosquitto.
fn certificate(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
    name: &'static str,
    field: fn(&mut BridgeConfig) -> &mut Option<String>,
) -> Result<(), String> {
    let tls = &bridge(parser, line)?.tls;
    if tls.identity.is_some() || tls.psk.is_some() {
        return Err(line.invalid("cannot use both certificate and PSK encryption on one bridge"));
    }
    bridge_string(parser, line, name, field)
}

pub(crate) fn cafile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    certificate(parser, line, "bridge_cafile", |b| &mut b.tls.cafile)
}

pub(crate) fn capath(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    certificate(parser, line, "bridge_capath", |b| &mut b.tls.capath)
}

pub(crate) fn certfile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    certificate(parser, line, "bridge_certfile", |b| &mut b.tls.certfile)
}

pub(crate) fn keyfile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    certificate(parser, line, "bridge_keyfile", |b| &mut b.tls.keyfile)
}

/// PSK options exclude certificates on one bridge.
fn no_certificate(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let tls = &bridge(parser, line)?.tls;
    if tls.cafile.is_some()
        || tls.capath.is_some()
        || tls.certfile.is_some()
        || tls.keyfile.is_some()
    {
        return Err(line.invalid("cannot use both certificate and PSK encryption on one bridge"));
    }
    Ok(())
}

pub(crate) fn identity(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    no_certificate(parser, line)?;
    bridge_string(parser, line, "bridge_identity", |b| &mut b.tls.identity)
}

pub(crate) fn psk(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    no_certificate(parser, line)?;
    let key = line.single()?;
    if !value::is_hex(key) {
        return Err(line.invalid("the key must be hexadecimal, without 0x"));
    }
    bridge_string(parser, line, "bridge_psk", |b| &mut b.tls.psk)
}

/// After parsing, what Mosquitto checks before starting: every bridge has an address and a
/// topic, and PSK has both halves. Returns the message for the `connection` line.
pub(crate) fn check(bridge: &BridgeConfig) -> Result<(), String> {
    let name = &bridge.name;
    if bridge.addresses.is_empty() {
        return Err(format!("connection: bridge '{name}' has no address"));
    }
    if bridge.topics.is_empty() {
        return Err(format!("connection: bridge '{name}' has no topic"));
    }
    match (&bridge.tls.psk, &bridge.tls.identity) {
        (Some(_), None) => Err(format!(
            "connection: bridge '{name}' has bridge_psk but no bridge_identity"
        )),
        (None, Some(_)) => Err(format!(
            "connection: bridge '{name}' has bridge_identity but no bridge_psk"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_filter;

    #[test]
    fn filters() {
        for good in ["#", "a/#", "+", "a/+/b", "$SYS/#", "a//b"] {
            assert!(valid_filter(good), "{good}");
        }
        for bad in ["a#", "#/a", "a/b+", "a/#/b"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }
}
