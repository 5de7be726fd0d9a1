//! A small fault-injecting relay for the fault tests, in toxiproxy's vocabulary: `latency`,
//! `bandwidth`, `slicer` (tiny fragments), `timeout` (a held partition: connections stay up,
//! nothing flows), `reset_peer` (RST both ways) and `slow_close`'s cousin, a half-close toward
//! the upstream. Blocking threads, one per direction per connection: simple over fast.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::free_port;

/// What the relay does to the bytes going downstream (upstream → client), and to both ways
/// for partitions and resets.
#[derive(Default)]
struct Toxics {
    /// Added before each downstream write, in microseconds.
    latency_us: AtomicU64,
    /// Downstream bytes per second (0: unlimited).
    bandwidth: AtomicU64,
    /// Largest downstream write (0: as read); 1 sends every byte in its own segment.
    slice: AtomicUsize,
    /// A partition: nothing is forwarded either way while set.
    hold: AtomicBool,
}

/// One relayed connection's two sockets, kept to reset or half-close them.
struct Link {
    client: TcpStream,
    upstream: TcpStream,
    reset: Arc<AtomicBool>,
}

pub struct Toxic {
    pub port: u16,
    toxics: Arc<Toxics>,
    links: Arc<Mutex<Vec<Link>>>,
}

impl Toxic {
    /// Relays a free loopback port to `upstream`, with no toxic yet.
    pub fn start(upstream: u16) -> Toxic {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let toxics = Arc::new(Toxics::default());
        let links = Arc::new(Mutex::new(Vec::new()));
        let (t, l) = (Arc::clone(&toxics), Arc::clone(&links));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                let reset = Arc::new(AtomicBool::new(false));
                l.lock().unwrap().push(Link {
                    client: client.try_clone().unwrap(),
                    upstream: upstream.try_clone().unwrap(),
                    reset: Arc::clone(&reset),
                });
                let pumps = [
                    (
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                        false,
                    ),
                    (upstream, client, true),
                ];
                for (from, to, downstream) in pumps {
                    let (t, reset) = (Arc::clone(&t), Arc::clone(&reset));
                    std::thread::spawn(move || pump(from, to, downstream, &t, &reset));
                }
            }
        });
        Toxic {
            port,
            toxics,
            links,
        }
    }

    pub fn latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap();
        self.toxics.latency_us.store(us, Ordering::SeqCst);
    }

    pub fn bandwidth(&self, bytes_per_s: u64) {
        self.toxics.bandwidth.store(bytes_per_s, Ordering::SeqCst);
    }

    pub fn slicer(&self, largest: usize) {
        self.toxics.slice.store(largest, Ordering::SeqCst);
    }

    /// A partition: connections stay open, nothing flows, until [`Toxic::heal`].
    pub fn partition(&self) {
        self.toxics.hold.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.toxics.hold.store(false, Ordering::SeqCst);
    }

    /// Every toxic off.
    pub fn clear(&self) {
        self.latency(Duration::ZERO);
        self.bandwidth(0);
        self.slicer(0);
        self.heal();
    }

    /// Resets every open connection: both peers get an RST.
    pub fn reset_peers(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.reset.store(true, Ordering::SeqCst);
            for s in [&link.client, &link.upstream] {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
                // Wakes the pumps blocked in read; the last handle closed sends the RST.
                let _ = s.shutdown(Shutdown::Read);
            }
        }
    }

    /// Half-closes every open connection toward the upstream (it reads end of file); the
    /// other direction stays open.
    pub fn half_close_upstream(&self) {
        for link in self.links.lock().unwrap().iter() {
            let _ = link.upstream.shutdown(Shutdown::Write);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, downstream: bool, t: &Toxics, reset: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) if n > 0 && !reset.load(Ordering::SeqCst) => n,
            _ => break,
        };
        while t.hold.load(Ordering::SeqCst) && !reset.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if downstream {
            let latency = t.latency_us.load(Ordering::SeqCst);
            if latency > 0 {
                std::thread::sleep(Duration::from_micros(latency));
            }
        }
        let slice = match t.slice.load(Ordering::SeqCst) {
            0 => n,
            s if downstream => s,
            _ => n,
        };
        for piece in buf[..n].chunks(slice) {
            if to.write_all(piece).is_err() {
                return;
            }
            let rate = t.bandwidth.load(Ordering::SeqCst);
            if downstream && rate > 0 {
                let secs = piece.len() as f64 / rate as f64;
                std::thread::sleep(Duration::from_secs_f64(secs));
            }
        }
    }
    // A partition holds the end of file too: nothing at all crosses it.
    while t.hold.load(Ordering::SeqCst) && !reset.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if reset.load(Ordering::SeqCst) {
        // Dropping both handles (linger 0) sends the RST.
        return;
    }
    let _ = to.shutdown(Shutdown::Write);
}
