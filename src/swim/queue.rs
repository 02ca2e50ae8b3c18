//! The broadcast queue (Go `TransmitLimitedQueue`, memberlist `queue.go`):
//! messages waiting to be piggybacked on gossip and probe packets, each sent a
//! bounded number of times, freshest first.
//!
//! Memberlist queues its alive/suspect/dead messages here, keyed by the node
//! they are about, and applications queue their own broadcasts in a second
//! queue of the same kind. On every outgoing packet the sender asks
//! [`TransmitLimitedQueue::get_broadcasts`] for as many messages as fit in the
//! space left; each message handed out counts one transmit, and a message is
//! dropped once it reaches [`retransmit_limit`] transmits.
//!
//! # Order
//! Messages are handed out in this order (Go's `limitedBroadcast.Less`):
//! 1. fewest transmits first (newer news spreads first);
//! 2. among equal transmits, the largest message first (packs the packet);
//! 3. among equal sizes, the most recently queued first.
//!
//! # Differences from Go 0.2.2
//! - Go resets its id counter whenever the queue becomes empty, even in the
//!   middle of `GetBroadcasts` while the messages just sent wait to be put back.
//!   A message queued afterwards can then get the same id as one of them, and
//!   once both have the same transmit count and size, Go's btree
//!   `ReplaceOrInsert` silently overwrites one with the other: a queued message
//!   is lost without being sent out fully or `Finished` (docs/go-behaviour.md
//!   §3: thousands of lost user messages at 128 nodes). Here ids come from a `u64`
//!   counter that never goes back, so no two queued messages ever share a key.
//!   At one message per nanosecond it would take 584 years to wrap.
//! - Invalidation by name is a hash lookup and an O(log n) removal, and a
//!   generic broadcast only scans the other generic broadcasts (Go scans the
//!   whole queue).
//! - A name is any `Some(&str)`, the empty one included (Go treats an empty
//!   name as no name).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;

/// How many times a broadcast is sent in a cluster of `num_nodes` members
/// (Go `retransmitLimit`): `retransmit_mult * ceil(log10(num_nodes + 1))`.
///
/// Zero nodes (or a zero multiplier) gives 0; the queue still sends every
/// broadcast once before dropping it, as Go does (see
/// [`TransmitLimitedQueue::get_broadcasts`]).
///
/// Go computes the logarithm in `float64`; the integer form here — the number
/// of decimal digits of `num_nodes` — gives the same value for every count Go
/// represents exactly (checked against Go for every `n` up to 2·10⁷ and on both
/// sides of every power of ten below 10¹⁵; above that Go's `float64(n + 1)`
/// rounds and Go is off by one).
pub fn retransmit_limit(retransmit_mult: usize, num_nodes: usize) -> usize {
    let node_scale = num_nodes.checked_ilog10().map_or(0, |digits_minus_one| digits_minus_one as usize + 1);
    retransmit_mult.saturating_mul(node_scale)
}

/// Something to gossip through a [`TransmitLimitedQueue`] (Go `Broadcast`,
/// with `NamedBroadcast` and `UniqueBroadcast` folded in as [`Broadcast::name`]
/// and [`Broadcast::is_unique`]).
///
/// A new broadcast can invalidate queued ones, which are then dropped (and
/// [`Broadcast::finished`]) before it is queued. Which ones it invalidates
/// depends on its kind, checked in this order:
/// - **named** ([`Broadcast::name`] is `Some`): the queued named broadcast with
///   the same name, if any. Memberlist's own alive/suspect/dead messages are
///   named after the node they are about, so the latest news about a node
///   replaces the older. [`Broadcast::invalidates`] is not consulted.
/// - **unique** ([`Broadcast::is_unique`]): nothing, and nothing invalidates it.
///   The cheapest kind to queue.
/// - **generic** (neither): every queued *generic* broadcast `old` for which
///   `new.invalidates(&old)` holds. Named and unique broadcasts are never
///   invalidated by a generic one. This scans all queued generic broadcasts.
///
/// A queue holds one type `B`; to mix kinds of message, make `B` an enum.
pub trait Broadcast: Sized {
    /// The bytes to send. Called once, when the broadcast is queued; the queue
    /// keeps the returned handle and hands out clones of it, so the bytes are
    /// never copied per packet. Returning a clone of an `Arc` held by `self` is
    /// the intended implementation.
    fn message(&self) -> Arc<[u8]>;

    /// The identity of a named broadcast (Go `NamedBroadcast.Name`): a new
    /// broadcast with the same name replaces this one. `None` (the default) for
    /// unique and generic broadcasts. The queue asks again whenever it needs
    /// the name (it keeps no copy), so it must not change while queued.
    fn name(&self) -> Option<&str> {
        None
    }

    /// Whether this broadcast is intrinsically unique (Go `UniqueBroadcast`):
    /// it never invalidates and is never invalidated. Ignored for named
    /// broadcasts. Default `false`.
    fn is_unique(&self) -> bool {
        false
    }

    /// Whether queueing `self` invalidates the queued generic broadcast `other`
    /// (Go `Broadcast.Invalidates`). Only asked when both are generic (neither
    /// named nor unique). Default `false`.
    fn invalidates(&self, other: &Self) -> bool {
        let _ = other;
        false
    }

    /// Called exactly once when the queue lets go of the broadcast (Go
    /// `Broadcast.Finished`): it reached its transmit limit, was invalidated,
    /// pruned or reset. Not called for broadcasts still queued when the queue is
    /// dropped. Default: nothing.
    fn finished(self) {}
}

/// Position in the send order: derived `Ord` compares the fields top to
/// bottom, so the smallest key is the next to send (fewest transmits, then
/// largest message, then newest).
///
/// 16 bytes (there is one per queued broadcast, twice): transmits and lengths
/// saturate at `u32::MAX`, which no packet or transmit limit comes near.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    transmits: u32,
    len: Reverse<u32>,
    id: Reverse<u64>,
}

/// `n` as a [`Key`] field.
fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Key {
    /// The smallest key of tier `transmits` whose message is at most `len`
    /// bytes long.
    fn first_fitting(transmits: u32, len: usize) -> Key {
        Key { transmits, len: Reverse(saturate(len)), id: Reverse(u64::MAX) }
    }
}

/// How a queued broadcast takes part in invalidation. A named one's name is
/// asked of the broadcast ([`Broadcast::name`]) when needed, not copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Named,
    Unique,
    Generic,
}

