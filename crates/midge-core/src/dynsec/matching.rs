//! Matching one ACL topic against a topic name (publish) or a subscription filter
//! (subscribe/unsubscribe), with Mosquitto 2.1's `%c`/`%u` levels.
//!
//! Mosquitto 2.1 has two matchers, `mosquitto_topic_matches_sub_with_pattern` and
//! `mosquitto_sub_matches_acl_with_pattern` (lib/util_topic.c). Both answer like MQTT
//! filter matching level by level, with these rules reproduced here:
//!
//! - an empty ACL or target matches nothing;
//! - an ACL starting with `$` matches only targets starting with `$`, and the other way
//!   round (so `#` never grants `$SYS/...` or `$CONTROL/...`);
//! - `#` matches its parent level and everything below (`a/#` covers `a`);
//! - against a subscription, ACL `+` covers a `+` level but not a `#` level, and a literal
//!   ACL level covers only the same literal;
//! - a level that is exactly `%c` or `%u` stands for the client id or username; an empty or
//!   missing value matches nothing.
//!
//! One deliberate difference: Mosquitto compares a substituted identity with the target
//! level only up to the next `/` of the target, so client id `abc` under `%c/x` is granted
//! `ab/x` as well; here the level must equal the identity, and an identity containing `/`,
//! `+` or `#` never matches (it could otherwise widen a subscription).
//!
//! Nothing here allocates: the broker checks every delivered message.

/// Whether `acl` covers `target`. `subscription` is true when `target` is a subscription
/// filter; `patterns` enables `%c`/`%u` levels.
pub(crate) fn acl_matches(
    acl: &str,
    target: &str,
    client_id: &str,
    username: Option<&str>,
    subscription: bool,
    patterns: bool,
) -> bool {
    if acl.is_empty() || target.is_empty() {
        return false;
    }
    if acl.starts_with('$') != target.starts_with('$') {
        return false;
    }
    let mut acl_levels = acl.split('/');
    let mut target_levels = target.split('/');
    loop {
        match (acl_levels.next(), target_levels.next()) {
            (Some("#"), _) => return acl_levels.next().is_none(),
            (Some(a), Some(t)) => {
                let ok = match a {
                    "+" => !(subscription && t == "#"),
                    "%c" if patterns => substitutable(client_id) && t == client_id,
                    "%u" if patterns => username.is_some_and(|u| substitutable(u) && t == u),
                    _ => a == t,
                };
                if !ok {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

fn substitutable(identity: &str) -> bool {
    !identity.is_empty() && !identity.contains(['/', '+', '#'])
}

#[cfg(test)]
mod tests {
    use super::acl_matches;

    fn publish(acl: &str, topic: &str) -> bool {
        acl_matches(acl, topic, "cid", Some("user"), false, true)
    }

    fn subscribe(acl: &str, filter: &str) -> bool {
        acl_matches(acl, filter, "cid", Some("user"), true, true)
    }

    #[test]
    fn publish_matching() {
        assert!(publish("a/#", "a"));
        assert!(publish("a/#", "a/b/c"));
        assert!(publish("a/+/#", "a/b"));
        assert!(!publish("a/+/#", "a"));
        assert!(publish("a/+", "a/"));
        assert!(!publish("a/+", "a"));
        assert!(!publish("#", "$SYS/x"));
        assert!(!publish("#", "$CONTROL/dynamic-security/v1"));
        assert!(publish("$SYS/#", "$SYS/x"));
        assert!(!publish("$SYS/#", "SYS/x"));
        assert!(!publish("", "a"));
        assert!(!publish("#", ""));
        assert!(!publish("a/#/b", "a/x/b"));
    }

    #[test]
    fn subscription_matching() {
        assert!(subscribe("a/+", "a/+"));
        assert!(!subscribe("a/+", "a/#"));
        assert!(subscribe("a/#", "a/#"));
        assert!(subscribe("a/#", "a/+/b"));
        assert!(subscribe("a/#", "a"));
        assert!(!subscribe("a/b", "a/+"));
        assert!(subscribe("#", "#"));
        assert!(!subscribe("#", "$SYS/#"));
        assert!(subscribe("+/b", "x/b"));
    }

    #[test]
    fn substitution_is_whole_level_only() {
        assert!(publish("dev/%c/#", "dev/cid/x"));
        assert!(!publish("dev/%c/#", "dev/ci/x"));
        assert!(!publish("dev/%c/#", "dev/cidx/x"));
        assert!(publish("usr/%u", "usr/user"));
        assert!(!publish("usr/x%u", "usr/xuser"));
        assert!(publish("usr/x%u", "usr/x%u"));
        assert!(subscribe("dev/%c/+", "dev/cid/+"));
        assert!(!subscribe("dev/%c/+", "dev/+/+"));
        // No username: `%u` matches nothing.
        assert!(!acl_matches("usr/%u", "usr/", "cid", None, false, true));
        // Identities with wildcards or slashes never match.
        assert!(!acl_matches("dev/%c", "dev/+", "+", None, true, true));
        assert!(!acl_matches("dev/%c", "dev/a/b", "a/b", None, false, true));
        // Without patterns the text is literal.
        assert!(acl_matches("dev/%c", "dev/%c", "cid", None, false, false));
        assert!(!acl_matches("dev/%c", "dev/cid", "cid", None, false, false));
    }
}
