//! Plain HTTP against a running repl-sniff: a GET, and one metric from its `/metrics`.

use super::*;

/// One sample of a metric from the proxy's endpoint (the first series of that name whose
/// labels contain `label`).
pub fn metric(port: u16, name: &str, label: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split(['{', ' ']).next() == Some(name) && (label.is_empty() || l.contains(label))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

pub fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}
