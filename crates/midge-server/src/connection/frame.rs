//! Cutting complete packets out of the read buffer, refusing oversized ones from their fixed
//! header alone so that their bodies are never buffered.

use bytes::{Buf, Bytes, BytesMut};
use midge_proto::{decode_fixed_header, DecodeError};

/// Largest single reservation made for a packet still arriving: a client announcing a huge
/// packet gets memory as its bytes arrive, not up front.
const MAX_RESERVE: usize = 64 * 1024;

/// Returns the next complete packet as (first byte, body), or `None` until more bytes arrive.
pub fn take(rbuf: &mut BytesMut, max_packet: u32) -> Result<Option<(u8, Bytes)>, DecodeError> {
    let Some(header) = decode_fixed_header(rbuf)? else {
        return Ok(None);
    };
    let len = header.packet_len();
    if len > max_packet as usize {
        return Err(DecodeError::PacketTooLarge {
            size: len,
            max: max_packet as usize,
        });
    }
    if rbuf.len() < len {
        rbuf.reserve((len - rbuf.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    let mut frame = rbuf.split_to(len);
    frame.advance(header.header_len);
    Ok(Some((header.first_byte, frame.freeze())))
}
