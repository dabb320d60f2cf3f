//! The table of every option name Mosquitto 2.0 / 2.1 documents or accepts, and the
//! handlers of the global options Midge implements.
//!
//! Adding support for an option means writing its handler and switching its entry from
//! `NotYet` to `Handled`; the parser needs no other change.

use super::line::Line;
use super::{listener, value, Parser};

/// Applies one option line to the configuration being built. The error is the message
/// after `file:line: `.
pub(crate) type Handler = fn(&mut Parser<'_>, &Line<'_>) -> Result<(), String>;

/// How Midge treats a Mosquitto option.
#[derive(Clone, Copy)]
pub(crate) enum Support {
    /// Parsed and applied, or validated and deliberately ignored (logging, `user`,
    /// `pid_file`…: things that change nothing a client can observe).
    Handled(Handler),
    /// Documented by Mosquitto but not implemented yet: an error, so a configuration that
    /// relies on it (a password file, TLS, a bridge) never runs without it.
    NotYet,
}

use Support::{Handled, NotYet};

/// Every option name, sorted by bytes so [`lookup`] can binary-search it.
pub(crate) static OPTIONS: &[(&str, Support)] = &[
    ("accept_protocol_versions", NotYet),
    ("acl_file", NotYet),
    ("address", NotYet),
    ("addresses", NotYet),
    ("allow_anonymous", Handled(allow_anonymous)),
    ("allow_duplicate_messages", NotYet),
    (
        "allow_zero_length_clientid",
        Handled(allow_zero_length_clientid),
    ),
    ("auth_plugin", NotYet),
    ("auth_plugin_deny_special_chars", NotYet),
    ("auto_id_prefix", Handled(auto_id_prefix)),
    ("autosave_interval", NotYet),
    ("autosave_on_changes", NotYet),
    ("bind_address", Handled(listener::bind_address)),
    ("bind_interface", NotYet),
    ("bridge_alpn", NotYet),
    ("bridge_attempt_unsubscribe", NotYet),
    ("bridge_bind_address", NotYet),
    ("bridge_cafile", NotYet),
    ("bridge_capath", NotYet),
    ("bridge_certfile", NotYet),
    ("bridge_ciphers", NotYet),
    ("bridge_ciphers_tls1.3", NotYet),
    ("bridge_identity", NotYet),
    ("bridge_insecure", NotYet),
    ("bridge_keyfile", NotYet),
    ("bridge_max_packet_size", NotYet),
    ("bridge_max_topic_alias", NotYet),
    ("bridge_outgoing_retain", NotYet),
    ("bridge_protocol_version", NotYet),
    ("bridge_psk", NotYet),
    ("bridge_receive_maximum", NotYet),
    ("bridge_reload_type", NotYet),
    ("bridge_require_ocsp", NotYet),
    ("bridge_session_expiry_interval", NotYet),
    ("bridge_tcp_keepalive", NotYet),
    ("bridge_tcp_user_timeout", NotYet),
    ("bridge_tls_use_os_certs", NotYet),
    ("bridge_tls_version", NotYet),
    ("cafile", NotYet),
    ("capath", NotYet),
    ("certfile", NotYet),
    ("check_retain_source", NotYet),
    ("ciphers", NotYet),
    ("ciphers_tls1.3", NotYet),
    ("cleansession", NotYet),
    ("clientid", NotYet),
    ("clientid_prefixes", NotYet),
    ("connection", NotYet),
    ("connection_messages", Handled(ignored_bool)),
    ("crlfile", NotYet),
    ("dhparamfile", NotYet),
    ("disable_client_cert_date_checks", NotYet),
    ("enable_control_api", NotYet),
    ("enable_proxy_protocol", NotYet),
    ("global_max_clients", NotYet),
    ("global_max_connections", NotYet),
    ("global_plugin", NotYet),
    ("http_dir", NotYet),
    ("idle_timeout", NotYet),
    ("include_dir", NotYet),
    ("keepalive_interval", NotYet),
    ("keyfile", NotYet),
    ("listener", Handled(listener::listener)),
    ("listener_allow_anonymous", NotYet),
    ("listener_auto_id_prefix", NotYet),
    ("local_cleansession", NotYet),
    ("local_clientid", NotYet),
    ("local_password", NotYet),
    ("local_username", NotYet),
    ("log_dest", Handled(log_dest)),
    ("log_facility", Handled(log_facility)),
    ("log_timestamp", Handled(ignored_bool)),
    ("log_timestamp_format", Handled(ignored_string)),
    ("log_type", Handled(log_type)),
    ("max_connections", NotYet),
    ("max_inflight_bytes", NotYet),
    ("max_inflight_messages", Handled(max_inflight_messages)),
    ("max_keepalive", Handled(max_keepalive)),
    ("max_packet_size", Handled(max_packet_size)),
    ("max_qos", Handled(listener::max_qos)),
    ("max_queued_bytes", Handled(max_queued_bytes)),
    ("max_queued_messages", Handled(max_queued_messages)),
    ("max_topic_alias", NotYet),
    ("max_topic_alias_broker", NotYet),
    ("maximum_qos", Handled(listener::max_qos)),
    ("memory_limit", NotYet),
    ("message_size_limit", Handled(message_size_limit)),
    ("mount_point", NotYet),
    ("notification_topic", NotYet),
    ("notifications", NotYet),
    ("notifications_local_only", NotYet),
    ("packet_buffer_size", NotYet),
    ("password", NotYet),
    ("password_file", NotYet),
    ("per_listener_settings", Handled(per_listener_settings)),
    ("persistence", Handled(persistence)),
    ("persistence_file", NotYet),
    ("persistence_location", NotYet),
    (
        "persistent_client_expiration",
        Handled(persistent_client_expiration),
    ),
    ("pid_file", Handled(ignored_string)),
    ("plugin", NotYet),
    ("plugin_load", NotYet),
    ("plugin_use", NotYet),
    ("port", Handled(listener::port)),
    ("protocol", Handled(protocol)),
    ("proxy_protocol_v2_require_tls", NotYet),
    ("psk_file", NotYet),
    ("psk_hint", NotYet),
    ("queue_qos0_messages", NotYet),
    ("remote_clientid", NotYet),
    ("remote_password", NotYet),
    ("remote_username", NotYet),
    ("require_certificate", NotYet),
    ("restart_timeout", NotYet),
    ("retain_available", Handled(retain_available)),
    ("retain_expiry_interval", NotYet),
    ("retained_persistence", Handled(persistence)),
    ("retry_interval", Handled(retry_interval)),
    ("round_robin", NotYet),
    ("set_tcp_nodelay", NotYet),
    ("socket_domain", NotYet),
    ("start_type", NotYet),
    ("sys_interval", Handled(sys_interval)),
    ("threshold", NotYet),
    ("tls_engine", NotYet),
    ("tls_engine_kpass_sha1", NotYet),
    ("tls_keyform", NotYet),
    ("tls_version", NotYet),
    ("topic", NotYet),
    ("try_private", NotYet),
    ("upgrade_outgoing_qos", Handled(upgrade_outgoing_qos)),
    ("use_identity_as_username", NotYet),
    ("use_subject_as_username", NotYet),
    ("use_username_as_clientid", NotYet),
    ("user", Handled(ignored_string)),
    ("username", NotYet),
    ("websockets_headers_size", NotYet),
    ("websockets_log_level", NotYet),
    ("websockets_origin", NotYet),
];

