//! Matching ACL topics against topic names, and `%c`/`%u` substitution in `pattern` lines.
//!
//! Mosquitto 2.0.11 builds a new string for every `pattern` line on every check: each
//! `%c` becomes the client id and each `%u` the username, *anywhere* in the text (the man
//! page says the substitution "must be the only text for that level", but 2.0.11 grants
//! `pattern write lit/%c-x` to client `abc` on `lit/abc-x`: verified), and the result is
//! matched like a subscription filter. Midge gives the same answers without building the
//! string: the pattern is split once, at parse time, into literal pieces and
//! placeholders, and the matcher reads the substituted filter byte by byte
//! ([`Substituted`]). The broker checks every delivered message, so nothing here
//! allocates.

use std::ops::Range;

/// Whether the ACL topic (a subscription-style filter) read from `filter` matches the
/// topic name `topic`, with Mosquitto's `mosquitto_topic_matches_sub` answers:
///
/// - `+` matches one level, possibly empty; `#` matches its parent level and everything
///   below (`a/#` matches `a`, `a/` and `a/b/c`).
/// - A filter starting with a wildcard does not match a topic starting with `$`, and a
///   filter starting with `$` matches only topics starting with `$`.
/// - An empty filter or an empty topic matches nothing (Mosquitto reports them invalid).
///
/// Wildcards in `filter` are trusted to be whole levels: the parser refuses anything else,
/// and the caller never substitutes a client id or username containing `+` or `#`. A
/// wildcard in `topic` is the caller's to refuse (Mosquitto's matcher never matches one).
pub(crate) fn filter_matches(filter: impl Iterator<Item = u8>, topic: &str) -> bool {
    let mut filter = filter.peekable();
    let topic = topic.as_bytes();
    let (Some(&filter_first), Some(&topic_first)) = (filter.peek(), topic.first()) else {
        return false;
    };
    if (filter_first == b'$') != (topic_first == b'$') {
        return false;
    }
    // `t` is where the current topic level starts. `topic_done` means the topic has no
    // level left for the current filter level: only `#` (matching the parent) can match.
    let mut t = 0;
    let mut topic_done = false;
    loop {
        match filter.peek() {
            Some(b'#') => {
                filter.next();
                return filter.next().is_none();
            }
            Some(b'+') => {
                filter.next();
                if topic_done {
                    return false;
                }
                while t < topic.len() && topic[t] != b'/' {
                    t += 1;
                }
            }
            _ => {
                if topic_done {
                    return false;
                }
                while let Some(&f) = filter.peek() {
                    if f == b'/' {
                        break;
                    }
                    if topic.get(t) != Some(&f) {
                        return false;
                    }
                    filter.next();
                    t += 1;
                }
                if t < topic.len() && topic[t] != b'/' {
                    return false;
                }
            }
        }
        // The filter level is done and `t` is at the end of the topic or at a '/'.
        match filter.next() {
            None => return t == topic.len(),
            Some(b'/') => {
                if t < topic.len() {
                    t += 1;
                } else {
                    topic_done = true;
                }
            }
            // Only a malformed `+x` level gets here.
            Some(_) => return false,
        }
    }
}

/// One piece of a `pattern` line's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text copied as is: a byte range of [`Pattern::text`].
    Literal(Range<usize>),
    /// `%c`: the client id.
    ClientId,
    /// `%u`: the username.
    Username,
}

/// A `pattern` line's topic, split at its `%c` and `%u` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: Box<str>,
    pieces: Box<[Piece]>,
    uses_username: bool,
}

