//! Mosquitto's `psk_file`: one `identity:hexkey` line per TLS-PSK client.
//!
//! Pure: the file arrives as text. The server looks identities up during the TLS
//! handshake.

use std::collections::HashMap;
use std::fmt;

/// Longest identity OpenSSL accepts from a client (`PSK_MAX_IDENTITY_LEN`).
pub const MAX_IDENTITY_LEN: usize = 128;

/// Longest key OpenSSL 3 hands the server callback room for (`PSK_MAX_PSK_LEN`).
pub const MAX_KEY_LEN: usize = 512;

/// A PSK file that parsed without a single bad line.
///
/// Line rules (Mosquitto's `security_default.c`): a line starting with `#` is a comment and
/// blank lines are skipped; otherwise the identity is everything before the first `:` and
/// the key everything after it, both with surrounding blanks removed; a trailing `\r` is
/// ignored. The key is hexadecimal without `0x`; an odd number of digits is read as if it
/// had a leading `0`, and leading `00` pairs are kept as zero bytes, as Mosquitto's
/// `mosquitto__hex2bin` does.
///
/// **Fail closed.** A line without `:`, an empty identity, an identity with control
/// characters or longer than 128 bytes, an identity that appears twice, or a key that is
/// empty, not hexadecimal or longer than 512 bytes makes [`PskFile::parse`] refuse the
/// *whole* file with `file:line: reason`. Mosquitto skips bad lines instead, which quietly
/// changes who may connect.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PskFile {
    /// Identities in file order (for `Debug`).
    identities: Vec<String>,
    keys: HashMap<String, Vec<u8>>,
}

/// Why a PSK file was refused: displays as `file:line: reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PskFileError {
    /// The file name given to [`PskFile::parse`].
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line (never the key itself).
    pub reason: String,
}

impl PskFile {
    /// Parses the text of a PSK file. `file_name` is only used in error messages.
    pub fn parse(text: &str, file_name: &str) -> Result<PskFile, PskFileError> {
        let mut identities = Vec::new();
        let mut keys = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let err = |reason: String| PskFileError {
                file: file_name.to_string(),
                line: number,
                reason,
            };
            let line = line.trim_ascii();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((identity, key)) = line.split_once(':') else {
                return Err(err("expected identity:hexkey".to_owned()));
            };
            let identity = identity.trim_ascii();
            let key = key.trim_ascii();
            check_identity(identity).map_err(&err)?;
            if let Some(first) = first_line.get(identity) {
                return Err(err(format!(
                    "identity '{identity}' appears twice (first on line {first})"
                )));
            }
            let key =
                decode_hex(key).map_err(|why| err(format!("identity '{identity}': {why}")))?;
            first_line.insert(identity.to_owned(), number);
            identities.push(identity.to_owned());
            keys.insert(identity.to_owned(), key);
        }
        Ok(PskFile { identities, keys })
    }

    /// The key of `identity`, if the file has it.
    pub fn key(&self, identity: &str) -> Option<&[u8]> {
        self.keys.get(identity).map(Vec::as_slice)
    }

    /// Number of identities.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    /// No identities at all (every PSK handshake fails).
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Identities in file order.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.identities.iter().map(String::as_str)
    }
}

impl fmt::Debug for PskFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identities only: the keys are the secrets.
        f.debug_struct("PskFile")
            .field("identities", &self.identities)
            .finish_non_exhaustive()
    }
}

fn check_identity(identity: &str) -> Result<(), String> {
    if identity.is_empty() {
        return Err("empty identity".to_owned());
    }
    if identity.chars().any(char::is_control) {
        return Err(format!(
            "identity '{}' contains a control character",
            identity.escape_debug()
        ));
    }
    if identity.len() > MAX_IDENTITY_LEN {
        return Err(format!(
            "identity is longer than {MAX_IDENTITY_LEN} bytes (OpenSSL's limit)"
        ));
    }
    Ok(())
}

