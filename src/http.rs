//! A tiny HTTP/1.1 responder for `/metrics`, `/healthz` and `/readyz` on tokio's
//! `TcpListener`: GET/HEAD only, one request per connection, bounded request size
//! and read time. Three fixed endpoints scraped every few seconds do not need a web
//! framework (and hyper/axum would add a dozen crates to the build).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Maps a path to `(status, content type, body)`.
pub type Handler = Arc<dyn Fn(&str) -> (u16, &'static str, String) + Send + Sync>;

const MAX_REQUEST: usize = 8 * 1024;

/// Bind `addr` (e.g. `127.0.0.1:9464`, port 0 for any).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve until the task is dropped.
pub async fn serve(listener: TcpListener, handler: Handler) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let h = handler.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, h)).await;
        });
    }
}

/// Bind and serve on a background thread with its own small runtime (tests,
/// embedding); returns the bound address.
pub fn spawn_thread(addr: &str, handler: Handler) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    std::thread::Builder::new().name("stepup-http".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the HTTP runtime");
                return;
            }
        };
        rt.block_on(async move {
            match TcpListener::from_std(std_listener) {
                Ok(l) => serve(l, handler).await,
                Err(e) => tracing::error!(error = %e, "cannot serve HTTP"),
            }
        });
    })?;
    Ok(local)
}

async fn handle(mut s: TcpStream, h: Handler) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // read the request head
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_REQUEST {
            return write(&mut s, 431, "text/plain", "request too large\n", false).await;
        }
    }
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let head = method == "HEAD";
    if method != "GET" && !head {
        return write(&mut s, 405, "text/plain", "method not allowed\n", false).await;
    }
    let (status, ctype, body) = h(path);
    write(&mut s, status, ctype, &body, head).await
}

async fn write(s: &mut TcpStream, status: u16, ctype: &str, body: &str, head_only: bool) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    s.write_all(&out).await?;
    s.shutdown().await
}

/// A blocking GET for tests and the demo: returns `(status, body)`.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_paths_and_rejects_methods() {
        let h: Handler = Arc::new(|p: &str| match p {
            "/healthz" => (200, "text/plain", "ok\n".to_string()),
            _ => (404, "text/plain", "nope\n".to_string()),
        });
        let addr = spawn_thread("127.0.0.1:0", h).unwrap();
        assert_eq!(get(addr, "/healthz").unwrap(), (200, "ok\n".to_string()));
        assert_eq!(get(addr, "/x?y=1").unwrap().0, 404);
    }
}
