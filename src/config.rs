//! Go memberlist 0.2.2's `Config`, with Go's defaults, plus the memberlist
//! 0.5 label settings: every field ringswim acts on, and for the others
//! why they are absent (the table below).
//!
//! Start from [`Config::default_lan`], [`Config::default_wan`] or
//! [`Config::default_local`] (Go's `DefaultLANConfig`, `DefaultWANConfig`,
//! `DefaultLocalConfig`; the values are checked against Go's by
//! `tests/config_defaults.rs`), adjust with the `with_*` setters or the public
//! fields. [`Core::new`](crate::swim::Core::new) refuses a config that
//! [`Config::validate`] refuses.
//!
//! Differences from Go in representation:
//! - Go strings that hold addresses are [`IpAddr`]s; Go's empty
//!   `AdvertiseAddr` ("pick one") is `None`.
//! - Go `int` counts are `usize`, ports are `u16`; negative values cannot be
//!   expressed.
//! - Go's nil slices, pointers and interfaces are `Option`s.
//! - Go mutates the `Config` it is given (installs `SecretKey` into the
//!   `Keyring`, fills in a dynamic port); ringswim never does:
//!   [`Config::effective_keyring`] computes the keyring Go would end up with,
//!   [`Config::advertise_address`] the address.
//!
//! # Go's fields, one by one
//! "Core" is [`swim::Core`](crate::swim::Core), the sans-IO protocol; a
//! "driver" is what gives it sockets and time: the simulator (`src/sim`)
//! today, the I/O engine (`src/engine`, not written yet) next. Every Go
//! field is listed (`tests/config_defaults.rs` checks the list against Go's
//! struct).
//!
//! | Go field | ringswim | Who reads it, and what it does today |
//! | --- | --- | --- |
//! | `Name` | [`Config::name`] | core: the local member's name |
//! | `Transport` | [`Config::transport`] | nobody yet: the engine will pick its socket back end by it. Go's injected `Transport` object has no field: a custom transport is a custom driver of the core |
//! | `BindAddr` | [`Config::bind_addr`] | drivers: where to bind, and [`Config::advertise_address`]; the core never reads it |
//! | `BindPort` | [`Config::bind_port`] | core: the port of alive and indirect-ping messages that carry none; drivers bind it |
//! | `AdvertiseAddr` | [`Config::advertise_addr`] | [`Config::advertise_address`], which a driver calls for [`Core::new`](crate::swim::Core::new)'s `advertise`; the core never reads it |
//! | `AdvertisePort` | [`Config::advertise_port`] | as `AdvertiseAddr` |
//! | `ProtocolVersion` | [`Config::protocol_version`] | core: the version announced and spoken |
//! | `TCPTimeout` | [`Config::tcp_timeout`] | core: every stream's deadline |
//! | `IndirectChecks` | [`Config::indirect_checks`] | core: probe |
//! | `RetransmitMult` | [`Config::retransmit_mult`] | core: broadcast queues |
//! | `SuspicionMult` | [`Config::suspicion_mult`] | core: suspicion timers |
//! | `SuspicionMaxTimeoutMult` | [`Config::suspicion_max_timeout_mult`] | core: suspicion timers |
//! | `PushPullInterval` | [`Config::push_pull_interval`] | core: push/pull timer |
//! | `ProbeInterval` | [`Config::probe_interval`] | core: probe timer, suspicion timers |
//! | `ProbeTimeout` | [`Config::probe_timeout`] | core: probe |
//! | `DisableTcpPings` | [`Config::disable_tcp_pings`] | core: probe |
//! | `DisableTcpPingsForNode` | [`Config::disable_tcp_pings_for_node`] | core: probe |
//! | `AwarenessMaxMultiplier` | [`Config::awareness_max_multiplier`] | core: Lifeguard awareness |
//! | `GossipInterval` | [`Config::gossip_interval`] | core: gossip timer |
//! | `GossipNodes` | [`Config::gossip_nodes`] | core: gossip |
//! | `GossipToTheDeadTime` | [`Config::gossip_to_the_dead_time`] | core: gossip, reaping |
//! | `GossipVerifyIncoming` | [`Config::gossip_verify_incoming`] | core: decoding packets and streams |
//! | `GossipVerifyOutgoing` | [`Config::gossip_verify_outgoing`] | core: sealing packets and streams |
//! | `EnableCompression` | [`Config::enable_compression`] | core: packets and streams out |
//! | `SecretKey` | [`Config::secret_key`] | core, through [`Config::effective_keyring`] |
//! | `Keyring` | [`Config::keyring`] | core, through [`Config::effective_keyring`] |
//! | `Delegate` | [`Config::delegate`] | core; `notify_msg` by [`swim::drain`](crate::swim::drain), from each [`Effect::UserMessage`](crate::swim::Effect::UserMessage) |
//! | `DelegateProtocolVersion`, `DelegateProtocolMin`, `DelegateProtocolMax` | [`Config::delegate_protocol_version`], [`Config::delegate_protocol_min`], [`Config::delegate_protocol_max`] | core: the version bytes announced and checked |
//! | `Events` | [`Config::events`] | [`swim::drain`](crate::swim::drain), from each [`Effect::Event`](crate::swim::Effect::Event) the core queues |
//! | `Conflict` | [`Config::conflict`] | [`swim::drain`](crate::swim::drain), from each [`Effect::Conflict`](crate::swim::Effect::Conflict) the core queues |
//! | `Merge` | [`Config::merge`] | core: called on joins |
//! | `Ping` | [`Config::ping`] | core: called on acks |
//! | `Alive` | [`Config::alive`] | core: called on alive messages |
//! | `DNSConfigPath` | — | Go resolves join host names itself, TCP first, with this resolver file. [`Core::join`](crate::swim::Core::join) takes socket addresses: resolving names is the caller's (`std::net::ToSocketAddrs`, or a resolver crate, which can read any `resolv.conf`) |
//! | `LogOutput`, `Logger` | — | ringswim writes no log lines: what Go logs, it counts ([`Core::metrics`](crate::swim::Core::metrics), `ringswim.packets.rejected{reason}`) or returns (effects, typed errors). Log lines, when there are some, will go through the `tracing` facade, whose subscriber (chosen by the application) decides where they go: no field needed |
//! | `HandoffQueueDepth` | [`Config::handoff_queue_depth`] | validated (at least 1); the depth of [`Core::handoff_queue`](crate::swim::Core::handoff_queue), the queue a driver hands decoded messages to the core through (Go's rules: alive first, drops counted). [`Core::handle_packet`](crate::swim::Core::handle_packet) handles each message as it is decoded, so nothing queues there |
//! | `UDPBufferSize` | [`Config::udp_buffer_size`] | core: packet size |
//! | `DeadNodeReclaimTime` | [`Config::dead_node_reclaim_time`] | core: alive rules |
//! | `RequireNodeNames` | [`Config::require_node_names`] | core: what it will not send (see the field) |
//! | `CIDRsAllowed` | [`Config::cidrs_allowed`] | core: alive messages (sender and address) and push/pull entries |
//! | `Label` (0.5) | [`Config::label`] | core: packets and streams in and out |
//! | `SkipInboundLabelCheck` (0.5) | [`Config::skip_inbound_label_check`] | core: packets and streams in |
//! | — | [`Config::extensions`] | core: ringswim's rules beyond Go's |
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

use crate::delegate::{AliveDelegate, ConflictDelegate, Delegate, EventDelegate, MergeDelegate, PingDelegate};
use crate::wire::frame::{COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD};
use crate::wire::{Alive, EncryptionVersion, KeyError, Keyring, Message};

/// Oldest memberlist protocol version ringswim understands (Go
/// `ProtocolVersionMin`).
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// The protocol version Go speaks by default (Go `ProtocolVersion2Compatible`):
/// understood by every memberlist since TCP pings (3) and nacks (4) were added,
/// which a version-2 speaker still uses with peers that understand them.
pub const PROTOCOL_VERSION_2_COMPATIBLE: u8 = 2;
/// Newest memberlist protocol version ringswim understands (Go
/// `ProtocolVersionMax`).
pub const PROTOCOL_VERSION_MAX: u8 = 5;
/// Largest node metadata, in bytes (Go `MetaMaxSize`).
pub const META_MAX_SIZE: usize = 512;
/// Longest [`Config::label`], in bytes (Go 0.5 `LabelMaxSize`): its length
/// travels in one byte.
pub const LABEL_MAX_SIZE: usize = 255;
/// Largest UDP payload an IPv4 datagram can carry (65,535 − 20 − 8). A gossip
/// packet larger than this cannot be sent at all, so [`Config::udp_buffer_size`]
/// may not exceed it.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Port of Go's default configurations, for both UDP and TCP.
pub const DEFAULT_PORT: u16 = 7946;

/// Which socket back end the I/O engine is to use.
///
/// Read by nothing yet: ringswim has no I/O engine today (the simulator is
/// the only driver of the core, and it opens no sockets). The engine
/// (`src/engine`, next) will read it when it binds.
///
/// Go's `Config.Transport` lets a caller inject any `Transport` implementation;
/// when nil, memberlist builds a `NetTransport` over `BindAddr`/`BindPort`.
/// ringswim takes no transport object: a custom transport is a custom driver
/// of [`swim::Core`](crate::swim::Core), which is sans-IO. The choice never
/// changes what goes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportChoice {
    /// io_uring when the kernel offers it, the portable engine otherwise. The
    /// analogue of Go's nil `Transport`.
    #[default]
    Auto,
    /// io_uring only: starting fails if the kernel does not offer it.
    IoUring,
    /// The portable engine over the standard library's sockets; works on
    /// every platform.
    Portable,
}

/// Per-node predicate of [`Config::disable_tcp_pings_for_node`].
pub type NodeFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The configuration of one memberlist instance: Go memberlist 0.2.2's
/// `Config`, field by field, plus the 0.5 label settings (the
/// [module documentation](self) maps every Go field).
///
/// `Debug` never prints key material.
#[derive(Clone)]
pub struct Config {
    /// Name of this member; must be unique in the cluster (Go `Name`). The
    /// default profiles use the machine's host name.
    pub name: String,

