//! `protocol http_api` listeners (Mosquitto 2.1): a small read-only web server with the
//! broker's state — `/api/v1/systree`, `/api/v1/listeners`, `/api/v1/version` — and, beyond
//! Mosquitto, `/metrics` in the Prometheus text format, from the same counters as `$SYS`.
//!
//! Unlike Mosquitto's, it can be protected: the listener's security applies. With
//! `allow_anonymous false`, requests need HTTP Basic credentials that the listener's
//! password file or dynamic security accept; with `require_certificate true` (and
//! `use_identity_as_username`), the TLS handshake already proved who the client is.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::broker::Broker;
use crate::listener_ctx::ListenerCtx;

/// One listener as `/api/v1/listeners` shows it (the shape of Mosquitto 2.1's
/// `listListeners`).
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub port: u16,
    pub protocol: &'static str,
    pub bind_address: Option<String>,
    pub socket_path: Option<String>,
    pub tls: bool,
}

/// What the routes read.
pub struct ApiState {
    pub broker: Arc<Broker>,
    pub listeners: Vec<ListenerInfo>,
}

/// Serves HTTP/1.1 on one accepted stream until the client closes it. `certified` says
/// that the TLS handshake verified a client certificate (`require_certificate`).
pub async fn serve<S>(
    io: S,
    state: Arc<ApiState>,
    ctx: Arc<ListenerCtx>,
    certified: bool,
    timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(respond(req, &state, &ctx, certified).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A client that never finishes its request head does not hold the socket.
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("HTTP API connection ended: {e}");
    }
}

async fn respond(
    req: Request<Incoming>,
    state: &ApiState,
    ctx: &ListenerCtx,
    certified: bool,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if !authorised(&req, ctx, certified, &state.broker).await {
        let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"midge\", charset=\"UTF-8\""),
        );
        return r;
    }
    match req.uri().path() {
        "/api/v1/systree" => json(&systree(&state.broker)),
        "/api/v1/listeners" => json(&listeners(&state.listeners)),
        "/api/v1/version" => json(&serde_json::json!({
            "name": "midge",
            "version": env!("CARGO_PKG_VERSION"),
            "systree": crate::systree::version(),
        })),
        "/metrics" => metrics(&state.broker),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Whether the request may be answered under the listener's policy.
async fn authorised(
    req: &Request<Incoming>,
    ctx: &ListenerCtx,
    certified: bool,
    broker: &Broker,
) -> bool {
    let policy = ctx.policy.get();
    if policy.allow_anonymous || certified {
        return true;
    }
    let Some((user, password)) = basic_credentials(req) else {
        return false;
    };
    if !policy.checks_passwords() {
        return false;
    }
    let Ok(_permit) = broker.hashing.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || policy.verify_login(&user, Some(password.as_bytes()), ""))
        .await
        .unwrap_or(false)
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Every `$SYS` topic with its current value: numbers as JSON numbers, the rest as text.
fn systree(broker: &Broker) -> serde_json::Value {
    let sample = broker.sample();
    let all = broker.systree.lock().current(&sample);
    let mut map = serde_json::Map::new();
    for (topic, text) in all {
        let value = if let Ok(n) = text.parse::<u64>() {
            serde_json::Value::from(n)
        } else if let Some(n) = text.parse::<f64>().ok().filter(|_| text.contains('.')) {
            serde_json::Value::from(n)
        } else {
            serde_json::Value::from(text)
        };
        map.insert(topic, value);
    }
    serde_json::Value::Object(map)
}

fn listeners(all: &[ListenerInfo]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = all
        .iter()
        .map(|l| {
            let mut o = serde_json::Map::new();
            o.insert("port".into(), l.port.into());
            o.insert("protocol".into(), l.protocol.into());
            if let Some(a) = &l.bind_address {
                o.insert("bind-address".into(), a.as_str().into());
            }
            if let Some(p) = &l.socket_path {
                o.insert("socket-path".into(), p.as_str().into());
            }
            o.insert("tls".into(), l.tls.into());
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::json!({ "listeners": list })
}

fn metrics(broker: &Arc<Broker>) -> Response<Full<Bytes>> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Collector(Arc::clone(broker))));
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &registry).is_err() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Reads the broker's counters at each scrape.
struct Collector(Arc<Broker>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.sample();
        let counters: [(&str, &str, u64); 14] = [
            (
                "midge_packets_received",
                "MQTT packets received",
                s.packets_received,
            ),
            ("midge_packets_sent", "MQTT packets sent", s.packets_sent),
            (
                "midge_bytes_received",
                "Bytes received from clients",
                s.bytes_received,
            ),
            ("midge_bytes_sent", "Bytes sent to clients", s.bytes_sent),
            (
                "midge_publish_received",
                "PUBLISH packets received",
                s.publish_received,
            ),
            ("midge_publish_sent", "PUBLISH packets sent", s.publish_sent),
            (
                "midge_publish_dropped",
                "Deliveries dropped by queue limits",
                s.publish_dropped,
            ),
            (
                "midge_publish_bytes_received",
                "PUBLISH payload bytes received",
                s.publish_bytes_received,
            ),
            (
                "midge_publish_bytes_sent",
                "PUBLISH payload bytes sent",
                s.publish_bytes_sent,
            ),
            ("midge_sockets_accepted", "Sockets accepted", s.sockets),
            ("midge_connects", "CONNECTs accepted", s.connections),
            (
                "midge_auth_failures",
                "CONNECTs refused for their credentials",
                s.auth_failures,
            ),
            (
                "midge_acl_denials",
                "Publishes, deliveries and (un)subscriptions denied by ACLs",
                s.acl_denials,
            ),
            (
                "midge_tls_handshake_failures",
                "TLS handshakes that failed",
                s.tls_handshake_failures,
            ),
        ];
        for (name, help, value) in counters {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(m)?;
        }
        let expired = encoder.encode_descriptor(
            "midge_sessions_expired",
            "Sessions that expired",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.expired).encode(expired)?;
        let gauges: [(&str, &str, u64); 9] = [
            ("midge_uptime_seconds", "Seconds since start", s.uptime),
            ("midge_clients_connected", "Clients connected", s.connected),
            (
                "midge_clients_disconnected",
                "Persistent sessions whose client is offline",
                s.disconnected,
            ),
            (
                "midge_clients_maximum",
                "Most clients connected at once",
                s.maximum,
            ),
            ("midge_subscriptions", "Subscriptions", s.subscriptions),
            (
                "midge_shared_subscriptions",
                "Shared subscriptions",
                s.shared_subscriptions,
            ),
            ("midge_retained_messages", "Retained messages", s.retained),
            (
                "midge_messages_stored",
                "Messages held: retained, queued and in flight",
                s.messages_stored,
            ),
            (
                "midge_messages_stored_bytes",
                "Payload bytes of the messages held",
                s.messages_stored_bytes,
            ),
        ];
        let heap = s.heap.map(|(current, maximum)| {
            [
                ("midge_heap_bytes", "Heap bytes in use", current),
                (
                    "midge_heap_maximum_bytes",
                    "Most heap bytes in use since start",
                    maximum,
                ),
            ]
        });
        for (name, help, value) in gauges.into_iter().chain(heap.into_iter().flatten()) {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(m)?;
        }
        Ok(())
    }
}
