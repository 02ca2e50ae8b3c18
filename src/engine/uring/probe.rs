//! What the running kernel allows, asked once at start-up.
//!
//! [`probe`] creates a small ring (or reports why it cannot: [`ProbeError`]
//! with a [`Cause`]), asks the kernel which opcodes it knows
//! (`IORING_REGISTER_PROBE`), tries each setup flag, registers a tiny
//! provided buffer ring, and *runs* a multishot `recvmsg` and a multishot
//! `accept` (each submitted, then cancelled: a kernel that lacks the
//! multishot variant rejects the SQE with `EINVAL`, one that has it leaves it
//! pending until the cancel). The result, [`Support`], says what is there;
//! [`Support::missing`] lists what [`Ring`](super::Ring) needs and lacks, in
//! which case the engine selects its portable backend. Missing optional
//! features select a fallback inside the ring (plain accept re-armed after
//! each connection; no `SINGLE_ISSUER`/`DEFER_TASKRUN`/`COOP_TASKRUN`).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::bufs::{ProvidedBufs, zeroed_msghdr};

/// Opcodes the kernel reports as known (`IORING_REGISTER_PROBE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ops {
    /// `IORING_OP_RECVMSG` (5.3): UDP receive (multishot since 6.0).
    pub recvmsg: bool,
    /// `IORING_OP_SENDMSG` (5.3): UDP send.
    pub sendmsg: bool,
    /// `IORING_OP_ACCEPT` (5.5; multishot since 5.19).
    pub accept: bool,
    /// `IORING_OP_CONNECT` (5.5).
    pub connect: bool,
    /// `IORING_OP_RECV` (5.6): TCP read.
    pub recv: bool,
    /// `IORING_OP_SEND` (5.6): TCP write (with `MSG_NOSIGNAL`).
    pub send: bool,
    /// `IORING_OP_READ` (5.6): the wake-up eventfd.
    pub read: bool,
    /// `IORING_OP_WRITE` (5.6).
    pub write: bool,
    /// `IORING_OP_TIMEOUT` (5.4).
    pub timeout: bool,
    /// `IORING_OP_ASYNC_CANCEL` (5.5).
    pub async_cancel: bool,
    /// `IORING_OP_CLOSE` (5.6).
    pub close: bool,
    /// `IORING_OP_MSG_RING` (5.18).
    pub msg_ring: bool,
}

/// Ring setup flags the kernel accepts (each tried on a small ring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetupFlags {
    /// `IORING_SETUP_SINGLE_ISSUER` (6.0): one thread submits.
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN` (6.1, with `SINGLE_ISSUER`): completion
    /// work runs only when the owner waits.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN` (5.19): no IPI to run completion work.
    pub coop_taskrun: bool,
    /// `IORING_SETUP_SUBMIT_ALL` (5.18): a bad SQE does not stop the batch.
    pub submit_all: bool,
}

/// What the running kernel's io_uring offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Support {
    /// Known opcodes.
    pub ops: Ops,
    /// Accepted setup flags.
    pub setup: SetupFlags,
    /// `IORING_FEAT_EXT_ARG` (5.11): a wait with a timeout and no SQE.
    pub ext_arg: bool,
    /// `IORING_FEAT_NODROP` (5.5): CQEs are never dropped on overflow.
    pub nodrop: bool,
    /// `IORING_FEAT_FAST_POLL` (5.7): sockets are polled, not punted to threads.
    pub fast_poll: bool,
    /// A provided buffer ring could be registered (5.19).
    pub buf_ring: bool,
    /// A sparse registered-file table could be registered (5.19).
    pub files_sparse: bool,
    /// A multishot `recvmsg` stayed pending until cancelled (6.0).
    pub multishot_recvmsg: bool,
    /// A multishot `accept` stayed pending until cancelled (5.19).
    pub multishot_accept: bool,
}

impl Support {
    /// What [`Ring`](super::Ring) requires and this kernel lacks, by the
    /// io_uring name of each thing; empty when the ring backend is usable.
    pub fn missing(&self) -> Vec<&'static str> {
        let required = [
            (self.ops.recvmsg, "IORING_OP_RECVMSG"),
            (self.ops.sendmsg, "IORING_OP_SENDMSG"),
            (self.ops.accept, "IORING_OP_ACCEPT"),
            (self.ops.connect, "IORING_OP_CONNECT"),
            (self.ops.recv, "IORING_OP_RECV"),
            (self.ops.send, "IORING_OP_SEND"),
            (self.ops.read, "IORING_OP_READ"),
            (self.ops.async_cancel, "IORING_OP_ASYNC_CANCEL"),
            (self.ext_arg, "IORING_FEAT_EXT_ARG"),
            (self.nodrop, "IORING_FEAT_NODROP"),
            (self.buf_ring, "IORING_REGISTER_PBUF_RING"),
            (self.files_sparse, "IORING_RSRC_REGISTER_SPARSE"),
            (self.multishot_recvmsg, "IORING_RECV_MULTISHOT"),
        ];
        required.iter().filter(|(ok, _)| !ok).map(|(_, name)| *name).collect()
    }

    /// Whether [`Ring`](super::Ring) can run here ([`Self::missing`] is empty).
    pub fn ring_usable(&self) -> bool {
        self.missing().is_empty()
    }
}