#[derive(Debug)]
struct Entry<B> {
    broadcast: B,
    message: Arc<[u8]>,
    /// Its place in `order`.
    key: Key,
    kind: Kind,
}

/// A queued broadcast as [`TransmitLimitedQueue::iter`] shows it.
#[derive(Debug)]
pub struct Queued<'a, B> {
    /// The broadcast as queued.
    pub broadcast: &'a B,
    /// Its message (what [`Broadcast::message`] returned when it was queued).
    pub message: &'a Arc<[u8]>,
    /// How many times it has been handed out by
    /// [`TransmitLimitedQueue::get_broadcasts`].
    pub transmits: usize,
    /// Its queueing sequence number: larger is newer. Unique for the life of
    /// the queue.
    pub id: u64,
}

/// Go's `TransmitLimitedQueue`: broadcasts waiting to be gossiped, each sent at
/// most [`retransmit_limit`] times, fewest-sent first. See the [module
/// docs](self) for the order and what differs from Go.
///
/// Sans-IO: Go asks a `NumNodes` closure for the cluster size; here the caller
/// passes it to [`TransmitLimitedQueue::get_broadcasts`]. Go locks a mutex in
/// every method; here methods take `&mut self` and the owner decides (the
/// protocol core owns its queue; an application sharing one with its
/// [`crate::delegate::Delegate`] wraps it in a `Mutex`).
///
/// Costs, n queued: queueing a named or unique broadcast and handing out each
/// message are O(log n); a generic broadcast also scans the queued generic
/// ones.
///
/// Layout: the broadcasts stay put in `slots` while their key changes with
/// every transmit; the send order and the name index hold slot numbers only.
/// In a large cluster every member queues news about every other one during a
/// mass join, so the per-entry size matters (the name is not copied, and
/// entries are not moved on each transmit).
#[derive(Debug)]
pub struct TransmitLimitedQueue<B> {
    /// Go `RetransmitMult`: the multiplier in [`retransmit_limit`].
    pub retransmit_mult: usize,
    /// Every queued broadcast's slot, in send order.
    order: BTreeMap<Key, u32>,
    /// The queued broadcasts; `None` marks a free slot (listed in `free`).
    slots: Vec<Option<Entry<B>>>,
    free: Vec<u32>,
    /// Slot of each named broadcast, by the hash of its name. Only looked up,
    /// never iterated, so the randomly seeded hasher cannot make behaviour
    /// vary between runs; it keeps names chosen by remote peers from flooding
    /// one bucket.
    names: HashTable<u32>,
    hasher: RandomState,
    /// Keys of the generic broadcasts, the only ones a generic one may
    /// invalidate.
    generic: BTreeSet<Key>,
    /// Id of the last broadcast queued. Never reset (see the module docs).
    last_id: u64,
    /// Sum of the queued messages' lengths.
    queued_bytes: usize,
    /// Broadcasts taken by one [`TransmitLimitedQueue::append_broadcasts`]
    /// waiting to go back into the order (kept for its capacity).
    reinsert: Vec<(u32, Key)>,
}

impl<B> Default for TransmitLimitedQueue<B> {
    /// An empty queue with a zero `retransmit_mult` (each broadcast sent once).
    fn default() -> Self {
        TransmitLimitedQueue::new(0)
    }
}

/// The name of the named broadcast in `slot`.
fn slot_name<B: Broadcast>(slots: &[Option<Entry<B>>], slot: u32) -> &str {
    slots[slot as usize].as_ref().and_then(|e| e.broadcast.name()).unwrap_or_default()
}

impl<B> TransmitLimitedQueue<B> {
    /// An empty queue sending each broadcast
    /// `retransmit_limit(retransmit_mult, num_nodes)` times.
    pub fn new(retransmit_mult: usize) -> Self {
        TransmitLimitedQueue {
            retransmit_mult,
            order: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            names: HashTable::new(),
            hasher: RandomState::new(),
            generic: BTreeSet::new(),
            last_id: 0,
            queued_bytes: 0,
            reinsert: Vec::new(),
        }
    }

    /// Number of queued broadcasts (Go `NumQueued`).
    pub fn num_queued(&self) -> usize {
        self.order.len()
    }

    /// The bytes one packet would need to carry everything queued, at
    /// `overhead` bytes per message.
    pub fn queued_bytes(&self, overhead: usize) -> usize {
        self.queued_bytes.saturating_add(self.order.len().saturating_mul(overhead))
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The queued broadcasts in send order, next to send first (Go's
    /// `orderedView(false)`; `.rev()` gives `orderedView(true)`).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Queued<'_, B>> + ExactSizeIterator {
        self.order.iter().map(|(key, &slot)| {
            let entry = self.slots[slot as usize].as_ref().expect("ordered slots are full");
            let transmits = key.transmits as usize;
            Queued { broadcast: &entry.broadcast, message: &entry.message, transmits, id: key.id.0 }
        })
    }

    /// Moves the broadcast in `slot` to `key` in the send order (it must not
    /// be in it).
    fn place(&mut self, slot: u32, key: Key) {
        let entry = self.slots[slot as usize].as_mut().expect("placed slots are full");
        entry.key = key;
        if entry.kind == Kind::Generic {
            self.generic.insert(key);
        }
        let old = self.order.insert(key, slot);
        // Ids are never reused, so keys never collide: this is where Go loses
        // broadcasts (module docs).
        debug_assert!(old.is_none(), "key {key:?} queued twice");
    }

    /// Takes the broadcast at `key` out of the send order, keeping its slot;
    /// [`TransmitLimitedQueue::place`] puts it back.
    fn unplace(&mut self, key: &Key) -> Option<u32> {
        let slot = self.order.remove(key)?;
        self.generic.remove(key);
        Some(slot)
    }
}

impl<B: Broadcast> TransmitLimitedQueue<B> {
    /// Queues `broadcast` to be sent, after dropping (and finishing) the queued
    /// broadcasts it invalidates (Go `QueueBroadcast`; see [`Broadcast`] for
    /// which).
    pub fn queue_broadcast(&mut self, broadcast: B) {
        self.queue_with_transmits(broadcast, 0);
    }

