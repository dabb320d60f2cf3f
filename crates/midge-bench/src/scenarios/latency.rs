//! `latency`: one publisher paced at `--rate` (default 10,000 msg/s) on `<prefix>/0`, one
//! subscriber. At a rate the broker handles easily, the percentiles show its latency rather
//! than its queues.

use crate::cli::Options;
use crate::engine::Plan;

pub fn plan(o: &Options) -> Plan {
    let topic = format!("{}/0", o.topic_prefix);
    Plan {
        publisher_topics: vec![topic.clone()],
        filters: vec![topic],
        subscribers: 1,
        topics: 1,
    }
}