/// Why the kernel refused to create an io_uring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// `ENOSYS`: the kernel has no io_uring (built without it, older than
    /// 5.1) or a seccomp filter answers `ENOSYS`.
    NotImplemented,
    /// `EPERM` with `kernel.io_uring_disabled` set: `2` disables io_uring for
    /// everyone, `1` for processes outside `kernel.io_uring_group`.
    DisabledBySysctl {
        /// The sysctl's value (1 or 2).
        value: u8,
    },
    /// `EPERM` while the sysctl allows io_uring: a seccomp filter (Docker's
    /// and containerd's default profiles) or an LSM denies it.
    NotPermitted,
    /// `ENOMEM`: ring memory could not be allocated or locked (before 5.12
    /// rings count against `RLIMIT_MEMLOCK`).
    NoMemory,
    /// Any other error (its errno is in the error's source).
    Other,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::NotImplemented => f.write_str("io_uring not implemented (ENOSYS)"),
            Cause::DisabledBySysctl { value } => {
                write!(f, "io_uring disabled by kernel.io_uring_disabled={value} (EPERM)")
            }
            Cause::NotPermitted => f.write_str("io_uring denied by seccomp or an LSM (EPERM)"),
            Cause::NoMemory => f.write_str("no memory for the ring (ENOMEM; RLIMIT_MEMLOCK?)"),
            Cause::Other => f.write_str("io_uring_setup failed"),
        }
    }
}

/// The kernel refused io_uring: the engine must use its portable backend.
#[derive(Debug, thiserror::Error)]
#[error("{cause}: {source}")]
pub struct ProbeError {
    /// Which refusal this is.
    pub cause: Cause,
    /// The error `io_uring_setup` returned.
    #[source]
    pub source: io::Error,
}

impl ProbeError {
    /// Classifies an `io_uring_setup` error.
    pub fn from_setup_error(source: io::Error) -> Self {
        let cause = match source.raw_os_error() {
            Some(libc::ENOSYS) => Cause::NotImplemented,
            Some(libc::EPERM) => match io_uring_disabled_sysctl() {
                Some(value @ 1..=2) => Cause::DisabledBySysctl { value },
                _ => Cause::NotPermitted,
            },
            Some(libc::ENOMEM) => Cause::NoMemory,
            _ => Cause::Other,
        };
        ProbeError { cause, source }
    }
}

/// `kernel.io_uring_disabled` (6.6+), if readable.
fn io_uring_disabled_sysctl() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?.trim().parse().ok()
}

/// Probes the running kernel. `Err` only when no ring can be created at
/// all; every feature test that fails just reports `false`.
pub fn probe() -> Result<Support, ProbeError> {
    let ring = IoUring::new(8).map_err(ProbeError::from_setup_error)?;
    let mut support = Support::default();

    let mut p = io_uring::Probe::new();
    if ring.submitter().register_probe(&mut p).is_ok() {
        support.ops = Ops {
            recvmsg: p.is_supported(opcode::RecvMsg::CODE),
            sendmsg: p.is_supported(opcode::SendMsg::CODE),
            accept: p.is_supported(opcode::Accept::CODE),
            connect: p.is_supported(opcode::Connect::CODE),
            recv: p.is_supported(opcode::Recv::CODE),
            send: p.is_supported(opcode::Send::CODE),
            read: p.is_supported(opcode::Read::CODE),
            write: p.is_supported(opcode::Write::CODE),
            timeout: p.is_supported(opcode::Timeout::CODE),
            async_cancel: p.is_supported(opcode::AsyncCancel::CODE),
            close: p.is_supported(opcode::Close::CODE),
            msg_ring: p.is_supported(opcode::MsgRingData::CODE),
        };
    }
    let params = ring.params();
    support.ext_arg = params.is_feature_ext_arg();
    support.nodrop = params.is_feature_nodrop();
    support.fast_poll = params.is_feature_fast_poll();

    support.setup = SetupFlags {
        single_issuer: IoUring::<squeue::Entry, cqueue::Entry>::builder().setup_single_issuer().build(4).is_ok(),
        defer_taskrun: IoUring::<squeue::Entry, cqueue::Entry>::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(4)
            .is_ok(),
        coop_taskrun: IoUring::<squeue::Entry, cqueue::Entry>::builder().setup_coop_taskrun().build(4).is_ok(),
        submit_all: IoUring::<squeue::Entry, cqueue::Entry>::builder().setup_submit_all().build(4).is_ok(),
    };
    support.files_sparse = ring.submitter().register_files_sparse(4).is_ok();
    drop(ring);

    if support.ext_arg && support.ops.async_cancel {
        if support.ops.recvmsg {
            support.multishot_recvmsg = multishot_recvmsg_works(&mut support.buf_ring);
        }
        if support.ops.accept {
            support.multishot_accept = multishot_accept_works();
        }
    }
    if !support.buf_ring {
        support.buf_ring = buf_ring_works();
    }
    Ok(support)
}

