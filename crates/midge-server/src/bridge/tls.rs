//! A bridge's TLS towards the remote broker: certificates (`bridge_cafile`, `bridge_capath`,
//! `bridge_certfile`, `bridge_keyfile`, `bridge_insecure`, `bridge_tls_version`,
//! `bridge_ciphers`, `bridge_ciphers_tls1.3`, `bridge_alpn`, `bridge_tls_use_os_certs`,
//! `bridge_require_ocsp`) or a pre-shared key (`bridge_identity`, `bridge_psk`).
//!
//! The context is built at start-up: a CA file that cannot be read or holds no certificate
//! stops the broker, so a bridge never connects without checking the remote (Mosquitto 2.0.x
//! connected unverified after a failed first attempt with an empty CA file).
//!
//! The remote is checked against `bridge_cafile`/`bridge_capath` only; the operating system's
//! CA store is trusted too with `bridge_tls_use_os_certs`, as in Mosquitto 2.1.

use std::sync::OnceLock;

use midge_core::config::{BridgeConfig, TlsVersion};
use openssl::hash::MessageDigest;
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspResponse, OcspResponseStatus, OcspRevokedStatus,
};
use openssl::ssl::{
    ConnectConfiguration, Ssl, SslConnector, SslFiletype, SslMethod, SslRef, SslVerifyMode,
    SslVersion, StatusType,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

/// Clock skew allowed on an OCSP response's thisUpdate/nextUpdate, as Mosquitto (300 s).
const OCSP_SKEW_SECS: u32 = 300;

/// What connecting needs besides the context.
pub(crate) struct BridgeTlsContext {
    pub connector: SslConnector,
    /// PSK or `bridge_insecure`: no host name check.
    pub skip_hostname: bool,
    /// `bridge_require_ocsp`: each connection asks for a stapled OCSP response, which the
    /// context's status callback checks.
    pub require_ocsp: bool,
}

impl BridgeTlsContext {
    /// Per-connection settings, before the handshake: the OCSP status request.
    pub(crate) fn prepare(&self, config: &mut ConnectConfiguration) -> Result<(), String> {
        if self.require_ocsp {
            config
                .set_status_type(StatusType::OCSP)
                .map_err(|e| format!("TLS: OCSP status request: {e}"))?;
        }
        Ok(())
    }

    /// The reason a handshake failed, for the bridge's log line: the OCSP check's own reason
    /// when it refused the remote (OpenSSL only says "invalid status response").
    pub(crate) fn handshake_error(&self, ssl: &SslRef, error: &dyn std::fmt::Display) -> String {
        match ocsp_refusal_index().and_then(|i| ssl.ex_data(i)) {
            Some(reason) => format!("TLS handshake: OCSP: {reason}"),
            None => format!("TLS handshake: {error}"),
        }
    }
}

/// Where the status callback leaves its reason for refusing a connection.
fn ocsp_refusal_index() -> Option<openssl::ex_data::Index<Ssl, String>> {
    static INDEX: OnceLock<Option<openssl::ex_data::Index<Ssl, String>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
}

/// The bridge's client context; `None` when the bridge speaks plain TCP.
pub(crate) fn build(bridge: &BridgeConfig) -> Result<Option<BridgeTlsContext>, String> {
    let tls = &bridge.tls;
    let name = &bridge.name;
    let psk = tls.psk.is_some() && tls.identity.is_some();
    // TLS as in Mosquitto 2.1: a CA file or directory, the OS store, or a pre-shared key.
    if tls.cafile.is_none() && tls.capath.is_none() && !tls.use_os_certs && !psk {
        let certs = "need bridge_cafile, bridge_capath or bridge_tls_use_os_certs";
        if tls.certfile.is_some() || tls.keyfile.is_some() {
            return Err(format!(
                "bridge '{name}': bridge_certfile/bridge_keyfile {certs}"
            ));
        }
        if tls.require_ocsp {
            // Without TLS there is nothing to staple: refuse rather than connect unchecked.
            return Err(format!("bridge '{name}': bridge_require_ocsp {certs}"));
        }
        return Ok(None);
    }
    if psk && tls.require_ocsp {
        return Err(format!(
            "bridge '{name}': bridge_require_ocsp needs a certificate, not bridge_psk"
        ));
    }
    let err = |what: &str, e: &dyn std::fmt::Display| format!("bridge '{name}': {what}: {e}");
    let mut b =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| err("TLS context", &e))?;
    // `SslConnector::builder` trusts the OS store; start from an empty one instead, so that
    // only the configured CAs (and the OS store with bridge_tls_use_os_certs) are trusted.
    let store = X509StoreBuilder::new().map_err(|e| err("TLS trust store", &e))?;
    b.set_cert_store(store.build());
    if tls.use_os_certs {
        b.set_default_verify_paths()
            .map_err(|e| err("bridge_tls_use_os_certs", &e))?;
    }
    if let Some(ca) = &tls.cafile {
        let pem = std::fs::read(ca).map_err(|e| err(&format!("bridge_cafile {ca}"), &e))?;
        let certs =
            X509::stack_from_pem(&pem).map_err(|e| err(&format!("bridge_cafile {ca}"), &e))?;
        if certs.is_empty() {
            return Err(format!(
                "bridge '{name}': bridge_cafile {ca}: no certificate in the file"
            ));
        }
        b.set_ca_file(ca)
            .map_err(|e| err(&format!("bridge_cafile {ca}"), &e))?;
    }
    if let Some(dir) = &tls.capath {
        if !std::path::Path::new(dir).is_dir() {
            return Err(format!(
                "bridge '{name}': bridge_capath {dir}: not a readable directory"
            ));
        }
        b.load_verify_locations(None, Some(std::path::Path::new(dir)))
            .map_err(|e| err(&format!("bridge_capath {dir}"), &e))?;
    }
    match (&tls.certfile, &tls.keyfile) {
        (Some(cert), Some(key)) => {
            b.set_certificate_chain_file(cert)
                .map_err(|e| err(&format!("bridge_certfile {cert}"), &e))?;
            b.set_private_key_file(key, SslFiletype::PEM)
                .map_err(|e| err(&format!("bridge_keyfile {key}"), &e))?;
            b.check_private_key()
                .map_err(|e| err("bridge_keyfile does not match bridge_certfile", &e))?;
        }
        (None, None) => {}
        _ => {
            return Err(format!(
                "bridge '{name}': bridge_certfile and bridge_keyfile go together"
            ))
        }
    }
    let min = match tls.tls_version {
        Some(TlsVersion::Tls1_1) => SslVersion::TLS1_1,
        Some(TlsVersion::Tls1_3) => SslVersion::TLS1_3,
        Some(TlsVersion::Tls1_2) | None => SslVersion::TLS1_2,
    };
    b.set_min_proto_version(Some(min))
        .map_err(|e| err("bridge_tls_version", &e))?;
    if let Some(c) = &tls.ciphers {
        b.set_cipher_list(c)
            .map_err(|e| err("bridge_ciphers", &e))?;
    }
    if let Some(c) = &tls.ciphers_tls13 {
        b.set_ciphersuites(c)
            .map_err(|e| err(&format!("bridge_ciphers_tls1.3 {c}"), &e))?;
    }
    if let Some(alpn) = &tls.alpn {
        let len = u8::try_from(alpn.len()).map_err(|e| err("bridge_alpn", &e))?;
        let mut wire = vec![len];
        wire.extend_from_slice(alpn.as_bytes());
        b.set_alpn_protos(&wire)
            .map_err(|e| err("bridge_alpn", &e))?;
    }
    if let (Some(key), Some(identity)) = (&tls.psk, &tls.identity) {
        let key = crate::tls::psk_from_hex(key)
            .ok_or_else(|| format!("bridge '{name}': bridge_psk is not hexadecimal"))?;
        crate::tls::client_psk(&mut b, identity, key, tls.ciphers.is_some())
            .map_err(|e| err("bridge_psk", &e))?;
    } else {
        b.set_verify(SslVerifyMode::PEER);
    }
    if tls.require_ocsp {
        ocsp_refusal_index().ok_or_else(|| format!("bridge '{name}': OpenSSL ex_data index"))?;
        // On a client, the callback runs once the remote's certificate chain is verified;
        // `false` ends the handshake (Mosquitto's mosquitto__verify_ocsp_status_cb).
        b.set_status_callback(|ssl| match check_ocsp(ssl) {
            Ok(()) => Ok(true),
            Err(reason) => {
                if let Some(index) = ocsp_refusal_index() {
                    ssl.set_ex_data(index, reason);
                }
                Ok(false)
            }
        })
        .map_err(|e| err("bridge_require_ocsp", &e))?;
    }
    Ok(Some(BridgeTlsContext {
        connector: b.build(),
        skip_hostname: psk || tls.insecure,
        require_ocsp: tls.require_ocsp,
    }))
}

