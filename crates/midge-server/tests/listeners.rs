//! Several listeners and their own settings: `per_listener_settings`, `max_connections`,
//! `mount_point`, `max_connections_per_IP` (the seeds' option), Unix socket listeners and
//! `socket_domain`.
//!
//! Expectations were checked against Debian's mosquitto 2.0.11 where it has the feature;
//! the comments say where Midge deliberately differs.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use midge_proto::{Connect, ProtocolVersion, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const VERSIONS: [ProtocolVersion; 2] = [V311, V5];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A broker from a whole configuration whose TCP `listener` lines use placeholder ports
/// (replaced by 0 after parsing). `addrs` are the bound TCP addresses in listener order.
struct Broker {
    addrs: Vec<SocketAddr>,
    handle: midge_server::ServerHandle,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn start_conf(text: &str) -> Broker {
    let mut config = midge_core::config::parse(text, "test.conf").expect("test config parses");
    for l in &mut config.listeners {
        if l.unix_socket.is_none() {
            l.port = 0;
        }
    }
    let server = midge_server::Server::bind(&config)
        .await
        .expect("broker binds");
    let addrs = server.local_addrs();
    let handle = server.handle();
    tokio::spawn(server.run());
    Broker { addrs, handle }
}

fn login(v: ProtocolVersion, id: &str, user: Option<&str>, password: Option<&str>) -> Connect {
    Connect {
        username: user.map(str::to_owned),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        ..connect_packet(v, id)
    }
}

/// The CONNACK code for `c` (the connection is returned open or closed).
async fn connack_code(addr: SocketAddr, c: Connect) -> (Raw, u8) {
    let mut raw = Raw::tcp(addr).await;
    raw.version = c.protocol;
    raw.send_packet(&midge_proto::Packet::Connect(Box::new(c)))
        .await;
    match raw.recv().await {
        midge_proto::Packet::ConnAck(a) => (raw, a.code),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn not_authorised(v: ProtocolVersion) -> u8 {
    if v.is_v5() {
        0x87
    } else {
        0x05
    }
}

/// The TCP connection is accepted by the kernel but closed by the broker before any CONNACK.
async fn closed_before_connack(addr: SocketAddr, id: &str) {
    let mut raw = Raw::tcp(addr).await;
    raw.send_packet(&midge_proto::Packet::Connect(Box::new(connect_packet(
        V311, id,
    ))))
    .await;
    raw.expect_close().await;
}

/// alice / s3cret (`$7$`, Debian's mosquitto_passwd 2.0.11).
const ALICE: &str = "alice:$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";

// ---------------------------------------------------------------------------------------
// per_listener_settings
// ---------------------------------------------------------------------------------------

// `per_listener_settings true`: listener 1 is open to anonymous clients and checks no
// password (any username connects there, as in Mosquitto 2.0.11); listener 2 needs alice's
// password and has an ACL. The same client gets different answers on each.
#[tokio::test]
async fn per_listener_settings_two_listeners_two_policies() {
    let dir = TempDir::new();
    let pw = dir.write("passwd", &format!("{ALICE}\n"));
    let acl = dir.write("acl", "user alice\ntopic readwrite secure/#\n");
    let b = start_conf(&format!(
        "per_listener_settings true\n\
         listener 1 127.0.0.1\nallow_anonymous true\n\
         listener 2 127.0.0.1\nallow_anonymous false\npassword_file {pw}\nacl_file {acl}\n"
    ))
    .await;
    let (open, secure) = (b.addrs[0], b.addrs[1]);
    for v in VERSIONS {
        let na = not_authorised(v);
        // Open listener: everyone.
        for (user, password) in [
            (None, None),
            (Some("alice"), Some("s3cret")),
            (Some("alice"), Some("wrong")),
            (Some("zed"), None),
        ] {
            let (raw, code) = connack_code(open, login(v, "o", user, password)).await;
            assert_eq!(code, 0, "open listener, {user:?}/{password:?}");
            raw.disconnect().await;
        }
        // Secure listener: alice with her password only.
        let (raw, code) = connack_code(secure, login(v, "s", Some("alice"), Some("s3cret"))).await;
        assert_eq!(code, 0);
        raw.disconnect().await;
        for (user, password) in [
            (None, None),
            (Some("alice"), Some("wrong")),
            (Some("zed"), None),
        ] {
            let (mut raw, code) = connack_code(secure, login(v, "s", user, password)).await;
            assert_eq!(code, na, "secure listener, {user:?}/{password:?}");
            raw.expect_close().await;
        }
    }
    // The ACL applies on the secure listener only.
    let (mut a, _) =
        Raw::connect_with(secure, login(V5, "as", Some("alice"), Some("s3cret"))).await;
    assert_eq!(
        a.publish("other/x", b"1", QoS::AtLeastOnce, false).await,
        0x87
    );
    assert!(a.publish("secure/x", b"2", QoS::AtLeastOnce, false).await < 0x80);
    let mut o = Raw::connect(open, V5, "ao").await;
    assert!(o.publish("other/x", b"3", QoS::AtLeastOnce, false).await < 0x80);
}

// `per_listener_settings false` (the default): a `password_file` written inside a listener
// block still applies to every listener, as in Mosquitto.
#[tokio::test]
async fn security_options_are_global_without_per_listener_settings() {
    let dir = TempDir::new();
    let pw = dir.write("passwd", &format!("{ALICE}\n"));
    let b = start_conf(&format!(
        "listener 1 127.0.0.1\n\
         listener 2 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
    ))
    .await;
    for addr in b.addrs.clone() {
        for v in VERSIONS {
            let (mut raw, code) = connack_code(addr, login(v, "g", None, None)).await;
            assert_eq!(code, not_authorised(v), "anonymous on {addr}");
            raw.expect_close().await;
            let (raw, code) =
                connack_code(addr, login(v, "g", Some("alice"), Some("s3cret"))).await;
            assert_eq!(code, 0, "alice on {addr}");
            raw.disconnect().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// max_connections
// ---------------------------------------------------------------------------------------

// `max_connections 2`: two clients connected, the third connection is closed at once
// without a CONNACK; once one leaves, a new one is accepted. Only this listener is
// limited. (Mosquitto 2.0.11 lets max_connections + 1 clients in — an off-by-one; Midge
// admits exactly the number written.)
#[tokio::test]
async fn max_connections_per_listener() {
    let b = start_conf(
        "listener 1 127.0.0.1\nmax_connections 2\nallow_anonymous true\n\
         listener 2 127.0.0.1\nallow_anonymous true\n",
    )
    .await;
    let (limited, other) = (b.addrs[0], b.addrs[1]);
    let c1 = Raw::connect(limited, V311, "mc1").await;
    let mut c2 = Raw::connect(limited, V5, "mc2").await;
    closed_before_connack(limited, "mc3").await;
    // The other listener is not limited by it.
    let mut o: Vec<Raw> = Vec::new();
    for i in 0..3 {
        o.push(Raw::connect(other, V311, &format!("other{i}")).await);
    }
    c2.ping().await;
    c1.disconnect().await;
    settle().await;
    let c3 = Raw::connect(limited, V311, "mc3").await;
    closed_before_connack(limited, "mc4").await;
    c3.disconnect().await;
}

// ---------------------------------------------------------------------------------------
// mount_point
// ---------------------------------------------------------------------------------------

// `mount_point mp/`: what a client of that listener publishes on `t/1` is seen as
// `mp/t/1` by clients of a normal listener; messages published on `mp/...` reach it without
// the prefix; topics outside `mp/` never reach it; retained messages too. (Mosquitto's
// documentation says the prefix is removed on delivery; Debian's 2.0.11 delivers
// `mp/t/2` with the prefix — a bug Midge does not copy.)
#[tokio::test]
async fn mount_point_isolates_and_strips_the_prefix() {
    let b = start_conf(
        "listener 1 127.0.0.1\nallow_anonymous true\n\
         listener 2 127.0.0.1\nmount_point mp/\nallow_anonymous true\n",
    )
    .await;
    let (normal, mounted) = (b.addrs[0], b.addrs[1]);
    for v in VERSIONS {
        let mut n = Raw::connect(normal, v, "normal").await;
        n.subscribe("#", QoS::AtLeastOnce).await;
        let mut m = Raw::connect(mounted, v, "mounted").await;
        m.subscribe("#", QoS::AtLeastOnce).await;

        m.publish("t/1", b"from mp", QoS::AtLeastOnce, false).await;
        let p = n.recv_publish_ack().await;
        assert_eq!((&*p.topic, &p.payload[..]), ("mp/t/1", &b"from mp"[..]));
        let p = m.recv_publish_ack().await;
        assert_eq!(&*p.topic, "t/1", "own message, prefix removed");

        n.publish("mp/t/2", b"to mp", QoS::AtLeastOnce, false).await;
        let p = m.recv_publish_ack().await;
        assert_eq!((&*p.topic, &p.payload[..]), ("t/2", &b"to mp"[..]));
        n.recv_publish_ack().await;

        n.publish("other", b"not for mp", QoS::AtLeastOnce, false)
            .await;
        n.recv_publish_ack().await;
        m.expect_silence(QUIET).await;

        n.publish("mp/r", b"retained", QoS::AtLeastOnce, true).await;
        n.recv_publish_ack().await;
        m.recv_publish_ack().await;
        let mut m2 = Raw::connect(mounted, v, "mounted2").await;
        m2.subscribe("r", QoS::AtLeastOnce).await;
        let p = m2.recv_publish_ack().await;
        assert_eq!(
            (&*p.topic, &p.payload[..], p.retain),
            ("r", &b"retained"[..], true)
        );
        // Clear the retained message for the next round.
        n.publish("mp/r", b"", QoS::AtLeastOnce, true).await;
        for r in [n, m, m2] {
            r.disconnect().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// max_connections_per_IP
// ---------------------------------------------------------------------------------------

// `max_connections_per_IP 3` (written as in the seeds; not a Mosquitto option): three new
// connections from 127.0.0.1 within a minute are served, the fourth is closed before any
// CONNACK — and closing the earlier ones does not free a place (it is a rate, not a count
// of open connections). The limit covers every listener.
#[tokio::test]
async fn max_connections_per_ip_rate() {
    let b = start_conf(
        "max_connections_per_IP 3\n\
         listener 1 127.0.0.1\nallow_anonymous true\n\
         listener 2 127.0.0.1\nallow_anonymous true\n",
    )
    .await;
    let (first, second) = (b.addrs[0], b.addrs[1]);
    let c1 = Raw::connect(first, V311, "ip1").await;
    let c2 = Raw::connect(first, V5, "ip2").await;
    let c3 = Raw::connect(second, V311, "ip3").await;
    closed_before_connack(first, "ip4").await;
    closed_before_connack(second, "ip5").await;
    for c in [c1, c2, c3] {
        c.disconnect().await;
    }
    settle().await;
    closed_before_connack(first, "ip6").await;
}

// Without the option there is no per-address limit.
#[tokio::test]
async fn no_per_ip_limit_by_default() {
    let b = start_default().await;
    let mut open = Vec::new();
    for i in 0..30 {
        open.push(Raw::connect(b.addr, V311, &format!("many{i}")).await);
    }
}

// ---------------------------------------------------------------------------------------
// Unix sockets and socket_domain
// ---------------------------------------------------------------------------------------

async fn read_packet(stream: &mut tokio::net::UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        stream.read_exact(&mut byte).await.expect("first byte");
        out.push(byte[0]);
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            stream.read_exact(&mut byte).await.expect("length byte");
            out.push(byte[0]);
            len |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.expect("body");
        out.extend(body);
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a packet on the Unix socket in time");
    out
}

// `listener 0 /path`: a Unix socket listener. A client on it connects, subscribes and
// receives what a TCP client publishes, and the other way round (raw bytes).
#[tokio::test]
async fn unix_socket_listener() {
    let dir = TempDir::new();
    let sock = dir.path("mqtt.sock");
    let b = start_conf(&format!(
        "listener 0 {sock}\nallow_anonymous true\nlistener 1 127.0.0.1\nallow_anonymous true\n"
    ))
    .await;
    assert_eq!(b.addrs.len(), 1, "only the TCP listener has an address");
    let mut u = tokio::time::timeout(WAIT, tokio::net::UnixStream::connect(&sock))
        .await
        .expect("connect in time")
        .expect("connect to the Unix socket");
    u.write_all(&raw_connect("MQTT", 4, 0x02, 60, None, "unix1", &[]))
        .await
        .unwrap();
    assert_eq!(to_hex(&read_packet(&mut u).await), "20 02 00 00");
    // SUBSCRIBE id 1 to `u/#` QoS 0.
    let mut body = vec![0x00, 0x01];
    body.extend(str16("u/#"));
    body.push(0);
    u.write_all(&frame(0x82, &body)).await.unwrap();
    assert_eq!(to_hex(&read_packet(&mut u).await), "90 03 00 01 00");

    let mut t = Raw::connect(b.addrs[0], V311, "tcp1").await;
    t.subscribe("t/#", QoS::AtMostOnce).await;
    t.publish("u/1", b"hi", QoS::AtMostOnce, false).await;
    assert_eq!(
        read_packet(&mut u).await,
        raw_publish(0x30, b"u/1", None, None, b"hi")
    );
    u.write_all(&raw_publish(0x30, b"t/1", None, None, b"from unix"))
        .await
        .unwrap();
    let p = t.recv_publish().await;
    assert_eq!((&*p.topic, &p.payload[..]), ("t/1", &b"from unix"[..]));
    drop(b);
}

fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

// `socket_domain ipv4` on a listener without an address binds IPv4 only; `ipv6` IPv6 only;
// without it both families are bound (when the host has IPv6).
#[tokio::test]
async fn socket_domain_limits_the_address_family() {
    let b = start_conf("listener 1\nsocket_domain ipv4\nallow_anonymous true\n").await;
    assert!(!b.addrs.is_empty());
    assert!(
        b.addrs.iter().all(SocketAddr::is_ipv4),
        "socket_domain ipv4 bound {:?}",
        b.addrs
    );
    let port = b.addrs[0].port();
    let c = Raw::connect(SocketAddr::from(([127, 0, 0, 1], port)), V311, "v4").await;
    c.disconnect().await;

    if ipv6_available() {
        let b6 = start_conf("listener 1\nsocket_domain ipv6\nallow_anonymous true\n").await;
        assert!(
            !b6.addrs.is_empty() && b6.addrs.iter().all(SocketAddr::is_ipv6),
            "socket_domain ipv6 bound {:?}",
            b6.addrs
        );
        let port = b6.addrs[0].port();
        let c = Raw::connect(
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            V311,
            "v6",
        )
        .await;
        c.disconnect().await;

        let both = start_conf("listener 1\nallow_anonymous true\n").await;
        assert!(
            both.addrs.iter().any(SocketAddr::is_ipv4),
            "{:?}",
            both.addrs
        );
        assert!(
            both.addrs.iter().any(SocketAddr::is_ipv6),
            "{:?}",
            both.addrs
        );
    }
}

// `socket_domain ipv4` with an IPv6 bind address leaves nothing to bind: the broker must
// not start silently without that listener.
#[tokio::test]
async fn socket_domain_conflicting_with_the_address_is_an_error() {
    let mut config = midge_core::config::parse(
        "listener 1 ::1\nsocket_domain ipv4\nallow_anonymous true\n",
        "test.conf",
    )
    .expect("parses");
    config.listeners[0].port = 0;
    match midge_server::Server::bind(&config).await {
        Err(_) => {}
        Ok(server) => {
            let addrs = server.local_addrs();
            server.handle().shutdown();
            panic!("broker started with socket_domain ipv4 on ::1, bound {addrs:?}");
        }
    }
}

// `bind_interface lo`: the listener is bound to the loopback device and serves clients on
// 127.0.0.1 (needs CAP_NET_RAW, which the test environment's root has).
#[tokio::test]
async fn bind_interface_loopback() {
    let mut config = midge_core::config::parse(
        "listener 1 127.0.0.1\nbind_interface lo\nallow_anonymous true\n",
        "test.conf",
    )
    .expect("parses");
    config.listeners[0].port = 0;
    let server = midge_server::Server::bind(&config)
        .await
        .expect("binds to lo");
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    tokio::spawn(server.run());
    let _b = Broker {
        addrs: vec![addr],
        handle,
    };
    let c = Raw::connect(addr, V5, "lo").await;
    c.disconnect().await;
}