    /// The I/O engine's socket back end (stands in for Go `Transport`, see
    /// [`TransportChoice`]). Nothing reads it yet.
    pub transport: TransportChoice,

    /// Address to bind the UDP and TCP listeners to (Go `BindAddr`, default
    /// `0.0.0.0`). Read by drivers, never by the core: the driver binds, and
    /// [`Config::advertise_address`] uses it. Go's transport treats only the
    /// literal `0.0.0.0` as "pick a private address to advertise"; bound to
    /// `::` without an [`Config::advertise_addr`], Go 0.2.2 advertises `::`
    /// itself.
    pub bind_addr: IpAddr,
    /// Port for both UDP and TCP (Go `BindPort`, default 7946). Other members
    /// are assumed to use the same port, though they need not: the core uses
    /// it for alive and indirect-ping messages that carry no port (protocol
    /// version < 2, or port 0), as Go does. The driver binds it; 0 lets the
    /// kernel pick a free port, which is then also advertised
    /// ([`Config::advertise_address`]).
    pub bind_port: u16,

    /// Address to advertise to other members, for NAT traversal (Go
    /// `AdvertiseAddr`). `None` (Go's `""`) advertises the bound address, or a
    /// private address of this machine when bound to `0.0.0.0`. The core never
    /// reads it: a driver turns it into the `advertise` address of
    /// [`Core::new`](crate::swim::Core::new) with [`Config::advertise_address`].
    pub advertise_addr: Option<IpAddr>,
    /// Port to advertise (Go `AdvertisePort`, default 7946). Go uses it only
    /// together with an explicit [`Config::advertise_addr`]; otherwise the bound
    /// port is advertised. When [`Config::bind_port`] is 0, Go overwrites it
    /// with the port the kernel picked. Read by [`Config::advertise_address`]
    /// only.
    pub advertise_port: u16,

    /// Protocol version this member speaks (Go `ProtocolVersion`), within
    /// [`PROTOCOL_VERSION_MIN`]..=[`PROTOCOL_VERSION_MAX`]. The default is
    /// [`PROTOCOL_VERSION_2_COMPATIBLE`].
    pub protocol_version: u8,

    /// Timeout for establishing a stream (TCP) connection to a member for a
    /// push/pull or TCP ping, and for every read and write on it (Go
    /// `TCPTimeout`, a legacy name for what is really a stream timeout).
    pub tcp_timeout: Duration,

    /// How many members are asked to probe a member indirectly after a direct
    /// probe of it failed (Go `IndirectChecks`). One ack from any of them is
    /// enough, so more helpers make a false failure less likely at the cost of
    /// bandwidth. 0 disables indirect probes.
    pub indirect_checks: usize,

    /// Multiplier for how often a gossiped broadcast is retransmitted: each is
    /// sent `RetransmitMult * ceil(log10(N+1))` times in a cluster of N
    /// members (Go `RetransmitMult`). Higher converges more reliably and uses
    /// more bandwidth; 0 sends each broadcast once.
    pub retransmit_mult: usize,

    /// Multiplier for how long a member stays suspect before it is declared
    /// dead: `SuspicionMult * max(1, log10(max(1, N))) * ProbeInterval` (Go
    /// `SuspicionMult`). Scales the timeout with the propagation delay of larger
    /// clusters; higher values give a live but suspected member more time to
    /// refute.
    pub suspicion_mult: usize,

    /// Multiplier applied to the suspicion timeout above to get its upper bound
    /// (Go `SuspicionMaxTimeoutMult`). Confirmations from other members shrink
    /// a suspicion timer from this bound towards the base timeout, so the
    /// bound matters mostly when this member has trouble hearing from others:
    /// large enough to let it recover before falsely declaring members dead,
    /// small enough that a truly isolated member still makes progress.
    pub suspicion_max_timeout_mult: usize,

    /// Interval between full state syncs (push/pull over TCP) with one random
    /// member (Go `PushPullInterval`). Expensive compared with gossip; more
    /// frequent syncs converge large clusters faster. Zero disables the
    /// periodic sync (joins still push/pull).
    pub push_pull_interval: Duration,

    /// Interval between probes of a random member (Go `ProbeInterval`). Shorter
    /// detects failures sooner at the cost of bandwidth. Suspicion timeouts are
    /// multiples of it.
    pub probe_interval: Duration,

    /// How long to wait for an ack to a direct probe before treating the
    /// member as possibly failed and asking others to probe it (Go
    /// `ProbeTimeout`). Set it to about the 99th percentile of the network's
    /// round-trip time. Go does not require it to be below
    /// [`Config::probe_interval`].
    pub probe_timeout: Duration,

    /// Turns off the TCP ping attempted alongside the indirect UDP probes when
    /// a direct UDP probe fails (Go `DisableTcpPings`).
    pub disable_tcp_pings: bool,

    /// Like [`Config::disable_tcp_pings`] but per member: called with a
    /// member's name, `true` disables TCP pings to it (Go
    /// `DisableTcpPingsForNode`).
    pub disable_tcp_pings_for_node: Option<NodeFilter>,

    /// Upper bound of the Lifeguard health multiplier: when this member
    /// suspects it is itself degraded (missed acks, refuting suspicions), it
    /// stretches its probe interval and timeouts by up to this factor (Go
    /// `AwarenessMaxMultiplier`).
    pub awareness_max_multiplier: usize,

    /// Interval between gossip rounds that send pending broadcasts which could
    /// not piggyback on probes (Go `GossipInterval`). Shorter spreads news
    /// faster at the cost of bandwidth. Zero disables this gossip (broadcasts
    /// then only piggyback on probes and acks).
    pub gossip_interval: Duration,
    /// How many random members each gossip round sends to (Go `GossipNodes`).
    /// More spreads news faster at the cost of bandwidth; 0 disables gossip
    /// rounds like a zero [`Config::gossip_interval`].
    pub gossip_nodes: usize,
    /// How long after a member died it still receives gossip, which gives it a
    /// chance to learn it was declared dead and refute (Go
    /// `GossipToTheDeadTime`).
    pub gossip_to_the_dead_time: Duration,

    /// Require incoming gossip to be encrypted (Go `GossipVerifyIncoming`).
    /// Turning it off, with encryption configured, lets a running cluster
    /// upshift from plaintext to encrypted gossip.
    pub gossip_verify_incoming: bool,
    /// Encrypt outgoing gossip (Go `GossipVerifyOutgoing`). Turning it off,
    /// with encryption configured, is the first step of upshifting a running
    /// cluster to encrypted gossip.
    pub gossip_verify_outgoing: bool,

    /// Compress messages, trading a little CPU for bandwidth (Go
    /// `EnableCompression`).
    pub enable_compression: bool,

    /// Primary encryption key (Go `SecretKey`): installed into the keyring and
    /// made primary, i.e. used to encrypt everything sent and tried first to
    /// decrypt. Setting it turns on encryption and verification. 16, 24 or 32
    /// bytes select AES-128, AES-192 or AES-256. An empty key counts as unset,
    /// as in Go.
    pub secret_key: Option<Vec<u8>>,

    /// Every encryption key in use (Go `Keyring`); see
    /// [`Config::effective_keyring`] for how [`Config::secret_key`] is added.
    pub keyring: Option<Keyring>,

    /// Hooks into gossip: metadata, user messages, broadcasts, push/pull state
    /// (Go `Delegate`).
    pub delegate: Option<Arc<dyn Delegate>>,
    /// Version of the delegate's own protocol this member speaks (Go
    /// `DelegateProtocolVersion`). Left at 0 with min and max, no version
    /// checking happens.
    pub delegate_protocol_version: u8,
    /// Oldest delegate protocol version this member understands (Go
    /// `DelegateProtocolMin`). Push/pull refuses peers outside the range all
    /// members understand.
    pub delegate_protocol_min: u8,
    /// Newest delegate protocol version this member understands (Go
    /// `DelegateProtocolMax`).
    pub delegate_protocol_max: u8,
    /// Join, leave and update notifications (Go `Events`). The core queues
    /// each as an [`Effect::Event`](crate::swim::Effect::Event), and
    /// [`swim::drain`](crate::swim::drain) hands it to this delegate.
    pub events: Option<Arc<dyn EventDelegate>>,
    /// Name-conflict notifications (Go `Conflict`). The core queues each as
    /// an [`Effect::Conflict`](crate::swim::Effect::Conflict), and
    /// [`swim::drain`](crate::swim::drain) hands it to this delegate.
    pub conflict: Option<Arc<dyn ConflictDelegate>>,
    /// Veto over cluster merges during joins (Go `Merge`).
    pub merge: Option<Arc<dyn MergeDelegate>>,
    /// Probe round-trip times and ack payloads (Go `Ping`).
    pub ping: Option<Arc<dyn PingDelegate>>,
    /// Filter on alive messages (Go `Alive`).
    pub alive: Option<Arc<dyn AliveDelegate>>,

    /// Capacity of the queue between packet reception and message handling (Go
    /// `HandoffQueueDepth`, default 1024): in Go, alive, suspect, dead and
    /// user messages arriving while it is full are dropped.
    ///
    /// [`Core::handle_packet`](crate::swim::Core::handle_packet) handles each
    /// message as it is decoded, so nothing waits there. A driver whose
    /// receiving threads hand decoded messages to the thread that owns the
    /// core bounds that hand-off with the queue
    /// [`Core::handoff_queue`](crate::swim::Core::handoff_queue) gives it,
    /// this deep, with Go's rules (alive first, drops counted).
    pub handoff_queue_depth: usize,

    /// Most bytes memberlist puts in one packet (Go `UDPBufferSize`, a legacy
    /// name: it is really the packet size). 1400 is safe on most networks;
    /// with a larger MTU it can grow to fit more gossip per packet.
    pub udp_buffer_size: usize,

