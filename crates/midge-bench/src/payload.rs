//! The 16-byte header every benchmark payload starts with: who sent it, its place in that
//! publisher's sequence, and when it was handed to the kernel. The rest of the payload is
//! padding, so `--payload 16` is the smallest message the tool can verify.
//!
//! Layout (big-endian, like the rest of MQTT):
//!
//! | bytes  | field                                                          |
//! |--------|----------------------------------------------------------------|
//! | 0..4   | publisher id (`u32`, index of the publisher in this run)      |
//! | 4..12  | sequence number (`u64`, 0, 1, 2 … per publisher)              |
//! | 12..16 | send time (`u32`, µs on the tool's monotonic clock, wrapping) |
//!
//! The send time is 32 bits so the whole header fits the 16-byte payloads the targets
//! use. Only differences of two readings of one clock are ever taken, with wrapping
//! arithmetic, so wrap-around every 71 minutes does not matter: a latency is right as long
//! as it is below 71 minutes, far beyond any run (at most 600 s).

/// Bytes of header at the start of each payload; also the smallest payload allowed.
pub const HEADER_LEN: usize = 16;

/// Byte the rest of the payload is filled with.
pub const PADDING: u8 = b'x';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub publisher: u32,
    pub seq: u64,
    pub sent_us: u32,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Panics when `buf` is shorter: the payload length is validated (≥ 16) when the options
    /// are parsed, so a short buffer here is a bug in the tool.
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.publisher.to_be_bytes());
        buf[4..12].copy_from_slice(&self.seq.to_be_bytes());
        buf[12..16].copy_from_slice(&self.sent_us.to_be_bytes());
    }

    /// None when the payload is too short to be one of ours (another client's message on
    /// the same topic).
    pub fn read(payload: &[u8]) -> Option<Header> {
        let h = payload.get(..HEADER_LEN)?;
        Some(Header {
            publisher: u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            seq: u64::from_be_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]),
            sent_us: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        })
    }

    /// Microseconds from sending to `now_us` on the same wrapping clock.
    pub fn latency_us(&self, now_us: u32) -> u32 {
        now_us.wrapping_sub(self.sent_us)
    }
}

/// A payload of `len` bytes: a zeroed header followed by padding.
pub fn template(len: usize) -> Vec<u8> {
    let mut p = vec![PADDING; len.max(HEADER_LEN)];
    p[..HEADER_LEN].fill(0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Header {
            publisher: 0xDEAD_BEEF,
            seq: 0x0102_0304_0506_0708,
            sent_us: 0xFFFF_FFF0,
        };
        let mut p = template(64);
        h.write(&mut p);
        assert_eq!(Header::read(&p), Some(h));
        assert!(p[HEADER_LEN..].iter().all(|&b| b == PADDING));
        assert_eq!(p.len(), 64);
    }

    #[test]
    fn exact_layout() {
        let h = Header {
            publisher: 1,
            seq: 2,
            sent_us: 3,
        };
        let mut p = template(16);
        h.write(&mut p);
        assert_eq!(p, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3]);
    }

    #[test]
    fn short_payload_is_not_ours() {
        assert_eq!(Header::read(&[0; 15]), None);
        assert_eq!(Header::read(&[]), None);
    }

    #[test]
    fn latency_across_wrap() {
        let h = Header {
            publisher: 0,
            seq: 0,
            sent_us: u32::MAX - 9,
        };
        assert_eq!(h.latency_us(5), 15);
        assert_eq!(h.latency_us(u32::MAX), 9);
    }

    #[test]
    fn template_is_at_least_a_header() {
        assert_eq!(template(3).len(), HEADER_LEN);
    }
}
