//! `max_connections_per_IP`: at most N new connections per source address per minute,
//! checked at accept before any MQTT work, so one address cannot flood the broker with
//! CONNECTs (and password checks). Beyond Mosquitto, which has no per-address limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before stale windows are swept, bounding the table's memory.
const SWEEP_AT: usize = 65_536;

#[derive(Debug)]
pub struct Admission {
    /// Connections allowed per address per minute; `None` = no limit.
    limit: Option<u32>,
    /// Per address: start of its current window and connections counted in it.
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Admission {
    pub fn new(limit: Option<u32>) -> Admission {
        Admission {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`; false when it is over the limit.
    pub fn admit(&self, ip: IpAddr) -> bool {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, now: Instant) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let mut windows = self.windows.lock();
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_n_per_minute_per_address() {
        let a = Admission::new(Some(3));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(a.admit_at(ip, t0));
        assert!(a.admit_at(ip, t0));
        assert!(a.admit_at(ip, t0));
        assert!(!a.admit_at(ip, t0 + Duration::from_secs(59)));
        assert!(a.admit_at(other, t0), "limits are per address");
        assert!(a.admit_at(ip, t0 + Duration::from_secs(60)), "a new window");
    }

    #[test]
    fn no_limit_admits_everything() {
        let a = Admission::new(None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| a.admit(ip)));
    }
}
