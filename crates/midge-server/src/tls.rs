//! Certificate TLS and TLS-PSK on TCP listeners (issue 5): the OpenSSL server context built
//! from a listener's options, the handshake, and the username a client certificate or PSK
//! identity gives.
//!
//! Mosquitto's semantics: `tls_version` is the *minimum* version (TLS 1.2 when unset; since
//! 2.0, 1.6 used it as the only version); client certificates are asked for only with
//! `require_certificate`; `use_identity_as_username` / `use_subject_as_username` replace the
//! CONNECT username and skip the password check.
//!
//! TLS-PSK (`psk_hint`): the server callback looks the client's identity up in the
//! listener's *current* `psk_file` (kept in its [`Policy`](crate::policy::Policy), so a
//! reload applies to the next handshake). Without `ciphers`, the PSK suites are added to the
//! defaults; TLS 1.3 uses the same callback (OpenSSL's external PSK compatibility mode).
//! Session resumption is off on PSK listeners so every handshake sees the current keys. With
//! `use_identity_as_username` the identity, not the certificate, is the username (as in
//! Mosquitto, a client on such a listener that did not use a PSK is refused).

use std::ffi::CString;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use midge_core::config::{ListenerConfig, TlsOptions, TlsVersion};
use openssl::dh::Dh;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslAcceptor, SslContextBuilder, SslFiletype, SslMethod, SslOptions, SslRef,
    SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509NameRef, X509};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::policy::PolicyHandle;

/// How a listener's clients get their username from their certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUsername {
    /// The CONNECT username, checked against the password file as usual.
    None,
    /// `use_identity_as_username`: the subject's common name.
    CommonName,
    /// `use_subject_as_username`: the whole subject, RFC 2253 style.
    Subject,
}

/// One listener's TLS server context, rebuilt on reload.
pub struct TlsContext {
    pub acceptor: SslAcceptor,
    pub username: CertUsername,
    /// `psk_hint` is set: the listener takes TLS-PSK clients.
    pub psk: bool,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("username", &self.username)
            .field("psk", &self.psk)
            .finish_non_exhaustive()
    }
}

/// The swappable TLS context of a TLS listener.
pub type TlsHandle = ArcSwapOption<TlsContext>;

/// Whether the listener's options turn certificate TLS on.
fn has_certificate(tls: &TlsOptions) -> bool {
    tls.certfile.is_some() && tls.keyfile.is_some()
}

/// Whether the listener's options turn TLS (certificate or PSK) on.
pub fn enabled(tls: &TlsOptions) -> bool {
    has_certificate(tls) || tls.psk_hint.is_some()
}

/// Builds the listener's TLS context, `None` for a plain listener. `policy` is the
/// listener's, where the PSK callback finds the current `psk_file`. Errors start with the
/// listener's `file:line:`.
pub fn build(
    lc: &ListenerConfig,
    policy: &Arc<PolicyHandle>,
) -> Result<Option<TlsContext>, String> {
    if !enabled(&lc.tls) {
        return Ok(None);
    }
    let at = lc.at();
    build_context(&lc.tls, policy)
        .map(Some)
        .map_err(|e| format!("{at}: {e}"))
}

fn ssl_err(what: &str, e: openssl::error::ErrorStack) -> String {
    format!("{what}: {}", reason(&e))
}

/// OpenSSL's reasons, without its internal file names.
fn reason(e: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = e
        .errors()
        .iter()
        .map(|e| e.reason().unwrap_or("unknown error").to_owned())
        .collect();
    if reasons.is_empty() {
        "unknown OpenSSL error".to_owned()
    } else {
        reasons.join("; ")
    }
}

fn read(option: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{option}: cannot read '{path}': {e}"))
}

