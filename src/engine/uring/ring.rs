//! The ring owner: one io_uring, its registered sockets, its buffers, and a
//! safe API for the worker that drives it.
//!
//! # Shape
//! A [`Ring`] is created on the thread that will drive it (with
//! `SINGLE_ISSUER` only that thread may submit; [`Ring`] is `!Send`). The
//! worker calls [`Ring::turn`] in a loop: each turn
//! 1. re-arms what ended (multishot `recvmsg` per UDP socket when a CQE came
//!    without `IORING_CQE_F_MORE`, e.g. after `ENOBUFS`; accept; the wake
//!    read),
//! 2. submits everything queued since the last turn — the datagrams of
//!    [`Io::send_to`], the stream operations — and waits for at least one
//!    CQE or the turn's timeout, in one `io_uring_enter`,
//! 3. hands each completion to the caller's closure as a [`Completion`],
//!    together with `&mut` [`Io`], through which the closure queues more
//!    work, and enters again without waiting while that brings more
//!    completions (with `DEFER_TASKRUN` the kernel receives as task work
//!    inside `io_uring_enter`, a bounded amount per enter); each such
//!    enter also submits the answers queued so far.
//!
//! All submitting methods live on [`Io`]; [`Ring`] dereferences to it.
//!
//! # Ownership
//! Whatever an SQE points to (send slot, receive buffer, stream buffer,
//! socket address, `msghdr`, the file descriptor itself) is owned here until
//! that SQE's last CQE arrives. Closing a stream cancels its operations and
//! makes its [`StreamId`] stale at once; their CQEs, when they come, free the
//! buffers and are counted in [`RingStats::late_completions`], never
//! delivered. Every `user_data` is a token (kind, slab index, generation), so
//! a CQE of a removed thing never reaches its successor in the same slot.
//!
//! # Files
//! UDP sockets and listeners are registered files (`IORING_REGISTER_FILES`,
//! addressed as `types::Fixed`); TCP streams use plain descriptors, kept open
//! until no operation on them is in flight.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write as _};
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, RecvMsgOut};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use super::bufs::{ProvidedBufs, SendSlots, zeroed_msghdr};
use super::probe::Support;
use super::slab::{GEN_MASK, Slab};

/// Buffer group id of the ring's one provided buffer ring.
const BGID: u16 = 0;
/// `sockaddr_in6` is the largest name a UDP `recvmsg` returns.
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();
/// Bytes a multishot `recvmsg` puts before the payload in a provided buffer:
/// `io_uring_recvmsg_out` (16 bytes) and the name field.
pub const RECVMSG_OVERHEAD: usize = 16 + NAME_LEN;
/// How long [`Ring`]'s drop waits for cancelled operations, in total.
const DROP_WAIT: Duration = Duration::from_secs(2);
/// Deferred task-work items Linux (6.13+) runs per `io_uring_enter`
/// (`IO_LOCAL_TW_DEFAULT_MAX`): a round that brings fewer CQEs left none.
const TASK_WORK_PER_ENTER: usize = 20;
/// Reaping rounds in one [`Ring::turn`] at most (each one `io_uring_enter`
/// and the CQEs it brings): enough for the task work of thousands of
/// sockets, and bounded so that a flood cannot keep the caller's timers
/// from running.
const MAX_ROUNDS: usize = 64;

/// Sizes of a [`Ring`]. All counts are allocated once, at [`Ring::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel).
    pub sq_entries: u32,
    /// Completion queue entries (at least `sq_entries`; a burst of
    /// multishot receives needs room).
    pub cq_entries: u32,
    /// Largest datagram received, in bytes (memberlist's `UDPBufferSize`,
    /// 1400 by default; 65536 takes any UDP datagram). Longer datagrams are
    /// dropped and counted in [`RingStats::recv_truncated`].
    pub recv_buf_size: usize,
    /// Provided receive buffers: a power of two in `1..=32768`. Each is
    /// `recv_buf_size + RECVMSG_OVERHEAD` bytes.
    pub recv_buf_count: u16,
    /// Send slots (datagrams in flight at once); when all are in flight,
    /// [`Io::send_to`] drops and counts.
    pub send_slots: usize,
    /// Largest datagram sent, in bytes.
    pub send_buf_size: usize,
    /// Registered-file table size: UDP sockets plus listeners at once.
    pub max_files: u32,
}

impl Default for RingConfig {
    /// 256 SQEs, 4096 CQEs, 512 receive buffers and 256 send slots of 1400
    /// bytes, 64 registered files.
    fn default() -> Self {
        RingConfig {
            sq_entries: 256,
            cq_entries: 4096,
            recv_buf_size: 1400,
            recv_buf_count: 512,
            send_slots: 256,
            send_buf_size: 1400,
            max_files: 64,
        }
    }
}

/// Why a [`Ring`] could not be built or turned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The kernel lacks what the ring needs (io_uring names, from
    /// [`Support::missing`]): use the portable backend.
    #[error("io_uring lacks {0:?}")]
    Unsupported(Vec<&'static str>),
    /// A [`RingConfig`] value is out of range.
    #[error("invalid ring config: {0}")]
    Config(&'static str),
    /// All `max_files` registered-file slots are taken.
    #[error("registered-file table full ({0} slots)")]
    FilesFull(u32),
    /// A system call failed (`io_uring_setup`, `io_uring_register`,
    /// `io_uring_enter`, `eventfd`, a socket option).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why [`Io::send_to`] did not queue a datagram. Each is also counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The socket id is not (or no longer) registered.
    #[error("unknown UDP socket")]
    UnknownSocket,
    /// The payload is larger than [`RingConfig::send_buf_size`].
    #[error("datagram of {len} bytes exceeds the {max}-byte send slot")]
    TooLarge {
        /// Payload length, bytes.
        len: usize,
        /// Slot size, bytes.
        max: usize,
    },
    /// Every send slot is waiting for its CQE, even after reaping the CQEs
    /// posted so far: the datagram is dropped.
    #[error("all send slots in flight; datagram dropped")]
    PoolExhausted,
}

/// Why a stream operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream id is stale: closed, or never issued by this ring.
    #[error("unknown or closed stream")]
    Unknown,
    /// A read is already in flight on this stream (one at a time).
    #[error("a read is already pending on this stream")]
    ReadPending,
    /// Creating or configuring the socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A registered UDP socket of one ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

/// A registered TCP listener of one ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId {
    index: u32,
    generation: u32,
}

/// A TCP stream of one ring (connected by [`Io::connect`] or accepted).
/// Stale after [`Io::close`]; a later stream may reuse the index, never the
/// generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    index: u32,
    generation: u32,
}

/// What a read on a stream produced.
#[derive(Debug)]
pub enum ReadOutcome<'a> {
    /// Bytes read (at least one, at most the `max` asked for).
    Data(&'a [u8]),
    /// The peer closed its side (a read of 0 bytes).
    Eof,
    /// The read failed.
    Error(io::Error),
}