/// Option families named by prefix (`plugin_opt_<key>`); the key is the plugin's business.
static PREFIXED: &[(&str, Support)] = &[("auth_opt_", NotYet), ("plugin_opt_", NotYet)];

/// How `name` is handled; `None` = not a Mosquitto option at all.
pub(crate) fn lookup(name: &str) -> Option<Support> {
    if let Ok(index) = OPTIONS.binary_search_by(|(known, _)| known.as_bytes().cmp(name.as_bytes()))
    {
        return OPTIONS.get(index).map(|(_, support)| *support);
    }
    PREFIXED
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix) && name.len() > prefix.len())
        .map(|(_, support)| *support)
}

/// `option '<name> <value>' is not supported yet`, for options Midge handles only with
/// some values.
fn not_yet_with(line: &Line<'_>, value: &str) -> String {
    format!(
        "option '{} {}' is not supported yet",
        line.name,
        value.escape_debug()
    )
}

fn allow_anonymous(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.allow_anonymous = Some(line.bool()?);
    Ok(())
}

fn allow_zero_length_clientid(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.allow_zero_length_clientid = line.bool()?;
    Ok(())
}

/// Longest `auto_id_prefix` Mosquitto accepts (since 2.0.23), keeping generated ids short.
const MAX_AUTO_ID_PREFIX: usize = 50;

fn auto_id_prefix(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let prefix = line.rest_of_line()?;
    if parser.auto_id_prefix_set {
        return Err(line.invalid("duplicate value"));
    }
    if prefix.chars().count() > MAX_AUTO_ID_PREFIX {
        return Err(line.invalid(format!("longer than {MAX_AUTO_ID_PREFIX} characters")));
    }
    parser.auto_id_prefix_set = true;
    parser.config.auto_id_prefix = prefix.to_owned();
    Ok(())
}

/// A boolean option Midge accepts and ignores.
fn ignored_bool(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    line.bool().map(drop)
}

/// A string option Midge accepts and ignores.
fn ignored_string(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    line.rest_of_line().map(drop)
}

