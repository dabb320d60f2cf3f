//! Bridge options (issue 8) checked on the wire, in-process: `keepalive_interval`,
//! `bridge_bind_address`, the TLS options (`bridge_capath`, `bridge_certfile` /
//! `bridge_keyfile`, `bridge_alpn`, `bridge_insecure`, `bridge_tls_version`,
//! `bridge_ciphers`), address failover and `round_robin`, and `bridge_protocol_version
//! mqttv31`.
//!
//! The remote is a fake broker ([`Peer`]) on a TCP listener, or behind a fake TLS server
//! (openssl) that records what the bridge offered and what was negotiated; for a client
//! certificate against `require_certificate true` the remote is a second in-process Midge.
//! Every wait is bounded; everything binds 127.0.0.1 (port 0), except the bridge's
//! `bridge_bind_address 127.0.0.2`, which Linux routes on the loopback as well.

mod common;

use common::certs::{ca, Ca};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::peer::Peer;
use common::{start, Raw, TempDir, QUIET};
use midge_proto::{Packet, ProtocolVersion, PubResp, QoS};
use openssl::ssl::{
    select_next_proto, AlpnError, Ssl, SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod,
    SslVersion,
};
use openssl::x509::X509;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_openssl::SslStream;

const V311: ProtocolVersion = ProtocolVersion::V311;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn fake_remote() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A loopback port with nothing listening on it (connections are refused).
async fn closed_port() -> u16 {
    let (listener, port) = fake_remote().await;
    drop(listener);
    port
}

/// A bridge `opt` to `addresses`, reconnecting after one second, then `rest`.
fn bridge_conf(addresses: &str, rest: &str) -> String {
    format!(
        "allow_anonymous true\nconnection opt\naddress {addresses}\n\
         remote_clientid opt-bridge\nrestart_timeout 1\n{rest}"
    )
}

/// An in-process broker with the bridge of [`bridge_conf`].
async fn bridged(addresses: &str, rest: &str) -> common::TestBroker {
    start(&bridge_conf(addresses, rest), |_| {}).await
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The next connection on `listener` that sends something (a CONNECT), within `within`.
/// Connections that close without a byte (a reachability probe) are skipped, and a probe
/// that stays open does not hold up the connections behind it.
async fn next_sender(listener: &TcpListener, within: Duration) -> Option<TcpStream> {
    let (tx, mut rx) = mpsc::channel(8);
    let deadline = Instant::now() + within;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut byte = [0u8; 1];
                    if let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.peek(&mut byte)).await {
                        if n > 0 {
                            let _ = tx.send(stream).await;
                        }
                    }
                });
            }
            Some(stream) = rx.recv() => return Some(stream),
            _ = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// The bridge's next MQTT connection on `listener` (within `within`), past the CONNACK.
async fn expect_bridge(listener: &TcpListener, within: Duration, which: &str) -> Peer {
    let stream = next_sender(listener, within)
        .await
        .unwrap_or_else(|| panic!("no bridge CONNECT at {which} within {within:?}"));
    let mut peer = Peer::new(stream);
    peer.handshake().await;
    peer
}

/// Nothing may send a CONNECT to `listener` for `within`.
async fn expect_no_bridge(listener: &TcpListener, within: Duration, which: &str) {
    if next_sender(listener, within).await.is_some() {
        panic!("unexpected bridge connection at {which}");
    }
}

/// Reads (and answers nothing) until the bridge closes the connection or `deadline`
/// passes; true when it closed. PINGREQs seen on the way are counted in `pings`.
async fn until_closed(peer: &mut Peer, deadline: Instant, pings: &mut usize) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.next_within(left).await {
            Ok((_, _, Packet::PingReq)) => *pings += 1,
            Ok(_) => {}
            Err(closed) => return closed,
        }
    }
}