    /// How long a dead member's name stays reserved: afterwards a member at a
    /// different address or port may take it over (Go `DeadNodeReclaimTime`).
    /// Zero (the default) never lets a dead member's name be reclaimed this
    /// way; a member that left can always be replaced.
    pub dead_node_reclaim_time: Duration,

    /// Send nothing to a peer whose member name is unknown (Go
    /// `RequireNodeNames`, default off). Go checks the destination's name
    /// before each send, for transports that address peers by name. The core
    /// checks it where it would answer or dial a peer it knows only by
    /// address:
    /// - a ping without `SourceNode` gets no ack, an indirect ping without
    ///   `SourceNode` or target `Node` is not relayed: both are dropped and
    ///   counted in [`Core::metrics`](crate::swim::Core::metrics), `ringswim.packets.rejected{reason}`
    ///   as `"node_name_required"` (Go logs its error);
    /// - [`Core::send_best_effort`](crate::swim::Core::send_best_effort) to a
    ///   node without a name returns
    ///   [`Error::NodeNameRequired`](crate::swim::Error::NodeNameRequired);
    /// - every address of [`Core::join`](crate::swim::Core::join) fails with
    ///   Go's error ("node names are required by configuration but one was
    ///   not provided"): ringswim's join addresses carry no names, so joining
    ///   is impossible with this on (Go accepts `name/address`).
    pub require_node_names: bool,

    /// Networks allowed to talk to this member (Go `CIDRsAllowed`); list IPv4
    /// and IPv6 networks separately. `None` allows everyone. As in Go, the
    /// core checks alive messages (the packet's sender and the address in
    /// the message) and push/pull entries; other messages are not checked.
    ///
    /// Go's doc says an empty list blocks everyone, but its code
    /// (`IPMustBeChecked` is `len(CIDRsAllowed) > 0`) allows everyone; ringswim
    /// does what Go does: `Some(vec![])` allows everyone too.
    pub cidrs_allowed: Option<Vec<IpNet>>,

    /// Label prefixed to every packet and stream, so that clusters sharing a
    /// network ignore each other's traffic (memberlist 0.5 `Label`). With
    /// encryption, it is authenticated as GCM additional data. Empty means no
    /// label; at most [`LABEL_MAX_SIZE`] bytes. Unknown to 0.2.2 peers.
    pub label: String,

    /// Accept inbound packets and streams whatever their label, or lack of one
    /// (memberlist 0.5 `SkipInboundLabelCheck`); for migrating a running
    /// cluster to labels.
    pub skip_inbound_label_check: bool,

    /// What ringswim does beyond Go memberlist 0.2.2 where Go stalls
    /// (docs/go-behaviour.md §1, §3, hashicorp/memberlist #299). Every default
    /// constructor turns it on; [`Config::with_go_behaviour`] turns it off
    /// for runs that must match Go step for step. Nothing in it changes the
    /// wire format: a Go peer only sees more (or earlier) messages of kinds
    /// it knows.
    pub extensions: Extensions,
}

/// ringswim's behaviour beyond Go memberlist 0.2.2, field by field; each
/// has an "off" value that gives Go's behaviour ([`Extensions::go`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// After gossip brings a burst of news (see
    /// [`Extensions::news_push_pull_burst`]) about members the node did not
    /// know (or thought dead), it runs one extra push/pull with a random
    /// live member this long after, at most one per this interval, and a
    /// settling one two intervals after the last. Go waits for the periodic
    /// push/pull (45–60 s after start at 128 nodes): rumours that died out
    /// before reaching a node stay unknown that long (docs/go-behaviour.md §1). Costs
    /// streams only during bursts. Zero: off (Go).
    pub news_push_pull_delay: Duration,
    /// How many members' news must come within four
    /// `news_push_pull_delay`s to count as a burst worth that push/pull (a
    /// lone join spreads fine by gossip; steady churn must not become
    /// steady push/pulls).
    pub news_push_pull_burst: usize,
    /// The smallest `retransmit_mult` the broadcast queues use
    /// ([`Config::effective_retransmit_mult`]). Each broadcast is sent
    /// `mult × ceil(log10(N + 1))` times in all; with Go's LAN/local 4/2 a
    /// rumour misses each node with probability about `e^-limit`, which at
    /// 128 nodes leaves a few nodes without news of a join (docs/go-behaviour.md §1)
    /// and some user broadcasts undelivered (§3) until the next push/pull.
    /// A larger budget costs bytes only while there is news: the queues are
    /// empty in steady state. Zero: off (Go).
    pub min_retransmit_mult: usize,
    /// Members a push/pull taught us are re-gossiped with this
    /// `retransmit_mult` instead of the full one, after fresh news. Go
    /// re-broadcasts everything a merge brought with the full budget: a
    /// burst of N joins queues N² alive broadcasts that are news to almost
    /// nobody (each joiner relays the seed's whole list), and real news waits
    /// behind them (~10 s of queue at 512 nodes). The push/pull peer already
    /// gossips what it knew. `None`: the full budget (Go).
    pub merge_retransmit_mult: Option<usize>,
    /// Every this often, a push/pull with one random member we declared
    /// dead (not left) in the last [`Extensions::reconnect_timeout`], as
    /// serf's reconnect does. Go memberlist has no reconnect: once a
    /// partition outlasts `gossip_to_the_dead_time`, each side has reaped
    /// the other and nothing ever crosses again (two clusters for good). A
    /// push/pull that gets through hands each side the other's members as
    /// news. Costs one connection attempt per interval while someone is
    /// dead, nothing otherwise. Zero: off (Go).
    pub reconnect_interval: Duration,
    /// How long a dead member stays a reconnect candidate.
    pub reconnect_timeout: Duration,
    /// Percent of each gossip packet's bytes (and parts) kept for the
    /// delegate's user broadcasts when membership news would fill it. Go
    /// packs alive/suspect/dead first and gives the delegate what is left:
    /// under churn at ~1,000 nodes that is nothing, and user broadcasts
    /// starve (hashicorp/memberlist #299). With a share, user broadcasts go
    /// first within it, membership news fills the rest, and either side
    /// takes all the space the other does not need. 0: off (Go).
    pub user_broadcast_share: u8,
    /// A membership queue holding more than this many broadcasts is a
    /// storm: a mass join, a healed partition. Go queues every alive a
    /// push/pull teaches with the full budget: in a mass join of N members
    /// every member queues all N (N² queued messages, most of the memory of
    /// a large cluster at its peak, and N² × budget sends to members that
    /// already know). During a storm, what a push/pull teaches is not
    /// re-gossiped (the push/pulls that run during it, news and periodic,
    /// carry it), and alive news gossip repeats to us is retired early (see
    /// [`Extensions::repeats_retire_news`]). Outside a storm both rules are
    /// off, so a lone join, a refutation or a suspicion spreads with its
    /// full budget. `None`: never a storm (Go).
    pub storm_queue_len: Option<usize>,
    /// During a storm, alive news that gossip brings us again (same member,
    /// same incarnation) while we still queue it counts as
    /// `1 / repeats_retire_news` of its sends: after that many repeats we
    /// stop sending it, since those around us already do (the "loss of
    /// interest" of Demers et al.'s rumour mongering). Suspect and dead news
    /// keep their full budget. 0: off (Go).
    pub repeats_retire_news: usize,
    /// After a news burst, once this many members or more were learned
    /// (joined, or came back from dead) since the last settling push/pull —
    /// a mass join of thousands — one more settling push/pull
    /// [`Extensions::late_settle_delay`] after it. Rumour mongering leaves a
    /// residue: at 10,000 members the 10⁸ (node, member) pairs kept a few
    /// unknown after the storm (late joiners that never heard of a few other
    /// late joiners: their settling push/pull ran while the rest of the
    /// cluster was still settling too), and the periodic push/pull came
    /// 150 s later. A joiner counts what its join taught it, so late joiners
    /// take part. A cluster of a few hundred never learns 1,024 at once, so
    /// its traffic is unchanged. 0: off (Go).
    pub late_settle_learned: usize,
    /// See [`Extensions::late_settle_learned`]. Zero: off (Go).
    pub late_settle_delay: Duration,
    /// A suspicion confirms only accusations of the incarnation it is
    /// about. An accusation at a higher incarnation means the member beat
    /// our suspicion (its refutation has not reached us yet) and was
    /// suspected again: the suspicion starts over at that incarnation. Go
    /// counts it as one more Lifeguard confirmation of the stale suspicion,
    /// whose shrunk timer can then fire at once, and we declare dead a
    /// member that refuted the very suspicion that killed it (at 99 LAN
    /// nodes with 10 % slow ones, several healthy members per run). False:
    /// Go.
    pub suspicion_per_incarnation: bool,
    /// A suspect or dead message about us at an incarnation we have
    /// already refuted is answered with our current alive, sent straight
    /// back to its sender: each sender once per probe interval, at most
    /// [`STALE_ANSWERS_PER_PROBE_INTERVAL`](crate::swim::STALE_ANSWERS_PER_PROBE_INTERVAL)
    /// senders per probe interval. Whoever sends it still holds the suspicion our
    /// refutation beat: a member probing us while it suspects us tacks the
    /// suspicion onto its ping, and a relay still gossiping it has not
    /// heard the refutation either. Go ignores a stale accusation, so a
    /// member that missed our refutation's gossip (each rumour misses a
    /// node with probability about `e^-budget`) lets its suspicion run out
    /// and declares us dead while we answer its pings. False: Go.
    pub answer_stale_accusations: bool,
    /// When a suspicion runs out, ping the member once more, with the
    /// suspicion tacked on as Go does for suspect members it probes, and
    /// wait one `probe_interval` plus one `probe_timeout`, scaled by our
    /// Lifeguard health score as probes are (a node that handles its input
    /// late hears the answer late), for its refutation (or, with
    /// [`Extensions::answer_stale_accusations`], its answer to an
    /// accusation it already beat) before declaring it dead. Go probes a
    /// suspect only when its round-robin turn comes, once per N probe
    /// intervals, so a member that missed the refutation's gossip, which
    /// happens once in about `e^budget` deliveries (a few times a run at
    /// 99 nodes, where the budget is 8), declares a live member dead. Costs
    /// one packet per suspicion that runs out. False: Go.
    pub last_chance_ping: bool,
    /// A member that holds no other live member and is pinged by one it
    /// does not know runs a push/pull with the pinger, at most once per
    /// `probe_interval`. A join whose push/pull reached the seed but whose
    /// reply did not (TCPTimeout on a loaded seed: the join returns an
    /// error) leaves the joiner known to the cluster, gossiped and acking
    /// its probes, while it knows nobody: Go waits until someone's periodic
    /// push/pull happens to pick it (at 500 local members, 75 s scaled,
    /// observed as an 87.8 s convergence). A ping names its sender, which
    /// knows us: one full exchange with it teaches us the cluster. Costs
    /// nothing while the node knows anyone. False: Go.
    pub push_pull_when_alone: bool,
}

