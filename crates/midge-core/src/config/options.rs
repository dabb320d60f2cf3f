//! The table of every option name Mosquitto 2.0 / 2.1 documents or accepts (plus Midge's
//! own), with where it applies and whether Midge implements it.
//!
//! Every option has a handler that checks its value and stores it in the [`super::Config`],
//! even when the feature behind it lands in a later issue. Supporting such an option means
//! switching its entry from `NotYet` to `Handled`; the parser needs no other change.
//! `OPTIONS.md` in this directory documents the same table (a test keeps them in step).

use super::line::Line;
use super::{bridge, general, listener, security, tls, Parser};

/// Applies one option line to the configuration being built. The error is the message
/// after `file:line: `.
pub(crate) type Handler = fn(&mut Parser<'_>, &Line<'_>) -> Result<(), String>;

/// How Midge treats a Mosquitto option.
#[derive(Clone, Copy)]
pub(crate) enum Support {
    /// Parsed and applied.
    Handled(Handler),
    /// Parsed, checked and kept, but it changes nothing a client can observe (logging,
    /// `user`, persistence parameters without persistence…).
    Ignored(Handler),
    /// Documented by Mosquitto but not implemented yet: its value is checked and kept, then
    /// the configuration is refused (after the whole file has been checked), so a
    /// configuration that relies on it (TLS, a bridge…) never runs without it.
    // `Later` documents the plan; the OPTIONS.md test reads it.
    NotYet(Handler, #[allow(dead_code)] Later),
}

/// Where an option not implemented yet is planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Later {
    /// A Mosquitto 2.1 option no issue has taken on.
    Unscheduled,
}

/// Where an option applies; see the module docs of `listener`, `security` and `bridge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole broker, wherever it is written.
    Global,
    /// The current listener; before the first `listener` line, the default listener.
    Listener,
    /// The current listener only: an error before the first `listener` line.
    ListenerOnly,
    /// `per_listener_settings` decides: the current listener or the whole broker.
    Security,
    /// The latest `plugin` line of the file.
    Plugin,
    /// The current `connection` (bridge) block.
    Bridge,
    /// Options that shape the file: `listener`, `port`, `connection`, `include_dir`…
    Structure,
}

use Later::Unscheduled;
use Scope::{Bridge, Global, Listener, ListenerOnly, Plugin, Security as Sec, Structure as Struct};
use Support::{Handled, Ignored, NotYet};

