//! Certificate TLS and mutual TLS on TCP and Unix socket listeners, with a Rust client
//! (tokio-openssl) speaking raw MQTT. Certificates are made at test time (rcgen): a
//! CA, a server certificate, good / revoked / expired client certificates and one from
//! another CA. The Mosquitto command-line clients are tested in `crates/midge/tests`.

mod common;

use common::certs::{ca, Ca};

use std::pin::Pin;

use common::{connect_packet, encode, publish_packet, TempDir, WAIT};
use midge_proto::{Packet, ProtocolVersion, QoS, Sender};
use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DnType, KeyIdMethod, KeyPair,
    RevokedCertParams, SanType, SerialNumber,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_openssl::SslStream;

const V311: ProtocolVersion = ProtocolVersion::V311;

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// (certificate PEM, key PEM)
fn leaf(ca: &Ca, serial: u64, subject: &[(DnType, &str)], expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, v) in subject {
        p.distinguished_name.push(ty.clone(), *v);
    }
    p.serial_number = Some(SerialNumber::from(serial));
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn crl(ca: &Ca, revoked: &[u64]) -> String {
    CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2020, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(revoked.len() as u64 + 1),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.cert, &ca.key)
    .unwrap()
    .pem()
    .unwrap()
}

const SUBJECT: &[(DnType, &str)] = &[
    (DnType::CountryName, "GB"),
    (DnType::StateOrProvinceName, "Nottinghamshire"),
    (DnType::LocalityName, "Nottingham"),
    (DnType::OrganizationName, "Server"),
    (DnType::OrganizationalUnitName, "Production"),
    (DnType::CommonName, "test client"),
];
const SUBJECT_2253: &str =
    "CN=test client,OU=Production,O=Server,L=Nottingham,ST=Nottinghamshire,C=GB";

/// Everything a test needs on disk.
struct Pki {
    dir: TempDir,
    ca: Ca,
    ca_file: String,
    server_cert: String,
    server_key: String,
    good: (String, String),
    revoked: (String, String),
    expired: (String, String),
    stranger: (String, String),
    other_ca_file: String,
    crl_file: String,
}

const GOOD: u64 = 100;
const REVOKED: u64 = 101;

fn pki() -> Pki {
    let dir = TempDir::new();
    let other = ca("Other CA");
    let ca = ca("Midge Test CA");
    let (sc, sk) = leaf(&ca, 2, &[(DnType::CommonName, "localhost")], false);
    let good = leaf(&ca, GOOD, SUBJECT, false);
    let revoked = leaf(&ca, REVOKED, &[(DnType::CommonName, "revoked")], false);
    let expired = leaf(&ca, 102, &[(DnType::CommonName, "expired")], true);
    let stranger = leaf(&other, 5, &[(DnType::CommonName, "stranger")], false);
    let pair = |name: &str, (c, k): (String, String)| {
        (
            dir.write(&format!("{name}.crt"), &c),
            dir.write(&format!("{name}.key"), &k),
        )
    };
    Pki {
        ca_file: dir.write("ca.crt", &ca.cert.pem()),
        server_cert: dir.write("server.crt", &sc),
        server_key: dir.write("server.key", &sk),
        good: pair("good", good),
        revoked: pair("revoked", revoked),
        expired: pair("expired", expired),
        stranger: pair("stranger", stranger),
        other_ca_file: dir.write("other-ca.crt", &other.cert.pem()),
        crl_file: dir.write("ca.crl", &crl(&ca, &[REVOKED])),
        ca,
        dir,
    }
}

// ---------------------------------------------------------------------------------------
// Broker and client
// ---------------------------------------------------------------------------------------

