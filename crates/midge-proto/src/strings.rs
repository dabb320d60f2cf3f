//! Character rules for MQTT's UTF-8 Encoded Strings.
//!
//! Every string must be well-formed UTF-8 without U+0000 (MQTT 5 section 1.5.4). Topic names
//! and filters are held to Mosquitto's stricter rule as well, so that a topic it would refuse
//! is refused here too: no control characters and no non-characters.

use crate::error::DecodeError;

/// Checks an MQTT UTF-8 string. `from_utf8` already refuses surrogates and overlong forms
/// ([MQTT-1.5.4-1]); U+0000 is forbidden on top ([MQTT-1.5.4-2]).
#[inline]
pub fn check_str(bytes: &[u8]) -> Result<&str, DecodeError> {
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    if bytes.contains(&0) {
        return Err(DecodeError::DisallowedCodePoint);
    }
    Ok(s)
}

/// Whether `s` may be sent as an MQTT UTF-8 string (no U+0000).
#[inline]
pub fn valid_str(s: &str) -> bool {
    !s.as_bytes().contains(&0)
}

/// Whether every character of `s` may appear in a topic name or filter, and no ASCII byte is
/// one of `forbidden` (the wildcards, for topic names).
///
/// Topics are almost always ASCII, so the loop looks at bytes and only decodes characters once
/// it meets the first byte of a multi-byte sequence. ASCII bytes never occur inside such a
/// sequence, which is what lets the wildcard test stay byte-wise throughout.
#[inline]
pub(crate) fn topic_chars_ok(s: &str, forbidden: &[u8]) -> bool {
    let bytes = s.as_bytes();
    let mut first_non_ascii = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x80 {
            if first_non_ascii.is_none() {
                first_non_ascii = Some(i);
            }
        } else if b < 0x20 || b == 0x7F || forbidden.contains(&b) {
            return false;
        }
    }
    match first_non_ascii {
        None => true,
        // Everything before `i` is ASCII, so `i` is a character boundary.
        Some(i) => s
            .get(i..)
            .is_some_and(|rest| rest.chars().all(topic_char_ok)),
    }
}

/// Mosquitto's `mosquitto_validate_utf8` rule for one character.
#[inline]
fn topic_char_ok(c: char) -> bool {
    let cp = u32::from(c);
    let control = cp <= 0x1F || (0x7F..=0x9F).contains(&cp);
    let non_character = (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE;
    !control && !non_character
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_strings_pass() {
        assert_eq!(check_str(b""), Ok(""));
        assert_eq!(check_str("a/b é 漢字 🦀".as_bytes()), Ok("a/b é 漢字 🦀"));
    }

    // [MQTT-1.5.4-1] ill-formed UTF-8, including encoded surrogates and overlong forms.
    #[test]
    fn mqtt_1_5_4_1_ill_formed_utf8_is_malformed() {
        for bad in [
            &[0xFF][..],
            &[0xC3],             // truncated two-byte sequence
            &[0xED, 0xA0, 0x80], // U+D800, a surrogate
            &[0xC0, 0xAF],       // overlong '/'
            &[0xF4, 0x90, 0x80, 0x80],
        ] {
            let err = check_str(bad).unwrap_err();
            assert_eq!(err, DecodeError::InvalidUtf8);
            assert_eq!(err.reason_code(), 0x81);
        }
    }

    // [MQTT-1.5.4-2] U+0000 must not appear.
    #[test]
    fn mqtt_1_5_4_2_null_character_is_malformed() {
        let err = check_str(b"a\0b").unwrap_err();
        assert_eq!(err, DecodeError::DisallowedCodePoint);
        assert_eq!(err.reason_code(), 0x81);
        assert!(!valid_str("a\0"));
        assert!(valid_str("a"));
    }

    #[test]
    fn topic_characters_follow_mosquitto() {
        assert!(topic_chars_ok("sensors/é/漢字/🦀", b""));
        for bad in [
            "a\u{1}",
            "a\u{1F}",
            "a\u{7F}",
            "a\u{80}",
            "é\u{9F}",
            "\u{FDD0}",
            "\u{FDEF}",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{1FFFE}",
            "\u{10FFFF}",
            "é\u{0}",
        ] {
            assert!(!topic_chars_ok(bad, b""), "{bad:?}");
        }
        for ok in [
            "\u{A0}",
            "\u{FDCF}",
            "\u{FDF0}",
            "\u{FFFD}",
            "\u{10000}",
            " ~",
        ] {
            assert!(topic_chars_ok(ok, b""), "{ok:?}");
        }
        assert!(!topic_chars_ok("é/a+", b"+#"));
    }
}
