//! The member table's pieces (memberlist `state.go`'s `nodeState`, the
//! `memberlistBroadcast` of `broadcast.go`, and `verifyProtocol`): what the
//! [`Core`](super::Core) keeps about each member and how it gossips news about
//! them. Pure data and pure functions.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;

use super::Time;
use super::queue::Broadcast;
use crate::delegate::{Node, NodeState};
use crate::name::Name;
use crate::wire::message::PushNodeState;

/// What the core knows about one member (Go `nodeState`): the [`Node`] (its
/// [`Node::state`] is the member's state), the last incarnation heard and when
/// the state last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Name, address, meta, versions and state.
    pub node: Node,
    /// Last known incarnation number.
    pub incarnation: u32,
    /// When [`Node::state`] last changed (Go `StateChange`). A member first
    /// heard of has [`Time::ZERO`] until its state is set.
    pub state_change: Time,
}

impl Member {
    /// The member's state.
    pub fn state(&self) -> NodeState {
        self.node.state
    }

    /// Dead or left (Go `DeadOrLeft`).
    pub fn is_dead_or_left(&self) -> bool {
        matches!(self.node.state, NodeState::Dead | NodeState::Left)
    }

    /// Hands `f` the member as Go's `sendLocalState` lists it, borrowed from
    /// the table (the address bytes on the stack): nothing is allocated, so
    /// a push/pull of thousands of members is written without copies.
    pub fn with_push_state<T>(&self, f: impl FnOnce(PushNodeState<'_>) -> T) -> T {
        let n = &self.node;
        let (v4, v6);
        let addr: &[u8] = match n.addr {
            IpAddr::V4(ip) => {
                v4 = ip.octets();
                &v4
            }
            IpAddr::V6(ip) => {
                v6 = ip.octets();
                &v6
            }
        };
        let vsn = n.vsn();
        f(PushNodeState {
            name: &n.name,
            addr,
            port: n.port,
            meta: &n.meta,
            incarnation: self.incarnation,
            state: n.state.into(),
            vsn: &vsn,
        })
    }
}

/// Name → position in the member table (Go `nodeMap`). It holds positions
/// only and compares names in the table itself, so each name is stored once:
/// in a large cluster a second copy of every name in every member's table was
/// a good part of the memory (one `String` header and one allocation per
/// member per member).
///
/// Looked up, never iterated: the randomly seeded hasher cannot make
/// behaviour vary between runs.
#[derive(Debug, Default)]
pub(crate) struct MemberIndex {
    /// Positions as `u32` (half the size of `usize`: there is one per
    /// member per member).
    positions: HashTable<u32>,
    hasher: RandomState,
}

/// `pos` as stored in the index.
fn slot(pos: usize) -> u32 {
    u32::try_from(pos).expect("fewer than 2^32 members")
}

impl MemberIndex {
    /// Hashes the name's bytes: an inline [`Name`](crate::name::Name) gives
    /// them without re-checking UTF-8.
    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// Number of members indexed.
    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }

    /// Position of the member called `name` in `members`.
    pub(crate) fn get(&self, members: &[Member], name: &str) -> Option<usize> {
        let name = name.as_bytes();
        self.positions.find(self.hash(name), |&i| members[i as usize].node.name.as_bytes() == name).map(|&i| i as usize)
    }

    /// Indexes `members[pos]`, which must not be indexed yet. Every other
    /// indexed position must be up to date (a resize rehashes them).
    pub(crate) fn insert(&mut self, members: &[Member], pos: usize) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(members[pos].node.name.as_bytes());
        self.positions.insert_unique(hash, slot(pos), |&i| hasher.hash_one(members[i as usize].node.name.as_bytes()));
    }

    /// The member indexed at `from` now sits at `to` (`members` already
    /// moved): found by its name's hash and its old position, which is
    /// unique.
    pub(crate) fn moved(&mut self, members: &[Member], from: usize, to: usize) {
        let hash = self.hash(members[to].node.name.as_bytes());
        let from = slot(from);
        if let Some(pos) = self.positions.find_mut(hash, |&i| i == from) {
            *pos = slot(to);
        }
    }

    /// Indexes every member of `members` afresh.
    pub(crate) fn rebuild(&mut self, members: &[Member]) {
        self.positions.clear();
        for pos in 0..members.len() {
            self.insert(members, pos);
        }
    }
}

