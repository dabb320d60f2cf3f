//! TLS with Debian's Mosquitto command-line clients against the `midge` binary:
//! `--cafile` (server TLS), `--cert`/`--key` (mutual TLS with `use_subject_as_username` and
//! an ACL), and a SIGHUP that brings in a CRL. Certificates are made at test time (rcgen).

mod common;

use common::tls::{make_ca, Ca};
use common::{free_port, tool, Midge, TempDir};

use std::process::{Command, Output};

use rcgen::{
    CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType, KeyIdMethod,
    KeyPair, RevokedCertParams, SanType, SerialNumber,
};

const SUBJECT: &str = "CN=sensor 1,O=Midge Tests,C=GB";

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

fn leaf(ca: &Ca, serial: u64, dn: &[(DnType, &str)]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name = DistinguishedName::new();
    for (ty, v) in dn {
        p.distinguished_name.push(ty.clone(), *v);
    }
    p.serial_number = Some(SerialNumber::from(serial));
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

struct Files {
    dir: TempDir,
    ca: Ca,
    ca_file: String,
    other_ca_file: String,
    server: (String, String),
    client: (String, String),
    crl_file: String,
}

const CLIENT_SERIAL: u64 = 10;

fn files() -> Files {
    let dir = TempDir::new();
    let ca = make_ca("Midge Test CA");
    let other = make_ca("Other CA");
    let (sc, sk) = leaf(&ca, 2, &[(DnType::CommonName, "localhost")]);
    let (cc, ck) = leaf(
        &ca,
        CLIENT_SERIAL,
        &[
            (DnType::CountryName, "GB"),
            (DnType::OrganizationName, "Midge Tests"),
            (DnType::CommonName, "sensor 1"),
        ],
    );
    Files {
        ca_file: dir.write("ca.crt", &ca.cert.pem()),
        other_ca_file: dir.write("other.crt", &other.cert.pem()),
        server: (dir.write("server.crt", &sc), dir.write("server.key", &sk)),
        client: (dir.write("client.crt", &cc), dir.write("client.key", &ck)),
        crl_file: dir.write("ca.crl", &crl(&ca, &[])),
        ca,
        dir,
    }
}

// ---------------------------------------------------------------------------------------
// The broker and the tools
// ---------------------------------------------------------------------------------------

fn args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["-h", "127.0.0.1", "-p", &port.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Publishes a retained message; the tool's output.
fn publish(port: u16, tls: &[&str], topic: &str, msg: &str) -> Output {
    tool(
        "mosquitto_pub",
        &args(
            port,
            &[tls, &["-t", topic, "-m", msg, "-r", "-q", "1"]].concat(),
        ),
    )
}

/// Reads one (retained) message within 3 s; `None` when none comes.
fn receive(port: u16, tls: &[&str], topic: &str) -> Option<String> {
    let out = tool(
        "mosquitto_sub",
        &args(port, &[tls, &["-t", topic, "-C", "1", "-W", "3"]].concat()),
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn server_tls_with_cafile() {
    let f = files();
    let port = free_port();
    let conf = f.dir.write(
        "midge.conf",
        &format!(
            "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\nallow_anonymous true\n",
            f.server.0, f.server.1
        ),
    );
    let _m = Midge::start(&conf, port);
    let tls = ["--cafile", f.ca_file.as_str()];
    ok(
        &publish(port, &tls, "tls/t", "over tls"),
        "mosquitto_pub --cafile",
    );
    assert_eq!(receive(port, &tls, "tls/t").as_deref(), Some("over tls"));
    // The client refuses a server its CA did not sign.
    let wrong = ["--cafile", f.other_ca_file.as_str()];
    assert!(!publish(port, &wrong, "tls/t", "x").status.success());
    // Plain MQTT on the TLS port does not work either.
    assert!(!publish(port, &[], "tls/t", "x").status.success());
}

#[test]
fn mutual_tls_subject_as_username_acl_and_crl_reload() {
    let f = files();
    let port = free_port();
    let acl = f.dir.write(
        "acl",
        &format!("user {SUBJECT}\ntopic readwrite allowed/#\ntopic read denied/#\n"),
    );
    let conf = f.dir.write(
        "midge.conf",
        &format!(
            "acl_file {acl}\nlistener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\n\
             cafile {}\nrequire_certificate true\nuse_subject_as_username true\ncrlfile {}\n",
            f.server.0, f.server.1, f.ca_file, f.crl_file
        ),
    );
    let m = Midge::start(&conf, port);
    let tls = [
        "--cafile",
        f.ca_file.as_str(),
        "--cert",
        f.client.0.as_str(),
        "--key",
        f.client.1.as_str(),
    ];
    ok(&publish(port, &tls, "allowed/1", "yes"), "allowed publish");
    assert_eq!(receive(port, &tls, "allowed/1").as_deref(), Some("yes"));
    // Denied: acknowledged and dropped, as Mosquitto does.
    let _ = publish(port, &tls, "denied/1", "no");
    assert_eq!(receive(port, &tls, "denied/1"), None);
    // No client certificate: refused in the handshake.
    let no_cert = ["--cafile", f.ca_file.as_str()];
    assert!(!publish(port, &no_cert, "allowed/2", "x").status.success());

    // SIGHUP with a CRL that revokes the client's certificate.
    std::fs::write(&f.crl_file, crl(&f.ca, &[CLIENT_SERIAL])).unwrap();
    m.hup();
    assert!(
        !publish(port, &tls, "allowed/3", "revoked").status.success(),
        "revoked certificate accepted after reload:\n{}",
        m.log_text()
    );
    assert!(
        m.log_text().contains("TLS handshake with 127.0.0.1:"),
        "handshake failure logged with the address:\n{}",
        m.log_text()
    );
}

#[test]
fn startup_error_names_file_and_line() {
    let f = files();
    let port = free_port();
    let conf = f.dir.write(
        "midge.conf",
        &format!(
            "allow_anonymous true\nlistener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            f.server.0, f.client.1
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-c", &conf])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{conf}:2: keyfile:")) && err.contains("does not match"),
        "{err}"
    );
}
