//! `throughput`: P publishers, S subscribers, T topics. Publisher i publishes to
//! `<prefix>/<i % T>`; every subscriber subscribes to each of the T topics by name (no
//! wildcard, so the broker's exact-match path is what is measured) and so receives every
//! message.

use crate::cli::Options;
use crate::engine::Plan;

pub fn plan(o: &Options) -> Plan {
    Plan {
        publisher_topics: (0..o.publishers)
            .map(|i| format!("{}/{}", o.topic_prefix, i % o.topics))
            .collect(),
        filters: (0..o.topics)
            .map(|t| format!("{}/{t}", o.topic_prefix))
            .collect(),
        subscribers: o.subscribers,
        topics: o.topics,
    }
}
