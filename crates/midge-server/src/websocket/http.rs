//! The HTTP side of a WebSockets listener: reading the request head, deciding whether it is
//! a WebSocket upgrade, checking `websockets_origin`, and serving `http_dir` files to plain
//! HTTP requests.
//!
//! The decisions are pure functions of the request head ([`classify`], [`resolve`]) so they
//! are unit-tested without sockets; only [`read_head`] and [`serve_file`] do I/O.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest request head accepted (request line and headers). Browsers send well under 2 KiB;
/// anything longer is refused before it can make the broker buffer more.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most headers parsed in one request.
const MAX_HEADERS: usize = 64;

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A WebSocket upgrade the listener accepts: hand the connection to the WebSocket layer.
    Upgrade,
    /// Answer with this status and close (refused origin, unsupported method, ...).
    Refuse(Status),
    /// A plain `GET`/`HEAD` for `path` (percent-decoded, query removed) to serve from `http_dir`.
    File { path: String, head_only: bool },
}

/// The statuses Midge answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    HeaderTooLarge,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeaderTooLarge => "431 Request Header Fields Too Large",
        }
    }
}

/// Where the request head ends (just past `\r\n\r\n`), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads until the end of the request head. Returns everything read (the head and whatever
/// came after it, which belongs to the WebSocket stream), or the status to refuse with.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> Result<Vec<u8>, Option<Status>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = io.read(&mut chunk).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        // Only the bytes that could complete the terminator need searching again.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if head_end(&buf[from..]).is_some() {
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(Some(Status::HeaderTooLarge));
        }
    }
}

/// Decides what a request head asks for. `origins` is the listener's `websockets_origin`
/// list (empty = any origin); `serves_files` says whether `http_dir` is set.
pub fn classify(head: &[u8], origins: &[String], serves_files: bool) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Route::Refuse(Status::BadRequest),
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let upgrade = header("upgrade").is_some_and(|v| {
        v.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
    });
    if upgrade {
        if !origins.is_empty() {
            // Scheme and host are case-insensitive; a browser sends them in lower case.
            let allowed =
                header("origin").is_some_and(|o| origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
            if !allowed {
                return Route::Refuse(Status::Forbidden);
            }
        }
        return Route::Upgrade;
    }
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Route::Refuse(Status::MethodNotAllowed),
    };
    if !serves_files {
        return Route::Refuse(Status::NotFound);
    }
    let target = req.path.unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("");
    match percent_decode(path) {
        Some(path) if path.starts_with('/') => Route::File { path, head_only },
        _ => Route::Refuse(Status::BadRequest),
    }
}

/// Decodes `%XX` escapes. `None` for a malformed escape, a NUL byte or a result that is not
/// UTF-8 — none of which names a file anyone meant to publish.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Maps a request path to a file inside `root` (which must already be canonical), as
/// Mosquitto does: a path ending in `/` means its `index.html`; the resolved file (symbolic
/// links followed) must lie inside `root`, otherwise 403; a missing file is 404 and a
/// directory 403.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, Status> {
    let mut relative = path.trim_start_matches('/').to_owned();
    if relative.is_empty() || relative.ends_with('/') {
        relative.push_str("index.html");
    }
    let candidate = root.join(&relative);
    let real = candidate.canonicalize().map_err(|_| Status::NotFound)?;
    if !real.starts_with(root) {
        return Err(Status::Forbidden);
    }
    if real.is_dir() {
        return Err(Status::Forbidden);
    }
    Ok(real)
}