impl Pattern {
    /// Splits `text` the way Mosquitto 2.0.11's substitution loop reads it: left to right,
    /// `%c` and `%u` are placeholders wherever they appear, any other `%` is literal
    /// (`%%c` is a `%` followed by the client id).
    pub(crate) fn new(text: &str) -> Pattern {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let placeholder = match (bytes[i], bytes.get(i + 1)) {
                (b'%', Some(b'c')) => Some(Piece::ClientId),
                (b'%', Some(b'u')) => Some(Piece::Username),
                _ => None,
            };
            match placeholder {
                Some(piece) => {
                    if literal_start < i {
                        pieces.push(Piece::Literal(literal_start..i));
                    }
                    pieces.push(piece);
                    i += 2;
                    literal_start = i;
                }
                None => i += 1,
            }
        }
        if literal_start < bytes.len() {
            pieces.push(Piece::Literal(literal_start..bytes.len()));
        }
        let uses_username = pieces.contains(&Piece::Username);
        Pattern {
            text: text.into(),
            pieces: pieces.into(),
            uses_username,
        }
    }

    /// Whether the text has a `%u`. Mosquitto skips such lines for anonymous clients
    /// rather than substituting an empty username.
    pub(crate) fn uses_username(&self) -> bool {
        self.uses_username
    }

    /// Whether the text has a placeholder at all; Mosquitto warns when it has none.
    pub(crate) fn has_placeholder(&self) -> bool {
        self.pieces
            .iter()
            .any(|piece| !matches!(piece, Piece::Literal(_)))
    }

    /// Whether the pattern, with `%c` = `client_id` and `%u` = `username` (empty when
    /// `None`; callers skip [`Pattern::uses_username`] patterns for anonymous clients),
    /// matches `topic`. The caller has already refused identities containing `+` or `#`
    /// (CVE-2017-7650), so substitution never brings in a wildcard.
    pub(crate) fn matches(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        filter_matches(
            Substituted {
                pattern: self,
                next_piece: 0,
                current: [].iter(),
                client_id,
                username: username.unwrap_or(""),
            },
            topic,
        )
    }
}

/// The bytes of a pattern with its placeholders substituted, produced on the fly.
struct Substituted<'a> {
    pattern: &'a Pattern,
    next_piece: usize,
    current: std::slice::Iter<'a, u8>,
    client_id: &'a str,
    username: &'a str,
}