struct Broker {
    addr: std::net::SocketAddr,
    handle: midge_server::ServerHandle,
    conf: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn parse(conf: &str) -> midge_core::config::Config {
    let text = std::fs::read_to_string(conf).unwrap();
    let mut config = midge_core::config::parse(&text, conf).expect("config parses");
    for l in &mut config.listeners {
        l.port = 0;
    }
    config
}

/// `global` options, then a TLS listener on 127.0.0.1 with `listener` options.
fn write_conf(pki: &Pki, global: &str, listener: &str) -> String {
    pki.dir.write(
        "midge.conf",
        &format!("{global}\nlistener 1 127.0.0.1\n{listener}\n"),
    )
}

async fn start(pki: &Pki, global: &str, listener: &str) -> Broker {
    let conf = write_conf(pki, global, listener);
    let server = midge_server::Server::bind(&parse(&conf))
        .await
        .expect("broker binds");
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    tokio::spawn(server.run());
    Broker { addr, handle, conf }
}

fn server_tls(pki: &Pki) -> String {
    format!("certfile {}\nkeyfile {}", pki.server_cert, pki.server_key)
}

fn mtls(pki: &Pki) -> String {
    format!(
        "{}\ncafile {}\nrequire_certificate true",
        server_tls(pki),
        pki.ca_file
    )
}

#[derive(Default)]
struct ClientOpts<'a> {
    ca: Option<&'a str>,
    cert: Option<&'a (String, String)>,
    max_version: Option<SslVersion>,
    ciphers: Option<&'a str>,
    /// TLS 1.3 suites offered (OpenSSL's default when `None`).
    suites: Option<&'a str>,
}

/// A TCP or Unix socket under the client's TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

struct Client {
    s: SslStream<Box<dyn Io>>,
    buf: Vec<u8>,
}

async fn tls_connect(addr: std::net::SocketAddr, o: &ClientOpts<'_>) -> Result<Client, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tls_over(Box::new(tcp), o).await
}

async fn tls_over(io: Box<dyn Io>, o: &ClientOpts<'_>) -> Result<Client, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    match o.ca {
        Some(ca) => b.set_ca_file(ca).unwrap(),
        None => b.set_verify(SslVerifyMode::NONE),
    }
    if let Some((c, k)) = o.cert {
        let cert = X509::from_pem(&std::fs::read(c).unwrap()).unwrap();
        let key = PKey::private_key_from_pem(&std::fs::read(k).unwrap()).unwrap();
        b.set_certificate(&cert).unwrap();
        b.set_private_key(&key).unwrap();
    }
    b.set_max_proto_version(o.max_version).unwrap();
    if let Some(c) = o.ciphers {
        b.set_cipher_list(c).unwrap();
    }
    if let Some(suites) = o.suites {
        b.set_ciphersuites(suites).unwrap();
    }
    let ssl: Ssl = b
        .build()
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut s = SslStream::new(ssl, io).unwrap();
    match timeout(WAIT, Pin::new(&mut s).connect()).await {
        Err(_) => Err("handshake timed out".into()),
        Ok(Err(e)) => Err(format!("handshake: {e}")),
        Ok(Ok(())) => Ok(Client { s, buf: Vec::new() }),
    }
}

impl Client {
    async fn send(&mut self, p: &Packet) {
        let _ = self.s.write_all(&encode(p, V311)).await;
    }

