//! Mosquitto's `acl_file`: who may publish, receive and subscribe where.
//!
//! [`parse`] reads the file's text into an immutable [`AclFile`], which the broker shares
//! behind an `Arc` and replaces whole on reload. [`AclFile::check`] answers one question
//! the way Mosquitto 2.0.11 does (`mosquitto_acl_check` plus the default `acl_file`
//! check); every rule below was tried against Debian's mosquitto 2.0.11:
//!
//! - `topic` lines before the first `user` line are the anonymous clients' rules; those
//!   after `user <name>` are that username's (several blocks for one name add up). A
//!   client sees only its own list: a username with no block gets no anonymous rules.
//! - In a list, a matching `deny` wins over every grant, wherever it is written; otherwise
//!   a matching grant with the right access allows.
//! - If the list did not decide, `pattern` lines apply to everyone, anonymous clients
//!   included (but lines with `%u` are skipped for them), with the same deny-first rule.
//!   A grant in the client's own list is final: a `pattern deny` cannot take it back.
//! - Once the file has any `pattern` line, a client whose username or client id contains
//!   `+` or `#` gets nothing from patterns (CVE-2017-7650).
//! - Nothing granted means denied: an empty file denies every read and write
//!   (CVE-2018-12550).
//! - `$SYS/...` can never be written except `$SYS/broker/connection/+/state` (and only if
//!   a rule grants it); `$share/...` can never be read or written; wildcard rules do not
//!   match `$` topics ([`dollar_topic_allowed`]).
//! - **SUBSCRIBE is never refused.** Mosquitto 2.0.11's `acl_file` check returns success
//!   for every subscription ("FIXME - implement ACL subscription strings"): `#`, `$SYS/#`,
//!   filters no rule mentions, even with an empty file, all get their granted QoS in the
//!   SUBACK. What a subscriber may *receive* is decided per message by [`Access::Read`].
//!
//! A zero-length username is anonymous here, as in Mosquitto: a client connecting with
//! username `""` gets the anonymous section and no `%u` patterns.

mod error;
mod parse;
mod pattern;

use std::collections::HashMap;

pub use error::AclError;
pub use parse::parse;

use pattern::{filter_matches, Pattern};

/// Access bit: a message may be delivered to the client.
const READ: u8 = 1;
/// Access bit: the client may publish.
const WRITE: u8 = 2;

/// What a client wants to do with a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A message on this topic name is delivered to the client (live, retained on
    /// subscribe, or queued for an offline session).
    Read,
    /// The client publishes to this topic name (including its will message).
    Write,
    /// The client subscribes to this topic filter. Always allowed by an ACL file.
    Subscribe,
    /// The client unsubscribes from this topic filter. Always allowed by an ACL file;
    /// dynamic security roles can deny it.
    Unsubscribe,
}

/// A parsed `acl_file`: immutable, cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct AclFile {
    /// `topic` lines before the first `user` line.
    anonymous: Rules,
    /// `topic` lines of each `user` block, by username.
    users: HashMap<Box<str>, Rules>,
    /// `pattern` lines, denies first, then grants in file order.
    patterns: Vec<PatternRule>,
    /// `file:line: message` lines for the broker to log.
    warnings: Vec<String>,
}

/// One client list (the anonymous section or a user's blocks).
#[derive(Debug, Clone, Default)]
struct Rules {
    denies: Vec<Box<str>>,
    grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    filter: Box<str>,
    /// [`READ`], [`WRITE`] or both.
    access: u8,
}

#[derive(Debug, Clone)]
struct PatternRule {
    pattern: Pattern,
    /// [`READ`], [`WRITE`], both, or 0 for `deny`.
    access: u8,
}

impl Rules {
    fn add(&mut self, filter: &str, access: u8) {
        if access == 0 {
            self.denies.push(filter.into());
        } else {
            self.grants.push(Grant {
                filter: filter.into(),
                access,
            });
        }
    }

    fn is_empty(&self) -> bool {
        self.denies.is_empty() && self.grants.is_empty()
    }

    /// `Some(decision)` if a rule of this list matches `topic` for `bit`, `None` to go on
    /// to the patterns.
    fn decide(&self, topic: &str, bit: u8) -> Option<bool> {
        if self.denies.iter().any(|f| filter_matches(f.bytes(), topic)) {
            return Some(false);
        }
        self.grants
            .iter()
            .any(|g| g.access & bit != 0 && filter_matches(g.filter.bytes(), topic))
            .then_some(true)
    }
}