impl Extensions {
    /// Go memberlist 0.2.2's behaviour: every extension off.
    pub fn go() -> Extensions {
        Extensions {
            news_push_pull_delay: Duration::ZERO,
            news_push_pull_burst: 0,
            min_retransmit_mult: 0,
            merge_retransmit_mult: None,
            reconnect_interval: Duration::ZERO,
            reconnect_timeout: Duration::ZERO,
            user_broadcast_share: 0,
            storm_queue_len: None,
            repeats_retire_news: 0,
            late_settle_learned: 0,
            late_settle_delay: Duration::ZERO,
            suspicion_per_incarnation: false,
            answer_stale_accusations: false,
            last_chance_ping: false,
            push_pull_when_alone: false,
        }
    }

    /// ringswim's defaults.
    pub fn ringswim() -> Extensions {
        Extensions {
            news_push_pull_delay: Duration::from_millis(250),
            news_push_pull_burst: 3,
            min_retransmit_mult: 4,
            merge_retransmit_mult: Some(1),
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            user_broadcast_share: 50,
            storm_queue_len: Some(256),
            repeats_retire_news: 2,
            late_settle_learned: 1024,
            late_settle_delay: Duration::from_secs(8),
            suspicion_per_incarnation: true,
            answer_stale_accusations: true,
            last_chance_ping: true,
            push_pull_when_alone: true,
        }
    }
}

impl Default for Extensions {
    fn default() -> Extensions {
        Extensions::ringswim()
    }
}

/// A [`Config`] value that would break memberlist, found by
/// [`Config::validate`] or [`Config::effective_keyring`]. `field` is the Go
/// field name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The field's value breaks a rule.
    #[error("invalid config {field}: {reason}")]
    Invalid {
        /// Go name of the offending field (e.g. `ProtocolVersion`).
        field: &'static str,
        /// What is wrong, naming the Rust field too.
        reason: String,
    },
    /// The key in the field cannot be installed into the keyring.
    #[error("invalid config {field}: {source}")]
    Key {
        /// Go name of the offending field (`SecretKey`).
        field: &'static str,
        /// Why the keyring refused it.
        #[source]
        source: KeyError,
    },
}

impl ConfigError {
    /// Go name of the offending field.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Invalid { field, .. } | Self::Key { field, .. } => field,
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }
}

/// An address rejected by [`Config::ip_allowed`] (Go: "%s is not allowed").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not allowed")]
pub struct IpNotAllowed(pub IpAddr);

/// Entries [`parse_cidrs`] could not parse, with the networks it could.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ParseCidrsError {
    /// The entries that parsed, in input order (what Go returns next to the
    /// error).
    pub parsed: Vec<IpNet>,
    /// Every entry that did not parse, as given (untrimmed), in input order.
    pub invalid: Vec<String>,
}

impl ParseCidrsError {
    fn describe(&self) -> String {
        let list: Vec<String> = self.invalid.iter().map(|s| format!("invalid cidr: {s}")).collect();
        match list.len() {
            1 => list.concat(),
            n => format!("{n} errors occurred: {}", list.join("; ")),
        }
    }
}

/// Parses CIDR networks like Go's `ParseCIDRs`: each entry is trimmed of
/// surrounding white space and parsed with Go's `net.ParseCIDR` rules
/// (`addr/prefix`; IPv4 octets without leading zeros; no IPv6 zone); the
/// network is masked, so `10.1.2.3/8` yields `10.0.0.0/8`. Every bad entry is
/// reported, not just the first. An empty input gives an empty list, which as
/// [`Config::cidrs_allowed`] allows everyone (see there).
pub fn parse_cidrs<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpNet>, ParseCidrsError> {
    let mut parsed = Vec::with_capacity(entries.len());
    let mut invalid = Vec::new();
    for entry in entries {
        let entry = entry.as_ref();
        match parse_cidr(entry.trim()) {
            Some(net) => parsed.push(net),
            None => invalid.push(entry.to_owned()),
        }
    }
    if invalid.is_empty() { Ok(parsed) } else { Err(ParseCidrsError { parsed, invalid }) }
}

/// One CIDR by Go's `net.ParseCIDR` rules, masked like Go's result.
fn parse_cidr(s: &str) -> Option<IpNet> {
    let (addr, prefix) = s.split_once('/')?;
    // Rust's parser, like Go's, rejects IPv4 octets with leading zeros and
    // IPv6 zones, and reads a dotted tail of an IPv6 address as IPv4. Go also
    // takes IPv6 groups of more than four hex digits if their value fits in 16
    // bits (`00001::`); Rust does not, so such zeros are dropped first.
    let addr: IpAddr =
        if addr.contains(':') { trim_ipv6_group_zeros(addr).parse().ok()? } else { addr.parse().ok()? };
    // Go's prefix: one or more ASCII digits, nothing else (no sign, no space);
    // leading zeros are fine.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len = prefix.bytes().fold(0u32, |n, b| n.saturating_mul(10).saturating_add(u32::from(b - b'0')));
    let len = u8::try_from(len).ok()?;
    IpNet::new(addr, len).ok().map(|net| net.trunc())
}

/// Drops leading zeros from IPv6 groups longer than four hex digits, keeping
/// four; any other text is left for the parser to judge.
fn trim_ipv6_group_zeros(addr: &str) -> std::borrow::Cow<'_, str> {
    let long_group = |g: &str| g.len() > 4 && g.bytes().all(|b| b.is_ascii_hexdigit());
    if !addr.split(':').any(long_group) {
        return addr.into();
    }
    let groups: Vec<&str> = addr
        .split(':')
        .map(|g| if long_group(g) { &g[g.len() - 4.max(g.trim_start_matches('0').len())..] } else { g })
        .collect();
    groups.join(":").into()
}

/// Go's `IPNet.Contains`: both the network and the address are reduced to
/// their 4-byte form when they have one (IPv4, or IPv4-mapped IPv6; a mapped
/// network keeps the last 32 bits of its mask), then compared only within the
/// same length.
fn go_net_contains(net: &IpNet, ip: IpAddr) -> bool {
    let net = match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) => match Ipv4Net::new(v4, v6.prefix_len().saturating_sub(96)) {
                Ok(v4net) => IpNet::V4(v4net),
                Err(_) => return false, // unreachable: a prefix ≤ 128 leaves ≤ 32
            },
            None => *net,
        },
        IpNet::V4(_) => *net,
    };
    net.contains(&ip.to_canonical())
}

/// The machine's host name: the kernel's UTS node name, which Go's
/// `os.Hostname` gets from `uname` (falling back to this same file). Empty
/// where it cannot be read (e.g. no `/proc`).
fn hostname() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        // Go strips exactly one trailing newline.
        Ok(mut name) => {
            if name.ends_with('\n') {
                name.pop();
            }
            name
        }
        Err(_) => String::new(),
    }
}

impl Default for Config {
    /// [`Config::default_lan`].
    fn default() -> Self {
        Self::default_lan()
    }
}

impl Config {
    /// Go's `DefaultLANConfig`: conservative settings for a LAN, favouring
    /// quick convergence over bandwidth; the name is the host name.
    pub fn default_lan() -> Self {
        Self {
            name: hostname(),
            transport: TransportChoice::Auto,
            bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            bind_port: DEFAULT_PORT,
            advertise_addr: None,
            advertise_port: DEFAULT_PORT,
            protocol_version: PROTOCOL_VERSION_2_COMPATIBLE,
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            disable_tcp_pings: false,
            disable_tcp_pings_for_node: None,
            awareness_max_multiplier: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead_time: Duration::from_secs(30),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
            enable_compression: true,
            secret_key: None,
            keyring: None,
            delegate: None,
            delegate_protocol_version: 0,
            delegate_protocol_min: 0,
            delegate_protocol_max: 0,
            events: None,
            conflict: None,
            merge: None,
            ping: None,
            alive: None,
            handoff_queue_depth: 1024,
            udp_buffer_size: 1400,
            dead_node_reclaim_time: Duration::ZERO,
            require_node_names: false,
            cidrs_allowed: None,
            label: String::new(),
            skip_inbound_label_check: false,
            extensions: Extensions::ringswim(),
        }
    }

    /// Go's `DefaultWANConfig`: [`Config::default_lan`] with longer timeouts
    /// and intervals for a WAN.
    pub fn default_wan() -> Self {
        Self {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Self::default_lan()
        }
    }

    /// Go's `DefaultLocalConfig`: [`Config::default_lan`] tuned for members on
    /// one machine (loopback).
    pub fn default_local() -> Self {
        Self {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Self::default_lan()
        }
    }

    /// Whether incoming addresses must be checked against
    /// [`Config::cidrs_allowed`] (Go `IPMustBeChecked`): only when the list is
    /// present and non-empty.
    pub fn ip_must_be_checked(&self) -> bool {
        self.cidrs_allowed.as_ref().is_some_and(|nets| !nets.is_empty())
    }

