//! The byte streams a connection can run over, behind one readiness-based interface so the
//! connection driver is written once.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_openssl::SslStream;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// TLS over TCP. Readiness is the TCP socket's: the TLS stream is polled with a waker
    /// that does nothing, and a `Pending` from OpenSSL means its socket said `WouldBlock`,
    /// which clears tokio's readiness so the next `readable()`/`writable()` waits for real.
    Tls(Box<SslStream<TcpStream>>),
    /// TLS over a Unix socket listener, the same way.
    UnixTls(Box<SslStream<UnixStream>>),
}

/// A waker that does nothing: the connection driver waits on the socket's readiness itself.
/// (`Waker::noop` needs Rust 1.85; the workspace supports 1.80.)
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

fn ready<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(r) => r,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// Reads decrypted bytes until the buffer's spare capacity is full or the socket has no
/// more, so no plaintext is left inside OpenSSL where readiness cannot see it.
fn tls_read_buf<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut SslStream<S>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    let mut cx = Context::from_waker(noop_waker());
    let start = buf.len();
    let end = buf.capacity().max(start + 1);
    buf.resize(end, 0);
    let mut filled = start;
    let result = loop {
        if filled == end {
            break Ok(());
        }
        let mut rb = ReadBuf::new(&mut buf[filled..]);
        match Pin::new(&mut *s).poll_read(&mut cx, &mut rb) {
            // 0 bytes: end of stream, reported once what came before it is handed over.
            Poll::Ready(Ok(())) if rb.filled().is_empty() => break Ok(()),
            Poll::Ready(Ok(())) => filled += rb.filled().len(),
            Poll::Ready(Err(e)) => break Err(e),
            Poll::Pending => break Err(io::ErrorKind::WouldBlock.into()),
        }
    };
    buf.truncate(filled);
    match result {
        // What was read comes first; an error comes back on the next read.
        _ if filled > start => Ok(filled - start),
        Ok(()) => Ok(0),
        Err(e) => Err(e),
    }
}

impl Stream {
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            Stream::Tls(s) => s.get_ref().readable().await,
            Stream::UnixTls(s) => s.get_ref().readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.writable().await,
            Stream::Unix(s) => s.writable().await,
            Stream::Tls(s) => s.get_ref().writable().await,
            Stream::UnixTls(s) => s.get_ref().writable().await,
        }
    }

    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
            Stream::Tls(s) => tls_read_buf(s, buf),
            Stream::UnixTls(s) => tls_read_buf(s, buf),
        }
    }

    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
            Stream::Tls(s) => {
                let mut cx = Context::from_waker(noop_waker());
                ready(Pin::new(&mut **s).poll_write(&mut cx, buf))
            }
            Stream::UnixTls(s) => {
                let mut cx = Context::from_waker(noop_waker());
                ready(Pin::new(&mut **s).poll_write(&mut cx, buf))
            }
        }
    }

    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
            Stream::Tls(s) => s.write_all(buf).await,
            Stream::UnixTls(s) => s.write_all(buf).await,
        }
    }

    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown().await,
            Stream::Unix(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::UnixTls(s) => s.shutdown().await,
        }
    }
}
