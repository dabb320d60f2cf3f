//! Bridge TLS options of issue 8, in-process against a fake remote broker that speaks TLS
//! (openssl's `SslAcceptor` with tokio-openssl): `bridge_require_ocsp` with stapled OCSP
//! responses made by `tests/fixtures/ocsp/make.sh` (good, revoked, unknown, signed by an
//! unrelated key, none), `bridge_ciphers_tls1.3` and `bridge_tls_use_os_certs`.
//!
//! A connection that reaches the MQTT CONNECT proves the bridge accepted the handshake; the
//! remote answers it with a CONNACK. A refused one fails the remote's handshake (the bridge
//! aborts it) or at least never sends CONNECT, on the first attempt and on the retry.

mod common;

use std::pin::Pin;
use std::time::Duration;

use common::WAIT;
use openssl::ssl::{Ssl, SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod, SslVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_openssl::SslStream;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ocsp");
const GOOD: &[u8] = include_bytes!("fixtures/ocsp/good.der");
const REVOKED: &[u8] = include_bytes!("fixtures/ocsp/revoked.der");
const UNKNOWN: &[u8] = include_bytes!("fixtures/ocsp/unknown.der");
const ROGUE: &[u8] = include_bytes!("fixtures/ocsp/rogue.der");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// The remote's TLS: the fixture server certificate (localhost, 127.0.0.1, signed by the
/// fixture CA), TLS 1.2 and 1.3.
fn server() -> SslAcceptorBuilder {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_certificate_chain_file(fixture("server.pem")).unwrap();
    b.set_private_key_file(fixture("server.key"), SslFiletype::PEM)
        .unwrap();
    b
}

/// A remote that staples `response` when the client asks for the certificate status.
fn stapling(response: &'static [u8]) -> SslAcceptor {
    let mut b = server();
    b.set_status_callback(move |ssl| {
        ssl.set_ocsp_status(response)?;
        Ok(true)
    })
    .unwrap();
    b.build()
}

/// One bridge connection on the remote side: TLS handshake, CONNECT, CONNACK. `Err` says
/// where it stopped.
async fn serve_one(listener: &TcpListener, acceptor: &SslAcceptor) -> Result<(), String> {
    let (tcp, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the bridge connects in time")
        .expect("accept");
    let ssl = Ssl::new(acceptor.context()).unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    timeout(WAIT, Pin::new(&mut stream).accept())
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut first = [0u8; 1];
    match timeout(WAIT, stream.read_exact(&mut first)).await {
        Ok(Ok(_)) if first[0] == 0x10 => {}
        Ok(Ok(_)) => return Err(format!("first byte {:#04x}, not CONNECT", first[0])),
        Ok(Err(e)) => return Err(format!("no CONNECT: {e}")),
        Err(_) => return Err("no CONNECT in time".to_owned()),
    }
    stream
        .write_all(&[0x20, 0x02, 0x00, 0x00])
        .await
        .map_err(|e| format!("CONNACK: {e}"))?;
    Ok(())
}

async fn remote() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn bridge_conf(port: u16, tls: &str) -> String {
    format!(
        "allow_anonymous true\nconnection remote\naddress 127.0.0.1:{port}\n\
         remote_clientid ocsp-bridge\nrestart_timeout 1\ntopic a/# out 0\n{tls}"
    )
}

fn with_ca(rest: &str) -> String {
    format!("bridge_cafile {}\n{rest}", fixture("ca.pem"))
}

/// The bridge connects to a remote that serves `acceptor`.
async fn connects(tls: &str, acceptor: SslAcceptor) {
    let (listener, port) = remote().await;
    let _broker = common::start(&bridge_conf(port, tls), |_| {}).await;
    if let Err(e) = serve_one(&listener, &acceptor).await {
        panic!("the bridge should connect: {e}");
    }
}

/// The bridge refuses a remote that serves `acceptor`, on the first attempt and the retry.
async fn refused(tls: &str, acceptor: SslAcceptor) {
    let (listener, port) = remote().await;
    let _broker = common::start(&bridge_conf(port, tls), |_| {}).await;
    for attempt in ["first", "second"] {
        if serve_one(&listener, &acceptor).await.is_ok() {
            panic!("the bridge sent CONNECT on its {attempt} attempt");
        }
    }
}

#[tokio::test]
async fn good_stapled_response_connects() {
    connects(&with_ca("bridge_require_ocsp true\n"), stapling(GOOD)).await;
}

#[tokio::test]
async fn no_stapled_response_is_refused() {
    refused(&with_ca("bridge_require_ocsp true\n"), server().build()).await;
}

#[tokio::test]
async fn revoked_certificate_is_refused() {
    refused(&with_ca("bridge_require_ocsp true\n"), stapling(REVOKED)).await;
}

#[tokio::test]
async fn unknown_status_is_refused() {
    refused(&with_ca("bridge_require_ocsp true\n"), stapling(UNKNOWN)).await;
}

#[tokio::test]
async fn response_signed_by_an_unrelated_key_is_refused() {
    refused(&with_ca("bridge_require_ocsp true\n"), stapling(ROGUE)).await;
}

#[tokio::test]
async fn malformed_responses_are_refused() {
    let tls = with_ca("bridge_require_ocsp true\n");
    refused(&tls, stapling(b"not DER")).await;
    // "successful" with no response bytes.
    refused(&tls, stapling(b"\x30\x03\x0a\x01\x00")).await;
    // "tryLater".
    refused(&tls, stapling(b"\x30\x03\x0a\x01\x03")).await;
}

#[tokio::test]
async fn without_require_ocsp_a_remote_without_stapling_works() {
    connects(&with_ca(""), server().build()).await;
    // A stapled response nobody asked for is not sent, and not checked.
    connects(&with_ca(""), stapling(REVOKED)).await;
}

/// The remote speaks TLS 1.3 with TLS_AES_128_GCM_SHA256 only.
fn tls13_aes128() -> SslAcceptor {
    let mut b = server();
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.set_ciphersuites("TLS_AES_128_GCM_SHA256").unwrap();
    b.build()
}

#[tokio::test]
async fn ciphers_tls13_limits_the_suites() {
    connects(
        &with_ca("bridge_ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n"),
        tls13_aes128(),
    )
    .await;
    refused(
        &with_ca("bridge_ciphers_tls1.3 TLS_AES_256_GCM_SHA384\n"),
        tls13_aes128(),
    )
    .await;
}

/// A configuration the broker refuses to start with; returns the error.
async fn start_error(tls: &str) -> String {
    let text = format!("{}\nlistener 1 127.0.0.1\n", bridge_conf(1, tls));
    let mut config = midge_core::config::parse(&text, "test.conf").expect("the config parses");
    config.listeners[0].port = 0;
    match midge_server::Server::bind(&config).await {
        Ok(_) => panic!("the broker started with:\n{tls}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_ciphers_tls13_list_stops_start_up() {
    let e = start_error(&with_ca("bridge_ciphers_tls1.3 TLS_NOT_A_SUITE\n")).await;
    assert!(
        e.contains("bridge 'remote'") && e.contains("bridge_ciphers_tls1.3"),
        "{e}"
    );
}

#[tokio::test]
async fn require_ocsp_without_certificates_stops_start_up() {
    let e = start_error("bridge_require_ocsp true\n").await;
    assert!(
        e.contains("bridge 'remote'") && e.contains("bridge_require_ocsp"),
        "{e}"
    );
    let e = start_error("bridge_identity me\nbridge_psk 00ff\nbridge_require_ocsp true\n").await;
    assert!(
        e.contains("bridge 'remote'") && e.contains("bridge_require_ocsp"),
        "{e}"
    );
}

#[tokio::test]
async fn use_os_certs_alone_turns_verified_tls_on() {
    // The fixture CA is in no OS store: the bridge speaks TLS (the remote's handshake
    // starts) and refuses the certificate, so verification is on.
    let (listener, port) = remote().await;
    let _broker = common::start(&bridge_conf(port, "bridge_tls_use_os_certs true\n"), |_| {}).await;
    let acceptor = server().build();
    for _ in 0..2 {
        match serve_one(&listener, &acceptor).await {
            Ok(()) => panic!("the bridge trusted a CA outside the OS store"),
            // Not plain MQTT ("wrong version number"): the bridge's alert on the certificate.
            Err(e) => assert!(e.contains("unknown ca"), "{e}"),
        }
    }
}

#[tokio::test]
async fn use_os_certs_keeps_the_configured_ca() {
    connects(&with_ca("bridge_tls_use_os_certs true\n"), stapling(GOOD)).await;
}
