//! Bridge topic mapping (issue 8): which filters a bridge subscribes to on each side, and how
//! a topic crosses the bridge with its `local` and `remote` prefixes, as Mosquitto's
//! `topic <pattern> [in|out|both] [qos] [local-prefix] [remote-prefix]` defines it.
//!
//! A topic crossing the bridge must start with the prefix of the side it comes from, and
//! what comes out must be a non-empty topic name inside the other side's filter: a crafted
//! topic from the remote (equal to or shorter than the prefix, empty, or outside it) is
//! dropped, never mapped to something else (CVE-2024-3935).

use crate::config::{BridgeTopic, Direction};
use crate::topic::matches;

/// One `topic` line, with its filters on both sides worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMap {
    pub direction: Direction,
    /// The QoS of the subscriptions on both sides (the most a message crosses with).
    pub qos: u8,
    pub local_prefix: String,
    pub remote_prefix: String,
    /// `local_prefix + pattern`: the filter the bridge subscribes to locally (`out`, `both`).
    pub local_filter: String,
    /// `remote_prefix + pattern`: the filter the bridge subscribes to on the remote (`in`,
    /// `both`).
    pub remote_filter: String,
}

impl TopicMap {
    pub fn new(topic: &BridgeTopic) -> TopicMap {
        let local_prefix = topic.local_prefix.clone().unwrap_or_default();
        let remote_prefix = topic.remote_prefix.clone().unwrap_or_default();
        TopicMap {
            direction: topic.direction,
            qos: topic.qos,
            local_filter: format!("{local_prefix}{}", topic.pattern),
            remote_filter: format!("{remote_prefix}{}", topic.pattern),
            local_prefix,
            remote_prefix,
        }
    }

    /// Messages published locally cross to the remote.
    pub fn is_out(&self) -> bool {
        matches!(self.direction, Direction::Out | Direction::Both)
    }

    /// Messages published on the remote cross to the local broker.
    pub fn is_in(&self) -> bool {
        matches!(self.direction, Direction::In | Direction::Both)
    }
}

/// Every `topic` line of a bridge, in order: the first matching line maps a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMaps(pub Vec<TopicMap>);

impl TopicMaps {
    pub fn new(topics: &[BridgeTopic]) -> TopicMaps {
        TopicMaps(topics.iter().map(TopicMap::new).collect())
    }

    /// `(filter, qos)` the bridge subscribes to locally, each filter once (the highest QoS).
    pub fn local_subscriptions(&self) -> Vec<(String, u8)> {
        dedup(
            self.0
                .iter()
                .filter(|t| t.is_out())
                .map(|t| (&t.local_filter, t.qos)),
        )
    }

    /// `(filter, qos)` the bridge subscribes to on the remote, each filter once.
    pub fn remote_subscriptions(&self) -> Vec<(String, u8)> {
        dedup(
            self.0
                .iter()
                .filter(|t| t.is_in())
                .map(|t| (&t.remote_filter, t.qos)),
        )
    }

    /// Remote filters of `out`-only lines: with `bridge_attempt_unsubscribe`, the bridge
    /// unsubscribes from them on connect, in case an earlier configuration had them `in`.
    pub fn out_only_remote_filters(&self) -> Vec<String> {
        let ins = self.remote_subscriptions();
        let mut out: Vec<String> = Vec::new();
        for t in self.0.iter().filter(|t| t.direction == Direction::Out) {
            if !ins.iter().any(|(f, _)| f == &t.remote_filter) && !out.contains(&t.remote_filter) {
                out.push(t.remote_filter.clone());
            }
        }
        out
    }

    /// The remote topic for a message published locally on `local`; `None` when no `out`
    /// line maps it (it is then not sent).
    pub fn to_remote(&self, local: &str) -> Option<String> {
        self.0.iter().filter(|t| t.is_out()).find_map(|t| {
            cross(
                local,
                &t.local_filter,
                &t.local_prefix,
                &t.remote_prefix,
                &t.remote_filter,
            )
        })
    }

    /// The local topic for a message received from the remote on `remote`; `None` when no
    /// `in` line maps it safely (it is then dropped).
    pub fn to_local(&self, remote: &str) -> Option<String> {
        self.0.iter().filter(|t| t.is_in()).find_map(|t| {
            cross(
                remote,
                &t.remote_filter,
                &t.remote_prefix,
                &t.local_prefix,
                &t.local_filter,
            )
        })
    }
}

/// Maps `topic` from one side (`from_filter`, `from_prefix`) to the other (`to_prefix`,
/// `to_filter`): the prefix must really be there, and the result must be a non-empty topic
/// name inside the other side's filter.
fn cross(
    topic: &str,
    from_filter: &str,
    from_prefix: &str,
    to_prefix: &str,
    to_filter: &str,
) -> Option<String> {
    if !valid_topic_name(topic) || !matches(from_filter, topic) {
        return None;
    }
    let rest = topic.strip_prefix(from_prefix)?;
    let mapped = format!("{to_prefix}{rest}");
    (valid_topic_name(&mapped) && matches(to_filter, &mapped)).then_some(mapped)
}

/// A topic a message may be published to: not empty, no wildcards, no U+0000.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

