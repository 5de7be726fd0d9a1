//! The `/metrics` endpoint, served by hyper: HTTP/1.1 with keep-alive, `HEAD`, and the proper
//! status codes (404 elsewhere, 405 for other methods). It serves the text the analysis thread
//! last rendered and never touches the analysis itself, so a slow scraper cannot slow it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `GET /metrics` answers: the text last published.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    text: Arc<std::sync::Mutex<Bytes>>,
}

impl MetricsEndpoint {
    /// Serves `initial` on `listener` until something newer is published (needs a tokio
    /// runtime).
    pub fn serve(listener: TcpListener, initial: String) -> MetricsEndpoint {
        let text = Arc::new(std::sync::Mutex::new(Bytes::from(initial)));
        tokio::spawn(serve_metrics(listener, Arc::clone(&text)));
        MetricsEndpoint { text }
    }

    /// Replaces the text served.
    pub fn publish(&self, text: String) {
        if let Ok(mut t) = self.text.lock() {
            *t = Bytes::from(text);
        }
    }
}

async fn serve_metrics(listener: TcpListener, text: Arc<std::sync::Mutex<Bytes>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file handles, typically: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let text = Arc::clone(&text);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let body = text.lock().map(|t| t.clone()).unwrap_or_default();
                async move { Ok::<_, Infallible>(respond(&req, body)) }
            });
            // A scraper that never finishes its request head is let go.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

/// The answer to one request; `metrics` is the text last published.
fn respond(req: &Request<Incoming>, metrics: Bytes) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r
    };
    if req.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "repl-sniff serves Prometheus metrics at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // hyper sends no body for HEAD, with the length the GET would have.
    let mut r = Response::new(Full::new(metrics));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(EXPOSITION));
    r
}
