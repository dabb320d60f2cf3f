//! `bridge_tls_use_os_certs` with an "OS store" OpenSSL really loads: `SSL_CERT_FILE` names
//! the fixture CA of `tests/fixtures/ocsp`. The variable is process-wide, hence this file
//! of its own with a single test (nothing else reads it meanwhile).

mod common;

use std::pin::Pin;
use std::time::Duration;

use common::WAIT;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_openssl::SslStream;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ocsp");

/// One bridge connection on the remote side (server certificate signed by the fixture CA):
/// TLS handshake, CONNECT, CONNACK.
async fn serve_one(listener: &TcpListener) -> Result<(), String> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_certificate_chain_file(format!("{FIXTURES}/server.pem"))
        .unwrap();
    b.set_private_key_file(format!("{FIXTURES}/server.key"), SslFiletype::PEM)
        .unwrap();
    let acceptor = b.build();
    let (tcp, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the bridge connects in time")
        .expect("accept");
    let mut stream = SslStream::new(Ssl::new(acceptor.context()).unwrap(), tcp).unwrap();
    timeout(WAIT, Pin::new(&mut stream).accept())
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut first = [0u8; 1];
    match timeout(WAIT, stream.read_exact(&mut first)).await {
        Ok(Ok(_)) if first[0] == 0x10 => {}
        other => return Err(format!("no CONNECT: {other:?}")),
    }
    stream
        .write_all(&[0x20, 0x02, 0x00, 0x00])
        .await
        .map_err(|e| format!("CONNACK: {e}"))
}

async fn bridge(tls: &str) -> (TcpListener, common::TestBroker) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conf = format!(
        "allow_anonymous true\nconnection remote\naddress 127.0.0.1:{port}\n\
         restart_timeout 1\ntopic a/# out 0\n{tls}"
    );
    let broker = common::start(&conf, |_| {}).await;
    (listener, broker)
}

#[tokio::test]
async fn the_os_store_is_trusted_only_with_use_os_certs() {
    std::env::set_var("SSL_CERT_FILE", format!("{FIXTURES}/ca.pem"));
    std::env::set_var("SSL_CERT_DIR", format!("{FIXTURES}/no-such-directory"));

    // Alone, it turns TLS on and trusts the store.
    let (listener, _broker) = bridge("bridge_tls_use_os_certs true\n").await;
    if let Err(e) = serve_one(&listener).await {
        panic!("bridge_tls_use_os_certs should trust SSL_CERT_FILE: {e}");
    }

    // Without it, only bridge_cafile counts (here an unrelated CA), whatever the OS trusts.
    let rogue = format!("bridge_cafile {FIXTURES}/rogue.pem\n");
    let (listener, _broker) = bridge(&rogue).await;
    for _ in 0..2 {
        if let Ok(()) = serve_one(&listener).await {
            panic!("the bridge trusted the OS store without bridge_tls_use_os_certs");
        }
    }

    // With both, either vouches.
    let (listener, _broker) = bridge(&format!("{rogue}bridge_tls_use_os_certs true\n")).await;
    if let Err(e) = serve_one(&listener).await {
        panic!("the OS store adds to bridge_cafile: {e}");
    }
}