/// One member as a push/pull exchange sends it (Go `pushNodeState`), owned
/// and, for the usual member (a name up to 22 bytes, no meta), without a heap
/// allocation; [`PushState::as_wire`] borrows it as the message field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushState {
    /// Member name.
    pub name: Name,
    /// Address bytes: the first `addr_len` (4 or 16).
    addr: [u8; 16],
    addr_len: u8,
    /// Port.
    pub port: u16,
    /// Meta.
    pub meta: Vec<u8>,
    /// Incarnation.
    pub incarnation: u32,
    /// State.
    pub state: NodeState,
    /// The six version bytes.
    pub vsn: [u8; 6],
}

impl PushState {
    /// `member` as Go's `sendLocalState` lists it.
    pub fn from_member(member: &Member) -> PushState {
        // The wire form is `Member::with_push_state`'s; only the address
        // bytes need a home of their own.
        member.with_push_state(|s| {
            let mut addr = [0; 16];
            addr[..s.addr.len()].copy_from_slice(s.addr);
            PushState {
                name: member.node.name.clone(),
                addr,
                addr_len: s.addr.len() as u8,
                port: s.port,
                meta: s.meta.to_vec(),
                incarnation: s.incarnation,
                state: member.node.state,
                vsn: member.node.vsn(),
            }
        })
    }

    /// The address as the wire carries it (4 or 16 bytes).
    pub fn addr(&self) -> &[u8] {
        &self.addr[..usize::from(self.addr_len)]
    }

    /// The wire form, borrowing `self`.
    pub fn as_wire(&self) -> PushNodeState<'_> {
        PushNodeState {
            name: &self.name,
            addr: self.addr(),
            port: self.port,
            meta: &self.meta,
            incarnation: self.incarnation,
            state: self.state.into(),
            vsn: &self.vsn,
        }
    }
}

