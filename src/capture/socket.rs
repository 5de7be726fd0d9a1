//! Packets from a live interface: a Linux `AF_PACKET` socket in cooked mode (`SOCK_DGRAM`, so
//! every interface, `any` included, gives IP packets), a classic BPF filter in the kernel so
//! only TCP (on one port, if given) is copied up, kernel timestamps, and the kernel's drop
//! counter. Memory is one receive buffer; the kernel's socket buffer bounds the backlog.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::analyzer::input::Timestamp;

/// The largest IP packet (with GRO on loopback a "packet" can reach 64 KiB).
pub const SNAPLEN: usize = 65_536 + 256;

/// Why a live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Raw sockets need a capability.
    #[error(
        "capturing packets needs CAP_NET_RAW: run as root, or give the binary the capability \
         (sudo setcap cap_net_raw+ep $(command -v repl-sniff))"
    )]
    Permission,
    /// No such interface.
    #[error("no interface named {0:?} (ip link lists them; `any` captures on all)")]
    NoInterface(String),
    /// Anything else the kernel refused.
    #[error("{what}: {err}")]
    Os {
        /// The call.
        what: &'static str,
        /// The error.
        err: io::Error,
    },
}

/// A live packet source.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    /// The loopback interface's index: its packets are seen leaving and arriving, once is
    /// enough.
    loopback: i32,
    drops: u64,
    received: u64,
}

fn os(what: &'static str) -> SocketError {
    SocketError::Os {
        what,
        err: io::Error::last_os_error(),
    }
}

fn ifindex(name: &str) -> i32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) as i32 }
}

impl PacketSocket {
    /// Opens a capture on `interface` (`any` for all) of TCP segments, to or from `port` if
    /// given.
    pub fn open(interface: &str, port: Option<u16>) -> Result<PacketSocket, SocketError> {
        let index = if interface == "any" {
            0
        } else {
            match ifindex(interface) {
                0 => return Err(SocketError::NoInterface(interface.to_string())),
                i => i,
            }
        };
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => SocketError::Permission,
                _ => SocketError::Os {
                    what: "socket(AF_PACKET)",
                    err,
                },
            });
        }
        // SAFETY: `raw` is a fresh descriptor this value now owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = PacketSocket {
            fd,
            loopback: ifindex("lo"),
            drops: 0,
            received: 0,
        };
        // The filter first, so no unfiltered packet is queued between bind and attach.
        let program = filter(port);
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        sock.setsockopt(
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
            "SO_ATTACH_FILTER",
        )?;
        let size: libc::c_int = 8 << 20;
        // A bigger buffer absorbs bursts; the kernel may cap it (its drops are counted).
        let _ = sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &size, "SO_RCVBUF");
        let one: libc::c_int = 1;
        let _ = sock.setsockopt(
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one,
            "SO_TIMESTAMPNS",
        );
        // SAFETY: zeroed sockaddr_ll is valid; the fields set are the ones bind reads.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index;
        // SAFETY: `addr` lives for the call; its size is given.
        let r = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(os("bind"));
        }
        Ok(sock)
    }

    fn setsockopt<T>(
        &self,
        level: i32,
        name: i32,
        v: &T,
        what: &'static str,
    ) -> Result<(), SocketError> {
        // SAFETY: `v` lives for the call; its size is given.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                v as *const T as *const libc::c_void,
                std::mem::size_of::<T>() as u32,
            )
        };
        if r < 0 {
            Err(os(what))
        } else {
            Ok(())
        }
    }

    /// The next packet (an IP packet) into `buf`, waiting at most `wait`: its length and
    /// kernel timestamp, or `None` when nothing came. A packet longer than `buf` is cut (the
    /// reassembly then sees a gap).
    pub fn next(
        &mut self,
        buf: &mut [u8],
        wait: Duration,
    ) -> io::Result<Option<(usize, Timestamp)>> {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n =
                unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(i32::MAX as u128) as i32) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(e);
            }
            if n == 0 {
                return Ok(None);
            }
            // SAFETY: zeroed plain-data structs; the buffers outlive the call.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut control = [0u8; 64];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = control.len() as _;
            // SAFETY: `msg` points at live buffers of the sizes given.
            let len = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if len < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    continue;
                }
                return Err(e);
            }
            // Loopback packets are seen leaving and arriving: keep one copy.
            if from.sll_pkttype == libc::PACKET_OUTGOING && from.sll_ifindex == self.loopback {
                continue;
            }
            self.received += 1;
            let ts = kernel_time(&msg).unwrap_or_else(wall_clock);
            return Ok(Some(((len as usize).min(buf.len()), ts)));
        }
    }

    /// Packets captured, and packets the kernel dropped because the reader fell behind.
    pub fn counters(&mut self) -> (u64, u64) {
        // SAFETY: tpacket_stats is plain data; the kernel fills it (and resets its counters).
        let mut stats: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as u32;
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut stats as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if r == 0 {
            self.drops += u64::from(stats.tp_drops);
        }
        (self.received, self.drops)
    }
}