fn build_context(tls: &TlsOptions, policy: &Arc<PolicyHandle>) -> Result<TlsContext, String> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| ssl_err("cannot create the TLS context", e))?;
    b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE | SslOptions::NO_RENEGOTIATION);

    let min = match tls.tls_version {
        None | Some(TlsVersion::Tls1_2) => SslVersion::TLS1_2,
        Some(TlsVersion::Tls1_1) => SslVersion::TLS1_1,
        Some(TlsVersion::Tls1_3) => SslVersion::TLS1_3,
    };
    b.set_min_proto_version(Some(min))
        .map_err(|e| ssl_err("tls_version", e))?;
    if let Some(ciphers) = &tls.ciphers {
        b.set_cipher_list(ciphers)
            .map_err(|e| ssl_err(&format!("ciphers '{ciphers}'"), e))?;
    } else if tls.psk_hint.is_some() {
        b.set_cipher_list(PSK_CIPHERS)
            .map_err(|e| ssl_err("PSK cipher list", e))?;
    }
    if let Some(suites) = &tls.ciphers_tls13 {
        b.set_ciphersuites(suites)
            .map_err(|e| ssl_err(&format!("ciphers_tls1.3 '{suites}'"), e))?;
    }
    if let Some(path) = &tls.dhparamfile {
        let pem = read("dhparamfile", path)?;
        let dh = Dh::params_from_pem(&pem)
            .map_err(|e| ssl_err(&format!("dhparamfile '{path}' is not PEM DH parameters"), e))?;
        b.set_tmp_dh(&dh)
            .map_err(|e| ssl_err(&format!("dhparamfile '{path}'"), e))?;
    }

    if has_certificate(tls) {
        load_certificate(&mut b, tls)?;
    }
    if let Some(hint) = &tls.psk_hint {
        enable_psk(&mut b, hint, policy)?;
    }

    // Client certificates.
    if let Some(path) = &tls.cafile {
        let pem = read("cafile", path)?;
        if X509::stack_from_pem(&pem).map_or(true, |v| v.is_empty()) {
            return Err(format!("cafile: '{path}' holds no PEM certificate"));
        }
    }
    if let Some(path) = &tls.capath {
        if !Path::new(path).is_dir() {
            return Err(format!("capath: '{path}' is not a readable directory"));
        }
    }
    if tls.cafile.is_some() || tls.capath.is_some() {
        b.load_verify_locations(
            tls.cafile.as_deref().map(Path::new),
            tls.capath.as_deref().map(Path::new),
        )
        .map_err(|e| ssl_err("cafile/capath", e))?;
    }
    if tls.require_certificate {
        if tls.cafile.is_none() && tls.capath.is_none() {
            return Err(
                "require_certificate: needs cafile or capath to verify client certificates"
                    .to_owned(),
            );
        }
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    let mut flags = X509VerifyFlags::empty();
    if let Some(path) = &tls.crlfile {
        let pem = read("crlfile", path)?;
        X509Crl::from_pem(&pem)
            .map_err(|e| ssl_err(&format!("crlfile '{path}' holds no PEM CRL"), e))?;
        let lookup = b
            .cert_store_mut()
            .add_lookup(X509Lookup::file())
            .map_err(|e| ssl_err("crlfile", e))?;
        lookup
            .load_crl_file(path, SslFiletype::PEM)
            .map_err(|e| ssl_err(&format!("crlfile '{path}'"), e))?;
        flags |= X509VerifyFlags::CRL_CHECK;
    }
    if tls.disable_client_cert_date_checks {
        flags |= X509VerifyFlags::NO_CHECK_TIME;
    }
    if !flags.is_empty() {
        b.cert_store_mut()
            .set_flags(flags)
            .map_err(|e| ssl_err("certificate store", e))?;
    }

    let username = if tls.use_identity_as_username {
        CertUsername::CommonName
    } else if tls.use_subject_as_username {
        CertUsername::Subject
    } else {
        CertUsername::None
    };
    Ok(TlsContext {
        acceptor: b.build(),
        username,
        psk: tls.psk_hint.is_some(),
    })
}

/// The certificate chain and key of a certificate TLS listener.
fn load_certificate(b: &mut SslContextBuilder, tls: &TlsOptions) -> Result<(), String> {
    let certfile = tls.certfile.as_deref().unwrap_or_default();
    let keyfile = tls.keyfile.as_deref().unwrap_or_default();
    let chain = read("certfile", certfile)?;
    let certs = X509::stack_from_pem(&chain).unwrap_or_default();
    if certs.is_empty() {
        return Err(format!("certfile: '{certfile}' holds no PEM certificate"));
    }
    b.set_certificate_chain_file(certfile)
        .map_err(|e| ssl_err(&format!("certfile '{certfile}'"), e))?;
    let key = read("keyfile", keyfile)?;
    let text = String::from_utf8_lossy(&key);
    if text.contains("ENCRYPTED") {
        return Err(format!(
            "keyfile: '{keyfile}' is encrypted; Midge cannot ask for its passphrase \
             (decrypt it with `openssl pkey -in {keyfile} -out plain.key`)"
        ));
    }
    let pkey = PKey::private_key_from_pem(&key).map_err(|e| {
        ssl_err(
            &format!("keyfile '{keyfile}' holds no usable PEM private key"),
            e,
        )
    })?;
    let mismatch = |e: openssl::error::ErrorStack| {
        format!(
            "keyfile: the key in '{keyfile}' does not match the certificate in '{certfile}' ({})",
            reason(&e)
        )
    };
    b.set_private_key(&pkey).map_err(mismatch)?;
    b.check_private_key().map_err(mismatch)?;
    Ok(())
}

