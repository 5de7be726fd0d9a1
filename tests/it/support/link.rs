//! The preamble of most live specs: a master, `repl-sniff` between it and a replica, and the
//! replica, with the replication link up.
//!
//! ```ignore
//! let Link(master, sniffer, replica) = Link::of(v).master(&["--repl-backlog-size", "16kb"]).up();
//! ```

use super::*;

/// A replication link through repl-sniff: the master, repl-sniff, the replica.
pub struct Link(pub Server, pub Sniffer, pub Server);

/// What a [`Link`] is started with.
pub struct LinkPlan<'a> {
    version: Version,
    master: Option<Server>,
    master_args: &'a [&'a str],
    sniffer_args: &'a [&'a str],
    replica_args: &'a [&'a str],
}

impl Link {
    /// A link of servers of `version`, started with their defaults unless told.
    pub fn of(version: Version) -> LinkPlan<'static> {
        LinkPlan {
            version,
            master: None,
            master_args: &[],
            sniffer_args: &[],
            replica_args: &[],
        }
    }
}

impl<'a> LinkPlan<'a> {
    /// The master's arguments.
    pub fn master(self, args: &'a [&'a str]) -> LinkPlan<'a> {
        LinkPlan {
            master_args: args,
            ..self
        }
    }

    /// A master already started (and set up: users, data).
    pub fn on(self, master: Server) -> LinkPlan<'a> {
        LinkPlan {
            master: Some(master),
            ..self
        }
    }

    /// repl-sniff's arguments besides `--listen`/`--upstream`.
    pub fn sniffer(self, args: &'a [&'a str]) -> LinkPlan<'a> {
        LinkPlan {
            sniffer_args: args,
            ..self
        }
    }

    /// The replica's arguments after `--replicaof` repl-sniff.
    pub fn replica(self, args: &'a [&'a str]) -> LinkPlan<'a> {
        LinkPlan {
            replica_args: args,
            ..self
        }
    }

    /// Starts what is not started yet and waits until the replica says its link is up.
    pub fn up(self) -> Link {
        let link = self.start();
        let replica = &link.2;
        wait_until("link up", Duration::from_secs(30), || replica.link_up());
        link
    }

    /// Starts what is not started yet, without waiting for the link (a test that writes
    /// while the replica syncs).
    pub fn start(self) -> Link {
        let v = self.version;
        let master = (self.master).unwrap_or_else(|| Server::start(v, "master", self.master_args));
        let sniffer = Sniffer::start(master.port, self.sniffer_args);
        let replica = sniffer.replica(v, self.replica_args);
        Link(master, sniffer, replica)
    }
}

impl Sniffer {
    /// A replica of `version` whose master is this repl-sniff (`--replicaof` it, then
    /// `extra`), not waited for.
    pub fn replica(&self, version: Version, extra: &[&str]) -> Server {
        let port = self.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", &port];
        args.extend_from_slice(extra);
        Server::start(version, "replica", &args)
    }
}
