//! A bridge's TLS towards the remote broker: certificates (`bridge_cafile`, `bridge_capath`,
//! `bridge_certfile`, `bridge_keyfile`, `bridge_insecure`, `bridge_tls_version`,
//! `bridge_ciphers`, `bridge_alpn`) or a pre-shared key (`bridge_identity`, `bridge_psk`).
//!
//! The context is built at start-up: a CA file that cannot be read or holds no certificate
//! stops the broker, so a bridge never connects without checking the remote (Mosquitto 2.0.x
//! connected unverified after a failed first attempt with an empty CA file).

use midge_core::config::{BridgeConfig, TlsVersion};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;

/// What connecting needs besides the context.
pub(crate) struct BridgeTlsContext {
    pub connector: SslConnector,
    /// PSK or `bridge_insecure`: no host name check.
    pub skip_hostname: bool,
}

/// The bridge's client context; `None` when the bridge speaks plain TCP.
pub(crate) fn build(bridge: &BridgeConfig) -> Result<Option<BridgeTlsContext>, String> {
    let tls = &bridge.tls;
    let name = &bridge.name;
    let psk = tls.psk.is_some() && tls.identity.is_some();
    if tls.cafile.is_none() && tls.capath.is_none() && !psk {
        if tls.certfile.is_some() || tls.keyfile.is_some() {
            return Err(format!(
                "bridge '{name}': bridge_certfile/bridge_keyfile need bridge_cafile or bridge_capath"
            ));
        }
        return Ok(None);
    }
    let err = |what: &str, e: &dyn std::fmt::Display| format!("bridge '{name}': {what}: {e}");
    let mut b =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| err("TLS context", &e))?;
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
    if let Some(alpn) = &tls.alpn {
        let len = u8::try_from(alpn.len()).map_err(|e| err("bridge_alpn", &e))?;
        let mut wire = vec![len];
        wire.extend_from_slice(alpn.as_bytes());
        b.set_alpn_protos(&wire)
            .map_err(|e| err("bridge_alpn", &e))?;
    }
    if let (Some(key), Some(identity)) = (&tls.psk, &tls.identity) {
        let key = decode_hex(key)
            .ok_or_else(|| format!("bridge '{name}': bridge_psk is not hexadecimal"))?;
        let identity = identity.clone().into_bytes();
        b.set_verify(SslVerifyMode::NONE);
        if tls.ciphers.is_none() {
            b.set_cipher_list("PSK")
                .map_err(|e| err("PSK ciphers", &e))?;
        }
        // TLS 1.3 would need the key as a session ticket; Mosquitto's PSK listeners speak 1.2.
        b.set_max_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| err("bridge_tls_version", &e))?;
        b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
            if identity.len() + 1 > id_out.len() || key.len() > key_out.len() {
                return Ok(0);
            }
            id_out[..identity.len()].copy_from_slice(&identity);
            id_out[identity.len()] = 0;
            key_out[..key.len()].copy_from_slice(&key);
            Ok(key.len())
        });
    } else {
        b.set_verify(SslVerifyMode::PEER);
    }
    Ok(Some(BridgeTlsContext {
        connector: b.build(),
        skip_hostname: psk || tls.insecure,
    }))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
