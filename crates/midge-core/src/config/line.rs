//! One option line of a configuration file, split into the option name and its values.

use std::fmt::Display;
use std::ops::RangeInclusive;

use super::value;

/// An option line: `name value...`. Accessors return errors already prefixed with the
/// option name (`max_keepalive: missing value`); the parser adds `file:line: `.
pub(crate) struct Line<'a> {
    /// 1-based line number, for errors and for remembering where a listener was defined.
    pub(crate) number: usize,
    /// The option name, the first word.
    pub(crate) name: &'a str,
    /// Everything after the name, with surrounding whitespace removed.
    pub(crate) rest: &'a str,
}

impl<'a> Line<'a> {
    /// Splits `text` (one line without its newline); `None` for a blank line or a comment,
    /// whose first non-blank character is `#`.
    pub(crate) fn parse(number: usize, text: &'a str) -> Option<Line<'a>> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        Some(Line {
            number,
            name,
            rest: rest.trim_start(),
        })
    }

    /// The whitespace-separated values, up to a word starting with `#`: Mosquitto reads only
    /// the words an option needs, so `max_keepalive 60 # one minute` works there and must
    /// here; any other extra word is an error.
    pub(crate) fn values(&self) -> impl Iterator<Item = &'a str> {
        self.rest
            .split_whitespace()
            .take_while(|word| !word.starts_with('#'))
    }

    /// Every whitespace-separated word after the name, `#` words included: for options
    /// whose values may themselves start with `#` (a bridge `topic #`).
    pub(crate) fn words(&self) -> impl Iterator<Item = &'a str> {
        self.rest.split_whitespace()
    }

    /// The first word and the rest of the line after it (trimmed), for options such as
    /// `log_dest file <path with spaces>` and `plugin_load <name> <path>`.
    pub(crate) fn first_and_rest(&self) -> Result<(&'a str, &'a str), String> {
        if self.rest.is_empty() {
            return Err(self.missing());
        }
        let (first, rest) = self
            .rest
            .split_once(char::is_whitespace)
            .unwrap_or((self.rest, ""));
        Ok((first, rest.trim()))
    }

    /// The option's only value.
    pub(crate) fn single(&self) -> Result<&'a str, String> {
        let mut values = self.values();
        let value = values.next().ok_or_else(|| self.missing())?;
        self.no_more(values)?;
        Ok(value)
    }

    /// The rest of the line as one value, spaces included, as Mosquitto reads string
    /// options (paths, prefixes, formats). Mosquitto refuses strings longer than 65535
    /// bytes.
    pub(crate) fn rest_of_line(&self) -> Result<&'a str, String> {
        if self.rest.is_empty() {
            return Err(self.missing());
        }
        if self.rest.len() > usize::from(u16::MAX) {
            return Err(self.invalid("value longer than 65535 bytes"));
        }
        Ok(self.rest)
    }

    pub(crate) fn bool(&self) -> Result<bool, String> {
        value::parse_bool(self.single()?).map_err(|reason| self.invalid(reason))
    }

    /// A signed integer, for options where Mosquitto gives negative values a meaning.
    pub(crate) fn integer(&self) -> Result<i64, String> {
        value::parse_integer(self.single()?).map_err(|reason| self.invalid(reason))
    }

    pub(crate) fn integer_in<T>(&self, range: RangeInclusive<T>) -> Result<T, String>
    where
        T: TryFrom<i128> + Into<i128> + Copy + Display,
    {
        value::parse_in_range(self.single()?, range).map_err(|reason| self.invalid(reason))
    }

    /// Fails if `values` has anything left.
    pub(crate) fn no_more(&self, mut values: impl Iterator<Item = &'a str>) -> Result<(), String> {
        match values.next() {
            None => Ok(()),
            Some(extra) => {
                Err(self.invalid(format!("unexpected extra value '{}'", extra.escape_debug())))
            }
        }
    }

    /// `<name>: <reason>`.
    pub(crate) fn invalid(&self, reason: impl Display) -> String {
        format!("{}: {}", self.name, reason)
    }

    pub(crate) fn missing(&self) -> String {
        self.invalid("missing value")
    }
}

#[cfg(test)]
mod tests {
    use super::Line;

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        assert!(Line::parse(1, "").is_none());
        assert!(Line::parse(1, "   \t ").is_none());
        assert!(Line::parse(1, "# listener 1883").is_none());
        assert!(Line::parse(1, "   # indented comment").is_none());
    }

    #[test]
    fn name_and_values() {
        let line = Line::parse(3, "  listener\t1883   127.0.0.1  \r").expect("an option line");
        assert_eq!(line.number, 3);
        assert_eq!(line.name, "listener");
        assert_eq!(line.rest, "1883   127.0.0.1");
        assert_eq!(line.values().collect::<Vec<_>>(), ["1883", "127.0.0.1"]);
    }

    #[test]
    fn trailing_comment_word_ends_the_values() {
        let line = Line::parse(1, "max_keepalive 60 # one minute").expect("an option line");
        assert_eq!(line.single(), Ok("60"));
        assert_eq!(line.rest_of_line(), Ok("60 # one minute"));
    }

    #[test]
    fn single_value_errors() {
        let line = Line::parse(1, "max_keepalive").expect("an option line");
        assert_eq!(line.single(), Err("max_keepalive: missing value".into()));
        assert_eq!(
            line.rest_of_line(),
            Err("max_keepalive: missing value".into())
        );
        let line = Line::parse(1, "max_keepalive 1 2").expect("an option line");
        assert_eq!(
            line.single(),
            Err("max_keepalive: unexpected extra value '2'".into())
        );
    }
}