    /// Whether `ip` may talk to this member (Go `IPAllowed`), matching the way
    /// Go's `IPNet.Contains` does: IPv4 and IPv6 are separate families, except
    /// that IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as IPv4, and so
    /// do networks written with one (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
    pub fn ip_allowed(&self, ip: IpAddr) -> Result<(), IpNotAllowed> {
        let Some(nets) = self.cidrs_allowed.as_ref().filter(|nets| !nets.is_empty()) else {
            return Ok(());
        };
        if nets.iter().any(|net| go_net_contains(net, ip)) { Ok(()) } else { Err(IpNotAllowed(ip)) }
    }

    /// Whether messages are encrypted (Go `EncryptionEnabled`): the keyring
    /// holds a key. Go asks this after `Create` has installed `SecretKey` into
    /// the keyring; ringswim leaves the `Config` untouched, so a non-empty
    /// [`Config::secret_key`] counts as well.
    pub fn encryption_enabled(&self) -> bool {
        self.secret_key.as_ref().is_some_and(|k| !k.is_empty())
            || self.keyring.as_ref().is_some_and(Keyring::is_enabled)
    }

    /// The six version bytes this member announces (Go `BuildVsnArray`):
    /// protocol min, max and current, then delegate min, max and current.
    pub fn build_vsn_array(&self) -> [u8; 6] {
        [
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION_MAX,
            self.protocol_version,
            self.delegate_protocol_min,
            self.delegate_protocol_max,
            self.delegate_protocol_version,
        ]
    }

    /// The keyring memberlist runs with, combining [`Config::secret_key`] and
    /// [`Config::keyring`] the way Go's `Create` does: with a (non-empty)
    /// secret key and no keyring, a keyring holding just that key; with both,
    /// the keyring with the secret key added and made primary; otherwise the
    /// keyring as configured. `None` means no encryption.
    pub fn effective_keyring(&self) -> Result<Option<Keyring>, ConfigError> {
        let key_err = |source| ConfigError::Key { field: "SecretKey", source };
        let secret = self.secret_key.as_deref().filter(|k| !k.is_empty());
        match (secret, &self.keyring) {
            (None, ring) => Ok(ring.clone()),
            (Some(key), None) => Keyring::new(&[], Some(key)).map(Some).map_err(key_err),
            (Some(key), Some(ring)) => {
                let mut ring = ring.clone();
                ring.add_key(key).map_err(key_err)?;
                ring.use_key(key).map_err(key_err)?;
                Ok(Some(ring))
            }
        }
    }

    /// The address to advertise (Go `refreshAdvertise` →
    /// `NetTransport.FinalAdvertiseAddr`, and `Create`'s dynamic port), for
    /// the `advertise` argument of [`Core::new`](crate::swim::Core::new).
    /// `bound` is where the driver's listeners ended up (its port is the one
    /// the kernel picked when [`Config::bind_port`] is 0); `private_ip` finds
    /// a private address of this machine (Go `sockaddr.GetPrivateIP`), asked
    /// only when needed.
    ///
    /// - With [`Config::advertise_addr`]: that address (IPv4-mapped IPv6 as
    ///   IPv4, as Go's `To4`) and [`Config::advertise_port`], or the bound
    ///   port when `bind_port` is 0 (Go overwrites `AdvertisePort` then).
    /// - Without, bound to `0.0.0.0`: `private_ip()` and the bound port; an
    ///   error naming `AdvertiseAddr` when there is none (Go: "No private IP
    ///   address found, and explicit IP not provided").
    /// - Otherwise: the bound address and port.
    pub fn advertise_address(
        &self,
        bound: SocketAddr,
        private_ip: impl FnOnce() -> Option<IpAddr>,
    ) -> Result<SocketAddr, ConfigError> {
        if let Some(ip) = self.advertise_addr {
            let port = if self.bind_port == 0 { bound.port() } else { self.advertise_port };
            return Ok(SocketAddr::new(ip.to_canonical(), port));
        }
        let ip = if self.bind_addr == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
            private_ip().ok_or_else(|| {
                ConfigError::invalid(
                    "AdvertiseAddr",
                    "bound to 0.0.0.0 and this machine has no private IP address; set advertise_addr",
                )
            })?
        } else {
            bound.ip()
        };
        Ok(SocketAddr::new(ip, bound.port()))
    }

    /// The smallest [`Config::udp_buffer_size`] [`Config::validate`] accepts:
    /// the size of a gossip packet that carries nothing but this member's own
    /// alive message, without metadata, in the worst case (IPv6 address,
    /// largest incarnation and port), plus the compound, encryption and label
    /// overheads Go subtracts before picking broadcasts.
    pub fn min_udp_buffer_size(&self) -> usize {
        let vsn = self.build_vsn_array();
        let alive = Message::Alive(Alive {
            incarnation: u32::MAX,
            node: &self.name,
            addr: &[0xff; 16],
            port: u16::MAX,
            meta: &[],
            vsn: &vsn,
        });
        let mut size = COMPOUND_HEADER_OVERHEAD + COMPOUND_PART_OVERHEAD + alive.to_vec().len();
        if self.encryption_enabled() {
            size += EncryptionVersion::for_protocol(self.protocol_version).overhead();
        }
        if !self.label.is_empty() {
            // Go 0.5 `labelOverhead`: type byte, length byte, label.
            size += 2 + self.label.len();
        }
        size
    }

    /// Checks every rule Go's `Create` enforces, plus values Go accepts but
    /// that would break the protocol at run time. Returns the first violation,
    /// naming the Go field.
    ///
    /// Go's default profiles always pass (given a host name). Values that
    /// legitimately switch a feature off in Go are accepted: a zero
    /// `push_pull_interval` (no periodic sync), a zero `gossip_interval` or
    /// `gossip_nodes` (no gossip rounds), zero `indirect_checks`, zero
    /// `retransmit_mult` (each broadcast sent once), zero
    /// `dead_node_reclaim_time` (no reclaiming). `probe_timeout` above
    /// `probe_interval` is accepted as Go does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        type E = ConfigError;

        // Members are keyed by name everywhere (node map, suspicions,
        // push/pull); an empty name collides with every other unnamed member
        // and cannot be addressed when node names are required.
        if self.name.is_empty() {
            return Err(E::invalid(
                "Name",
                "name is empty; every member needs a unique name (the default is the host name, which could not be read)",
            ));
        }

        // Go's Create: the spoken version must be one this code understands.
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&self.protocol_version) {
            return Err(E::invalid(
                "ProtocolVersion",
                format!(
                    "protocol_version {} is outside the supported range [{PROTOCOL_VERSION_MIN}, {PROTOCOL_VERSION_MAX}]",
                    self.protocol_version
                ),
            ));
        }

        // Push/pull verifies that every member's current delegate version lies
        // within the range all members understand, this member's range
        // included: an inverted range, or a current version outside our own
        // range, makes every push/pull (and so every join) fail. All zero (the
        // default) means "no delegate versioning" and passes.
        if self.delegate_protocol_min > self.delegate_protocol_max {
            return Err(E::invalid(
                "DelegateProtocolMin",
                format!(
                    "delegate_protocol_min {} is above delegate_protocol_max {}",
                    self.delegate_protocol_min, self.delegate_protocol_max
                ),
            ));
        }
        if !(self.delegate_protocol_min..=self.delegate_protocol_max).contains(&self.delegate_protocol_version) {
            return Err(E::invalid(
                "DelegateProtocolVersion",
                format!(
                    "delegate_protocol_version {} is outside [delegate_protocol_min {}, delegate_protocol_max {}]",
                    self.delegate_protocol_version, self.delegate_protocol_min, self.delegate_protocol_max
                ),
            ));
        }

        // Go's Create installs SecretKey into the keyring, which refuses keys
        // that are not 16, 24 or 32 bytes. (A Keyring can only hold valid keys.)
        self.effective_keyring()?;

        // Go 0.5's Create: the label's length travels in one byte.
        if self.label.len() > LABEL_MAX_SIZE {
            return Err(E::invalid(
                "Label",
                format!("label is {} bytes; at most {LABEL_MAX_SIZE} fit in the label header", self.label.len()),
            ));
        }

        // Other members would send to the unspecified address, which reaches
        // their own host (or nothing), never this member. `None` asks for
        // automatic selection instead.
        if let Some(addr) = self.advertise_addr.filter(IpAddr::is_unspecified) {
            return Err(E::invalid(
                "AdvertiseAddr",
                format!(
                    "advertise_addr {addr} is the unspecified address, which peers cannot reach; use None to pick one automatically"
                ),
            ));
        }

        // With an explicit advertise address Go advertises AdvertisePort as
        // is; port 0 is unreachable (and reads as "no port" to old peers).
        // With bind_port 0 Go replaces it with the port the kernel picked.
        if self.advertise_addr.is_some() && self.advertise_port == 0 && self.bind_port != 0 {
            return Err(E::invalid(
                "AdvertisePort",
                "advertise_port is 0 with an explicit advertise_addr; peers could not reach this member",
            ));
        }

        // Go's time.Duration is an int64 of nanoseconds; longer durations have
        // no Go equivalent and overflow memberlist's timeout arithmetic.
        for (field, value) in [
            ("TCPTimeout", self.tcp_timeout),
            ("PushPullInterval", self.push_pull_interval),
            ("ProbeInterval", self.probe_interval),
            ("ProbeTimeout", self.probe_timeout),
            ("GossipInterval", self.gossip_interval),
            ("GossipToTheDeadTime", self.gossip_to_the_dead_time),
            ("DeadNodeReclaimTime", self.dead_node_reclaim_time),
        ] {
            if value.as_nanos() > i64::MAX as u128 {
                return Err(E::invalid(field, format!("{value:?} exceeds Go's time.Duration range (about 292 years)")));
            }
        }

        // Every stream read and write gets this deadline: zero makes them all
        // time out at once, so push/pull, joins and TCP pings always fail.
        if self.tcp_timeout.is_zero() {
            return Err(E::invalid(
                "TCPTimeout",
                "tcp_timeout is zero; every stream operation would time out immediately",
            ));
        }

        // Go's scheduler treats zero as "never probe", but suspicion timeouts
        // are multiples of the probe interval: with zero, any suspicion heard
        // from another member kills the suspect at once, before it can refute.
        if self.probe_interval.is_zero() {
            return Err(E::invalid(
                "ProbeInterval",
                "probe_interval is zero; failure detection stops and suspicion timeouts become zero",
            ));
        }

        // Zero makes every direct probe time out before its ack can arrive, so
        // each probe escalates to indirect and TCP probes and lowers this
        // member's own health score (Lifeguard awareness).
        if self.probe_timeout.is_zero() {
            return Err(E::invalid("ProbeTimeout", "probe_timeout is zero; every direct probe would fail"));
        }

        // Zero makes the suspicion timeout zero: suspects are declared dead
        // immediately and can never refute.
        if self.suspicion_mult == 0 {
            return Err(E::invalid(
                "SuspicionMult",
                "suspicion_mult is 0; suspects would be declared dead before they can refute",
            ));
        }

        // The maximum suspicion timeout is this times the minimum; zero puts
        // the maximum below the minimum, collapsing the Lifeguard timer.
        if self.suspicion_max_timeout_mult == 0 {
            return Err(E::invalid(
                "SuspicionMaxTimeoutMult",
                "suspicion_max_timeout_mult is 0; the maximum suspicion timeout would be zero",
            ));
        }

        // The health score is clamped to [0, max-1] and scales timeouts by
        // score+1: zero yields a score of -1, i.e. zero probe intervals and
        // timeouts.
        if self.awareness_max_multiplier == 0 {
            return Err(E::invalid(
                "AwarenessMaxMultiplier",
                "awareness_max_multiplier is 0; probe timeouts would scale to zero",
            ));
        }

        // Every alive, suspect, dead and user message goes through this queue;
        // with zero capacity all of them are dropped.
        if self.handoff_queue_depth == 0 {
            return Err(E::invalid(
                "HandoffQueueDepth",
                "handoff_queue_depth is 0; every gossiped message would be dropped",
            ));
        }

        // Gossip only sends broadcasts that fit in this size: below the size
        // of our own alive message nothing is ever gossiped, so membership
        // changes spread only by push/pull. Above the largest UDP payload, full
        // gossip packets cannot be sent at all.
        let min = self.min_udp_buffer_size();
        if self.udp_buffer_size < min {
            return Err(E::invalid(
                "UDPBufferSize",
                format!(
                    "udp_buffer_size {} is below {min}, the size of a gossip packet carrying only this member's alive message",
                    self.udp_buffer_size
                ),
            ));
        }
        if self.udp_buffer_size > MAX_UDP_PAYLOAD {
            return Err(E::invalid(
                "UDPBufferSize",
                format!("udp_buffer_size {} exceeds {MAX_UDP_PAYLOAD}, the largest UDP payload", self.udp_buffer_size),
            ));
        }

        Ok(())
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident => $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

