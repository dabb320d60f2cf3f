//! MQTT over WebSockets (`protocol websockets`).
//!
//! The request head is read first ([`http`]): a plain HTTP request is answered from
//! `http_dir` (or refused), an upgrade from an origin outside `websockets_origin` is refused,
//! and any other upgrade goes to the WebSocket handshake. Afterwards a pump task copies the
//! payload of binary messages into one end of a Unix socket pair and what the driver writes
//! to it back out as binary messages, so the connection driver runs unchanged over
//! `Stream::Unix`.

mod http;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest WebSocket message (and frame) accepted. tungstenite buffers a whole message
/// before handing it over, even before CONNECT, so this bounds what an unauthenticated
/// client can make the broker hold; MQTT packets larger than this must span messages.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How much the pump reads from the driver before sending it as one binary message.
const BATCH: usize = 64 * 1024;

/// The subprotocols Mosquitto answers: `mqtt`, and `mqttv3.1` for old clients.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Picks the first offered subprotocol Midge speaks.
fn choose(req: &Request) -> Option<&'static str> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|offered| {
            SUBPROTOCOLS
                .iter()
                .find(|p| p.eq_ignore_ascii_case(offered))
                .copied()
        })
}

/// Accepts the handshake with the first subprotocol offered that Midge speaks, or refuses it.
// tungstenite's `Callback` signature fixes the (large) error type.
#[allow(clippy::result_large_err)]
fn answer(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    match choose(req) {
        Some(p) => {
            resp.headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
            Ok(resp)
        }
        None => {
            let mut refusal =
                ErrorResponse::new(Some("the 'mqtt' subprotocol is required".to_owned()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            Err(refusal)
        }
    }
}

/// How long a plain HTTP client may take to receive an `http_dir` file, so one that stops
/// reading does not hold its connection for ever.
const FILE_TIMEOUT: Duration = Duration::from_secs(60);

/// A WebSockets listener's HTTP options.
#[derive(Debug, Clone, Default)]
pub struct WsOptions {
    /// `http_dir`, canonicalised at start-up; `None` = plain HTTP requests get 404.
    pub http_dir: Option<PathBuf>,
    /// `websockets_origin`: the `Origin` values allowed to upgrade; empty = any.
    pub origins: Vec<String>,
}

impl WsOptions {
    /// Checks and canonicalises `http_dir` so that requests can be confined to it.
    pub fn new(http_dir: Option<&str>, origins: &[String]) -> Result<WsOptions, String> {
        let http_dir = match http_dir {
            None => None,
            Some(dir) => {
                let real = std::path::Path::new(dir)
                    .canonicalize()
                    .map_err(|e| format!("http_dir '{dir}': {e}"))?;
                if !real.is_dir() {
                    return Err(format!("http_dir '{dir}' is not a directory"));
                }
                Some(real)
            }
        };
        Ok(WsOptions {
            http_dir,
            origins: origins.to_vec(),
        })
    }
}

/// Reads the HTTP request on `io` and answers it within `timeout`. For a WebSocket upgrade,
/// returns the driver's end of the byte pipe; for a plain HTTP request (served from
/// `http_dir`), `None`. A client that offers neither `mqtt` nor `mqttv3.1` is refused (400),
/// as Mosquitto does.
pub async fn accept<S>(
    mut io: S,
    timeout: Duration,
    opts: &WsOptions,
) -> Result<Option<UnixStream>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let head = match tokio::time::timeout_at(deadline, http::read_head(&mut io)).await {
        Err(_) => return Err("WebSocket handshake timed out".to_owned()),
        Ok(Err(None)) => return Err("closed before sending a complete HTTP request".to_owned()),
        Ok(Err(Some(status))) => {
            http::refuse(&mut io, status).await;
            return Err(format!("HTTP request refused: {status:?}"));
        }
        Ok(Ok(head)) => head,
    };
    let end = http::head_end(&head).unwrap_or(head.len());
    match http::classify(&head[..end], &opts.origins, opts.http_dir.is_some()) {
        http::Route::Refuse(status) => {
            http::refuse(&mut io, status).await;
            if status == http::Status::Forbidden {
                return Err("WebSocket origin not allowed by websockets_origin".to_owned());
            }
            Err(format!("HTTP request refused: {status:?}"))
        }
        http::Route::File { path, head_only } => {
            let root = opts
                .http_dir
                .as_deref()
                .unwrap_or(std::path::Path::new("/"));
            let served = tokio::time::timeout(
                FILE_TIMEOUT,
                http::serve_file(&mut io, root, &path, head_only),
            )
            .await;
            tracing::debug!("HTTP request for '{path}': {served:?}");
            Ok(None)
        }
        http::Route::Upgrade => {
            // The head was consumed to decide; the handshake reads it again.
            let (r, w) = tokio::io::split(io);
            let io = tokio::io::join(std::io::Cursor::new(head).chain(r), w);
            upgrade(io, deadline).await.map(Some)
        }
    }
}

/// Answers the WebSocket handshake before `deadline`, then returns the driver's end of the
/// byte pipe.
async fn upgrade<S>(io: S, deadline: tokio::time::Instant) -> Result<UnixStream, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig {
        max_message_size: Some(MAX_MESSAGE),
        max_frame_size: Some(MAX_MESSAGE),
        ..WebSocketConfig::default()
    };
    let ws = match tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::accept_hdr_async_with_config(io, answer, Some(config)),
    )
    .await
    {
        Err(_) => return Err("WebSocket handshake timed out".to_owned()),
        Ok(Err(e)) => return Err(format!("WebSocket handshake failed: {e}")),
        Ok(Ok(ws)) => ws,
    };
    let (driver, pumped) = UnixStream::pair().map_err(|e| e.to_string())?;
    tokio::spawn(pump(ws, pumped));
    Ok(driver)
}

/// Copies bytes both ways until either side closes, then closes the other.
async fn pump<S>(ws: WebSocketStream<S>, pipe: UnixStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    let (mut from_driver, mut to_driver) = pipe.into_split();
    let inbound = async {
        while let Some(msg) = source.next().await {
            match msg {
                Ok(Message::Binary(data)) => {
                    if to_driver.write_all(&data).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by tungstenite; MQTT travels only in binary messages.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Text(_) | Message::Close(_)) | Err(_) => break,
            }
        }
        // The driver sees the end of the stream.
        let _ = to_driver.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; BATCH];
        loop {
            match from_driver.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}
