//! Hand-built MQTT packets and a raw connection over std TCP with bounded reads, for the
//! tests that control every byte on the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub fn str16(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why no packet came.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Timeout,
    Closed,
}

/// Asserts that nothing arrived in time and that the connection stayed open.
pub fn assert_silence(got: Result<Vec<u8>, Ended>) {
    match got {
        Err(Ended::Timeout) => {}
        Err(Ended::Closed) => panic!("connection closed while expecting silence"),
        Ok(p) => panic!("expected nothing, got {}", hex(&p)),
    }
}

/// A TCP connection to the broker, split into whole MQTT packets.
pub struct Wire {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    /// Connects to the broker on loopback `port` (no Nagle delay).
    pub fn open(port: u16) -> Wire {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("TCP connect");
        s.set_nodelay(true).unwrap();
        Wire { s, buf: Vec::new() }
    }

    /// Writes `b`, ignoring errors (the broker may have closed already).
    pub fn send(&mut self, b: &[u8]) {
        let _ = self.s.write_all(b);
    }

    /// The next whole packet, waiting at most `within`.
    pub fn recv_within(&mut self, within: Duration) -> Result<Vec<u8>, Ended> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(p) = self.take() {
                return Ok(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Ended::Timeout);
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(Ended::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(Ended::Timeout)
                }
                Err(_) => return Err(Ended::Closed),
            }
        }
    }

    /// A whole packet from what has been read, if there is one.
    fn take(&mut self) -> Option<Vec<u8>> {
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= usize::from(b & 0x7f) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        if self.buf.len() < i + len {
            return None;
        }
        let rest = self.buf.split_off(i + len);
        Some(std::mem::replace(&mut self.buf, rest))
    }
}