/// One completion, as handed to the closure of [`Ring::turn`]. Borrowed
/// bytes are valid during the call only; the receive buffer goes back to
/// the kernel when the closure returns.
#[derive(Debug)]
#[non_exhaustive]
pub enum Completion<'a> {
    /// A datagram arrived on `socket` from `from`. `bytes` is the payload,
    /// writable (decrypt in place).
    Datagram {
        /// Socket it arrived on.
        socket: SocketId,
        /// Sender.
        from: SocketAddr,
        /// Payload.
        bytes: &'a mut [u8],
    },
    /// `listener` accepted a connection, now `stream`.
    Accepted {
        /// Listener that accepted.
        listener: ListenerId,
        /// The new stream.
        stream: StreamId,
        /// Peer address.
        peer: SocketAddr,
    },
    /// An accept on `listener` failed (e.g. `EMFILE`); it is re-armed in the
    /// next turn.
    AcceptFailed {
        /// Listener.
        listener: ListenerId,
        /// The error.
        error: io::Error,
    },
    /// A [`Io::connect`] finished. On error the stream stays allocated until
    /// [`Io::close`].
    Connected {
        /// The stream.
        stream: StreamId,
        /// `Ok` once connected.
        result: io::Result<()>,
    },
    /// A [`Io::read`] finished.
    Read {
        /// The stream.
        stream: StreamId,
        /// Data, end of stream, or error.
        outcome: ReadOutcome<'a>,
    },
    /// A [`Io::write`] finished: all of its bytes were written (`Ok(len)`),
    /// or the write failed part way.
    Written {
        /// The stream.
        stream: StreamId,
        /// Bytes written (the whole buffer) or the error.
        result: io::Result<usize>,
    },
    /// A [`Waker`] woke the ring (one or more `wake` calls since the last).
    Woken,
    /// The turn's timeout has passed (delivered last in its turn).
    Timeout,
}

/// Counters of one ring, monotonic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// Datagrams delivered as [`Completion::Datagram`].
    pub datagrams_received: u64,
    /// Datagrams longer than the receive buffer (dropped).
    pub recv_truncated: u64,
    /// Multishot receives ended by an empty buffer ring (re-armed; the
    /// datagram waited in the socket). Many: raise `recv_buf_count`.
    pub enobufs: u64,
    /// Other receive errors.
    pub recv_errors: u64,
    /// Multishot `recvmsg` SQEs pushed (first arms and re-arms).
    pub recv_armed: u64,
    /// `sendmsg` CQEs with success.
    pub datagrams_sent: u64,
    /// `sendmsg` CQEs with an error.
    pub send_errors: u64,
    /// Datagrams dropped because every send slot was in flight, even after
    /// reaping the sends the kernel had completed.
    pub send_pool_exhausted: u64,
    /// Times a send found every slot in flight and reaped the CQ for
    /// completed sends before the turn's end (no datagram lost).
    pub send_slots_reclaimed: u64,
    /// CQEs of closed streams or removed sockets, ignored.
    pub late_completions: u64,
    /// Calls to `io_uring_enter` (submit, wait or both).
    pub enters: u64,
    /// Times the SQ was full: its SQEs were submitted early and the push
    /// retried.
    pub sq_full: u64,
    /// SQEs kept in the backlog because the SQ stayed full after a submit
    /// (pushed at the next turn).
    pub backlogged: u64,
}

/// What a `user_data` token names (its top 8 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Recv = 1,
    Send = 2,
    Accept = 3,
    Op = 4,
    Wake = 5,
    Cancel = 6,
}

/// `kind << 56 | generation << 32 | index`.
fn token(kind: Kind, index: u32, generation: u32) -> u64 {
    (kind as u64) << 56 | u64::from(generation & GEN_MASK) << 32 | u64::from(index)
}

/// Splits a token into `(kind, index, generation)`.
fn untoken(user_data: u64) -> (u8, u32, u32) {
    ((user_data >> 56) as u8, user_data as u32, (user_data >> 32) as u32 & GEN_MASK)
}

/// A registered UDP socket.
struct Udp {
    /// Owned, never read: closed when the slot is freed, after the last CQE.
    _fd: OwnedFd,
    fixed: u32,
    /// The multishot `recvmsg`'s header (name length only); boxed so its
    /// address is stable while the kernel may read it.
    hdr: Box<libc::msghdr>,
    /// A multishot `recvmsg` is in flight.
    armed: bool,
    removing: bool,
}

/// A registered listener.
struct Listener {
    /// Owned, never read: closed when the slot is freed, after the last CQE.
    _fd: OwnedFd,
    fixed: u32,
    armed: bool,
    removing: bool,
}

/// A TCP stream.
struct Stream {
    fd: OwnedFd,
    /// Operations (incl. cancels) whose CQE has not come.
    inflight: u32,
    closed: bool,
    connect_op: Option<u32>,
    read_op: Option<u32>,
    write_op: Option<u32>,
    /// Writes waiting for the one in flight.
    writes: VecDeque<Vec<u8>>,
}

/// An operation on a stream, holding what its SQE points to.
struct Op {
    stream: u32,
    kind: OpKind,
}

enum OpKind {
    /// Boxed: the SQE points into it.
    Connect(Box<SockAddr>),
    /// The SQE points into the vector's heap buffer, which does not move
    /// while the vector is not resized.
    Read(Vec<u8>),
    Write {
        buf: Vec<u8>,
        done: usize,
    },
}

/// The eventfd a [`Waker`] writes and the ring reads.
struct Wake {
    file: Arc<File>,
    /// The read's 8-byte buffer; boxed so its address is stable.
    buf: Box<[u8; 8]>,
    armed: bool,
}

/// Wakes a [`Ring`] blocked in [`Ring::turn`] from any thread. Cheap to
/// clone; the wake is delivered as [`Completion::Woken`].
#[derive(Clone, Debug)]
pub struct Waker {
    file: Arc<File>,
}

impl Waker {
    /// Adds one to the ring's eventfd; several wakes before the ring reads
    /// it are delivered as one [`Completion::Woken`].
    pub fn wake(&self) -> io::Result<()> {
        (&*self.file).write_all(&1u64.to_ne_bytes())
    }
}

