//! One publisher: stamps PUBLISH packets from a template into a reusable buffer and writes
//! as many as it may per syscall.
//!
//! At QoS 0 a batch is whatever fits in one write chunk (the socket's back-pressure paces
//! it: when the kernel buffer is full the task waits for writability). At QoS 1 and 2 the
//! batch is the free part of the inflight window, refilled as acknowledgements come back in
//! bulk. With `--rate` the publisher sends what is due at each 1 ms timer tick.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use midge_proto::packet_type as pt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::client::{disconnect_packet, Conn};
use crate::clock::Clock;
use crate::engine::backlog::{Backlog, STALL};
use crate::engine::shared::{Counters, Phase};
use crate::hot_packets::{parse, put_ack, AckKind, Incoming, Parsed, PublishTemplate};
use crate::payload::{self, Header};

/// Bytes encoded ahead of the socket: large enough for many packets per write, small
/// enough to stay in cache.
const WRITE_CHUNK: usize = 64 * 1024;
/// QoS 0 messages per batch at most, so small payloads still come back to the scheduler
/// (and let subscribers on the same thread run) often.
const MAX_BATCH_QOS0: usize = 1024;

#[derive(Clone, Debug)]
pub struct PublisherSpec {
    pub id: u32,
    pub topic: String,
    pub qos: u8,
    pub payload: usize,
    /// Unacknowledged QoS 1/2 messages allowed (already lowered to the broker's limit).
    pub window: u16,
    /// Messages to send in all; None = until told to stop.
    pub count: Option<u64>,
    /// Messages per second for this publisher; None = as fast as possible.
    pub rate: Option<f64>,
    /// Once stopping, how long to wait without progress for the last acknowledgements.
    pub drain: Duration,
    pub clock: Clock,
    pub backlog: Arc<Backlog>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherResult {
    /// Messages sent: sequence numbers 0..sent were used.
    pub sent: u64,
    /// QoS 1/2 messages whose flow completed (PUBACK, or PUBCOMP).
    pub acked: u64,
    /// QoS 1/2 messages the broker refused with an MQTT 5 reason code ≥ 0x80.
    pub refused: u64,
    /// QoS 1/2 messages still unacknowledged when the publisher gave up waiting.
    pub unacked: u64,
    /// Bytes still unwritten when the publisher gave up: the broker stopped reading.
    pub unwritten_bytes: u64,
}

/// Packet ids and where each one's flow stands.
struct PacketIds {
    state: Vec<u8>,
    last: u16,
    inflight: usize,
}

const FREE: u8 = 0;
/// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
const SENT: u8 = 1;
/// PUBREL sent, waiting for PUBCOMP.
const RELEASED: u8 = 2;

impl PacketIds {
    fn new() -> PacketIds {
        PacketIds {
            state: vec![FREE; 1 << 16],
            last: 0,
            inflight: 0,
        }
    }

    /// A free id. The window is at most 65535 and ids are freed as acks come, so one is
    /// always found while the window has room.
    fn take(&mut self) -> u16 {
        loop {
            self.last = self.last.wrapping_add(1);
            if self.last != 0 && self.state[usize::from(self.last)] == FREE {
                self.state[usize::from(self.last)] = SENT;
                self.inflight += 1;
                return self.last;
            }
        }
    }

    fn get(&self, id: u16) -> u8 {
        self.state[usize::from(id)]
    }

    fn set(&mut self, id: u16, s: u8) {
        self.state[usize::from(id)] = s;
    }