/// The stapled OCSP response must parse, be "successful", be signed by a responder the trust
/// store vouches for (the CA itself or a delegate it certified), and say "good", currently,
/// for the remote's own certificate. Returns why not.
fn check_ocsp(ssl: &SslRef) -> Result<(), String> {
    let der = ssl
        .ocsp_status()
        .filter(|d| !d.is_empty())
        .ok_or("the remote stapled no response")?;
    let response = OcspResponse::from_der(der).map_err(|e| format!("unreadable response: {e}"))?;
    let status = response.status();
    if status != OcspResponseStatus::SUCCESSFUL {
        return Err(format!(
            "response status {} ({})",
            status.as_raw(),
            response_status_name(status)
        ));
    }
    let basic = response
        .basic()
        .map_err(|e| format!("no basic response: {e}"))?;
    let leaf = ssl
        .peer_certificate()
        .ok_or("the remote sent no certificate")?;
    // The chain the remote sent plus the one verified up to a trusted CA: where the
    // responder's certificate (and the leaf's issuer) can be found.
    let mut certs = Stack::new().map_err(|e| e.to_string())?;
    for c in ssl
        .peer_cert_chain()
        .into_iter()
        .chain(ssl.verified_chain())
        .flatten()
    {
        certs.push(c.to_owned()).map_err(|e| e.to_string())?;
    }
    let store = ssl.ssl_context().cert_store();
    basic
        .verify(&certs, store, OcspFlag::empty())
        .map_err(|e| format!("response verification failed: {e}"))?;
    // The leaf's issuer: next in the verified chain, or the leaf itself if it is the anchor.
    let issuer = match ssl.verified_chain() {
        Some(chain) if chain.len() > 1 => chain.get(1).map(|c| c.to_owned()),
        Some(chain) => chain.get(0).map(|c| c.to_owned()),
        None => None,
    }
    .ok_or("the remote's certificate chain is not verified")?;
    let id = OcspCertId::from_cert(MessageDigest::sha1(), &leaf, &issuer)
        .map_err(|e| format!("certificate id: {e}"))?;
    let single = basic
        .find_status(&id)
        .ok_or("the response has no status for the remote's certificate")?;
    if single.status == OcspCertStatus::REVOKED {
        return Err(format!(
            "the remote's certificate is revoked ({})",
            revocation_reason(single.reason)
        ));
    }
    if single.status != OcspCertStatus::GOOD {
        return Err("the remote's certificate status is unknown".to_owned());
    }
    single
        .check_validity(OCSP_SKEW_SECS, None)
        .map_err(|_| "the response is expired or not yet valid".to_owned())
}