/// One option: name, scope, support.
pub(crate) type Entry = (&'static str, Scope, Support);

/// Every option name, sorted by bytes so [`lookup`] can binary-search it.
pub(crate) static OPTIONS: &[Entry] = &[
    (
        "accept_protocol_versions",
        ListenerOnly,
        NotYet(listener::accept_protocol_versions, Unscheduled),
    ),
    ("acl_file", Sec, Handled(security::acl_file)),
    ("address", Bridge, Handled(bridge::address)),
    ("addresses", Bridge, Handled(bridge::address)),
    ("allow_anonymous", Sec, Handled(security::allow_anonymous)),
    (
        "allow_duplicate_messages",
        Global,
        Ignored(general::allow_duplicate_messages),
    ),
    (
        "allow_zero_length_clientid",
        Sec,
        Handled(security::allow_zero_length_clientid),
    ),
    ("audit_log", Global, Handled(general::audit_log)),
    (
        "auth_failure_delay",
        Global,
        Handled(general::auth_failure_delay),
    ),
    ("auth_plugin", Sec, Handled(security::plugin)),
    (
        "auth_plugin_deny_special_chars",
        Plugin,
        Handled(security::auth_plugin_deny_special_chars),
    ),
    ("auto_id_prefix", Sec, Handled(security::auto_id_prefix)),
    (
        "autosave_interval",
        Global,
        Ignored(general::autosave_interval),
    ),
    (
        "autosave_on_changes",
        Global,
        Ignored(general::autosave_on_changes),
    ),
    ("bind_address", Struct, Handled(listener::bind_address)),
    (
        "bind_interface",
        Listener,
        Handled(listener::bind_interface),
    ),
    ("bridge_alpn", Bridge, Handled(bridge::alpn)),
    (
        "bridge_attempt_unsubscribe",
        Bridge,
        Handled(bridge::attempt_unsubscribe),
    ),
    ("bridge_bind_address", Bridge, Handled(bridge::bind_address)),
    ("bridge_cafile", Bridge, Handled(bridge::cafile)),
    ("bridge_capath", Bridge, Handled(bridge::capath)),
    ("bridge_certfile", Bridge, Handled(bridge::certfile)),
    ("bridge_ciphers", Bridge, Handled(bridge::ciphers)),
    (
        "bridge_ciphers_tls1.3",
        Bridge,
        Handled(bridge::ciphers_tls13),
    ),
    ("bridge_identity", Bridge, Handled(bridge::identity)),
    ("bridge_insecure", Bridge, Handled(bridge::insecure)),
    ("bridge_keyfile", Bridge, Handled(bridge::keyfile)),
    (
        "bridge_max_packet_size",
        Bridge,
        Handled(bridge::max_packet_size),
    ),
    (
        "bridge_max_topic_alias",
        Bridge,
        Handled(bridge::max_topic_alias),
    ),
    (
        "bridge_outgoing_retain",
        Bridge,
        Handled(bridge::outgoing_retain),
    ),
    (
        "bridge_protocol_version",
        Bridge,
        Handled(bridge::protocol_version),
    ),
    ("bridge_psk", Bridge, Handled(bridge::psk)),
    (
        "bridge_receive_maximum",
        Bridge,
        Handled(bridge::receive_maximum),
    ),
    ("bridge_reload_type", Bridge, Handled(bridge::reload_type)),
    ("bridge_require_ocsp", Bridge, Handled(bridge::require_ocsp)),
    (
        "bridge_session_expiry_interval",
        Bridge,
        Handled(bridge::session_expiry_interval),
    ),
    (
        "bridge_tcp_keepalive",
        Bridge,
        Handled(bridge::tcp_keepalive),
    ),
    (
        "bridge_tcp_user_timeout",
        Bridge,
        Handled(bridge::tcp_user_timeout),
    ),
    (
        "bridge_tls_use_os_certs",
        Bridge,
        Handled(bridge::tls_use_os_certs),
    ),
    ("bridge_tls_version", Bridge, Handled(bridge::tls_version)),
    ("cafile", Listener, Handled(tls::cafile)),
    ("capath", Listener, Handled(tls::capath)),
    ("certfile", Listener, Handled(tls::certfile)),
    (
        "check_retain_source",
        Global,
        Handled(security::check_retain_source),
    ),
    ("ciphers", Listener, Handled(tls::ciphers)),
    ("ciphers_tls1.3", Listener, Handled(tls::ciphers_tls13)),
    ("cleansession", Bridge, Handled(bridge::cleansession)),
    ("clientid", Bridge, Handled(bridge::remote_clientid)),
    (
        "clientid_prefix",
        Global,
        Handled(security::clientid_prefixes),
    ),
    (
        "clientid_prefixes",
        Global,
        Handled(security::clientid_prefixes),
    ),
    ("connection", Struct, Handled(bridge::connection)),
    (
        "connection_messages",
        Global,
        Handled(general::connection_messages),
    ),
    ("crlfile", Listener, Handled(tls::crlfile)),
    ("dhparamfile", Listener, Handled(tls::dhparamfile)),
    (
        "disable_client_cert_date_checks",
        ListenerOnly,
        Handled(tls::disable_client_cert_date_checks),
    ),
    (
        "enable_control_api",
        Global,
        Ignored(general::enable_control_api),
    ),
    (
        "enable_proxy_protocol",
        ListenerOnly,
        NotYet(listener::enable_proxy_protocol, Unscheduled),
    ),
    ("global_max_clients", Global, Ignored(general::global_max)),
    (
        "global_max_connections",
        Global,
        Ignored(general::global_max),
    ),
    ("global_plugin", Global, Handled(security::global_plugin)),
    ("http_dir", Listener, Handled(listener::http_dir)),
    ("idle_timeout", Bridge, Handled(bridge::idle_timeout)),
    ("include_dir", Struct, Handled(general::include_dir)),
    (
        "keepalive_interval",
        Bridge,
        Handled(bridge::keepalive_interval),
    ),
    ("keyfile", Listener, Handled(tls::keyfile)),
    ("listener", Struct, Handled(listener::listener)),
    (
        "listener_allow_anonymous",
        ListenerOnly,
        Handled(security::listener_allow_anonymous),
    ),
    (
        "listener_auto_id_prefix",
        ListenerOnly,
        Handled(security::listener_auto_id_prefix),
    ),
    (
        "local_cleansession",
        Bridge,
        Handled(bridge::local_cleansession),
    ),
    ("local_clientid", Bridge, Handled(bridge::local_clientid)),
    ("local_password", Bridge, Handled(bridge::local_password)),
    ("local_username", Bridge, Handled(bridge::local_username)),
    ("log_dest", Global, Handled(general::log_dest)),
    ("log_facility", Global, Handled(general::log_facility)),
    ("log_timestamp", Global, Handled(general::log_timestamp)),
    (
        "log_timestamp_format",
        Global,
        Handled(general::log_timestamp_format),
    ),
    ("log_type", Global, Handled(general::log_type)),
    (
        "max_connection_rate",
        Listener,
        Handled(listener::max_connection_rate),
    ),
    (
        "max_connections",
        Listener,
        Handled(listener::max_connections),
    ),
    (
        "max_connections_per_IP",
        Global,
        Handled(general::max_connections_per_ip),
    ),
    (
        "max_inflight_bytes",
        Global,
        Handled(general::max_inflight_bytes),
    ),
    (
        "max_inflight_messages",
        Global,
        Handled(general::max_inflight_messages),
    ),
    ("max_keepalive", Global, Handled(general::max_keepalive)),
    ("max_packet_size", Global, Handled(general::max_packet_size)),
    (
        "max_payload_size",
        Global,
        Handled(general::max_payload_size),
    ),
    (
        "max_publish_bytes_rate",
        Global,
        Handled(general::max_publish_bytes_rate),
    ),
    (
        "max_publish_rate",
        Global,
        Handled(general::max_publish_rate),
    ),
    ("max_qos", Struct, Handled(listener::max_qos)),
    (
        "max_queued_bytes",
        Global,
        Handled(general::max_queued_bytes),
    ),
    (
        "max_queued_messages",
        Global,
        Handled(general::max_queued_messages),
    ),
    (
        "max_topic_alias",
        Listener,
        Handled(listener::max_topic_alias),
    ),
    (
        "max_topic_alias_broker",
        Listener,
        Ignored(listener::max_topic_alias_broker),
    ),
    ("maximum_qos", Struct, Handled(listener::max_qos)),
    ("memory_limit", Global, Handled(general::memory_limit)),
    (
        "message_size_limit",
        Global,
        Handled(general::message_size_limit),
    ),
    ("mount_point", ListenerOnly, Handled(listener::mount_point)),
    (
        "notification_topic",
        Bridge,
        Handled(bridge::notification_topic),
    ),
    ("notifications", Bridge, Handled(bridge::notifications)),
    (
        "notifications_local_only",
        Bridge,
        Handled(bridge::notifications_local_only),
    ),
    (
        "packet_buffer_size",
        Global,
        Ignored(general::packet_buffer_size),
    ),
    ("password", Bridge, Handled(bridge::remote_password)),
    ("password_file", Sec, Handled(security::password_file)),
    (
        "per_listener_settings",
        Struct,
        Handled(security::per_listener_settings),
    ),
    ("persistence", Global, Handled(general::persistence)),
    (
        "persistence_file",
        Global,
        Handled(general::persistence_file),
    ),
    (
        "persistence_fsync",
        Global,
        Handled(general::persistence_fsync),
    ),
    (
        "persistence_location",
        Global,
        Handled(general::persistence_location),
    ),
    (
        "persistent_client_expiration",
        Global,
        Handled(general::persistent_client_expiration),
    ),
    ("pid_file", Global, Handled(general::pid_file)),
    ("plugin", Sec, Handled(security::plugin)),
    ("plugin_load", Global, Handled(security::plugin_load)),
    ("plugin_use", ListenerOnly, Handled(security::plugin_use)),
    ("port", Struct, Handled(listener::port)),
    ("protocol", Listener, Handled(listener::protocol)),
    (
        "proxy_protocol_v2_require_tls",
        ListenerOnly,
        NotYet(listener::proxy_protocol_v2_require_tls, Unscheduled),
    ),
    ("psk_file", Sec, Handled(security::psk_file)),
    ("psk_hint", Listener, Handled(tls::psk_hint)),
    (
        "queue_qos0_messages",
        Global,
        Handled(general::queue_qos0_messages),
    ),
    ("remote_clientid", Bridge, Handled(bridge::remote_clientid)),
    ("remote_password", Bridge, Handled(bridge::remote_password)),
    ("remote_username", Bridge, Handled(bridge::remote_username)),
    (
        "require_certificate",
        Listener,
        Handled(tls::require_certificate),
    ),
    ("restart_timeout", Bridge, Handled(bridge::restart_timeout)),
    (
        "retain_available",
        Global,
        Handled(general::retain_available),
    ),
    (
        "retain_expiry_interval",
        Global,
        Ignored(general::retain_expiry_interval),
    ),
    (
        "retained_persistence",
        Global,
        Handled(general::persistence),
    ),
    ("retry_interval", Global, Ignored(general::retry_interval)),
    ("round_robin", Bridge, Handled(bridge::round_robin)),
    ("set_tcp_nodelay", Global, Handled(general::set_tcp_nodelay)),
    ("socket_domain", Listener, Handled(listener::socket_domain)),
    ("start_type", Bridge, Handled(bridge::start_type)),
    ("sys_interval", Global, Handled(general::sys_interval)),
    ("threshold", Bridge, Handled(bridge::threshold)),
    ("tls_engine", Listener, Handled(tls::tls_engine)),
    (
        "tls_engine_kpass_sha1",
        Listener,
        Ignored(tls::tls_engine_kpass_sha1),
    ),
    ("tls_keyform", Listener, Handled(tls::tls_keyform)),
    ("tls_version", Listener, Handled(tls::tls_version)),
    ("topic", Bridge, Handled(bridge::topic)),
    ("try_private", Bridge, Handled(bridge::try_private)),
    (
        "upgrade_outgoing_qos",
        Global,
        Handled(general::upgrade_outgoing_qos),
    ),
    (
        "use_identity_as_username",
        Listener,
        Handled(tls::use_identity_as_username),
    ),
    (
        "use_subject_as_username",
        Listener,
        Handled(tls::use_subject_as_username),
    ),
    (
        "use_username_as_clientid",
        Listener,
        Handled(listener::use_username_as_clientid),
    ),
    ("user", Global, Handled(general::user)),
    ("username", Bridge, Handled(bridge::remote_username)),
    (
        "websockets_headers_size",
        Global,
        Ignored(general::packet_buffer_size),
    ),
    (
        "websockets_log_level",
        Global,
        Ignored(general::websockets_log_level),
    ),
    (
        "websockets_origin",
        ListenerOnly,
        Handled(listener::websockets_origin),
    ),
];

/// Option families named by prefix (`plugin_opt_<key>`); the key is the plugin's business.
pub(crate) static PREFIXED: &[Entry] = &[
    ("auth_opt_", Plugin, Handled(security::plugin_opt)),
    ("plugin_opt_", Plugin, Handled(security::plugin_opt)),
];

/// The entry for `name`; for a prefixed family the entry's name is the prefix. `None` = not
/// a Mosquitto (or Midge) option at all.
pub(crate) fn lookup(name: &str) -> Option<&'static Entry> {
    if let Ok(index) = OPTIONS.binary_search_by(|(known, ..)| known.as_bytes().cmp(name.as_bytes()))
    {
        return OPTIONS.get(index);
    }
    PREFIXED
        .iter()
        .find(|(prefix, ..)| name.starts_with(prefix) && name.len() > prefix.len())
}

