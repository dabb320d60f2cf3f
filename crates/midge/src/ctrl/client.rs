//! One request, one response, over MQTT: connect (TCP, Unix socket or TLS), subscribe to the
//! response topic, publish the request once the subscription is granted, wait (10 s at most,
//! as mosquitto_ctrl) for the first message, disconnect. Blocking I/O on std sockets; the
//! packets are midge-proto's.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, reason, ConnAck, Connect, Disconnect,
    Packet, Properties, ProtocolVersion, PubResp, Publish, QoS, Sender, Subscribe, SubscribeFilter,
    SubscriptionOptions,
};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVersion};

use super::options::Options;

/// How long mosquitto_ctrl waits for the whole exchange after connecting.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest packet accepted from the broker (a response listing many clients is big, but not
/// this big).
const MAX_PACKET: usize = 64 * 1024 * 1024;

/// A failure, with what to print (already including `Error:` where mosquitto_ctrl has it)
/// and the exit code.
#[derive(Debug)]
pub struct ClientError {
    pub message: String,
    pub code: u8,
}

fn fail(code: u8, message: impl Into<String>) -> ClientError {
    ClientError {
        message: message.into(),
        code,
    }
}

/// libmosquitto's error numbers, the exit codes of mosquitto_ctrl's connection failures.
mod code {
    pub const FAILURE: u8 = 1;
    pub const TLS: u8 = 8;
    pub const ERRNO: u8 = 14;
    pub const EAI: u8 = 15;
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Stream {
    fn set_timeout(&self, t: Duration) -> io::Result<()> {
        let t = Some(t.max(Duration::from_millis(1)));
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Stream::Tls(s) => {
                s.get_ref().set_read_timeout(t)?;
                s.get_ref().set_write_timeout(t)
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// `strerror` text, without Rust's " (os error N)".
pub fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// Opens the transport the options ask for.
fn open(opts: &Options) -> Result<Stream, ClientError> {
    if opts.unix {
        let s = UnixStream::connect(opts.host())
            .map_err(|e| fail(code::ERRNO, format!("Error: {}", describe(&e))))?;
        s.set_read_timeout(Some(RESPONSE_TIMEOUT))
            .map_err(|e| fail(code::ERRNO, format!("Error: {}", describe(&e))))?;
        return Ok(Stream::Unix(s));
    }
    let tls = if opts.uses_tls() {
        Some(tls_connector(opts)?)
    } else {
        None
    };
    let tcp = tcp_connect(opts)?;
    let Some(connector) = tls else {
        return Ok(Stream::Tcp(tcp));
    };
    let _ = tcp.set_read_timeout(Some(RESPONSE_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(RESPONSE_TIMEOUT));
    let mut config = connector
        .configure()
        .map_err(|e| fail(code::TLS, format!("OpenSSL Error: {e}")))?;
    if opts.insecure || opts.psk.is_some() {
        config.set_verify_hostname(false);
    }
    match config.connect(opts.host(), tcp) {
        Ok(s) => Ok(Stream::Tls(Box::new(s))),
        Err(e) => Err(fail(
            code::TLS,
            format!("OpenSSL Error: {e}\nUnable to connect (A TLS error occurred.)."),
        )),
    }
}

fn tcp_connect(opts: &Options) -> Result<TcpStream, ClientError> {
    let addrs: Vec<_> = (opts.host(), opts.port())
        .to_socket_addrs()
        .map_err(|_| fail(code::EAI, "Unable to connect (Lookup error.)."))?
        .collect();
    let bind = match &opts.bind_address {
        Some(b) => Some(
            (b.as_str(), 0)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| fail(code::EAI, "Unable to connect (Lookup error.)."))?,
        ),
        None => None,
    };
    let mut last = None;
    for addr in addrs {
        let result = match bind {
            Some(local) => {
                if local.is_ipv4() != addr.is_ipv4() {
                    continue;
                }
                (|| {
                    let domain = socket2::Domain::for_address(addr);
                    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
                    s.bind(&local.into())?;
                    s.connect_timeout(&addr.into(), RESPONSE_TIMEOUT)?;
                    Ok(TcpStream::from(s))
                })()
            }
            None => TcpStream::connect_timeout(&addr, RESPONSE_TIMEOUT),
        };
        match result {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => fail(code::ERRNO, format!("Error: {}", describe(&e))),
        None => fail(code::EAI, "Unable to connect (Lookup error.)."),
    })
}

/// The OpenSSL context of `--cafile/--capath/--cert/--key/--ciphers/--tls-version/--psk`.
fn tls_connector(opts: &Options) -> Result<SslConnector, ClientError> {
    let setting = |what: &str| {
        fail(
            code::FAILURE,
            format!("Error: Problem setting TLS options: {what}."),
        )
    };
    let mut b = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| fail(code::TLS, format!("OpenSSL Error: {e}")))?;
    for f in [&opts.cafile, &opts.certfile, &opts.keyfile]
        .into_iter()
        .flatten()
    {
        if !Path::new(f).is_file() {
            return Err(setting("File not found"));
        }
    }
    if let Some(ca) = &opts.cafile {
        b.set_ca_file(ca).map_err(|_| setting("File not found"))?;
    }
    if let Some(dir) = &opts.capath {
        b.load_verify_locations(None, Some(dir))
            .map_err(|_| setting("File not found"))?;
    }
    if let (Some(cert), Some(key)) = (&opts.certfile, &opts.keyfile) {
        b.set_certificate_chain_file(cert)
            .and_then(|()| b.set_private_key_file(key, SslFiletype::PEM))
            .and_then(|()| b.check_private_key())
            .map_err(|e| fail(code::TLS, format!("OpenSSL Error: {e}\nError: Problem setting TLS options: A TLS error occurred.")))?;
    }
    let invalid = || {
        fail(
            code::FAILURE,
            "Error: Problem setting TLS options, check the options are valid.",
        )
    };
    if let Some(v) = &opts.tls_version {
        let min = match v.as_str() {
            "tlsv1.3" => SslVersion::TLS1_3,
            "tlsv1.2" => SslVersion::TLS1_2,
            "tlsv1.1" => SslVersion::TLS1_1,
            _ => return Err(invalid()),
        };
        b.set_min_proto_version(Some(min)).map_err(|_| invalid())?;
    }
    if let Some(c) = &opts.ciphers {
        b.set_cipher_list(c).map_err(|_| invalid())?;
    }
    if let Some(alpn) = &opts.tls_alpn {
        let mut wire = vec![u8::try_from(alpn.len()).map_err(|_| invalid())?];
        wire.extend_from_slice(alpn.as_bytes());
        b.set_alpn_protos(&wire)
            .map_err(|_| fail(code::FAILURE, "Error: Problem setting TLS ALPN protocol."))?;
    }
    if let (Some(psk), Some(identity)) = (&opts.psk, &opts.psk_identity) {
        let key = midge_server::tls::psk_from_hex(psk)
            .ok_or_else(|| fail(code::FAILURE, "Error: Problem setting TLS-PSK options."))?;
        midge_server::tls::client_psk(&mut b, identity, key, opts.ciphers.is_some())
            .map_err(|_| invalid())?;
    }
    Ok(b.build())
}

/// libmosquitto's `mosquitto_reason_string`.
pub fn reason_string(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        0x18 => "Continue authentication",
        0x19 => "Re-authenticate",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "Unknown reason",
    }
}

/// libmosquitto's `mosquitto_connack_string` (MQTT 3.1 / 3.1.1 return codes).
pub fn connack_string(code: u8) -> &'static str {
    match code {
        0 => "Connection Accepted.",
        1 => "Connection Refused: unacceptable protocol version.",
        2 => "Connection Refused: identifier rejected.",
        3 => "Connection Refused: broker unavailable.",
        4 => "Connection Refused: bad user name or password.",
        5 => "Connection Refused: not authorised.",
        _ => "Connection Refused: unknown reason.",
    }
}

/// The text mosquitto_ctrl prints for a refused CONNACK.
pub fn connack_error(version: ProtocolVersion, code: u8) -> String {
    if version.is_v5() {
        if code == reason::UNSUPPORTED_PROTOCOL_VERSION {
            format!(
                "Connection error: {}. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.",
                reason_string(code)
            )
        } else {
            format!("Connection error: {}", reason_string(code))
        }
    } else {
        format!("Connection error: {}", connack_string(code))
    }
}

/// A connection speaking one protocol version.
struct Session {
    stream: Stream,
    version: ProtocolVersion,
    buf: BytesMut,
    deadline: Instant,
    debug: bool,
    id: String,
}

impl Session {
    fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        if self.debug {
            eprintln!("Client {} sending {}", self.id, packet.name());
        }
        let mut out = BytesMut::new();
        encode_packet(packet, self.version, &mut out);
        self.stream
            .write_all(&out)
            .and_then(|()| self.stream.flush())
            .map_err(|e| lost(&e))
    }

