//! JSON bodies for the answers hyper gives by itself.
//!
//! hyper answers a request it cannot parse before any router sees it: a
//! request target over 65,534 bytes gets 414, a head over its buffer (about
//! 400 KB) or with over 100 headers gets 431, a malformed head gets 400.
//! Those answers have an empty body, while the API promises
//! `{"error": "..."}` on every error. No setting moves these limits into the
//! application (the 414 limit is a constant of hyper), so `serve` accepts
//! connections through [`JsonErrorsListener`], whose connections rewrite
//! exactly those answers on their way out.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections give hyper's own error answers a JSON
/// body (see the module's documentation).
pub(crate) struct JsonErrorsListener(pub TcpListener);

impl axum::serve::Listener for JsonErrorsListener {
    type Io = JsonErrors<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (
            JsonErrors {
                inner: io,
                pending: Vec::new(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that passes everything through, except that a write that
/// is exactly one of hyper's bodiless error answers is replaced by the same
/// answer with a JSON body.
pub(crate) struct JsonErrors<T> {
    inner: T,
    /// A replacement answer not yet written out.
    pending: Vec<u8>,
}

/// The JSON answer to put in place of `head`, when `head` is one of
/// hyper's own answers to a request it could not parse: a status line of
/// 400, 414 or 431 and headers that say the connection closes with no body.
/// The router's own error answers always have a body, so they never match.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let head = rest.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let message = match status_line.get(..3)? {
        "400" => "the request could not be parsed as HTTP/1.1",
        "414" => "the request target (path and query) is over the server's limit of 65534 bytes",
        "431" => "the request head is over the server's limits (about 400 KB, 100 headers)",
        _ => return None,
    };
    let mut closes = false;
    let mut empty = false;
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        match name.to_ascii_lowercase().as_str() {
            "connection" if value.eq_ignore_ascii_case("close") => closes = true,
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            _ => return None,
        }
    }
    if !(closes && empty) {
        return None;
    }
    let body = serde_json::json!({ "error": message }).to_string();
    let mut out = format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(date) = date {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes out what is pending.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // hyper writes its error answer, a head of a few dozen bytes, in
        // one write (this type is not vectored, so hyper flattens what it
        // writes), and closes the connection after it.
        if buf.len() < 512
            && let Some(answer) = replacement(buf)
        {
            self.pending = answer;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_hypers_bodiless_error_answers() {
        let head = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 20:22:31 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(head).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.contains("content-type: application/json\r\n"), "{out}");
        assert!(
            out.contains("date: Sun, 29 Nov 2026 20:22:31 GMT\r\n"),
            "{out}"
        );
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("65534"));

        for other in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n{}",
            b"\xff\xfe",
        ] {
            assert!(replacement(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