/// Hex digits to bytes, as Mosquitto's `mosquitto__hex2bin`.
fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if hex.is_empty() {
        return Err("empty key".to_owned());
    }
    if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "the key must be hexadecimal without 0x (found '{}')",
            bad.escape_debug()
        ));
    }
    let digits = hex.as_bytes();
    let padded: Vec<u8> = if digits.len() % 2 == 1 {
        std::iter::once(b'0')
            .chain(digits.iter().copied())
            .collect()
    } else {
        digits.to_vec()
    };
    let nibble = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    let key: Vec<u8> = padded
        .chunks(2)
        .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1]))
        .collect();
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "the key is longer than {MAX_KEY_LEN} bytes (OpenSSL's limit)"
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        PskFile::parse(text, "psk.txt").unwrap_err().to_string()
    }

    #[test]
    fn parses_identities_and_keys() {
        let f = PskFile::parse(
            "# devices\n\nsensor-1:00ff10\r\n  gateway : DEADbeef \nodd:abc\n",
            "psk.txt",
        )
        .unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f.key("sensor-1"), Some(&[0x00, 0xff, 0x10][..]));
        assert_eq!(f.key("gateway"), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
        assert_eq!(f.key("odd"), Some(&[0x0a, 0xbc][..]));
        assert_eq!(f.key("nobody"), None);
        assert_eq!(
            f.identities().collect::<Vec<_>>(),
            ["sensor-1", "gateway", "odd"]
        );
    }

    #[test]
    fn leading_zero_bytes_are_kept() {
        let f = PskFile::parse("a:0000ff\nb:000abc\n", "p").unwrap();
        assert_eq!(f.key("a"), Some(&[0, 0, 0xff][..]));
        assert_eq!(f.key("b"), Some(&[0, 0x0a, 0xbc][..]));
    }

    #[test]
    fn identity_may_hold_spaces_and_unicode() {
        let f = PskFile::parse("living room é:01\n", "p").unwrap();
        assert_eq!(f.key("living room é"), Some(&[1][..]));
    }

    #[test]
    fn empty_file_has_no_identities() {
        let f = PskFile::parse("# nothing\n\n", "p").unwrap();
        assert!(f.is_empty());
    }

    #[test]
    fn bad_lines_refuse_the_whole_file() {
        assert_eq!(
            err("a:00\nb:0xff\n"),
            "psk.txt:2: identity 'b': the key must be hexadecimal without 0x (found 'x')"
        );
        assert_eq!(
            err("a:zz"),
            "psk.txt:1: identity 'a': the key must be hexadecimal without 0x (found 'z')"
        );
        assert_eq!(err("a:"), "psk.txt:1: identity 'a': empty key");
        assert_eq!(
            err("a:00:11"),
            "psk.txt:1: identity 'a': the key must be hexadecimal without 0x (found ':')"
        );
        assert_eq!(err(":00"), "psk.txt:1: empty identity");
        assert_eq!(
            err("just-an-identity"),
            "psk.txt:1: expected identity:hexkey"
        );
        assert_eq!(
            err("a:00\n#\na:11\n"),
            "psk.txt:3: identity 'a' appears twice (first on line 1)"
        );
        assert_eq!(
            err("a\u{1}b:00"),
            "psk.txt:1: identity 'a\\u{1}b' contains a control character"
        );
        assert_eq!(
            err(&format!("{}:00", "x".repeat(129))),
            "psk.txt:1: identity is longer than 128 bytes (OpenSSL's limit)"
        );
        assert_eq!(
            err(&format!("a:{}", "ab".repeat(513))),
            "psk.txt:1: identity 'a': the key is longer than 512 bytes (OpenSSL's limit)"
        );
    }

    #[test]
    fn debug_never_shows_keys() {
        let f = PskFile::parse("dev:c0ffee1234\n", "p").unwrap();
        let shown = format!("{f:?}");
        assert!(shown.contains("dev"), "{shown}");
        assert!(!shown.to_lowercase().contains("c0ffee"), "{shown}");
        assert!(!shown.contains("192"), "{shown}"); // 0xc0 as decimal
    }
}