impl Iterator for Substituted<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        loop {
            if let Some(&byte) = self.current.next() {
                return Some(byte);
            }
            let piece = self.pattern.pieces.get(self.next_piece)?;
            self.next_piece += 1;
            self.current = match piece {
                Piece::Literal(range) => self.pattern.text.as_bytes()[range.clone()].iter(),
                Piece::ClientId => self.client_id.as_bytes().iter(),
                Piece::Username => self.username.as_bytes().iter(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{filter_matches, Pattern};
    use crate::topic;

    fn plain(filter: &str, topic: &str) -> bool {
        filter_matches(filter.bytes(), topic)
    }

    #[test]
    fn filter_table() {
        // Each row was checked against Mosquitto 2.0.11 as a `topic write <filter>` line in
        // a user block, publishing `<topic>` at QoS 1 over MQTT 5 (PUBACK 0x10 = allowed,
        // 0x87 = refused).
        #[rustfmt::skip]
        let rows: &[(&str, &str, bool)] = &[
            ("e1/+/#", "e1/b", true),     // 0x10: `#` matches the parent of the `+` level
            ("e1/+/#", "e1", false),      // 0x87: `+` needs a level
            ("e1/+/#", "e1/b/c", true),   // 0x10
            ("e2/#", "e2", true),         // 0x10: `#` matches its parent
            ("e2/#", "e2/", true),        // 0x10: an empty last level
            ("e2/#", "e2x", false),       // 0x87
            ("+/e3", "/e3", true),        // 0x10: `+` matches an empty first level
            ("+/e3", "e3", false),        // 0x87
            ("e4/+", "e4/", true),        // 0x10
            ("e4/+", "e4", false),        // 0x87
            ("e4/+", "e4/a/b", false),    // 0x87
            ("#", "/x", true),            // 0x10
            ("#", "/", true),             // 0x10
            ("e6/+/+", "e6/a", false),    // 0x87
            ("e6/+/+", "e6/a/b", true),   // 0x10
            ("e6/+/+", "e6/a/b/c", false),// 0x87
            ("+", "x", true),             // 0x10
            ("+", "x/y", false),          // 0x87
            ("+", "/", false),            // 0x87: `/` has two (empty) levels
            ("e5//x", "e5//x", true),     // 0x10
            ("e5//x", "e5/x", false),     // 0x87
            ("+/+", "/", true),           // 0x10
            ("+/+", "a/", true),          // 0x10
            ("+/+", "a", false),          // 0x87
            ("/#", "/", true),            // 0x10
            ("/#", "x", false),           // 0x87
            ("/#", "/a", true),           // 0x10
            ("+/#", "a", true),           // 0x10
            ("+/#", "/", true),           // 0x10
            ("+/#", "$a/b", false),       // 0x87: a leading wildcard never matches `$` topics
            ("#", "$SYS/broker/version", false), // not delivered: `topic read #` does not grant `$SYS`
            ("$SYS/#", "$SYS/broker/version", true), // delivered
            ("+/broker/#", "$SYS/broker/version", false), // not delivered
        ];
        for &(filter, topic, expected) in rows {
            assert_eq!(plain(filter, topic), expected, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn empty_filter_or_topic_matches_nothing() {
        assert!(!plain("", ""));
        assert!(!plain("", "a"));
        assert!(!plain("#", ""));
        assert!(!plain("+", ""));
    }

    #[test]
    fn malformed_wildcards_match_nothing_rather_than_panic() {
        // The parser refuses these; the matcher must still answer.
        assert!(!plain("a/#x", "a/b"));
        assert!(!plain("a/#/b", "a/c/b"));
        assert!(!plain("a/+x", "a/b"));
    }

    #[test]
    fn substitution_is_anywhere_in_the_text() {
        // Mosquitto 2.0.11, anonymous client id `abc`, `pattern readwrite <filter>`:
        #[rustfmt::skip]
        let rows: &[(&str, &str, bool)] = &[
            ("dev/%c/#", "dev/abc/t", true),   // PUBACK 0x10
            ("dev/%c/#", "dev/abd/t", false),  // 0x87
            ("dev/%c/#", "dev/abc", true),     // 0x10
            ("end/%c", "end/ab", false),       // 0x87: no prefix match
            ("end/%c", "end/abcd", false),     // 0x87
            ("end/%c", "end/abc", true),       // 0x10
            ("lit/%c-x", "lit/abc-x", true),   // 0x10: substituted inside a level
            ("lit/%c-x", "lit/%c-x", false),   // 0x87: not read literally
            ("pre/x%c", "pre/xabc", true),     // 0x10
            ("pre/x%c", "pre/x%c", false),     // 0x87
        ];
        for &(text, topic, expected) in rows {
            let pattern = Pattern::new(text);
            assert_eq!(
                pattern.matches("abc", None, topic),
                expected,
                "{text:?} vs {topic:?}"
            );
        }
    }

    #[test]
    fn identities_with_slashes_span_levels() {
        // Mosquitto 2.0.11: client id `a/b` may publish `dev/a/b/x` under `dev/%c/#`, user
        // `a/b` may publish `usr/a/b/x` under `usr/%u/#` (PUBACK 0x10). Only `+` and `#`
        // are refused in identities (CVE-2017-7650; `/` was allowed again in 1.4.13).
        assert!(Pattern::new("dev/%c/#").matches("a/b", None, "dev/a/b/x"));
        assert!(Pattern::new("usr/%u/#").matches("q8", Some("a/b"), "usr/a/b/x"));
        assert!(!Pattern::new("usr/%u").matches("q8", Some("a/b"), "usr/a"));
    }

    #[test]
    fn both_placeholders_and_escapes() {
        // Mosquitto 2.0.11, user `u`, client `c`: `both/%u%c` grants `both/uc` (0x10), not
        // the literal `both/%u%c` (0x87).
        let both = Pattern::new("both/%u%c");
        assert!(both.uses_username());
        assert!(both.matches("c", Some("u"), "both/uc"));
        assert!(!both.matches("c", Some("u"), "both/%u%c"));
        // `%%c` is a literal `%` and then the client id, as the left-to-right loop reads it.
        assert!(Pattern::new("p/%%c").matches("id", None, "p/%id"));
        // A lone or unknown `%` stays literal.
        assert!(Pattern::new("p/%/%x/%").matches("id", None, "p/%/%x/%"));
        let mixed = Pattern::new("mix/%u/%c");
        assert!(mixed.matches("cc", Some("alice"), "mix/alice/cc"));
        assert!(!mixed.matches("cc", Some("alice"), "mix/alice/cd"));
    }

    #[test]
    fn placeholders_found() {
        assert!(!Pattern::new("plain/#").has_placeholder());
        assert!(!Pattern::new("plain/%x").has_placeholder());
        assert!(Pattern::new("%c").has_placeholder());
        assert!(!Pattern::new("%c").uses_username());
    }

    #[test]
    fn a_dollar_identity_makes_a_dollar_filter() {
        // Mosquitto 2.0.11: client id `$foo` under `pattern readwrite %c/#` receives
        // `$foo/x` (delivered): the substituted filter starts with `$`.
        assert!(Pattern::new("%c/#").matches("$foo", None, "$foo/x"));
        // User `$u` under `+/%u` may not publish `$x/$u` (0x87): leading `+`.
        assert!(!Pattern::new("+/%u").matches("c", Some("$u"), "$x/$u"));
    }

    #[test]
    fn an_empty_substitution_leaves_an_empty_filter() {
        // Mosquitto's matcher refuses an empty filter. Brokers never have an empty client
        // id at this point, but the answer must still be "no".
        assert!(!Pattern::new("%c").matches("", None, "x"));
        assert!(Pattern::new("a/%c/b").matches("", None, "a//b"));
    }

    /// Mosquitto 2.0.11's substitution, done the way it does it: build the string.
    fn substitute(text: &str, client_id: &str, username: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('%', Some('c')) => {
                    chars.next();
                    out.push_str(client_id);
                }
                ('%', Some('u')) => {
                    chars.next();
                    out.push_str(username);
                }
                _ => out.push(c),
            }
        }
        out
    }

    /// The reference matcher with Mosquitto's extra "empty is invalid" rule.
    fn reference(filter: &str, topic_name: &str) -> bool {
        !filter.is_empty() && !topic_name.is_empty() && topic::matches(filter, topic_name)
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("a".to_string()),
            Just("b".to_string()),
            Just("ab".to_string()),
            Just("$a".to_string()),
            Just("%".to_string()),
        ]
    }

    fn topic_name() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|levels| levels.join("/"))
    }

