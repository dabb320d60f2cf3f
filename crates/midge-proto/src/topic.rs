//! Syntax of topic names and topic filters (MQTT 5 section 4.7, 4.8.2). Matching names
//! against filters belongs to the broker; this only says what may be sent at all.

use crate::strings::topic_chars_ok;

const SHARE_PREFIX: &str = "$share/";

/// Most `/` a topic name or filter may contain (a `$share/group/` prefix included), as
/// Mosquitto's `TOPIC_HIERARCHY_LIMIT` (CVE-2019-11779; Debian's 2.0.11 refuses 201). Every
/// level costs the broker a trie node, so a 65,535-byte filter of `/` would otherwise turn
/// one SUBSCRIBE into tens of megabytes.
pub const MAX_TOPIC_SEPARATORS: usize = 200;

#[inline]
fn within_hierarchy_limit(s: &str) -> bool {
    s.len() <= MAX_TOPIC_SEPARATORS
        || s.bytes().filter(|&b| b == b'/').count() <= MAX_TOPIC_SEPARATORS
}

/// A topic name as PUBLISH and the will carry it: non-empty ([MQTT-4.7.3-1]), no wildcards
/// ([MQTT-3.3.2-2]), at most [`MAX_TOPIC_SEPARATORS`] levels deep, and only characters
/// Mosquitto accepts.
#[inline]
pub fn valid_topic_name(s: &str) -> bool {
    !s.is_empty() && within_hierarchy_limit(s) && topic_chars_ok(s, b"+#")
}

/// A topic filter as SUBSCRIBE and UNSUBSCRIBE carry it, shared subscriptions included, at
/// most [`MAX_TOPIC_SEPARATORS`] levels deep.
pub fn valid_topic_filter(s: &str) -> bool {
    if !within_hierarchy_limit(s) {
        return false;
    }
    match s.strip_prefix(SHARE_PREFIX) {
        // [MQTT-4.8.2-1], [MQTT-4.8.2-2]: a non-empty share name without wildcards or '/',
        // then a '/' and a complete filter.
        Some(rest) => match rest.split_once('/') {
            Some((group, filter)) => {
                !group.is_empty()
                    && !group.contains(['+', '#'])
                    && topic_chars_ok(group, b"")
                    && valid_plain_filter(filter)
            }
            None => false,
        },
        None => valid_plain_filter(s),
    }
}

/// Splits `$share/{group}/{filter}` into group and filter. Anything else, including a
/// `$share/` filter without a second `/`, is not a shared subscription.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix(SHARE_PREFIX)?.split_once('/')
}

/// [MQTT-4.7.1-1]: `#` alone as the last level; [MQTT-4.7.1-2]: `+` alone in its level.
fn valid_plain_filter(s: &str) -> bool {
    if s.is_empty() || !topic_chars_ok(s, b"") {
        return false;
    }
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "#" if is_last => {}
            "+" => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    // [MQTT-4.7.3-1] topic names and filters are at least one character long.
    #[test]
    fn mqtt_4_7_3_1_empty_topics_are_invalid() {
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_filter(""));
    }

    // CVE-2019-11779: at most 200 '/' (Mosquitto's TOPIC_HIERARCHY_LIMIT), counted over the
    // whole string, a shared subscription's prefix included.
    #[test]
    fn hierarchy_limit_is_200_separators() {
        let name = |n: usize| "a/".repeat(n) + "a";
        assert!(valid_topic_name(&name(200)));
        assert!(!valid_topic_name(&name(201)));
        assert!(valid_topic_name(&"/".repeat(200)));
        assert!(!valid_topic_name(&"/".repeat(65_535)));
        assert!(valid_topic_filter(&"+/".repeat(200)));
        assert!(!valid_topic_filter(&"+/".repeat(201)));
        assert!(valid_topic_filter(&format!("$share/g/{}", name(198))));
        assert!(!valid_topic_filter(&format!("$share/g/{}", name(199))));
    }

    // [MQTT-3.3.2-2] no wildcards in a topic name.
    #[test]
    fn mqtt_3_3_2_2_topic_name_has_no_wildcards() {
        for bad in ["a/+", "+", "#", "a/#", "a+b", "a#"] {
            assert!(!valid_topic_name(bad), "{bad}");
        }
        for ok in ["a", "/", "a/b", "/a/", "$SYS/broker", "a b", "é/漢字"] {
            assert!(valid_topic_name(ok), "{ok}");
        }
    }

    // [MQTT-4.7.1-1] the multi-level wildcard stands alone as the last level.
    #[test]
    fn mqtt_4_7_1_1_hash_only_as_the_last_whole_level() {
        for ok in ["#", "a/#", "/#", "+/#"] {
            assert!(valid_topic_filter(ok), "{ok}");
        }
        for bad in ["a#", "a/#/b", "#/", "a/b#", "##", "#/#"] {
            assert!(!valid_topic_filter(bad), "{bad}");
        }
    }

    // [MQTT-4.7.1-2] the single-level wildcard occupies a whole level.
    #[test]
    fn mqtt_4_7_1_2_plus_only_as_a_whole_level() {
        for ok in ["+", "+/+", "/+", "+/", "a/+/b", "+/#"] {
            assert!(valid_topic_filter(ok), "{ok}");
        }
        for bad in ["a+", "+a", "a/b+/c", "++"] {
            assert!(!valid_topic_filter(bad), "{bad}");
        }
    }

    #[test]
    fn control_and_non_characters_are_invalid_in_topics() {
        for bad in [
            "a\u{1}", "a\u{7F}", "a/\u{85}", "\u{FFFF}", "\u{FDD0}", "a\0",
        ] {
            assert!(!valid_topic_name(bad), "{bad:?}");
            assert!(!valid_topic_filter(bad), "{bad:?}");
        }
    }

    // [MQTT-4.8.2-1] a share name is at least one character, [MQTT-4.8.2-2] without '/',
    // '+' or '#', followed by '/' and a topic filter.
    #[test]
    fn mqtt_4_8_2_1_shared_subscription_syntax() {
        for ok in [
            "$share/g/a",
            "$share/g/#",
            "$share/g/+/b",
            "$share/group 1/a/b/",
        ] {
            assert!(valid_topic_filter(ok), "{ok}");
        }
        for bad in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/g+/a",
            "$share/g#/a",
            "$share/+/a",
            "$share/g/a#",
        ] {
            assert!(!valid_topic_filter(bad), "{bad}");
        }
        // Not shared at all, so an ordinary filter.
        assert!(valid_topic_filter("$share"));
        assert!(valid_topic_filter("$sharex/a"));
    }

    #[test]
    fn parse_shared_splits_group_and_filter() {
        assert_eq!(parse_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(parse_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$share"), None);
        assert_eq!(parse_shared("$share/g"), None);
    }
}
