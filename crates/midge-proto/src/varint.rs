//! Variable Byte Integer (MQTT 5 section 1.5.5, 3.1.1 section 2.2.3): seven bits per byte,
//! least significant first, the high bit saying another byte follows, at most four bytes.

use bytes::BufMut;

/// The largest value four bytes can carry; also the largest remaining length.
pub const MAX_VARINT: u32 = 268_435_455;

/// Why a Variable Byte Integer could not be read. The caller turns these into the error its
/// context calls for: waiting for more bytes on a socket, or a truncated or malformed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarIntError {
    /// The buffer ends before the last byte of the integer.
    Incomplete,
    /// The fourth byte still has the continuation bit set.
    TooLong,
}

/// Reads one Variable Byte Integer from the start of `buf`, returning its value and how many
/// bytes it took. Non-minimal encodings (`0x80 0x00` for 0) are accepted: the spec does not
/// forbid them and Mosquitto accepts them.
#[inline]
pub fn read_varint(buf: &[u8]) -> Result<(u32, usize), VarIntError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 4 {
        Err(VarIntError::TooLong)
    } else {
        Err(VarIntError::Incomplete)
    }
}

/// Bytes the minimal encoding of `value` takes.
#[inline]
pub const fn varint_len(value: usize) -> usize {
    if value < 0x80 {
        1
    } else if value < 0x4000 {
        2
    } else if value < 0x20_0000 {
        3
    } else {
        4
    }
}

/// Appends the minimal encoding of `value`. Values above [`MAX_VARINT`] are a caller bug (the
/// encoder's inputs come from decoded packets or from the broker's own size checks); they are
/// cut to four bytes rather than corrupting the stream further.
#[inline]
pub fn put_varint(buf: &mut impl BufMut, value: usize) {
    debug_assert!(value <= MAX_VARINT as usize, "varint {value} too large");
    let mut v = value;
    for _ in 0..3 {
        if v < 0x80 {
            break;
        }
        buf.put_u8((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8 & 0x7F);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: usize) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn boundaries_from_the_spec_table() {
        // MQTT 5 section 1.5.5, table 1-1.
        for (value, bytes) in [
            (0usize, &[0x00][..]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            assert_eq!(encode(value), bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len(), "{value}");
            assert_eq!(read_varint(bytes), Ok((value as u32, bytes.len())));
        }
    }

    #[test]
    fn non_minimal_encoding_is_accepted() {
        assert_eq!(read_varint(&[0x80, 0x00]), Ok((0, 2)));
        assert_eq!(read_varint(&[0x81, 0x80, 0x80, 0x00]), Ok((1, 4)));
    }

    #[test]
    fn incomplete_and_too_long() {
        assert_eq!(read_varint(&[]), Err(VarIntError::Incomplete));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(VarIntError::Incomplete));
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(VarIntError::TooLong)
        );
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(VarIntError::TooLong)
        );
    }
}