/// The IP address in an alive message or push/pull entry: 4 bytes (IPv4) or
/// 16 bytes (IPv6, IPv4-mapped included, as Go's `net.IP` To16 form). Any
/// other length is not an address (Go keeps the bytes and fails later when it
/// dials them); the core ignores such messages.
pub fn ip_from_wire(addr: &[u8]) -> Option<IpAddr> {
    match addr.len() {
        4 => {
            let b: [u8; 4] = addr.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        16 => {
            let b: [u8; 16] = addr.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// `ip` as the wire carries it: 4 bytes for IPv4, 16 for IPv6.
pub fn ip_to_wire(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Sets the six version bytes of `node` from a `Vsn` field, if it holds all
/// six (Go indexes all six whenever it is non-empty and panics on a short one;
/// here a short one leaves the versions alone).
/// Whether `vsn` is a version array a member can have announced (Go's
/// `BuildVsnArray`): exactly 6 bytes `[pmin, pmax, pcur, dmin, dmax, dcur]`
/// with `1 <= pmin <= pcur <= pmax` and `dmin <= dcur <= dmax`.
///
/// Go stores whatever an alive carries: an empty `Vsn` (or a 2-byte one)
/// becomes versions 0, and from then on every join and push/pull with that
/// node fails `verifyProtocol` ("protocol version (0) is incompatible"),
/// cluster-wide while the entry is gossiped (hashicorp/memberlist #180,
/// Consul #3217). ringswim refuses such an alive and skips such an entry.
pub fn vsn_well_formed(vsn: &[u8]) -> bool {
    let &[pmin, pmax, pcur, dmin, dmax, dcur] = vsn else { return false };
    pmin >= 1 && pmin <= pcur && pcur <= pmax && dmin <= dcur && dcur <= dmax
}

pub(crate) fn set_vsn(node: &mut Node, vsn: &[u8]) -> bool {
    let Some(v) = vsn.get(..6) else { return false };
    [node.pmin, node.pmax, node.pcur, node.dmin, node.dmax, node.dcur] = [v[0], v[1], v[2], v[3], v[4], v[5]];
    true
}

/// An alive, suspect or dead message about one member, queued for gossip (Go
/// `memberlistBroadcast`): named after the member, so newer news about a
/// member replaces older news still queued.
#[derive(Debug)]
pub struct NodeBroadcast {
    message: Arc<[u8]>,
    name: BroadcastName,
    /// Set when the queue lets go of the broadcast (Go's `notify` channel).
    notify: Option<Arc<AtomicBool>>,
}

/// Where a [`NodeBroadcast`]'s name is kept. The encoded message carries the
/// member's name verbatim, so it is normally read from there: every member
/// queues news about every other one during a mass join, and a separate copy
/// of each name was an allocation per queued message.
#[derive(Debug)]
enum BroadcastName {
    /// `message[start..start + len]`.
    InMessage { start: u32, len: u32 },
    /// A message that does not contain the name (not one the core builds).
    Own(Box<str>),
}

impl NodeBroadcast {
    /// A broadcast about `name` carrying the encoded `message`; `notify` is
    /// set once it has been sent its full count or replaced.
    pub fn new(name: &str, message: Vec<u8>, notify: Option<Arc<AtomicBool>>) -> NodeBroadcast {
        let needle = name.as_bytes();
        // Any occurrence will do: it is the same bytes. (Checking the first
        // byte before the whole window keeps this off the profile.)
        let start = match needle.first() {
            None => Some(0),
            Some(&first) => message.windows(needle.len()).position(|w| w[0] == first && w == needle),
        };
        let name = match start.and_then(|s| Some((u32::try_from(s).ok()?, u32::try_from(needle.len()).ok()?))) {
            Some((start, len)) => BroadcastName::InMessage { start, len },
            None => BroadcastName::Own(name.into()),
        };
        NodeBroadcast { message: Arc::from(message), name, notify }
    }
}

impl Broadcast for NodeBroadcast {
    fn message(&self) -> Arc<[u8]> {
        Arc::clone(&self.message)
    }

    fn name(&self) -> Option<&str> {
        match &self.name {
            BroadcastName::InMessage { start, len } => {
                let (start, len) = (*start as usize, *len as usize);
                // Copied from a `&str`, so valid UTF-8.
                Some(std::str::from_utf8(&self.message[start..start + len]).unwrap_or_default())
            }
            BroadcastName::Own(name) => Some(name),
        }
    }

    fn finished(self) {
        if let Some(notify) = self.notify {
            notify.store(true, Ordering::Release);
        }
    }
}

/// Why a push/pull peer's state cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// A member speaks a memberlist protocol version outside what every alive
    /// member understands.
    #[error("Node '{node}' protocol version ({version}) is incompatible: [{min}, {max}]")]
    Protocol {
        /// The member.
        node: String,
        /// Its current protocol version.
        version: u8,
        /// Largest minimum understood.
        min: u8,
        /// Smallest maximum understood.
        max: u8,
    },
    /// Same for the delegate protocol.
    #[error("Node '{node}' delegate protocol version ({version}) is incompatible: [{min}, {max}]")]
    Delegate {
        /// The member.
        node: String,
        /// Its current delegate protocol version.
        version: u8,
        /// Largest minimum understood.
        min: u8,
        /// Smallest maximum understood.
        max: u8,
    },
}

/// Go `verifyProtocol`: checks that every member, local or remote, speaks
/// versions inside the range every *alive* member understands.
///
/// The range (`[max pmin, min pmax]`, and the same for the delegate versions)
/// comes from the alive members on both sides; then *every* member is checked
/// against it, whatever its state, remote ones first, as Go does. A remote
/// entry without versions counts as all zeros and does not narrow the range.
/// Go panics on a `Vsn` of 1 to 5 bytes; here it counts as missing.
/// The core's `merge_remote_state` leaves out
/// entries whose versions are not [`vsn_well_formed`] before calling it.
pub fn verify_protocol<'a>(
    local: impl Iterator<Item = &'a Node> + Clone,
    remote: &[PushNodeState<'_>],
) -> Result<(), VersionError> {
    let (mut maxpmin, mut minpmax, mut maxdmin, mut mindmax) = (0u8, u8::MAX, 0u8, u8::MAX);
    let alive = NodeState::Alive.to_wire() as i64;
    for r in remote.iter().filter(|r| r.state == alive) {
        let Some(v) = r.vsn.get(..6) else { continue };
        maxpmin = maxpmin.max(v[0]);
        minpmax = minpmax.min(v[1]);
        maxdmin = maxdmin.max(v[3]);
        mindmax = mindmax.min(v[4]);
    }
    for n in local.clone().filter(|n| n.state == NodeState::Alive) {
        maxpmin = maxpmin.max(n.pmin);
        minpmax = minpmax.min(n.pmax);
        maxdmin = maxdmin.max(n.dmin);
        mindmax = mindmax.min(n.dmax);
    }
    let check = |name: &str, pcur: u8, dcur: u8| {
        if pcur < maxpmin || pcur > minpmax {
            return Err(VersionError::Protocol { node: name.to_owned(), version: pcur, min: maxpmin, max: minpmax });
        }
        if dcur < maxdmin || dcur > mindmax {
            return Err(VersionError::Delegate { node: name.to_owned(), version: dcur, min: maxdmin, max: mindmax });
        }
        Ok(())
    };
    for r in remote {
        let (pcur, dcur) = r.vsn.get(..6).map_or((0, 0), |v| (v[2], v[5]));
        check(r.name, pcur, dcur)?;
    }
    for n in local {
        check(&n.name, n.pcur, n.dcur)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: [u8; 6]) -> Node {
        let mut n = Node::new("", IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        set_vsn(&mut n, &v);
        n
    }

    fn check(a: &[[u8; 6]], b: &[[u8; 6]], expect: bool) {
        let local: Vec<Node> = a.iter().map(|v| node(*v)).collect();
        let names: Vec<String> = (0..b.len()).map(|i| format!("node {i}")).collect();
        let remote: Vec<PushNodeState<'_>> =
            b.iter().zip(&names).map(|(v, name)| PushNodeState { name, vsn: v, ..Default::default() }).collect();
        let got = verify_protocol(local.iter(), &remote);
        assert_eq!(got.is_ok(), expect, "A: {a:?} B: {b:?} got {got:?}");
    }

    /// Go `TestVerifyProtocol`.
    #[test]
    fn go_verify_protocol() {
        type Case = (&'static [[u8; 3]], &'static [[u8; 3]], bool);
        let cases: [Case; 5] = [
            (&[[0, 0, 0]], &[[0, 0, 0]], true),
            (&[[0, 0, 0]], &[[0, 1, 0]], true),
            (&[[0, 0, 0]], &[[1, 1, 1]], false),
            (&[[0, 1, 0], [0, 2, 1]], &[[1, 3, 1]], false),
            (&[[0, 3, 2], [0, 2, 0]], &[[0, 2, 1], [0, 5, 0]], true),
        ];
        let core = |v: &[[u8; 3]]| v.iter().map(|n| [n[0], n[1], n[2], 0, 0, 0]).collect::<Vec<_>>();
        let app = |v: &[[u8; 3]]| v.iter().map(|n| [0, 0, 0, n[0], n[1], n[2]]).collect::<Vec<_>>();
        for (a, b, expect) in cases {
            check(&core(a), &core(b), expect);
            check(&core(b), &core(a), expect);
            check(&app(a), &app(b), expect);
            check(&app(b), &app(a), expect);
        }
    }

    #[test]
    fn short_vsn_counts_as_missing() {
        let remote = [PushNodeState { name: "x", vsn: &[1, 2, 3], ..Default::default() }];
        let local = [node([0, 0, 0, 0, 0, 0])];
        assert_eq!(verify_protocol(local.iter(), &remote), Ok(()));
    }

    #[test]
    fn broadcast_names() {
        let named = |name: &str, msg: &[u8]| NodeBroadcast::new(name, msg.to_vec(), None).name().map(str::to_owned);
        assert_eq!(named("node-7", b"\x02..node-7.."), Some("node-7".to_owned()));
        assert_eq!(named("node-7", b"other"), Some("node-7".to_owned()));
        assert_eq!(named("", b"abc"), Some(String::new()));
    }

    #[test]
    fn wire_ips() {
        assert_eq!(ip_from_wire(&[127, 0, 0, 1]), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(ip_from_wire(&[1, 2, 3]), None);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(ip_from_wire(&ip_to_wire(v6)), Some(v6));
    }
}
