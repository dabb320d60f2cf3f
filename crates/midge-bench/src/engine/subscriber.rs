//! One subscriber: reads 64 KiB at a time, looks at every PUBLISH in place (sequence check,
//! latency from the payload's send time), and answers QoS 1/2 flows with acknowledgements
//! collected into one write per read.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use midge_proto::packet_type as pt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::client::{disconnect_packet, Conn};
use crate::clock::Clock;
use crate::engine::backlog::Backlog;
use crate::engine::shared::{Counters, Phase};
use crate::histogram::Histogram;
use crate::hot_packets::{parse, put_ack, AckKind, Incoming, Parsed};
use crate::payload::Header;
use crate::sequence::SequenceChecker;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct SubscriberSpec {
    pub index: usize,
    pub publishers: usize,
    /// Bits of sequence window per publisher (see `sequence`).
    pub window: u64,
    pub clock: Clock,
    /// Messages sent at or after this time (on `clock`) count as measured, earlier ones as
    /// warm-up. Shared so the coordinator can move it if the run ends during the warm-up.
    pub window_start_us: Arc<AtomicU32>,
    pub backlog: Arc<Backlog>,
}

/// What a subscriber hands back at the end of the run.
#[derive(Clone, Debug)]
pub struct SubscriberResult {
    pub checker: SequenceChecker,
    /// Latencies of messages sent in the measured window.
    pub measured: Histogram,
    /// Latencies of messages sent during the warm-up.
    pub warmup: Histogram,
    pub received: u64,
}

pub async fn run(
    conn: Conn,
    spec: SubscriberSpec,
    counters: Arc<Counters>,
    phase: watch::Receiver<Phase>,
) -> Result<SubscriberResult, String> {
    let index = spec.index;
    let mut s = Subscriber {
        v5: conn.version.is_v5(),
        stream: conn.stream,
        rbuf: conn.rbuf,
        wbuf: BytesMut::with_capacity(4096),
        result: SubscriberResult {
            checker: SequenceChecker::new(spec.publishers, spec.window),
            measured: Histogram::new(),
            warmup: Histogram::new(),
            received: 0,
        },
        spec,
        counters,
    };
    s.run(phase)
        .await
        .map_err(|e| format!("subscriber {index}: {e}"))?;
    let _ = s.stream.try_write(&disconnect_packet(conn.version));
    Ok(s.result)
}

struct Subscriber {
    spec: SubscriberSpec,
    stream: TcpStream,
    v5: bool,
    rbuf: BytesMut,
    wbuf: BytesMut,
    result: SubscriberResult,
    counters: Arc<Counters>,
}

impl Subscriber {
    async fn run(&mut self, mut phase: watch::Receiver<Phase>) -> Result<(), String> {
        // Packets that arrived with the SUBACK.
        self.handle_buffered()?;
        loop {
            if *phase.borrow_and_update() == Phase::Stop {
                return Ok(());
            }
            tokio::select! {
                r = self.stream.readable() => {
                    r.map_err(|e| format!("waiting for the socket: {e}"))?;
                    self.read()?;
                }
                r = self.stream.writable(), if !self.wbuf.is_empty() => {
                    r.map_err(|e| format!("waiting for the socket: {e}"))?;
                }
                r = phase.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                }
            }
            self.flush()?;
            // `readable()` does not count against tokio's cooperative budget: a socket that
            // always has data would keep this task running and starve the publishers on the
            // same thread. This yields once the budget is spent.
            tokio::task::coop::consume_budget().await;
        }
    }

    fn read(&mut self) -> Result<(), String> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK {
            self.rbuf.reserve(READ_CHUNK);
        }
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => Err("the broker closed the connection".into()),
            Ok(_) => self.handle_buffered(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("reading: {e}")),
        }
    }

    /// Every complete packet in the read buffer.
    fn handle_buffered(&mut self) -> Result<(), String> {
        // One clock reading per read: every packet in it arrived in the same syscall.
        let now_us = self.spec.clock.now_us();
        let window_start = self.spec.window_start_us.load(Ordering::Relaxed);
        let r = &mut self.result;
        let mut at = 0;
        let need = loop {
            let (packet, n) = match parse(&self.rbuf[at..], self.v5).map_err(|e| e.to_string())? {
                Parsed::Packet(p, n) => (p, n),
                Parsed::Incomplete(total) => break total,
            };
            at += n;
            match packet {
                Incoming::Publish {
                    qos,
                    packet_id,
                    payload,
                } => {
                    r.received += 1;
                    match Header::read(payload) {
                        Some(h) => {
                            r.checker.record(h.publisher, h.seq);
                            let latency = h.latency_us(now_us);
                            // Sent before the window started, on the wrapping clock.
                            if (h.sent_us.wrapping_sub(window_start) as i32) < 0 {
                                r.warmup.record(latency);
                            } else {
                                r.measured.record(latency);
                            }
                        }
                        None => r.checker.foreign(),
                    }
                    match qos {
                        1 => put_ack(&mut self.wbuf, AckKind::PubAck, packet_id),
                        2 => put_ack(&mut self.wbuf, AckKind::PubRec, packet_id),
                        _ => {}
                    }
                }
                Incoming::Ack {
                    kind: AckKind::PubRel,
                    packet_id,
                    ..
                } => put_ack(&mut self.wbuf, AckKind::PubComp, packet_id),
                Incoming::Ack { kind, .. } => {
                    return Err(format!("unexpected {kind:?} to a subscriber"));
                }
                Incoming::Other { first_byte, .. } if first_byte >> 4 == pt::PINGRESP => {}
                Incoming::Other { first_byte, body } if first_byte >> 4 == pt::DISCONNECT => {
                    let reason = body.first().copied().unwrap_or(0);
                    return Err(format!("the broker sent DISCONNECT (reason {reason:#04x})"));
                }
                Incoming::Other { first_byte, .. } => {
                    return Err(format!(
                        "unexpected {} from the broker",
                        pt::name(first_byte >> 4)
                    ));
                }
            }
        };
        self.rbuf.advance(at);
        if let Some(total) = need {
            // A packet larger than the buffer: make room for all of it.
            self.rbuf.reserve(total.saturating_sub(self.rbuf.len()));
        }
        self.counters.messages.store(r.received, Ordering::Relaxed);
        self.counters
            .unique_or_acked
            .store(r.checker.counts().unique, Ordering::Relaxed);
        self.counters
            .progress
            .store(r.checker.progress(), Ordering::SeqCst);
        self.spec.backlog.progressed();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("writing: {e}")),
            }
        }
        Ok(())
    }
}