    /// The next packet from the broker, before the deadline.
    fn recv(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some(header) = decode_fixed_header(&self.buf).map_err(malformed)? {
                if header.packet_len() > MAX_PACKET {
                    return Err(fail(
                        code::FAILURE,
                        "Error: Packet from the broker is too large.",
                    ));
                }
                if self.buf.len() >= header.packet_len() {
                    let mut packet = self.buf.split_to(header.packet_len());
                    let body = packet.split_off(header.header_len).freeze();
                    let packet = self.decode(header.first_byte, body)?;
                    if self.debug {
                        eprintln!("Client {} received {}", self.id, packet.name());
                    }
                    return Ok(packet);
                }
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout());
            }
            self.stream.set_timeout(left).map_err(|e| lost(&e))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(fail(code::FAILURE, "Error: The connection was lost.")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= self.deadline {
                        return Err(timeout());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(lost(&e)),
            }
        }
    }

    fn decode(&self, first_byte: u8, body: Bytes) -> Result<Packet, ClientError> {
        // A broker that does not speak MQTT 5 answers a v5 CONNECT with a 3.1.1 CONNACK
        // (two bytes, return code 1); libmosquitto reads that as "unsupported protocol
        // version", and so does this.
        if self.version.is_v5() && first_byte >> 4 == 2 && body.len() == 2 {
            let code = if body[1] == 1 {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            } else if body[1] == 0 {
                0
            } else {
                reason::UNSPECIFIED_ERROR
            };
            return Ok(Packet::ConnAck(ConnAck {
                session_present: false,
                code,
                properties: Properties::default(),
            }));
        }
        decode_packet(first_byte, body, self.version, Sender::Server).map_err(malformed)
    }
}