/// Registers a two-buffer provided ring on a fresh ring.
fn buf_ring_works() -> bool {
    let Ok(bufs) = ProvidedBufs::new(64, 2, 0) else {
        return false;
    };
    let Ok(ring) = IoUring::new(4) else {
        return false;
    };
    // SAFETY: `ring` is declared after `bufs`, so it is dropped (closed)
    // first, and no operation ever selects from the group.
    let ok = unsafe { bufs.register(&ring.submitter()) }.is_ok();
    drop(ring);
    ok
}

/// Token of the operation under test and of its cancel.
const OP: u64 = 1;
const CANCEL: u64 = 2;

/// Submits `entry` (user data [`OP`]), then cancels it, and returns the
/// operation's final result: `-ECANCELED` if it was pending (supported),
/// `-EINVAL` if the kernel rejected it. `None` if the ring misbehaved.
fn pending_then_cancelled(ring: &mut IoUring, entry: io_uring::squeue::Entry) -> Option<i32> {
    // SAFETY: every pointer in `entry` is into the caller's frame, which outlives this
    // call; we return only after the final CQE is reaped (or the caller's ring, dropped
    // before those pointees in every caller, is gone).
    unsafe { ring.submission().push(&entry.user_data(OP)) }.ok()?;
    ring.submit().ok()?;
    let cancel = opcode::AsyncCancel::new(OP).build().user_data(CANCEL);
    // SAFETY: a cancel holds no pointer.
    unsafe { ring.submission().push(&cancel) }.ok()?;
    let ts = types::Timespec::from(Duration::from_millis(500));
    let mut result = None;
    let mut cancel_done = false;
    for _ in 0..8 {
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => return None,
        }
        for cqe in ring.completion() {
            match cqe.user_data() {
                OP if !cqueue::more(cqe.flags()) => result = Some(cqe.result()),
                CANCEL => cancel_done = true,
                _ => {}
            }
        }
        if result.is_some() && cancel_done {
            return result;
        }
    }
    None
}

/// Runs a multishot `recvmsg` on a Unix datagram pair (no network needed);
/// sets `*buf_ring` if registering the buffer ring worked.
fn multishot_recvmsg_works(buf_ring: &mut bool) -> bool {
    let Ok((a, _b)) = std::os::unix::net::UnixDatagram::pair() else {
        return false;
    };
    let Ok(bufs) = ProvidedBufs::new(256, 2, 0) else {
        return false;
    };
    let hdr = zeroed_msghdr();
    let Ok(mut ring) = IoUring::new(4) else {
        return false;
    };
    // SAFETY: `ring` is declared after `bufs`, so it is dropped first;
    // `pending_then_cancelled` waits for the only user of the group.
    if unsafe { bufs.register(&ring.submitter()) }.is_err() {
        return false;
    }
    *buf_ring = true;
    let entry = opcode::RecvMsgMulti::new(types::Fd(a.as_raw_fd()), &hdr, bufs.bgid()).build();
    let result = pending_then_cancelled(&mut ring, entry);
    drop(ring);
    result == Some(-libc::ECANCELED)
}

/// Runs a multishot `accept` on an abstract Unix listener.
fn multishot_accept_works() -> bool {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("ringswim-probe-{}-{n}", std::process::id());
    let Ok(addr) = SocketAddr::from_abstract_name(name.as_bytes()) else {
        return false;
    };
    let Ok(listener) = UnixListener::bind_addr(&addr) else {
        return false;
    };
    let Ok(mut ring) = IoUring::new(4) else {
        return false;
    };
    let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).build();
    pending_then_cancelled(&mut ring, entry) == Some(-libc::ECANCELED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_are_classified() {
        let e = ProbeError::from_setup_error(io::Error::from_raw_os_error(libc::ENOSYS));
        assert_eq!(e.cause, Cause::NotImplemented);
        let e = ProbeError::from_setup_error(io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(e.cause, Cause::NoMemory);
        let e = ProbeError::from_setup_error(io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e.cause, Cause::NotPermitted | Cause::DisabledBySysctl { .. }));
        assert!(e.to_string().contains("EPERM"));
    }

    #[test]
    fn missing_names_what_the_ring_needs() {
        let none = Support::default();
        assert!(!none.ring_usable());
        assert!(none.missing().contains(&"IORING_RECV_MULTISHOT"));
        assert!(none.missing().contains(&"IORING_REGISTER_PBUF_RING"));
    }
}