impl AclFile {
    /// Whether `client` may do `access` on `topic` (a topic name for Read/Write, a topic
    /// filter for Subscribe).
    ///
    /// `username` is the authenticated username (`None` or `Some("")` for anonymous
    /// clients); `client_id` is the client's final id (assigned ids included). Bridges
    /// are the broker's business: Mosquitto skips the check entirely for its own bridge
    /// connections. Allocation-free: the broker calls this for every delivered message.
    pub fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        topic: &str,
        access: Access,
    ) -> bool {
        if !dollar_topic_allowed(topic, access) {
            return false;
        }
        let bit = match access {
            Access::Subscribe | Access::Unsubscribe => return true,
            Access::Read => READ,
            Access::Write => WRITE,
        };
        // Mosquitto's matcher reports a topic name with a wildcard, or an empty one, as
        // invalid and never matches it. The codec refuses them first; stay closed anyway.
        if topic.is_empty() || topic.contains(['+', '#']) {
            return false;
        }
        let username = username.filter(|name| !name.is_empty());
        let rules = match username {
            None => Some(&self.anonymous),
            Some(name) => self.users.get(name),
        };
        if let Some(decision) = rules.and_then(|rules| rules.decide(topic, bit)) {
            return decision;
        }
        if self.patterns.is_empty() {
            return false;
        }
        // CVE-2017-7650: `#` as a username would turn `%u` into a wildcard. Mosquitto
        // refuses every pattern check for such clients, even patterns without `%u`/`%c`.
        let has_wildcard = |s: &str| s.contains(['+', '#']);
        if username.is_some_and(has_wildcard) || has_wildcard(client_id) {
            return false;
        }
        for rule in &self.patterns {
            if rule.pattern.uses_username() && username.is_none() {
                continue;
            }
            if rule.pattern.matches(client_id, username, topic) {
                if rule.access == 0 {
                    return false;
                }
                if rule.access & bit != 0 {
                    return true;
                }
            }
        }
        false
    }

    /// Warnings found while parsing, each `file:line: message`, for the broker to log:
    /// `pattern` lines without `%c`/`%u` (Mosquitto's warning) and `topic`/`pattern` lines
    /// whose single word is read as the topic (`topic read` grants readwrite on `read`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether the file has no rule at all, which denies every read and write.
    pub fn is_empty(&self) -> bool {
        self.anonymous.is_empty()
            && self.users.values().all(Rules::is_empty)
            && self.patterns.is_empty()
    }
}

