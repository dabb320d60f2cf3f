//! A fake remote broker for bridge tests: the remote side of one bridge connection, speaking
//! raw MQTT over any stream (TCP, or TLS from a fake TLS server), decoding with the codec
//! and answering only what a test tells it to.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, ConnAck, Packet, ProtocolVersion, PubResp,
    Publish, QoS, Sender, SubAck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::WAIT;

/// A byte stream the remote side can run on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The remote side of one bridge connection.
pub struct Peer {
    pub stream: Box<dyn Io>,
    buf: BytesMut,
    pub version: ProtocolVersion,
}

impl Peer {
    /// Accepts the bridge's next TCP connection (within 5 s).
    pub async fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the bridge connects in time")
            .expect("accept");
        Peer::new(stream)
    }

    /// The remote side on an already accepted (and possibly TLS) stream.
    pub fn new(stream: impl Io + 'static) -> Peer {
        Peer {
            stream: Box::new(stream),
            buf: BytesMut::new(),
            version: ProtocolVersion::V311,
        }
    }

    /// The next packet within `within`: its first byte, its body and the decoded packet;
    /// `None` when nothing came in time or the bridge closed the connection.
    pub async fn recv_raw_within(&mut self, within: Duration) -> Option<(u8, Bytes, Packet)> {
        self.next_within(within).await.ok()
    }

    /// The next packet within `within`; `Err(true)` when the bridge closed the connection,
    /// `Err(false)` when nothing came in time.
    pub async fn next_within(&mut self, within: Duration) -> Result<(u8, Bytes, Packet), bool> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(h)) = decode_fixed_header(&self.buf) {
                if self.buf.len() >= h.packet_len() {
                    self.buf.advance(h.header_len);
                    let body = self.buf.split_to(h.remaining_length).freeze();
                    let packet =
                        decode_packet(h.first_byte, body.clone(), self.version, Sender::Client)
                            .expect("the bridge sends valid packets");
                    return Ok((h.first_byte, body, packet));
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(false),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(true),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next packet within [`WAIT`]; `None` on timeout or close.
    pub async fn recv_raw(&mut self) -> Option<(u8, Bytes, Packet)> {
        self.recv_raw_within(WAIT).await
    }

    pub async fn recv(&mut self) -> Packet {
        self.recv_raw().await.expect("a packet from the bridge").2
    }

    pub async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        encode_packet(p, self.version, &mut out);
        self.stream
            .write_all(&out)
            .await
            .expect("write to the bridge");
    }

    /// CONNECT → CONNACK; returns the CONNECT's protocol level byte and the packet.
    pub async fn handshake(&mut self) -> (u8, midge_proto::Connect) {
        let (level, c, _) = self.receive_connect().await;
        self.send(&Packet::ConnAck(ConnAck::default())).await;
        (level, c)
    }

    /// Reads the CONNECT without answering it: the protocol level byte, the packet and the
    /// protocol name as sent.
    pub async fn receive_connect(&mut self) -> (u8, midge_proto::Connect, Vec<u8>) {
        let (_, body, packet) = self.recv_raw().await.expect("CONNECT");
        let Packet::Connect(c) = packet else {
            panic!("expected CONNECT, got {packet:?}");
        };
        self.version = c.protocol;
        let name_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let level = body[2 + name_len];
        (level, *c, body[2..2 + name_len].to_vec())
    }

    /// Answers what the bridge sends after CONNACK (notification, SUBSCRIBE) until the
    /// subscriptions are acknowledged; returns the SUBSCRIBE packets.
    pub async fn settle(&mut self, subscriptions: usize) -> Vec<midge_proto::Subscribe> {
        let mut subs = Vec::new();
        while subs.len() < subscriptions {
            match self.recv().await {
                Packet::Publish(p) => {
                    if p.qos != QoS::AtMostOnce {
                        self.send(&Packet::PubAck(PubResp::new(p.packet_id))).await;
                    }
                }
                Packet::Subscribe(s) => {
                    let codes = s.filters.iter().map(|f| f.options.qos as u8).collect();
                    self.send(&Packet::SubAck(SubAck {
                        packet_id: s.packet_id,
                        codes,
                        properties: Default::default(),
                    }))
                    .await;
                    subs.push(s);
                }
                Packet::Unsubscribe(_) | Packet::PingReq => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        subs
    }

    pub async fn publish(&mut self, topic: &str, qos: QoS, packet_id: u16, payload: &'static [u8]) {
        self.send(&Packet::Publish(Publish {
            qos,
            topic: topic.into(),
            packet_id,
            payload: Bytes::from_static(payload),
            ..Publish::default()
        }))
        .await;
    }

    /// Waits for the acknowledgement of `packet_id`, answering nothing else.
    pub async fn expect_ack(&mut self, want: u16) -> Packet {
        loop {
            match self.recv().await {
                Packet::PingReq => {}
                p @ (Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_)) => {
                    let id = match &p {
                        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubComp(r) => r.packet_id,
                        _ => 0,
                    };
                    assert_eq!(id, want, "acknowledgement order");
                    return p;
                }
                other => panic!("expected the acknowledgement of {want}, got {other:?}"),
            }
        }
    }
}
