//! A cursor over one packet's body. Every read checks the length first and fails with
//! [`DecodeError::Truncated`], so no client input can make the decoder index out of bounds;
//! byte fields come back as slices of the same buffer, never copies.

use bytes::{Buf, Bytes};
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::strings::check_str;

use crate::varint::{read_varint, VarIntError};

pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u32())
    }

    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match read_varint(&self.buf) {
            Ok((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            Err(VarIntError::Incomplete) => Err(DecodeError::Truncated),
            Err(VarIntError::TooLong) => Err(DecodeError::InvalidVarInt),
        }
    }

    /// The next `len` bytes, sharing the packet's allocation.
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.split_to(len))
    }

    /// Everything not read yet: the payload of PUBLISH, the codes of SUBACK.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Binary Data: two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String, copied out because the packet types hold `String`.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let raw = self.binary()?;
        check_str(&raw).map(str::to_owned)
    }

    /// A well-formed UTF-8 string kept in the packet's buffer, for topics on the hot path.
    /// U+0000 is not checked here: the topic rules refuse it along with the other control
    /// characters in the same pass, and the caller tells the two errors apart only on failure.
    pub(crate) fn utf8(&mut self) -> Result<ByteString, DecodeError> {
        let raw = self.binary()?;
        std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8)?;
        // SAFETY: from_utf8 just verified that `raw` is valid UTF-8.
        Ok(unsafe { ByteString::from_bytes_unchecked(raw) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_past_the_end_is_truncated() {
        let mut r = Reader::new(Bytes::new());
        assert_eq!(r.u8(), Err(DecodeError::Truncated));
        assert_eq!(r.u16(), Err(DecodeError::Truncated));
        assert_eq!(r.u32(), Err(DecodeError::Truncated));
        assert_eq!(r.varint(), Err(DecodeError::Truncated));
        assert_eq!(r.take(1), Err(DecodeError::Truncated));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x03, b'a', b'b']));
        assert_eq!(r.string(), Err(DecodeError::Truncated));
    }

    #[test]
    fn varint_longer_than_four_bytes_is_malformed() {
        let mut r = Reader::new(Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]));
        let err = r.varint().unwrap_err();
        assert_eq!(err, DecodeError::InvalidVarInt);
        assert_eq!(err.reason_code(), 0x81);
    }

    #[test]
    fn utf8_shares_the_buffer() {
        let body = Bytes::from_static(&[0x00, 0x03, b'a', b'/', b'b', 0xAA]);
        let mut r = Reader::new(body.clone());
        let s = r.utf8().unwrap();
        assert_eq!(&*s, "a/b");
        assert_eq!(s.as_bytes().as_ptr(), body[2..].as_ptr());
        assert_eq!(r.rest().len(), 1);
    }
}
