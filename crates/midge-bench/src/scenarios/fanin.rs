//! `fanin`: N publishers, publisher i on `<prefix>/<i>`, one subscriber on `<prefix>/+`:
//! many inbound streams matched by one wildcard subscription.

use crate::cli::Options;
use crate::engine::Plan;

pub fn plan(o: &Options) -> Plan {
    Plan {
        publisher_topics: (0..o.publishers)
            .map(|i| format!("{}/{i}", o.topic_prefix))
            .collect(),
        filters: vec![format!("{}/+", o.topic_prefix)],
        subscribers: 1,
        topics: o.publishers,
    }
}
