//! Parsers for option values. Each returns the bare reason on failure; the caller prefixes
//! the option name, file and line.

use std::fmt::Display;
use std::ops::RangeInclusive;

/// A boolean as Mosquitto reads it: `true`/`false`, or `1`/`0`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!(
            "invalid value '{}' (expected true or false)",
            text.escape_debug()
        )),
    }
}

/// A decimal integer with an optional sign. Unlike Mosquitto's `atoi`, trailing garbage is
/// an error rather than silently ignored.
pub(crate) fn parse_integer(text: &str) -> Result<i64, String> {
    check_integer_syntax(text)?;
    text.parse::<i64>()
        .map_err(|_| format!("value {text} out of range"))
}

/// An integer that must lie in `range`, converted to the option's type.
pub(crate) fn parse_in_range<T>(text: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: TryFrom<i128> + Into<i128> + Copy + Display,
{
    check_integer_syntax(text)?;
    let value = text
        .parse::<i128>()
        .map_err(|_| out_of_range(text, &range))?;
    if value < (*range.start()).into() || value > (*range.end()).into() {
        return Err(out_of_range(text, &range));
    }
    T::try_from(value).map_err(|_| out_of_range(text, &range))
}

fn check_integer_syntax(text: &str) -> Result<(), String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{}' is not an integer", text.escape_debug()));
    }
    Ok(())
}

fn out_of_range<T: Display>(text: &str, range: &RangeInclusive<T>) -> String {
    format!(
        "value {} out of range {}..={}",
        text.strip_prefix('+').unwrap_or(text),
        range.start(),
        range.end()
    )
}

/// One of a fixed set of words (`socket_domain ipv4`), matched exactly as Mosquitto does.
pub(crate) fn one_of<T: Clone>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, value)) = choices.iter().find(|(word, _)| *word == text) {
        return Ok(value.clone());
    }
    let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
    let expected = match words.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(format!(
        "invalid value '{}' (expected {expected})",
        text.escape_debug()
    ))
}

/// Whether `text` is a non-empty string of hexadecimal digits (PSK keys, SHA-1 sums).
pub(crate) fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A byte count: a non-negative integer (Mosquitto has no unit suffixes for sizes).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    parse_in_range(text, 0..=u64::MAX)
}

/// A duration in Mosquitto's `persistent_client_expiration` form: a positive integer
/// followed by a unit, `s` (2.1), `h`, `d`, `w`, `m` (30 days) or `y` (365 days). Returns
/// seconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid duration '{}' (expected a number followed by s, h, d, w, m or y)",
            text.escape_debug()
        )
    };
    let mut chars = text.chars();
    let unit = chars.next_back().ok_or_else(invalid)?;
    let multiplier: u64 = match unit {
        's' => 1,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'm' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => return Err(invalid()),
    };
    let number = chars.as_str();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: u64 = number.parse().map_err(|_| invalid())?;
    if count == 0 {
        return Err(format!(
            "duration '{}' must be positive",
            text.escape_debug()
        ));
    }
    count
        .checked_mul(multiplier)
        .ok_or_else(|| format!("duration '{}' is too long", text.escape_debug()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("false"), Ok(false));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(
            parse_bool("yes"),
            Err("invalid value 'yes' (expected true or false)".into())
        );
        assert!(parse_bool("True").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(parse_integer("42"), Ok(42));
        assert_eq!(parse_integer("-1"), Ok(-1));
        assert_eq!(parse_integer("+7"), Ok(7));
        assert_eq!(
            parse_integer("12abc"),
            Err("'12abc' is not an integer".into())
        );
        assert_eq!(parse_integer(""), Err("'' is not an integer".into()));
        assert_eq!(parse_integer("-"), Err("'-' is not an integer".into()));
        assert!(parse_integer("99999999999999999999").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_in_range::<u16>("65535", 0..=65535), Ok(65535));
        assert_eq!(
            parse_in_range::<u16>("70000", 0..=65535),
            Err("value 70000 out of range 0..=65535".into())
        );
        assert_eq!(
            parse_in_range::<u8>("-1", 0..=2),
            Err("value -1 out of range 0..=2".into())
        );
        assert_eq!(
            parse_in_range::<u32>("99999999999999999999", 20..=u32::MAX),
            Err("value 99999999999999999999 out of range 20..=4294967295".into())
        );
        assert_eq!(
            parse_in_range::<u8>("x", 0..=2),
            Err("'x' is not an integer".into())
        );
    }

    #[test]
    fn words_from_a_set() {
        let choices = [("ipv4", 4), ("ipv6", 6)];
        assert_eq!(one_of("ipv6", &choices), Ok(6));
        assert_eq!(
            one_of("ipv5", &choices),
            Err("invalid value 'ipv5' (expected ipv4 or ipv6)".into())
        );
        assert_eq!(
            one_of("x", &[("a", 1), ("b", 2), ("c", 3)]),
            Err("invalid value 'x' (expected a, b or c)".into())
        );
        assert!(one_of("IPV4", &choices).is_err(), "case sensitive");
    }

    #[test]
    fn hex() {
        assert!(is_hex("00ffAB"));
        assert!(!is_hex(""));
        assert!(!is_hex("0x12"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert!(parse_size("1k").is_err());
        assert!(parse_size("-5").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        assert_eq!(parse_duration("1m"), Ok(2_592_000));
        assert_eq!(parse_duration("1y"), Ok(31_536_000));
        assert_eq!(
            parse_duration("14"),
            Err("invalid duration '14' (expected a number followed by s, h, d, w, m or y)".into())
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            parse_duration("0d"),
            Err("duration '0d' must be positive".into())
        );
        assert!(parse_duration("99999999999999999999y").is_err());
        assert!(parse_duration("18446744073709551615y").is_err());
    }
}