/// An option spelled like `name` but for case (`Listener`, `max_connections_per_ip`), to
/// suggest it: names are case sensitive, as in Mosquitto.
pub(crate) fn case_insensitive(name: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .map(|(known, ..)| *known)
        .find(|known| known.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in OPTIONS.windows(2) {
            if let [(a, ..), (b, ..)] = pair {
                assert!(a.as_bytes() < b.as_bytes(), "{a} must sort before {b}");
            }
        }
    }

    #[test]
    fn every_entry_is_found() {
        for (name, ..) in OPTIONS {
            assert!(lookup(name).is_some(), "{name}");
        }
    }

    #[test]
    fn prefixed_families() {
        assert!(matches!(
            lookup("plugin_opt_config_file"),
            Some((_, Plugin, Handled(_)))
        ));
        assert!(matches!(
            lookup("auth_opt_db_host"),
            Some(("auth_opt_", ..))
        ));
        assert!(lookup("plugin_opt_").is_none());
        assert!(lookup("foo").is_none());
        assert!(lookup("").is_none());
    }

    #[test]
    fn case_suggestions() {
        assert_eq!(case_insensitive("Listener"), Some("listener"));
        assert_eq!(
            case_insensitive("max_connections_per_ip"),
            Some("max_connections_per_IP")
        );
        assert_eq!(case_insensitive("bogus"), None);
    }
}
