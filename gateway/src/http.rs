//! `/metrics` (Prometheus text format 0.0.4) and `/healthz` on a small HTTP/1.1 responder.
//!
//! Deliberately minimal (one GET per connection, `Connection: close`, 8 KiB request cap, 5 s
//! read timeout): a scrape endpoint does not justify an HTTP framework's dependency tree on a
//! Raspberry Pi build. Bind it to loopback or a management network.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Binds `addr` (fails early when it is taken) and returns the bound address and the server
/// future, which runs until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("http: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(listen = %local, "http: serving /metrics and /healthz");
    let fut = async move {
        let conns = tokio_util::task::TaskTracker::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => match a {
                    Ok((stream, _)) => {
                        // Bounded: at most 64 scrapes at once; more are refused by closing.
                        if conns.len() < 64 {
                            conns.spawn(serve(stream));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "http: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        conns.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), conns.wait()).await;
    };
    Ok((local, fut))
}

/// The response to one request line.
pub fn respond(request_line: &str) -> (u16, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "method not allowed\n".into());
    }
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(),
        ),
        "/healthz" => {
            let s = metrics::snapshot();
            let body = format!(
                "{{\"status\":\"ok\",\"broker_connected\":{},\"outbox_depth\":{},\"outbox_appended\":{},\"outbox_acked\":{}}}\n",
                s.broker_connected == 1,
                s.outbox_depth,
                s.outbox_appended,
                s.outbox_acked
            );
            (200, "application/json", body)
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics or /healthz\n".into(),
        ),
    }
}

async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let Some(free) = buf.get_mut(len..) else {
                return false;
            };
            if free.is_empty() {
                return false;
            }
            match stream.read(free).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    len += n;
                    if buf.get(..len).is_some_and(|b| {
                        b.windows(4).any(|w| w == b"\r\n\r\n") || b.contains(&b'\n')
                    }) {
                        return true;
                    }
                }
            }
        }
    })
    .await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let text = String::from_utf8_lossy(buf.get(..len).unwrap_or(&[])).into_owned();
    let line = text.lines().next().unwrap_or("");
    let (code, ctype, body) = respond(line);
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if !line.starts_with("HEAD") {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(respond("GET /metrics HTTP/1.1").0, 200);
        assert!(respond("GET /healthz HTTP/1.1")
            .2
            .contains("\"status\":\"ok\""));
        assert_eq!(respond("GET /nope HTTP/1.1").0, 404);
        assert_eq!(respond("POST /metrics HTTP/1.1").0, 405);
    }
}