/// Now, when the kernel gave no timestamp.
pub fn wall_clock() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(since.as_micros() as u64)
}

/// The `SO_TIMESTAMPNS` control message: when the kernel received the packet.
fn kernel_time(msg: &libc::msghdr) -> Option<Timestamp> {
    // SAFETY: walking the control buffer recvmsg filled, with the kernel's macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                let us = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
                return Some(Timestamp(us));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// A classic BPF program over cooked (IP) packets: IPv4 or IPv6 TCP, to or from `port` when
/// given. Accepted packets are copied whole.
fn filter(port: Option<u16>) -> Vec<libc::sock_filter> {
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    const LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
    const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const ACCEPT: u8 = 17;
    const DROP: u8 = 18;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // Jumps count from the next instruction.
    let to = |from: u8, target: u8| target - from - 1;
    // Where a port comparison at `at` goes: accept on a match, else `next` (with no port
    // given, every TCP segment is accepted).
    let port_test = |at: u8, next: u8| match port {
        Some(p) => op(JEQ_K, to(at, ACCEPT), to(at, next), u32::from(p)),
        None => op(JEQ_K, to(at, ACCEPT), to(at, ACCEPT), 0),
    };
    vec![
        /* 0 */ op(LD_B_ABS, 0, 0, 0),
        /* 1 */ op(AND_K, 0, 0, 0xf0),
        /* 2 */ op(JEQ_K, 0, to(2, 10), 0x40),
        // IPv4: TCP, then the ports after the header (its length from the IHL).
        /* 3 */
        op(LD_B_ABS, 0, 0, 9),
        /* 4 */ op(JEQ_K, 0, to(4, DROP), 6),
        /* 5 */ op(LDX_MSH, 0, 0, 0),
        /* 6 */ op(LD_H_IND, 0, 0, 0),
        /* 7 */ port_test(7, 8),
        /* 8 */ op(LD_H_IND, 0, 0, 2),
        /* 9 */ op(JA, 0, 0, u32::from(to(9, 16))),
        // IPv6 (no extension headers: TCP right after the 40-byte header).
        /* 10 */
        op(JEQ_K, 0, to(10, DROP), 0x60),
        /* 11 */ op(LD_B_ABS, 0, 0, 6),
        /* 12 */ op(JEQ_K, 0, to(12, DROP), 6),
        /* 13 */ op(LD_H_ABS, 0, 0, 40),
        /* 14 */ port_test(14, 15),
        /* 15 */ op(LD_H_ABS, 0, 0, 42),
        /* 16 */ port_test(16, DROP),
        /* 17 */ op(RET_K, 0, 0, SNAPLEN as u32),
        /* 18 */ op(RET_K, 0, 0, 0),
    ]
}