fn malformed(e: impl std::fmt::Display) -> ClientError {
    fail(
        code::FAILURE,
        format!("Error: Malformed packet from the broker ({e})."),
    )
}

fn lost(e: &io::Error) -> ClientError {
    fail(
        code::FAILURE,
        format!("Error: The connection was lost ({}).", describe(e)),
    )
}

fn timeout() -> ClientError {
    fail(
        code::FAILURE,
        format!(
            "Error: Timed out after {} s waiting for the broker's response.",
            RESPONSE_TIMEOUT.as_secs()
        ),
    )
}

fn random_id() -> String {
    let n = getrandom::u64().unwrap_or(0);
    format!("midge-ctrl-{n:016x}")
}

/// Connects, publishes `payload` to `request_topic` once subscribed to `response_topic`, and
/// returns the first message's payload.
pub fn request_response(
    opts: &Options,
    request_topic: &str,
    response_topic: &str,
    payload: &[u8],
) -> Result<Bytes, ClientError> {
    let stream = open(opts)?;
    // MQTT 3.1 cannot send an empty client id; libmosquitto refuses to connect there, this
    // makes one up.
    let client_id = match (&opts.id, opts.protocol) {
        (Some(id), _) => id.clone(),
        (None, ProtocolVersion::V31) => random_id(),
        (None, _) => String::new(),
    };
    let mut s = Session {
        stream,
        version: opts.protocol,
        buf: BytesMut::new(),
        deadline: Instant::now() + RESPONSE_TIMEOUT,
        debug: opts.debug,
        id: if client_id.is_empty() {
            "(null)".to_string()
        } else {
            client_id.clone()
        },
    };
    let qos = QoS::from_u8(opts.qos).unwrap_or(QoS::AtLeastOnce);
    s.send(&Packet::Connect(Box::new(Connect {
        protocol: opts.protocol,
        clean_start: true,
        keep_alive: 60,
        client_id,
        will: None,
        username: opts.username.clone(),
        password: opts.password.clone().map(Bytes::from),
        properties: Properties::default(),
    })))?;
    let result = exchange(&mut s, qos, request_topic, response_topic, payload);
    if !matches!(&result, Err(e) if e.message.starts_with("Error: The connection was lost")) {
        let _ = s.send(&Packet::Disconnect(Disconnect::default()));
    }
    result
}

