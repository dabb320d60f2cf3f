//! Every configuration shown in the seed documents (../shared/seeds/), as written there.
//!
//! Several seeds are web pages captured without their line breaks (a configuration block
//! reads `# mosquitto.conf # ... other settings ... clientid_prefix sensor_`); the
//! snippets below restore one option per line, as on the original pages, and keep every
//! word. Where the flattened text itself would be read differently, a test says how.

use super::*;

fn ok(text: &str) -> Config {
    match parse(text, "mosquitto.conf") {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}\n--- in:\n{text}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, "mosquitto.conf") {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

fn kept(text: &str) -> Config {
    match parse_keeping_unsupported(text, "mosquitto.conf") {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}\n--- in:\n{text}"),
    }
}

/// Seed 000 (lucadentella.it, Mosquitto 1.4 on Windows): the lines are in screenshots; the
/// text names them: anonymous access off, `password_file` "pwdfile" in Mosquitto's folder,
/// and an `acl_file`. No listener: Mosquitto 2 (and Midge) run in local-only mode, where
/// the explicit `allow_anonymous false` still holds in Midge.
#[test]
fn seed_000_password_and_acl_without_listener() {
    let config = ok("allow_anonymous false\npassword_file pwdfile\nacl_file aclfile\n");
    assert!(config.listeners.is_empty());
    let local = ListenerConfig {
        bind_address: Some("127.0.0.1".into()),
        ..config.listener_defaults.clone()
    };
    let security = config.security_for(&local);
    assert!(!security.allow_anonymous);
    assert_eq!(security.password_file.as_deref(), Some("pwdfile"));
    assert_eq!(security.acl_file.as_deref(), Some("aclfile"));
    assert!(config.warnings.is_empty());
}

/// Seed 001 (steves-internet-guide): "Example settings allow_anonymous false password_file
/// c:\mosquitto\passwords.txt #Windows machine".
#[test]
fn seed_001_windows_password_file() {
    let config = ok("allow_anonymous false\n\
                     password_file c:\\mosquitto\\passwords.txt #Windows machine\n");
    assert_eq!(config.allow_anonymous, Some(false));
    // As in Mosquitto, the rest of the line is the path, "#Windows machine" included
    // (the broker will then fail to open it); a warning says so.
    assert_eq!(
        config.security.password_file.as_deref(),
        Some("c:\\mosquitto\\passwords.txt #Windows machine")
    );
    assert_eq!(
        config.warnings,
        ["mosquitto.conf:2: password_file: the value 'c:\\mosquitto\\passwords.txt #Windows machine' includes what looks like a comment; as in Mosquitto, a '#' after the value is part of it"]
    );
    // Taken literally as one line, Mosquitto would read `allow_anonymous false` and drop
    // the rest, password file included, without a word; Midge refuses the line.
    assert_eq!(
        err("allow_anonymous false password_file c:\\mosquitto\\passwords.txt #Windows machine\n"),
        "mosquitto.conf:1: allow_anonymous: unexpected extra value 'password_file'"
    );
}

/// Seed 002's first two configurations: anonymous on, then off.
#[test]
fn seed_002_anonymous_on_and_off() {
    let open = ok("# mosquitto.conf (insecure example)\nlistener 1883\nallow_anonymous true\n");
    assert_eq!(open.listeners.len(), 1);
    assert_eq!(open.listeners[0].port, 1883);
    assert!(open.security_for(&open.listeners[0]).allow_anonymous);

    let closed = ok(
        "# mosquitto.conf (after disallowing anonymous)\nlistener 1883\nallow_anonymous false\n",
    );
    assert!(!closed.security_for(&closed.listeners[0]).allow_anonymous);
}

