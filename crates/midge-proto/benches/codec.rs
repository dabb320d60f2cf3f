//! Decode and encode of the packets on the hot path: PUBLISH (small and 1 KiB payloads) and
//! the QoS acknowledgements. Run with `cargo bench -p midge-proto`.

use bytes::{Bytes, BytesMut};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, encode_publish, OutgoingPublish, Packet,
    Properties, ProtocolVersion, PubResp, Publish, QoS, Sender,
};

fn main() {
    divan::main();
}

fn publish_bytes(payload: usize, version: ProtocolVersion) -> Bytes {
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "sensors/building-1/floor-2/temperature".into(),
        packet_id: 42,
        payload: Bytes::from(vec![0x5a; payload]),
        ..Publish::default()
    });
    let mut buf = BytesMut::new();
    encode_packet(&p, version, &mut buf);
    buf.freeze()
}

fn decode(frame: &Bytes, version: ProtocolVersion) -> Packet {
    let h = decode_fixed_header(frame).unwrap().unwrap();
    decode_packet(
        h.first_byte,
        frame.slice(h.header_len..),
        version,
        Sender::Client,
    )
    .unwrap()
}

#[divan::bench(args = [16, 1024])]
fn decode_publish_v311(bencher: divan::Bencher, payload: usize) {
    let frame = publish_bytes(payload, ProtocolVersion::V311);
    bencher.bench(|| decode(divan::black_box(&frame), ProtocolVersion::V311));
}

#[divan::bench(args = [16, 1024])]
fn decode_publish_v5(bencher: divan::Bencher, payload: usize) {
    let frame = publish_bytes(payload, ProtocolVersion::V5);
    bencher.bench(|| decode(divan::black_box(&frame), ProtocolVersion::V5));
}

#[divan::bench(args = [16, 1024])]
fn encode_publish_v311(bencher: divan::Bencher, payload: usize) {
    let body = vec![0x5a; payload];
    let props = Properties::default();
    let mut buf = BytesMut::with_capacity(4096);
    bencher.bench_local(|| {
        buf.clear();
        let out = OutgoingPublish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "sensors/building-1/floor-2/temperature",
            packet_id: 42,
            payload: &body,
            properties: &props,
            topic_alias: None,
            subscription_identifiers: &[],
            message_expiry_interval: None,
        };
        encode_publish(divan::black_box(&out), ProtocolVersion::V311, &mut buf);
        buf.len()
    });
}

#[divan::bench]
fn decode_puback_v5(bencher: divan::Bencher) {
    let mut buf = BytesMut::new();
    encode_packet(
        &Packet::PubAck(PubResp::new(7)),
        ProtocolVersion::V5,
        &mut buf,
    );
    let frame = buf.freeze();
    bencher.bench(|| decode(divan::black_box(&frame), ProtocolVersion::V5));
}

#[divan::bench]
fn encode_puback(bencher: divan::Bencher) {
    let mut buf = BytesMut::with_capacity(64);
    let ack = Packet::PubAck(PubResp::new(7));
    bencher.bench_local(|| {
        buf.clear();
        encode_packet(divan::black_box(&ack), ProtocolVersion::V311, &mut buf);
        buf.len()
    });
}