fn exchange(
    s: &mut Session,
    qos: QoS,
    request_topic: &str,
    response_topic: &str,
    payload: &[u8],
) -> Result<Bytes, ClientError> {
    const SUBSCRIBE_ID: u16 = 1;
    const PUBLISH_ID: u16 = 2;
    let mut incoming_qos2: Option<(u16, Bytes)> = None;
    loop {
        match s.recv()? {
            Packet::ConnAck(c) => {
                if c.code != 0 {
                    return Err(fail(code::FAILURE, connack_error(s.version, c.code)));
                }
                if let Some(id) = c.properties.assigned_client_identifier {
                    s.id = id;
                }
                s.send(&Packet::Subscribe(Subscribe {
                    packet_id: SUBSCRIBE_ID,
                    filters: vec![SubscribeFilter {
                        filter: response_topic.to_string(),
                        options: SubscriptionOptions {
                            qos,
                            ..SubscriptionOptions::default()
                        },
                    }],
                    properties: Properties::default(),
                }))?;
            }
            Packet::SubAck(a) => {
                let [code] = a.codes[..] else {
                    return Err(fail(
                        code::FAILURE,
                        "Subscribe error: Subscription refused.",
                    ));
                };
                if code >= 0x80 {
                    return Err(fail(
                        code::FAILURE,
                        if s.version.is_v5() {
                            format!("Subscribe error: {}", reason_string(code))
                        } else {
                            "Subscribe error: Subscription refused.".to_string()
                        },
                    ));
                }
                s.send(&Packet::Publish(Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: ByteString::from(request_topic),
                    packet_id: if qos == QoS::AtMostOnce {
                        0
                    } else {
                        PUBLISH_ID
                    },
                    payload: Bytes::copy_from_slice(payload),
                    properties: Properties::default(),
                }))?;
            }
            Packet::PubAck(r) | Packet::PubRec(r) if r.reason >= 0x80 => {
                return Err(fail(
                    code::FAILURE,
                    format!("Publish error: {}", reason_string(r.reason)),
                ));
            }
            Packet::PubRec(r) => s.send(&Packet::PubRel(PubResp::new(r.packet_id)))?,
            Packet::PubAck(_) | Packet::PubComp(_) | Packet::PingResp => {}
            // A message retained on the response topic is someone's old answer, not ours;
            // the broker's answer to this request is never retained.
            Packet::Publish(p) if p.retain => {
                if p.qos == QoS::AtLeastOnce {
                    s.send(&Packet::PubAck(PubResp::new(p.packet_id)))?;
                } else if p.qos == QoS::ExactlyOnce {
                    s.send(&Packet::PubRec(PubResp::new(p.packet_id)))?;
                }
            }
            Packet::Publish(p) => match p.qos {
                QoS::AtMostOnce => return Ok(p.payload),
                QoS::AtLeastOnce => {
                    s.send(&Packet::PubAck(PubResp::new(p.packet_id)))?;
                    return Ok(p.payload);
                }
                QoS::ExactlyOnce => {
                    s.send(&Packet::PubRec(PubResp::new(p.packet_id)))?;
                    incoming_qos2 = Some((p.packet_id, p.payload));
                }
            },
            Packet::PubRel(r) => {
                s.send(&Packet::PubComp(PubResp::new(r.packet_id)))?;
                if let Some((_, payload)) = incoming_qos2.take_if(|(id, _)| *id == r.packet_id) {
                    return Ok(payload);
                }
            }
            Packet::Disconnect(d) => {
                return Err(fail(
                    code::FAILURE,
                    format!(
                        "Error: The broker closed the connection: {}",
                        reason_string(d.reason)
                    ),
                ));
            }
            other => {
                return Err(fail(
                    code::FAILURE,
                    format!("Error: Unexpected {} from the broker.", other.name()),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connack_messages_match_libmosquitto() {
        assert_eq!(
            connack_error(ProtocolVersion::V5, 0x87),
            "Connection error: Not authorized"
        );
        assert_eq!(
            connack_error(ProtocolVersion::V311, 5),
            "Connection error: Connection Refused: not authorised."
        );
        assert!(connack_error(ProtocolVersion::V5, 0x84).ends_with("or use MQTT v3.x mode."));
    }
}
