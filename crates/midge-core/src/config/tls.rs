//! Certificate and pre-shared-key TLS options of a listener (issue 5). Their values are
//! checked and kept now, so issue 5 only has to switch them on in the option table.

use super::line::Line;
use super::value;
use super::Parser;

/// The TLS options of one listener. TLS is on when `certfile` and `keyfile` are set
/// (certificates) or `psk_hint` is (PSK). Certificate options after `psk_hint` are refused,
/// as in Mosquitto; `psk_hint` after them gives a listener that takes both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `cafile`: PEM CA certificates trusted for client certificates.
    pub cafile: Option<String>,
    /// `capath`: directory of hashed CA certificates.
    pub capath: Option<String>,
    /// `certfile`: the server certificate chain (PEM).
    pub certfile: Option<String>,
    /// `keyfile`: the server private key (PEM, or an engine key with `tls_keyform engine`).
    pub keyfile: Option<String>,
    /// `crlfile`: PEM certificate revocation list for client certificates.
    pub crlfile: Option<String>,
    /// `dhparamfile`: DH parameters for DHE cipher suites.
    pub dhparamfile: Option<String>,
    /// `ciphers`: OpenSSL cipher list for TLS 1.2 and earlier (and PSK).
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`: TLS 1.3 cipher suites.
    pub ciphers_tls13: Option<String>,
    /// `tls_version`: the *minimum* protocol version; `None` = TLS 1.2 and 1.3.
    pub tls_version: Option<TlsVersion>,
    /// `require_certificate` (default false): clients must present a valid certificate.
    pub require_certificate: bool,
    /// `use_identity_as_username`: the certificate CN (or PSK identity) is the username.
    pub use_identity_as_username: bool,
    /// `use_subject_as_username`: the certificate subject is the username.
    pub use_subject_as_username: bool,
    /// `tls_engine`: OpenSSL engine id.
    pub tls_engine: Option<String>,
    /// `tls_keyform` (default `pem`).
    pub tls_keyform: KeyForm,
    /// `tls_engine_kpass_sha1`: hex SHA-1 of the engine key password (40 hex digits).
    pub tls_engine_kpass_sha1: Option<String>,
    /// `disable_client_cert_date_checks` (2.1): accept expired or not-yet-valid client
    /// certificates.
    pub disable_client_cert_date_checks: bool,
    /// `psk_hint`: enables TLS-PSK on the listener and is sent to clients.
    pub psk_hint: Option<String>,
}

/// `tls_version` / `bridge_tls_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls1_1,
    Tls1_2,
    Tls1_3,
}

/// `tls_keyform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyForm {
    #[default]
    Pem,
    Engine,
}

/// Parses `tlsv1.3`, `tlsv1.2` or `tlsv1.1`, the values the man page lists (Mosquitto
/// itself only finds out when it builds the TLS context).
pub(crate) fn tls_version_value(line: &Line<'_>) -> Result<TlsVersion, String> {
    value::one_of(
        line.single()?,
        &[
            ("tlsv1.3", TlsVersion::Tls1_3),
            ("tlsv1.2", TlsVersion::Tls1_2),
            ("tlsv1.1", TlsVersion::Tls1_1),
        ],
    )
    .map_err(|reason| line.invalid(reason))
}

/// A string option of the listener's TLS settings; a second one is an error, as in
/// Mosquitto.
fn tls_string(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
    name: &'static str,
    field: fn(&mut TlsOptions) -> &mut Option<String>,
) -> Result<String, String> {
    let text = parser.string(line)?;
    parser.once(parser.listener_target(), line, name)?;
    *field(&mut parser.listener_mut().tls) = Some(text.clone());
    Ok(text)
}

/// Mosquitto refuses certificate options on a listener that already has `psk_hint`.
fn no_psk(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    if parser.listener_mut().tls.psk_hint.is_some() {
        return Err(line.invalid(
            "cannot use both certificate and PSK encryption on one listener (psk_hint is set)",
        ));
    }
    Ok(())
}

pub(crate) fn cafile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    no_psk(parser, line)?;
    tls_string(parser, line, "cafile", |t| &mut t.cafile).map(drop)
}

pub(crate) fn capath(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "capath", |t| &mut t.capath).map(drop)
}

pub(crate) fn certfile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    no_psk(parser, line)?;
    tls_string(parser, line, "certfile", |t| &mut t.certfile).map(drop)
}