/// A client subscribed to `topic` on the broker at `addr`.
async fn local_subscriber(addr: SocketAddr, id: &str, topic: &str) -> Raw {
    let mut sub = Raw::connect(addr, V311, id).await;
    sub.subscribe(topic, QoS::AtLeastOnce).await;
    sub
}

// ---------------------------------------------------------------------------------------
// keepalive_interval
// ---------------------------------------------------------------------------------------

/// `keepalive_interval 5`: the CONNECT says 5, a quiet connection gets a PINGREQ about
/// every 5 s, and a remote that answers them keeps the connection.
#[tokio::test]
async fn keepalive_interval_is_announced_and_pings_when_quiet() {
    let (listener, port) = fake_remote().await;
    let _broker = bridged(
        &local(port),
        "keepalive_interval 5\nnotifications false\ntopic k/# in 0\n",
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    let (_, connect) = peer.handshake().await;
    assert_eq!(connect.keep_alive, 5, "keep alive in the CONNECT");
    peer.settle(1).await;
    let quiet_since = Instant::now();
    for round in 1..=2 {
        match peer.next_within(Duration::from_secs(9)).await {
            Ok((_, _, Packet::PingReq)) => {}
            Ok((_, _, other)) => panic!("round {round}: expected PINGREQ, got {other:?}"),
            Err(closed) => panic!("round {round}: no PINGREQ within 9 s (closed: {closed})"),
        }
        if round == 1 {
            let after = quiet_since.elapsed();
            assert!(
                after >= Duration::from_secs(3),
                "PINGREQ after only {after:?} of a 5 s keep alive"
            );
        }
        peer.send(&Packet::PingResp).await;
    }
    // Answered pings keep the connection: it is still open and nothing reconnects.
    match peer.next_within(QUIET).await {
        Err(false) | Ok((_, _, Packet::PingReq)) => {}
        Err(true) => panic!("the bridge dropped a remote that answers its pings"),
        Ok((_, _, other)) => panic!("unexpected {other:?}"),
    }
    assert!(
        timeout(QUIET, listener.accept()).await.is_err(),
        "the bridge reconnected although the remote answered"
    );
}

/// A remote that answers nothing after CONNACK (no SUBACK, no PINGRESP): the bridge pings
/// it, gives up after 1.5 keep alive periods (docs/bridges.md) and connects again after
/// `restart_timeout`.
#[tokio::test]
async fn keepalive_interval_drops_a_silent_remote_and_reconnects() {
    let (listener, port) = fake_remote().await;
    let _broker = bridged(
        &local(port),
        "keepalive_interval 5\nnotifications false\ntopic k/# in 0\n",
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    let (_, connect) = peer.handshake().await;
    let connacked = Instant::now();
    assert_eq!(connect.keep_alive, 5);
    // The silent remote: reads everything, answers nothing, until the bridge closes.
    let mut pings = 0;
    let first_ping = loop {
        match peer.next_within(Duration::from_secs(9)).await {
            Ok((_, _, Packet::PingReq)) => break connacked.elapsed(),
            Ok((_, _, Packet::Subscribe(_))) => {}
            Ok((_, _, other)) => panic!("unexpected {other:?}"),
            Err(closed) => panic!("no PINGREQ within 9 s of silence (closed: {closed})"),
        }
    };
    pings += 1;
    // 1.5 × 5 s without a byte from the remote, with 1.5 s slack.
    let drop_by = connacked + Duration::from_millis(9000);
    let closed = until_closed(&mut peer, drop_by, &mut pings).await;
    assert!(
        closed,
        "keepalive_interval 5: the bridge still holds a silent remote {:?} after CONNACK \
         (1.5 periods = 7.5 s; first PINGREQ after {first_ping:?}, {pings} PINGREQ(s) sent)",
        connacked.elapsed()
    );
    let dropped = connacked.elapsed();
    // restart_timeout 1, with 2 s slack.
    let mut again = expect_bridge(&listener, Duration::from_secs(3), "the remote").await;
    let reconnected = connacked.elapsed();
    assert!(
        reconnected <= Duration::from_millis(10_500),
        "second CONNECT {reconnected:?} after the first CONNACK (dropped after {dropped:?})"
    );
    again.settle(1).await;
}

// ---------------------------------------------------------------------------------------
// bridge_bind_address
// ---------------------------------------------------------------------------------------

/// The bridge's connection comes from `bridge_bind_address`.
#[tokio::test]
async fn bind_address_is_the_source_address() {
    let (listener, port) = fake_remote().await;
    let _broker = bridged(
        &local(port),
        "bridge_bind_address 127.0.0.2\nnotifications false\ntopic b/# in 0\n",
    )
    .await;
    let (stream, from) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the bridge connects in time")
        .expect("accept");
    assert_eq!(
        from.ip(),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        "source address of the bridge's connection"
    );
    let mut peer = Peer::new(stream);
    peer.handshake().await;
    peer.settle(1).await;
}

/// A bind address that is not local or does not resolve: no connection is made (each
/// attempt fails before connecting), and the broker carries on serving its clients.
#[tokio::test]
async fn unusable_bind_address_fails_the_attempt_not_the_broker() {
    for bind in ["192.0.2.1", "no-such-host.invalid"] {
        let (listener, port) = fake_remote().await;
        let broker = bridged(
            &local(port),
            &format!("bridge_bind_address {bind}\nnotifications false\ntopic b/# both 0\n"),
        )
        .await;
        assert!(
            timeout(Duration::from_millis(3000), listener.accept())
                .await
                .is_err(),
            "bridge_bind_address {bind}: a connection arrived"
        );
        let mut sub = local_subscriber(broker.addr, "sub", "b/#").await;
        let mut publisher = Raw::connect(broker.addr, V311, "pub").await;
        publisher
            .publish("b/1", b"still here", QoS::AtLeastOnce, false)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(&p.payload[..], b"still here", "bridge_bind_address {bind}");
    }
}

// ---------------------------------------------------------------------------------------
// TLS: certificates
// ---------------------------------------------------------------------------------------

/// (certificate PEM, key PEM) for `cn`, valid for the DNS names and, with `loopback`, for
/// 127.0.0.1. The keys are ECDSA P-256.
fn leaf(ca: &Ca, cn: &str, dns: &[&str], loopback: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    if loopback {
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Certificates on disk: (certificate file, key file).
type Pair = (String, String);

struct Pki {
    _dir: TempDir,
    ca_file: String,
    /// For 127.0.0.1 and localhost, from the CA.
    server: Pair,
    /// From the CA, for another host name only.
    elsewhere: Pair,
    /// For 127.0.0.1, from another CA.
    stranger: Pair,
    /// The bridge's client certificate, from the CA.
    client: Pair,
    /// A directory with the CA under its subject hash name (`bridge_capath`).
    capath: String,
    /// The same with the other CA only.
    other_capath: String,
}

fn hashed_dir(dir: &TempDir, name: &str, ca_pem: &str) -> String {
    let path = dir.path(name);
    std::fs::create_dir_all(&path).unwrap();
    let hash = X509::from_pem(ca_pem.as_bytes())
        .unwrap()
        .subject_name_hash();
    std::fs::write(format!("{path}/{hash:08x}.0"), ca_pem).unwrap();
    path
}

fn pki() -> Pki {
    let dir = TempDir::new();
    let other = ca("Some Other CA");
    let ca = ca("Midge Bridge Test CA");
    let pair = |name: &str, (c, k): (String, String)| {
        (
            dir.write(&format!("{name}.crt"), &c),
            dir.write(&format!("{name}.key"), &k),
        )
    };
    let server = pair("server", leaf(&ca, "localhost", &["localhost"], true));
    let elsewhere = pair(
        "elsewhere",
        leaf(&ca, "elsewhere.example", &["elsewhere.example"], false),
    );
    let stranger = pair("stranger", leaf(&other, "localhost", &["localhost"], true));
    let client = pair("client", leaf(&ca, "opt-bridge", &[], false));
    let ca_pem = ca.cert.pem();
    Pki {
        ca_file: dir.write("ca.crt", &ca_pem),
        capath: hashed_dir(&dir, "capath", &ca_pem),
        other_capath: hashed_dir(&dir, "other-capath", &other.cert.pem()),
        server,
        elsewhere,
        stranger,
        client,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------
// TLS: a fake remote TLS server
// ---------------------------------------------------------------------------------------

/// A TLS server in front of a fake remote broker; records what the bridge offered.
struct TlsRemote {
    listener: TcpListener,
    port: u16,
    acceptor: SslAcceptor,
    /// ALPN protocol lists offered by clients (wire format), in order.
    alpn_offers: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// A TLS session the bridge completed, with what was negotiated.
struct TlsSession {
    peer: Peer,
    version: String,
    cipher: String,
    alpn: Option<Vec<u8>>,
}

/// A TLS server with certificate `cert`; `tweak` adjusts the context (versions, ciphers,
/// client certificates). It answers ALPN `mqtt` when offered.
async fn tls_remote(cert: &Pair, tweak: impl FnOnce(&mut SslAcceptorBuilder)) -> TlsRemote {
    let (listener, port) = fake_remote().await;
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_certificate_chain_file(&cert.0).unwrap();
    b.set_private_key_file(&cert.1, SslFiletype::PEM).unwrap();
    let alpn_offers = Arc::new(Mutex::new(Vec::new()));
    let offers = Arc::clone(&alpn_offers);
    b.set_alpn_select_callback(move |_ssl, client| {
        offers.lock().unwrap().push(client.to_vec());
        select_next_proto(b"\x04mqtt", client).ok_or(AlpnError::NOACK)
    });
    tweak(&mut b);
    TlsRemote {
        listener,
        port,
        acceptor: b.build(),
        alpn_offers,
    }
}

impl TlsRemote {
    /// The next TCP connection within `within` (None when none came), with the outcome of
    /// its TLS handshake.
    async fn next(&self, within: Duration) -> Option<Result<TlsSession, String>> {
        let (tcp, _) = timeout(within, self.listener.accept()).await.ok()?.ok()?;
        let ssl = Ssl::new(self.acceptor.context()).unwrap();
        let mut stream = SslStream::new(ssl, tcp).unwrap();
        let accepted = timeout(Duration::from_secs(5), Pin::new(&mut stream).accept()).await;
        Some(match accepted {
            Err(_) => Err("TLS handshake timed out".to_owned()),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Ok(Ok(())) => {
                let ssl = stream.ssl();
                Ok(TlsSession {
                    version: ssl.version_str().to_owned(),
                    cipher: ssl
                        .current_cipher()
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default(),
                    alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
                    peer: Peer::new(stream),
                })
            }
        })
    }

    /// The bridge's first connection must complete TLS and the MQTT CONNECT.
    async fn expect_session(&self, what: &str) -> TlsSession {
        match self.next(Duration::from_secs(5)).await {
            None => panic!("{what}: the bridge did not connect"),
            Some(Err(e)) => panic!("{what}: {e}"),
            Some(Ok(mut s)) => {
                s.peer.handshake().await;
                s
            }
        }
    }

    /// For `within`, every connection the bridge makes must fail its TLS handshake, and
    /// there must be at least one (the bridge tried).
    async fn expect_refused(&self, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        let mut failures = Vec::new();
        while let Some(attempt) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            match attempt {
                Ok(s) => panic!(
                    "{what}: TLS session established ({}, {})",
                    s.version, s.cipher
                ),
                Err(e) => failures.push(e),
            }
        }
        assert!(
            !failures.is_empty(),
            "{what}: the bridge never tried to connect"
        );
    }
}

/// A TLS bridge to the fake TLS remote on `port`, with the `tls` options.
fn tls_bridge(port: u16, tls: &str) -> String {
    bridge_conf(
        &local(port),
        &format!("notifications false\ntopic t/# both 0\n{tls}\n"),
    )
}

// ---------------------------------------------------------------------------------------
// TLS: the options
// ---------------------------------------------------------------------------------------

/// `bridge_capath`: the remote's CA is found under its subject hash name; a directory
/// with only another CA does not verify the remote.
#[tokio::test]
async fn capath_verifies_the_remote() {
    let pki = pki();
    let remote = tls_remote(&pki.server, |_| {}).await;
    let _broker = start(
        &tls_bridge(remote.port, &format!("bridge_capath {}", pki.capath)),
        |_| {},
    )
    .await;
    let mut s = remote.expect_session("bridge_capath").await;
    s.peer.settle(1).await;

    let remote = tls_remote(&pki.server, |_| {}).await;
    let _broker = start(
        &tls_bridge(remote.port, &format!("bridge_capath {}", pki.other_capath)),
        |_| {},
    )
    .await;
    remote
        .expect_refused(Duration::from_millis(2500), "bridge_capath with another CA")
        .await;
}

struct Remote {
    handle: midge_server::ShutdownHandle,
    /// The TLS listener (the bridge's) and a plain one (the test's clients).
    tls: SocketAddr,
    plain: SocketAddr,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A second Midge as the remote: a TLS listener that requires a client certificate from
/// the test CA, and a plain listener for the test's own clients.
async fn midge_remote(pki: &Pki) -> Remote {
    let text = format!(
        "allow_anonymous true\n\
         listener 1 127.0.0.1\ncertfile {}\nkeyfile {}\ncafile {}\nrequire_certificate true\n\
         listener 2 127.0.0.1\n",
        pki.server.0, pki.server.1, pki.ca_file
    );
    let mut config = midge_core::config::parse(&text, "remote.conf").expect("remote config");
    for l in &mut config.listeners {
        l.port = 0;
    }
    let server = midge_server::Server::bind(&config)
        .await
        .expect("remote binds");
    let addrs = server.local_addrs();
    let handle = server.shutdown_handle();
    tokio::spawn(server.run());
    Remote {
        handle,
        tls: addrs[0],
        plain: addrs[1],
    }
}

/// Publishes `payload` on `t/cert` locally every 300 ms until the remote subscriber has
/// it, for at most `within`; whether it arrived. Other messages are acknowledged and
/// skipped.
async fn crosses(
    publisher: &mut Raw,
    remote_sub: &mut Raw,
    payload: &[u8],
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        publisher
            .publish("t/cert", payload, QoS::AtLeastOnce, false)
            .await;
        while let Some(Packet::Publish(p)) = remote_sub.try_recv(Duration::from_millis(300)).await {
            remote_sub.ack(&p).await;
            if &p.payload[..] == payload {
                assert_eq!(&*p.topic, "t/cert");
                return true;
            }
        }
    }
    false
}

/// `bridge_certfile` / `bridge_keyfile` against a Midge listener with `require_certificate
/// true`: messages cross with the certificate, nothing crosses without it.
#[tokio::test]
async fn client_certificate_for_require_certificate() {
    let pki = pki();
    let remote = midge_remote(&pki).await;
    let mut remote_sub = local_subscriber(remote.plain, "remote-sub", "t/#").await;

    let with_cert = format!(
        "bridge_cafile {}\nbridge_certfile {}\nbridge_keyfile {}",
        pki.ca_file, pki.client.0, pki.client.1
    );
    let conf = bridge_conf(
        &remote.tls.to_string(),
        &format!("notifications false\ntopic t/# out 1\n{with_cert}\n"),
    );
    let broker = start(&conf, |_| {}).await;
    let mut publisher = Raw::connect(broker.addr, V311, "pub").await;
    assert!(
        crosses(
            &mut publisher,
            &mut remote_sub,
            b"with",
            Duration::from_secs(6)
        )
        .await,
        "with bridge_certfile: nothing reached the remote"
    );
    drop(publisher);
    drop(broker);

    let conf = bridge_conf(
        &remote.tls.to_string(),
        &format!(
            "notifications false\ntopic t/# out 1\nbridge_cafile {}\n",
            pki.ca_file
        ),
    );
    let broker = start(&conf, |_| {}).await;
    let mut publisher = Raw::connect(broker.addr, V311, "pub").await;
    assert!(
        !crosses(
            &mut publisher,
            &mut remote_sub,
            b"without",
            Duration::from_secs(3)
        )
        .await,
        "without a client certificate a message reached the remote"
    );
}

/// `bridge_alpn mqtt` is offered in the handshake and selected; without it nothing is
/// offered.
#[tokio::test]
async fn alpn_is_offered() {
    let pki = pki();
    let remote = tls_remote(&pki.server, |_| {}).await;
    let _broker = start(
        &tls_bridge(
            remote.port,
            &format!("bridge_cafile {}\nbridge_alpn mqtt", pki.ca_file),
        ),
        |_| {},
    )
    .await;
    let mut s = remote.expect_session("bridge_alpn").await;
    assert_eq!(
        remote.alpn_offers.lock().unwrap().as_slice(),
        [b"\x04mqtt".to_vec()],
        "ALPN protocols offered"
    );
    assert_eq!(s.alpn.as_deref(), Some(&b"mqtt"[..]), "ALPN negotiated");
    s.peer.settle(1).await;

    let remote = tls_remote(&pki.server, |_| {}).await;
    let _broker = start(
        &tls_bridge(remote.port, &format!("bridge_cafile {}", pki.ca_file)),
        |_| {},
    )
    .await;
    let s = remote.expect_session("no bridge_alpn").await;
    assert!(remote.alpn_offers.lock().unwrap().is_empty());
    assert_eq!(s.alpn, None);
}

/// `bridge_insecure`: a certificate for another host name is refused unless insecure; a
/// certificate from another CA is refused even then.
#[tokio::test]
async fn insecure_skips_the_host_name_only() {
    let pki = pki();
    let cafile = format!("bridge_cafile {}", pki.ca_file);

    let remote = tls_remote(&pki.elsewhere, |_| {}).await;
    let _refused = start(&tls_bridge(remote.port, &cafile), |_| {}).await;
    remote
        .expect_refused(
            Duration::from_millis(2500),
            "certificate for another host, not insecure",
        )
        .await;

    let remote = tls_remote(&pki.elsewhere, |_| {}).await;
    let _insecure = start(
        &tls_bridge(remote.port, &format!("{cafile}\nbridge_insecure true")),
        |_| {},
    )
    .await;
    let mut s = remote
        .expect_session("certificate for another host, bridge_insecure true")
        .await;
    s.peer.settle(1).await;

    let remote = tls_remote(&pki.stranger, |_| {}).await;
    let _stranger = start(
        &tls_bridge(remote.port, &format!("{cafile}\nbridge_insecure true")),
        |_| {},
    )
    .await;
    remote
        .expect_refused(
            Duration::from_millis(2500),
            "certificate from another CA, bridge_insecure true",
        )
        .await;
}

/// `bridge_tls_version` is the lowest version the bridge accepts: tlsv1.3 against a server
/// capped at TLS 1.2 does not connect, tlsv1.2 does.
#[tokio::test]
async fn tls_version_is_the_minimum() {
    let pki = pki();
    let cap = |b: &mut SslAcceptorBuilder| {
        b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    };
    let cafile = format!("bridge_cafile {}", pki.ca_file);

    let remote = tls_remote(&pki.server, cap).await;
    let _v13 = start(
        &tls_bridge(
            remote.port,
            &format!("{cafile}\nbridge_tls_version tlsv1.3"),
        ),
        |_| {},
    )
    .await;
    remote
        .expect_refused(
            Duration::from_millis(2500),
            "bridge_tls_version tlsv1.3 against TLS 1.2",
        )
        .await;

    let remote = tls_remote(&pki.server, cap).await;
    let _v12 = start(
        &tls_bridge(
            remote.port,
            &format!("{cafile}\nbridge_tls_version tlsv1.2"),
        ),
        |_| {},
    )
    .await;
    let mut s = remote.expect_session("bridge_tls_version tlsv1.2").await;
    assert_eq!(s.version, "TLSv1.2");
    s.peer.settle(1).await;

    // Against a server that speaks TLS 1.3, tlsv1.3 connects.
    let remote = tls_remote(&pki.server, |_| {}).await;
    let _v13 = start(
        &tls_bridge(
            remote.port,
            &format!("{cafile}\nbridge_tls_version tlsv1.3"),
        ),
        |_| {},
    )
    .await;
    let s = remote.expect_session("bridge_tls_version tlsv1.3").await;
    assert_eq!(s.version, "TLSv1.3");
}

/// `bridge_ciphers` (TLS 1.2): the cipher asked for is the one negotiated; a cipher the
/// server does not offer means no connection.
#[tokio::test]
async fn ciphers_choose_the_tls12_cipher() {
    let pki = pki();
    let server = |b: &mut SslAcceptorBuilder| {
        b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
        b.set_cipher_list("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
            .unwrap();
    };
    let cafile = format!("bridge_cafile {}", pki.ca_file);

    let remote = tls_remote(&pki.server, server).await;
    let _broker = start(
        &tls_bridge(
            remote.port,
            &format!("{cafile}\nbridge_ciphers ECDHE-ECDSA-AES256-GCM-SHA384"),
        ),
        |_| {},
    )
    .await;
    let mut s = remote.expect_session("bridge_ciphers").await;
    assert_eq!(s.version, "TLSv1.2");
    assert_eq!(s.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
    s.peer.settle(1).await;

    let remote = tls_remote(&pki.server, server).await;
    let _broker = start(
        &tls_bridge(
            remote.port,
            &format!("{cafile}\nbridge_ciphers ECDHE-ECDSA-CHACHA20-POLY1305"),
        ),
        |_| {},
    )
    .await;
    remote
        .expect_refused(
            Duration::from_millis(2500),
            "bridge_ciphers the server does not offer",
        )
        .await;
}

// ---------------------------------------------------------------------------------------
// Addresses: failover and round_robin
// ---------------------------------------------------------------------------------------

/// Without `round_robin` the first address is the primary: after a working connection
/// drops the bridge goes back to it; when it is down the bridge fails over to the backup.
#[tokio::test]
async fn primary_first_then_failover_to_the_backup() {
    let (a, port_a) = fake_remote().await;
    let (b, port_b) = fake_remote().await;
    let _broker = bridged(
        &format!("{} {}", local(port_a), local(port_b)),
        "notifications false\ntopic f/# in 0\n",
    )
    .await;
    let mut on_a = expect_bridge(&a, Duration::from_secs(5), "A").await;
    on_a.settle(1).await;
    drop(on_a);
    let mut on_a = expect_bridge(&a, Duration::from_secs(4), "A, after A dropped it").await;
    on_a.settle(1).await;
    expect_no_bridge(&b, QUIET, "B").await;
    // A goes away: its listener and the connection.
    drop(a);
    drop(on_a);
    let mut on_b = expect_bridge(&b, Duration::from_secs(6), "B, A down").await;
    on_b.settle(1).await;
}

/// Mosquitto: "whilst connected to a secondary bridge, the bridge will periodically attempt
/// to reconnect to the main bridge until successful". On B with A down, A comes back: the
/// bridge leaves B and connects to A.
#[tokio::test]
async fn on_the_backup_the_primary_is_probed_and_taken_back() {
    let port_a = closed_port().await;
    let (b, port_b) = fake_remote().await;
    let _broker = bridged(
        &format!("{} {}", local(port_a), local(port_b)),
        "notifications false\ntopic f/# in 0\n",
    )
    .await;
    let mut on_b = expect_bridge(&b, Duration::from_secs(5), "B, A down").await;
    on_b.settle(1).await;
    let a = TcpListener::bind(("127.0.0.1", port_a))
        .await
        .expect("A listens again on its port");
    let mut on_a = expect_bridge(&a, Duration::from_secs(15), "A, back up").await;
    on_a.settle(1).await;
    let mut pings = 0;
    assert!(
        until_closed(
            &mut on_b,
            Instant::now() + Duration::from_secs(2),
            &mut pings
        )
        .await,
        "the connection to the backup B is still open after moving back to A"
    );
}

/// `round_robin true`: after A drops the connection, the next one goes to B, then to A.
#[tokio::test]
async fn round_robin_moves_on_after_a_drop() {
    let (a, port_a) = fake_remote().await;
    let (b, port_b) = fake_remote().await;
    let _broker = bridged(
        &format!("{} {}", local(port_a), local(port_b)),
        "round_robin true\nnotifications false\ntopic r/# in 0\n",
    )
    .await;
    let mut on_a = expect_bridge(&a, Duration::from_secs(5), "A").await;
    on_a.settle(1).await;
    drop(on_a);
    let mut on_b = expect_bridge(&b, Duration::from_secs(4), "B, after A dropped it").await;
    on_b.settle(1).await;
    expect_no_bridge(&a, QUIET, "A").await;
    drop(on_b);
    let mut on_a = expect_bridge(&a, Duration::from_secs(4), "A, after B dropped it").await;
    on_a.settle(1).await;
}

// ---------------------------------------------------------------------------------------
// bridge_protocol_version mqttv31
// ---------------------------------------------------------------------------------------

/// MQTT 3.1: protocol name `MQIsdp`, level 3 with the bridge bit (`try_private`), and
/// messages cross both ways.
#[tokio::test]
async fn mqttv31_bridge() {
    let (listener, port) = fake_remote().await;
    let broker = bridged(
        &local(port),
        "bridge_protocol_version mqttv31\nnotifications false\ntopic v/# both 1\n",
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    let (level, connect, name) = peer.receive_connect().await;
    assert_eq!(name, b"MQIsdp", "protocol name");
    assert_eq!(level, 0x83, "level 3 with the bridge bit");
    assert_eq!(connect.protocol, ProtocolVersion::V31);
    assert_eq!(connect.client_id, "opt-bridge");
    peer.send(&Packet::ConnAck(Default::default())).await;
    let subs = peer.settle(1).await;
    assert_eq!(subs[0].filters[0].filter, "v/#");

    // Remote → local.
    let mut sub = local_subscriber(broker.addr, "sub", "v/in").await;
    peer.publish("v/in", QoS::AtLeastOnce, 7, b"from the remote")
        .await;
    peer.expect_ack(7).await;
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "v/in");
    assert_eq!(&p.payload[..], b"from the remote");

    // Local → remote.
    let mut publisher = Raw::connect(broker.addr, V311, "pub").await;
    publisher
        .publish("v/out", b"from here", QoS::AtLeastOnce, false)
        .await;
    let out = loop {
        match peer.recv().await {
            Packet::Publish(p) => break p,
            Packet::PingReq | Packet::Unsubscribe(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&*out.topic, "v/out");
    assert_eq!(&out.payload[..], b"from here");
    assert_eq!(out.qos, QoS::AtLeastOnce);
    peer.send(&Packet::PubAck(PubResp::new(out.packet_id)))
        .await;

    // try_private false: plain level 3.
    let (listener, port) = fake_remote().await;
    let _plain = bridged(
        &local(port),
        "bridge_protocol_version mqttv31\ntry_private false\nnotifications false\n\
             topic v/# both 1\n",
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    let (level, _, name) = peer.receive_connect().await;
    assert_eq!(name, b"MQIsdp");
    assert_eq!(level, 3, "no bridge bit with try_private false");
}