/// `log_dest`: checked, ignored (Midge logs through `tracing` to stderr).
fn log_dest(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let mut values = line.values();
    let destination = values.next().ok_or_else(|| line.missing())?;
    match destination {
        "file" => {
            if values.next().is_none() {
                return Err(line.invalid("missing file path after 'file'"));
            }
            Ok(())
        }
        "none" | "syslog" | "stdout" | "stderr" | "topic" | "dlt" | "android" => {
            line.no_more(values)
        }
        other => Err(line.invalid(format!("invalid value '{}'", other.escape_debug()))),
    }
}

/// `log_type`: checked, ignored.
fn log_type(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    match line.single()? {
        "none" | "information" | "notice" | "warning" | "error" | "debug" | "subscribe"
        | "unsubscribe" | "internal" | "websockets" | "all" => Ok(()),
        other => Err(line.invalid(format!("invalid value '{}'", other.escape_debug()))),
    }
}

/// `log_facility`: checked (syslog local0..local7), ignored.
fn log_facility(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    line.integer_in(0u8..=7).map(drop)
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

fn max_inflight_messages(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_inflight_messages = u16::try_from(value)
        .map_err(|_| line.invalid(format!("value {value} out of range 0..={}", u16::MAX)))?;
    Ok(())
}

fn max_keepalive(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.max_keepalive = line.integer_in(0..=u16::MAX)?;
    Ok(())
}

/// Smallest `max_packet_size` Mosquitto allows: below it not even CONNECT fits.
const MIN_PACKET_SIZE: u32 = 20;

fn max_packet_size(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.max_packet_size = Some(line.integer_in(MIN_PACKET_SIZE..=u32::MAX)?);
    Ok(())
}

fn max_queued_bytes(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_queued_bytes =
        usize::try_from(value).map_err(|_| line.invalid(format!("value {value} out of range")))?;
    Ok(())
}

fn max_queued_messages(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let value = non_negative_or_zero(parser, line)?;
    parser.config.max_queued_messages =
        usize::try_from(value).map_err(|_| line.invalid(format!("value {value} out of range")))?;
    Ok(())
}

/// The largest payload an MQTT packet can carry (the largest remaining length).
const MAX_PAYLOAD: u32 = 268_435_455;

fn message_size_limit(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.message_size_limit = line.integer_in(0..=MAX_PAYLOAD)?;
    parser.warn(
        line,
        "the 'message_size_limit' option is deprecated; use 'max_packet_size' instead",
    );
    Ok(())
}

/// `per_listener_settings false` is the default; `true` is not implemented yet.
fn per_listener_settings(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    match line.bool()? {
        false => Ok(()),
        true => Err(not_yet_with(line, "true")),
    }
}

/// `persistence` / `retained_persistence`: `false` is the default; `true` is not
/// implemented yet.
fn persistence(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    match line.bool()? {
        false => Ok(()),
        true => Err(not_yet_with(line, "true")),
    }
}

fn persistent_client_expiration(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let seconds = value::parse_duration(line.single()?).map_err(|reason| line.invalid(reason))?;
    parser.config.persistent_client_expiration = Some(seconds);
    Ok(())
}

/// `protocol mqtt` is what every listener speaks; other protocols are not implemented yet.
fn protocol(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    match line.single()? {
        "mqtt" => Ok(()),
        other @ ("websockets" | "http_api") => Err(not_yet_with(line, other)),
        other => Err(line.invalid(format!("invalid value '{}'", other.escape_debug()))),
    }
}

fn retain_available(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.retain_available = line.bool()?;
    Ok(())
}

/// Removed from Mosquitto long ago; it still accepts the option with a warning.
fn retry_interval(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.warn(
        line,
        "the 'retry_interval' option is no longer available and is ignored",
    );
    Ok(())
}

/// `sys_interval`: checked, ignored until the `$SYS` tree exists.
fn sys_interval(_: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    line.integer_in(0..=u16::MAX).map(drop)
}

fn upgrade_outgoing_qos(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.config.upgrade_outgoing_qos = line.bool()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in OPTIONS.windows(2) {
            if let [(a, _), (b, _)] = pair {
                assert!(a.as_bytes() < b.as_bytes(), "{a} must sort before {b}");
            }
        }
    }

    #[test]
    fn every_entry_is_found() {
        for (name, _) in OPTIONS {
            assert!(lookup(name).is_some(), "{name}");
        }
    }

    #[test]
    fn prefixed_families() {
        assert!(matches!(lookup("plugin_opt_config_file"), Some(NotYet)));
        assert!(matches!(lookup("auth_opt_db_host"), Some(NotYet)));
        assert!(lookup("plugin_opt_").is_none());
        assert!(lookup("foo").is_none());
        assert!(lookup("").is_none());
    }

    #[test]
    fn the_harmless_options_are_handled() {
        for name in [
            "log_dest",
            "log_type",
            "log_timestamp",
            "log_timestamp_format",
            "connection_messages",
            "persistence",
            "sys_interval",
            "pid_file",
            "user",
        ] {
            assert!(matches!(lookup(name), Some(Handled(_))), "{name}");
        }
    }
}