/// Builder-style setters: each sets one field and returns the config.
impl Config {
    setters! {
        /// Sets [`Config::transport`].
        with_transport => transport: TransportChoice;
        /// Sets [`Config::bind_addr`].
        with_bind_addr => bind_addr: IpAddr;
        /// Sets [`Config::bind_port`].
        with_bind_port => bind_port: u16;
        /// Sets [`Config::advertise_port`].
        with_advertise_port => advertise_port: u16;
        /// Sets [`Config::protocol_version`].
        with_protocol_version => protocol_version: u8;
        /// Sets [`Config::tcp_timeout`].
        with_tcp_timeout => tcp_timeout: Duration;
        /// Sets [`Config::indirect_checks`].
        with_indirect_checks => indirect_checks: usize;
        /// Sets [`Config::retransmit_mult`].
        with_retransmit_mult => retransmit_mult: usize;
        /// Sets [`Config::suspicion_mult`].
        with_suspicion_mult => suspicion_mult: usize;
        /// Sets [`Config::suspicion_max_timeout_mult`].
        with_suspicion_max_timeout_mult => suspicion_max_timeout_mult: usize;
        /// Sets [`Config::push_pull_interval`].
        with_push_pull_interval => push_pull_interval: Duration;
        /// Sets [`Config::probe_interval`].
        with_probe_interval => probe_interval: Duration;
        /// Sets [`Config::probe_timeout`].
        with_probe_timeout => probe_timeout: Duration;
        /// Sets [`Config::disable_tcp_pings`].
        with_disable_tcp_pings => disable_tcp_pings: bool;
        /// Sets [`Config::awareness_max_multiplier`].
        with_awareness_max_multiplier => awareness_max_multiplier: usize;
        /// Sets [`Config::gossip_interval`].
        with_gossip_interval => gossip_interval: Duration;
        /// Sets [`Config::gossip_nodes`].
        with_gossip_nodes => gossip_nodes: usize;
        /// Sets [`Config::gossip_to_the_dead_time`].
        with_gossip_to_the_dead_time => gossip_to_the_dead_time: Duration;
        /// Sets [`Config::gossip_verify_incoming`].
        with_gossip_verify_incoming => gossip_verify_incoming: bool;
        /// Sets [`Config::gossip_verify_outgoing`].
        with_gossip_verify_outgoing => gossip_verify_outgoing: bool;
        /// Sets [`Config::enable_compression`].
        with_enable_compression => enable_compression: bool;
        /// Sets [`Config::delegate_protocol_version`].
        with_delegate_protocol_version => delegate_protocol_version: u8;
        /// Sets [`Config::delegate_protocol_min`].
        with_delegate_protocol_min => delegate_protocol_min: u8;
        /// Sets [`Config::delegate_protocol_max`].
        with_delegate_protocol_max => delegate_protocol_max: u8;
        /// Sets [`Config::handoff_queue_depth`].
        with_handoff_queue_depth => handoff_queue_depth: usize;
        /// Sets [`Config::udp_buffer_size`].
        with_udp_buffer_size => udp_buffer_size: usize;
        /// Sets [`Config::dead_node_reclaim_time`].
        with_dead_node_reclaim_time => dead_node_reclaim_time: Duration;
        /// Sets [`Config::require_node_names`].
        with_require_node_names => require_node_names: bool;
        /// Sets [`Config::skip_inbound_label_check`].
        with_skip_inbound_label_check => skip_inbound_label_check: bool;
        /// Sets [`Config::extensions`].
        with_extensions => extensions: Extensions;
    }

    /// The `retransmit_mult` the broadcast queues use: [`Config::retransmit_mult`],
    /// raised to [`Extensions::min_retransmit_mult`].
    pub fn effective_retransmit_mult(&self) -> usize {
        self.retransmit_mult.max(self.extensions.min_retransmit_mult)
    }

    /// Go memberlist 0.2.2's behaviour: [`Extensions::go`], every ringswim
    /// extension off.
    #[must_use]
    pub fn with_go_behaviour(self) -> Self {
        self.with_extensions(Extensions::go())
    }

    /// Sets [`Config::name`].
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`Config::advertise_addr`] (`None` for automatic).
    #[must_use]
    pub fn with_advertise_addr(mut self, addr: impl Into<Option<IpAddr>>) -> Self {
        self.advertise_addr = addr.into();
        self
    }

    /// Sets [`Config::secret_key`].
    #[must_use]
    pub fn with_secret_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.secret_key = Some(key.into());
        self
    }

    /// Sets [`Config::keyring`].
    #[must_use]
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Sets [`Config::disable_tcp_pings_for_node`].
    #[must_use]
    pub fn with_disable_tcp_pings_for_node(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.disable_tcp_pings_for_node = Some(Arc::new(filter));
        self
    }

    /// Sets [`Config::delegate`].
    #[must_use]
    pub fn with_delegate(mut self, delegate: Arc<dyn Delegate>) -> Self {
        self.delegate = Some(delegate);
        self
    }

    /// Sets [`Config::events`].
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventDelegate>) -> Self {
        self.events = Some(events);
        self
    }

    /// Sets [`Config::conflict`].
    #[must_use]
    pub fn with_conflict(mut self, conflict: Arc<dyn ConflictDelegate>) -> Self {
        self.conflict = Some(conflict);
        self
    }

    /// Sets [`Config::merge`].
    #[must_use]
    pub fn with_merge(mut self, merge: Arc<dyn MergeDelegate>) -> Self {
        self.merge = Some(merge);
        self
    }

    /// Sets [`Config::ping`].
    #[must_use]
    pub fn with_ping(mut self, ping: Arc<dyn PingDelegate>) -> Self {
        self.ping = Some(ping);
        self
    }

    /// Sets [`Config::alive`].
    #[must_use]
    pub fn with_alive(mut self, alive: Arc<dyn AliveDelegate>) -> Self {
        self.alive = Some(alive);
        self
    }

    /// Sets [`Config::cidrs_allowed`] (`None` allows everyone).
    #[must_use]
    pub fn with_cidrs_allowed(mut self, nets: impl Into<Option<Vec<IpNet>>>) -> Self {
        self.cidrs_allowed = nets.into();
        self
    }

    /// Sets [`Config::label`].
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
}

/// Prints its text verbatim in `Debug` output.
struct Opaque<'a>(&'a str);