    fn filter_level() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => level(),
            1 => Just("+".to_string()),
            1 => Just("%c".to_string()),
            1 => Just("%u".to_string()),
            1 => Just("x%cy".to_string()),
            1 => Just("%%c".to_string()),
        ]
    }

    fn filter() -> impl Strategy<Value = String> {
        (prop::collection::vec(filter_level(), 1..5), any::<bool>()).prop_map(
            |(mut levels, hash)| {
                if hash {
                    levels.push("#".to_string());
                }
                levels.join("/")
            },
        )
    }

    fn identity() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("a".to_string()),
            Just("ab".to_string()),
            Just("a/b".to_string()),
            Just("$a".to_string()),
            Just("%c".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn plain_matching_agrees_with_the_reference(filter in filter(), topic_name in topic_name()) {
            prop_assert_eq!(plain(&filter, &topic_name), reference(&filter, &topic_name));
        }

        #[test]
        fn substituted_matching_agrees_with_building_the_string(
            text in filter(),
            client_id in identity(),
            username in identity(),
            topic_name in topic_name(),
        ) {
            let pattern = Pattern::new(&text);
            let built = substitute(&text, &client_id, &username);
            prop_assert_eq!(
                pattern.matches(&client_id, Some(&username), &topic_name),
                reference(&built, &topic_name),
                "pattern {:?} built {:?}", text, built
            );
        }
    }
}
