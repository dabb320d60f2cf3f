//! The `acl_file` parser: text in, [`AclFile`] out.
//!
//! It reproduces how Mosquitto 2.0.11 reads each line (`aclfile__parse`), quirks
//! included, because a user's existing file must mean the same thing to Midge:
//!
//! - A line is a comment only when `#` is its *first* character; `  # note` is an
//!   unknown keyword `#` and stops the broker.
//! - Trailing white space (C `isspace`, so `\r` of Windows line endings too) is dropped.
//! - Words are separated by spaces only. Leading spaces are skipped, but a tab is part of
//!   a word: `topic\tread\tx` is the unknown keyword `topic\tread\tx`.
//! - `topic`/`pattern` take an optional access word and then the rest of the line, with
//!   surrounding white space trimmed, as the topic (so topics may contain spaces). With a
//!   single word, that word is the topic and the access is readwrite: `topic read` grants
//!   readwrite on a topic named `read` (a warning says so).
//! - `user` takes the rest of the line, trimmed, as the username (spaces included).
//! - A NUL byte ends the line, as it ends Mosquitto's C string.

use std::collections::HashMap;

use super::error::AclError;
use super::pattern::Pattern;
use super::{AclFile, PatternRule, Rules, READ, WRITE};

/// Mosquitto's `TOPIC_HIERARCHY_LIMIT`: an ACL topic with more `/` than this is refused.
const MAX_SLASHES: usize = 200;
/// The longest topic MQTT can carry.
const MAX_TOPIC_LEN: usize = 65_535;

/// Parses the text of an ACL file. `file_name` is only used in errors and warnings.
///
/// An empty file, or one with only comments, is valid and denies every read and write
/// (CVE-2018-12550: Mosquitto before 1.5.6 treated it as "no ACL").
pub fn parse(text: &str, file_name: &str) -> Result<AclFile, AclError> {
    let mut parser = Parser {
        file_name,
        anonymous: Rules::default(),
        users: HashMap::new(),
        pattern_denies: Vec::new(),
        pattern_grants: Vec::new(),
        warnings: Vec::new(),
    };
    // `None` until the first `user` line: `topic` lines before it are for anonymous clients.
    let mut user: Option<&str> = None;
    // Mosquitto reads with `fgets`, so only '\n' ends a line.
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.split('\0').next().unwrap_or_default();
        let line = line.trim_end_matches(is_c_space);
        if line.starts_with('#') {
            continue;
        }
        let mut words = Words { rest: line };
        let Some(keyword) = words.next_word() else {
            continue;
        };
        match keyword {
            "topic" | "pattern" => {
                if let Err(reason) = parser.access_line(number, keyword, &mut words, user) {
                    return Err(parser.error(number, reason));
                }
            }
            "user" => {
                let name = words.rest().map(trim_c_space).unwrap_or_default();
                if name.is_empty() {
                    return Err(parser.error(number, "user: missing username".into()));
                }
                user = Some(name);
            }
            _ => return Err(parser.error(number, unknown_keyword(keyword))),
        }
    }
    let Parser {
        anonymous,
        users,
        mut pattern_denies,
        pattern_grants,
        warnings,
        ..
    } = parser;
    // Mosquitto puts `deny` patterns at the front of the list: any matching deny wins.
    pattern_denies.extend(pattern_grants);
    Ok(AclFile {
        anonymous,
        users,
        patterns: pattern_denies,
        warnings,
    })
}

struct Parser<'a> {
    file_name: &'a str,
    anonymous: Rules,
    users: HashMap<Box<str>, Rules>,
    pattern_denies: Vec<PatternRule>,
    pattern_grants: Vec<PatternRule>,
    warnings: Vec<String>,
}

