//! Shutting the broker down: MQTT 5 clients are told why before the connection closes.

mod common;

use common::*;
use midge_proto::ProtocolVersion;

#[tokio::test]
async fn v5_clients_get_server_shutting_down() {
    let broker = start_default().await;
    let mut v5 = Raw::connect(broker.addr, ProtocolVersion::V5, "bye-v5").await;
    let mut v311 = Raw::connect(broker.addr, ProtocolVersion::V311, "bye-v311").await;
    drop(broker);
    v5.expect_disconnect(midge_proto::reason::SERVER_SHUTTING_DOWN)
        .await;
    v311.expect_close().await;
}