/// Mosquitto's checks on `$` topics, made before any ACL and even without an `acl_file`
/// (`acl__check_dollar`): a topic starting with `$SYS` can only be written if it matches
/// `$SYS/broker/connection/+/state` (bridge notifications), and a topic starting with
/// `$share` can only be subscribed to. Both are plain prefix tests, as in Mosquitto:
/// `$SYSX/a` counts as `$SYS`. [`AclFile::check`] applies this itself; the broker calls
/// it directly when no ACL file is configured.
pub fn dollar_topic_allowed(topic: &str, access: Access) -> bool {
    if topic.starts_with("$SYS") {
        access != Access::Write || filter_matches("$SYS/broker/connection/+/state".bytes(), topic)
    } else if topic.starts_with("$share") {
        matches!(access, Access::Subscribe | Access::Unsubscribe)
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{dollar_topic_allowed, parse, Access, AclFile};
    use crate::topic;

    const ALLOW: bool = true;
    const DENY: bool = false;

    /// One decision: `user`, `client`, `topic`, `access` → `allowed`.
    struct Row {
        access: Access,
        user: Option<&'static str>,
        client: &'static str,
        topic: &'static str,
        allowed: bool,
    }

    /// Publish (the MQTT 5 PUBACK reason code says 0x10/0x00 allowed, 0x87 refused).
    const fn w(
        user: Option<&'static str>,
        client: &'static str,
        topic: &'static str,
        allowed: bool,
    ) -> Row {
        Row {
            access: Access::Write,
            user,
            client,
            topic,
            allowed,
        }
    }

    /// Receive (a retained message on `topic` is delivered on an exact subscription, or not).
    const fn r(
        user: Option<&'static str>,
        client: &'static str,
        topic: &'static str,
        allowed: bool,
    ) -> Row {
        Row {
            access: Access::Read,
            user,
            client,
            topic,
            allowed,
        }
    }

    /// Subscribe (SUBACK granted QoS, or 0x80/0x87).
    const fn s(
        user: Option<&'static str>,
        client: &'static str,
        topic: &'static str,
        allowed: bool,
    ) -> Row {
        Row {
            access: Access::Subscribe,
            user,
            client,
            topic,
            allowed,
        }
    }

    /// An ACL file and the decisions Mosquitto 2.0.11 made with it. Every row was run
    /// against Debian's mosquitto 2.0.11 (`acl_file` set, `allow_anonymous true`, no
    /// password file so any username is accepted) from raw MQTT 5 clients; the comment
    /// says what the broker did. "0x10" stands for a successful PUBACK (0x00 when a
    /// subscriber happened to be connected).
    struct Scenario {
        name: &'static str,
        acl: &'static str,
        rows: &'static [Row],
    }

    #[rustfmt::skip]
    const SCENARIOS: &[Scenario] = &[
        Scenario {
            name: "anonymous section and user blocks",
            acl: "topic read anon/r\ntopic write anon/w\ntopic anon/rw\nuser alice\ntopic read a/r\ntopic write a/w\ntopic readwrite a/rw\ntopic readwrite a/rw/#\ntopic deny a/rw/secret\n",
            rows: &[
                w(None, "c1", "anon/r", DENY),                  // PUBACK 0x87: read only
                w(None, "c2", "anon/w", ALLOW),                 // 0x10
                w(None, "c3", "anon/rw", ALLOW),                // 0x10: no access word = readwrite
                w(None, "c4", "x", DENY),                       // 0x87: no rule
                r(None, "c5", "anon/r", ALLOW),                 // delivered
                r(None, "c6", "anon/w", DENY),                  // not delivered: write only
                r(None, "c7", "anon/rw", ALLOW),                // delivered
                r(None, "c8", "x", DENY),                       // not delivered
                w(Some("alice"), "c9", "a/r", DENY),            // 0x87
                w(Some("alice"), "c10", "a/w", ALLOW),          // 0x10
                w(Some("alice"), "c11", "a/rw", ALLOW),         // 0x10
                w(Some("alice"), "c12", "a/rw/secret", DENY),   // 0x87: deny written after the grant still wins
                w(Some("alice"), "c13", "a/rw/x", ALLOW),       // 0x10
                w(Some("alice"), "c14", "anon/w", DENY),        // 0x87: users do not get the anonymous section
                r(Some("alice"), "c15", "a/r", ALLOW),          // delivered
                r(Some("alice"), "c16", "a/w", DENY),           // not delivered
                r(Some("alice"), "c17", "a/rw/secret", DENY),   // not delivered
                w(Some("bob"), "c18", "a/w", DENY),             // 0x87: a username without a block has no rules
                w(Some("bob"), "c19", "anon/w", DENY),          // 0x87: nor the anonymous ones
                s(None, "c20", "x/#", ALLOW),                   // SUBACK 0x01: subscribing is never refused
                s(Some("bob"), "c21", "#", ALLOW),              // SUBACK 0x01
                s(Some("alice"), "c22", "$SYS/#", ALLOW),       // SUBACK 0x01
            ],
        },
        Scenario {
            name: "empty file (CVE-2018-12550)",
            acl: "",
            rows: &[
                w(None, "e1", "x", DENY),                              // 0x87
                w(Some("alice"), "e2", "x", DENY),                     // 0x87
                r(None, "e3", "$SYS/broker/version", DENY),            // not delivered
                r(Some("alice"), "e4", "$SYS/broker/version", DENY),   // not delivered
                s(None, "e5", "#", ALLOW),                             // SUBACK 0x01
                s(Some("alice"), "e6", "a/b", ALLOW),                  // SUBACK 0x01 (MQTT 3.1.1 too)
            ],
        },
        Scenario {
            name: "comments only (CVE-2018-12550)",
            acl: "# nothing but comments\n\n#topic readwrite #\n   \n",
            rows: &[
                w(None, "e7", "x", DENY),                              // 0x87
                w(Some("alice"), "e8", "topic", DENY),                 // 0x87
                r(None, "e9", "$SYS/broker/version", DENY),            // not delivered
                s(None, "e10", "#", ALLOW),                            // SUBACK 0x01
            ],
        },
        Scenario {
            name: "$SYS and other $ topics",
            acl: "topic read $SYS/#\nuser alice\ntopic readwrite #\nuser bob\ntopic readwrite $SYS/#\ntopic write $SYSX/#\ntopic write $share/#\ntopic readwrite $foo/#\nuser carol\ntopic readwrite +/broker/#\n",
            rows: &[
                r(None, "d1", "$SYS/broker/version", ALLOW),                      // delivered (the broker's own retained message)
                r(Some("alice"), "d2", "$SYS/broker/version", DENY),              // not delivered: `#` does not match `$` topics
                r(Some("bob"), "d3", "$SYS/broker/version", ALLOW),               // delivered
                r(Some("carol"), "d4", "$SYS/broker/version", DENY),              // not delivered: nor does a leading `+`
                w(Some("bob"), "d5", "$SYS/foo", DENY),                           // 0x87 despite `topic readwrite $SYS/#`
                w(Some("bob"), "d6", "$SYS/broker/connection/x/state", ALLOW),    // 0x10: bridge notifications
                w(Some("bob"), "d7", "$SYS/broker/connection//state", ALLOW),     // 0x10
                w(Some("bob"), "d8", "$SYS/broker/connection/a/b/state", DENY),   // 0x87
                w(Some("bob"), "d9", "$SYS", DENY),                               // 0x87
                w(Some("alice"), "d10", "$SYS/broker/connection/x/state", DENY),  // 0x87: still needs a rule
                w(Some("bob"), "d11", "$SYSX/a", DENY),                           // 0x87: a prefix test, like Mosquitto's
                w(Some("bob"), "d12", "$share/g/x", DENY),                        // 0x87: never published to
                w(Some("bob"), "d13", "$foo/bar", ALLOW),                         // 0x10: other `$` topics follow the rules
                w(Some("alice"), "d14", "$foo/bar", DENY),                        // 0x87
                r(Some("bob"), "d15", "$foo/bar", ALLOW),                         // delivered
                r(Some("alice"), "d16", "$foo/bar", DENY),                        // not delivered
                s(Some("alice"), "d17", "$share/g/x", ALLOW),                     // SUBACK 0x01
                s(Some("eve"), "d18", "$SYS/#", ALLOW),                           // SUBACK 0x01
            ],
        },
        Scenario {
            name: "patterns: %c and %u substituted anywhere",
            acl: "pattern readwrite dev/%c/#\npattern readwrite usr/%u/#\npattern readwrite mix/%u/%c\npattern readwrite lit/%c-x\npattern readwrite pre/x%c\npattern readwrite end/%c\npattern readwrite plain/#\npattern readwrite both/%u%c\n",
            rows: &[
                w(None, "abc", "dev/abc/t", ALLOW),             // 0x10: patterns apply to anonymous clients
                w(None, "abc", "dev/abd/t", DENY),              // 0x87
                w(None, "abc", "dev/abc", ALLOW),               // 0x10
                w(None, "abc", "end/ab", DENY),                 // 0x87
                w(None, "abc", "end/abcd", DENY),               // 0x87
                w(None, "abc", "end/abc", ALLOW),               // 0x10
                w(Some("alice"), "p1", "usr/alice/x", ALLOW),   // 0x10
                w(Some("alice"), "p2", "usr/bob/x", DENY),      // 0x87
                w(None, "p3", "usr//x", DENY),                  // 0x87: `%u` lines are skipped for anonymous clients
                w(Some("alice"), "cc", "mix/alice/cc", ALLOW),  // 0x10
                w(Some("alice"), "cc", "mix/alice/cd", DENY),   // 0x87
                w(None, "abc", "lit/abc-x", ALLOW),             // 0x10: not only as a whole level
                w(None, "abc", "lit/%c-x", DENY),               // 0x87
                w(None, "abc", "pre/xabc", ALLOW),              // 0x10
                w(None, "abc", "pre/x%c", DENY),                // 0x87
                w(None, "p4", "plain/a", ALLOW),                // 0x10: a pattern without placeholders
                w(Some("alice"), "p5", "plain/a", ALLOW),       // 0x10
                w(Some("u"), "c", "both/uc", ALLOW),            // 0x10
                w(Some("u"), "c", "both/%u%c", DENY),           // 0x87
                w(Some("a/b"), "p8", "usr/a/b/x", ALLOW),       // 0x10: `/` in a username spans levels
                w(None, "a/b", "dev/a/b/x", ALLOW),             // 0x10: and in a client id
                r(None, "abc", "dev/abc/t", ALLOW),             // delivered
                r(None, "abd", "dev/abc/t", DENY),              // not delivered
                r(Some("alice"), "p6", "usr/alice/x", ALLOW),   // delivered
                r(Some("bob"), "p7", "usr/alice/x", DENY),      // not delivered
            ],
        },
        Scenario {
            name: "patterns with $ identities",
            acl: "pattern readwrite %c/#\npattern readwrite +/%u\n",
            rows: &[
                r(None, "$foo", "$foo/x", ALLOW),               // delivered: the substituted filter starts with `$`
                w(Some("$u"), "i2", "$x/$u", DENY),             // 0x87: a leading `+` never matches `$`
                w(None, "i3", "i3/x", ALLOW),                   // 0x10
            ],
        },
        Scenario {
            name: "CVE-2017-7650: + and # in identities",
            acl: "pattern readwrite cve/%u\npattern readwrite cid/%c\npattern readwrite usr/%u/#\npattern readwrite plain/#\nuser a+b\ntopic readwrite own/#\nuser #\ntopic readwrite hash/#\n",
            rows: &[
                w(Some("#"), "v1", "cve/victim", DENY),         // 0x87: `cve/%u` would be `cve/#`
                w(None, "#", "cid/victim", DENY),               // 0x87
                w(None, "+", "cid/victim", DENY),               // 0x87: `cid/+`
                r(None, "+", "cid/victim", DENY),               // not delivered
                w(None, "a+b", "plain/a", DENY),                // 0x87: every pattern is off, even without placeholders
                w(None, "a#b", "plain/a", DENY),                // 0x87
                w(Some("a+b"), "v2", "plain/a", DENY),          // 0x87
                w(Some("a+b"), "v3", "own/x", ALLOW),           // 0x10: the user's own block still applies
                w(Some("#"), "v4", "hash/x", ALLOW),            // 0x10
                w(Some("a/b"), "v5", "usr/a/b/x", ALLOW),       // 0x10: `/` is allowed (1.4.13)
                w(None, "ok", "cid/ok", ALLOW),                 // 0x10
                s(None, "a+b", "plain/a", ALLOW),               // SUBACK 0x01
            ],
        },
        Scenario {
            name: "CVE-2017-7650 check only with patterns",
            acl: "topic readwrite anon/#\nuser a+b\ntopic readwrite own/#\n",
            rows: &[
                w(Some("a+b"), "n1", "own/x", ALLOW),           // 0x10
                w(None, "+", "anon/x", ALLOW),                  // 0x10: no pattern line, no identity check
                w(None, "n2", "own/x", DENY),                   // 0x87
            ],
        },
        Scenario {
            name: "deny first, own list before patterns",
            acl: "pattern deny pd/%c\npattern readwrite pd/#\npattern readwrite ud/#\npattern readwrite pg/#\npattern read pr/#\npattern readwrite pr/#\npattern deny pr/%u\npattern readwrite skip/#\npattern deny skip/%u/#\ntopic readwrite anon/#\ntopic deny anon/secret\nuser alice\ntopic readwrite pd/#\ntopic deny ud/#\ntopic read pw/#\nuser bob\nuser carol\ntopic write c1/#\nuser alice\ntopic read alice2/#\n",
            rows: &[
                w(None, "o1", "anon/x", ALLOW),                 // 0x10
                w(None, "o2", "anon/secret", DENY),             // 0x87: deny written after the grant
                w(Some("alice"), "o3", "pd/o3", ALLOW),         // 0x10: own grant is final, `pattern deny pd/%c` unseen
                w(Some("bob"), "o4", "pd/o4", DENY),            // 0x87: no own rule, pattern deny first
                w(None, "o5", "pd/o5", DENY),                   // 0x87: anonymous clients get `%c` patterns
                w(None, "o6", "pd/x", ALLOW),                   // 0x10
                w(Some("alice"), "o7", "ud/x", DENY),           // 0x87: own deny is final, pattern grant unseen
                w(Some("alice"), "o8", "pg/x", ALLOW),          // 0x10: own list silent, patterns decide
                w(Some("alice"), "o9", "pw/x", DENY),           // 0x87: a read grant does not give write
                r(Some("alice"), "o10", "pw/x", ALLOW),         // delivered
                w(Some("carol"), "o11", "pr/carol", DENY),      // 0x87: pattern deny written last still first
                w(Some("carol"), "o12", "pr/x", ALLOW),         // 0x10
                w(None, "o13", "skip//x", ALLOW),               // 0x10: a `%u` deny is skipped for anonymous clients
                w(Some("dave"), "o14", "skip/dave/x", DENY),    // 0x87
                r(Some("alice"), "o15", "alice2/x", ALLOW),     // delivered: a second block adds to the first
                w(Some("alice"), "o16", "alice2/x", DENY),      // 0x87
                w(Some("bob"), "o17", "pg/x", ALLOW),           // 0x10: a `user` line without topics, patterns only
                w(Some("bob"), "o18", "c1/x", DENY),            // 0x87
                w(Some("carol"), "o19", "c1/x", ALLOW),         // 0x10
            ],
        },
        Scenario {
            name: "zero-length username is anonymous",
            acl: "topic read #\ntopic write anon/#\npattern write usr/%u/#\n",
            rows: &[
                w(Some(""), "z1", "anon/x", ALLOW),             // 0x10 (MQTT 3.1.1: delivered to a reader)
                w(Some(""), "z2", "usr//x", DENY),              // 0x87 (MQTT 3.1.1: not delivered)
                r(Some(""), "z3", "anon/x", ALLOW),             // delivered
            ],
        },
        Scenario {
            name: "spaces, odd lines, Windows line endings",
            acl: "topic deny\ntopic read\ntopic read a b/c d \ntopic readwrite lit/%c\ntopic read  sp/x  \r\n  topic write lead/x\nuser a b c\ntopic readwrite abc/#\nuser  spaced  \ntopic write sp2/#\nuser tab\ntopic write \ttab/x\t\n",
            rows: &[
                w(None, "y1", "deny", ALLOW),                   // 0x10: `topic deny` is readwrite on the topic `deny`
                r(None, "y2", "deny", ALLOW),                   // delivered
                w(None, "y3", "read", ALLOW),                   // 0x10: `topic read` likewise
                r(None, "y4", "a b/c d", ALLOW),                // delivered: spaces inside, trailing space trimmed
                w(None, "y5", "a b/c d", DENY),                 // 0x87
                w(None, "x1", "lit/x1", DENY),                  // 0x87: no substitution in `topic` lines
                w(None, "y6", "lit/%c", ALLOW),                 // 0x10
                r(None, "y7", "sp/x", ALLOW),                   // delivered: CR LF and padding trimmed
                w(None, "y8", "lead/x", ALLOW),                 // 0x10: leading spaces skipped
                w(Some("a b c"), "y9", "abc/x", ALLOW),         // 0x10: a username with spaces
                w(Some("a"), "y10", "abc/x", DENY),             // 0x87
                w(Some("spaced"), "y11", "sp2/x", ALLOW),       // 0x10: the username is trimmed
                w(Some(" spaced "), "y12", "sp2/x", DENY),      // 0x87
                w(Some("tab"), "y13", "tab/x", ALLOW),          // 0x10: tabs around the topic trimmed
            ],
        },
        // The seed documents' ACL files.
        Scenario {
            // 000 (lucadentella.it): the file is a screenshot; its text says writeclient
            // may send to secure/data, readclient may read it, and both may send and
            // receive on open/#, with `#` comment lines.
            name: "seed 000: writeclient and readclient",
            acl: "# writeclient may publish secure/data\nuser writeclient\ntopic write secure/data\ntopic readwrite open/#\n\n# readclient may receive secure/data\nuser readclient\ntopic read secure/data\ntopic readwrite open/#\n",
            rows: &[
                w(Some("readclient"), "sa1", "secure/data", DENY),    // 0x87: "not allowed to do that", logged
                w(Some("writeclient"), "sa2", "secure/data", ALLOW),  // 0x10
                r(Some("readclient"), "sa3", "secure/data", ALLOW),   // delivered: "correctly routed"
                r(Some("writeclient"), "sa4", "secure/data", DENY),   // not delivered
                w(Some("readclient"), "sa5", "open/x", ALLOW),        // 0x10
                r(Some("writeclient"), "sa6", "open/x", ALLOW),       // delivered
                w(None, "sa7", "open/x", DENY),                       // 0x87
            ],
        },
        Scenario {
            name: "seed 002: device1 and dashboard",
            acl: "# aclfile.txt example\n# User device1 can publish to sensors/temperature/livingroom\n# and subscribe to sensors/temperature/#\nuser device1\ntopic write sensors/temperature/livingroom\ntopic read sensors/temperature/#\n# User dashboard can only subscribe to all sensor data\nuser dashboard\ntopic read sensors/#\n",
            rows: &[
                w(Some("device1"), "sb1", "sensors/temperature/livingroom", ALLOW),  // 0x10
                w(Some("device1"), "sb2", "sensors/temperature/kitchen", DENY),      // 0x87
                r(Some("device1"), "sb3", "sensors/temperature/kitchen", ALLOW),     // delivered
                r(Some("device1"), "sb4", "sensors/humidity/kitchen", DENY),         // not delivered
                s(Some("device1"), "sb5", "sensors/temperature/#", ALLOW),           // SUBACK 0x01
                s(Some("device1"), "sb6", "sensors/#", ALLOW),                       // SUBACK 0x01: delivery is what is filtered
                r(Some("dashboard"), "sb7", "sensors/humidity/kitchen", ALLOW),      // delivered
                r(Some("dashboard"), "sb8", "sensors/temperature/livingroom", ALLOW),// delivered
                w(Some("dashboard"), "sb9", "sensors/temperature/livingroom", DENY), // 0x87: "can only subscribe"
                r(Some("dashboard"), "sb10", "other/x", DENY),                       // not delivered
            ],
        },
        Scenario {
            // The same file as the seed page prints it, run together on one line: one
            // comment, so an empty ACL.
            name: "seed 002 printed on one line",
            acl: "# aclfile.txt example # User device1 can publish to sensors/temperature/livingroom # and subscribe to sensors/temperature/# user device1 topic write sensors/temperature/livingroom topic read sensors/temperature/# # User dashboard can only subscribe to all sensor data user dashboard topic read sensors/#\n",
            rows: &[
                w(Some("device1"), "sc1", "sensors/temperature/livingroom", DENY),   // 0x87
                r(Some("dashboard"), "sc2", "sensors/x", DENY),                      // not delivered
            ],
        },
        Scenario {
            name: "seed 004: user forward behind a bridge",
            acl: "user forward\ntopic readwrite mqtt/#\n",
            rows: &[
                w(Some("forward"), "sf1", "mqtt/test", ALLOW),                          // 0x10: mosquitto_pub -u forward -t mqtt/test
                s(Some("forward"), "sf2", "#", ALLOW),                                  // SUBACK 0x01: the bridge's `topic # in 0`
                r(Some("forward"), "sf3", "mqtt/test", ALLOW),                          // delivered to the bridge
                w(Some("forward"), "sf4", "other/test", DENY),                          // 0x87: "will not receive any messages"
                r(Some("forward"), "sf5", "other/test", DENY),                          // not delivered
                w(Some("forward"), "sf6", "$SYS/broker/connection/sf6/state", DENY),    // 0x87: the bridge's notification has no rule
                w(None, "sf7", "mqtt/test", DENY),                                      // 0x87
            ],
        },
        Scenario {
            name: "seed 004: anonymous variant",
            acl: "topic readwrite mqtt/#\n",
            rows: &[
                w(None, "sg1", "mqtt/test", ALLOW),             // 0x10
                r(None, "sg2", "mqtt/test", ALLOW),             // delivered
                s(None, "sg3", "#", ALLOW),                     // SUBACK 0x01
                w(None, "sg4", "other/test", DENY),             // 0x87
                r(None, "sg5", "other/test", DENY),             // not delivered
                w(Some("forward"), "sg6", "mqtt/test", DENY),   // 0x87: a username is not anonymous
            ],
        },
        Scenario {
            // 003 (the Mosquitto 2.1 documentation) and mosquitto.conf(5) examples.
            name: "seed 003: documentation patterns",
            acl: "pattern write sensor/%u/data\npattern write $SYS/broker/connection/%c/state\n",
            rows: &[
                w(Some("s1"), "sh1", "sensor/s1/data", ALLOW),                          // 0x10
                w(Some("s1"), "sh2", "sensor/s2/data", DENY),                           // 0x87
                r(Some("s1"), "sh3", "sensor/s1/data", DENY),                           // not delivered: write only
                w(None, "sh4", "sensor//data", DENY),                                   // 0x87
                w(None, "bridge-01", "$SYS/broker/connection/bridge-01/state", ALLOW),  // 0x10
                w(None, "bridge-02", "$SYS/broker/connection/bridge-01/state", DENY),   // 0x87
                w(None, "bridge-01", "$SYS/broker/connection/bridge-01/other", DENY),   // 0x87
            ],
        },
    ];

    #[test]
    fn scenarios_decide_as_mosquitto() {
        let mut failures = Vec::new();
        for scenario in SCENARIOS {
            let acl = parse(scenario.acl, "acl")
                .unwrap_or_else(|error| panic!("{}: {error}", scenario.name));
            for row in scenario.rows {
                let got = acl.check(row.user, row.client, row.topic, row.access);
                if got != row.allowed {
                    failures.push(format!(
                        "{}: {:?} user {:?} client {:?} topic {:?}: got {got}, Mosquitto {}",
                        scenario.name, row.access, row.user, row.client, row.topic, row.allowed
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_scenario_shows_grants_and_denials() {
        // Guards the tables themselves: each rule type is shown allowed *and* denied. Only
        // files without rules (deny-all) have no granted read or write.
        for scenario in SCENARIOS {
            let acl = parse(scenario.acl, "acl").expect("valid");
            let denies = scenario.rows.iter().any(|row| !row.allowed);
            let grants = scenario
                .rows
                .iter()
                .any(|row| row.allowed && row.access != Access::Subscribe);
            assert!(denies, "{} never denies", scenario.name);
            assert_eq!(grants, !acl.is_empty(), "{}", scenario.name);
        }
    }

    #[test]
    fn wildcard_or_empty_topic_names_are_never_granted() {
        // Unreachable in Mosquitto (the codec refuses such PUBLISH topics first), where the
        // matcher calls them invalid and matches nothing; Midge stays closed too.
        let acl = parse("topic readwrite #\npattern readwrite #\n", "acl").expect("valid");
        for topic_name in ["", "+", "#", "a/+", "a/#"] {
            assert!(
                !acl.check(None, "c", topic_name, Access::Write),
                "{topic_name:?}"
            );
            assert!(
                !acl.check(None, "c", topic_name, Access::Read),
                "{topic_name:?}"
            );
        }
        assert!(acl.check(None, "c", "a/b", Access::Read));
    }

    #[test]
    fn dollar_rules_without_an_acl_file() {
        assert!(!dollar_topic_allowed("$SYS/x", Access::Write));
        assert!(dollar_topic_allowed(
            "$SYS/broker/connection/b/state",
            Access::Write
        ));
        assert!(dollar_topic_allowed("$SYS/x", Access::Read));
        assert!(dollar_topic_allowed("$SYS/#", Access::Subscribe));
        assert!(!dollar_topic_allowed("$share/g/x", Access::Write));
        assert!(!dollar_topic_allowed("$share/g/x", Access::Read));
        assert!(dollar_topic_allowed("$share/g/x", Access::Subscribe));
        assert!(dollar_topic_allowed("$foo/x", Access::Write));
        assert!(dollar_topic_allowed("plain", Access::Write));
    }

    #[test]
    fn emptiness() {
        assert!(parse("", "acl").expect("valid").is_empty());
        assert!(parse("# c\nuser bob\n", "acl").expect("valid").is_empty());
        assert!(!parse("pattern read %c", "acl").expect("valid").is_empty());
        assert!(!parse("user bob\ntopic x", "acl").expect("valid").is_empty());
    }

    #[test]
    fn acl_file_is_shareable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<AclFile>();
    }
    /// A model of Mosquitto 2.0.11 written the way its C code is: linked lists in file
    /// order with `deny` lines moved to the front, substitution by building the string,
    /// and the reference topic matcher.
    mod model {
        use super::super::Access;
        use crate::topic;

        #[derive(Debug, Clone)]
        pub(super) enum Line {
            Topic(Option<&'static str>, String),
            Pattern(Option<&'static str>, String),
            User(&'static str),
        }

        pub(super) fn render(lines: &[Line]) -> String {
            let mut text = String::new();
            for line in lines {
                let (keyword, access, topic_text) = match line {
                    Line::Topic(access, t) => ("topic", access, t),
                    Line::Pattern(access, t) => ("pattern", access, t),
                    Line::User(name) => {
                        text.push_str(&format!("user {name}\n"));
                        continue;
                    }
                };
                match access {
                    Some(access) => text.push_str(&format!("{keyword} {access} {topic_text}\n")),
                    None => text.push_str(&format!("{keyword} {topic_text}\n")),
                }
            }
            text
        }

        /// A `mosquitto__acl` linked list: (topic, access bits), checked in order.
        type List = Vec<(String, u8)>;

        fn bits(access: Option<&str>) -> u8 {
            match access {
                Some("read") => 1,
                Some("write") => 2,
                Some("deny") => 0,
                _ => 3,
            }
        }

        fn matches(filter: &str, topic_name: &str) -> bool {
            !filter.is_empty() && !topic_name.is_empty() && topic::matches(filter, topic_name)
        }

        fn substitute(text: &str, client_id: &str, username: &str) -> String {
            let bytes = text.as_bytes();
            let mut out = String::new();
            let mut i = 0;
            while i < bytes.len() {
                if i + 1 < bytes.len() && bytes[i] == b'%' && bytes[i + 1] == b'c' {
                    out.push_str(client_id);
                    i += 2;
                } else if i + 1 < bytes.len() && bytes[i] == b'%' && bytes[i + 1] == b'u' {
                    out.push_str(username);
                    i += 2;
                } else {
                    out.push(bytes[i] as char);
                    i += 1;
                }
            }
            out
        }

        pub(super) fn check(
            lines: &[Line],
            username: Option<&str>,
            client_id: &str,
            topic_name: &str,
            access: Access,
        ) -> bool {
            let username = username.filter(|u| !u.is_empty());
            if topic_name.starts_with("$SYS")
                && access == Access::Write
                && !topic::matches("$SYS/broker/connection/+/state", topic_name)
            {
                return false;
            }
            if topic_name.starts_with("$share")
                && !matches!(access, Access::Subscribe | Access::Unsubscribe)
            {
                return false;
            }
            let bit = match access {
                Access::Subscribe | Access::Unsubscribe => return true,
                Access::Read => 1,
                Access::Write => 2,
            };
            // `mosquitto__acl_user` lists, by username (`None` = anonymous).
            let mut lists: Vec<(Option<&str>, List)> = Vec::new();
            let mut patterns: List = Vec::new();
            let mut user = None;
            for line in lines {
                match line {
                    Line::User(name) => user = Some(*name),
                    Line::Topic(access, t) => {
                        let index = match lists.iter().position(|(u, _)| *u == user) {
                            Some(index) => index,
                            None => {
                                lists.push((user, Vec::new()));
                                lists.len() - 1
                            }
                        };
                        let entry = (t.clone(), bits(*access));
                        if entry.1 == 0 {
                            lists[index].1.insert(0, entry);
                        } else {
                            lists[index].1.push(entry);
                        }
                    }
                    Line::Pattern(access, t) => {
                        let entry = (t.clone(), bits(*access));
                        if entry.1 == 0 {
                            patterns.insert(0, entry);
                        } else {
                            patterns.push(entry);
                        }
                    }
                }
            }
            let list = lists.iter().find(|(u, _)| *u == username);
            if let Some((_, acls)) = list {
                for (filter, acl_access) in acls {
                    if topic_name.starts_with('$') && !filter.starts_with('$') {
                        continue;
                    }
                    if matches(filter, topic_name) {
                        if *acl_access == 0 {
                            return false;
                        }
                        if acl_access & bit != 0 {
                            return true;
                        }
                    }
                }
            }
            if patterns.is_empty() {
                return false;
            }
            if username.is_some_and(|u| u.contains(['+', '#'])) || client_id.contains(['+', '#']) {
                return false;
            }
            for (text, acl_access) in &patterns {
                if text.contains("%u") && username.is_none() {
                    continue;
                }
                let local = substitute(text, client_id, username.unwrap_or(""));
                if matches(&local, topic_name) {
                    if *acl_access == 0 {
                        return false;
                    }
                    if acl_access & bit != 0 {
                        return true;
                    }
                }
            }
            false
        }
    }

    fn access_word() -> impl Strategy<Value = Option<&'static str>> {
        prop_oneof![
            Just(None),
            Just(Some("read")),
            Just(Some("write")),
            Just(Some("readwrite")),
            Just(Some("deny")),
        ]
    }

    fn acl_topic() -> impl Strategy<Value = String> {
        let level = prop_oneof![
            Just("a"),
            Just("b"),
            Just("alice"),
            Just("+"),
            Just("%c"),
            Just("%u"),
            Just("x%c"),
            Just("$SYS"),
        ];
        (prop::collection::vec(level, 1..4), any::<bool>()).prop_map(|(levels, hash)| {
            let mut text = levels.join("/");
            if hash {
                text.push_str("/#");
            }
            text
        })
    }

    fn line() -> impl Strategy<Value = model::Line> {
        prop_oneof![
            3 => (access_word(), acl_topic()).prop_map(|(a, t)| model::Line::Topic(a, t)),
            2 => (access_word(), acl_topic()).prop_map(|(a, t)| model::Line::Pattern(a, t)),
            1 => prop_oneof![Just("alice"), Just("bob"), Just("a+b")].prop_map(model::Line::User),
        ]
    }

    fn topic_name() -> impl Strategy<Value = String> {
        let level = prop_oneof![
            Just("a"),
            Just("b"),
            Just("alice"),
            Just("c1"),
            Just("xc1"),
            Just("$SYS"),
            Just(""),
        ];
        prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
    }

    /// A topic name that `template` (an ACL topic) is likely to match: wildcards filled
    /// from `fill`, placeholders substituted. Random topics alone rarely match anything.
    fn instantiate(template: &str, fill: &[&str], client_id: &str, username: &str) -> String {
        let mut fill = fill.iter().cycle();
        let mut levels = Vec::new();
        for level in template.split('/') {
            match level {
                "+" => levels.push(fill.next().copied().unwrap_or("a").to_string()),
                "#" => {
                    let extra = fill.next().map_or(0, |level| level.len() % 3);
                    levels.extend((0..extra).map(|_| "b".to_string()));
                }
                _ => levels.push(level.replace("%c", client_id).replace("%u", username)),
            }
        }
        levels.join("/")
    }

    proptest! {
        // Cheap cases, and only a few percent of random ones are grants: run many.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn check_agrees_with_the_model(
            lines in prop::collection::vec(line(), 0..8),
            username in prop_oneof![
                Just(None), Just(Some("alice")), Just(Some("bob")), Just(Some("a+b")),
                Just(Some("")), Just(Some("carol")),
            ],
            client_id in prop_oneof![Just("c1"), Just("c2"), Just("c#"), Just("x/y")],
            random_topic in topic_name(),
            pick in prop::option::of(any::<prop::sample::Index>()),
            fill in prop::collection::vec(prop_oneof![Just("a"), Just("alice"), Just("c1"), Just("")], 1..3),
            access in prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::Subscribe)],
        ) {
            // Mostly a topic one of the lines is meant to match, so grants happen.
            let templates: Vec<&str> = lines
                .iter()
                .filter_map(|line| match line {
                    model::Line::Topic(_, t) | model::Line::Pattern(_, t) => Some(t.as_str()),
                    model::Line::User(_) => None,
                })
                .collect();
            let template = pick.filter(|_| !templates.is_empty()).map(|i| *i.get(&templates));
            let topic_name = match template {
                Some(template) => {
                    let name = instantiate(template, &fill, client_id, username.unwrap_or(""));
                    if name.is_empty() || name.contains(['+', '#']) { random_topic } else { name }
                }
                None => random_topic,
            };
            let text = model::render(&lines);
            let acl = parse(&text, "acl").expect("generated files are valid");
            prop_assert_eq!(
                acl.check(username, client_id, &topic_name, access),
                model::check(&lines, username, client_id, &topic_name, access),
                "file:\n{}", text
            );
        }

        #[test]
        fn reference_matcher_is_the_one_rules_use(filter in acl_topic(), topic_name in topic_name()) {
            // `topic` lines match exactly as `topic::matches` (plus "empty matches nothing").
            let acl = parse(&format!("topic read {filter}"), "acl").expect("valid");
            prop_assert_eq!(
                acl.check(None, "c1", &topic_name, Access::Read),
                !topic_name.is_empty() && topic::matches(&filter, &topic_name)
            );
        }
    }
}