    fn release(&mut self, id: u16) {
        self.state[usize::from(id)] = FREE;
        self.inflight -= 1;
    }
}

struct Publisher {
    spec: PublisherSpec,
    stream: TcpStream,
    v5: bool,
    rbuf: BytesMut,
    wbuf: BytesMut,
    ids: PacketIds,
    result: PublisherResult,
    counters: Arc<Counters>,
}

pub async fn run(
    conn: Conn,
    spec: PublisherSpec,
    counters: Arc<Counters>,
    phase: watch::Receiver<Phase>,
) -> Result<PublisherResult, String> {
    let id = spec.id;
    let mut p = Publisher {
        v5: conn.version.is_v5(),
        stream: conn.stream,
        rbuf: conn.rbuf,
        wbuf: BytesMut::with_capacity(WRITE_CHUNK * 2),
        ids: PacketIds::new(),
        result: PublisherResult::default(),
        counters,
        spec,
    };
    p.run(phase)
        .await
        .map_err(|e| format!("publisher {id}: {e}"))?;
    // A clean goodbye; if the socket will not take it now, closing is enough.
    let _ = p.stream.try_write(&disconnect_packet(conn.version));
    Ok(p.result)
}

impl Publisher {
    async fn run(&mut self, mut phase: watch::Receiver<Phase>) -> Result<(), String> {
        let spec = self.spec.clone();
        let template = PublishTemplate::new(
            &spec.topic,
            spec.qos,
            &payload::template(spec.payload),
            self.v5,
        );
        let batch = if spec.qos == 0 {
            (WRITE_CHUNK / template.len()).clamp(1, MAX_BATCH_QOS0)
        } else {
            usize::from(spec.window)
        };
        let start = Instant::now();
        let mut seq = 0u64;
        let mut stopping = false;
        // When something last moved while stopping: the drain gives up after `drain` of
        // nothing.
        let mut last_progress = Instant::now();
        loop {
            if !stopping && *phase.borrow_and_update() != Phase::Run {
                stopping = true;
                last_progress = Instant::now();
            }
            let left = spec.count.map_or(u64::MAX, |c| c - seq);
            // More to send, but the subscribers are too far behind (see `backlog`).
            let mut blocked = false;
            if !stopping && left > 0 && self.wbuf.len() < WRITE_CHUNK {
                let free = if spec.qos == 0 {
                    batch
                } else {
                    batch - self.ids.inflight
                };
                let mut n = (free as u64).min(left);
                if let Some(rate) = spec.rate {
                    // Message k is due k / rate seconds after the start.
                    let due = (start.elapsed().as_secs_f64() * rate) as u64 + 1;
                    n = n.min(due.saturating_sub(seq));
                }
                if n > 0 && spec.backlog.limited() {
                    let credit = spec.backlog.credit();
                    blocked = credit == 0;
                    n = n.min(credit);
                }
                if n > 0 {
                    spec.backlog.add_sent(n);
                    // One timestamp per batch: the whole batch leaves in one write.
                    let sent_us = spec.clock.now_us();
                    for _ in 0..n {
                        let packet_id = if spec.qos == 0 { 0 } else { self.ids.take() };
                        let h = Header {
                            publisher: spec.id,
                            seq,
                            sent_us,
                        };
                        template.put(&mut self.wbuf, packet_id, &h);
                        seq += 1;
                    }
                    self.result.sent = seq;
                    self.counters.messages.store(seq, Ordering::Relaxed);
                    if spec.count == Some(seq) {
                        self.counters.done.store(true, Ordering::Relaxed);
                    }
                }
            }
            if self.flush()? && stopping {
                last_progress = Instant::now();
            }
            // Paced, with more to send and room for it after the flush: wake when the next
            // one is due. With the window full the acks that free it wake the task instead,
            // and with the buffer full the socket does (a timer then would only spin).
            let room = (spec.qos == 0 || self.ids.inflight < batch)
                && self.wbuf.len() < WRITE_CHUNK
                && !blocked;
            let next_due = match spec.rate {
                Some(rate) if !stopping && spec.count != Some(seq) && room => {
                    Some(start + Duration::from_secs_f64(seq as f64 / rate))
                }
                _ => None,
            };
            let finished = stopping || spec.count == Some(seq);
            if finished && self.wbuf.is_empty() && self.ids.inflight == 0 {
                return Ok(());
            }
            // QoS 0 flat out: the batch is out, make the next one after letting the other
            // tasks on this thread (the subscribers) have their turn.
            if spec.qos == 0 && !finished && self.wbuf.is_empty() && spec.rate.is_none() && !blocked
            {
                tokio::task::yield_now().await;
                continue;
            }
            let give_up = last_progress + spec.drain;
            let backlog_moved = spec.backlog.notify().notified();
            tokio::pin!(backlog_moved);
            let mut slowest = 0;
            if blocked {
                // Register first, then announce, then look again: a subscriber's progress
                // either shows in this look or wakes the registered waiter.
                backlog_moved.as_mut().enable();
                spec.backlog.announce_waiting();
                if spec.backlog.credit() > 0 {
                    continue;
                }
                slowest = spec.backlog.slowest_progress();
            }
            tokio::select! {
                r = self.stream.readable() => {
                    r.map_err(|e| format!("waiting for the socket: {e}"))?;
                    if self.read_acks()? && stopping {
                        last_progress = Instant::now();
                    }
                }
                r = self.stream.writable(), if !self.wbuf.is_empty() => {
                    r.map_err(|e| format!("waiting for the socket: {e}"))?;
                }
                r = phase.changed(), if !stopping => {
                    if r.is_err() {
                        stopping = true;
                        last_progress = Instant::now();
                    }
                }
                _ = sleep_until(next_due.unwrap_or(give_up)), if next_due.is_some() => {}
                _ = &mut backlog_moved, if blocked => {}
                _ = tokio::time::sleep(STALL), if blocked => {
                    if spec.backlog.slowest_progress() == slowest {
                        spec.backlog.write_off();
                    }
                }
                _ = sleep_until(give_up), if stopping => {
                    self.result.unacked = self.ids.inflight as u64;
                    self.result.unwritten_bytes = self.wbuf.len() as u64;
                    return Ok(());
                }
            }
            // As in the subscriber: readiness alone never makes a busy task yield.
            tokio::task::coop::consume_budget().await;
        }
    }

