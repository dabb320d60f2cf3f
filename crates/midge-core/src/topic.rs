//! Topic names and filters: the naive reference matcher and shared-subscription parsing.
//!
//! [`matches()`] is deliberately simple; the subscription trie and the retained store are
//! checked against it by property tests. Validation of filters and topic names (no wildcard
//! in a topic name, `#` only last, no empty filter…) belongs to the codec and the session:
//! every function here accepts any string and gives a consistent answer for invalid input
//! rather than panicking.

/// The prefix that marks a shared subscription, `$share/<group>/<filter>` (MQTT 5 §4.8.2).
pub const SHARED_PREFIX: &str = "$share/";

/// Whether `filter` matches the topic name `topic`.
///
/// - `+` matches exactly one level, possibly empty.
/// - `#` matches its parent level and every level below, so `a/#` matches `a`, `a/` and
///   `a/b/c` [MQTT-4.7.1-2]. A `#` that is not the last level matches nothing.
/// - A filter whose first level is a wildcard does not match a topic starting with `$`
///   [MQTT-4.7.2-1].
/// - Levels may be empty: `a//b`, `/a` and `a/` have three, two and two levels.
/// - Wildcard characters inside a level (`a+`) are plain characters here; such a filter is
///   invalid and rejected earlier.
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    if topic.starts_with('$') {
        // `split` always yields a first item, so `next` here is never `None`.
        if let Some("+" | "#") = filter.split('/').next() {
            return false;
        }
    }
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return filter_levels.next().is_none(),
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) => {
                if f != t {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

/// Splits a shared subscription filter `$share/<group>/<filter>` into `(group, filter)`.
///
/// Returns `None` when `filter` is not a well-formed shared subscription: no `$share/`
/// prefix, an empty group name, a group name containing `+` or `#` [MQTT-4.8.2-2], or an
/// empty filter after the group [MQTT-4.8.2-1]. A malformed `$share/...` filter is a
/// protocol error the session reports before it ever reaches the trie.
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARED_PREFIX)?;
    let (group, inner) = rest.split_once('/')?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return None;
    }
    Some((group, inner))
}

/// Splits off the first level of `rest`: `(level, remaining)`, where `remaining` is `None`
/// once the last level has been taken. `Some("")` means one more, empty, level follows
/// (`"a/"` has the levels `a` and ``).
pub(crate) fn next_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, remaining)) => (level, Some(remaining)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_multi_level_wildcard() {
        // MQTT 3.1.1 §4.7.1.2 / MQTT 5 §4.7.1.2.
        let f = "sport/tennis/player1/#";
        assert!(matches(f, "sport/tennis/player1"));
        assert!(matches(f, "sport/tennis/player1/ranking"));
        assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
        assert!(!matches(f, "sport/tennis/player2"));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "sport/tennis"));
        assert!(matches("#", "/"));
    }

    #[test]
    fn spec_examples_single_level_wildcard() {
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis/player1"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        // [MQTT-4.7.2-1]
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(!matches("+", "$"));
        // Only the first level counts.
        assert!(matches("a/+", "a/$b"));
        assert!(matches("a/#", "a/$b/c"));
    }

    #[test]
    fn empty_levels() {
        assert!(matches("a//b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(!matches("a/b", "a//b"));
        assert!(matches("a/#", "a/"));
        assert!(matches("", ""));
        assert!(matches("+", ""));
        assert!(!matches("a", "a/"));
    }

    #[test]
    fn hash_not_last_matches_nothing() {
        assert!(!matches("a/#/b", "a/x/b"));
        assert!(!matches("#/a", "a"));
    }

    #[test]
    fn split_shared_forms() {
        assert_eq!(split_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(split_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(split_shared("$share/g//"), Some(("g", "/")));
        assert_eq!(split_shared("a/b"), None);
        assert_eq!(split_shared("$share/g"), None);
        assert_eq!(split_shared("$share/g/"), None);
        assert_eq!(split_shared("$share//a"), None);
        assert_eq!(split_shared("$share/g+/a"), None);
        assert_eq!(split_shared("$share/#/a"), None);
        assert_eq!(split_shared("$SHARE/g/a"), None);
    }

    #[test]
    fn next_level_walks_levels() {
        assert_eq!(next_level("a/b"), ("a", Some("b")));
        assert_eq!(next_level("a/"), ("a", Some("")));
        assert_eq!(next_level(""), ("", None));
        assert_eq!(next_level("/"), ("", Some("")));
    }
}