    /// The next packet, or `Err` when the connection ends or nothing comes in time.
    async fn recv(&mut self) -> Result<Packet, String> {
        loop {
            if let Some(p) = self.take()? {
                return Ok(p);
            }
            let mut chunk = [0u8; 4096];
            match timeout(WAIT, self.s.read(&mut chunk)).await {
                Err(_) => return Err("nothing received in time".into()),
                Ok(Ok(0)) => return Err("closed".into()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(format!("read: {e}")),
            }
        }
    }

    fn take(&mut self) -> Result<Option<Packet>, String> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let (mut len, mut mult, mut i) = (0usize, 1usize, 1);
        loop {
            let Some(&b) = self.buf.get(i) else {
                return Ok(None);
            };
            len += usize::from(b & 0x7f) * mult;
            mult *= 128;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if self.buf.len() < i + len {
            return Ok(None);
        }
        let first = self.buf[0];
        let body = bytes::Bytes::copy_from_slice(&self.buf[i..i + len]);
        self.buf.drain(..i + len);
        midge_proto::decode_packet(first, body, V311, Sender::Server)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Sends CONNECT; the CONNACK code, or `Err` when the connection ended instead.
    async fn mqtt_connect(&mut self, id: &str, user: Option<&str>) -> Result<u8, String> {
        let mut c = connect_packet(V311, id);
        c.username = user.map(Into::into);
        c.password = user.map(|_| bytes::Bytes::from_static(b"wrong password"));
        self.send(&Packet::Connect(Box::new(c))).await;
        match self.recv().await? {
            Packet::ConnAck(a) => Ok(a.code),
            other => Err(format!("expected CONNACK, got {other:?}")),
        }
    }

    async fn subscribe(&mut self, filter: &str) {
        let p = Packet::Subscribe(midge_proto::Subscribe {
            packet_id: 1,
            filters: vec![common::filter(filter, QoS::AtLeastOnce)],
            properties: Default::default(),
        });
        self.send(&p).await;
        match self.recv().await.unwrap() {
            Packet::SubAck(_) => {}
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes at QoS 1 and waits for PUBACK.
    async fn publish(&mut self, topic: &str, payload: &[u8]) {
        let mut p = publish_packet(topic, payload, QoS::AtLeastOnce, false);
        p.packet_id = 7;
        self.send(&Packet::Publish(p)).await;
        match self.recv().await.unwrap() {
            Packet::PubAck(a) => assert_eq!(a.packet_id, 7),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    async fn expect_publish(&mut self, topic: &str, payload: &[u8]) {
        match self.recv().await.unwrap() {
            Packet::Publish(p) => {
                assert_eq!(&*p.topic, topic);
                assert_eq!(&p.payload[..], payload);
                if p.qos == QoS::AtLeastOnce {
                    let ack = midge_proto::PubResp::new(p.packet_id);
                    self.send(&Packet::PubAck(ack)).await;
                }
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    async fn expect_nothing(&mut self) {
        let mut chunk = [0u8; 64];
        let r = timeout(common::QUIET, self.s.read(&mut chunk)).await;
        assert!(r.is_err(), "expected nothing, got {r:?}");
    }
}

/// TLS handshake and MQTT CONNECT; the CONNACK code or why there was none.
async fn try_client(
    addr: std::net::SocketAddr,
    o: &ClientOpts<'_>,
    id: &str,
) -> Result<(Client, u8), String> {
    let mut c = tls_connect(addr, o).await?;
    let code = c.mqtt_connect(id, None).await?;
    Ok((c, code))
}

async fn connected(addr: std::net::SocketAddr, o: &ClientOpts<'_>, id: &str) -> Client {
    match try_client(addr, o, id).await {
        Ok((c, 0)) => c,
        Ok((_, code)) => panic!("{id}: CONNACK refused with {code}"),
        Err(e) => panic!("{id}: {e}"),
    }
}

fn assert_refused(r: Result<(Client, u8), String>, what: &str) {
    match r {
        Ok((_, 0)) => panic!("{what}: accepted"),
        Ok((_, code)) => panic!("{what}: expected a TLS refusal, got CONNACK {code}"),
        Err(_) => {}
    }
}

// ---------------------------------------------------------------------------------------
// Server-only TLS
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn server_tls_exchanges_qos1_both_ways() {
    let pki = pki();
    let b = start(&pki, "allow_anonymous true", &server_tls(&pki)).await;
    let o = ClientOpts {
        ca: Some(&pki.ca_file),
        ..Default::default()
    };
    let mut sub = connected(b.addr, &o, "sub").await;
    sub.subscribe("t/#").await;
    let mut publ = connected(b.addr, &o, "pub").await;
    publ.publish("t/1", b"hello").await;
    sub.expect_publish("t/1", b"hello").await;
    // A payload larger than a TLS record and than one read of the broker.
    let big = vec![b'x'; 100_000];
    publ.publish("t/big", &big).await;
    sub.expect_publish("t/big", &big).await;
    // Many small packets in one TLS record arrive all.
    for i in 0..50u8 {
        let p = publish_packet("t/many", &[i], QoS::AtMostOnce, false);
        publ.send(&Packet::Publish(p)).await;
    }
    for i in 0..50u8 {
        sub.expect_publish("t/many", &[i]).await;
    }
}

#[tokio::test]
async fn server_tls_wrong_ca_is_refused_by_the_client_and_plain_mqtt_gets_nothing() {
    let pki = pki();
    let b = start(&pki, "allow_anonymous true", &server_tls(&pki)).await;
    let o = ClientOpts {
        ca: Some(&pki.other_ca_file),
        ..Default::default()
    };
    assert!(tls_connect(b.addr, &o).await.is_err());
    // Plain MQTT on a TLS port: no CONNACK.
    let mut tcp = TcpStream::connect(b.addr).await.unwrap();
    let c = encode(
        &Packet::Connect(Box::new(connect_packet(V311, "plain"))),
        V311,
    );
    tcp.write_all(&c).await.unwrap();
    let mut buf = [0u8; 16];
    let r = timeout(WAIT, tcp.read(&mut buf)).await;
    assert!(
        !matches!(r, Ok(Ok(n)) if n >= 2 && buf[0] == 0x20),
        "plain client got a CONNACK"
    );
}

#[tokio::test]
async fn tls_version_13_refuses_a_tls12_client() {
    let pki = pki();
    let listener = format!("{}\ntls_version tlsv1.3", server_tls(&pki));
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let tls12 = ClientOpts {
        ca: Some(&pki.ca_file),
        max_version: Some(SslVersion::TLS1_2),
        ..Default::default()
    };
    assert_refused(try_client(b.addr, &tls12, "old").await, "TLS 1.2 client");
    let any = ClientOpts {
        ca: Some(&pki.ca_file),
        ..Default::default()
    };
    let c = connected(b.addr, &any, "new").await;
    assert_eq!(c.s.ssl().version_str(), "TLSv1.3");
}

#[tokio::test]
async fn ciphers_restrict_what_is_negotiated() {
    let pki = pki();
    let listener = format!(
        "{}\nciphers ECDHE-ECDSA-AES128-GCM-SHA256\ntls_version tlsv1.2",
        server_tls(&pki)
    );
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let tls12 = |ciphers| ClientOpts {
        ca: Some(&pki.ca_file),
        max_version: Some(SslVersion::TLS1_2),
        ciphers: Some(ciphers),
        ..Default::default()
    };
    let c = connected(
        b.addr,
        &tls12("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
        "a",
    )
    .await;
    assert_eq!(
        c.s.ssl().current_cipher().unwrap().name(),
        "ECDHE-ECDSA-AES128-GCM-SHA256"
    );
    assert_refused(
        try_client(b.addr, &tls12("ECDHE-ECDSA-AES256-GCM-SHA384"), "b").await,
        "a cipher the listener does not allow",
    );
}

// ---------------------------------------------------------------------------------------
// Mutual TLS
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn require_certificate_refuses_missing_untrusted_expired_and_revoked_certificates() {
    let pki = pki();
    let listener = format!("{}\ncrlfile {}", mtls(&pki), pki.crl_file);
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let with = |cert| ClientOpts {
        ca: Some(&pki.ca_file),
        cert,
        ..Default::default()
    };
    assert_refused(
        try_client(b.addr, &with(None), "none").await,
        "no certificate",
    );
    assert_refused(
        try_client(b.addr, &with(Some(&pki.stranger)), "stranger").await,
        "certificate from another CA",
    );
    assert_refused(
        try_client(b.addr, &with(Some(&pki.expired)), "expired").await,
        "expired certificate",
    );
    assert_refused(
        try_client(b.addr, &with(Some(&pki.revoked)), "revoked").await,
        "revoked certificate",
    );
    let mut c = connected(b.addr, &with(Some(&pki.good)), "good").await;
    c.publish("x", b"1").await;
}

#[tokio::test]
async fn disable_client_cert_date_checks_accepts_an_expired_certificate() {
    let pki = pki();
    let listener = format!("{}\ndisable_client_cert_date_checks true", mtls(&pki));
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let o = ClientOpts {
        ca: Some(&pki.ca_file),
        cert: Some(&pki.expired),
        ..Default::default()
    };
    connected(b.addr, &o, "expired").await;
}

async fn acl_case(option: &str, user: &str) {
    let pki = pki();
    let acl = pki.dir.write(
        "acl",
        &format!("user {user}\ntopic readwrite allowed/#\ntopic read denied/#\n"),
    );
    let hash = format!("$6$c2FsdHNhbHRzYWx0${}==", "A".repeat(86));
    let pw = pki.dir.write("pw", &format!("someone:{hash}\n"));
    let listener = format!("{}\n{option} true", mtls(&pki));
    let global = format!("allow_anonymous false\nacl_file {acl}\npassword_file {pw}");
    let b = start(&pki, &global, &listener).await;
    let o = ClientOpts {
        ca: Some(&pki.ca_file),
        cert: Some(&pki.good),
        ..Default::default()
    };
    // The CONNECT username and (wrong) password are ignored: the certificate decides.
    let mut c = tls_connect(b.addr, &o).await.unwrap();
    assert_eq!(c.mqtt_connect("c1", Some("someone")).await, Ok(0));
    c.subscribe("#").await;
    c.publish("allowed/1", b"yes").await;
    c.expect_publish("allowed/1", b"yes").await;
    c.publish("denied/1", b"no").await;
    c.expect_nothing().await;
}

#[tokio::test]
async fn use_identity_as_username_takes_the_common_name_for_the_acl() {
    acl_case("use_identity_as_username", "test client").await;
}

#[tokio::test]
async fn use_subject_as_username_takes_the_rfc2253_subject_for_the_acl() {
    acl_case("use_subject_as_username", SUBJECT_2253).await;
}

#[tokio::test]
async fn use_identity_as_username_without_a_certificate_is_bad_username_or_password() {
    let pki = pki();
    // Certificates are not required, so the handshake succeeds without one.
    let listener = format!(
        "{}\ncafile {}\nuse_identity_as_username true",
        server_tls(&pki),
        pki.ca_file
    );
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let o = ClientOpts {
        ca: Some(&pki.ca_file),
        ..Default::default()
    };
    let r = try_client(b.addr, &o, "anon").await.map(|(_, code)| code);
    assert_eq!(r, Ok(4));
}

// ---------------------------------------------------------------------------------------
// Start-up errors
// ---------------------------------------------------------------------------------------

async fn bind_error(pki: &Pki, listener: &str) -> String {
    let conf = write_conf(pki, "", listener);
    match midge_server::Server::bind(&parse(&conf)).await {
        Ok(_) => panic!("bind succeeded with:\n{listener}"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.starts_with(&format!("{conf}:2: ")), "{e}");
            e
        }
    }
}

#[tokio::test]
async fn startup_errors_name_the_file_line_and_reason() {
    let pki = pki();
    let e = bind_error(
        &pki,
        &format!(
            "certfile {}/missing.crt\nkeyfile {}",
            pki.dir.0.display(),
            pki.server_key
        ),
    )
    .await;
    assert!(
        e.contains("certfile: cannot read") && e.contains("missing.crt"),
        "{e}"
    );
    let e = bind_error(
        &pki,
        &format!("certfile {}\nkeyfile {}", pki.server_cert, pki.good.1),
    )
    .await;
    assert!(e.contains("does not match the certificate"), "{e}");
    let e = bind_error(
        &pki,
        &format!("{}\nrequire_certificate true", server_tls(&pki)),
    )
    .await;
    assert!(
        e.contains("require_certificate: needs cafile or capath"),
        "{e}"
    );
    let bad = pki.dir.write("bad.pem", "not a certificate\n");
    let e = bind_error(&pki, &format!("{}\ncafile {bad}", server_tls(&pki))).await;
    assert!(
        e.contains("cafile:") && e.contains("no PEM certificate"),
        "{e}"
    );
    let enc = pki.dir.write(
        "enc.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = bind_error(
        &pki,
        &format!("certfile {}\nkeyfile {enc}", pki.server_cert),
    )
    .await;
    assert!(e.contains("encrypted"), "{e}");
    let e = bind_error(&pki, &format!("{}\nciphers NOPE-NOTHING", server_tls(&pki))).await;
    assert!(e.contains("ciphers"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reload_with_a_new_crl_refuses_new_connections_and_keeps_the_connected_client() {
    let pki = pki();
    let listener = format!("{}\ncrlfile {}", mtls(&pki), pki.crl_file);
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let o = ClientOpts {
        ca: Some(&pki.ca_file),
        cert: Some(&pki.good),
        ..Default::default()
    };
    let mut old = connected(b.addr, &o, "old").await;
    old.subscribe("t").await;
    // Revoke the good certificate too and reload.
    std::fs::write(&pki.crl_file, crl(&pki.ca, &[REVOKED, GOOD])).unwrap();
    let errors = b.handle.reload(&parse(&b.conf));
    assert!(errors.is_empty(), "{errors:?}");
    assert_refused(try_client(b.addr, &o, "new").await, "revoked after reload");
    old.publish("t", b"still here").await;
    old.expect_publish("t", b"still here").await;

    // A reload that fails keeps the previous context.
    std::fs::write(&pki.crl_file, "garbage").unwrap();
    let errors = b.handle.reload(&parse(&b.conf));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("crlfile") && e.contains("keeping")),
        "{errors:?}"
    );
    assert_refused(try_client(b.addr, &o, "again").await, "still revoked");
    // Un-revoked: accepted again.
    std::fs::write(&pki.crl_file, crl(&pki.ca, &[REVOKED])).unwrap();
    assert!(b.handle.reload(&parse(&b.conf)).is_empty());
    connected(b.addr, &o, "back").await;
}

#[test]
fn subject_is_printed_like_x509_name_print_ex_rfc2253() {
    let pki = pki();
    let cert = X509::from_pem(&std::fs::read(&pki.good.0).unwrap()).unwrap();
    assert_eq!(
        midge_server::tls::subject_rfc2253(cert.subject_name()).unwrap(),
        SUBJECT_2253
    );
    // The same as OpenSSL's own command line prints it.
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&pki.good.0)
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), format!("subject={SUBJECT_2253}"));
    }
}

// ---------------------------------------------------------------------------------------
// CA directories, TLS 1.3 suites, DH parameters, server certificate reload, Unix sockets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn capath_trusts_the_hashed_ca_directory() {
    let pki = pki();
    // The layout `openssl rehash` / `c_rehash` makes: <subject hash>.0
    let ca = X509::from_pem(pki.ca.cert.pem().as_bytes()).unwrap();
    let hash = ca.subject_name_hash();
    std::fs::create_dir_all(pki.dir.path("cas")).unwrap();
    pki.dir
        .write(&format!("cas/{hash:08x}.0"), &pki.ca.cert.pem());
    let capath = pki.dir.path("cas");
    let listener = format!(
        "{}\ncapath {capath}\nrequire_certificate true",
        server_tls(&pki)
    );
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let with = |cert| ClientOpts {
        ca: Some(&pki.ca_file),
        cert,
        ..Default::default()
    };
    connected(b.addr, &with(Some(&pki.good)), "good").await;
    assert_refused(
        try_client(b.addr, &with(Some(&pki.stranger)), "stranger").await,
        "certificate from a CA outside capath",
    );
}

#[tokio::test]
async fn ciphers_tls13_restricts_the_tls13_suites() {
    let pki = pki();
    let listener = format!(
        "{}\nciphers_tls1.3 TLS_AES_128_GCM_SHA256",
        server_tls(&pki)
    );
    let b = start(&pki, "allow_anonymous true", &listener).await;
    let offering = |suites| ClientOpts {
        ca: Some(&pki.ca_file),
        suites: Some(suites),
        ..Default::default()
    };
    let c = connected(
        b.addr,
        &offering("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"),
        "a",
    )
    .await;
    assert_eq!(c.s.ssl().version_str(), "TLSv1.3");
    assert_eq!(
        c.s.ssl().current_cipher().unwrap().name(),
        "TLS_AES_128_GCM_SHA256"
    );
    assert_refused(
        try_client(b.addr, &offering("TLS_AES_256_GCM_SHA384"), "b").await,
        "a TLS 1.3 suite the listener does not allow",
    );
}

/// An RSA server certificate (finite-field DHE suites need an RSA key).
fn rsa_server(pki: &Pki) -> (String, String) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pem = PKey::from_rsa(rsa)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    let key = KeyPair::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &pki.ca.cert, &pki.ca.key).unwrap();
    (
        pki.dir.write("rsa-server.crt", &cert.pem()),
        pki.dir.write("rsa-server.key", &key.serialize_pem()),
    )
}

#[tokio::test]
async fn dhparamfile_enables_finite_field_dhe_suites() {
    let pki = pki();
    let (cert, key) = rsa_server(&pki);
    // RFC 5114's 2048-bit group, in the PEM form `openssl dhparam` writes.
    let dh = openssl::dh::Dh::get_2048_256().unwrap();
    let dhparam = pki.dir.write(
        "dh.pem",
        std::str::from_utf8(&dh.params_to_pem().unwrap()).unwrap(),
    );
    let suite = "DHE-RSA-AES128-GCM-SHA256";
    let client = ClientOpts {
        ca: Some(&pki.ca_file),
        max_version: Some(SslVersion::TLS1_2),
        ciphers: Some(suite),
        ..Default::default()
    };
    let with_dh = format!(
        "certfile {cert}\nkeyfile {key}\ndhparamfile {dhparam}\nciphers {suite}\ntls_version tlsv1.2"
    );
    let b = start(&pki, "allow_anonymous true", &with_dh).await;
    let c = connected(b.addr, &client, "dhe").await;
    assert_eq!(c.s.ssl().current_cipher().unwrap().name(), suite);

    // A file that is not DH parameters stops start-up with its line.
    std::fs::write(&dhparam, "not parameters").unwrap();
    let err = bind_error(&pki, &with_dh).await;
    assert!(err.contains("dhparamfile"), "{err}");
}

#[tokio::test]
async fn reload_with_a_new_server_certificate_keeps_the_connected_client() {
    let pki = pki();
    let b = start(&pki, "allow_anonymous true", &server_tls(&pki)).await;
    let trusting = |ca| ClientOpts {
        ca: Some(ca),
        ..Default::default()
    };
    let mut old = connected(b.addr, &trusting(&pki.ca_file), "old").await;
    old.subscribe("t").await;

    // The certificate is renewed by another CA, in place, and SIGHUP's reload runs.
    let other = ca("Renewing CA");
    let (cert, key) = leaf(&other, 9, &[(DnType::CommonName, "localhost")], false);
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    let other_ca = pki.dir.write("renewing-ca.crt", &other.cert.pem());
    let errors = b.handle.reload(&parse(&b.conf));
    assert!(errors.is_empty(), "{errors:?}");

    // New handshakes see the new certificate...
    assert!(
        tls_connect(b.addr, &trusting(&pki.ca_file)).await.is_err(),
        "a client trusting only the old CA still accepted the new certificate"
    );
    let mut new = connected(b.addr, &trusting(&other_ca), "new").await;
    // ...and the client connected before the reload keeps its session.
    new.publish("t", b"after reload").await;
    old.expect_publish("t", b"after reload").await;
    old.publish("t", b"old still publishes").await;
    old.expect_publish("t", b"old still publishes").await;
}

#[tokio::test]
async fn tls_on_a_unix_socket_listener_with_client_certificates() {
    let pki = pki();
    let sock = pki.dir.path("tls.sock");
    let conf = pki.dir.write(
        "unix.conf",
        &format!(
            "listener 0 {sock}\n{}\nuse_identity_as_username true\n\
             listener 1 127.0.0.1\nallow_anonymous true\n",
            mtls(&pki)
        ),
    );
    let server = midge_server::Server::bind(&parse(&conf))
        .await
        .expect("broker binds");
    let tcp_addr = server.local_addrs()[0];
    let handle = server.handle();
    tokio::spawn(server.run());
    let _b = Broker {
        addr: tcp_addr,
        handle,
        conf,
    };
    let unix = |cert| {
        let sock = sock.clone();
        let ca = pki.ca_file.clone();
        async move {
            let io = tokio::net::UnixStream::connect(&sock).await.unwrap();
            let o = ClientOpts {
                ca: Some(&ca),
                cert,
                ..Default::default()
            };
            let mut c = tls_over(Box::new(io), &o).await?;
            let code = c.mqtt_connect("unix", None).await?;
            Ok::<_, String>((c, code))
        }
    };
    assert_refused(unix(None).await, "no certificate on the unix socket");
    let (mut c, code) = unix(Some(&pki.good)).await.expect("handshake");
    assert_eq!(code, 0);
    c.subscribe("u/#").await;
    c.publish("u/1", b"over tls on a unix socket").await;
    c.expect_publish("u/1", b"over tls on a unix socket").await;
}
