//! The `$SYS/broker/...` tree Mosquitto publishes: which topics, their value formats, the
//! 1/5/15-minute load averages, and "publish only what changed".
//!
//! Pure: the broker samples its counters every `sys_interval` seconds and asks
//! [`SysTree::update`] which topics to publish (retained) with which text.

/// The broker's counters and gauges at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since the broker started.
    pub uptime: u64,
    /// Clients connected now.
    pub connected: u64,
    /// Persistent sessions whose client is not connected.
    pub disconnected: u64,
    /// Most clients connected at once since start.
    pub maximum: u64,
    /// Sessions expired (`persistent_client_expiration`, session expiry) since start.
    pub expired: u64,
    /// Sockets accepted since start.
    pub sockets: u64,
    /// Successful CONNECTs since start.
    pub connections: u64,
    /// Messages held: retained plus queued and in flight.
    pub messages_stored: u64,
    /// Payload bytes of the messages held.
    pub messages_stored_bytes: u64,
    pub subscriptions: u64,
    pub shared_subscriptions: u64,
    pub retained: u64,
    /// Every MQTT packet received / sent since start.
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub publish_received: u64,
    pub publish_sent: u64,
    pub publish_dropped: u64,
    pub publish_bytes_received: u64,
    pub publish_bytes_sent: u64,
    /// Beyond Mosquitto's tree, for `/metrics`: refused logins, ACL denials, failed TLS
    /// handshakes since start.
    pub auth_failures: u64,
    pub acl_denials: u64,
    pub tls_handshake_failures: u64,
    /// Heap bytes in use now and at most since start, when the process counts them
    /// (`$SYS/broker/heap/current`, `$SYS/broker/heap/maximum`).
    pub heap: Option<(u64, u64)>,
}

