//! `socat`, the reference relay the fault tests compare with.

use super::*;

/// `socat` relaying a port to `upstream` (one process per connection), the reference relay
/// the fault tests compare with. Killed on drop.
pub struct Socat {
    pub port: u16,
    child: Child,
}

impl Socat {
    pub fn start(upstream: u16) -> Socat {
        let port = free_port();
        let child = Command::new("socat")
            .arg(format!(
                "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay"
            ))
            .arg(format!("TCP:127.0.0.1:{upstream},nodelay"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (scripts/test installs it from Debian)");
        wait_until("socat to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Socat { port, child }
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
