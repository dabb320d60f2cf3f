//! The broker-wide limits and switches the connection code reads on every packet, resolved
//! once from the parsed configuration (defaults applied, 0-means-unlimited turned into
//! numbers) so the hot path never interprets configuration.

use std::time::Duration;

use midge_core::config::Config;
use midge_proto::QoS;

use crate::session::QueueLimits;

/// The largest packet MQTT can express (4-byte remaining length) plus its fixed header.
pub const MQTT_MAX_PACKET: u32 = 268_435_455 + 5;

/// Cap on a CONNECT packet: before authentication a client may not make the broker buffer
/// more than this (a will message larger than this is refused).
pub const PRE_CONNECT_MAX_PACKET: u32 = 256 * 1024;

#[derive(Clone, Debug)]
pub struct Settings {
    pub allow_anonymous: bool,
    pub max_keepalive: u16,
    /// Largest packet accepted from a client, fixed header included.
    pub max_packet_size: u32,
    /// Outgoing QoS 1/2 window per client, and the receive maximum announced to MQTT 5
    /// clients for their inbound QoS 2 flows.
    pub max_inflight: u16,
    pub queue: QueueLimits,
    pub retain_available: bool,
    pub max_qos: QoS,
    pub allow_zero_length_clientid: bool,
    pub auto_id_prefix: String,
    /// How many topic aliases an MQTT 5 client may use towards the broker.
    pub max_topic_alias: u16,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Expiry applied to 3.1.1 persistent sessions (clean session 0), which otherwise never
    /// expire; `None` keeps them forever as Mosquitto does by default.
    pub persistent_client_expiration: Option<u32>,
}

impl Settings {
    /// `local_only` is Mosquitto 2's mode without any listener configured, where anonymous
    /// clients are allowed unless the configuration says otherwise.
    pub fn from_config(config: &Config, local_only: bool) -> Settings {
        let max_packet_size = match config.max_packet_size {
            Some(n) if n > 0 => n.min(MQTT_MAX_PACKET),
            _ => MQTT_MAX_PACKET,
        };
        Settings {
            allow_anonymous: config.allow_anonymous.unwrap_or(local_only),
            max_keepalive: config.max_keepalive,
            max_packet_size,
            max_inflight: if config.max_inflight_messages == 0 {
                u16::MAX
            } else {
                config.max_inflight_messages
            },
            queue: QueueLimits {
                max_messages: config.max_queued_messages,
                max_bytes: config.max_queued_bytes,
            },
            retain_available: config.retain_available,
            max_qos: QoS::from_u8(config.max_qos).unwrap_or(QoS::ExactlyOnce),
            allow_zero_length_clientid: config.allow_zero_length_clientid,
            auto_id_prefix: config.auto_id_prefix.clone(),
            max_topic_alias: 10,
            connect_timeout: Duration::from_secs(10),
            persistent_client_expiration: config
                .persistent_client_expiration
                .map(|s| u32::try_from(s).unwrap_or(u32::MAX - 1)),
        }
    }
}
