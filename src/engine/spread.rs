//! One busy node on several engine threads ([`Runtime::host_spread`]): the
//! thread that owns the node's [`Core`](crate::swim::Core) (its shard)
//! keeps it; every other engine thread binds the node's UDP port too
//! (`SO_REUSEPORT`: the kernel spreads datagrams over the sockets by their
//! source and destination addresses) and does Go's `ingestPacket` there —
//! label, decryption, CRC, decompression and decoding, with an
//! [`Opener`] — before it hands each good message to the owner.
//!
//! # The hand-off
//! One [`Handoff`] per (receiving thread → owner) pair: a bounded queue
//! with Go's `HandoffQueueDepth` rules ([`HandoffQueue`]: alive messages
//! in their own lane, served first, newest first; a message that finds its
//! lane full is dropped and counted as
//! `ringswim.dropped{reason="handoff_queue_full"}` in the node's
//! [`Metrics`]). Go queues only alive, suspect, dead and user messages and
//! handles pings and acks on the receiving goroutine, under the node's
//! lock; here every message needs the core, so every message crosses, in
//! the lane for non-alive messages.
//!
//! A message crosses as the opened bytes it was decoded from (type byte and
//! body), copied into one buffer the two threads swap: an owned decoded
//! form would mirror every wire type with allocating fields (names, meta,
//! payloads), where the bytes are one copy into a reused buffer and
//! [`Message::decode`] reads them again on the owner without allocating.
//! The receiving thread locks the pair's buffer once per datagram (only
//! after opening it, so decryption never holds the lock) and tells the
//! owner once per batch of datagrams (one wake-up, [`Handoff::notify`]);
//! the owner swaps the whole buffer out under the lock and handles the
//! messages after releasing it.
//!
//! Outgoing packets stay on the owner: it seals them (compression,
//! encryption) into its send queue as for any node and sends them from its
//! own socket, which has the node's address.
//!
//! [`Runtime::host_spread`]: super::Runtime::host_spread
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::runtime::Wake;
use crate::swim::metrics::PACKETS_REJECTED;
use crate::swim::{Core, HandoffQueue, Metrics, Opener, Time};
use crate::wire::{Message, MessageType};

/// Messages handed over and not yet handled: their opened bytes back to
/// back, and the queue (Go's rules) of who sent each and where it lies.
#[derive(Debug)]
pub(crate) struct HandedMessages {
    bytes: Vec<u8>,
    queue: HandoffQueue<(SocketAddr, Range<usize>)>,
}

impl HandedMessages {
    fn new(depth: usize, metrics: Metrics) -> HandedMessages {
        HandedMessages { bytes: Vec::new(), queue: HandoffQueue::new(depth, metrics) }
    }

    /// Queues the message `raw` (of type `kind`) from `from`; whether it
    /// found room (a full lane drops it, counted).
    fn push(&mut self, from: SocketAddr, kind: MessageType, raw: &[u8]) -> bool {
        let at = self.bytes.len();
        let queued = self.queue.push((from, at..at + raw.len()), kind).is_ok();
        if queued {
            self.bytes.extend_from_slice(raw);
        }
        queued
    }

    /// Hands every message to `core`, in Go's order (alive first, newest
    /// first), and empties itself, keeping its buffers.
    fn handle_all<R: rand::Rng>(&mut self, core: &mut Core<R>, now: Time) -> usize {
        let mut handled = 0;
        while let Some((from, range)) = self.queue.pop() {
            // The receiving thread decoded these very bytes; a failure here
            // would be a bug, still counted rather than trusted.
            match Message::decode(&self.bytes[range]) {
                Ok(msg) => core.handle_message(from, msg, now),
                Err(err) => core.metrics().count(PACKETS_REJECTED, err.reason()),
            }
            handled += 1;
        }
        self.bytes.clear();
        handled
    }
}

/// The queue from one receiving thread to the owner of a spread node.
pub(crate) struct Handoff {
    messages: Mutex<HandedMessages>,
    /// Messages are queued that the owner has not been woken for.
    pending: AtomicBool,
    owner: Arc<dyn Wake>,
    depth: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").field("depth", &self.depth).finish_non_exhaustive()
    }
}

impl Handoff {
    /// A queue `depth` messages deep per lane (Go `HandoffQueueDepth`),
    /// counting drops into the node's `metrics`, waking `owner`.
    pub fn new(depth: usize, metrics: Metrics, owner: Arc<dyn Wake>) -> Handoff {
        Handoff {
            messages: Mutex::new(HandedMessages::new(depth, metrics.clone())),
            pending: AtomicBool::new(false),
            owner,
            depth,
            metrics,
        }
    }

    /// The queue, locked. A thread that panicked holding it left it whole
    /// (pushes and swaps do not unwind halfway), so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, HandedMessages> {
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The receiving side, after a batch of datagrams: wakes the owner
    /// unless it was woken for messages it has not yet taken.
    pub fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.owner.wake();
        }
    }
}

/// The owner's end of one [`Handoff`]: the queue, and the buffer it swaps
/// in and handles from.
#[derive(Debug)]
pub(crate) struct Inbound {
    handoff: Arc<Handoff>,
    taken: HandedMessages,
}

impl Inbound {
    pub fn new(handoff: Arc<Handoff>) -> Inbound {
        let taken = HandedMessages::new(handoff.depth, handoff.metrics.clone());
        Inbound { handoff, taken }
    }

    /// Takes what the receiving thread queued since the last call, if it
    /// said so, and hands it to `core`; how many messages.
    pub fn handle<R: rand::Rng>(&mut self, core: &mut Core<R>, now: Time) -> usize {
        if !self.handoff.pending.swap(false, Ordering::AcqRel) {
            return 0;
        }
        std::mem::swap(&mut *self.handoff.lock(), &mut self.taken);
        self.taken.handle_all(core, now)
    }
}

/// A spread node's entry on a thread that does not own it: its socket's
/// datagrams are opened here and handed to the owner.
#[derive(Debug)]
pub(crate) struct Receiving {
    opener: Opener,
    handoff: Arc<Handoff>,
    /// Messages were queued since the owner was last told.
    unannounced: bool,
}

impl Receiving {
    pub fn new(opener: Opener, handoff: Arc<Handoff>) -> Receiving {
        Receiving { opener, handoff, unannounced: false }
    }

    /// Opens a datagram from `from` (refusals counted by the opener) and
    /// queues its messages for the owner; how many were queued (the others
    /// found their lane full, counted).
    pub fn datagram(&mut self, from: SocketAddr, bytes: &mut [u8]) -> usize {
        let mut queued = 0;
        let mut locked = None;
        let handoff = &self.handoff;
        let _ = self.opener.open_parts(bytes, |msg, raw| {
            let messages = locked.get_or_insert_with(|| handoff.lock());
            queued += usize::from(messages.push(from, msg.message_type(), raw));
        });
        drop(locked);
        self.unannounced |= queued > 0;
        queued
    }

    /// Tells the owner of what was queued since the last call.
    pub fn announce(&mut self) {
        if std::mem::take(&mut self.unannounced) {
            self.handoff.notify();
        }
    }
}