fn dedup<'a>(items: impl Iterator<Item = (&'a String, u8)>) -> Vec<(String, u8)> {
    let mut out: Vec<(String, u8)> = Vec::new();
    for (filter, qos) in items {
        match out.iter_mut().find(|(f, _)| f == filter) {
            Some(existing) => existing.1 = existing.1.max(qos),
            None => out.push((filter.clone(), qos)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        pattern: &str,
        direction: Direction,
        local: Option<&str>,
        remote: Option<&str>,
    ) -> BridgeTopic {
        BridgeTopic {
            pattern: pattern.to_owned(),
            direction,
            qos: 1,
            local_prefix: local.map(str::to_owned),
            remote_prefix: remote.map(str::to_owned),
        }
    }

    #[test]
    fn seed_004_hash_both_ways() {
        let maps = TopicMaps::new(&[
            line("#", Direction::Out, None, None),
            line("#", Direction::In, None, None),
        ]);
        assert_eq!(maps.local_subscriptions(), vec![("#".to_owned(), 1)]);
        assert_eq!(maps.remote_subscriptions(), vec![("#".to_owned(), 1)]);
        assert_eq!(maps.to_remote("mqtt/test").as_deref(), Some("mqtt/test"));
        assert_eq!(maps.to_local("mqtt/test").as_deref(), Some("mqtt/test"));
        assert!(maps.out_only_remote_filters().is_empty());
    }

    #[test]
    fn direction_decides() {
        let maps = TopicMaps::new(&[
            line("a/#", Direction::Out, None, None),
            line("b/#", Direction::In, None, None),
        ]);
        assert_eq!(maps.to_remote("a/1").as_deref(), Some("a/1"));
        assert_eq!(maps.to_remote("b/1"), None);
        assert_eq!(maps.to_local("b/1").as_deref(), Some("b/1"));
        assert_eq!(maps.to_local("a/1"), None);
        assert_eq!(maps.out_only_remote_filters(), vec!["a/#".to_owned()]);
    }

    #[test]
    fn prefixes_both_directions() {
        let maps = TopicMaps::new(&[line(
            "sensors/#",
            Direction::Both,
            Some("local/"),
            Some("remote/"),
        )]);
        assert_eq!(
            maps.local_subscriptions(),
            vec![("local/sensors/#".to_owned(), 1)]
        );
        assert_eq!(
            maps.remote_subscriptions(),
            vec![("remote/sensors/#".to_owned(), 1)]
        );
        assert_eq!(
            maps.to_remote("local/sensors/t").as_deref(),
            Some("remote/sensors/t")
        );
        assert_eq!(
            maps.to_local("remote/sensors/t").as_deref(),
            Some("local/sensors/t")
        );
        assert_eq!(maps.to_local("local/sensors/t"), None);
        assert_eq!(maps.to_remote("sensors/t"), None);
    }

    #[test]
    fn empty_pattern_maps_prefix_to_prefix() {
        let maps = TopicMaps::new(&[line("", Direction::Both, Some("here/x"), Some("there/y"))]);
        assert_eq!(maps.to_local("there/y").as_deref(), Some("here/x"));
        assert_eq!(maps.to_remote("here/x").as_deref(), Some("there/y"));
        assert_eq!(maps.to_local("there/y/z"), None);
    }

    /// CVE-2024-3935: topics equal to or shorter than the prefix, empty, or not under it.
    #[test]
    fn crafted_remote_topics_are_dropped() {
        let maps = TopicMaps::new(&[line("#", Direction::In, None, Some("remote/"))]);
        for bad in [
            "",
            "remote",
            "remot",
            "remote/",
            "r",
            "other/x",
            "remote/+",
            "remote/#",
            "remote/a\0",
        ] {
            assert_eq!(maps.to_local(bad), None, "{bad:?}");
        }
        assert_eq!(maps.to_local("remote/a").as_deref(), Some("a"));
        let with_local = TopicMaps::new(&[line("#", Direction::In, Some("l/"), Some("remote/"))]);
        assert_eq!(with_local.to_local("remote"), None);
        assert_eq!(with_local.to_local("remote/").as_deref(), Some("l/"));
        assert_eq!(with_local.to_local("remote/a/b").as_deref(), Some("l/a/b"));
    }

    #[test]
    fn first_matching_line_wins_and_filters_are_deduplicated() {
        let maps = TopicMaps::new(&[
            line("a/#", Direction::Both, None, Some("x/")),
            line("a/#", Direction::Both, None, Some("y/")),
            BridgeTopic {
                qos: 2,
                ..line("a/#", Direction::Out, None, None)
            },
        ]);
        assert_eq!(maps.to_remote("a/b").as_deref(), Some("x/a/b"));
        assert_eq!(maps.local_subscriptions(), vec![("a/#".to_owned(), 2)]);
        assert_eq!(maps.remote_subscriptions().len(), 2);
    }

    #[test]
    fn dollar_topics_need_dollar_filters() {
        let maps = TopicMaps::new(&[line("#", Direction::Both, None, None)]);
        assert_eq!(maps.to_local("$SYS/broker/uptime"), None);
        let sys = TopicMaps::new(&[line("$SYS/#", Direction::In, Some("remote/"), None)]);
        assert_eq!(sys.to_local("$SYS/a").as_deref(), Some("remote/$SYS/a"));
    }
}
