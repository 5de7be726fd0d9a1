//! The `/metrics` endpoint: a minimal HTTP/1.1 responder (one request per connection, a
//! bounded request head) that serves the text the analysis thread last rendered. It never
//! touches the analysis itself, so a slow scraper cannot slow it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What `GET /metrics` answers: the text last published.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    text: Arc<std::sync::Mutex<String>>,
}

impl MetricsEndpoint {
    /// Serves `initial` on `listener` until something newer is published (needs a tokio
    /// runtime).
    pub fn serve(listener: TcpListener, initial: String) -> MetricsEndpoint {
        let text = Arc::new(std::sync::Mutex::new(initial));
        tokio::spawn(serve_metrics(listener, Arc::clone(&text)));
        MetricsEndpoint { text }
    }

    /// Replaces the text served.
    pub fn publish(&self, text: String) {
        if let Ok(mut t) = self.text.lock() {
            *t = text;
        }
    }
}

/// Serves the latest rendered metrics to `GET /metrics`; anything else gets 404. A minimal
/// HTTP/1.1 responder: one request per connection, bounded request head.
async fn serve_metrics(listener: TcpListener, text: Arc<std::sync::Mutex<String>>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let text = Arc::clone(&text);
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
            let path = line.split(|b| *b == b' ').nth(1).unwrap_or_default();
            let response = if line.starts_with(b"GET ")
                && (path == b"/metrics" || path.starts_with(b"/metrics?"))
            {
                let body = text.lock().map(|t| t.clone()).unwrap_or_default();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                let body = "repl-sniff serves Prometheus metrics at /metrics\n";
                format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
