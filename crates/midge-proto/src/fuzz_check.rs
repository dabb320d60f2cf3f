//! The checks the fuzz targets (`fuzz/fuzz_targets/decode_*.rs`) run on every input, shared
//! with `tests/fuzz_corpus.rs`, which replays the committed corpus in `cargo test`.

use bytes::{Bytes, BytesMut};

use crate::{
    decode_fixed_header, decode_packet, encode_packet, packet_len, peek_connect_level, Packet,
    ProtocolVersion, Sender,
};

/// Feeds `data` through the server's path: packets cut one after another from the read
/// buffer by their fixed header, each body decoded as the client's in `version`. Never
/// panics; whatever decoded must survive encode then decode unchanged.
pub fn decode(data: &[u8], version: ProtocolVersion) {
    let mut rest = data;
    loop {
        let header = match decode_fixed_header(rest) {
            Ok(Some(header)) => header,
            Ok(None) | Err(_) => return,
        };
        let len = header.packet_len();
        if rest.len() < len {
            return;
        }
        let body = Bytes::copy_from_slice(&rest[header.header_len..len]);
        if header.packet_type() == crate::packet::packet_type::CONNECT {
            let _ = peek_connect_level(&body);
        }
        if let Ok(packet) = decode_packet(header.first_byte, body, version, Sender::Client) {
            roundtrip(&packet, version);
        }
        rest = &rest[len..];
    }
}

fn roundtrip(packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf);
    assert_eq!(
        buf.len(),
        packet_len(packet, version),
        "packet_len of {packet:?}"
    );
    let header = decode_fixed_header(&buf)
        .expect("fixed header of an encoded packet")
        .expect("whole fixed header");
    assert_eq!(
        header.packet_len(),
        buf.len(),
        "remaining length of {packet:?}"
    );
    let body = buf.freeze().slice(header.header_len..);
    match decode_packet(header.first_byte, body, version, Sender::Client) {
        Ok(again) => assert_eq!(&again, packet, "encode then decode changed the packet"),
        Err(e) => panic!("{packet:?} encoded in {version:?} does not decode: {e}"),
    }
}
