//! Bridge state notifications, as Mosquitto sends them: a retained QoS 1 message, `1` when
//! the bridge is connected and `0` when it is not, on `notification_topic` (default
//! `$SYS/broker/connection/<remote client id>/state`). Published locally, and on the remote
//! too (the `1` after CONNACK, the `0` as the bridge's will) unless
//! `notifications_local_only` is set.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use midge_proto::{Properties, Publish, QoS, Will};

use super::BridgeSpec;
use crate::broker::Broker;
use crate::message::Message;

fn payload(up: bool) -> Bytes {
    Bytes::from_static(if up { b"1" } else { b"0" })
}

/// Publishes the bridge's state in the local broker, as the broker's own message (no
/// publisher): `check_retain_source` then lets subscribers allowed to read it get it
/// retained, which a `$SYS` topic "published" by a client would fail. The bridge itself
/// never forwards its own state (see `client::Remote::fill`).
pub(crate) fn publish_local(broker: &Broker, spec: &BridgeSpec, up: bool) {
    if !spec.config.notifications {
        return;
    }
    let now = Instant::now();
    let msg = Message::new(
        spec.notification_topic.as_str().into(),
        payload(up),
        QoS::AtLeastOnce,
        true,
        Properties::default(),
        now,
        None,
    );
    broker.publish(&Arc::new(msg), now);
}

/// Whether the remote hears about the state too.
pub(crate) fn on_remote(spec: &BridgeSpec) -> bool {
    spec.config.notifications && !spec.config.notifications_local_only
}

/// The will the bridge leaves on the remote: `0`, retained.
pub(crate) fn remote_will(spec: &BridgeSpec) -> Option<Will> {
    on_remote(spec).then(|| Will {
        topic: spec.notification_topic.as_str().into(),
        payload: payload(false),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::default(),
    })
}

/// The `1` published on the remote once connected.
pub(crate) fn remote_up(spec: &BridgeSpec, packet_id: u16) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: spec.notification_topic.as_str().into(),
        packet_id,
        payload: payload(true),
        properties: Properties::default(),
    }
}

/// The `0` published on the remote before a clean disconnect (shutdown, lazy idle), when
/// the will does not fire. QoS 0: DISCONNECT follows at once, and the remote handles the
/// two in order.
pub(crate) fn remote_down(spec: &BridgeSpec) -> Publish {
    Publish {
        qos: QoS::AtMostOnce,
        packet_id: 0,
        payload: payload(false),
        ..remote_up(spec, 0)
    }
}
