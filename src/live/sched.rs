//! How the analysis thread asks the scheduler to run it promptly when woken.
//!
//! The proxy hands each chunk to the analysis thread and wakes it once 64 KiB wait. On a
//! machine whose cores are busy (the master, its replicas and their clients share them), a
//! woken thread of ordinary priority can wait for a running one's whole slice, a few
//! milliseconds; at loopback speed the queue, and repl-sniff's memory, then grow by megabytes
//! before the analysis runs (issue 13, the frozen-replica test).
//!
//! Linux's EEVDF scheduler (6.12 and later) lets a thread ask for a shorter slice
//! (`sched_attr.sched_runtime` with `SCHED_OTHER`). A shorter slice gives it an earlier
//! deadline, so it may preempt the running thread when it wakes, and it runs in shorter turns.
//! Its share of the CPU is unchanged (that is its nice value's, which stays), and no privilege
//! is needed. On an older kernel the call fails or is ignored, and nothing else changes.

use std::io;

/// The slice the analysis thread asks for: the shortest the kernel accepts is 0.1 ms.
pub const ANALYSIS_SLICE_NS: u64 = 100_000;

/// Asks for a `slice_ns` slice for the calling thread, keeping its policy (`SCHED_OTHER`) and
/// nice value. An error says why it was not granted; the thread runs as before.
#[cfg(target_os = "linux")]
pub fn request_slice(slice_ns: u64) -> io::Result<()> {
    let mut attr = attr::get()?;
    if attr.sched_policy != libc::SCHED_OTHER as u32 {
        // A user who chose a policy for the process (SCHED_BATCH, real time) keeps it.
        return Err(io::Error::other("the thread's policy is not SCHED_OTHER"));
    }
    attr.sched_flags = 0;
    attr.sched_runtime = slice_ns;
    attr::set(&attr)
}

/// Elsewhere there is no such request to make.
#[cfg(not(target_os = "linux"))]
pub fn request_slice(_slice_ns: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The calling thread's `struct sched_attr`, read and written whole.
#[cfg(target_os = "linux")]
mod attr {
    use std::io;

    /// `struct sched_attr` as of its first version (`SCHED_ATTR_SIZE_VER0`, 48 bytes).
    #[repr(C)]
    #[derive(Debug, Default)]
    pub(super) struct SchedAttr {
        pub(super) size: u32,
        pub(super) sched_policy: u32,
        pub(super) sched_flags: u64,
        pub(super) sched_nice: i32,
        pub(super) sched_priority: u32,
        pub(super) sched_runtime: u64,
        pub(super) sched_deadline: u64,
        pub(super) sched_period: u64,
    }
    const SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;

    pub(super) fn get() -> io::Result<SchedAttr> {
        let mut attr = SchedAttr::default();
        // SAFETY: `attr` is a live, writable sched_attr of the `SIZE` bytes the call is told;
        // pid 0 is the calling thread.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut attr as *mut SchedAttr,
                SIZE,
                0,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(attr)
    }

    pub(super) fn set(attr: &SchedAttr) -> io::Result<()> {
        let attr = SchedAttr {
            size: SIZE,
            ..*attr
        };
        // SAFETY: `attr` is a live sched_attr whose `size` says how much the kernel may read;
        // pid 0 is the calling thread. The kernel only reads it.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// On Linux 6.12 and later the request is granted and reads back as asked, nice value
    /// kept; on older kernels it fails cleanly. Run on a thread of its own, since it changes
    /// the calling thread.
    #[test]
    fn a_granted_slice_reads_back_as_asked_and_keeps_the_nice_value() {
        std::thread::spawn(|| {
            let nice = attr::get().unwrap().sched_nice;
            match request_slice(ANALYSIS_SLICE_NS) {
                Ok(()) => {
                    let now = attr::get().unwrap();
                    assert_eq!(now.sched_runtime, ANALYSIS_SLICE_NS);
                    assert_eq!(now.sched_nice, nice);
                    assert_eq!(now.sched_policy, libc::SCHED_OTHER as u32);
                }
                Err(e) => eprintln!("not granted here: {e}"),
            }
        })
        .join()
        .unwrap();
    }
}