/// Seed 002 hardened step by step: password file, ACL file, client id prefix (the seed's
/// `clientid_prefix` spelling), connection rate and payload limits.
#[test]
fn seed_002_hardened_broker() {
    let text = "\
# mosquitto.conf (after disallowing anonymous)
listener 1883
allow_anonymous false
password_file /etc/mosquitto/pwfile.txt
acl_file /etc/mosquitto/aclfile.txt
# mosquitto.conf
# ... other settings ...
clientid_prefix sensor_
# mosquitto.conf
# Limit to 100 connections per IP address per minute
max_connections_per_IP 100
# Limit message payload to 256KB
max_payload_size 262144
";
    let config = ok(text);
    let security = config.security_for(&config.listeners[0]);
    assert!(!security.allow_anonymous);
    assert_eq!(
        security.password_file.as_deref(),
        Some("/etc/mosquitto/pwfile.txt")
    );
    assert_eq!(
        security.acl_file.as_deref(),
        Some("/etc/mosquitto/aclfile.txt")
    );
    assert_eq!(security.clientid_prefixes.as_deref(), Some("sensor_"));
    assert_eq!(config.max_connections_per_ip, Some(100));
    assert_eq!(config.max_payload_size, Some(262_144));
    assert_eq!(
        config.warnings,
        ["mosquitto.conf:8: 'clientid_prefix' is read as 'clientid_prefixes' (Mosquitto knows only that spelling), which is deprecated"]
    );
    // Each snippet on its own, as the seed shows them.
    assert_eq!(
        ok("password_file /etc/mosquitto/pwfile.txt\n")
            .security
            .password_file
            .as_deref(),
        Some("/etc/mosquitto/pwfile.txt")
    );
    assert_eq!(
        ok("acl_file /etc/mosquitto/aclfile.txt\n")
            .security
            .acl_file
            .as_deref(),
        Some("/etc/mosquitto/aclfile.txt")
    );
    let limits = ok("# mosquitto.conf\n\
                     # Limit to 100 connections per IP address per minute\n\
                     max_connections_per_IP 100\n\
                     # Limit message payload to 256KB\n\
                     max_payload_size 262144\n");
    assert_eq!(limits.max_connections_per_ip, Some(100));
    assert_eq!(limits.max_payload_size, Some(262_144));
}

/// Seed 002's TLS listener: checked completely, kept for issue 5, refused until then.
#[test]
fn seed_002_tls_listener() {
    let text = "\
# TLS settings
listener 8883
protocol mqtt
tls_version tlsv1.2
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
# Optional: If using client certificates for mutual TLS
# cafile /etc/mosquitto/certs/ca.crt
# certfile /etc/mosquitto/certs/client.crt
# keyfile /etc/mosquitto/certs/client.key
";
    // Certificate TLS is supported (issue 5): the file is accepted as it is.
    let config = ok(text);
    let listener = &config.listeners[0];
    assert_eq!(listener.port, 8883);
    assert_eq!(listener.protocol, Protocol::Mqtt);
    assert_eq!(listener.tls.tls_version, Some(TlsVersion::Tls1_2));
    assert_eq!(
        listener.tls.certfile.as_deref(),
        Some("/etc/mosquitto/certs/server.crt")
    );
    assert_eq!(
        listener.tls.keyfile.as_deref(),
        Some("/etc/mosquitto/certs/server.key")
    );
    assert_eq!(listener.tls.cafile, None, "commented out");
}

/// Seed 003 (Mosquitto 2.1 documentation): a password file per listener.
#[test]
fn seed_003_password_file_per_listener() {
    let config = ok("per_listener_settings true\n\
                     listener 1883\n\
                     password_file /etc/mosquitto/password_file\n");
    assert!(config.per_listener_settings);
    assert_eq!(
        config.listeners[0].security.password_file.as_deref(),
        Some("/etc/mosquitto/password_file")
    );
    assert_eq!(config.security.password_file, None);
    let security = config.security_for(&config.listeners[0]);
    assert_eq!(
        security.password_file.as_deref(),
        Some("/etc/mosquitto/password_file")
    );
    assert!(!security.allow_anonymous);
    // The same lines without per_listener_settings: one password file for every listener.
    let config = ok("listener 1883\npassword_file /etc/mosquitto/password_file\n");
    assert_eq!(
        config.security.password_file.as_deref(),
        Some("/etc/mosquitto/password_file")
    );
}

/// Seed 003's dynamic security plugin (issue 6), with the recommended
/// `per_listener_settings false`.
#[test]
fn seed_003_dynamic_security_plugin() {
    let text = "\
per_listener_settings false
plugin path/to/mosquitto_dynamic_security.so
plugin_opt_config_file path/to/dynamic-security.json
";
    let config = kept(text);
    let plugin = &config.security.plugins[0];
    assert_eq!(
        plugin.dynamic_security_file(),
        Ok("path/to/dynamic-security.json")
    );
    assert_eq!(plugin.path, "path/to/mosquitto_dynamic_security.so");
    assert_eq!(
        plugin.options,
        [(
            "config_file".to_owned(),
            "path/to/dynamic-security.json".to_owned()
        )]
    );
    assert!(plugin.deny_special_chars);
    let windows = kept(
        "plugin path\\to\\mosquitto_dynamic_security.dll\n\
                        plugin_opt_config_file path\\to\\dynamic-security.json\n",
    );
    assert_eq!(
        windows.security.plugins[0].path,
        "path\\to\\mosquitto_dynamic_security.dll"
    );
}