    fn insert(&mut self, entry: Entry<B>) {
        let (key, kind) = (entry.key, entry.kind);
        self.queued_bytes += entry.message.len();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 queued broadcasts");
                if self.slots.len() == self.slots.capacity() {
                    // A quarter more rather than double (see the layout note).
                    self.slots.reserve_exact(self.slots.len() / 4 + 4);
                }
                self.slots.push(Some(entry));
                slot
            }
        };
        if kind == Kind::Named {
            let (slots, hasher) = (&self.slots, &self.hasher);
            let hash = hasher.hash_one(slot_name(slots, slot));
            debug_assert!(
                self.names.find(hash, |&s| slot_name(slots, s) == slot_name(slots, slot)).is_none(),
                "two queued broadcasts named {:?}",
                slot_name(slots, slot)
            );
            self.names.insert_unique(hash, slot, |&s| hasher.hash_one(slot_name(slots, s)));
        }
        self.place(slot, key);
    }

    fn remove(&mut self, key: &Key) -> Option<Entry<B>> {
        let slot = self.unplace(key)?;
        Some(self.free_slot(slot))
    }

    /// Empties `slot` (out of the send order already) and forgets its name.
    fn free_slot(&mut self, slot: u32) -> Entry<B> {
        if self.slots[slot as usize].as_ref().is_some_and(|e| e.kind == Kind::Named) {
            let hash = self.hasher.hash_one(slot_name(&self.slots, slot));
            if let Ok(found) = self.names.find_entry(hash, |&s| s == slot) {
                found.remove();
            }
        }
        let entry = self.slots[slot as usize].take().expect("freed slots are full");
        self.queued_bytes -= entry.message.len();
        self.free.push(slot);
        entry
    }

    /// The slot of the queued named broadcast called `name`.
    fn find_name(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.names.find(hash, |&s| slot_name(&self.slots, s) == name).copied()
    }

    /// [`TransmitLimitedQueue::queue_broadcast`] as if already sent
    /// `transmits` times (Go `queueBroadcast`, which only its tests use): it
    /// goes out after fresher broadcasts, and fewer times.
    pub fn queue_with_transmits(&mut self, broadcast: B, transmits: usize) {
        self.last_id += 1;
        let message = broadcast.message();
        let key =
            Key { transmits: saturate(transmits), len: Reverse(saturate(message.len())), id: Reverse(self.last_id) };
        let kind = match broadcast.name() {
            Some(_) => Kind::Named,
            None if broadcast.is_unique() => Kind::Unique,
            None => Kind::Generic,
        };

        match kind {
            Kind::Named => {
                self.invalidate(broadcast.name().unwrap_or_default());
            }
            Kind::Unique => {}
            Kind::Generic => {
                // In send order, as Go walks its tree.
                let invalidated: Vec<Key> = self
                    .generic
                    .iter()
                    .filter(|key| {
                        let old = self.order.get(key).and_then(|&slot| self.slots[slot as usize].as_ref());
                        old.is_some_and(|old| broadcast.invalidates(&old.broadcast))
                    })
                    .copied()
                    .collect();
                for key in invalidated {
                    if let Some(old) = self.remove(&key) {
                        old.broadcast.finished();
                    }
                }
            }
        }

        self.insert(Entry { broadcast, message, key, kind });
    }

    /// Drops (and finishes) the named broadcast `name`, if queued. True if
    /// it was.
    pub fn invalidate(&mut self, name: &str) -> bool {
        let Some(slot) = self.find_name(name) else { return false };
        let key = self.slots[slot as usize].as_ref().expect("named slots are full").key;
        self.remove(&key).map(|old| old.broadcast.finished()).is_some()
    }

    /// Counts `transmits` more sends of the named broadcast `name`, if
    /// queued, as if it had gone out; it is dropped (and finished) once it
    /// reaches the limit for `num_nodes`. True if it was queued.
    pub fn add_transmits(&mut self, name: &str, transmits: usize, num_nodes: usize) -> bool {
        let Some(slot) = self.find_name(name) else { return false };
        let key = self.slots[slot as usize].as_ref().expect("named slots are full").key;
        let Some(slot) = self.unplace(&key) else { return false };
        let total = key.transmits.saturating_add(saturate(transmits));
        if total as usize >= retransmit_limit(self.retransmit_mult, num_nodes) {
            self.free_slot(slot).broadcast.finished();
        } else {
            self.place(slot, Key { transmits: total, ..key });
        }
        true
    }

    /// Takes the messages to piggyback on one packet (Go `GetBroadcasts`):
    /// each costs `overhead` bytes plus its length, and together they cost at
    /// most `limit`. `num_nodes` is the cluster size that sets the transmit
    /// limit ([`retransmit_limit`] with [`TransmitLimitedQueue::retransmit_mult`]).
    ///
    /// Walks the queue in send order and takes every message that still fits,
    /// skipping ones too large for the space left but going on with smaller
    /// ones; it stops once no byte is left beyond `overhead` (so even an empty
    /// message needs `overhead + 1` bytes free, as in Go). Each message taken
    /// counts one transmit; a broadcast is dropped and finished once its
    /// transmits reach the limit. Every broadcast is sent at least once, even
    /// when the limit is 0 (no nodes, or `retransmit_mult` 0). A broadcast is
    /// taken at most once per call.
    ///
    /// The messages are clones of the `Arc`s given by [`Broadcast::message`]:
    /// no bytes are copied.
    pub fn get_broadcasts(&mut self, overhead: usize, limit: usize, num_nodes: usize) -> Vec<Arc<[u8]>> {
        self.get_broadcasts_max(overhead, limit, num_nodes, usize::MAX)
    }

    /// [`TransmitLimitedQueue::get_broadcasts`], taking at most `max_count`
    /// messages (so that a packet to a Go peer keeps to
    /// [`MAX_COMPOUND_PARTS_FOR_GO`](crate::wire::frame::MAX_COMPOUND_PARTS_FOR_GO)
    /// parts: docs/go-behaviour.md §2).
    pub fn get_broadcasts_max(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        max_count: usize,
    ) -> Vec<Arc<[u8]>> {
        let mut to_send = Vec::new();
        self.append_broadcasts(overhead, limit, num_nodes, max_count, &mut to_send);
        to_send
    }

    /// [`TransmitLimitedQueue::get_broadcasts_max`], appending to `to_send`
    /// (`max_count` counts what this call appends): a sender that reuses
    /// one list allocates nothing per packet.
    pub fn append_broadcasts(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        max_count: usize,
        to_send: &mut Vec<Arc<[u8]>>,
    ) {
        let Some(first) = self.order.keys().next() else {
            return;
        };
        let transmit_limit = retransmit_limit(self.retransmit_mult, num_nodes);

        // Taken broadcasts wait here for their next tier: put back now, they
        // would be met again further on in this walk.
        let mut reinsert = std::mem::take(&mut self.reinsert);
        let mut used = 0usize;
        let mut taken = 0usize;
        let mut tier = first.transmits;
        while taken < max_count {
            let free = match limit.checked_sub(used).and_then(|left| left.checked_sub(overhead)) {
                Some(free) if free > 0 => free,
                _ => break,
            };
            // The first key at or after this is either the next message of
            // this tier that fits, or the first message of a later tier.
            let Some(&key) = self.order.range(Key::first_fitting(tier, free)..).next().map(|(key, _)| key) else {
                break;
            };
            if key.transmits != tier {
                tier = key.transmits;
                continue;
            }
            let Some(slot) = self.unplace(&key) else { break };
            let message = &self.slots[slot as usize].as_ref().expect("ordered slots are full").message;
            used += overhead + message.len();
            to_send.push(Arc::clone(message));
            taken += 1;
            let transmits = key.transmits.saturating_add(1);
            if transmits as usize >= transmit_limit {
                self.free_slot(slot).broadcast.finished();
            } else {
                reinsert.push((slot, Key { transmits, ..key }));
            }
        }
        for (slot, key) in reinsert.drain(..) {
            self.place(slot, key);
        }
        self.reinsert = reinsert;
    }

    /// Drops (and finishes) every queued broadcast, in send order (Go `Reset`).
    /// Ids keep counting up.
    pub fn reset(&mut self) {
        self.names.clear();
        self.generic.clear();
        self.free.clear();
        self.queued_bytes = 0;
        let mut slots = std::mem::take(&mut self.slots);
        for slot in std::mem::take(&mut self.order).into_values() {
            if let Some(entry) = slots[slot as usize].take() {
                entry.broadcast.finished();
            }
        }
    }

    /// Drops (and finishes) broadcasts until at most `max_retain` are left (Go
    /// `Prune`), taking them from the end of the send order: most transmits
    /// first, then the smallest, then the oldest. With equal transmits and
    /// sizes that keeps the `max_retain` newest.
    pub fn prune(&mut self, max_retain: usize) {
        while self.order.len() > max_retain {
            let Some(&key) = self.order.keys().next_back() else { break };
            if let Some(entry) = self.remove(&key) {
                entry.broadcast.finished();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::{HashMap, HashSet};
    use std::rc::Rc;

    /// Go's `memberlistBroadcast`: a message about a node, invalidating older
    /// ones about the same node, with a finished counter for Go's `notify`
    /// channel.
    struct NodeBroadcast {
        node: String,
        msg: Arc<[u8]>,
        notify: Option<Rc<Cell<usize>>>,
    }

    impl NodeBroadcast {
        fn new(node: &str, msg: &[u8]) -> Self {
            NodeBroadcast { node: node.to_owned(), msg: Arc::from(msg), notify: None }
        }

        fn notify(node: &str, msg: &[u8], notify: &Rc<Cell<usize>>) -> Self {
            NodeBroadcast { notify: Some(Rc::clone(notify)), ..NodeBroadcast::new(node, msg) }
        }
    }

    impl Broadcast for NodeBroadcast {
        fn message(&self) -> Arc<[u8]> {
            Arc::clone(&self.msg)
        }
        fn name(&self) -> Option<&str> {
            Some(&self.node)
        }
        fn invalidates(&self, other: &Self) -> bool {
            self.node == other.node
        }
        fn finished(self) {
            if let Some(n) = self.notify {
                n.set(n.get() + 1);
            }
        }
    }

    fn nodes<'a, B: Broadcast + 'a>(view: impl Iterator<Item = Queued<'a, B>>) -> Vec<String> {
        view.map(|q| q.broadcast.name().unwrap_or("").to_owned()).collect()
    }

    fn texts(msgs: &[Arc<[u8]>]) -> Vec<&str> {
        msgs.iter().map(|m| std::str::from_utf8(m).unwrap()).collect()
    }

    /// Ports Go `TestLimitedBroadcastLess` (queue_test.go).
    #[test]
    fn go_limited_broadcast_less() {
        let key = |transmits, len, id| Key { transmits, len: Reverse(len), id: Reverse(id) };
        let cases = [
            ("diff-transmits", key(0, 10, 100), key(1, 10, 100)),
            ("same-transmits--diff-len", key(0, 12, 100), key(0, 10, 100)),
            ("same-transmits--same-len--diff-id", key(0, 12, 100), key(0, 12, 90)),
        ];
        for (name, a, b) in cases {
            assert!(a < b, "{name}");
            let tree: BTreeSet<Key> = [b, a].into_iter().collect();
            assert_eq!(tree.first(), Some(&a), "{name}");
            assert_eq!(tree.last(), Some(&b), "{name}");
        }
    }

    /// Ports Go `TestTransmitLimited_Queue` (queue_test.go).
    #[test]
    fn go_transmit_limited_queue() {
        let mut q = TransmitLimitedQueue::new(1);
        q.queue_broadcast(NodeBroadcast::new("test", b""));
        q.queue_broadcast(NodeBroadcast::new("foo", b""));
        q.queue_broadcast(NodeBroadcast::new("bar", b""));

        assert_eq!(q.num_queued(), 3);
        assert_eq!(nodes(q.iter().rev()), ["test", "foo", "bar"]);

        // Should invalidate the previous message.
        q.queue_broadcast(NodeBroadcast::new("test", b""));

        assert_eq!(q.num_queued(), 3);
        assert_eq!(nodes(q.iter().rev()), ["foo", "bar", "test"]);
    }

    /// ringswim's storm rules: a named broadcast can be dropped, or counted
    /// as sent more times, by name; reaching the limit finishes it.
    #[test]
    fn named_broadcasts_can_be_invalidated_or_counted_as_sent() {
        let done = Rc::new(Cell::new(0));
        let mut q = TransmitLimitedQueue::new(2); // limit 2 · 1 digit = 2 at 3 nodes
        for node in ["a", "b", "c"] {
            q.queue_broadcast(NodeBroadcast::notify(node, b"x", &done));
        }
        assert!(q.invalidate("a"));
        assert!(!q.invalidate("a"), "already gone");
        assert_eq!((q.num_queued(), done.get()), (2, 1));

        assert!(q.add_transmits("b", 1, 3));
        let b = q.iter().find(|e| e.broadcast.name() == Some("b")).map(|e| e.transmits);
        assert_eq!(b, Some(1));
        assert_eq!(nodes(q.iter()), ["c", "b"], "fewer sends go first");
        assert!(q.add_transmits("b", 1, 3), "reaches the limit");
        assert_eq!((nodes(q.iter()), done.get()), (vec!["c".to_owned()], 2));
        assert!(!q.add_transmits("zz", 1, 3));
    }

    /// Ports Go `TestTransmitLimited_GetBroadcasts` (queue_test.go).
    #[test]
    fn go_transmit_limited_get_broadcasts() {
        let mut q = TransmitLimitedQueue::new(3);
        // 18 bytes per message.
        q.queue_broadcast(NodeBroadcast::new("test", b"1. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("foo", b"2. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("bar", b"3. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("baz", b"4. this is a test."));

        // 2 byte overhead per message: all 4 fit.
        let all = q.get_broadcasts(2, 80, 10);
        assert_eq!(all.len(), 4, "missing messages: {:?}", texts(&all));

        // 3 byte overhead: only 3 fit.
        let partial = q.get_broadcasts(3, 80, 10);
        assert_eq!(partial.len(), 3, "missing messages: {:?}", texts(&partial));
    }

    /// Ports Go `TestTransmitLimited_GetBroadcasts_Limit` (queue_test.go).
    ///
    /// Go also checks that its id generator goes back to zero when the queue
    /// empties; ours deliberately never goes back (module docs), so this checks
    /// that instead.
    #[test]
    fn go_transmit_limited_get_broadcasts_limit() {
        let mut q = TransmitLimitedQueue::new(1);
        assert_eq!(q.last_id, 0, "the id generator starts at zero");
        assert_eq!(retransmit_limit(q.retransmit_mult, 10), 2, "sanity check transmit limits");

        // 18 bytes per message.
        q.queue_broadcast(NodeBroadcast::new("test", b"1. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("foo", b"2. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("bar", b"3. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("baz", b"4. this is a test."));
        assert_eq!(q.last_id, 4, "we handed out 4 ids");

        // 3 byte overhead: only 3 fit, newest first.
        let partial1 = q.get_broadcasts(3, 80, 10);
        assert_eq!(texts(&partial1), ["4. this is a test.", "3. this is a test.", "2. this is a test."]);
        assert_eq!(q.last_id, 4);

        // The unsent one first, then the two newest of the sent ones.
        let partial2 = q.get_broadcasts(3, 80, 10);
        assert_eq!(texts(&partial2), ["1. this is a test.", "4. this is a test.", "3. this is a test."]);
        assert_eq!(q.last_id, 4);

        // Only two not expired.
        let partial3 = q.get_broadcasts(3, 80, 10);
        assert_eq!(texts(&partial3), ["2. this is a test.", "1. this is a test."]);
        assert!(q.is_empty());
        assert_eq!(q.last_id, 4, "the id generator does not reset on empty (Go's does)");

        // Should get nothing.
        let partial5 = q.get_broadcasts(3, 80, 10);
        assert!(partial5.is_empty(), "unexpected messages: {:?}", texts(&partial5));

        q.queue_broadcast(NodeBroadcast::new("test", b"5"));
        assert_eq!(q.iter().next().map(|b| b.id), Some(5));
    }

    /// Ports Go `TestTransmitLimited_Prune` (queue_test.go).
    #[test]
    fn go_transmit_limited_prune() {
        let mut q = TransmitLimitedQueue::new(1);
        let ch1 = Rc::new(Cell::new(0));
        let ch2 = Rc::new(Cell::new(0));

        // 18 bytes per message.
        q.queue_broadcast(NodeBroadcast::notify("test", b"1. this is a test.", &ch1));
        q.queue_broadcast(NodeBroadcast::notify("foo", b"2. this is a test.", &ch2));
        q.queue_broadcast(NodeBroadcast::new("bar", b"3. this is a test."));
        q.queue_broadcast(NodeBroadcast::new("baz", b"4. this is a test."));

        // Keep only 2.
        q.prune(2);
        assert_eq!(q.num_queued(), 2);

        // Should notify the first two.
        assert_eq!(ch1.get(), 1, "expected invalidation");
        assert_eq!(ch2.get(), 1, "expected invalidation");

        assert_eq!(nodes(q.iter().rev()), ["bar", "baz"]);
    }

    /// Ports Go `TestTransmitLimited_ordering` (queue_test.go).
    #[test]
    fn go_transmit_limited_ordering() {
        let mut q = TransmitLimitedQueue::new(1);
        for (name, transmits) in [("node0", 0), ("node1", 10), ("node2", 3), ("node3", 4), ("node4", 7)] {
            q.queue_with_transmits(NodeBroadcast::new(name, name.as_bytes()), transmits);
        }
        let dump: Vec<(String, usize)> = q.iter().rev().map(|b| (b.broadcast.node.clone(), b.transmits)).collect();
        let transmits: Vec<usize> = dump.iter().map(|(_, t)| *t).collect();
        assert_eq!(transmits, [10, 7, 4, 3, 0], "bad order {dump:?}");
    }

    /// Ports Go `TestMemberlistBroadcast_Invalidates` (broadcast_test.go).
    #[test]
    fn go_memberlist_broadcast_invalidates() {
        let m1 = NodeBroadcast::new("test", b"");
        let m2 = NodeBroadcast::new("foo", b"");
        assert!(!m1.invalidates(&m2) && !m2.invalidates(&m1), "unexpected invalidation");
        assert!(m1.invalidates(&m1), "expected invalidation");
    }

    /// Ports Go `TestMemberlistBroadcast_Message` (broadcast_test.go).
    #[test]
    fn go_memberlist_broadcast_message() {
        let m1 = NodeBroadcast::new("test", b"test");
        assert_eq!(&*m1.message(), b"test");
    }

    /// Ports Go `TestRetransmitLimit` (util_test.go).
    #[test]
    fn go_retransmit_limit() {
        assert_eq!(retransmit_limit(3, 0), 0);
        assert_eq!(retransmit_limit(3, 1), 3);
        assert_eq!(retransmit_limit(3, 99), 6);
    }

    /// Go's float formula at the boundaries (values from running Go's
    /// `retransmitLimit`), and no overflow.
    #[test]
    fn retransmit_limit_matches_go_at_powers_of_ten() {
        let mut p = 1usize;
        for digits in 1..=15 {
            assert_eq!(retransmit_limit(1, p - 1), digits - 1, "n = {}", p - 1);
            assert_eq!(retransmit_limit(1, p), digits, "n = {p}");
            assert_eq!(retransmit_limit(2, p + 1), 2 * digits, "n = {}", p + 1);
            p *= 10;
        }
        assert_eq!(retransmit_limit(4, 128), 12);
        assert_eq!(retransmit_limit(0, 1000), 0);
        assert_eq!(retransmit_limit(usize::MAX, 10), usize::MAX);
    }

    /// A zero transmit limit (no nodes, or multiplier 0) sends each broadcast
    /// exactly once, as Go does (checked against Go 0.2.2).
    #[test]
    fn zero_transmit_limit_sends_once() {
        let done = Rc::new(Cell::new(0));
        for (mult, nodes) in [(3, 0), (0, 10)] {
            let mut q = TransmitLimitedQueue::new(mult);
            q.queue_broadcast(NodeBroadcast::notify("x", b"xxxx", &done));
            assert_eq!(texts(&q.get_broadcasts(0, 100, nodes)), ["xxxx"]);
            assert!(q.is_empty());
            assert!(q.get_broadcasts(0, 100, nodes).is_empty());
        }
        assert_eq!(done.get(), 2);
    }

    /// Go stops once `limit - used - overhead <= 0`, so an empty message needs
    /// one byte more than its overhead (checked against Go 0.2.2); overhead
    /// larger than the limit sends nothing.
    #[test]
    fn empty_message_needs_a_free_byte() {
        let mut q = TransmitLimitedQueue::new(3);
        q.queue_broadcast(NodeBroadcast::new("z", b""));
        assert!(q.get_broadcasts(3, 3, 10).is_empty());
        assert!(q.get_broadcasts(5, 3, 10).is_empty());
        assert_eq!(q.get_broadcasts(3, 4, 10).len(), 1);
    }

    /// Within a tier the largest message that fits is taken, too-large ones are
    /// skipped and smaller ones still taken; then the next tier is walked.
    #[test]
    fn get_skips_what_does_not_fit_and_goes_on() {
        let mut q = TransmitLimitedQueue::new(3);
        q.queue_with_transmits(NodeBroadcast::new("a", b"aaaaaaaaaa"), 0); // 10
        q.queue_with_transmits(NodeBroadcast::new("b", b"bbbbbb"), 0); // 6
        q.queue_with_transmits(NodeBroadcast::new("c", b"ccccc"), 0); // 5
        q.queue_with_transmits(NodeBroadcast::new("d", b"dd"), 1); // 2
        q.queue_with_transmits(NodeBroadcast::new("e", b"e"), 5); // 1
        // 9 bytes: a skipped, b (6), c does not fit in 3, d (2), e (1).
        assert_eq!(texts(&q.get_broadcasts(0, 9, 10)), ["bbbbbb", "dd", "e"]);
        // Sent ones moved down a tier, e dropped at the limit of 6.
        let view: Vec<(String, usize)> = q.iter().map(|b| (b.broadcast.node.clone(), b.transmits)).collect();
        assert_eq!(view, [("a".into(), 0), ("c".into(), 0), ("b".into(), 1), ("d".into(), 2)]);
        // Each taken once per call even with room for everything.
        assert_eq!(texts(&q.get_broadcasts(0, 1000, 10)), ["aaaaaaaaaa", "ccccc", "bbbbbb", "dd"]);
    }

    /// A broadcast of each kind, for the invalidation rules.
    #[derive(Debug)]
    enum Kinded {
        Named {
            name: String,
            msg: Arc<[u8]>,
            done: Rc<RefCell<Vec<u64>>>,
            tag: u64,
        },
        Unique {
            msg: Arc<[u8]>,
            done: Rc<RefCell<Vec<u64>>>,
            tag: u64,
        },
        /// Invalidates queued generic broadcasts of the same topic.
        Generic {
            topic: u8,
            msg: Arc<[u8]>,
            done: Rc<RefCell<Vec<u64>>>,
            tag: u64,
        },
    }

    impl Kinded {
        fn tag(&self) -> u64 {
            match self {
                Kinded::Named { tag, .. } | Kinded::Unique { tag, .. } | Kinded::Generic { tag, .. } => *tag,
            }
        }
    }

    impl Broadcast for Kinded {
        fn message(&self) -> Arc<[u8]> {
            match self {
                Kinded::Named { msg, .. } | Kinded::Unique { msg, .. } | Kinded::Generic { msg, .. } => Arc::clone(msg),
            }
        }
        fn name(&self) -> Option<&str> {
            match self {
                Kinded::Named { name, .. } => Some(name),
                _ => None,
            }
        }
        fn is_unique(&self) -> bool {
            matches!(self, Kinded::Unique { .. })
        }
        fn invalidates(&self, other: &Self) -> bool {
            match (self, other) {
                (Kinded::Generic { topic: a, .. }, Kinded::Generic { topic: b, .. }) => a == b,
                // Never asked: only generic pairs are.
                _ => panic!("invalidates asked about a non-generic pair"),
            }
        }
        fn finished(self) {
            match self {
                Kinded::Named { done, tag, .. }
                | Kinded::Unique { done, tag, .. }
                | Kinded::Generic { done, tag, .. } => done.borrow_mut().push(tag),
            }
        }
    }

    /// Builds [`Kinded`] broadcasts, and tells which one a message came from.
    struct Factory {
        done: Rc<RefCell<Vec<u64>>>,
        next_tag: u64,
        /// Tag of each message, by the address of its bytes: messages may be
        /// empty, and every `Arc` of a live message has its own address.
        by_addr: HashMap<usize, u64>,
    }

    impl Factory {
        fn new() -> Self {
            Factory { done: Rc::default(), next_tag: 0, by_addr: HashMap::new() }
        }
        fn msg(&mut self, len: usize) -> (u64, Arc<[u8]>) {
            self.next_tag += 1;
            let tag = self.next_tag;
            let msg: Arc<[u8]> = tag.to_be_bytes().iter().copied().cycle().take(len).collect();
            self.by_addr.insert(Arc::as_ptr(&msg).cast::<u8>().addr(), tag);
            (tag, msg)
        }
        fn tag_of(&self, msg: &Arc<[u8]>) -> u64 {
            self.by_addr[&Arc::as_ptr(msg).cast::<u8>().addr()]
        }
        fn tags_of(&self, msgs: &[Arc<[u8]>]) -> Vec<u64> {
            msgs.iter().map(|m| self.tag_of(m)).collect()
        }
        fn named(&mut self, name: &str, len: usize) -> Kinded {
            let (tag, msg) = self.msg(len);
            Kinded::Named { name: name.into(), msg, done: Rc::clone(&self.done), tag }
        }
        fn unique(&mut self, len: usize) -> Kinded {
            let (tag, msg) = self.msg(len);
            Kinded::Unique { msg, done: Rc::clone(&self.done), tag }
        }
        fn generic(&mut self, topic: u8, len: usize) -> Kinded {
            let (tag, msg) = self.msg(len);
            Kinded::Generic { topic, msg, done: Rc::clone(&self.done), tag }
        }
        fn finished(&self) -> Vec<u64> {
            std::mem::take(&mut self.done.borrow_mut())
        }
    }

    fn tags(q: &TransmitLimitedQueue<Kinded>) -> Vec<u64> {
        q.iter().map(|b| b.broadcast.tag()).collect()
    }

    #[test]
    fn invalidation_rules_by_kind() {
        let mut f = Factory::new();
        let mut q = TransmitLimitedQueue::new(3);
        let n1 = f.named("n", 10); // 1
        q.queue_broadcast(n1);
        q.queue_broadcast(f.unique(10)); // 2
        q.queue_broadcast(f.generic(7, 10)); // 3
        q.queue_broadcast(f.generic(8, 10)); // 4
        q.queue_broadcast(f.generic(7, 10)); // 5
        q.queue_broadcast(f.named("m", 10)); // 6
        // The second topic-7 generic dropped the first, and nothing else.
        assert_eq!(f.finished(), [3]);
        assert_eq!(tags(&q), [6, 5, 4, 2, 1]);

        // A named one replaces only its namesake, generic ones of a topic all
        // queued ones of the topic but never named or unique ones.
        q.queue_broadcast(f.named("n", 10)); // 7
        assert_eq!(f.finished(), [1]);
        q.queue_broadcast(f.unique(10)); // 8
        q.queue_broadcast(f.generic(8, 10)); // 9
        assert_eq!(f.finished(), [4]);
        assert_eq!(tags(&q), [9, 8, 7, 6, 5, 2]);

        // Once sent, names still find the broadcasts in their new tier.
        assert_eq!(q.get_broadcasts(0, 60, 10).len(), 6);
        assert!(q.iter().all(|b| b.transmits == 1));
        q.queue_broadcast(f.named("m", 10)); // 10
        q.queue_broadcast(f.named("n", 10)); // 11
        assert_eq!(f.finished(), [6, 7]);
        assert_eq!(tags(&q), [11, 10, 9, 8, 5, 2]);
        q.check();

        q.reset();
        assert_eq!(f.finished(), [11, 10, 9, 8, 5, 2]);
        assert!(q.is_empty());
        q.check();
    }

    /// Go's overwrite (docs/go-behaviour.md §3), reproduced against Go 0.2.2: X is sent
    /// once and the queue empties mid-call, so Go's id counter goes back to 0;
    /// Y, queued next, gets X's id; once Y is sent it has X's transmits, size
    /// and id, and Go's `ReplaceOrInsert` overwrites X, which is never sent
    /// again nor finished. Here both stay queued and both finish.
    #[test]
    fn queued_broadcasts_are_never_overwritten() {
        let mut f = Factory::new();
        let mut q = TransmitLimitedQueue::new(1); // limit 2 at 10 nodes
        q.queue_broadcast(f.unique(8)); // X
        assert_eq!(q.get_broadcasts(0, 100, 10).len(), 1);
        q.queue_broadcast(f.unique(8)); // Y
        assert_eq!(q.num_queued(), 2);
        let sent = q.get_broadcasts(0, 8, 10); // room for one: Y
        assert_eq!(f.tags_of(&sent), [2]);
        assert_eq!(q.num_queued(), 2, "Go is left with 1 here");
        assert_eq!(q.iter().map(|b| (b.broadcast.tag(), b.transmits)).collect::<Vec<_>>(), [(2, 1), (1, 1)]);
        let sent = q.get_broadcasts(0, 100, 10);
        assert_eq!(f.tags_of(&sent), [2, 1]);
        assert_eq!(f.finished(), [2, 1]);
        assert!(q.is_empty());
    }

    /// Many broadcasts, drained in small packets while more keep arriving, the
    /// queue often emptying in the middle of a call: every one is sent exactly
    /// its limit and finished once.
    #[test]
    fn nothing_is_lost_when_the_queue_empties_and_refills() {
        let mut f = Factory::new();
        let mut q = TransmitLimitedQueue::new(2);
        let limit = retransmit_limit(2, 50); // 4
        let mut sent: HashMap<u64, usize> = HashMap::new();
        // Calls that took every queued broadcast and put some back: where Go
        // resets its ids while they wait to be put back.
        let mut emptied = 0;
        for round in 0..2000usize {
            if round % 4 == 0 {
                q.queue_broadcast(f.unique(8 + round % 5));
                q.queue_broadcast(f.unique(8 + round % 7));
            }
            let queued = q.num_queued();
            let out = q.get_broadcasts(2, 12 + round % 40, 50);
            emptied += usize::from(out.len() == queued && !q.is_empty());
            for msg in out {
                *sent.entry(f.tag_of(&msg)).or_default() += 1;
            }
        }
        while !q.is_empty() {
            for msg in q.get_broadcasts(2, 1400, 50) {
                *sent.entry(f.tag_of(&msg)).or_default() += 1;
            }
        }
        assert!(emptied > 100, "the queue emptied only {emptied} times");
        let finished = f.finished();
        assert_eq!(finished.len() as u64, f.next_tag);
        assert_eq!(finished.iter().collect::<HashSet<_>>().len(), finished.len(), "finished twice");
        assert_eq!(sent.len() as u64, f.next_tag, "some never sent");
        assert!(sent.values().all(|&n| n == limit), "not all sent {limit} times");
    }

    impl<B: Broadcast> TransmitLimitedQueue<B> {
        /// The structures agree.
        fn check(&self) {
            let mut named = 0;
            let mut generic = 0;
            for (key, &slot) in &self.order {
                let entry = self.slots[slot as usize].as_ref().unwrap();
                assert_eq!(entry.key, *key);
                assert_eq!(key.len.0 as usize, entry.message.len());
                assert!(key.id.0 <= self.last_id);
                match entry.kind {
                    Kind::Named => {
                        named += 1;
                        assert_eq!(self.find_name(entry.broadcast.name().unwrap()), Some(slot));
                    }
                    Kind::Unique => {}
                    Kind::Generic => {
                        generic += 1;
                        assert!(self.generic.contains(key));
                    }
                }
            }
            assert_eq!(self.names.len(), named);
            assert_eq!(self.generic.len(), generic);
            assert_eq!(self.slots.iter().filter(|s| s.is_some()).count(), self.order.len());
            assert_eq!(self.free.len() + self.order.len(), self.slots.len());
        }
    }

    /// A tiny deterministic PRNG (xorshift64*), so the randomized test replays.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Reference model: the queue as a plain list, sent by one pass over it in
    /// sorted order taking whatever still fits — a different formulation of
    /// Go's tier-by-tier walk that must pick the same messages.
    #[derive(Clone, Debug)]
    struct ModelEntry {
        transmits: usize,
        len: usize,
        id: u64,
        tag: u64,
        name: Option<String>,
        topic: Option<u8>, // generic
    }

    fn model_order(model: &mut [ModelEntry]) {
        model.sort_by_key(|e| (e.transmits, Reverse(e.len), Reverse(e.id)));
    }

    /// Random queue/get/prune/reset sequences against the model: same order,
    /// same messages out, the byte limit never exceeded, each broadcast
    /// finished once, and sent exactly its limit unless invalidated, pruned or
    /// reset.
    #[test]
    fn randomized_against_model() {
        for seed in 1..=200u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mult = rng.below(4) as usize;
            let num_nodes = [0, 1, 5, 10, 99, 1000][rng.below(6) as usize];
            let limit_tx = retransmit_limit(mult, num_nodes);
            let mut f = Factory::new();
            let mut q = TransmitLimitedQueue::new(mult);
            let mut model: Vec<ModelEntry> = Vec::new();
            let mut id = 0u64;
            let mut sent: HashMap<u64, usize> = HashMap::new();
            // Tags dropped before their limit: invalidated, pruned, reset.
            let mut cut_short: HashSet<u64> = HashSet::new();
            let mut finished: Vec<u64> = Vec::new();

            for step in 0..400 {
                let op = rng.below(100);
                if op < 50 {
                    let len = rng.below(40) as usize;
                    let b = match rng.below(3) {
                        0 => f.named(&format!("node{}", rng.below(8)), len),
                        1 => f.unique(len),
                        _ => f.generic(rng.below(4) as u8, len),
                    };
                    id += 1;
                    let entry = ModelEntry {
                        transmits: 0,
                        len: b.message().len(),
                        id,
                        tag: b.tag(),
                        name: b.name().map(str::to_owned),
                        topic: match &b {
                            Kinded::Generic { topic, .. } => Some(*topic),
                            _ => None,
                        },
                    };
                    model.retain(|old| {
                        let gone = match (&entry.name, entry.topic) {
                            (Some(name), _) => old.name.as_ref() == Some(name),
                            (None, Some(topic)) => old.topic == Some(topic),
                            (None, None) => false,
                        };
                        if gone {
                            cut_short.insert(old.tag);
                        }
                        !gone
                    });
                    model.push(entry);
                    q.queue_broadcast(b);
                } else if op < 90 {
                    let overhead = rng.below(4) as usize;
                    let limit = rng.below(120) as usize;
                    let out = q.get_broadcasts(overhead, limit, num_nodes);

                    model_order(&mut model);
                    let mut used = 0;
                    let mut expect = Vec::new();
                    for e in &mut model {
                        if limit > used + overhead && e.len <= limit - used - overhead {
                            used += overhead + e.len;
                            expect.push(e.tag);
                            e.transmits += 1;
                        }
                    }
                    model.retain(|e| !(expect.contains(&e.tag) && e.transmits >= limit_tx));

                    let got = f.tags_of(&out);
                    assert_eq!(got, expect, "seed {seed} step {step}");
                    let bytes: usize = out.iter().map(|m| overhead + m.len()).sum();
                    assert!(bytes <= limit, "seed {seed} step {step}: {bytes} > {limit}");
                    for tag in got {
                        *sent.entry(tag).or_default() += 1;
                    }
                } else if op < 97 {
                    let keep = rng.below(12) as usize;
                    model_order(&mut model);
                    for e in model.drain(keep.min(model.len())..) {
                        cut_short.insert(e.tag);
                    }
                    q.prune(keep);
                } else {
                    cut_short.extend(model.drain(..).map(|e| e.tag));
                    q.reset();
                }

                q.check();
                model_order(&mut model);
                let view: Vec<(usize, u64, u64)> = q.iter().map(|b| (b.transmits, b.id, b.broadcast.tag())).collect();
                let want: Vec<(usize, u64, u64)> = model.iter().map(|e| (e.transmits, e.id, e.tag)).collect();
                assert_eq!(view, want, "seed {seed} step {step}");
                finished.extend(f.finished());
            }

            // Drain what is left; nothing may stay queued forever.
            while !q.is_empty() {
                let out = q.get_broadcasts(0, 1400, num_nodes);
                assert!(!out.is_empty(), "seed {seed}: stuck");
                for m in out {
                    *sent.entry(f.tag_of(&m)).or_default() += 1;
                }
            }
            finished.extend(f.finished());

            assert_eq!(finished.len() as u64, f.next_tag, "seed {seed}: not every broadcast finished");
            let unique: HashSet<u64> = finished.iter().copied().collect();
            assert_eq!(unique.len(), finished.len(), "seed {seed}: finished twice");
            for tag in 1..=f.next_tag {
                let n = sent.get(&tag).copied().unwrap_or(0);
                if cut_short.contains(&tag) {
                    assert!(n < limit_tx.max(1), "seed {seed}: tag {tag} sent {n} times then cut short");
                } else {
                    assert_eq!(n, limit_tx.max(1), "seed {seed}: tag {tag}");
                }
            }
        }
    }
}
