//! The broker's per-message paths must not touch the allocator: encoding one stored message
//! for one subscriber, and decoding an incoming PUBLISH (topic and payload stay in the read
//! buffer).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use midge_proto::{
    decode_fixed_header, decode_packet, encode_publish, publish_len, OutgoingPublish, Packet,
    Properties, ProtocolVersion, QoS, Sender,
};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.with(Cell::get), out)
}

#[test]
fn the_counter_counts() {
    let (count, v) = allocations(|| vec![1u8; 10]);
    assert_eq!((count, v.len()), (1, 10));
}

#[test]
fn encode_publish_does_not_allocate() {
    let properties = Properties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        will_delay_interval: Some(3),
        ..Properties::default()
    };
    let out = OutgoingPublish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/1/temperature",
        packet_id: 17,
        payload: b"21.5",
        properties: &properties,
        topic_alias: Some(4),
        subscription_identifiers: &[1, 300],
        message_expiry_interval: Some(60),
    };
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut buf = BytesMut::with_capacity(256);
        let (count, len) = allocations(|| {
            encode_publish(&out, version, &mut buf);
            publish_len(&out, version)
        });
        assert_eq!(count, 0, "encode_publish {version:?}");
        assert_eq!(len, buf.len());
    }
}

#[test]
fn decoding_a_publish_does_not_allocate() {
    // Properties that fit in the Properties struct without a String or Vec of their own.
    let properties = Properties {
        payload_format_indicator: Some(1),
        ..Properties::default()
    };
    let out = OutgoingPublish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "sensors/1/temperature",
        packet_id: 17,
        payload: &[7; 300],
        properties: &properties,
        topic_alias: Some(4),
        subscription_identifiers: &[],
        message_expiry_interval: Some(60),
    };
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut buf = BytesMut::new();
        encode_publish(&out, version, &mut buf);
        let frame = buf.freeze();
        let header = decode_fixed_header(&frame).unwrap().unwrap();
        let body = frame.slice(header.header_len..);
        let (count, packet) =
            allocations(|| decode_packet(header.first_byte, body, version, Sender::Client));
        assert_eq!(count, 0, "decode PUBLISH {version:?}");
        let Ok(Packet::Publish(p)) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(p.payload.len(), 300);
    }
}