/// The `Content-Type` for a file, by extension, so browsers run scripts and styles served
/// from `http_dir` (Mosquitto sends none).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Writes a bodyless response with `status` and closes the write side.
pub async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, status: Status) {
    let mut head = format!(
        "HTTP/1.1 {}\r\nServer: midge\r\nContent-Length: 0\r\nConnection: close\r\n",
        status.line()
    );
    if status == Status::MethodNotAllowed {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// Answers a `GET`/`HEAD` for `path` from `root` and closes. Returns what to log.
pub async fn serve_file<S: AsyncWrite + Unpin>(
    io: &mut S,
    root: &Path,
    path: &str,
    head_only: bool,
) -> Result<(), Status> {
    let file = match resolve(root, path) {
        Ok(file) => file,
        Err(status) => {
            refuse(io, status).await;
            return Err(status);
        }
    };
    let Ok(mut f) = tokio::fs::File::open(&file).await else {
        refuse(io, Status::NotFound).await;
        return Err(Status::NotFound);
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: midge\r\nContent-Type: {}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        content_type(&file)
    );
    if io.write_all(head.as_bytes()).await.is_ok() && !head_only {
        // Bounded by the length announced, in case the file grows while it is sent.
        let _ = tokio::io::copy(&mut (&mut f).take(len), io).await;
    }
    let _ = io.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(lines: &str) -> Vec<u8> {
        format!("{lines}\r\n\r\n").into_bytes()
    }

    const UPGRADE: &str = "GET /mqtt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt";

    #[test]
    fn an_upgrade_is_handed_on_whatever_the_path() {
        assert_eq!(classify(&req(UPGRADE), &[], false), Route::Upgrade);
        assert_eq!(classify(&req(UPGRADE), &[], true), Route::Upgrade);
    }

    #[test]
    fn websockets_origin_must_match_one_listed() {
        let origins = vec!["https://example.com".to_owned(), "http://a.test".to_owned()];
        let with = |o: &str| req(&format!("{UPGRADE}\r\nOrigin: {o}"));
        assert_eq!(
            classify(&with("https://example.com"), &origins, false),
            Route::Upgrade
        );
        assert_eq!(
            classify(&with("HTTP://A.test"), &origins, false),
            Route::Upgrade
        );
        assert_eq!(
            classify(&with("https://evil.test"), &origins, false),
            Route::Refuse(Status::Forbidden)
        );
        assert_eq!(
            classify(&req(UPGRADE), &origins, false),
            Route::Refuse(Status::Forbidden),
            "no Origin header at all"
        );
    }

    #[test]
    fn plain_requests_are_files_or_refusals() {
        assert_eq!(
            classify(&req("GET /a%20b.html?x=1 HTTP/1.1\r\nHost: x"), &[], true),
            Route::File {
                path: "/a b.html".into(),
                head_only: false
            }
        );
        assert_eq!(
            classify(&req("HEAD / HTTP/1.1"), &[], true),
            Route::File {
                path: "/".into(),
                head_only: true
            }
        );
        assert_eq!(
            classify(&req("GET / HTTP/1.1"), &[], false),
            Route::Refuse(Status::NotFound)
        );
        assert_eq!(
            classify(&req("POST / HTTP/1.1"), &[], true),
            Route::Refuse(Status::MethodNotAllowed)
        );
        assert_eq!(
            classify(b"\x10\x0c\x00\x04MQTT\r\n\r\n", &[], true),
            Route::Refuse(Status::BadRequest),
            "raw MQTT on a WebSockets port"
        );
        assert_eq!(
            classify(&req("GET /%zz HTTP/1.1"), &[], true),
            Route::Refuse(Status::BadRequest)
        );
        assert_eq!(
            classify(&req("GET /a%00b HTTP/1.1"), &[], true),
            Route::Refuse(Status::BadRequest)
        );
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn resolve_keeps_requests_inside_the_directory() {
        let base = std::env::temp_dir().join(format!("midge-http-{}", std::process::id()));
        let root = base.join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(root.join("sub/index.html"), "s").unwrap();
        std::fs::write(base.join("secret.txt"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
        let root = root.canonicalize().unwrap();

        assert_eq!(resolve(&root, "/").unwrap(), root.join("index.html"));
        assert_eq!(
            resolve(&root, "/sub/").unwrap(),
            root.join("sub/index.html")
        );
        assert_eq!(
            resolve(&root, "/sub"),
            Err(Status::Forbidden),
            "a directory"
        );
        assert_eq!(resolve(&root, "/../secret.txt"), Err(Status::Forbidden));
        assert_eq!(
            resolve(&root, "/sub/../../secret.txt"),
            Err(Status::Forbidden)
        );
        assert_eq!(
            resolve(&root, "/link.txt"),
            Err(Status::Forbidden),
            "symlink out"
        );
        assert_eq!(resolve(&root, "/nope.html"), Err(Status::NotFound));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(Path::new("a.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a")), "application/octet-stream");
    }
}
