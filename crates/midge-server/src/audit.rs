//! The audit log (`audit_log <file>`, beyond Mosquitto): one JSON object per line for every
//! security-relevant event — refused logins, ACL denials, dynamic security changes and
//! disconnections for protocol violations — with who, from where and why, for a SIEM or
//! `jq` rather than for reading in the general log.
//!
//! Deliveries refused by a subscriber's read ACL are counted (`/metrics`), not audited:
//! one publish can be refused to thousands of subscribers.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

/// Who an event is about.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    /// Remote address (or Unix socket path).
    pub address: &'a str,
}

/// The open audit file.
#[derive(Debug)]
pub struct Audit {
    file: Mutex<File>,
}

impl Audit {
    /// Opens (appends to, or creates with mode 0600) the audit file.
    pub fn open(path: &Path) -> Result<Audit, String> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("audit_log {}: {e}", path.display()))?;
        Ok(Audit {
            file: Mutex::new(file),
        })
    }

    /// Appends one event: `{"time":…,"event":…,"client_id":…,"username":…,"address":…,…}`.
    pub fn record(&self, event: &str, who: Who<'_>, details: Value) {
        let line = line(event, who, details, now());
        let mut file = self.file.lock();
        if let Err(e) = file.write_all(line.as_bytes()) {
            // Not through tracing at error level on every event: one failing disk would
            // flood the general log.
            tracing::debug!("audit_log write failed: {e}");
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One JSON line. Pure, for the tests.
fn line(event: &str, who: Who<'_>, details: Value, time: f64) -> String {
    let mut o = Map::new();
    o.insert("time".into(), json!((time * 1000.0).round() / 1000.0));
    o.insert("event".into(), json!(event));
    o.insert("client_id".into(), json!(who.client_id));
    o.insert("username".into(), json!(who.username));
    o.insert("address".into(), json!(who.address));
    if let Value::Object(details) = details {
        o.extend(details);
    }
    let mut text = Value::Object(o).to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_who_and_why() {
        let who = Who {
            client_id: "c\"1",
            username: None,
            address: "192.0.2.1:5000",
        };
        let text = line(
            "acl_denied",
            who,
            json!({"action": "publish", "topic": "a/b"}),
            1700000000.1234,
        );
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "acl_denied");
        assert_eq!(v["client_id"], "c\"1");
        assert_eq!(v["username"], Value::Null);
        assert_eq!(v["address"], "192.0.2.1:5000");
        assert_eq!(v["topic"], "a/b");
        assert_eq!(v["time"], 1700000000.123);
    }
}