/// The windows of Mosquitto's load averages, in seconds.
const WINDOWS: [(f64, &str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

/// The rates averaged: (`$SYS/broker/load/<name>`, how to read the counter from a sample).
type Rate = (&'static str, fn(&Sample) -> u64);
const RATES: [Rate; 9] = [
    ("messages/received", |s| s.packets_received),
    ("messages/sent", |s| s.packets_sent),
    ("publish/received", |s| s.publish_received),
    ("publish/sent", |s| s.publish_sent),
    ("publish/dropped", |s| s.publish_dropped),
    ("bytes/received", |s| s.bytes_received),
    ("bytes/sent", |s| s.bytes_sent),
    ("connections", |s| s.connections),
    ("sockets", |s| s.sockets),
];

/// What was last published, to publish only changes, and the load averages' state.
#[derive(Debug)]
pub struct SysTree {
    version: String,
    /// Last text published per topic, in publishing order.
    last: Vec<(String, String)>,
    /// The previous sample and when it was taken (seconds since start), for rates.
    previous: Option<(f64, Sample)>,
    /// Current load average per rate and window.
    loads: [[f64; 3]; RATES.len()],
}

impl SysTree {
    /// `version` is the text of `$SYS/broker/version`, e.g. `midge version 0.1.0`.
    pub fn new(version: impl Into<String>) -> SysTree {
        SysTree {
            version: version.into(),
            last: Vec::new(),
            previous: None,
            loads: [[0.0; 3]; RATES.len()],
        }
    }

    /// Every topic with its current text (load averages as of the last [`SysTree::update`]),
    /// without touching what counts as changed: for the HTTP API.
    pub fn current(&self, sample: &Sample) -> Vec<(String, String)> {
        let mut all = self.values(sample);
        self.push_loads(&mut all);
        all
    }

    /// The topics whose text changed since the previous call (all of them the first time),
    /// for `sample` taken `now` seconds after start. Values are formatted as Mosquitto
    /// formats them: plain integers, `N seconds` for the uptime, two decimals for loads.
    pub fn update(&mut self, now: f64, sample: &Sample) -> Vec<(String, String)> {
        let mut current = self.values(sample);
        self.update_loads(now, sample, &mut current);
        let mut changed = Vec::new();
        for (topic, text) in current {
            match self.last.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, old)) if *old == text => {}
                Some((_, old)) => {
                    old.clone_from(&text);
                    changed.push((topic, text));
                }
                None => {
                    self.last.push((topic.clone(), text.clone()));
                    changed.push((topic, text));
                }
            }
        }
        changed
    }

    fn values(&self, s: &Sample) -> Vec<(String, String)> {
        let n = |v: u64| v.to_string();
        let mut v = vec![
            ("version", self.version.clone()),
            ("uptime", format!("{} seconds", s.uptime)),
            ("clients/total", n(s.connected + s.disconnected)),
            ("clients/connected", n(s.connected)),
            ("clients/active", n(s.connected)),
            ("clients/disconnected", n(s.disconnected)),
            ("clients/inactive", n(s.disconnected)),
            ("clients/maximum", n(s.maximum)),
            ("clients/expired", n(s.expired)),
            ("connections/socket/count", n(s.sockets)),
            ("messages/stored", n(s.messages_stored)),
            ("store/messages/count", n(s.messages_stored)),
            ("store/messages/bytes", n(s.messages_stored_bytes)),
            ("subscriptions/count", n(s.subscriptions)),
            ("shared_subscriptions/count", n(s.shared_subscriptions)),
            ("retained messages/count", n(s.retained)),
            ("messages/received", n(s.packets_received)),
            ("messages/sent", n(s.packets_sent)),
            ("bytes/received", n(s.bytes_received)),
            ("bytes/sent", n(s.bytes_sent)),
            ("publish/messages/received", n(s.publish_received)),
            ("publish/messages/sent", n(s.publish_sent)),
            ("publish/messages/dropped", n(s.publish_dropped)),
            ("publish/bytes/received", n(s.publish_bytes_received)),
            ("publish/bytes/sent", n(s.publish_bytes_sent)),
        ];
        if let Some((current, maximum)) = s.heap {
            v.push(("heap/current", n(current)));
            v.push(("heap/maximum", n(maximum)));
        }
        v.drain(..)
            .map(|(t, text)| (format!("$SYS/broker/{t}"), text))
            .collect()
    }

    /// Mosquitto's `calc_load`: the per-minute rate over the last interval, folded into an
    /// exponentially decaying average per window.
    fn update_loads(&mut self, now: f64, sample: &Sample, out: &mut Vec<(String, String)>) {
        if let Some((then, previous)) = &self.previous {
            let elapsed = now - then;
            if elapsed > 0.0 {
                for (r, (_, counter)) in RATES.iter().enumerate() {
                    let delta = counter(sample).saturating_sub(counter(previous)) as f64;
                    let per_minute = delta * 60.0 / elapsed;
                    for (w, (window, _)) in WINDOWS.iter().enumerate() {
                        let exponent = (-elapsed / window).exp();
                        let load = &mut self.loads[r][w];
                        *load = per_minute + exponent * (*load - per_minute);
                    }
                }
            }
        }
        self.previous = Some((now, sample.clone()));
        self.push_loads(out);
    }

    fn push_loads(&self, out: &mut Vec<(String, String)>) {
        for (r, (name, _)) in RATES.iter().enumerate() {
            for (w, (_, window)) in WINDOWS.iter().enumerate() {
                out.push((
                    format!("$SYS/broker/load/{name}/{window}"),
                    format!("{:.2}", self.loads[r][w]),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(changes: &'a [(String, String)], topic: &str) -> Option<&'a str> {
        changes
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_first_update_publishes_everything_in_mosquitto_formats() {
        let mut tree = SysTree::new("midge version 1.2.3");
        let sample = Sample {
            uptime: 42,
            connected: 3,
            disconnected: 2,
            retained: 7,
            ..Sample::default()
        };
        let all = tree.update(0.0, &sample);
        assert_eq!(
            value(&all, "$SYS/broker/version"),
            Some("midge version 1.2.3")
        );
        assert_eq!(value(&all, "$SYS/broker/uptime"), Some("42 seconds"));
        assert_eq!(value(&all, "$SYS/broker/clients/total"), Some("5"));
        assert_eq!(value(&all, "$SYS/broker/clients/connected"), Some("3"));
        assert_eq!(value(&all, "$SYS/broker/clients/active"), Some("3"));
        assert_eq!(value(&all, "$SYS/broker/clients/inactive"), Some("2"));
        assert_eq!(
            value(&all, "$SYS/broker/retained messages/count"),
            Some("7")
        );
        assert_eq!(
            value(&all, "$SYS/broker/load/connections/1min"),
            Some("0.00")
        );
        assert_eq!(all.len(), 25 + 9 * 3);
        assert_eq!(value(&all, "$SYS/broker/heap/current"), None);
    }

    #[test]
    fn heap_topics_appear_when_the_heap_is_counted() {
        let mut tree = SysTree::new("v");
        let sample = Sample {
            heap: Some((33256, 34408)),
            ..Sample::default()
        };
        let all = tree.update(0.0, &sample);
        assert_eq!(value(&all, "$SYS/broker/heap/current"), Some("33256"));
        assert_eq!(value(&all, "$SYS/broker/heap/maximum"), Some("34408"));
    }

    #[test]
    fn only_changed_values_are_published_again() {
        let mut tree = SysTree::new("v");
        let mut sample = Sample::default();
        tree.update(0.0, &sample);
        assert!(tree.update(10.0, &sample).is_empty(), "nothing changed");
        sample.uptime = 10;
        sample.connected = 1;
        let changed = tree.update(20.0, &sample);
        let topics: Vec<&str> = changed.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "$SYS/broker/uptime",
                "$SYS/broker/clients/total",
                "$SYS/broker/clients/connected",
                "$SYS/broker/clients/active"
            ]
        );
    }

    #[test]
    fn load_averages_follow_mosquittos_formula() {
        let mut tree = SysTree::new("v");
        let mut sample = Sample::default();
        tree.update(0.0, &sample);
        // 600 publishes in 60 s: 600 per minute.
        sample.publish_received = 600;
        let changed = tree.update(60.0, &sample);
        // 1 min window after one minute: 600 × (1 − e^−1) = 379.27
        assert_eq!(
            value(&changed, "$SYS/broker/load/publish/received/1min"),
            Some("379.27")
        );
        // 5 min: 600 × (1 − e^−0.2) = 108.76; 15 min: 600 × (1 − e^−1/15) = 38.70
        assert_eq!(
            value(&changed, "$SYS/broker/load/publish/received/5min"),
            Some("108.76")
        );
        assert_eq!(
            value(&changed, "$SYS/broker/load/publish/received/15min"),
            Some("38.70")
        );
        // Quiet afterwards: the averages decay.
        let changed = tree.update(120.0, &sample);
        assert_eq!(
            value(&changed, "$SYS/broker/load/publish/received/1min"),
            Some("139.53")
        );
    }
}
