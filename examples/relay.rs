//! The minimal relay the benchmarks compare repl-sniff with: the physical limit of a
//! user-space hop on this machine. One thread, one epoll loop (mio) for every connection,
//! `TCP_NODELAY` on both sides, a 256 KiB buffer, nothing else: no analysis, no hand-over
//! between threads.
//!
//! `cargo run --release --example relay -- LISTEN_PORT UPSTREAM_PORT`

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// One side of a relayed connection: its socket and the token of its peer.
struct Side {
    stream: TcpStream,
    peer: Token,
}

fn main() -> std::io::Result<()> {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a port"))
        .collect();
    let [listen, upstream] = ports[..] else {
        panic!("usage: relay LISTEN_PORT UPSTREAM_PORT");
    };
    let upstream = SocketAddr::from(([127, 0, 0, 1], upstream));
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], listen)))?;
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)?;
    let mut sides: HashMap<Token, Side> = HashMap::new();
    let mut next = 1;
    let mut buf = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(256);
    loop {
        match poll.poll(&mut events, None) {
            // A signal (a profiler attaching) interrupts the wait; it is not an error.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => r?,
        }
        for event in &events {
            if event.token() == Token(0) {
                while let Ok((mut client, _)) = listener.accept() {
                    // A blocking connect keeps this short; the relay serves benchmarks.
                    let Ok(server) = std::net::TcpStream::connect(upstream) else {
                        continue;
                    };
                    server.set_nonblocking(true)?;
                    let mut server = TcpStream::from_std(server);
                    let (a, b) = (Token(next), Token(next + 1));
                    next += 2;
                    for (s, t) in [(&mut client, a), (&mut server, b)] {
                        s.set_nodelay(true)?;
                        poll.registry().register(s, t, Interest::READABLE)?;
                    }
                    sides.insert(
                        a,
                        Side {
                            stream: client,
                            peer: b,
                        },
                    );
                    sides.insert(
                        b,
                        Side {
                            stream: server,
                            peer: a,
                        },
                    );
                }
                continue;
            }
            let from = event.token();
            // Read until the socket is drained; write each chunk whole (blocking on a full
            // peer is acceptable for a benchmark relay: the peers here always read).
            while let Some(side) = sides.get_mut(&from) {
                let peer = side.peer;
                match side.stream.read(&mut buf) {
                    Ok(0) => {
                        // End of file: passed on as a half-close.
                        if let Some(p) = sides.get(&peer) {
                            let _ = p.stream.shutdown(Shutdown::Write);
                        }
                        sides.remove(&from);
                        break;
                    }
                    Ok(n) => {
                        let Some(p) = sides.get_mut(&peer) else { break };
                        let mut rest = &buf[..n];
                        while !rest.is_empty() {
                            match p.stream.write(rest) {
                                Ok(w) => rest = &rest[w..],
                                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                    std::thread::yield_now()
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        if let Some(p) = sides.get(&peer) {
                            let _ = p.stream.shutdown(Shutdown::Both);
                        }
                        sides.remove(&from);
                        break;
                    }
                }
            }
        }
    }
}
