//! Parser tests: good and bad lines with their exact messages, scopes,
//! `per_listener_settings`, `include_dir`, options not supported yet, warnings.

use super::*;

fn ok(text: &str) -> Config {
    match parse(text, "test.conf") {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}\n--- in:\n{text}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, "test.conf") {
        Ok(config) => panic!("expected an error, got {config:?}\n--- in:\n{text}"),
        Err(error) => error.to_string(),
    }
}

/// The configuration with the values of options not supported yet.
fn kept(text: &str) -> Config {
    match parse_keeping_unsupported(text, "test.conf") {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}\n--- in:\n{text}"),
    }
}

fn listener(port: u16, bind_address: Option<&str>, line: usize) -> ListenerConfig {
    ListenerConfig {
        port,
        bind_address: bind_address.map(str::to_owned),
        line,
        file: "test.conf".to_owned(),
        ..ListenerConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Defaults and the options the broker already used
// ---------------------------------------------------------------------------------------

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
    assert_eq!(config.max_inflight_bytes, 0);
    assert_eq!(config.max_queued_messages, 1000);
    assert_eq!(config.max_queued_bytes, 0);
    assert!(!config.queue_qos0_messages);
    assert_eq!(config.memory_limit, 0);
    assert!(config.retain_available);
    assert_eq!(config.persistent_client_expiration, None);
    assert_eq!(config.message_size_limit, 0);
    assert_eq!(config.max_payload_size, None);
    assert_eq!(config.max_connections_per_ip, None);
    assert_eq!(config.max_qos, 2);
    assert!(!config.upgrade_outgoing_qos);
    assert!(!config.set_tcp_nodelay);
    assert!(config.connection_messages);
    assert!(config.check_retain_source);
    assert!(config.allow_zero_length_clientid);
    assert_eq!(config.auto_id_prefix, "auto-");
    assert!(!config.per_listener_settings);
    assert_eq!(config.security, SecurityOptions::default());
    assert_eq!(config.sys_interval, 10);
    assert_eq!(config.persistence, PersistenceOptions::default());
    assert_eq!(config.persistence.autosave_interval, 1800);
    assert!(config.logging.timestamp);
    assert!(config.bridges.is_empty());
    assert!(config.warnings.is_empty());
    let defaults = &config.listener_defaults;
    assert_eq!(defaults.max_topic_alias, 10);
    assert_eq!(defaults.max_connections, None);
    assert_eq!(defaults.protocol, Protocol::Mqtt);
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
    assert_eq!(config.security.allow_anonymous, Some(true));
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
    assert!(!config.security_for(&config.listeners[0]).allow_anonymous);
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
    // max_qos before the first listener is a global default: no warning, no port 1883.
    assert!(config.warnings.is_empty());
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
        err("listener 1883\nlistener 1883\n"),
        "test.conf:2: listener: duplicate listener for port 1883 (already defined on line 1)"
    );
    assert_eq!(
        err("listener 0 /run/midge.sock\nlistener 0 /run/midge.sock\n"),
        "test.conf:2: listener: duplicate listener for Unix socket /run/midge.sock (already defined on line 1)"
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
fn unix_socket_listener() {
    let config = ok("listener 0 /run/midge/midge.sock\nallow_anonymous true\nlistener 1883\n");
    let unix = &config.listeners[0];
    assert_eq!(unix.port, 0);
    assert_eq!(unix.unix_socket.as_deref(), Some("/run/midge/midge.sock"));
    assert_eq!(unix.bind_address, None);
    assert_eq!(config.listeners[1].unix_socket, None);
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
    assert!(config.warnings[0].starts_with("test.conf:1: the 'bind_address' option is deprecated"));
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

/// The 1.x style: listener options before any `listener` line, with `port`, configure the
/// default listener only (as in Mosquitto).
#[test]
fn listener_options_before_the_first_listener_go_to_the_default_listener() {
    let config = ok("port 1884\n\
                     max_connections 10\n\
                     use_username_as_clientid true\n\
                     listener 9001\n\
                     max_topic_alias 3\n");
    let [extra, default] = config.listeners.as_slice() else {
        panic!("two listeners expected: {:?}", config.listeners);
    };
    assert_eq!(default.port, 1884);
    assert_eq!(default.max_connections, Some(10));
    assert!(default.use_username_as_clientid);
    assert_eq!(default.max_topic_alias, 10);
    assert_eq!(extra.port, 9001);
    assert_eq!(extra.max_connections, None);
    assert!(!extra.use_username_as_clientid);
    assert_eq!(extra.max_topic_alias, 3);
    assert_eq!(config.listener_defaults, ListenerConfig::default());
    assert_eq!(config.warnings.len(), 1, "only the port deprecation");
}

/// Without `port`, Mosquitto would open a default listener on port 1883 for such options;
/// Midge applies them to every listener that does not set its own, and says so.
#[test]
fn listener_options_before_the_first_listener_without_port_apply_to_every_listener() {
    let config = ok("max_connections 10\n\
                     socket_domain ipv4\n\
                     listener 1883\n\
                     listener 1884\n\
                     max_connections -1\n");
    assert_eq!(config.listeners.len(), 2, "no default listener on 1883");
    assert_eq!(config.listeners[0].max_connections, Some(10));
    assert_eq!(config.listeners[0].socket_domain, Some(SocketDomain::Ipv4));
    assert_eq!(config.listeners[1].max_connections, None, "its own -1 wins");
    assert_eq!(config.listeners[1].socket_domain, Some(SocketDomain::Ipv4));
    assert_eq!(config.listener_defaults.max_connections, Some(10));
    assert_eq!(
        config.warnings,
        [
            "test.conf:1: max_connections before the first 'listener' line applies to every listener that does not set its own (Mosquitto would give it to a default listener on port 1883 instead)",
            "test.conf:2: socket_domain before the first 'listener' line applies to every listener that does not set its own (Mosquitto would give it to a default listener on port 1883 instead)",
        ]
    );
    // In local-only mode they are the settings of the broker's own listeners.
    let config = ok("max_connections 5\n");
    assert!(config.listeners.is_empty());
    assert_eq!(config.listener_defaults.max_connections, Some(5));
}

// ---------------------------------------------------------------------------------------
// Good lines: one per option class, with the value they produce
// ---------------------------------------------------------------------------------------

#[test]
fn good_lines() {
    type Check = fn(&Config) -> bool;
    let cases: &[(&str, Check)] = &[
        // Booleans: true/false and 1/0.
        ("set_tcp_nodelay true", |c| c.set_tcp_nodelay),
        ("set_tcp_nodelay 1", |c| c.set_tcp_nodelay),
        ("queue_qos0_messages true", |c| c.queue_qos0_messages),
        ("connection_messages false", |c| !c.connection_messages),
        ("check_retain_source false", |c| !c.check_retain_source),
        ("retain_available 0", |c| !c.retain_available),
        ("upgrade_outgoing_qos true", |c| c.upgrade_outgoing_qos),
        ("allow_zero_length_clientid false", |c| {
            !c.allow_zero_length_clientid && c.security.allow_zero_length_clientid == Some(false)
        }),
        ("log_timestamp false", |c| !c.logging.timestamp),
        // Integers and sizes.
        ("max_inflight_bytes 65536", |c| {
            c.max_inflight_bytes == 65536
        }),
        ("memory_limit 1073741824", |c| c.memory_limit == 1 << 30),
        ("memory_limit 0", |c| c.memory_limit == 0),
        ("max_payload_size 262144", |c| {
            c.max_payload_size == Some(262_144)
        }),
        ("max_payload_size 0", |c| c.max_payload_size.is_none()),
        ("max_connections_per_IP 100", |c| {
            c.max_connections_per_ip == Some(100)
        }),
        ("max_connections_per_IP 0", |c| {
            c.max_connections_per_ip.is_none()
        }),
        ("sys_interval 0", |c| c.sys_interval == 0),
        ("autosave_interval 60", |c| {
            c.persistence.autosave_interval == 60
        }),
        ("log_facility 7", |c| c.logging.facility == Some(7)),
        ("websockets_log_level 255", |c| {
            c.logging.websockets_log_level == Some(255)
        }),
        ("websockets_headers_size 4096", |c| {
            c.packet_buffer_size == Some(4096)
        }),
        ("packet_buffer_size 0", |c| c.packet_buffer_size == Some(0)),
        ("retain_expiry_interval 5", |c| {
            c.retain_expiry_interval == Some(5)
        }),
        ("global_max_connections -1", |c| {
            c.global_max_connections.is_none()
        }),
        // Durations.
        ("persistent_client_expiration 14d", |c| {
            c.persistent_client_expiration == Some(14 * 86_400)
        }),
        ("persistent_client_expiration 30s", |c| {
            c.persistent_client_expiration == Some(30)
        }),
        // Strings with spaces: the rest of the line.
        ("password_file /etc/my dir/passwd", |c| {
            c.security.password_file.as_deref() == Some("/etc/my dir/passwd")
        }),
        ("acl_file C:\\Program Files\\mosquitto\\acl.txt", |c| {
            c.security.acl_file.as_deref() == Some("C:\\Program Files\\mosquitto\\acl.txt")
        }),
        ("auto_id_prefix  my prefix- ", |c| {
            c.auto_id_prefix == "my prefix-"
        }),
        ("clientid_prefixes secure-", |c| {
            c.security.clientid_prefixes.as_deref() == Some("secure-")
        }),
        ("log_timestamp_format %Y-%m-%dT%H:%M:%S", |c| {
            c.logging.timestamp_format.as_deref() == Some("%Y-%m-%dT%H:%M:%S")
        }),
        ("log_dest file /var/log/my logs/mosquitto.log", |c| {
            c.logging.destinations == [LogDest::File("/var/log/my logs/mosquitto.log".into())]
        }),
        ("user mosquitto", |c| c.user.as_deref() == Some("mosquitto")),
        ("pid_file /run/mosquitto.pid", |c| {
            c.pid_file.as_deref() == Some("/run/mosquitto.pid")
        }),
        ("persistence_location /var/lib/mosquitto/", |c| {
            c.persistence.location.as_deref() == Some("/var/lib/mosquitto/")
        }),
        ("persistence_file midge.db", |c| {
            c.persistence.file.as_deref() == Some("midge.db")
        }),
        // Enums.
        ("log_type all", |c| c.logging.types == [LogType::All]),
        ("log_dest stdout", |c| {
            c.logging.destinations == [LogDest::Stdout]
        }),
        ("persistence false", |c| !c.persistence.enabled),
        ("retained_persistence false", |c| !c.persistence.enabled),
        ("enable_control_api false", |c| !c.enable_control_api),
        ("allow_duplicate_messages false", |c| {
            !c.allow_duplicate_messages
        }),
        // Listener options.
        ("listener 1883\nmax_connections 100", |c| {
            c.listeners[0].max_connections == Some(100)
        }),
        ("listener 1883\nmax_connections -1", |c| {
            c.listeners[0].max_connections.is_none()
        }),
        ("listener 1883\nmount_point tenant/a/", |c| {
            c.listeners[0].mount_point.as_deref() == Some("tenant/a/")
        }),
        ("listener 1883\nmax_topic_alias 0", |c| {
            c.listeners[0].max_topic_alias == 0
        }),
        ("listener 1883\nmax_topic_alias 65535", |c| {
            c.listeners[0].max_topic_alias == 65535
        }),
        ("listener 1883\nmax_topic_alias_broker 5", |c| {
            c.listeners[0].max_topic_alias_broker == Some(5)
        }),
        ("listener 1883\nuse_username_as_clientid true", |c| {
            c.listeners[0].use_username_as_clientid
        }),
        ("listener 1883\nsocket_domain ipv6", |c| {
            c.listeners[0].socket_domain == Some(SocketDomain::Ipv6)
        }),
        ("listener 1883\nbind_interface eth0", |c| {
            c.listeners[0].bind_interface.as_deref() == Some("eth0")
        }),
        ("listener 1883\nprotocol mqtt", |c| {
            c.listeners[0].protocol == Protocol::Mqtt
        }),
        ("listener 1883\nlistener_allow_anonymous true", |c| {
            c.listeners[0].security.allow_anonymous == Some(true)
        }),
        ("listener 1883\nlistener_auto_id_prefix l1-", |c| {
            c.listeners[0].security.auto_id_prefix.as_deref() == Some("l1-")
        }),
    ];
    for (text, check) in cases {
        let config = ok(text);
        assert!(check(&config), "{text}: {config:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// Bad lines: the exact message for each class of mistake
// ---------------------------------------------------------------------------------------

#[test]
fn bad_lines() {
    let cases: &[(&str, &str)] = &[
        // Names.
        ("foo bar", "test.conf:1: unknown option 'foo'"),
        (
            "Listener 1883",
            "test.conf:1: unknown option 'Listener' (option names are case sensitive: did you mean 'listener'?)",
        ),
        (
            "max_connections_per_ip 10",
            "test.conf:1: unknown option 'max_connections_per_ip' (option names are case sensitive: did you mean 'max_connections_per_IP'?)",
        ),
        // Missing and extra values.
        ("max_keepalive", "test.conf:1: max_keepalive: missing value"),
        (
            "max_keepalive 10 20",
            "test.conf:1: max_keepalive: unexpected extra value '20'",
        ),
        ("password_file", "test.conf:1: password_file: missing value"),
        ("pid_file", "test.conf:1: pid_file: missing value"),
        ("user", "test.conf:1: user: missing value"),
        // Booleans.
        (
            "allow_anonymous maybe",
            "test.conf:1: allow_anonymous: invalid value 'maybe' (expected true or false)",
        ),
        (
            "set_tcp_nodelay yes",
            "test.conf:1: set_tcp_nodelay: invalid value 'yes' (expected true or false)",
        ),
        (
            "connection_messages True",
            "test.conf:1: connection_messages: invalid value 'True' (expected true or false)",
        ),
        // Integer ranges.
        (
            "max_keepalive 70000",
            "test.conf:1: max_keepalive: value 70000 out of range 0..=65535",
        ),
        (
            "max_keepalive ten",
            "test.conf:1: max_keepalive: 'ten' is not an integer",
        ),
        (
            "max_packet_size 19",
            "test.conf:1: max_packet_size: value 19 out of range 20..=4294967295",
        ),
        ("max_qos 3", "test.conf:1: max_qos: value 3 out of range 0..=2"),
        (
            "max_inflight_messages 65536",
            "test.conf:1: max_inflight_messages: value 65536 out of range 0..=65535",
        ),
        (
            "message_size_limit 268435456",
            "test.conf:1: message_size_limit: value 268435456 out of range 0..=268435455",
        ),
        (
            "max_payload_size 268435456",
            "test.conf:1: max_payload_size: value 268435456 out of range 0..=268435455",
        ),
        (
            "max_connections_per_IP -1",
            "test.conf:1: max_connections_per_IP: value -1 out of range 0..=4294967295",
        ),
        (
            "sys_interval 65536",
            "test.conf:1: sys_interval: value 65536 out of range 0..=65535",
        ),
        (
            "sys_interval -1",
            "test.conf:1: sys_interval: value -1 out of range 0..=65535",
        ),
        (
            "log_facility 8",
            "test.conf:1: log_facility: value 8 out of range 0..=7",
        ),
        (
            "listener 1883\nmax_topic_alias 65536",
            "test.conf:2: max_topic_alias: value 65536 out of range 0..=65535",
        ),
        (
            "listener 1883\nmax_connections abc",
            "test.conf:2: max_connections: 'abc' is not an integer",
        ),
        (
            "websockets_headers_size 65536",
            "test.conf:1: websockets_headers_size: value 65536 out of range 0..=65535",
        ),
        // Sizes.
        (
            "memory_limit -1",
            "test.conf:1: memory_limit: value -1 must not be negative",
        ),
        (
            "memory_limit 1k",
            "test.conf:1: memory_limit: '1k' is not an integer",
        ),
        (
            "max_inflight_bytes 1.5",
            "test.conf:1: max_inflight_bytes: '1.5' is not an integer",
        ),
        // Durations.
        (
            "persistent_client_expiration 14",
            "test.conf:1: persistent_client_expiration: invalid duration '14' (expected a number followed by s, h, d, w, m or y)",
        ),
        (
            "persistent_client_expiration 0d",
            "test.conf:1: persistent_client_expiration: duration '0d' must be positive",
        ),
        // Enums.
        (
            "listener 1883\nsocket_domain ipv5",
            "test.conf:2: socket_domain: invalid value 'ipv5' (expected ipv4 or ipv6)",
        ),
        (
            "listener 1883\nprotocol foo",
            "test.conf:2: protocol: invalid value 'foo' (expected mqtt, websockets or http_api)",
        ),
        (
            "log_type loud",
            "test.conf:1: log_type: invalid value 'loud' (expected none, information, notice, warning, error, debug, subscribe, unsubscribe, internal, websockets or all)",
        ),
        (
            "log_dest carrier-pigeon",
            "test.conf:1: log_dest: invalid value 'carrier-pigeon' (expected none, stdout, stderr, syslog, topic, dlt, android or file)",
        ),
        (
            "log_dest file",
            "test.conf:1: log_dest: missing file path after 'file'",
        ),
        (
            "log_dest file /a\nlog_dest file /b",
            "test.conf:2: log_dest: only one 'log_dest file' is allowed",
        ),
        (
            "listener 1883\ntls_version tlsv1.0",
            "test.conf:2: tls_version: invalid value 'tlsv1.0' (expected tlsv1.3, tlsv1.2 or tlsv1.1)",
        ),
        (
            "listener 1883\ntls_keyform der",
            "test.conf:2: tls_keyform: invalid value 'der' (expected pem or engine)",
        ),
        (
            "listener 1883\ntls_engine_kpass_sha1 abc",
            "test.conf:2: tls_engine_kpass_sha1: invalid value 'abc' (expected a SHA-1 sum: 40 hexadecimal digits)",
        ),
        (
            "listener 1883\naccept_protocol_versions 4,6",
            "test.conf:2: accept_protocol_versions: invalid value '6' (expected 3, 4 or 5)",
        ),
        // Strings.
        (
            "auto_id_prefix a\nauto_id_prefix b",
            "test.conf:2: auto_id_prefix: duplicate value (already set on line 1)",
        ),
        (
            "password_file /a\npassword_file /b",
            "test.conf:2: password_file: duplicate value (already set on line 1)",
        ),
        (
            "listener 1\nclientid_prefixes a\nclientid_prefix b",
            "test.conf:3: clientid_prefix: duplicate value (already set on line 2)",
        ),
        (
            "listener 1883\nmount_point a/#",
            "test.conf:2: mount_point: invalid value 'a/#' (a mount point must not contain + or #)",
        ),
        (
            "listener 1883\nbind_interface this-is-far-too-long",
            "test.conf:2: bind_interface: invalid interface name 'this-is-far-too-long' (at most 15 bytes, no '/')",
        ),
        (
            "listener 1883\nmount_point a/\nmount_point b/",
            "test.conf:3: mount_point: duplicate value (already set on line 2)",
        ),
        (
            "listener 1883\ncertfile /a\ncertfile /b",
            "test.conf:3: certfile: duplicate value (already set on line 2)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&err(text), expected, "in:\n{text}");
    }
    // The limit on prefixes is in characters.
    assert_eq!(
        err(&format!("auto_id_prefix {}\n", "x".repeat(51))),
        "test.conf:1: auto_id_prefix: longer than 50 characters"
    );
    assert_eq!(
        ok(&format!("auto_id_prefix {}\n", "é".repeat(50))).auto_id_prefix,
        "é".repeat(50)
    );
    assert_eq!(
        err(&format!(
            "listener 1\nlistener_auto_id_prefix {}\n",
            "x".repeat(51)
        )),
        "test.conf:2: listener_auto_id_prefix: longer than 50 characters"
    );
}

/// Options in the wrong place, where Mosquitto refuses them too.
#[test]
fn scope_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "mount_point a/\nlistener 1883",
            "test.conf:1: mount_point: requires a 'listener' line before it",
        ),
        (
            "listener_allow_anonymous true",
            "test.conf:1: listener_allow_anonymous: requires a 'listener' line before it",
        ),
        (
            "listener_auto_id_prefix x-",
            "test.conf:1: listener_auto_id_prefix: requires a 'listener' line before it",
        ),
        (
            "accept_protocol_versions 5",
            "test.conf:1: accept_protocol_versions: requires a 'listener' line before it",
        ),
        (
            "disable_client_cert_date_checks true",
            "test.conf:1: disable_client_cert_date_checks: requires a 'listener' line before it",
        ),
        (
            "listener 1883\naddress 127.0.0.1",
            "test.conf:2: address: requires a 'connection' line (a bridge) before it",
        ),
        (
            "topic # out 0",
            "test.conf:1: topic: requires a 'connection' line (a bridge) before it",
        ),
        (
            "remote_username u",
            "test.conf:1: remote_username: requires a 'connection' line (a bridge) before it",
        ),
        (
            "listener 1883\nplugin_opt_config_file /x",
            "test.conf:2: plugin_opt_config_file: requires a 'plugin' line before it",
        ),
        (
            "auth_plugin_deny_special_chars false",
            "test.conf:1: auth_plugin_deny_special_chars: requires a 'plugin' line before it",
        ),
        (
            "listener 1883\nplugin_use dynsec",
            "test.conf:2: plugin_use: plugin 'dynsec' not previously loaded with plugin_load",
        ),
        // per_listener_settings must come before any security option...
        (
            "allow_anonymous true\nper_listener_settings true\nlistener 1883",
            "test.conf:2: per_listener_settings: must be set before any other security option ('allow_anonymous' is on line 1)",
        ),
        (
            "listener 1883\ncheck_retain_source true\nper_listener_settings true",
            "test.conf:3: per_listener_settings: must be set before any other security option ('check_retain_source' is on line 2)",
        ),
        // ...and then its options need a listener (Mosquitto 2.1; 2.0 loses some of them).
        (
            "per_listener_settings true\nallow_anonymous true\nlistener 1883",
            "test.conf:2: allow_anonymous: per_listener_settings is true, so this option must follow the 'listener' it applies to",
        ),
        (
            "per_listener_settings true\npassword_file /p\nlistener 1883",
            "test.conf:2: password_file: per_listener_settings is true, so this option must follow the 'listener' it applies to",
        ),
        // With per_listener_settings false a second block's file is a second global one.
        (
            "listener 1883\npassword_file /a\nlistener 1884\npassword_file /b",
            "test.conf:4: password_file: duplicate value (already set on line 2); with per_listener_settings false it applies to every listener",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&err(text), expected, "in:\n{text}");
    }
}

/// Global options inside a listener block are global, as in Mosquitto, without error.
#[test]
fn global_options_in_a_listener_block_are_global() {
    let config = ok("listener 1883\n\
                     max_keepalive 30\n\
                     set_tcp_nodelay true\n\
                     max_payload_size 1000\n\
                     listener 1884\n\
                     max_connections_per_IP 10\n");
    assert_eq!(config.max_keepalive, 30);
    assert!(config.set_tcp_nodelay);
    assert_eq!(config.max_payload_size, Some(1000));
    assert_eq!(config.max_connections_per_ip, Some(10));
    assert!(config.warnings.is_empty());
}

#[test]
fn max_connections_zero_is_unlimited_with_a_warning() {
    let config = ok("listener 1883\nmax_connections 0\n");
    assert_eq!(config.listeners[0].max_connections, None);
    assert_eq!(
        config.warnings,
        ["test.conf:2: max_connections: 0 means unlimited, as in Mosquitto (use -1 to say so)"]
    );
}

#[test]
fn negative_limits_read_as_unlimited_with_a_warning() {
    let config = ok("max_queued_messages -1\n\
                     max_inflight_messages -5\n\
                     max_queued_bytes -1\n\
                     max_inflight_bytes -2\n\
                     autosave_interval -3\n");
    assert_eq!(config.max_queued_messages, 0);
    assert_eq!(config.max_inflight_messages, 0);
    assert_eq!(config.max_queued_bytes, 0);
    assert_eq!(config.max_inflight_bytes, 0);
    assert_eq!(config.persistence.autosave_interval, 0);
    assert_eq!(
        config.warnings,
        [
            "test.conf:1: max_queued_messages: negative value -1 read as 0 (unlimited)",
            "test.conf:2: max_inflight_messages: negative value -5 read as 0 (unlimited)",
            "test.conf:3: max_queued_bytes: negative value -1 read as 0 (unlimited)",
            "test.conf:4: max_inflight_bytes: negative value -2 read as 0 (unlimited)",
            "test.conf:5: autosave_interval: negative value -3 read as 0 (unlimited)",
        ]
    );
}

#[test]
fn deprecated_and_removed_options_warn() {
    let config = ok("message_size_limit 1000\n\
                     retry_interval 20\n\
                     clientid_prefixes secure-\n\
                     allow_duplicate_messages true\n\
                     port 1883\n\
                     bind_address 0.0.0.0\n");
    assert_eq!(config.message_size_limit, 1000);
    assert_eq!(
        config.warnings,
        [
            "test.conf:1: the 'message_size_limit' option is deprecated; use 'max_packet_size' instead",
            "test.conf:2: the 'retry_interval' option is no longer available and is ignored",
            "test.conf:3: the 'clientid_prefixes' option is deprecated and will be removed in a future version",
            "test.conf:4: the 'allow_duplicate_messages' option is deprecated and will be removed in a future version; Midge sends one copy per client for overlapping subscriptions",
            "test.conf:5: the 'port' option is deprecated and will be removed in a future version; use 'listener' instead",
            "test.conf:6: the 'bind_address' option is deprecated and will be removed in a future version; use 'listener <port> <address>' instead",
        ]
    );
    let config = ok("clientid_prefix sensor_\n");
    assert_eq!(
        config.security.clientid_prefixes.as_deref(),
        Some("sensor_")
    );
    assert_eq!(
        config.warnings,
        ["test.conf:1: 'clientid_prefix' is read as 'clientid_prefixes' (Mosquitto knows only that spelling), which is deprecated"]
    );
}

#[test]
fn a_hash_inside_a_string_value_is_kept_with_a_warning() {
    let config = ok("password_file /etc/passwd #Windows machine\n");
    assert_eq!(
        config.security.password_file.as_deref(),
        Some("/etc/passwd #Windows machine")
    );
    assert_eq!(
        config.warnings,
        ["test.conf:1: password_file: the value '/etc/passwd #Windows machine' includes what looks like a comment; as in Mosquitto, a '#' after the value is part of it"]
    );
    // A '#' inside a word is not a comment marker either way, and is not warned about.
    assert!(ok("auto_id_prefix a#b\n").warnings.is_empty());
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

// ---------------------------------------------------------------------------------------
// per_listener_settings
// ---------------------------------------------------------------------------------------

const TWO_LISTENERS_FALSE: &str = "\
listener 1883 127.0.0.1
allow_anonymous true
listener 8883
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
";

/// `per_listener_settings false` (the default): security options are global wherever
/// they are written — the classic pitfall of an `allow_anonymous true` meant for one
/// listener, which a warning now points out.
#[test]
fn per_listener_settings_false_makes_security_options_global() {
    let config = ok(TWO_LISTENERS_FALSE);
    assert_eq!(config.security.allow_anonymous, Some(true));
    assert_eq!(
        config.security.password_file.as_deref(),
        Some("/etc/mosquitto/passwd")
    );
    for listener in &config.listeners {
        assert_eq!(listener.security, SecurityOptions::default());
        let resolved = config.security_for(listener);
        assert!(resolved.allow_anonymous, "port {}", listener.port);
        assert_eq!(
            resolved.password_file.as_deref(),
            Some("/etc/mosquitto/passwd")
        );
        assert_eq!(resolved.acl_file.as_deref(), Some("/etc/mosquitto/acl"));
        assert_eq!(resolved.auto_id_prefix, "auto-");
        assert!(resolved.allow_zero_length_clientid);
    }
    assert_eq!(
        config.warnings,
        [
            "test.conf:2: allow_anonymous applies to every listener, not only to the one it follows, because per_listener_settings is false",
            "test.conf:4: password_file applies to every listener, not only to the one it follows, because per_listener_settings is false",
            "test.conf:5: acl_file applies to every listener, not only to the one it follows, because per_listener_settings is false",
        ]
    );
    // With one listener there is nothing to be surprised about.
    assert!(ok("listener 1883\nallow_anonymous true\n")
        .warnings
        .is_empty());
}

#[test]
fn per_listener_settings_true_keeps_security_options_in_their_block() {
    let config = ok("per_listener_settings true\n\
                     listener 1883 127.0.0.1\n\
                     allow_anonymous true\n\
                     auto_id_prefix local-\n\
                     listener 8883\n\
                     password_file /etc/mosquitto/passwd\n\
                     acl_file /etc/mosquitto/acl\n\
                     allow_zero_length_clientid false\n\
                     clientid_prefixes dev-\n");
    assert!(config.per_listener_settings);
    assert!(config.warnings.len() == 1, "{:?}", config.warnings);
    let local = config.security_for(&config.listeners[0]);
    let public = config.security_for(&config.listeners[1]);
    assert!(local.allow_anonymous);
    assert_eq!(local.password_file, None);
    assert_eq!(local.acl_file, None);
    assert_eq!(local.auto_id_prefix, "local-");
    assert!(local.allow_zero_length_clientid);
    assert!(!public.allow_anonymous, "unset means false with listeners");
    assert_eq!(
        public.password_file.as_deref(),
        Some("/etc/mosquitto/passwd")
    );
    assert_eq!(public.acl_file.as_deref(), Some("/etc/mosquitto/acl"));
    assert_eq!(public.auto_id_prefix, "auto-");
    assert!(!public.allow_zero_length_clientid);
    // clientid_prefixes is global whatever per_listener_settings says.
    assert_eq!(local.clientid_prefixes.as_deref(), Some("dev-"));
    assert_eq!(public.clientid_prefixes.as_deref(), Some("dev-"));
    // The same file name in two blocks is fine: they are different scopes.
    ok("per_listener_settings true\n\
        listener 1\npassword_file /p\nlistener 2\npassword_file /p\n");
}

/// The 1.x style with per-listener settings: after `port`, security options belong to the
/// default listener (as in Mosquitto 2.0 and 2.1).
#[test]
fn per_listener_settings_true_with_the_default_listener() {
    let config = ok("per_listener_settings true\n\
                     port 1883\n\
                     password_file /etc/mosquitto/passwd\n\
                     listener 9001\n\
                     allow_anonymous true\n");
    let [ws, default] = config.listeners.as_slice() else {
        panic!("two listeners expected: {:?}", config.listeners);
    };
    assert_eq!(default.port, 1883);
    let default = config.security_for(default);
    assert_eq!(
        default.password_file.as_deref(),
        Some("/etc/mosquitto/passwd")
    );
    assert!(!default.allow_anonymous);
    let ws = config.security_for(ws);
    assert_eq!(ws.password_file, None);
    assert!(ws.allow_anonymous);
}

#[test]
fn per_listener_settings_stays_true_once_set() {
    let config = ok("per_listener_settings true\nper_listener_settings false\n");
    assert!(config.per_listener_settings);
    assert_eq!(
        config.warnings,
        ["test.conf:2: per_listener_settings: already true; a later false is ignored (as in Mosquitto 2.1)"]
    );
    // false then true is fine while no security option came first.
    assert!(ok("per_listener_settings false\nper_listener_settings true\n").per_listener_settings);
}

/// Mosquitto 2.1's per-listener overrides, with either value of `per_listener_settings`,
/// as in its test 01-connect-allow-anonymous (listener value wins, then the global one).
#[test]
fn listener_allow_anonymous_overrides_the_global_value() {
    let table = [
        // global, listener 1, listener 2 → allowed 1, allowed 2
        (None, Some(false), Some(false), false, false),
        (None, Some(true), Some(false), true, false),
        (None, None, None, false, false),
        (Some(false), Some(true), None, true, false),
        (Some(true), Some(false), None, false, true),
        (Some(true), None, Some(true), true, true),
    ];
    for (global, l1, l2, allowed1, allowed2) in table {
        let mut text = String::new();
        if let Some(g) = global {
            text.push_str(&format!("allow_anonymous {g}\n"));
        }
        text.push_str("listener 1883\n");
        if let Some(v) = l1 {
            text.push_str(&format!("listener_allow_anonymous {v}\n"));
        }
        text.push_str("listener 1884\n");
        if let Some(v) = l2 {
            text.push_str(&format!("listener_allow_anonymous {v}\n"));
        }
        let config = ok(&text);
        let got = (
            config.security_for(&config.listeners[0]).allow_anonymous,
            config.security_for(&config.listeners[1]).allow_anonymous,
        );
        assert_eq!(got, (allowed1, allowed2), "{text}");
    }
    // With per_listener_settings true the listener's value is all that counts.
    let config = ok("per_listener_settings true\n\
                     listener 1883\nlistener_allow_anonymous true\n\
                     listener 1884\n");
    assert!(config.security_for(&config.listeners[0]).allow_anonymous);
    assert!(!config.security_for(&config.listeners[1]).allow_anonymous);
}

#[test]
fn listener_auto_id_prefix_overrides_the_global_value() {
    let config = ok("auto_id_prefix global-\n\
                     listener 1883\nlistener_auto_id_prefix one-\n\
                     listener 1884\n");
    assert_eq!(
        config.security_for(&config.listeners[0]).auto_id_prefix,
        "one-"
    );
    assert_eq!(
        config.security_for(&config.listeners[1]).auto_id_prefix,
        "global-"
    );
    assert_eq!(config.auto_id_prefix, "global-");
    assert_eq!(
        err("listener 1883\nlistener_auto_id_prefix a-\nlistener_auto_id_prefix b-\n"),
        "test.conf:3: listener_auto_id_prefix: duplicate value (already set on line 2)"
    );
}

#[test]
fn local_only_mode_allows_anonymous_unless_told_otherwise() {
    let config = ok("");
    let own = ListenerConfig {
        port: 1883,
        bind_address: Some("127.0.0.1".into()),
        ..config.listener_defaults.clone()
    };
    assert!(config.security_for(&own).allow_anonymous);
    // Mosquitto 2.0.11 turns this back into true in local-only mode; Midge keeps it.
    let config = ok("allow_anonymous false\n");
    assert!(!config.security_for(&own).allow_anonymous);
}

#[test]
fn plugins_are_kept_per_scope() {
    let config = kept(
        "per_listener_settings true\n\
                       global_plugin /usr/lib/global/mosquitto_dynamic_security.so\n\
                       plugin_opt_a 1\n\
                       plugin_opt_config_file /g.json\n\
                       plugin_load dynsec /usr/lib/mosquitto_dynamic_security.so\n\
                       plugin_opt_config_file /var/lib/dynsec.json\n\
                       listener 1883\n\
                       plugin /usr/lib/one/libmosquitto_dynamic_security.so\n\
                       auth_opt_key some value\n\
                       auth_opt_config_file /one.json\n\
                       auth_plugin_deny_special_chars false\n\
                       listener 1884\n\
                       plugin_use dynsec\n",
    );
    assert_eq!(config.security.plugins.len(), 1);
    assert_eq!(
        config.security.plugins[0].options,
        [
            ("a".to_owned(), "1".to_owned()),
            ("config_file".to_owned(), "/g.json".to_owned())
        ]
    );
    assert_eq!(config.loaded_plugins[0].name.as_deref(), Some("dynsec"));
    assert_eq!(
        config.loaded_plugins[0].options,
        [("config_file".to_owned(), "/var/lib/dynsec.json".to_owned())]
    );
    let one = config.security_for(&config.listeners[0]).plugins;
    assert_eq!(
        one.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        [
            "/usr/lib/global/mosquitto_dynamic_security.so",
            "/usr/lib/one/libmosquitto_dynamic_security.so"
        ]
    );
    assert_eq!(
        one[1].options,
        [
            ("key".to_owned(), "some value".to_owned()),
            ("config_file".to_owned(), "/one.json".to_owned())
        ]
    );
    assert_eq!(one[1].dynamic_security_file(), Ok("/one.json"));
    assert!(!one[1].deny_special_chars);
    assert!(one[0].deny_special_chars);
    let two = config.security_for(&config.listeners[1]).plugins;
    assert_eq!(
        two.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        [
            "/usr/lib/global/mosquitto_dynamic_security.so",
            "/usr/lib/mosquitto_dynamic_security.so"
        ]
    );
}

#[test]
fn only_the_dynamic_security_plugin_is_accepted_and_it_needs_its_file() {
    let other = "plugin '/usr/lib/p.so': only Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is supported, and it is built in; Midge loads no other plugins";
    assert_eq!(err("plugin /usr/lib/p.so"), format!("test.conf:1: {other}"));
    assert_eq!(
        err("auth_plugin /usr/lib/p.so"),
        format!("test.conf:1: {other}")
    );
    assert_eq!(
        err("global_plugin /usr/lib/p.so"),
        format!("test.conf:1: {other}")
    );
    assert_eq!(
        err("listener 1\nplugin_load p /usr/lib/p.so"),
        format!("test.conf:2: {other}")
    );
    assert_eq!(
        err("listener 1\nplugin /usr/lib/mosquitto_dynamic_security.so\n"),
        "test.conf:2: plugin '/usr/lib/mosquitto_dynamic_security.so': plugin_opt_config_file is required by the dynamic security plugin"
    );
    for path in [
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        "C:\\Program Files\\mosquitto\\mosquitto_dynamic_security.dll",
        "mosquitto_dynamic_security.so",
    ] {
        let config = ok(&format!("plugin {path}\nplugin_opt_config_file /d.json\n"));
        assert_eq!(
            config.security.plugins[0].dynamic_security_file(),
            Ok("/d.json"),
            "{path}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Options not supported yet
// ---------------------------------------------------------------------------------------

#[test]
fn options_not_supported_yet_are_refused_after_their_value_is_checked() {
    // A valid value: refused by name.
    let cases: &[(&str, &str)] = &[
        (
            "listener 1\naccept_protocol_versions 4, 5",
            "accept_protocol_versions",
        ),
        (
            "listener 1\nenable_proxy_protocol 2",
            "enable_proxy_protocol",
        ),
        (
            "listener 1\nproxy_protocol_v2_require_tls true",
            "proxy_protocol_v2_require_tls",
        ),
    ];
    for (text, name) in cases {
        let line = text.lines().position(|l| l.starts_with(name)).unwrap_or(0) + 1;
        assert_eq!(
            err(text),
            format!("test.conf:{line}: option '{name}' is not supported yet"),
            "in:\n{text}"
        );
    }
    // Options supported with some values only.
    let cases: &[(&str, &str)] = &[
        (
            "enable_control_api true",
            "test.conf:1: option 'enable_control_api true' is not supported yet",
        ),
        (
            "global_max_clients 100",
            "test.conf:1: option 'global_max_clients 100' is not supported yet",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&err(text), expected, "in:\n{text}");
    }
}

#[test]
fn persistence_path_and_durability() {
    let c = ok("persistence true\n");
    assert!(c.persistence.enabled && !c.persistence.fsync);
    assert_eq!(c.persistence.path(), std::path::PathBuf::from("midge.db"));
    let c = ok(
        "retained_persistence true\npersistence_location /var/lib/midge/\n\
                persistence_file broker.db\npersistence_fsync true\n",
    );
    assert!(c.persistence.enabled && c.persistence.fsync);
    assert_eq!(
        c.persistence.path(),
        std::path::PathBuf::from("/var/lib/midge/broker.db")
    );
}

#[test]
fn psk_hint_without_a_psk_file_is_a_warning() {
    let config = ok("listener 8883\npsk_hint edge\n");
    assert_eq!(
        config.warnings,
        ["test.conf:1: psk_hint is set but no psk_file applies to this listener: every TLS-PSK handshake on it will fail"]
    );
    assert!(ok("psk_file /etc/psk\nlistener 8883\npsk_hint edge\n")
        .warnings
        .is_empty());
    let per_listener = "per_listener_settings true\nlistener 8883\npsk_hint a\npsk_file /p\n\
                        listener 8884\npsk_hint b\n";
    assert_eq!(
        ok(per_listener).warnings,
        ["test.conf:5: psk_hint is set but no psk_file applies to this listener: every TLS-PSK handshake on it will fail"]
    );
}

#[test]
fn openssl_engines_are_refused_with_the_reason() {
    let reason = "OpenSSL engines are not supported (the ENGINE interface is deprecated in \
                  OpenSSL 3); use a PEM key file with keyfile and tls_keyform pem";
    assert_eq!(
        err("listener 8883\ntls_engine tpm\n"),
        format!("test.conf:2: tls_engine: {reason}")
    );
    assert_eq!(
        err("listener 8883\ntls_keyform engine\n"),
        format!("test.conf:2: tls_keyform engine: {reason}")
    );
    // Only meaningful with an engine: kept, with a warning, so the configuration starts.
    let config =
        ok("listener 8883\ntls_engine_kpass_sha1 0123456789ABCDEF0123456789abcdef01234567\n");
    assert_eq!(
        config.listeners[0].tls.tls_engine_kpass_sha1.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(
        config.warnings,
        ["test.conf:2: tls_engine_kpass_sha1 is ignored: it only applies to keys held by an OpenSSL engine"]
    );
}

#[test]
fn a_bad_value_wins_over_not_supported_yet() {
    // The bad value of the option itself.
    assert_eq!(
        err("listener 8883\ntls_version sslv3\n"),
        "test.conf:2: tls_version: invalid value 'sslv3' (expected tlsv1.3, tlsv1.2 or tlsv1.1)"
    );
    assert_eq!(
        err("listener 8883\nrequire_certificate yes\n"),
        "test.conf:2: require_certificate: invalid value 'yes' (expected true or false)"
    );
    // A mistake later in the file: the whole file is checked first.
    assert_eq!(
        err("listener 8883\ncafile /ca.pem\nmax_keepalive -1\n"),
        "test.conf:3: max_keepalive: value -1 out of range 0..=65535"
    );
    // The first of several unsupported options is named.
    assert_eq!(
        err("listener 8883\nproxy_protocol_v2_require_tls true\npersistence true\n"),
        "test.conf:2: option 'proxy_protocol_v2_require_tls' is not supported yet"
    );
    // Checks made at the end come before "not supported yet" too.
    assert_eq!(
        err("listener 8883\ncertfile /c.pem\n"),
        "test.conf:2: certfile: keyfile is missing (both are needed for TLS)"
    );
    assert_eq!(
        err("listener 8883\nkeyfile /k.pem\n"),
        "test.conf:2: keyfile: certfile is missing (both are needed for TLS)"
    );
    assert_eq!(
        err("listener 8883\npsk_hint h\ncafile /ca\n"),
        "test.conf:3: cafile: cannot use both certificate and PSK encryption on one listener (psk_hint is set)"
    );
    assert_eq!(
        err("connection b\naddress 10.0.0.1\n"),
        "test.conf:1: connection: bridge 'b' has no topic"
    );
    assert_eq!(
        err("connection b\ntopic #\n"),
        "test.conf:1: connection: bridge 'b' has no address"
    );
}

#[test]
fn tls_values_are_kept_for_issue_5() {
    let config = kept(
        "listener 8883\n\
                       cafile /etc/ca dir/ca.pem\n\
                       certfile /etc/server.crt\n\
                       keyfile /etc/server.key\n\
                       require_certificate true\n\
                       use_identity_as_username true\n\
                       tls_version tlsv1.3\n\
                       ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n\
                       crlfile /etc/crl.pem\n\
                       listener 8884\n\
                       psk_hint edge\n\
                       tls_keyform pem\n",
    );
    let tls = &config.listeners[0].tls;
    assert_eq!(tls.cafile.as_deref(), Some("/etc/ca dir/ca.pem"));
    assert_eq!(tls.certfile.as_deref(), Some("/etc/server.crt"));
    assert_eq!(tls.keyfile.as_deref(), Some("/etc/server.key"));
    assert!(tls.require_certificate);
    assert!(tls.use_identity_as_username);
    assert_eq!(tls.tls_version, Some(TlsVersion::Tls1_3));
    assert_eq!(tls.ciphers_tls13.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
    assert_eq!(tls.crlfile.as_deref(), Some("/etc/crl.pem"));
    let psk = &config.listeners[1].tls;
    assert_eq!(psk.psk_hint.as_deref(), Some("edge"));
    assert_eq!(psk.tls_keyform, KeyForm::Pem);
    assert_eq!(psk.certfile, None);
    // The 1.x style: TLS options before any listener belong to the default listener.
    let config = kept("port 8883\ncafile /ca\ncertfile /c\nkeyfile /k\n");
    assert_eq!(config.listeners[0].port, 8883);
    assert_eq!(config.listeners[0].tls.certfile.as_deref(), Some("/c"));
}

#[test]
fn bridge_values_are_kept_for_issue_8() {
    let config = kept(
        "connection east\n\
                       address broker.example.com:8883 [::1]:1884 backup\n\
                       topic sensors/# out 1 local/ remote/\n\
                       topic \"\" in 2 a/b c/d\n\
                       topic cmd/+ BOTH\n\
                       remote_username bridge user\n\
                       remote_password secret\n\
                       clientid east-1\n\
                       cleansession true\n\
                       keepalive_interval 2\n\
                       start_type lazy\n\
                       threshold 0\n\
                       restart_timeout 10 60\n\
                       notification_topic $SYS/east\n\
                       bridge_protocol_version mqttv50\n\
                       bridge_max_packet_size -5\n\
                       bridge_cafile /ca.pem\n\
                       bridge_tls_version tlsv1.3\n\
                       bridge_tcp_keepalive 30 10 3\n\
                       connection west\n\
                       addresses 10.0.0.2\n\
                       topic # both\n\
                       bridge_identity west\n\
                       bridge_psk 00ff\n\
                       restart_timeout 20\n",
    );
    let east = &config.bridges[0];
    assert_eq!(east.name, "east");
    assert_eq!(
        east.addresses,
        [
            BridgeAddress {
                host: "broker.example.com".into(),
                port: 8883
            },
            BridgeAddress {
                host: "[::1]".into(),
                port: 1884
            },
            BridgeAddress {
                host: "backup".into(),
                port: 1883
            },
        ]
    );
    assert_eq!(
        east.topics,
        [
            BridgeTopic {
                pattern: "sensors/#".into(),
                direction: Direction::Out,
                qos: 1,
                local_prefix: Some("local/".into()),
                remote_prefix: Some("remote/".into()),
            },
            BridgeTopic {
                pattern: String::new(),
                direction: Direction::In,
                qos: 2,
                local_prefix: Some("a/b".into()),
                remote_prefix: Some("c/d".into()),
            },
            BridgeTopic {
                pattern: "cmd/+".into(),
                direction: Direction::Both,
                qos: 0,
                local_prefix: None,
                remote_prefix: None,
            },
        ]
    );
    assert_eq!(east.remote_username.as_deref(), Some("bridge user"));
    assert_eq!(east.remote_password.as_deref(), Some("secret"));
    assert_eq!(east.remote_clientid.as_deref(), Some("east-1"));
    assert!(east.cleansession);
    assert_eq!(east.keepalive_interval, 5, "raised to the minimum");
    assert_eq!(east.start_type, StartType::Lazy);
    assert_eq!(east.threshold, 1);
    assert_eq!(
        east.restart_timeout,
        RestartTimeout::Backoff { base: 10, cap: 60 }
    );
    assert_eq!(east.notification_topic.as_deref(), Some("$SYS/east"));
    assert_eq!(east.protocol_version, BridgeProtocol::Mqtt5);
    assert_eq!(east.max_packet_size, None);
    assert_eq!(east.tls.cafile.as_deref(), Some("/ca.pem"));
    assert_eq!(east.tls.tls_version, Some(TlsVersion::Tls1_3));
    assert_eq!(east.tcp_keepalive, Some((30, 10, 3)));
    let west = &config.bridges[1];
    assert_eq!(west.tls.identity.as_deref(), Some("west"));
    assert_eq!(west.tls.psk.as_deref(), Some("00ff"));
    assert_eq!(west.restart_timeout, RestartTimeout::Constant(20));
    assert_eq!(west.topics[0].direction, Direction::Both);
    assert!(config
        .warnings
        .iter()
        .any(|w| w == "test.conf:10: keepalive_interval: too low, using 5 seconds"));
}

#[test]
fn bridge_tls_options_of_issue_8_are_handled() {
    let config = ok("connection east\n\
                     address broker.example.com:8883\n\
                     topic a/# out\n\
                     bridge_tls_use_os_certs true\n\
                     bridge_ciphers_tls1.3 TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384\n\
                     bridge_require_ocsp true\n");
    let tls = &config.bridges[0].tls;
    assert!(tls.use_os_certs);
    assert!(tls.require_ocsp);
    assert_eq!(
        tls.ciphers_tls13.as_deref(),
        Some("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384")
    );
    let config = ok("connection east\naddress h\ntopic #\nbridge_require_ocsp false\n");
    assert!(!config.bridges[0].tls.require_ocsp);
    assert!(!config.bridges[0].tls.use_os_certs);
    assert_eq!(
        err("connection a\nbridge_tls_use_os_certs maybe"),
        "test.conf:2: bridge_tls_use_os_certs: invalid value 'maybe' (expected true or false)"
    );
}

#[test]
fn bridge_errors() {
    let cases: &[(&str, &str)] = &[
        ("connection", "test.conf:1: connection: missing value"),
        (
            "connection a\naddress x\ntopic #\nconnection a",
            "test.conf:4: connection: duplicate bridge name 'a' (already used on line 1)",
        ),
        (
            "connection a\naddress x\naddress y",
            "test.conf:3: address: bridge 'a' already has its addresses",
        ),
        (
            "connection a\naddress x:0",
            "test.conf:2: address: port of 'x:0': value 0 out of range 1..=65535",
        ),
        (
            "connection a\naddress :1883",
            "test.conf:2: address: missing host in ':1883'",
        ),
        (
            "connection a\ntopic # sideways",
            "test.conf:2: topic: invalid direction 'sideways' (expected out, in or both)",
        ),
        (
            "connection a\ntopic # both 3",
            "test.conf:2: topic: QoS: value 3 out of range 0..=2",
        ),
        (
            "connection a\ntopic \"\" in 0 local/",
            "test.conf:2: topic: an empty pattern (\"\") needs both a local and a remote prefix",
        ),
        (
            "connection a\ntopic a/#/b",
            "test.conf:2: topic: invalid topic pattern 'a/#/b'",
        ),
        (
            "connection a\ntopic a out 0 l/# r/",
            "test.conf:2: topic: invalid local prefix 'l/#' (no wildcards)",
        ),
        (
            "connection a\nstart_type manual",
            "test.conf:2: start_type: the 'manual' start type is not supported (as in Mosquitto)",
        ),
        (
            "connection a\nbridge_protocol_version mqttv4",
            "test.conf:2: bridge_protocol_version: invalid value 'mqttv4' (expected mqttv31, mqttv311 or mqttv50)",
        ),
        (
            "connection a\nrestart_timeout 30 10",
            "test.conf:2: restart_timeout: backoff cap 10 is lower than the base 30",
        ),
        (
            "connection a\nkeepalive_interval 70000",
            "test.conf:2: keepalive_interval: value 70000 out of range 5..=65535",
        ),
        (
            "connection a\nbridge_receive_maximum 0",
            "test.conf:2: bridge_receive_maximum: value 0 out of range 1..=65535",
        ),
        (
            "connection a\nbridge_tcp_keepalive 30 10",
            "test.conf:2: bridge_tcp_keepalive: missing count (expected idle interval count)",
        ),
        (
            "connection a\nbridge_psk 0xff",
            "test.conf:2: bridge_psk: the key must be hexadecimal, without 0x",
        ),
        (
            "connection a\nbridge_cafile /ca\nbridge_identity i",
            "test.conf:3: bridge_identity: cannot use both certificate and PSK encryption on one bridge",
        ),
        (
            "connection a\nbridge_psk 00\nbridge_certfile /c",
            "test.conf:3: bridge_certfile: cannot use both certificate and PSK encryption on one bridge",
        ),
        (
            "connection a\nremote_username u\nusername v",
            "test.conf:3: username: duplicate value (already set on line 2)",
        ),
        (
            "connection a\naddress x\ntopic #\nbridge_psk 00",
            "test.conf:1: connection: bridge 'a' has bridge_psk but no bridge_identity",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&err(text), expected, "in:\n{text}");
    }
}

/// Bridge options follow their `connection` even after a `listener` line, and listener
/// options still go to the last listener, as in Mosquitto.
#[test]
fn bridge_and_listener_blocks_are_independent() {
    let config = kept(
        "listener 1883\n\
                       connection a\n\
                       address x\n\
                       max_connections 5\n\
                       listener 1884\n\
                       topic t/#\n",
    );
    assert_eq!(config.listeners[0].max_connections, Some(5));
    assert_eq!(config.bridges[0].topics[0].pattern, "t/#");
}

// ---------------------------------------------------------------------------------------
// include_dir
// ---------------------------------------------------------------------------------------

/// A reader over an in-memory directory tree: `dirs` maps a directory to its files.
fn read_from<'a>(
    dirs: &'a [(&'a str, &'a [(&'a str, &'a str)])],
) -> impl FnMut(&str) -> Result<Vec<(String, String)>, String> + 'a {
    move |dir| {
        let (_, files) = dirs
            .iter()
            .find(|(name, _)| *name == dir)
            .ok_or_else(|| format!("cannot open directory {dir}: No such file or directory"))?;
        let mut names: Vec<&(&str, &str)> = files
            .iter()
            .filter(|(name, _)| is_include_file(name))
            .collect();
        names.sort_by(|a, b| include_order(a.0, b.0));
        Ok(names
            .into_iter()
            .map(|(name, text)| (format!("{dir}/{name}"), (*text).to_owned()))
            .collect())
    }
}

fn with_dirs(text: &str, dirs: &[(&str, &[(&str, &str)])]) -> Result<Config, String> {
    let mut reader = read_from(dirs);
    parse_with(text, "main.conf", &mut reader).map_err(|e| e.to_string())
}

#[test]
fn include_dir_needs_a_reader() {
    assert_eq!(
        err("include_dir /etc/mosquitto/conf.d\n"),
        "test.conf:1: include_dir needs a file system"
    );
    assert_eq!(
        err("include_dir\n"),
        "test.conf:1: include_dir: missing value"
    );
}

#[test]
fn include_dir_reads_files_in_mosquitto_order() {
    let dirs: &[(&str, &[(&str, &str)])] = &[(
        "/etc/mosquitto/conf.d",
        &[
            ("b.conf", "listener 1006\n"),
            ("A.conf", "listener 1003\n"),
            ("01.conf", "listener 1002\n"),
            ("a.conf", "listener 1004\n"),
            ("B.conf", "listener 1005\n"),
            ("00.conf", "listener 1001\n"),
            ("README", "not a configuration\n"),
            (".conf", "not read either\n"),
            ("x.conf.bak", "nor this\n"),
        ],
    )];
    let config = with_dirs(
        "listener 1000\ninclude_dir /etc/mosquitto/conf.d\nlistener 1007\n",
        dirs,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ports: Vec<u16> = config.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
    assert_eq!(config.listeners[3].file, "/etc/mosquitto/conf.d/A.conf");
    assert_eq!(config.listeners[3].line, 1);
    assert_eq!(config.listeners[7].file, "main.conf");
}

#[test]
fn include_dir_errors_name_the_included_file_and_line() {
    let dirs: &[(&str, &[(&str, &str)])] = &[(
        "conf.d",
        &[
            ("10-good.conf", "listener 1884\n"),
            ("20-bad.conf", "# comment\n\nmax_keepalive lots\n"),
        ],
    )];
    assert_eq!(
        with_dirs("listener 1883\ninclude_dir conf.d\n", dirs).err(),
        Some("conf.d/20-bad.conf:3: max_keepalive: 'lots' is not an integer".to_owned())
    );
    assert_eq!(
        with_dirs("include_dir missing.d\n", dirs).err(),
        Some(
            "main.conf:1: include_dir: cannot open directory missing.d: No such file or directory"
                .to_owned()
        )
    );
    // A duplicate listener across files names the included line.
    let dirs: &[(&str, &[(&str, &str)])] = &[("d", &[("x.conf", "\nlistener 1883\n")])];
    assert_eq!(
        with_dirs("listener 1883\ninclude_dir d\n", dirs).err(),
        Some(
            "d/x.conf:2: listener: duplicate listener for port 1883 (already defined on line 1)"
                .to_owned()
        )
    );
    // The main file in its own include_dir would be read twice.
    let mut reader = |_: &str| Ok(vec![("main.conf".to_owned(), String::new())]);
    assert_eq!(
        parse_with("include_dir .\n", "main.conf", &mut reader)
            .err()
            .map(|e| e.to_string()),
        Some("main.conf:1: include_dir: . contains the main configuration file main.conf".into())
    );
}

/// Each file starts outside any listener or bridge block, as in Mosquitto; settings are
/// shared; warnings name the included file.
#[test]
fn included_files_have_their_own_blocks() {
    let stray: &[(&str, &[(&str, &str)])] = &[("d", &[("3.conf", "mount_point stray/\n")])];
    assert_eq!(
        with_dirs("listener 1883\ninclude_dir d\n", stray).err(),
        Some("d/3.conf:1: mount_point: requires a 'listener' line before it".to_owned())
    );
    let dirs: &[(&str, &[(&str, &str)])] = &[(
        "d",
        &[
            (
                "1.conf",
                "listener 1884\nallow_anonymous true\nmount_point one/\n",
            ),
            ("2.conf", "include_dir elsewhere\nmessage_size_limit 10\n"),
        ],
    )];
    let config = with_dirs("listener 1883\ninclude_dir d\nmax_connections 7\n", dirs)
        .unwrap_or_else(|e| panic!("{e}"));
    // After the include, the main file is back in its own listener block.
    assert_eq!(config.listeners[0].max_connections, Some(7));
    assert_eq!(config.listeners[1].max_connections, None);
    assert_eq!(config.listeners[1].mount_point.as_deref(), Some("one/"));
    assert_eq!(config.security.allow_anonymous, Some(true));
    assert_eq!(config.message_size_limit, 10);
    assert_eq!(
        config.warnings,
        [
            "d/2.conf:1: include_dir is ignored in an included file: only the main configuration file may include others (as in Mosquitto)",
            "d/2.conf:2: the 'message_size_limit' option is deprecated; use 'max_packet_size' instead",
            "d/1.conf:2: allow_anonymous applies to every listener, not only to the one it follows, because per_listener_settings is false",
        ]
    );
}

#[test]
fn include_file_names_and_order() {
    assert!(is_include_file("a.conf"));
    assert!(is_include_file("00-default.conf"));
    assert!(!is_include_file(".conf"));
    assert!(!is_include_file("a.conf.dpkg-old"));
    assert!(!is_include_file("a.CONF"));
    let mut names = vec![
        "b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf", "ab.conf", "Ab.conf",
        "a_.conf",
    ];
    names.sort_by(|a, b| include_order(a, b));
    assert_eq!(
        names,
        // Character by character, as Mosquitto's scmp_p: "Ab" sorts before "a." because
        // 'A' < 'a' decides at the first character.
        [
            "00.conf", "01.conf", "A.conf", "Ab.conf", "a.conf", "ab.conf", "a_.conf", "B.conf",
            "b.conf"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// OPTIONS.md stays in step with the table
// ---------------------------------------------------------------------------------------

#[test]
fn options_md_documents_every_option_with_its_status() {
    let doc = include_str!("OPTIONS.md");
    let mut documented = std::collections::BTreeMap::new();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(names), Some(status)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        for name in names.split(" / ") {
            let name = name.trim_matches('`');
            documented.insert(name.to_owned(), (*status).to_owned());
        }
    }
    let table = options::OPTIONS.iter().chain(options::PREFIXED.iter());
    for (name, _, support) in table {
        let key = if name.ends_with('_') {
            format!("{name}*")
        } else {
            (*name).to_owned()
        };
        let Some(status) = documented.remove(&key) else {
            panic!("OPTIONS.md does not document '{key}'");
        };
        let expected = match support {
            options::Support::Handled(_) => "handled".to_owned(),
            options::Support::Ignored(_) => "ignored".to_owned(),
            options::Support::NotYet(_, options::Later::Unscheduled) => {
                "not yet (unscheduled)".to_owned()
            }
        };
        assert!(
            status.starts_with(&expected),
            "OPTIONS.md says '{status}' for '{key}', the table says '{expected}'"
        );
    }
    assert!(
        documented.is_empty(),
        "OPTIONS.md documents options the table does not have: {documented:?}"
    );
}