/// The default TLS 1.2 cipher list of a PSK listener: the certificate suites of the
/// default (for a listener that has a certificate too) and every PSK suite (Mosquitto's
/// clients offer `PSK`). TLS 1.3 suites are set apart and include PSK-capable ones.
const PSK_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
     ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
     ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
     DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:PSK";

type Slot = openssl::ex_data::Index<Ssl, Result<String, String>>;

/// Where the PSK callback leaves the identity it accepted (for the username) or why it
/// refused one (for the log: OpenSSL's own reason is vague, as in TLS 1.3 an unknown
/// identity only means "no PSK").
fn identity_index() -> Result<Slot, String> {
    static INDEX: OnceLock<Result<Slot, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(|e| ssl_err("PSK identity slot", e)))
        .clone()
}

extern "C" {
    // In libssl, which openssl-sys links, but not declared by it.
    fn SSL_CTX_use_psk_identity_hint(
        ctx: *mut openssl_sys::SSL_CTX,
        hint: *const std::os::raw::c_char,
    ) -> std::os::raw::c_int;
}

/// Turns TLS-PSK on: the identity hint, the key lookup in the listener's current policy,
/// and no session resumption (a resumed session would skip the lookup after a reload).
fn enable_psk(
    b: &mut SslContextBuilder,
    hint: &str,
    policy: &Arc<PolicyHandle>,
) -> Result<(), String> {
    let c_hint = CString::new(hint).map_err(|_| "psk_hint: holds a NUL character".to_owned())?;
    // SAFETY: `b` owns a live SSL_CTX and OpenSSL copies the NUL-terminated hint.
    if unsafe { SSL_CTX_use_psk_identity_hint(b.as_ptr(), c_hint.as_ptr()) } != 1 {
        return Err(format!(
            "psk_hint: '{hint}' is refused by OpenSSL (at most 128 bytes)"
        ));
    }
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_options(SslOptions::NO_TICKET);
    b.set_num_tickets(0)
        .map_err(|e| ssl_err("TLS session tickets", e))?;
    let index = identity_index()?;
    let policy = Arc::clone(policy);
    b.set_psk_server_callback(move |ssl: &mut SslRef, identity, psk: &mut [u8]| {
        Ok(match psk_lookup(&policy, identity, psk) {
            Ok((id, len)) => {
                ssl.set_ex_data(index, Ok(id));
                len
            }
            Err(why) => {
                ssl.set_ex_data(index, Err(why));
                0
            }
        })
    });
    Ok(())
}

/// The key of `identity` copied into `out`: the identity and the key length, or why the
/// handshake must fail (an unknown, non-UTF-8 or control-character identity).
fn psk_lookup(
    policy: &PolicyHandle,
    identity: Option<&[u8]>,
    out: &mut [u8],
) -> Result<(String, usize), String> {
    let raw = identity.ok_or("no PSK identity")?;
    let shown = String::from_utf8_lossy(raw).escape_debug().to_string();
    let identity = std::str::from_utf8(raw)
        .map_err(|_| format!("PSK identity '{shown}' is not valid UTF-8"))?;
    if identity.chars().any(char::is_control) {
        return Err(format!("PSK identity '{shown}' holds a control character"));
    }
    policy.with(|p| {
        let key = p
            .psks
            .as_ref()
            .and_then(|f| f.key(identity))
            .ok_or_else(|| format!("unknown PSK identity '{shown}'"))?;
        let dest = out
            .get_mut(..key.len())
            .ok_or_else(|| format!("the key of PSK identity '{shown}' is too long"))?;
        dest.copy_from_slice(key);
        Ok((identity.to_owned(), key.len()))
    })
}

/// What the handshake yields: the stream, and the certificate's username when the listener
/// takes it from there (`Err` = the client must be refused, with why).
pub struct Accepted<S> {
    pub stream: SslStream<S>,
    pub username: Option<Result<String, &'static str>>,
}

/// Runs the server handshake within `timeout`. The error is OpenSSL's reason, for the log.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Arc<TlsContext>,
    io: S,
    timeout: Duration,
) -> Result<Accepted<S>, String> {
    let ssl = Ssl::new(ctx.acceptor.context()).map_err(|e| reason(&e))?;
    let mut stream = SslStream::new(ssl, io).map_err(|e| reason(&e))?;
    match tokio::time::timeout(timeout, Pin::new(&mut stream).accept()).await {
        Err(_) => return Err("handshake timed out".to_owned()),
        Ok(Err(e)) => return Err(handshake_reason(&stream, &e)),
        Ok(Ok(())) => {}
    }
    let username = match ctx.username {
        CertUsername::None => None,
        _ if ctx.psk => Some(psk_username(&stream)),
        mode => Some(cert_username(&stream, mode)),
    };
    Ok(Accepted { stream, username })
}