impl Parser<'_> {
    /// A `topic` or `pattern` line after its keyword, on line `number`.
    fn access_line(
        &mut self,
        number: usize,
        keyword: &str,
        words: &mut Words<'_>,
        user: Option<&str>,
    ) -> Result<(), String> {
        let Some(first) = words.next_word() else {
            return Err(format!("{keyword}: missing topic"));
        };
        let (access, topic) = match words.rest() {
            Some(rest) => (access_word(keyword, first)?, trim_c_space(rest)),
            None => {
                // One word: Mosquitto takes it as the topic, with readwrite access. Say so
                // when the word looks like an access type or tab-separated words.
                if matches!(first, "read" | "write" | "readwrite" | "deny") || first.contains('\t')
                {
                    self.warn(
                        number,
                        format!(
                            "{keyword}: a single word is the topic: this grants readwrite \
                             access to the topic \"{}\" (write `{keyword} <access> <topic>`, \
                             separated by spaces)",
                            first.escape_debug()
                        ),
                    );
                }
                (READ | WRITE, first)
            }
        };
        validate_topic(topic).map_err(|why| {
            format!(
                "{keyword}: invalid ACL topic \"{}\": {why}",
                topic.escape_debug()
            )
        })?;
        if keyword == "pattern" {
            let pattern = Pattern::new(topic);
            if !pattern.has_placeholder() {
                // Mosquitto's own warning, with its wording.
                self.warn(
                    number,
                    format!(
                        "ACL pattern '{}' does not contain '%c' or '%u'",
                        topic.escape_debug()
                    ),
                );
            }
            let rule = PatternRule { pattern, access };
            if access == 0 {
                self.pattern_denies.push(rule);
            } else {
                self.pattern_grants.push(rule);
            }
        } else {
            let rules = match user {
                None => &mut self.anonymous,
                // Several blocks for one user add to the same list, as in Mosquitto.
                Some(name) => self.users.entry(name.into()).or_default(),
            };
            rules.add(topic, access);
        }
        Ok(())
    }

    fn error(&self, line: usize, reason: String) -> AclError {
        AclError {
            file: self.file_name.to_string(),
            line,
            reason,
        }
    }

    fn warn(&mut self, line: usize, warning: String) {
        self.warnings
            .push(format!("{}:{line}: {warning}", self.file_name));
    }
}

/// The access bits of an access word; 0 is `deny`.
fn access_word(keyword: &str, word: &str) -> Result<u8, String> {
    match word {
        "read" => Ok(READ),
        "write" => Ok(WRITE),
        "readwrite" => Ok(READ | WRITE),
        "deny" => Ok(0),
        _ => Err(format!(
            "{keyword}: invalid access type \"{}\" (expected read, write, readwrite or deny)",
            word.escape_debug()
        )),
    }
}

fn unknown_keyword(keyword: &str) -> String {
    let hint = if keyword.starts_with('#') {
        " (a comment's '#' must be the first character of the line)"
    } else if keyword.contains(char::is_whitespace) {
        " (words must be separated by spaces, not tabs)"
    } else {
        ""
    };
    format!(
        "invalid line: unknown keyword \"{}\" (expected topic, pattern or user){hint}",
        keyword.escape_debug()
    )
}

/// Mosquitto's `mosquitto_sub_topic_check`, which every ACL topic must pass: `+` and `#`
/// only as whole levels, `#` only last, at most 65,535 bytes and 200 `/`. `%c`/`%u` are
/// plain text to it (`%c#` is refused).
fn validate_topic(topic: &str) -> Result<(), &'static str> {
    if topic.len() > MAX_TOPIC_LEN {
        return Err("longer than 65535 bytes");
    }
    if topic.bytes().filter(|&b| b == b'/').count() > MAX_SLASHES {
        return Err("more than 200 levels");
    }
    let mut levels = topic.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err("'#' must be the last level, on its own");
        }
        if level.contains('+') && level != "+" {
            return Err("'+' must be a level on its own");
        }
    }
    Ok(())
}

/// C `isspace` in the "C" locale, which Mosquitto's trimming uses. Unlike Rust's
/// `is_ascii_whitespace`, it includes the vertical tab.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

fn trim_c_space(text: &str) -> &str {
    text.trim_matches(is_c_space)
}