impl fmt::Debug for Opaque<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn set<T>(field: &Option<T>, what: &'static str) -> Option<Opaque<'static>> {
            field.as_ref().map(|_| Opaque(what))
        }
        let secret = self.secret_key.as_ref().map(|k| format!("<{} bytes redacted>", k.len()));
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("bind_addr", &self.bind_addr)
            .field("bind_port", &self.bind_port)
            .field("advertise_addr", &self.advertise_addr)
            .field("advertise_port", &self.advertise_port)
            .field("protocol_version", &self.protocol_version)
            .field("tcp_timeout", &self.tcp_timeout)
            .field("indirect_checks", &self.indirect_checks)
            .field("retransmit_mult", &self.retransmit_mult)
            .field("suspicion_mult", &self.suspicion_mult)
            .field("suspicion_max_timeout_mult", &self.suspicion_max_timeout_mult)
            .field("push_pull_interval", &self.push_pull_interval)
            .field("probe_interval", &self.probe_interval)
            .field("probe_timeout", &self.probe_timeout)
            .field("disable_tcp_pings", &self.disable_tcp_pings)
            .field("disable_tcp_pings_for_node", &set(&self.disable_tcp_pings_for_node, "<fn>"))
            .field("awareness_max_multiplier", &self.awareness_max_multiplier)
            .field("gossip_interval", &self.gossip_interval)
            .field("gossip_nodes", &self.gossip_nodes)
            .field("gossip_to_the_dead_time", &self.gossip_to_the_dead_time)
            .field("gossip_verify_incoming", &self.gossip_verify_incoming)
            .field("gossip_verify_outgoing", &self.gossip_verify_outgoing)
            .field("enable_compression", &self.enable_compression)
            .field("secret_key", &secret.as_deref().map(Opaque))
            // Keyring's Debug shows key sizes only, never key bytes.
            .field("keyring", &self.keyring)
            .field("delegate", &set(&self.delegate, "<dyn Delegate>"))
            .field("delegate_protocol_version", &self.delegate_protocol_version)
            .field("delegate_protocol_min", &self.delegate_protocol_min)
            .field("delegate_protocol_max", &self.delegate_protocol_max)
            .field("events", &set(&self.events, "<dyn EventDelegate>"))
            .field("conflict", &set(&self.conflict, "<dyn ConflictDelegate>"))
            .field("merge", &set(&self.merge, "<dyn MergeDelegate>"))
            .field("ping", &set(&self.ping, "<dyn PingDelegate>"))
            .field("alive", &set(&self.alive, "<dyn AliveDelegate>"))
            .field("handoff_queue_depth", &self.handoff_queue_depth)
            .field("udp_buffer_size", &self.udp_buffer_size)
            .field("dead_node_reclaim_time", &self.dead_node_reclaim_time)
            .field("require_node_names", &self.require_node_names)
            .field("cidrs_allowed", &self.cidrs_allowed)
            .field("label", &self.label)
            .field("skip_inbound_label_check", &self.skip_inbound_label_check)
            .field("extensions", &self.extensions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const K16: &[u8] = b"0123456789abcdef";
    const K24: &[u8] = b"0123456789abcdef01234567";
    const K32: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// A default LAN config with a name even where the host name is unreadable.
    fn base() -> Config {
        Config::default_lan().with_name("node-a")
    }

    fn rejects(config: &Config, field: &str) -> ConfigError {
        match config.validate() {
            Ok(()) => panic!("expected {field} to be rejected, validate() passed: {config:?}"),
            Err(err) => {
                assert_eq!(err.field(), field, "wrong field named in {err}");
                assert!(err.to_string().contains(field), "message does not name {field}: {err}");
                err
            }
        }
    }

    #[test]
    fn config_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Config>();
        shareable::<ConfigError>();
    }

    #[test]
    fn go_defaults_validate() {
        for (profile, config) in
            [("lan", Config::default_lan()), ("wan", Config::default_wan()), ("local", Config::default_local())]
        {
            let config = if config.name.is_empty() { config.with_name("n") } else { config };
            assert_eq!(config.validate(), Ok(()), "{profile}");
        }
        assert_eq!(Config::default().name, Config::default_lan().name);
        assert_eq!(Config::default().probe_timeout, Duration::from_millis(500));
    }

    #[test]
    fn hostname_matches_proc() {
        let name = Config::default_lan().name;
        if let Ok(raw) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert_eq!(name, raw.strip_suffix('\n').unwrap_or(&raw));
            assert!(!name.ends_with('\n'));
        }
    }

    #[test]
    fn name_must_not_be_empty() {
        rejects(&base().with_name(""), "Name");
    }

    #[test]
    fn protocol_version_range() {
        rejects(&base().with_protocol_version(0), "ProtocolVersion");
        rejects(&base().with_protocol_version(6), "ProtocolVersion");
        for v in PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX {
            assert_eq!(base().with_protocol_version(v).validate(), Ok(()), "version {v}");
        }
    }

    #[test]
    fn delegate_versions_must_be_consistent() {
        rejects(
            &base().with_delegate_protocol_min(3).with_delegate_protocol_max(2).with_delegate_protocol_version(2),
            "DelegateProtocolMin",
        );
        rejects(&base().with_delegate_protocol_max(2).with_delegate_protocol_version(3), "DelegateProtocolVersion");
        rejects(&base().with_delegate_protocol_min(1).with_delegate_protocol_max(2), "DelegateProtocolVersion");
        let ok = base().with_delegate_protocol_min(1).with_delegate_protocol_max(3).with_delegate_protocol_version(2);
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn secret_key_length() {
        let err = rejects(&base().with_secret_key(vec![7; 15]), "SecretKey");
        assert_eq!(err, ConfigError::Key { field: "SecretKey", source: KeyError::BadLength(15) });
        rejects(&base().with_secret_key(vec![7; 33]), "SecretKey");
        for key in [K16, K24, K32] {
            assert_eq!(base().with_secret_key(key).validate(), Ok(()));
        }
        // Go: a zero-length SecretKey is no key at all.
        assert_eq!(base().with_secret_key(Vec::new()).validate(), Ok(()));
    }

    #[test]
    fn label_length() {
        rejects(&base().with_label("x".repeat(LABEL_MAX_SIZE + 1)), "Label");
        assert_eq!(base().with_label("x".repeat(LABEL_MAX_SIZE)).validate(), Ok(()));
        // Bytes, not characters.
        rejects(&base().with_label("é".repeat(128)), "Label");
    }

    #[test]
    fn advertise_address_and_port() {
        rejects(&base().with_advertise_addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), "AdvertiseAddr");
        rejects(&base().with_advertise_addr(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), "AdvertiseAddr");
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        rejects(&base().with_advertise_addr(addr).with_advertise_port(0), "AdvertisePort");
        // With a dynamic bind port Go fills in the advertised port itself.
        assert_eq!(base().with_advertise_addr(addr).with_advertise_port(0).with_bind_port(0).validate(), Ok(()));
        // Without an explicit address the advertised port is the bound one.
        assert_eq!(base().with_advertise_port(0).validate(), Ok(()));
        assert_eq!(base().with_advertise_addr(addr).validate(), Ok(()));
    }

    #[test]
    fn advertise_address_like_go() {
        let bound: SocketAddr = "10.0.0.5:7946".parse().unwrap();
        let private = || Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 9)));
        let none = || -> Option<IpAddr> { panic!("the private address is not needed") };
        // Bound to 0.0.0.0 (the default): a private address, the bound port.
        assert_eq!(base().advertise_address(bound, private), Ok("192.168.1.9:7946".parse().unwrap()));
        let err = base().advertise_address(bound, || None).unwrap_err();
        assert_eq!(err.field(), "AdvertiseAddr");
        // Bound to one address: that one.
        let on_one = base().with_bind_addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(on_one.advertise_address(bound, none), Ok(bound));
        // An explicit address with its port; mapped IPv6 becomes IPv4.
        let explicit =
            base().with_advertise_addr("::ffff:203.0.113.7".parse::<IpAddr>().unwrap()).with_advertise_port(9000);
        assert_eq!(explicit.advertise_address(bound, none), Ok("203.0.113.7:9000".parse().unwrap()));
        // A dynamic bind port replaces the advertised port (Go's Create).
        let dynamic = explicit.with_bind_port(0);
        let picked: SocketAddr = "10.0.0.5:40123".parse().unwrap();
        assert_eq!(dynamic.advertise_address(picked, none), Ok("203.0.113.7:40123".parse().unwrap()));
    }

    #[test]
    fn timing_rules() {
        rejects(&base().with_tcp_timeout(Duration::ZERO), "TCPTimeout");
        rejects(&base().with_probe_interval(Duration::ZERO), "ProbeInterval");
        rejects(&base().with_probe_timeout(Duration::ZERO), "ProbeTimeout");
        rejects(&base().with_suspicion_mult(0), "SuspicionMult");
        rejects(&base().with_suspicion_max_timeout_mult(0), "SuspicionMaxTimeoutMult");
        rejects(&base().with_awareness_max_multiplier(0), "AwarenessMaxMultiplier");
        rejects(&base().with_gossip_to_the_dead_time(Duration::MAX), "GossipToTheDeadTime");
        rejects(&base().with_dead_node_reclaim_time(Duration::from_nanos(i64::MAX as u64 + 1)), "DeadNodeReclaimTime");
        assert_eq!(base().with_dead_node_reclaim_time(Duration::from_nanos(i64::MAX as u64)).validate(), Ok(()));
        // Go does not order probe timeout and interval.
        assert_eq!(base().with_probe_timeout(Duration::from_secs(5)).validate(), Ok(()));
    }

    #[test]
    fn zeros_that_disable_features_in_go_are_accepted() {
        let config = base()
            .with_push_pull_interval(Duration::ZERO)
            .with_gossip_interval(Duration::ZERO)
            .with_gossip_nodes(0)
            .with_indirect_checks(0)
            .with_retransmit_mult(0)
            .with_gossip_to_the_dead_time(Duration::ZERO)
            .with_dead_node_reclaim_time(Duration::ZERO)
            .with_bind_port(0)
            .with_cidrs_allowed(Vec::new());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn queue_and_buffer_sizes() {
        rejects(&base().with_handoff_queue_depth(0), "HandoffQueueDepth");
        assert_eq!(base().with_handoff_queue_depth(1).validate(), Ok(()));
        rejects(&base().with_udp_buffer_size(0), "UDPBufferSize");
        rejects(&base().with_udp_buffer_size(MAX_UDP_PAYLOAD + 1), "UDPBufferSize");
        assert_eq!(base().with_udp_buffer_size(MAX_UDP_PAYLOAD).validate(), Ok(()));
        let min = base().min_udp_buffer_size();
        rejects(&base().with_udp_buffer_size(min - 1), "UDPBufferSize");
        assert_eq!(base().with_udp_buffer_size(min).validate(), Ok(()));
    }

    #[test]
    fn min_udp_buffer_size_matches_go_encoding() {
        // Go's encode() of alive{Incarnation: MaxUint32, Node: "", Addr: 16
        // bytes, Port: 65535, Meta: nil, Vsn: 6 bytes} is 72 bytes including
        // the type byte (measured with go-msgpack 0.5.3, memberlist's codec).
        let unnamed = base().with_name("");
        assert_eq!(unnamed.min_udp_buffer_size(), 2 + 2 + 72);
        // A name up to 31 bytes costs its length; longer names need a 3-byte
        // string header instead of 1.
        assert_eq!(base().with_name("a".repeat(31)).min_udp_buffer_size(), 4 + 72 + 31);
        assert_eq!(base().with_name("a".repeat(32)).min_udp_buffer_size(), 4 + 72 + 32 + 2);
        // Encryption overhead (version 1 from protocol 2 up, version 0 with padding at 1) and label.
        assert_eq!(unnamed.clone().with_secret_key(K16).min_udp_buffer_size(), 76 + 29);
        assert_eq!(unnamed.clone().with_secret_key(K16).with_protocol_version(1).min_udp_buffer_size(), 76 + 45);
        assert_eq!(unnamed.with_label("abc").min_udp_buffer_size(), 76 + 5);
        // Go's defaults are far above it.
        assert!(Config::default_lan().min_udp_buffer_size() < 1400);
    }

    #[test]
    fn effective_keyring_follows_go() {
        // Nothing configured: no encryption.
        assert_eq!(base().effective_keyring(), Ok(None));
        assert!(!base().encryption_enabled());

        // SecretKey only: a keyring holding it.
        let ring = base().with_secret_key(K16).effective_keyring().unwrap().unwrap();
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.primary().unwrap().as_bytes(), K16);

        // Keyring only: as configured.
        let configured = Keyring::new(&[K24], Some(K32)).unwrap();
        let ring = base().with_keyring(configured.clone()).effective_keyring().unwrap();
        assert_eq!(ring, Some(configured.clone()));

        // Both: the secret key is added and becomes primary; the rest stays.
        let config = base().with_keyring(configured.clone()).with_secret_key(K16);
        let ring = config.effective_keyring().unwrap().unwrap();
        let keys: Vec<&[u8]> = ring.keys().iter().map(|k| k.as_bytes()).collect();
        assert_eq!(keys, [K16, K32, K24]);
        // The config itself is untouched.
        assert_eq!(config.keyring, Some(configured.clone()));

        // Both, the secret key already in the ring: it is just made primary.
        let ring = base().with_keyring(configured.clone()).with_secret_key(K24).effective_keyring().unwrap().unwrap();
        let keys: Vec<&[u8]> = ring.keys().iter().map(|k| k.as_bytes()).collect();
        assert_eq!(keys, [K24, K32]);

        // An empty secret key is ignored, as in Go.
        assert_eq!(
            base().with_keyring(configured.clone()).with_secret_key(Vec::new()).effective_keyring(),
            Ok(Some(configured))
        );

        // A bad key names SecretKey.
        let err = base().with_keyring(Keyring::default()).with_secret_key(vec![1; 5]).effective_keyring().unwrap_err();
        assert_eq!(err.field(), "SecretKey");
    }

    #[test]
    fn encryption_enabled_counts_secret_key_and_keyring() {
        assert!(base().with_secret_key(K16).encryption_enabled());
        assert!(base().with_keyring(Keyring::new(&[], Some(K16)).unwrap()).encryption_enabled());
        // Go: a keyring without keys does not encrypt.
        assert!(!base().with_keyring(Keyring::default()).encryption_enabled());
        assert!(!base().with_secret_key(Vec::new()).encryption_enabled());
    }

    #[test]
    fn vsn_array_is_gos_order() {
        let config = base()
            .with_protocol_version(4)
            .with_delegate_protocol_min(1)
            .with_delegate_protocol_max(3)
            .with_delegate_protocol_version(2);
        assert_eq!(config.build_vsn_array(), [1, 5, 4, 1, 3, 2]);
        assert_eq!(Config::default_lan().build_vsn_array(), [1, 5, 2, 0, 0, 0]);
    }

    #[test]
    fn parse_cidrs_like_go() {
        assert_eq!(parse_cidrs::<&str>(&[]), Ok(vec![]));
        let nets =
            parse_cidrs(&[" 10.1.2.3/8 ", "192.168.0.0/16", "\t2001:db8::1/32\n", "::ffff:10.0.0.0/104"]).unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32", "::ffff:10.0.0.0/104"]);
        // Go's prefix may carry leading zeros, and so may its IPv6 groups.
        assert_eq!(parse_cidrs(&["10.0.0.0/008"]).unwrap()[0].to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidrs(&["00001:0:00000000ab::/128"]).unwrap()[0].to_string(), "1:0:ab::/128");
        assert!(parse_cidrs(&["10000::/16", "0::00:1.2.3.4:1/128"]).is_err());
        // Owned strings work too.
        assert_eq!(parse_cidrs(&[String::from("::/0")]).unwrap().len(), 1);

        let err = parse_cidrs(&[
            "10.0.0.0/8",
            "nonsense",
            "10.0.0.0/33",
            " 1.2.3.4",
            "010.0.0.0/8",
            "fe80::1%eth0/64",
            "::/129",
            "1.2.3.4/+8",
            "1.2.3.4/ 8",
            "::/64",
        ])
        .unwrap_err();
        assert_eq!(err.parsed.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "::/64"]);
        assert_eq!(
            err.invalid,
            [
                "nonsense",
                "10.0.0.0/33",
                " 1.2.3.4",
                "010.0.0.0/8",
                "fe80::1%eth0/64",
                "::/129",
                "1.2.3.4/+8",
                "1.2.3.4/ 8"
            ]
        );
        let msg = err.to_string();
        assert!(msg.starts_with("8 errors occurred"), "{msg}");
        assert!(msg.contains("invalid cidr: nonsense") && msg.contains("invalid cidr:  1.2.3.4"), "{msg}");
        assert_eq!(parse_cidrs(&["x"]).unwrap_err().to_string(), "invalid cidr: x");
    }

    #[test]
    fn ip_allowed_like_go() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();

        // nil: everyone.
        let open = base();
        assert!(!open.ip_must_be_checked());
        assert_eq!(open.ip_allowed(outside), Ok(()));

        // Empty list: Go's code allows everyone too, despite its doc comment.
        let empty = base().with_cidrs_allowed(Vec::new());
        assert!(!empty.ip_must_be_checked());
        for ip in [v4, mapped, v6, outside] {
            assert_eq!(empty.ip_allowed(ip), Ok(()));
        }

        let listed = base().with_cidrs_allowed(parse_cidrs(&["10.0.0.0/8", "2001:db8::/32"]).unwrap());
        assert!(listed.ip_must_be_checked());
        assert_eq!(listed.ip_allowed(v4), Ok(()));
        assert_eq!(listed.ip_allowed(mapped), Ok(()), "Go matches IPv4-mapped addresses as IPv4");
        assert_eq!(listed.ip_allowed(v6), Ok(()));
        assert_eq!(listed.ip_allowed(outside), Err(IpNotAllowed(outside)));
        assert_eq!(IpNotAllowed(outside).to_string(), "192.0.2.1 is not allowed");

        // Families are separate: ::/0 does not admit IPv4 (mapped or not).
        let v6_only = base().with_cidrs_allowed(parse_cidrs(&["::/0"]).unwrap());
        assert!(v6_only.ip_allowed(v4).is_err());
        assert!(v6_only.ip_allowed(mapped).is_err());
        assert_eq!(v6_only.ip_allowed(v6), Ok(()));

        // A network written as IPv4-mapped IPv6 is an IPv4 network to Go.
        let mapped_net = base().with_cidrs_allowed(parse_cidrs(&["::ffff:10.0.0.0/104"]).unwrap());
        assert_eq!(mapped_net.ip_allowed(v4), Ok(()));
        assert_eq!(mapped_net.ip_allowed(mapped), Ok(()));
        assert!(mapped_net.ip_allowed(outside).is_err());
        assert!(mapped_net.ip_allowed(v6).is_err());
        let all_v4 = base().with_cidrs_allowed(parse_cidrs(&["::ffff:0:0/96"]).unwrap());
        assert_eq!(all_v4.ip_allowed(outside), Ok(()));
        assert!(all_v4.ip_allowed(v6).is_err());
        // Go looks at the unmasked address of a hand-built network: a mapped
        // address with a prefix below 96 keeps no IPv4 bits and admits all IPv4.
        let short: IpNet = "::ffff:10.0.0.0/80".parse().unwrap();
        let short = base().with_cidrs_allowed(vec![short]);
        assert_eq!(short.ip_allowed(outside), Ok(()));
        assert!(short.ip_allowed("::1".parse().unwrap()).is_err());
    }

    #[test]
    fn debug_hides_key_material() {
        let secret = b"SuperSecretKey!!";
        let config = base()
            .with_secret_key(secret.as_slice())
            .with_keyring(Keyring::new(&[K24], Some(K32)).unwrap())
            .with_disable_tcp_pings_for_node(|_| false);
        let shown = format!("{config:?}");
        for key in [secret.as_slice(), K24, K32] {
            let text = String::from_utf8_lossy(key);
            assert!(!shown.contains(text.as_ref()), "{shown}");
            assert!(!shown.contains(&format!("{key:?}")), "{shown}");
        }
        assert!(shown.contains("<16 bytes redacted>"), "{shown}");
        assert!(shown.contains("disable_tcp_pings_for_node: Some(<fn>)"), "{shown}");
        assert!(shown.contains("name: \"node-a\""), "{shown}");
    }

    #[test]
    fn error_messages_name_both_fields() {
        let err = base().with_protocol_version(9).validate().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ProtocolVersion") && msg.contains("protocol_version"), "{msg}");
        let err = base().with_udp_buffer_size(10).validate().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("UDPBufferSize") && msg.contains("udp_buffer_size"), "{msg}");
    }
}