pub(crate) fn keyfile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "keyfile", |t| &mut t.keyfile).map(drop)
}

pub(crate) fn crlfile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "crlfile", |t| &mut t.crlfile).map(drop)
}

pub(crate) fn dhparamfile(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "dhparamfile", |t| &mut t.dhparamfile).map(drop)
}

pub(crate) fn ciphers(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "ciphers", |t| &mut t.ciphers).map(drop)
}

pub(crate) fn ciphers_tls13(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "ciphers_tls1.3", |t| &mut t.ciphers_tls13).map(drop)
}

/// Why OpenSSL engines are refused. OpenSSL 3 deprecates the ENGINE interface in favour of
/// providers and the Rust OpenSSL bindings do not expose it, so a key held by an engine
/// cannot be used; saying so at start-up beats a listener that silently has no key.
const NO_ENGINES: &str = "OpenSSL engines are not supported (the ENGINE interface is \
    deprecated in OpenSSL 3); use a PEM key file with keyfile and tls_keyform pem";

pub(crate) fn tls_engine(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "tls_engine", |t| &mut t.tls_engine)?;
    Err(format!("tls_engine: {NO_ENGINES}"))
}

pub(crate) fn psk_hint(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    tls_string(parser, line, "psk_hint", |t| &mut t.psk_hint).map(drop)
}

pub(crate) fn tls_version(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let version = tls_version_value(line)?;
    parser.once(parser.listener_target(), line, "tls_version")?;
    parser.listener_mut().tls.tls_version = Some(version);
    Ok(())
}

/// `tls_keyform pem|engine`: Mosquitto reads anything but `engine` as `pem`; Midge
/// refuses other words.
pub(crate) fn tls_keyform(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let form = value::one_of(
        line.single()?,
        &[("pem", KeyForm::Pem), ("engine", KeyForm::Engine)],
    )
    .map_err(|reason| line.invalid(reason))?;
    if form == KeyForm::Engine {
        return Err(format!("tls_keyform engine: {NO_ENGINES}"));
    }
    parser.listener_mut().tls.tls_keyform = form;
    Ok(())
}

/// Length of a SHA-1 sum in hex digits.
const SHA1_HEX_LEN: usize = 40;

pub(crate) fn tls_engine_kpass_sha1(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let text = line.single()?;
    if text.len() != SHA1_HEX_LEN || !value::is_hex(text) {
        return Err(line.invalid(format!(
            "invalid value '{}' (expected a SHA-1 sum: {SHA1_HEX_LEN} hexadecimal digits)",
            text.escape_debug()
        )));
    }
    parser.once(parser.listener_target(), line, "tls_engine_kpass_sha1")?;
    parser.listener_mut().tls.tls_engine_kpass_sha1 = Some(text.to_ascii_lowercase());
    // Mosquitto reads it only for a key held by an engine; without `tls_engine` (which is
    // refused) it changes nothing, so a configuration carrying it still starts.
    parser.warn(
        line,
        "tls_engine_kpass_sha1 is ignored: it only applies to keys held by an OpenSSL engine",
    );
    Ok(())
}

pub(crate) fn require_certificate(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.listener_mut().tls.require_certificate = line.bool()?;
    Ok(())
}

pub(crate) fn use_identity_as_username(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.listener_mut().tls.use_identity_as_username = line.bool()?;
    Ok(())
}

pub(crate) fn use_subject_as_username(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.listener_mut().tls.use_subject_as_username = line.bool()?;
    Ok(())
}

/// 2.1: needs a listener, as in Mosquitto.
pub(crate) fn disable_client_cert_date_checks(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    parser.require_listener(line)?;
    parser.listener_mut().tls.disable_client_cert_date_checks = line.bool()?;
    Ok(())
}

/// After parsing: a certificate without its key (or the reverse) cannot serve TLS; since
/// 2.0.21 Mosquitto refuses to start then, so does Midge. Returns the option that is there
/// and the message.
pub(crate) fn check(tls: &TlsOptions) -> Result<(), (&'static str, String)> {
    match (&tls.certfile, &tls.keyfile) {
        (Some(_), None) => Err((
            "certfile",
            "certfile: keyfile is missing (both are needed for TLS)".to_owned(),
        )),
        (None, Some(_)) => Err((
            "keyfile",
            "keyfile: certfile is missing (both are needed for TLS)".to_owned(),
        )),
        _ => Ok(()),
    }
}