/// The submitting half of a [`Ring`]: everything except the receive
/// buffers, so that a [`Completion::Datagram`]'s bytes and `&mut Io` can be
/// handed to the caller together.
pub struct Io {
    uring: IoUring,
    /// SQEs that found the SQ full even after a submit.
    backlog: VecDeque<squeue::Entry>,
    /// CQEs taken off the CQ early, by a send that found every slot in
    /// flight ([`Io::reclaim_send_slots`]), other than sends: dispatched
    /// first in the next turn's batch, in CQE order.
    reaped: Vec<cqueue::Entry>,
    /// SQEs pushed (or backlogged) whose final CQE has not come.
    inflight: usize,
    send: SendSlots,
    udp: Slab<Udp>,
    listeners: Slab<Listener>,
    streams: Slab<Stream>,
    ops: Slab<Op>,
    free_fixed: Vec<u32>,
    max_files: u32,
    /// Sockets and listeners whose multishot ended: `(kind, index, generation)`.
    rearm: Vec<(Kind, u32, u32)>,
    wake: Wake,
    multishot_accept: bool,
    read_pool: Vec<Vec<u8>>,
    stats: RingStats,
    /// `!Send`: with `SINGLE_ISSUER` only the creating thread may submit.
    _not_send: PhantomData<*mut ()>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("inflight", &self.inflight)
            .field("udp", &self.udp.len())
            .field("listeners", &self.listeners.len())
            .field("streams", &self.streams.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// One io_uring with its sockets and buffers. See the module docs.
///
/// Drop order: [`Ring`]'s `Drop` cancels everything in flight and waits
/// (at most 2 s) for the CQEs; then `io` drops (the ring fd closes, then
/// send slots, sockets, stream buffers), then `recv` (the provided buffer
/// ring). If the wait runs out, the memory the kernel may still touch is
/// leaked instead of freed.
#[derive(Debug)]
pub struct Ring {
    io: Io,
    recv: ProvidedBufs,
    cqes: Vec<cqueue::Entry>,
}

impl Deref for Ring {
    type Target = Io;
    fn deref(&self) -> &Io {
        &self.io
    }
}

impl DerefMut for Ring {
    fn deref_mut(&mut self) -> &mut Io {
        &mut self.io
    }
}

/// Parses a `sockaddr_in`/`sockaddr_in6` as the kernel wrote it.
fn parse_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    if family == libc::AF_INET {
        let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
        Some(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
    } else if family == libc::AF_INET6 {
        let flowinfo = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
        Some(SocketAddrV6::new(Ipv6Addr::from(ip), port, flowinfo, scope).into())
    } else {
        None
    }
}

/// An `io::Error` from a negative CQE result.
fn cqe_error(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

/// Creates a blocking eventfd (io_uring's read returns `EAGAIN` instead of
/// waiting on a non-blocking one).
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with no pointer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `eventfd` returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Ring {
    /// Builds a ring with `config`'s sizes and the best setup flags
    /// `support` allows (`SINGLE_ISSUER` + `DEFER_TASKRUN`, else
    /// `COOP_TASKRUN`; `SUBMIT_ALL`), registers a sparse file table and the
    /// provided buffer ring, and creates the wake eventfd.
    ///
    /// Call it on the thread that will [`turn`](Self::turn) the ring.
    ///
    /// Errors: [`RingError::Unsupported`] when `support` lacks something the
    /// ring needs, [`RingError::Config`] for out-of-range sizes,
    /// [`RingError::Io`] when a system call fails.
    pub fn new(config: &RingConfig, support: &Support) -> Result<Ring, RingError> {
        let missing = support.missing();
        if !missing.is_empty() {
            return Err(RingError::Unsupported(missing));
        }
        if config.sq_entries == 0 || config.cq_entries < config.sq_entries {
            return Err(RingError::Config("need 0 < sq_entries <= cq_entries"));
        }
        if config.recv_buf_size == 0 || config.send_buf_size == 0 {
            return Err(RingError::Config("buffer sizes must be positive"));
        }
        if config.max_files == 0 {
            return Err(RingError::Config("max_files must be positive"));
        }
        let entry_size =
            config.recv_buf_size.checked_add(RECVMSG_OVERHEAD).ok_or(RingError::Config("recv_buf_size too large"))?;
        let recv = ProvidedBufs::new(entry_size, config.recv_buf_count, BGID)
            .map_err(|_| RingError::Config("recv_buf_count must be a power of two <= 32768"))?;
        let send = SendSlots::new(config.send_slots, config.send_buf_size)
            .map_err(|_| RingError::Config("send_slots must be positive"))?;
        let wake_fd = eventfd()?;

        let mut builder = IoUring::<squeue::Entry, cqueue::Entry>::builder();
        builder.setup_cqsize(config.cq_entries);
        if support.setup.submit_all {
            builder.setup_submit_all();
        }
        if support.setup.single_issuer {
            builder.setup_single_issuer();
        }
        if support.setup.single_issuer && support.setup.defer_taskrun {
            builder.setup_defer_taskrun();
        } else if support.setup.coop_taskrun {
            builder.setup_coop_taskrun();
        }
        let uring = builder.build(config.sq_entries)?;
        uring.submitter().register_files_sparse(config.max_files)?;
        // Should this function fail after this point, no operation was ever
        // submitted, so nothing selects from the group yet.
        // SAFETY: `recv` becomes a field of the returned `Ring`, whose drop waits until
        // no operation selects from the group (or leaks `recv`) and closes the ring first.
        unsafe { recv.register(&uring.submitter()) }?;

        Ok(Ring {
            io: Io {
                uring,
                backlog: VecDeque::new(),
                reaped: Vec::new(),
                inflight: 0,
                send,
                udp: Slab::new(),
                listeners: Slab::new(),
                streams: Slab::new(),
                ops: Slab::new(),
                free_fixed: (0..config.max_files).rev().collect(),
                max_files: config.max_files,
                rearm: Vec::new(),
                wake: Wake { file: Arc::new(File::from(wake_fd)), buf: Box::new([0; 8]), armed: false },
                multishot_accept: support.multishot_accept,
                read_pool: Vec::new(),
                stats: RingStats::default(),
                _not_send: PhantomData,
            },
            recv,
            cqes: Vec::with_capacity(256),
        })
    }

    /// The submitting half, for code that takes `&mut Io`.
    pub fn io(&mut self) -> &mut Io {
        &mut self.io
    }

    /// One loop turn: re-arm, submit everything queued, wait for at least
    /// one completion or `timeout` (`None`: no limit; `Some(ZERO)`: do not
    /// block), then call `on` for each completion, in CQE order, and enter
    /// again without waiting while that brings more (at most
    /// [`MAX_ROUNDS`] times), with [`Completion::Timeout`] last if
    /// `timeout` has passed by then.
    ///
    /// Work `on` queues through its `&mut Io` goes out with the turn's next
    /// round, the next turn, or at [`Io::submit`], whichever comes first.
    /// Returns the number of completions delivered.
    ///
    /// Errors: only a failing `io_uring_enter` (not `ETIME`, `EINTR`,
    /// `EBUSY`, `EAGAIN`, which end the wait early and are retried).
    pub fn turn<F>(&mut self, timeout: Option<Duration>, on: &mut F) -> Result<usize, RingError>
    where
        F: FnMut(&mut Io, Completion<'_>),
    {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.io.arm();
        self.io.flush_backlog();
        // CQEs reaped early wait in `reaped`, not in the CQ: do not block.
        self.io.enter(if self.io.reaped.is_empty() { timeout } else { Some(Duration::ZERO) })?;
        let mut delivered = 0;
        for round in 0..MAX_ROUNDS {
            // With `DEFER_TASKRUN` the kernel completes receives and stream
            // operations as task work inside `io_uring_enter`, and Linux
            // 6.13+ runs at most 20 items per enter: while a round brings
            // that many CQEs, work may be left; enter again (without
            // waiting), which also submits what the last round queued.
            // Fewer means the kernel ran out of work (or a CQE-less item
            // took a place: it comes with the next turn's enter).
            if round > 0 {
                if self.cqes.len() < TASK_WORK_PER_ENTER {
                    break;
                }
                self.io.enter(Some(Duration::ZERO))?;
            }
            self.cqes.clear();
            self.cqes.append(&mut self.io.reaped);
            self.cqes.extend(self.io.uring.completion());
            if self.cqes.is_empty() {
                break;
            }
            for i in 0..self.cqes.len() {
                let cqe = self.cqes[i].clone();
                delivered += self.dispatch(&cqe, on);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            on(&mut self.io, Completion::Timeout);
            delivered += 1;
        }
        Ok(delivered)
    }

    /// Handles one CQE; returns 1 if a completion was delivered.
    fn dispatch<F>(&mut self, cqe: &cqueue::Entry, on: &mut F) -> usize
    where
        F: FnMut(&mut Io, Completion<'_>),
    {
        let (kind, index, generation) = untoken(cqe.user_data());
        let res = cqe.result();
        let flags = cqe.flags();
        let more = cqueue::more(flags);
        if !more {
            self.io.inflight -= 1;
        }
        match kind {
            k if k == Kind::Recv as u8 => self.on_recv(index, generation, res, flags, on),
            k if k == Kind::Send as u8 => {
                self.io.on_send(index, res);
                0
            }
            k if k == Kind::Accept as u8 => self.io.on_accept(index, generation, res, more, on),
            k if k == Kind::Op as u8 => self.io.on_op(index, generation, res, on),
            k if k == Kind::Wake as u8 => {
                self.io.wake.armed = false;
                if res >= 0 {
                    on(&mut self.io, Completion::Woken);
                    1
                } else {
                    0
                }
            }
            _ => 0, // Cancel: nothing to do.
        }
    }

    /// A multishot `recvmsg` CQE.
    fn on_recv<F>(&mut self, index: u32, generation: u32, res: i32, flags: u32, on: &mut F) -> usize
    where
        F: FnMut(&mut Io, Completion<'_>),
    {
        let io = &mut self.io;
        let bid = cqueue::buffer_select(flags);
        let (hdr, live) = match io.udp.get_mut(index, generation) {
            Some(udp) => {
                if !cqueue::more(flags) {
                    udp.armed = false;
                    if !udp.removing {
                        io.rearm.push((Kind::Recv, index, generation));
                    }
                }
                (*udp.hdr, !udp.removing)
            }
            None => (zeroed_msghdr(), false),
        };
        if !cqueue::more(flags) {
            io.finish_udp_removal(index, generation);
        }
        if res < 0 {
            if res == -libc::ENOBUFS {
                io.stats.enobufs += 1;
            } else if res != -libc::ECANCELED {
                io.stats.recv_errors += 1;
            }
        }
        let Some(bid) = bid else {
            return 0;
        };
        let len = usize::try_from(res).unwrap_or(0);
        // SAFETY: `bid` comes from this CQE, of a `recvmsg` that selected
        // from our group; the kernel is done with the buffer.
        let Some(mut buf) = (unsafe { self.recv.take(bid, len) }) else {
            self.io.stats.recv_errors += 1;
            return 0;
        };
        if !live {
            self.io.stats.late_completions += 1;
            return 0;
        }
        let Ok(out) = RecvMsgOut::parse(buf.bytes(), &hdr) else {
            self.io.stats.recv_errors += 1;
            return 0;
        };
        if out.is_payload_truncated() {
            self.io.stats.recv_truncated += 1;
            return 0;
        }
        let Some(from) = parse_sockaddr(out.name_data()) else {
            self.io.stats.recv_errors += 1;
            return 0;
        };
        let start = out.payload_data().as_ptr() as usize - buf.bytes().as_ptr() as usize;
        let end = start + out.payload_data().len();
        self.io.stats.datagrams_received += 1;
        on(
            &mut self.io,
            Completion::Datagram {
                socket: SocketId { index, generation },
                from,
                bytes: &mut buf.bytes_mut()[start..end],
            },
        );
        1
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if !self.io.cancel_all_and_wait() {
            self.recv.leak();
            self.io.leak();
        }
    }
}

impl Io {
    /// Queues `entry` for the next submit: into the SQ, submitting first if
    /// it is full, else into the backlog. Never fails; a failing submit
    /// surfaces at the next [`Ring::turn`].
    ///
    /// # Safety
    /// Everything `entry` points to must stay valid, and untouched by Rust
    /// where the kernel writes or reads it, until the entry's final CQE has
    /// been reaped (or the ring is dropped through [`Ring`]'s drop).
    unsafe fn push(&mut self, entry: squeue::Entry) {
        self.inflight += 1;
        if self.backlog.is_empty() && self.try_push(&entry) {
            return;
        }
        self.stats.backlogged += 1;
        self.backlog.push_back(entry);
    }

    /// Pushes into the SQ, submitting once if it is full.
    fn try_push(&mut self, entry: &squeue::Entry) -> bool {
        for attempt in 0..2 {
            // SAFETY: entries reach here only through `push`, whose caller
            // guaranteed the pointees' validity until the final CQE.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                return true;
            }
            if attempt == 0 {
                self.stats.sq_full += 1;
                self.stats.enters += 1;
                if self.uring.submit().is_err() {
                    return false;
                }
            }
        }
        false
    }

    /// Moves backlogged SQEs into the SQ while there is room.
    fn flush_backlog(&mut self) {
        while let Some(entry) = self.backlog.pop_front() {
            if !self.try_push(&entry) {
                self.backlog.push_front(entry);
                break;
            }
        }
    }

    /// Submits queued SQEs now, without waiting; returns how many the kernel
    /// took. [`Ring::turn`] does this anyway; call it to push a batch out
    /// earlier.
    pub fn submit(&mut self) -> io::Result<usize> {
        self.flush_backlog();
        self.stats.enters += 1;
        self.uring.submit()
    }

    /// Submits and waits for one CQE or the timeout.
    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stats.enters += 1;
        let result = match timeout {
            None => self.uring.submit_and_wait(1),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Pushes the multishot receives and accepts that ended, and the wake read.
    fn arm(&mut self) {
        let rearm = std::mem::take(&mut self.rearm);
        for &(kind, index, generation) in &rearm {
            match kind {
                Kind::Recv => self.arm_recv(index, generation),
                Kind::Accept => self.arm_accept(index, generation),
                _ => {}
            }
        }
        self.rearm = rearm;
        self.rearm.clear();
        if !self.wake.armed {
            self.wake.armed = true;
            let entry = opcode::Read::new(types::Fd(self.wake.file.as_raw_fd()), self.wake.buf.as_mut_ptr(), 8)
                .build()
                .user_data(token(Kind::Wake, 0, 0));
            // SAFETY: the 8-byte buffer is boxed in `self.wake` (stable address, freed or
            // leaked only in `Ring`'s drop, after the wait for CQEs), never read by Rust;
            // the eventfd stays open as long as `self`.
            unsafe { self.push(entry) };
        }
    }

    fn arm_recv(&mut self, index: u32, generation: u32) {
        let Some(udp) = self.udp.get_mut(index, generation) else {
            return;
        };
        if udp.armed || udp.removing {
            return;
        }
        udp.armed = true;
        let hdr: *const libc::msghdr = &*udp.hdr;
        let entry = opcode::RecvMsgMulti::new(types::Fixed(udp.fixed), hdr, BGID).build().user_data(token(
            Kind::Recv,
            index,
            generation,
        ));
        self.stats.recv_armed += 1;
        // SAFETY: `hdr` is boxed in the socket's slot, which is removed only
        // after this receive's final CQE (`finish_udp_removal`); buffers come
        // from the provided ring, kept alive by `Ring`.
        unsafe { self.push(entry) };
    }

    fn arm_accept(&mut self, index: u32, generation: u32) {
        let multishot = self.multishot_accept;
        let Some(l) = self.listeners.get_mut(index, generation) else {
            return;
        };
        if l.armed || l.removing {
            return;
        }
        l.armed = true;
        let fd = types::Fixed(l.fixed);
        let entry = if multishot {
            opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build()
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut()).flags(libc::SOCK_CLOEXEC).build()
        };
        // SAFETY: accept without an address buffer holds no pointer; the
        // listener's registered file outlives the operation.
        unsafe { self.push(entry.user_data(token(Kind::Accept, index, generation))) };
    }

    /// Takes a registered-file slot and installs `fd` in it.
    fn register_fixed(&mut self, fd: RawFd) -> Result<u32, RingError> {
        let fixed = self.free_fixed.pop().ok_or(RingError::FilesFull(self.max_files))?;
        if let Err(e) = self.uring.submitter().register_files_update(fixed, &[fd]) {
            self.free_fixed.push(fixed);
            return Err(e.into());
        }
        Ok(fixed)
    }

    /// Empties registered-file slot `fixed` (the slot is not reused until
    /// the caller returns it to `free_fixed`).
    fn unregister_fixed(&mut self, fixed: u32) {
        // Submit first so no queued SQE resolves the slot after it changes.
        self.flush_all();
        // Failure leaves the old file installed until the ring closes:
        // harmless, the slot is simply not reused.
        if self.uring.submitter().register_files_update(fixed, &[-1]).is_ok() {
            self.free_fixed.push(fixed);
        }
    }

    /// Submits until the backlog is empty (bounded).
    fn flush_all(&mut self) {
        for _ in 0..16 {
            self.flush_backlog();
            self.stats.enters += 1;
            if self.uring.submit().is_err() || self.backlog.is_empty() {
                break;
            }
        }
    }

    /// Registers a UDP socket (any `Into<OwnedFd>`: `std::net::UdpSocket`,
    /// `socket2::Socket`) and arms a multishot `recvmsg` on it (submitted at
    /// the next turn). The socket is switched to blocking mode (io_uring
    /// fails rather than waits on non-blocking sockets) and owned by the
    /// ring until [`Io::remove_udp`] or drop.
    ///
    /// Errors: not a datagram socket (`Io` with `InvalidInput`), the file
    /// table is full, or registration fails.
    pub fn add_udp(&mut self, socket: impl Into<OwnedFd>) -> Result<SocketId, RingError> {
        let fd: OwnedFd = socket.into();
        let sock = SockRef::from(&fd);
        if sock.r#type()? != Type::DGRAM {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a UDP socket").into());
        }
        sock.set_nonblocking(false)?;
        let fixed = self.register_fixed(fd.as_raw_fd())?;
        let mut hdr = Box::new(zeroed_msghdr());
        hdr.msg_namelen = NAME_LEN as libc::socklen_t;
        let (index, generation) = self.udp.insert(Udp { _fd: fd, fixed, hdr, armed: false, removing: false });
        self.rearm.push((Kind::Recv, index, generation));
        Ok(SocketId { index, generation })
    }

    /// Unregisters `socket`: cancels its receive, empties its file slot and
    /// closes it once the receive's last CQE is in. Returns `false` if the
    /// id is stale. Datagrams queued for it and not yet submitted fail.
    pub fn remove_udp(&mut self, socket: SocketId) -> bool {
        let Some(udp) = self.udp.get_mut(socket.index, socket.generation) else {
            return false;
        };
        if udp.removing {
            return false;
        }
        udp.removing = true;
        let (armed, fixed) = (udp.armed, udp.fixed);
        self.unregister_fixed(fixed);
        if armed {
            self.cancel(token(Kind::Recv, socket.index, socket.generation));
        } else {
            self.finish_udp_removal(socket.index, socket.generation);
        }
        true
    }

    /// Frees a removing socket's slot once no receive is in flight.
    fn finish_udp_removal(&mut self, index: u32, generation: u32) {
        if let Some(udp) = self.udp.get_mut(index, generation)
            && udp.removing
            && !udp.armed
        {
            self.udp.remove(index);
        }
    }

    /// Pushes an `AsyncCancel` of the operation with `user_data`.
    fn cancel(&mut self, user_data: u64) {
        let entry = opcode::AsyncCancel::new(user_data).build().user_data(token(Kind::Cancel, 0, 0));
        // SAFETY: a cancel holds no pointer.
        unsafe { self.push(entry) };
    }

    /// Queues a datagram of `payload` from `socket` to `to`: copies it into
    /// a send slot and pushes a `sendmsg`, submitted with the turn's batch.
    /// The slot is free again when the kernel's CQE for it arrives; when
    /// none is free, the CQEs posted so far are reaped first
    /// ([`RingStats::send_slots_reclaimed`]).
    ///
    /// Errors (each counted): stale socket, payload over
    /// [`RingConfig::send_buf_size`], or every slot still in flight after
    /// that reaping (the kernel has not completed one send yet).
    pub fn send_to(&mut self, socket: SocketId, to: SocketAddr, payload: &[u8]) -> Result<(), SendError> {
        let fixed = match self.udp.get_mut(socket.index, socket.generation) {
            Some(udp) if !udp.removing => udp.fixed,
            _ => return Err(SendError::UnknownSocket),
        };
        if payload.len() > self.send.size() {
            return Err(SendError::TooLarge { len: payload.len(), max: self.send.size() });
        }
        if self.send.free() == 0 {
            self.reclaim_send_slots();
        }
        let Some((slot, hdr)) = self.send.acquire(to, payload) else {
            self.stats.send_pool_exhausted += 1;
            return Err(SendError::PoolExhausted);
        };
        let entry = opcode::SendMsg::new(types::Fixed(fixed), hdr).build().user_data(token(Kind::Send, slot, 0));
        // SAFETY: `hdr`, its iovec, address and payload live in send slot
        // `slot`, released only by this SQE's CQE (`dispatch`) or leaked.
        unsafe { self.push(entry) };
        Ok(())
    }

    /// Every send slot is in flight: submits what is queued and takes the
    /// CQEs the kernel has posted, freeing the slots of completed sends at
    /// once and keeping the rest for the next turn ([`Io::reaped`]). A
    /// datagram to loopback or a NIC with room completes inside the submit,
    /// so a burst of replies larger than the pool (a turn's worth of
    /// datagrams answered at once) loses nothing.
    fn reclaim_send_slots(&mut self) {
        self.stats.send_slots_reclaimed += 1;
        self.flush_backlog();
        self.stats.enters += 1;
        // A failing submit leaves the slots in flight: the send is dropped
        // and counted by the caller; the error surfaces at the next turn.
        let _ = self.uring.submit();
        let completed: Vec<cqueue::Entry> = self.uring.completion().collect();
        for cqe in completed {
            let (kind, index, _) = untoken(cqe.user_data());
            if kind == Kind::Send as u8 {
                // A send's CQE is always its last.
                self.inflight -= 1;
                self.on_send(index, cqe.result());
            } else {
                self.reaped.push(cqe);
            }
        }
    }

    /// A `sendmsg` CQE: its slot is free again.
    fn on_send(&mut self, index: u32, res: i32) {
        // SAFETY: this is the CQE of the `sendmsg` that used slot `index`
        // (send tokens are only put on those SQEs).
        if unsafe { self.send.release(index) } {
            if res < 0 {
                self.stats.send_errors += 1;
            } else {
                self.stats.datagrams_sent += 1;
            }
        }
    }

    /// Send slots not waiting for a CQE.
    pub fn free_send_slots(&self) -> usize {
        self.send.free()
    }

    /// Registers a listening TCP socket (e.g. `std::net::TcpListener`) and
    /// arms an accept on it (multishot where the kernel has it). Accepted
    /// connections arrive as [`Completion::Accepted`].
    ///
    /// Errors: the file table is full or registration fails.
    pub fn add_listener(&mut self, listener: impl Into<OwnedFd>) -> Result<ListenerId, RingError> {
        let fd: OwnedFd = listener.into();
        SockRef::from(&fd).set_nonblocking(false)?;
        let fixed = self.register_fixed(fd.as_raw_fd())?;
        let (index, generation) = self.listeners.insert(Listener { _fd: fd, fixed, armed: false, removing: false });
        self.rearm.push((Kind::Accept, index, generation));
        Ok(ListenerId { index, generation })
    }

    /// Unregisters `listener`: cancels its accept and closes it once the
    /// accept's last CQE is in. Returns `false` if the id is stale.
    pub fn remove_listener(&mut self, listener: ListenerId) -> bool {
        let Some(l) = self.listeners.get_mut(listener.index, listener.generation) else {
            return false;
        };
        if l.removing {
            return false;
        }
        l.removing = true;
        let (armed, fixed) = (l.armed, l.fixed);
        self.unregister_fixed(fixed);
        if armed {
            self.cancel(token(Kind::Accept, listener.index, listener.generation));
        } else {
            self.listeners.remove(listener.index);
        }
        true
    }

    /// An accept CQE.
    fn on_accept<F>(&mut self, index: u32, generation: u32, res: i32, more: bool, on: &mut F) -> usize
    where
        F: FnMut(&mut Io, Completion<'_>),
    {
        let accepted = if res >= 0 {
            // SAFETY: a successful accept's result is a new descriptor that
            // nothing else owns.
            Some(unsafe { OwnedFd::from_raw_fd(res) })
        } else {
            None
        };
        let Some(l) = self.listeners.get_mut(index, generation) else {
            self.stats.late_completions += 1;
            return 0;
        };
        let live = !l.removing;
        if !more {
            l.armed = false;
            if live {
                self.rearm.push((Kind::Accept, index, generation));
            } else {
                self.listeners.remove(index);
            }
        }
        if !live {
            self.stats.late_completions += 1;
            return 0;
        }
        let listener = ListenerId { index, generation };
        let Some(fd) = accepted else {
            if res == -libc::ECANCELED {
                return 0;
            }
            on(self, Completion::AcceptFailed { listener, error: cqe_error(res) });
            return 1;
        };
        let sock = SockRef::from(&fd);
        let peer = match sock.peer_addr().map(|a| a.as_socket()) {
            Ok(Some(peer)) => peer,
            Ok(None) => {
                let error = io::Error::new(io::ErrorKind::InvalidData, "peer is not an IP address");
                on(self, Completion::AcceptFailed { listener, error });
                return 1;
            }
            Err(error) => {
                on(self, Completion::AcceptFailed { listener, error });
                return 1;
            }
        };
        let _ = sock.set_tcp_nodelay(true);
        let stream = self.new_stream(fd);
        on(self, Completion::Accepted { listener, stream, peer });
        1
    }

    fn new_stream(&mut self, fd: OwnedFd) -> StreamId {
        let (index, generation) = self.streams.insert(Stream {
            fd,
            inflight: 0,
            closed: false,
            connect_op: None,
            read_op: None,
            write_op: None,
            writes: VecDeque::new(),
        });
        StreamId { index, generation }
    }

    /// The open (not closed) stream `id`.
    fn open_stream(&mut self, id: StreamId) -> Result<&mut Stream, StreamError> {
        match self.streams.get_mut(id.index, id.generation) {
            Some(s) if !s.closed => Ok(s),
            _ => Err(StreamError::Unknown),
        }
    }

    /// Stores `op` for stream `id` and pushes the SQE `build` makes from
    /// the stored op and the stream's descriptor.
    ///
    /// # Safety
    /// `build` may point the SQE only into the op's own buffers (which stay
    /// in the op slab until the op's CQE) and at the stream's descriptor.
    unsafe fn push_op(
        &mut self,
        id: StreamId,
        op: OpKind,
        build: impl FnOnce(&mut OpKind, types::Fd) -> squeue::Entry,
    ) -> u32 {
        let (op_index, op_generation) = self.ops.insert(Op { stream: id.index, kind: op });
        let stream = self.streams.get_mut(id.index, id.generation).expect("stream checked by caller");
        stream.inflight += 1;
        let fd = types::Fd(stream.fd.as_raw_fd());
        let (_, op) = self.ops.get_any_mut(op_index).expect("just inserted");
        let entry = build(&mut op.kind, fd).user_data(token(Kind::Op, op_index, op_generation));
        // SAFETY: the op's buffers stay in the op slab (heap addresses
        // stable) until its CQE (`on_op`); the stream, and so its
        // descriptor, is freed only when `inflight` drops to zero.
        unsafe { self.push(entry) };
        op_index
    }

    /// Opens a TCP connection to `to` (with `TCP_NODELAY`); the result
    /// arrives as [`Completion::Connected`]. Read and write once it has;
    /// [`Io::close`] works at any time.
    ///
    /// Errors: creating the socket fails.
    pub fn connect(&mut self, to: SocketAddr) -> Result<StreamId, StreamError> {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_tcp_nodelay(true)?;
        let id = self.new_stream(socket.into());
        let addr = Box::new(SockAddr::from(to));
        // SAFETY: the SQE points at the boxed address owned by the op.
        let op = unsafe {
            self.push_op(id, OpKind::Connect(addr), |kind, fd| {
                let OpKind::Connect(addr) = kind else { unreachable!() };
                opcode::Connect::new(fd, addr.as_ptr().cast(), addr.len()).build()
            })
        };
        self.open_stream(id).expect("just created").connect_op = Some(op);
        Ok(id)
    }

    /// Queues `data` to be written to `stream` in full (the ring resubmits
    /// after short writes); [`Completion::Written`] reports it. Writes on one
    /// stream go out in call order, one at a time.
    ///
    /// Errors: the stream is unknown or closed.
    pub fn write(&mut self, stream: StreamId, data: Vec<u8>) -> Result<(), StreamError> {
        let s = self.open_stream(stream)?;
        if s.write_op.is_some() {
            s.writes.push_back(data);
            return Ok(());
        }
        self.start_write(stream, data, 0);
        Ok(())
    }

    /// Pushes a `send` of `buf[done..]` on `stream`.
    fn start_write(&mut self, stream: StreamId, buf: Vec<u8>, done: usize) {
        // SAFETY: the SQE points into the op's own vector.
        let op = unsafe {
            self.push_op(stream, OpKind::Write { buf, done }, |kind, fd| {
                let OpKind::Write { buf, done } = kind else { unreachable!() };
                let rest = &buf[*done..];
                let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
                opcode::Send::new(fd, rest.as_ptr(), len).flags(libc::MSG_NOSIGNAL).build()
            })
        };
        if let Some(s) = self.streams.get_mut(stream.index, stream.generation) {
            s.write_op = Some(op);
        }
    }

    /// Reads up to `max` bytes (at least 1) from `stream`; the bytes arrive
    /// as [`Completion::Read`]. One read at a time per stream.
    ///
    /// Errors: the stream is unknown or closed, or a read is pending.
    pub fn read(&mut self, stream: StreamId, max: usize) -> Result<(), StreamError> {
        let s = self.open_stream(stream)?;
        if s.read_op.is_some() {
            return Err(StreamError::ReadPending);
        }
        let mut buf = self.read_pool.pop().unwrap_or_default();
        buf.clear();
        buf.resize(max.clamp(1, u32::MAX as usize), 0);
        // SAFETY: the SQE points into the op's own vector.
        let op = unsafe {
            self.push_op(stream, OpKind::Read(buf), |kind, fd| {
                let OpKind::Read(buf) = kind else { unreachable!() };
                opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32).build()
            })
        };
        self.open_stream(stream).expect("checked above").read_op = Some(op);
        Ok(())
    }

    /// Closes `stream`: shuts the socket down, cancels its operations and
    /// drops queued writes. The id is stale at once; no completion of it is
    /// delivered after this call. The descriptor is closed and the buffers
    /// freed when the last in-flight CQE arrives.
    ///
    /// Errors: the stream is unknown or already closed.
    pub fn close(&mut self, stream: StreamId) -> Result<(), StreamError> {
        let s = self.open_stream(stream)?;
        s.closed = true;
        s.writes.clear();
        // Wakes a pending connect, read or write at once.
        let _ = SockRef::from(&s.fd).shutdown(std::net::Shutdown::Both);
        let pending = [s.connect_op, s.read_op, s.write_op];
        let inflight = s.inflight;
        // The cancels hold no pointer and name no descriptor: they are not
        // counted on the stream, only the operations they cancel are.
        for op in pending.into_iter().flatten() {
            if let Some((generation, _)) = self.ops.get_any_mut(op) {
                self.cancel(token(Kind::Op, op, generation));
            }
        }
        if inflight == 0 {
            self.streams.remove(stream.index);
        }
        Ok(())
    }

    /// A stream operation's CQE: delivered if the stream is open, else
    /// counted as late (and the closed stream freed when it was the last).
    fn on_op<F>(&mut self, index: u32, generation: u32, res: i32, on: &mut F) -> usize
    where
        F: FnMut(&mut Io, Completion<'_>),
    {
        let Some(op) = self.ops.get_mut(index, generation) else {
            self.stats.late_completions += 1;
            return 0;
        };
        let stream_index = op.stream;
        let Some((stream_generation, stream)) = self.streams.get_any_mut(stream_index) else {
            self.ops.remove(index);
            self.stats.late_completions += 1;
            return 0;
        };
        let id = StreamId { index: stream_index, generation: stream_generation };
        stream.inflight -= 1;
        let closed = stream.closed;

        // A short write on an open stream continues with the same buffer.
        if let OpKind::Write { buf, done } = &mut op.kind
            && !closed
            && res > 0
        {
            *done += res as usize;
            if *done < buf.len() {
                let OpKind::Write { buf, done } = self.ops.remove(index).expect("present").kind else { unreachable!() };
                self.start_write(id, buf, done);
                return 0;
            }
        }
        let op = self.ops.remove(index).expect("present");
        let stream = self.streams.get_mut(id.index, id.generation).expect("present");
        match &op.kind {
            OpKind::Connect(_) => stream.connect_op = None,
            OpKind::Read(_) => stream.read_op = None,
            OpKind::Write { .. } => stream.write_op = None,
        }
        if closed {
            self.stats.late_completions += 1;
            self.release_closed(id);
            if let OpKind::Read(buf) = op.kind {
                self.recycle_read_buf(buf);
            }
            return 0;
        }
        match op.kind {
            OpKind::Connect(_) => {
                let result = if res < 0 { Err(cqe_error(res)) } else { Ok(()) };
                on(self, Completion::Connected { stream: id, result });
            }
            OpKind::Read(buf) => {
                let outcome = match res {
                    r if r < 0 => ReadOutcome::Error(cqe_error(r)),
                    0 => ReadOutcome::Eof,
                    n => ReadOutcome::Data(&buf[..n as usize]),
                };
                on(self, Completion::Read { stream: id, outcome });
                self.recycle_read_buf(buf);
            }
            OpKind::Write { buf, done } => {
                let result = match res {
                    r if r < 0 => Err(cqe_error(r)),
                    0 if done < buf.len() => Err(io::ErrorKind::WriteZero.into()),
                    _ => Ok(buf.len()),
                };
                if let Some(next) = self.streams.get_mut(id.index, id.generation).and_then(|s| s.writes.pop_front()) {
                    self.start_write(id, next, 0);
                }
                on(self, Completion::Written { stream: id, result });
            }
        }
        1
    }

    /// Frees a closed stream once nothing is in flight on it.
    fn release_closed(&mut self, id: StreamId) {
        if let Some(s) = self.streams.get_mut(id.index, id.generation)
            && s.closed
            && s.inflight == 0
        {
            self.streams.remove(id.index);
        }
    }

    fn recycle_read_buf(&mut self, buf: Vec<u8>) {
        if self.read_pool.len() < 16 {
            self.read_pool.push(buf);
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> &RingStats {
        &self.stats
    }

    /// SQEs submitted or queued whose final CQE has not arrived.
    pub fn in_flight(&self) -> usize {
        self.inflight
    }

    /// Streams held: open ones, and closed ones whose CQEs have not all
    /// come back.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// UDP sockets held: registered ones, and removed ones whose receive
    /// has not ended yet.
    pub fn udp_sockets(&self) -> usize {
        self.udp.len()
    }

    /// A [`Waker`] for this ring, to be used from any thread.
    pub fn waker(&self) -> Waker {
        Waker { file: Arc::clone(&self.wake.file) }
    }

    /// Cancels everything in flight and reaps CQEs until none is left or
    /// [`DROP_WAIT`] has passed. Returns whether nothing is left.
    fn cancel_all_and_wait(&mut self) -> bool {
        // CQEs reaped early and never dispatched: their operations are over.
        for cqe in std::mem::take(&mut self.reaped) {
            if !cqueue::more(cqe.flags()) {
                self.inflight -= 1;
            }
        }
        // Backlogged SQEs that still find no room will never complete.
        self.flush_all();
        self.inflight -= self.backlog.len();
        self.backlog.clear();
        if self.inflight == 0 {
            return true;
        }
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(token(Kind::Cancel, 0, 0));
        // SAFETY: a cancel holds no pointer.
        unsafe { self.push(cancel) };
        // If even the cancel found no room, what is in flight stays so and
        // the wait below runs out: the memory is then leaked.
        self.inflight -= self.backlog.len();
        self.backlog.clear();
        let deadline = Instant::now() + DROP_WAIT;
        while self.inflight > 0 && Instant::now() < deadline {
            if self.enter(Some(Duration::from_millis(50))).is_err() {
                return false;
            }
            for cqe in self.uring.completion() {
                if !cqueue::more(cqe.flags()) {
                    self.inflight -= 1;
                }
            }
        }
        self.inflight == 0
    }

    /// The kernel may still use our memory: never free it.
    fn leak(&mut self) {
        self.send.leak();
        std::mem::forget(std::mem::replace(&mut self.ops, Slab::new()));
        std::mem::forget(std::mem::replace(&mut self.udp, Slab::new()));
        std::mem::forget(std::mem::replace(&mut self.wake.buf, Box::new([0; 8])));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = token(Kind::Op, 0xdead_beef, 0x12_3456);
        assert_eq!(untoken(t), (Kind::Op as u8, 0xdead_beef, 0x12_3456));
        let t = token(Kind::Recv, 7, GEN_MASK + 3);
        assert_eq!(untoken(t), (Kind::Recv as u8, 7, 2));
    }

    /// The ring's drop cancels what is in flight (multishot receive, wake
    /// read, a pending TCP read) and reaps every CQE, so nothing is leaked.
    #[test]
    fn cancel_all_reaps_everything_in_flight() {
        let Some(mut ring) = test_ring(&RingConfig::default()) else { return };
        ring.add_udp(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connected_stream(&mut ring, &listener);
        let _peer = listener.accept().unwrap();
        ring.read(stream, 64).unwrap();
        ring.turn(Some(Duration::ZERO), &mut |_, _| {}).unwrap();
        assert!(ring.in_flight() >= 3, "recv, wake read and stream read pending");
        assert!(ring.io.cancel_all_and_wait(), "every CQE reaped");
        assert_eq!(ring.in_flight(), 0);
    }

    /// A ring of `config`, or `None` (test skipped) where io_uring is
    /// refused or lacks what the ring needs.
    fn test_ring(config: &RingConfig) -> Option<Ring> {
        let Ok(support) = super::super::probe() else {
            eprintln!("skipped: io_uring refused");
            return None;
        };
        if !support.ring_usable() {
            eprintln!("skipped: io_uring lacks {:?}", support.missing());
            return None;
        }
        Some(Ring::new(config, &support).unwrap())
    }

    /// A ring stream connected to `listener`, turned until its connect
    /// completes (bounded: 10 s).
    fn connected_stream(ring: &mut Ring, listener: &std::net::TcpListener) -> StreamId {
        let stream = ring.connect(listener.local_addr().unwrap()).unwrap();
        let mut connected = false;
        let end = Instant::now() + Duration::from_secs(10);
        while !connected && Instant::now() < end {
            ring.turn(Some(Duration::from_millis(100)), &mut |_, c| {
                connected |= matches!(c, Completion::Connected { result: Ok(()), .. });
            })
            .unwrap();
        }
        assert!(connected);
        stream
    }

    /// More datagrams queued between two turns than there are send slots
    /// (a turn's worth of answers, or a gossip tick of hundreds of nodes)
    /// all go out, in order: the sends the kernel completed free their
    /// slots on the spot. Other completions taken off the CQ meanwhile (a
    /// stream read) are delivered in the next turn, once.
    #[test]
    fn a_burst_larger_than_the_send_pool_is_sent_whole() {
        let config = RingConfig { send_slots: 4, ..RingConfig::default() };
        let Some(mut ring) = test_ring(&config) else { return };
        let socket = ring.add_udp(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // A stream whose read finds its bytes already there: that read
        // completes inside the first reclaiming submit.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connected_stream(&mut ring, &listener);
        let (mut accepted, _) = listener.accept().unwrap();
        accepted.write_all(b"hello").unwrap();
        ring.read(stream, 64).unwrap();

        const BURST: u32 = 64;
        for i in 0..BURST {
            ring.send_to(socket, peer.local_addr().unwrap(), &i.to_be_bytes()).unwrap();
        }
        let mut reads = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        while reads.is_empty() && Instant::now() < end {
            ring.turn(Some(Duration::from_millis(100)), &mut |_, c| {
                if let Completion::Read { outcome: ReadOutcome::Data(bytes), .. } = c {
                    reads.push(bytes.to_vec());
                }
            })
            .unwrap();
        }
        assert_eq!(reads, vec![b"hello".to_vec()], "the read completed during the burst, delivered once");
        let mut buf = [0; 16];
        for i in 0..BURST {
            let (n, _) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_be_bytes(), "datagram {i}");
        }
        assert_eq!(ring.stats().send_pool_exhausted, 0);
        assert!(ring.stats().send_slots_reclaimed > 0);
        assert_eq!(ring.stats().datagrams_sent, u64::from(BURST));
    }

    /// One datagram waiting on each of many sockets: a single turn that
    /// does not block delivers every one. With `DEFER_TASKRUN` the
    /// receives run as task work inside `io_uring_enter`, and Linux 6.13+
    /// runs at most 20 items per enter: a turn that entered once took 20
    /// datagrams of hundreds and left the rest in the sockets, so at 1,000
    /// nodes the backlog grew to seconds and probes timed out.
    #[test]
    fn one_turn_delivers_what_waits_on_every_socket() {
        const SOCKETS: usize = 200;
        let config = RingConfig { max_files: SOCKETS as u32, ..RingConfig::default() };
        let Some(mut ring) = test_ring(&config) else { return };
        let mut addrs = Vec::new();
        for _ in 0..SOCKETS {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            addrs.push(socket.local_addr().unwrap());
            ring.add_udp(socket).unwrap();
        }
        // Arms the receives; nothing waits yet.
        ring.turn(Some(Duration::ZERO), &mut |_, _| {}).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for to in &addrs {
            peer.send_to(b"ping", to).unwrap();
        }
        let mut datagrams = 0;
        ring.turn(Some(Duration::ZERO), &mut |_, c| {
            datagrams += usize::from(matches!(c, Completion::Datagram { .. }));
        })
        .unwrap();
        assert_eq!(datagrams, SOCKETS);
    }

    #[test]
    fn sockaddrs_parse_as_the_kernel_writes_them() {
        for addr in ["127.0.0.1:7946", "[::1]:7946", "[fe80::1%3]:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let sa = SockAddr::from(addr);
            // SAFETY: `as_ptr` points at `len` initialised bytes of `sa`.
            let bytes = unsafe { std::slice::from_raw_parts(sa.as_ptr().cast::<u8>(), sa.len() as usize) };
            assert_eq!(parse_sockaddr(bytes), Some(addr));
        }
        assert_eq!(parse_sockaddr(&[0; 3]), None);
    }
}