/// The options seed 003 documents one by one, each with a value of its documented form.
#[test]
fn seed_003_documented_options() {
    let config = kept(
        "\
listener 8883
cafile /etc/mosquitto/ca.crt
certfile /etc/mosquitto/server.crt
keyfile /etc/mosquitto/server.key
crlfile /etc/mosquitto/crl.pem
dhparamfile /etc/mosquitto/dhparam.pem
require_certificate true
tls_engine_kpass_sha1 0123456789abcdef0123456789abcdef01234567
tls_version tlsv1.2
use_identity_as_username true
use_subject_as_username false
set_tcp_nodelay true
allow_zero_length_clientid false
clientid_prefixes secure-
connection_messages true
max_inflight_bytes 0
max_inflight_messages 20
max_keepalive 60
max_packet_size 1000
max_queued_bytes 0
max_queued_messages 1000
memory_limit 0
message_size_limit 0
persistence false
user mosquitto
",
    );
    let tls = &config.listeners[0].tls;
    assert_eq!(tls.crlfile.as_deref(), Some("/etc/mosquitto/crl.pem"));
    assert!(tls.require_certificate && tls.use_identity_as_username);
    assert!(config.set_tcp_nodelay);
    assert!(!config.allow_zero_length_clientid);
    assert_eq!(config.max_keepalive, 60);
    assert_eq!(config.max_packet_size, Some(1000));
    assert_eq!(config.user.as_deref(), Some("mosquitto"));
    // auth_plugin_deny_special_chars needs its plugin, as in Mosquitto.
    assert_eq!(
        err("auth_plugin_deny_special_chars true\n"),
        "mosquitto.conf:1: auth_plugin_deny_special_chars: requires a 'plugin' line before it"
    );
}

/// Seed 004's first broker: password and ACL file on a loopback listener.
#[test]
fn seed_004_access_control_broker() {
    let config = ok("listener 1883 127.0.0.1\n\
                     allow_anonymous false\n\
                     password_file /etc/mosquitto/passwd\n\
                     acl_file /etc/mosquitto/acl\n");
    let listener = &config.listeners[0];
    assert_eq!(listener.port, 1883);
    assert_eq!(listener.bind_address.as_deref(), Some("127.0.0.1"));
    let security = config.security_for(listener);
    assert!(!security.allow_anonymous);
    assert_eq!(
        security.password_file.as_deref(),
        Some("/etc/mosquitto/passwd")
    );
    assert_eq!(security.acl_file.as_deref(), Some("/etc/mosquitto/acl"));
    assert!(config.warnings.is_empty());
}

/// Seed 004's anonymous variant of the first broker. The seed expects anonymous clients to
/// publish; since Mosquitto 2.0 a configured listener without `allow_anonymous` refuses
/// them, and Midge does the same.
#[test]
fn seed_004_acl_only_broker() {
    let config = ok("listener 1883 127.0.0.1\nacl_file /etc/mosquitto/acl\n");
    let security = config.security_for(&config.listeners[0]);
    assert_eq!(security.acl_file.as_deref(), Some("/etc/mosquitto/acl"));
    assert_eq!(security.password_file, None);
    assert!(!security.allow_anonymous);
}

/// Seed 004's second broker: a bridge (issue 8), accepted and kept.
#[test]
fn seed_004_bridge_broker() {
    let text = "\
listener 1883 172.20.1.92
connection bridge-01
address 127.0.0.1:1883

remote_username forward
remote_password forward123

topic # out 0
topic # in 0
";
    let config = ok(text);
    assert_eq!(
        config.listeners[0].bind_address.as_deref(),
        Some("172.20.1.92")
    );
    let bridge = &config.bridges[0];
    assert_eq!(bridge.name, "bridge-01");
    assert_eq!(
        bridge.addresses,
        [BridgeAddress {
            host: "127.0.0.1".into(),
            port: 1883
        }]
    );
    assert_eq!(bridge.remote_username.as_deref(), Some("forward"));
    assert_eq!(bridge.remote_password.as_deref(), Some("forward123"));
    let topics: Vec<(&str, Direction, u8)> = bridge
        .topics
        .iter()
        .map(|t| (t.pattern.as_str(), t.direction, t.qos))
        .collect();
    assert_eq!(topics, [("#", Direction::Out, 0), ("#", Direction::In, 0)]);

    // The anonymous variant: the same bridge without credentials.
    let config = kept(
        "listener 1883 172.20.1.92\n\
                       connection bridge-01\n\
                       address 127.0.0.1:1883\n\
                       \n\
                       topic # out 0\n\
                       topic # in 0\n",
    );
    assert_eq!(config.bridges[0].remote_username, None);
    assert_eq!(config.bridges[0].topics.len(), 2);
}
