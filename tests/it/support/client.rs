//! A minimal blocking RESP2 client and its replies.

use super::*;

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not text: {other:?}"),
        }
    }
}

/// A minimal blocking RESP2 client.
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    pub fn try_connect(port: u16) -> Option<Client> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.set_nodelay(true).ok()?;
        Some(Client {
            r: BufReader::new(s.try_clone().ok()?),
            w: s,
        })
    }

    pub fn connect(port: u16) -> Client {
        Self::try_connect(port).unwrap_or_else(|| panic!("cannot connect to port {port}"))
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        self.try_send(args).unwrap()
    }

    pub fn try_send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf)
    }

    pub fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.try_send(&args)?;
        self.read_reply()
    }

    /// Runs a command; an error reply fails the test.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        match self.try_cmd(args).unwrap() {
            Reply::Error(e) => panic!("{args:?} failed: {e}"),
            r => r,
        }
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Reply {
        self.send(args);
        self.read_reply().unwrap()
    }

    pub fn info(&mut self, section: &str) -> HashMap<String, String> {
        self.cmd(&["INFO", section])
            .text()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            // A closed connection is an error for the caller to judge (a refused connection
            // is what some tests wait through), not a reply.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        Ok(match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                let mut v = Vec::new();
                for _ in 0..n.max(0) {
                    v.push(self.read_reply()?);
                }
                Reply::Array(v)
            }
            other => panic!("unexpected reply type {other:?} in {line:?}"),
        })
    }
}
