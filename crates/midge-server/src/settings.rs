//! The broker-wide limits and switches the connection code reads on every packet, resolved
//! once from the parsed configuration (defaults applied, 0-means-unlimited turned into
//! numbers) so the hot path never interprets configuration.

use std::time::Duration;

use midge_core::config::Config;

use crate::session::QueueLimits;

/// The largest packet MQTT can express (4-byte remaining length) plus its fixed header.
pub const MQTT_MAX_PACKET: u32 = 268_435_455 + 5;

/// Cap on a CONNECT packet: before authentication a client may not make the broker buffer
/// more than this (a will message larger than this is refused).
pub const PRE_CONNECT_MAX_PACKET: u32 = 256 * 1024;

#[derive(Clone, Debug)]
pub struct Settings {
    pub max_keepalive: u16,
    /// Largest packet accepted from a client, fixed header included.
    pub max_packet_size: u32,
    /// Largest PUBLISH payload accepted: the smaller of `max_payload_size` and the
    /// deprecated `message_size_limit`; `None` = only the packet size limits apply.
    pub max_payload: Option<u32>,
    /// Outgoing QoS 1/2 window per client, and the receive maximum announced to MQTT 5
    /// clients for their inbound QoS 2 flows.
    pub max_inflight: u16,
    /// `max_inflight_bytes`: payload bytes of QoS 1/2 messages in flight per client; 0 = no limit.
    pub max_inflight_bytes: usize,
    /// `memory_limit`: heap bytes beyond which new messages and connections are refused
    /// (see `crate::heap`); 0 = none.
    pub memory_limit: u64,
    pub queue: QueueLimits,
    /// `upgrade_outgoing_qos`: deliver at the subscription's QoS even when the message was
    /// published at a lower one (non-standard, as in Mosquitto).
    pub upgrade_outgoing_qos: bool,
    /// `connection_messages`: log connects and disconnects.
    pub connection_messages: bool,
    /// `sys_interval`: seconds between `$SYS` updates; 0 = no `$SYS` tree.
    pub sys_interval: u16,
    /// `max_publish_rate` / `max_publish_bytes_rate` per client.
    pub max_publish_rate: Option<u64>,
    pub max_publish_bytes_rate: Option<u64>,
    /// `auth_failure_delay`: cap of the delay failed logins impose; zero = off.
    pub auth_failure_delay: std::time::Duration,
    pub retain_available: bool,
    /// `check_retain_source`: a retained message is sent on subscribe only while its
    /// publisher may still write to its topic.
    pub check_retain_source: bool,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Expiry applied to 3.1.1 persistent sessions (clean session 0), which otherwise never
    /// expire; `None` keeps them forever as Mosquitto does by default.
    pub persistent_client_expiration: Option<u32>,
}

impl Settings {
    /// `_local_only` is Mosquitto 2's mode without any listener configured; the settings
    /// here do not depend on it (the per-listener security does).
    pub fn from_config(config: &Config, _local_only: bool) -> Settings {
        let max_packet_size = match config.max_packet_size {
            Some(n) if n > 0 => n.min(MQTT_MAX_PACKET),
            _ => MQTT_MAX_PACKET,
        };
        let size_limit = Some(config.message_size_limit).filter(|&n| n > 0);
        let max_payload = match (config.max_payload_size, size_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Settings {
            memory_limit: config.memory_limit,
            max_keepalive: config.max_keepalive,
            max_packet_size,
            max_payload,
            max_inflight: if config.max_inflight_messages == 0 {
                u16::MAX
            } else {
                config.max_inflight_messages
            },
            max_inflight_bytes: config.max_inflight_bytes,
            upgrade_outgoing_qos: config.upgrade_outgoing_qos,
            connection_messages: config.connection_messages,
            sys_interval: config.sys_interval,
            max_publish_rate: config.max_publish_rate,
            max_publish_bytes_rate: config.max_publish_bytes_rate,
            auth_failure_delay: std::time::Duration::from_secs(u64::from(
                config.auth_failure_delay,
            )),
            queue: QueueLimits {
                max_messages: config.max_queued_messages,
                max_bytes: config.max_queued_bytes,
                queue_qos0: config.queue_qos0_messages,
            },
            retain_available: config.retain_available,
            check_retain_source: config.check_retain_source,
            connect_timeout: Duration::from_secs(10),
            persistent_client_expiration: config
                .persistent_client_expiration
                .map(|s| u32::try_from(s).unwrap_or(u32::MAX - 1)),
        }
    }
}