/// `strtok_r(line, " ")` and then `strtok_r(NULL, "")`, as Mosquitto splits a line.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    /// The next space-separated word. Skips leading spaces (not tabs) and consumes the one
    /// space ending the word, where `strtok` writes its NUL.
    fn next_word(&mut self) -> Option<&'a str> {
        let text = self.rest.trim_start_matches(' ');
        if text.is_empty() {
            self.rest = text;
            return None;
        }
        match text.split_once(' ') {
            Some((word, rest)) => {
                self.rest = rest;
                Some(word)
            }
            None => {
                self.rest = "";
                Some(text)
            }
        }
    }

    /// Everything after the last word taken, as is; `None` when nothing is left.
    fn rest(&mut self) -> Option<&'a str> {
        let rest = std::mem::take(&mut self.rest);
        (!rest.is_empty()).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Words};

    /// Files that Mosquitto 2.0.11 starts with (each was tried in `acl_file`).
    #[rustfmt::skip]
    const GOOD: &[&str] = &[
        "",                                     // starts; denies everything
        "# only a comment\n\n   \n",            // starts; denies everything
        "topic read x y z",                     // starts: the topic is "x y z"
        "topic deny",                           // starts: readwrite on the topic "deny"
        "topic read",                           // starts: readwrite on the topic "read"
        "  topic read x",                       // starts: leading spaces are skipped
        "topic read \tx",                       // starts: the topic is trimmed of the tab
        "topic read x\x0b",                     // starts: trailing vertical tab trimmed
        "#comment\n\ntopic read x\r\nuser a\r\n", // starts: Windows line endings
        "topic read +/+/#",                     // starts
        "topic read #",                         // starts
        "topic read $SYS/#",                    // starts
        "user a b c",                           // starts: the username is "a b c"
        "pattern read nopattern",               // starts, warning "does not contain '%c' or '%u'"
        "topic write a\n\x00junk",              // starts: the NUL ends line 2 at once
    ];

    /// Lines Mosquitto 2.0.11 refuses ("Error opening acl file"), with Midge's reason. The
    /// comment is Mosquitto's own message.
    #[rustfmt::skip]
    const BAD: &[(&str, &str)] = &[
        ("topic", "topic: missing topic"),                      // Empty topic in acl_file
        ("topic   ", "topic: missing topic"),                   // Empty topic in acl_file
        ("pattern", "pattern: missing topic"),                  // Empty topic in acl_file
        ("topic foo bar",
         "topic: invalid access type \"foo\" (expected read, write, readwrite or deny)"), // Invalid topic access type "foo"
        ("topic READ foo",
         "topic: invalid access type \"READ\" (expected read, write, readwrite or deny)"), // Invalid topic access type "READ"
        ("topic \tread x",
         "topic: invalid access type \"\\tread\" (expected read, write, readwrite or deny)"), // Invalid topic access type "\tread"
        ("topic read a/#/b",
         "topic: invalid ACL topic \"a/#/b\": '#' must be the last level, on its own"), // Invalid ACL topic "a/#/b"
        ("topic read a+",
         "topic: invalid ACL topic \"a+\": '+' must be a level on its own"), // Invalid ACL topic "a+"
        ("topic read a/b#",
         "topic: invalid ACL topic \"a/b#\": '#' must be the last level, on its own"), // Invalid ACL topic "a/b#"
        ("pattern read %c#",
         "pattern: invalid ACL topic \"%c#\": '#' must be the last level, on its own"), // Invalid ACL topic "%c#"
        ("user", "user: missing username"),                     // Missing username in acl_file
        ("user    ", "user: missing username"),                 // Missing username in acl_file
        ("usr bob",
         "invalid line: unknown keyword \"usr\" (expected topic, pattern or user)"), // Invalid line in acl_file: usr.
        ("Topic read x",
         "invalid line: unknown keyword \"Topic\" (expected topic, pattern or user)"), // Invalid line in acl_file: Topic.
        ("foo",
         "invalid line: unknown keyword \"foo\" (expected topic, pattern or user)"), // Invalid line in acl_file: foo.
        ("  # indented comment",
         "invalid line: unknown keyword \"#\" (expected topic, pattern or user) (a comment's '#' must be the first character of the line)"), // Invalid line in acl_file:   #.
        ("\t# tab comment",
         "invalid line: unknown keyword \"\\t#\" (expected topic, pattern or user) (words must be separated by spaces, not tabs)"), // Invalid line in acl_file: \t#.
        ("\ttopic read x",
         "invalid line: unknown keyword \"\\ttopic\" (expected topic, pattern or user) (words must be separated by spaces, not tabs)"), // Invalid line in acl_file: \ttopic.
        ("topic\tread\tx",
         "invalid line: unknown keyword \"topic\\tread\\tx\" (expected topic, pattern or user) (words must be separated by spaces, not tabs)"), // Invalid line in acl_file: topic\tread\tx.
        ("user\tbob",
         "invalid line: unknown keyword \"user\\tbob\" (expected topic, pattern or user) (words must be separated by spaces, not tabs)"), // Invalid line in acl_file: user\tbob.
    ];

    #[test]
    fn good_files_parse() {
        for text in GOOD {
            if let Err(error) = parse(text, "acl") {
                panic!("{text:?}: {error}");
            }
        }
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        for &(line, reason) in BAD {
            // Put the bad line third, after a valid and a blank line, to check the number.
            let text = format!("topic read ok\n\n{line}\ntopic read after");
            let error = parse(&text, "/etc/acl").expect_err(line);
            assert_eq!(
                error.to_string(),
                format!("/etc/acl:3: {reason}"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn hierarchy_and_length_limits() {
        // Mosquitto 2.0.11: 200 '/' (201 levels) starts, 201 '/' is "Invalid ACL topic".
        let ok = vec!["a"; 201].join("/");
        assert!(parse(&format!("topic read {ok}"), "acl").is_ok());
        let deep = vec!["a"; 202].join("/");
        let error = parse(&format!("topic read {deep}"), "acl").expect_err("too deep");
        assert!(
            error.reason.ends_with("\": more than 200 levels"),
            "{error}"
        );
        let long = "a".repeat(65_536);
        let error = parse(&format!("topic read {long}"), "acl").expect_err("too long");
        assert!(
            error.reason.ends_with("\": longer than 65535 bytes"),
            "{error}"
        );
        assert!(parse(&format!("topic read {}", "a".repeat(65_535)), "acl").is_ok());
    }

    #[test]
    fn warnings_name_file_and_line() {
        let acl = parse(
            "pattern read nopattern\npattern read ok/%c\ntopic read\ntopic read\tx\ntopic deny\n",
            "acl.txt",
        )
        .expect("valid");
        assert_eq!(
            acl.warnings(),
            [
                "acl.txt:1: ACL pattern 'nopattern' does not contain '%c' or '%u'",
                "acl.txt:3: topic: a single word is the topic: this grants readwrite access to the topic \"read\" (write `topic <access> <topic>`, separated by spaces)",
                "acl.txt:4: topic: a single word is the topic: this grants readwrite access to the topic \"read\\tx\" (write `topic <access> <topic>`, separated by spaces)",
                "acl.txt:5: topic: a single word is the topic: this grants readwrite access to the topic \"deny\" (write `topic <access> <topic>`, separated by spaces)",
            ]
        );
    }

    #[test]
    fn words_split_like_strtok() {
        let mut words = Words {
            rest: "  topic   read  a b  ",
        };
        assert_eq!(words.next_word(), Some("topic"));
        assert_eq!(words.next_word(), Some("read"));
        // The rest starts after the single space `strtok` replaced; the caller trims.
        assert_eq!(words.rest(), Some(" a b  "));
        assert_eq!(words.rest(), None);
        assert_eq!(words.next_word(), None);

        let mut words = Words {
            rest: "topic\tread x",
        };
        assert_eq!(words.next_word(), Some("topic\tread"));
        assert_eq!(words.next_word(), Some("x"));
        assert_eq!(words.rest(), None);

        let mut words = Words { rest: "   " };
        assert_eq!(words.next_word(), None);
    }
}
