//! Why a connection ends, what the client is told (MQTT 5 DISCONNECT reason codes) and what
//! happens to its will and session afterwards.

use std::time::Duration;

use bytes::Buf;
use midge_proto::{reason, DecodeError, Disconnect, Packet, Properties};

use super::{Connection, CLOSE_FLUSH};
use crate::metrics::Counter;

#[derive(Debug)]
pub enum Close {
    /// The client closed the socket without DISCONNECT.
    PeerClosed,
    /// The client sent DISCONNECT; reason 0x04 asks for the will to be sent.
    Disconnected {
        reason: u8,
    },
    /// The client broke the protocol: MQTT 5 clients get a DISCONNECT with this reason.
    Violation {
        reason: u8,
        why: String,
    },
    Io(std::io::Error),
    KeepAlive,
    /// Another connection took the session (or discarded it with a clean start).
    TakenOver,
    /// Dynamic security closed it: the client was deleted or disabled, or its credentials
    /// or roles changed.
    Kicked,
    /// `memory_limit` reached while an MQTT 3.x client published.
    OverMemory,
    Shutdown,
}

impl Close {
    pub fn protocol(why: impl Into<String>) -> Close {
        Close::Violation {
            reason: reason::PROTOCOL_ERROR,
            why: why.into(),
        }
    }

    pub fn from_decode(e: DecodeError) -> Close {
        Close::Violation {
            reason: e.reason_code(),
            why: e.to_string(),
        }
    }

    /// The DISCONNECT reason the broker sends to an MQTT 5 client, if it sends one.
    fn server_reason(&self) -> Option<u8> {
        match self {
            Close::Violation { reason, .. } => Some(*reason),
            Close::KeepAlive => Some(reason::KEEP_ALIVE_TIMEOUT),
            Close::TakenOver => Some(reason::SESSION_TAKEN_OVER),
            Close::Kicked => Some(reason::ADMINISTRATIVE_ACTION),
            Close::OverMemory => Some(reason::QUOTA_EXCEEDED),
            Close::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
            Close::PeerClosed | Close::Disconnected { .. } | Close::Io(_) => None,
        }
    }

    /// Whether the will is published: every end but a normal DISCONNECT [MQTT-3.1.2-8],
    /// and but an administrative kick (Mosquitto kicks without the will: the client did
    /// not fail, its rights changed).
    fn keeps_will(&self) -> bool {
        match self {
            Close::Disconnected { reason } => *reason == reason::DISCONNECT_WITH_WILL,
            Close::Kicked => false,
            _ => true,
        }
    }
}

impl Connection {
    /// Tells the client why (MQTT 5), flushes what is pending, closes the socket, then hands
    /// the session and will back to the broker.
    pub(super) async fn finish(mut self, close: Close) {
        self.log_close(&close);
        if let Close::Violation { reason, why } = &close {
            let details = serde_json::json!({"reason_code": reason, "reason": why});
            self.audit("protocol_violation", details);
        }
        self.broker.metrics.client_disconnected();
        if self.version.is_v5() {
            if let Some(code) = close.server_reason() {
                self.send(&Packet::Disconnect(Disconnect {
                    reason: code,
                    properties: Properties::default(),
                }));
            }
        }
        if !matches!(close, Close::Io(_) | Close::PeerClosed) {
            let _ = tokio::time::timeout(CLOSE_FLUSH, self.flush_all()).await;
        }
        let _ = self.stream.shutdown().await;
        let will = if close.keeps_will() {
            self.will.take().map(|w| *w)
        } else {
            None
        };
        self.broker.detach(&self.session, self.generation, will);
    }

    async fn flush_all(&mut self) -> std::io::Result<()> {
        // Acknowledgements in the buffer go out only once what they acknowledge is stored.
        if self.wbuf_ticket != 0 {
            if let Some(p) = &self.broker.persist {
                p.wait(self.wbuf_ticket).await;
            }
        }
        while !self.wbuf.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => {
                    self.wbuf.advance(n);
                    self.broker.metrics.add(Counter::BytesSent, n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn log_close(&self, close: &Close) {
        if !self.broker.settings.connection_messages {
            return;
        }
        let id = &self.client_id;
        match close {
            Close::PeerClosed => tracing::info!("Client {id} closed its connection."),
            Close::Disconnected { .. } => tracing::info!("Client {id} disconnected."),
            Close::Violation { why, .. } => {
                tracing::info!("Client {id} disconnected due to protocol error: {why}.")
            }
            Close::Io(e) => tracing::info!("Client {id} disconnected: {e}."),
            Close::KeepAlive => {
                tracing::info!("Client {id} has exceeded timeout, disconnecting.")
            }
            Close::TakenOver => tracing::debug!("Client {id} replaced by a new connection."),
            Close::Kicked => {
                tracing::info!("Client {id} disconnected by administrative action.")
            }
            Close::OverMemory => {
                tracing::info!("Client {id} disconnected: memory_limit reached.")
            }
            Close::Shutdown => tracing::debug!("Client {id} disconnected: server shutting down."),
        }
    }
}

/// How long a refused connection gets to receive its CONNACK before the socket closes.
pub(super) const REFUSE_FLUSH: Duration = Duration::from_millis(500);