    /// Writes until the buffer is empty or the socket is full; true if anything was written.
    fn flush(&mut self) -> Result<bool, String> {
        let mut wrote = false;
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => {
                    self.wbuf.advance(n);
                    wrote = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("writing: {e}")),
            }
        }
        Ok(wrote)
    }

    /// One read, and every acknowledgement in it; true if any flow completed.
    fn read_acks(&mut self) -> Result<bool, String> {
        self.rbuf.reserve(4096);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => return Err("the broker closed the connection".into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(format!("reading: {e}")),
        }
        let qos = self.spec.qos;
        let before = self.result.acked + self.result.refused;
        let mut at = 0;
        while let Parsed::Packet(packet, n) =
            parse(&self.rbuf[at..], self.v5).map_err(|e| e.to_string())?
        {
            at += n;
            match packet {
                Incoming::Ack {
                    kind: AckKind::PubAck,
                    packet_id,
                    reason,
                } if qos == 1 && self.ids.get(packet_id) == SENT => {
                    self.ids.release(packet_id);
                    if reason >= 0x80 {
                        self.result.refused += 1;
                    } else {
                        self.result.acked += 1;
                    }
                }
                Incoming::Ack {
                    kind: AckKind::PubRec,
                    packet_id,
                    reason,
                } if qos == 2 && self.ids.get(packet_id) == SENT => {
                    if reason >= 0x80 {
                        // The broker refused the message: the flow ends here.
                        self.ids.release(packet_id);
                        self.result.refused += 1;
                    } else {
                        self.ids.set(packet_id, RELEASED);
                        put_ack(&mut self.wbuf, AckKind::PubRel, packet_id);
                    }
                }
                Incoming::Ack {
                    kind: AckKind::PubComp,
                    packet_id,
                    ..
                } if qos == 2 && self.ids.get(packet_id) == RELEASED => {
                    self.ids.release(packet_id);
                    self.result.acked += 1;
                }
                Incoming::Ack {
                    kind, packet_id, ..
                } => {
                    return Err(format!(
                        "unexpected {kind:?} for packet id {packet_id} at QoS {qos}"
                    ));
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
                Incoming::Publish { .. } => {
                    return Err("unexpected PUBLISH to a publisher".into());
                }
            }
        }
        self.rbuf.advance(at);
        let done = self.result.acked + self.result.refused;
        self.counters.unique_or_acked.store(done, Ordering::Relaxed);
        Ok(done > before)
    }
}