fn revocation_reason(reason: OcspRevokedStatus) -> &'static str {
    match reason {
        OcspRevokedStatus::UNSPECIFIED => "unspecified",
        OcspRevokedStatus::KEY_COMPROMISE => "key compromise",
        OcspRevokedStatus::CA_COMPROMISE => "CA compromise",
        OcspRevokedStatus::AFFILIATION_CHANGED => "affiliation changed",
        OcspRevokedStatus::STATUS_SUPERSEDED => "superseded",
        OcspRevokedStatus::STATUS_CESSATION_OF_OPERATION => "cessation of operation",
        OcspRevokedStatus::STATUS_CERTIFICATE_HOLD => "certificate hold",
        OcspRevokedStatus::REMOVE_FROM_CRL => "remove from CRL",
        _ => "no reason given",
    }
}

fn response_status_name(status: OcspResponseStatus) -> &'static str {
    match status {
        OcspResponseStatus::MALFORMED_REQUEST => "malformed request",
        OcspResponseStatus::INTERNAL_ERROR => "internal error",
        OcspResponseStatus::TRY_LATER => "try later",
        OcspResponseStatus::SIG_REQUIRED => "signature required",
        OcspResponseStatus::UNAUTHORIZED => "unauthorized",
        _ => "unknown",
    }
}