fn handshake_reason<S>(stream: &SslStream<S>, e: &openssl::ssl::Error) -> String {
    let verify = stream.ssl().verify_result();
    let mut why = match e.ssl_error() {
        Some(stack) => reason(stack),
        None => match e.io_error() {
            Some(io) => io.to_string(),
            None => "connection closed during the handshake".to_owned(),
        },
    };
    if verify != openssl::x509::X509VerifyResult::OK {
        why = format!("{why} ({})", verify.error_string());
    }
    let refused = identity_index()
        .ok()
        .and_then(|index| stream.ssl().ex_data(index));
    if let Some(Err(psk)) = refused {
        why = format!("{psk} ({why})");
    }
    why
}

/// On a PSK listener with `use_identity_as_username`: the identity the callback accepted.
fn psk_username<S>(stream: &SslStream<S>) -> Result<String, &'static str> {
    identity_index()
        .ok()
        .and_then(|index| stream.ssl().ex_data(index).cloned())
        .and_then(Result::ok)
        .ok_or("the client did not use a pre-shared key")
}

fn cert_username<S>(stream: &SslStream<S>, mode: CertUsername) -> Result<String, &'static str> {
    let cert = stream
        .ssl()
        .peer_certificate()
        .ok_or("no client certificate")?;
    let name = cert.subject_name();
    match mode {
        CertUsername::CommonName => {
            let entry = name
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .ok_or("client certificate has no common name")?;
            let bytes = entry.data().as_slice();
            if bytes.contains(&0) {
                return Err("client certificate common name holds a NUL character");
            }
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| "client certificate common name is not valid UTF-8")
        }
        _ => subject_rfc2253(name),
    }
}

/// The subject as OpenSSL's `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it, which is
/// what Mosquitto uses: last RDN first, `SN=value` joined by `,`, RFC 2253 escapes, bytes
/// above 0x7F of the UTF-8 value as `\XX`. (Multi-valued RDNs are printed as separate
/// ones, joined by `,` rather than `+`.)
/// A client context's TLS-PSK set-up, as libmosquitto's: `identity` and `key` are sent
/// whatever hint the server gives; PSK cipher suites unless `own_ciphers` (the caller set
/// some); TLS 1.2 at most (1.3 would need the key as a session, and Mosquitto's PSK
/// listeners speak 1.2); no certificate check, the key is the authentication. For the
/// bridges' `bridge_identity`/`bridge_psk` and `midge ctrl --psk`.
pub fn client_psk(
    b: &mut openssl::ssl::SslConnectorBuilder,
    identity: &str,
    key: Vec<u8>,
    own_ciphers: bool,
) -> Result<(), openssl::error::ErrorStack> {
    b.set_verify(SslVerifyMode::NONE);
    if !own_ciphers {
        b.set_cipher_list("PSK")?;
    }
    b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
    let identity = identity.as_bytes().to_vec();
    b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
        if identity.len() + 1 > id_out.len() || key.len() > key_out.len() {
            return Ok(0);
        }
        id_out[..identity.len()].copy_from_slice(&identity);
        id_out[identity.len()] = 0;
        key_out[..key.len()].copy_from_slice(&key);
        Ok(key.len())
    });
    Ok(())
}

/// A PSK given in hexadecimal (pairs of digits, no `0x`); `None` otherwise.
pub fn psk_from_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn subject_rfc2253(name: &X509NameRef) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    for entry in name.entries() {
        let nid = entry.object().nid();
        let field = match nid.short_name() {
            Ok(sn) if nid != openssl::nid::Nid::UNDEF => sn.to_owned(),
            _ => entry.object().to_string(),
        };
        let value = entry
            .data()
            .to_string()
            .map_err(|_| "client certificate subject cannot be converted to UTF-8")?;
        parts.push(format!("{field}={}", escape_2253(value.as_bytes())));
    }
    parts.reverse();
    Ok(parts.join(","))
}

fn escape_2253(value: &[u8]) -> String {
    let mut out = String::new();
    let last = value.len().saturating_sub(1);
    for (i, &c) in value.iter().enumerate() {
        match c {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(c as char);
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{c:02X}")),
            _ => out.push(c as char),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape_2253, psk_from_hex};

    #[test]
    fn psk_keys_are_pairs_of_hex_digits() {
        assert_eq!(psk_from_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(psk_from_hex("0"), None);
        assert_eq!(psk_from_hex("zz"), None);
        assert_eq!(psk_from_hex(""), None);
    }

    #[test]
    fn escapes_like_openssl() {
        assert_eq!(escape_2253(b"test client"), "test client");
        assert_eq!(escape_2253(b"a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_2253(b" x "), "\\ x\\ ");
        assert_eq!(escape_2253("é".as_bytes()), "\\C3\\A9");
        assert_eq!(escape_2253(b"#1#"), "\\#1#");
    }
}
