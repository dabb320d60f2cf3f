//! `fanout`: one publisher on `<prefix>/0`, N subscribers on that topic: every message is
//! delivered N times, which measures the broker's per-delivery cost.

use crate::cli::Options;
use crate::engine::Plan;

pub fn plan(o: &Options) -> Plan {
    let topic = format!("{}/0", o.topic_prefix);
    Plan {
        publisher_topics: vec![topic.clone()],
        filters: vec![topic],
        subscribers: o.subscribers,
        topics: 1,
    }
}
