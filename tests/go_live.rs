//! Live interop: ringswim nodes and real Go memberlist 0.2.2 nodes in one
//! cluster, on loopback sockets.
//!
//! The Go nodes run in one `gonodes` process (tests/interop/go/gonodes,
//! built by `tests/interop/build.sh` against Debian's memberlist package:
//! `DefaultLocalConfig`, loopback, free ports), driven by JSON lines. Each
//! test mixes ringswim nodes (on one runtime of the backend under test,
//! every test on both backends where the kernel allows io_uring) and Go
//! nodes, and checks what a user of either would: every node's member
//! table (Go's from its `nodeMap`, ringswim's `member_states`), events,
//! user messages, ack payloads, metadata, ringswim's counters, Go's log
//! lines, and what a Go node received (decoded by memberlist's own code).
//!
//! To stop one side without the other (SIGSTOP, then SIGCONT), the Go
//! process is stopped whole, and a ringswim node is hosted in a child
//! process (this test binary, running `rs_child_process`).
//!
//! Every wait is on a condition with a bounded deadline; the child
//! processes are killed and every ringswim node shut down when a test ends,
//! passed or not (a failing test prints the Go side's log). With
//! `GO_LIVE_DEBUG=1` (and `--nocapture`) every wait prints what it is still
//! waiting for, and when it ended.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use ringswim::config::{Config, META_MAX_SIZE};
use ringswim::delegate::{ChannelEventDelegate, Delegate, Node, NodeEvent, NodeEventKind, NodeState, PingDelegate};
use ringswim::engine::{Backend, BackendChoice, Memberlist, Runtime, RuntimeOptions};
use ringswim::sim::Gossip;
use ringswim::swim::metrics::{DROPPED, GO_MSG, PROBES};
use serde_json::{Value, json};

#[path = "common/child.rs"]
mod child;
#[path = "common/gonodes.rs"]
mod gonodes;
use gonodes::gonodes_bin;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOOPBACK_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
/// Long enough for anything below on a loaded 2-core machine; a test that
/// hits it fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// Every node's probe interval, Go's and ringswim's (`DefaultLocalConfig`
/// otherwise): a few probe rounds and a suspicion timeout take seconds.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Every node's push/pull interval. Go's budget for a rumour at
/// `DefaultLocalConfig` (2 sends per node at 6 members) lets news of a join
/// miss a member now and then (1 join in 5 in an all-Go cluster of 6 here),
/// which then learns it at the next push/pull: 15 s by default.
const PUSH_PULL_INTERVAL: Duration = Duration::from_secs(2);
/// How long a leave or meta update may wait for its broadcast.
const BROADCAST_WAIT: Duration = Duration::from_secs(5);
const KEY: &[u8] = b"0123456789abcdef";
const NEXT_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";

#[path = "common/backends.rs"]
mod backends;
use backends::backends;

/// Polls `check` every 20 ms until it returns `Ok` or [`DEADLINE`] passes;
/// then panics with its last complaint. With `GO_LIVE_DEBUG` set, prints
/// each new complaint and the time it took (run with `--nocapture`).
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match check() {
            Ok(()) => {
                if std::env::var_os("GO_LIVE_DEBUG").is_some() {
                    eprintln!("{:.2?} {what}: done", start.elapsed());
                }
                return;
            }
            Err(why) if start.elapsed() >= DEADLINE => panic!("timed out waiting for {what}: {why}"),
            Err(why) => {
                if std::env::var_os("GO_LIVE_DEBUG").is_some() && why != last {
                    eprintln!("{:.2?} {what}: {why}", start.elapsed());
                    last = why;
                }
                std::thread::sleep(Duration::from_millis(20))
            }
        }
    }
}

/// Sends `child` signal `name` (`STOP`, `CONT`) with kill(1).
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([format!("-{name}"), child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -{name} {}", child.id());
}

/// One process of Go memberlist nodes (see tests/interop/go/gonodes/main.go
/// for its commands). Killed on drop.
struct GoNodes {
    child: Child,
    stdin: RefCell<ChildStdin>,
    answers: Receiver<String>,
    /// The last lines of memberlist's log, printed when a test fails.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl GoNodes {
    fn spawn() -> GoNodes {
        let mut child = Command::new(gonodes_bin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gonodes");
        let stdin = RefCell::new(child.stdin.take().expect("piped"));
        let answers = child::lines(child.stdout.take().expect("piped"));
        // Drained always, so that a chatty log never blocks the Go side.
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() == 200 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        GoNodes { child, stdin, answers, log }
    }

    /// Stops (`STOP`) or resumes (`CONT`) the process.
    fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Sends one command; its answer, whether it succeeded or not.
    fn try_call(&self, request: Value) -> Value {
        writeln!(self.stdin.borrow_mut(), "{request}").expect("write to gonodes");
        let line = self.answers.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("gonodes did not answer {request}"));
        serde_json::from_str(&line).expect("gonodes answers JSON")
    }

    /// Sends one command that must succeed; its answer.
    fn call(&self, request: Value) -> Value {
        let answer = self.try_call(request.clone());
        assert_eq!(answer["ok"], true, "gonodes refused {request}: {}", answer["error"]);
        answer
    }
}

impl Drop for GoNodes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            eprintln!("--- Go memberlist log (last {} lines) ---", log.len());
            for line in log.iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// The application of a ringswim node: user messages and broadcasts
/// ([`Gossip`]: a message's first 4 bytes are its number), settable meta,
/// and the acks its probes got.
struct App {
    name: String,
    gossip: Gossip,
    /// Every user message [`Delegate::notify_msg`] got.
    received: Mutex<Vec<Vec<u8>>>,
    meta: Mutex<Vec<u8>>,
    /// Per member probed: acks received, the last ack's payload.
    acks: Mutex<BTreeMap<String, (u64, Vec<u8>)>>,
}

impl Delegate for App {
    fn node_meta(&self, _limit: usize) -> Vec<u8> {
        self.meta.lock().expect("meta").clone()
    }
    fn notify_msg(&self, msg: &[u8]) {
        self.received.lock().expect("received").push(msg.to_vec());
        self.gossip.notify_msg(msg);
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.gossip.get_broadcasts(overhead, limit)
    }
    fn local_state(&self, join: bool) -> Vec<u8> {
        self.gossip.local_state(join)
    }
    fn merge_remote_state(&self, buf: &[u8], join: bool) {
        self.gossip.merge_remote_state(buf, join);
    }
}

impl PingDelegate for App {
    fn ack_payload(&self) -> Vec<u8> {
        format!("ack:{}", self.name).into_bytes()
    }
    fn notify_ping_complete(&self, node: &Node, _rtt: Duration, payload: &[u8]) {
        let mut acks = self.acks.lock().expect("acks");
        let entry = acks.entry(node.name.to_string()).or_default();
        entry.0 += 1;
        entry.1 = payload.to_vec();
    }
}

struct RustNode {
    member: Memberlist,
    app: Arc<App>,
    events: Receiver<NodeEvent>,
}

impl RustNode {
    /// Hosts ringswim node `name` on `runtime`, bound to `bind` (port 0: a
    /// free one), with `meta`, configured as the Go nodes are (see
    /// [`Mixed::add`]).
    fn host(runtime: &Runtime, name: &str, opts: Opts, bind: SocketAddr, meta: Vec<u8>) -> RustNode {
        let app = Arc::new(App {
            name: name.to_owned(),
            gossip: Gossip::new(4),
            received: Mutex::default(),
            meta: Mutex::new(meta),
            acks: Mutex::default(),
        });
        let (tx, events) = channel();
        let mut config = Config::default_local()
            .with_name(name)
            .with_bind_addr(bind.ip())
            .with_bind_port(bind.port())
            .with_probe_interval(PROBE_INTERVAL)
            .with_push_pull_interval(PUSH_PULL_INTERVAL)
            .with_enable_compression(opts.compression)
            .with_delegate(Arc::clone(&app) as Arc<dyn Delegate>)
            .with_ping(Arc::clone(&app) as Arc<dyn PingDelegate>)
            .with_events(Arc::new(ChannelEventDelegate::new(tx)));
        if let Some(key) = opts.key {
            config = config.with_secret_key(key.to_vec());
        }
        let member = runtime.host(config).expect("hosted");
        RustNode { member, app, events }
    }
}

/// Every node's meta until it updates it.
fn initial_meta(name: &str) -> Vec<u8> {
    format!("meta:{name}").into_bytes()
}

/// How a node is configured, on either side.
#[derive(Clone, Copy)]
struct Opts {
    compression: bool,
    key: Option<&'static [u8]>,
}

const PLAIN: Opts = Opts { compression: true, key: None };

/// One member as some node's table has it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    state: String,
    incarnation: u32,
    addr: SocketAddr,
    meta: Vec<u8>,
}

/// Node name -> (member name -> what that node knows of it).
type Views = BTreeMap<String, BTreeMap<String, Seen>>;

/// A cluster of ringswim nodes (names `rs-*`) and Go nodes (`go-*`).
struct Mixed {
    backend: Backend,
    /// Dropped first: each node shuts down while its runtime still runs.
    rust: BTreeMap<String, RustNode>,
    go: GoNodes,
    runtime: Runtime,
    /// The loopback address every node binds (IPv4 or IPv6).
    ip: IpAddr,
    /// The Go nodes still running.
    go_running: BTreeSet<String>,
    /// Every node's address, stopped ones included.
    addrs: BTreeMap<String, SocketAddr>,
}

impl Mixed {
    /// No nodes yet; each will bind a free port on `ip`.
    fn new(backend: Backend, ip: IpAddr) -> Mixed {
        let runtime = Runtime::new(RuntimeOptions { threads: 2, backend: BackendChoice::Only(backend), pin: false })
            .expect("runtime starts");
        Mixed {
            backend,
            rust: BTreeMap::new(),
            go: GoNodes::spawn(),
            runtime,
            ip,
            go_running: BTreeSet::new(),
            addrs: BTreeMap::new(),
        }
    }

    /// Starts a node: `rs-*` here, `go-*` in the Go process, on a free
    /// port. Its meta is `meta:NAME`.
    fn add(&mut self, name: &str, opts: Opts) {
        self.start(name, opts, SocketAddr::new(self.ip, 0), initial_meta(name));
    }

    /// Starts node `name` again after [`Mixed::kill`]: same name, same
    /// address, new `meta` (it joins nobody yet).
    fn restart(&mut self, name: &str, opts: Opts, meta: Vec<u8>) {
        assert!(!self.running().contains(name), "{name} is running");
        let addr = self.addr(name);
        self.start(name, opts, addr, meta);
        assert_eq!(self.addr(name), addr, "{name} restarted elsewhere");
    }

    fn start(&mut self, name: &str, opts: Opts, bind: SocketAddr, meta: Vec<u8>) {
        let addr = if name.starts_with("rs-") {
            let node = RustNode::host(&self.runtime, name, opts, bind, meta);
            let addr = node.member.local_node().expect("running").address();
            self.rust.insert(name.to_owned(), node);
            addr
        } else {
            let key = opts.key.map(|k| base64::engine::general_purpose::STANDARD.encode(k)).unwrap_or_default();
            let answer = self.go.call(json!({
                "cmd": "start", "name": name, "compression": opts.compression, "key": key,
                "probe_interval_ms": PROBE_INTERVAL.as_millis() as u64,
                "push_pull_interval_ms": PUSH_PULL_INTERVAL.as_millis() as u64, "meta": hex::encode(meta),
                "bind_addr": bind.ip().to_string(), "bind_port": bind.port(),
            }));
            self.go_running.insert(name.to_owned());
            SocketAddr::new(answer["addr"].as_str().expect("addr").parse().expect("an IP"), port_of(&answer))
        };
        self.addrs.insert(name.to_owned(), addr);
    }

    /// Records the address of node `name` hosted elsewhere (an
    /// [`RsChild`]), so that [`Mixed::all_see`] can check it.
    fn track(&mut self, name: &str, addr: SocketAddr) {
        self.addrs.insert(name.to_owned(), addr);
    }

    fn rs(&self, name: &str) -> &RustNode {
        &self.rust[name]
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// `who` joins the cluster through `seed` (a push/pull from `who` to
    /// `seed`); the error, if it failed.
    fn try_join(&self, who: &str, seed: &str) -> Result<(), String> {
        let seed = self.addr(seed);
        match self.rust.get(who) {
            Some(n) => n.member.join(&[seed]).map(|_| ()).map_err(|e| e.to_string()),
            None => {
                let answer = self.go.try_call(json!({"cmd": "join", "node": who, "addrs": [seed.to_string()]}));
                if answer["ok"] == true { Ok(()) } else { Err(answer["error"].to_string()) }
            }
        }
    }

    fn join(&self, who: &str, seed: &str) {
        self.try_join(who, seed).unwrap_or_else(|e| panic!("{:?}: {who} joins {seed}: {e}", self.backend));
    }

    fn running(&self) -> BTreeSet<String> {
        self.rust.keys().chain(&self.go_running).cloned().collect()
    }

    /// Every running node's member table.
    fn views(&self) -> Views {
        let mut views = Views::new();
        for (name, n) in &self.rust {
            let table = n
                .member
                .member_states()
                .into_iter()
                .map(|m| {
                    let seen = Seen {
                        state: m.node.state.as_str().to_owned(),
                        incarnation: m.incarnation,
                        addr: m.node.address(),
                        meta: m.node.meta.clone(),
                    };
                    (m.node.name.to_string(), seen)
                })
                .collect();
            views.insert(name.clone(), table);
        }
        let answer = self.go.call(json!({"cmd": "members"}));
        for (name, table) in answer["views"].as_object().expect("views") {
            let table = table
                .as_array()
                .expect("a table")
                .iter()
                .map(|m| {
                    let ip: IpAddr = m["addr"].as_str().expect("addr").parse().expect("an IP");
                    let seen = Seen {
                        state: m["state"].as_str().expect("state").to_owned(),
                        incarnation: m["incarnation"].as_u64().expect("incarnation") as u32,
                        addr: SocketAddr::new(ip, port_of(m)),
                        meta: hex::decode(m["meta"].as_str().expect("meta")).expect("hex"),
                    };
                    (m["name"].as_str().expect("name").to_owned(), seen)
                })
                .collect();
            views.insert(name.clone(), table);
        }
        views
    }

    /// Checks that every running node but `except` has each of `expected`
    /// in the given state, at its real address; the first node that does
    /// not, and why. All the views.
    fn all_see(&self, expected: &BTreeMap<String, &str>, except: &[&str]) -> Result<Views, String> {
        let views = self.views();
        for (observer, table) in views.iter().filter(|(o, _)| !except.contains(&o.as_str())) {
            for (member, state) in expected {
                match table.get(member) {
                    Some(seen) if seen.state == *state && seen.addr == self.addr(member) => {}
                    Some(seen) => return Err(format!("{observer} has {member} as {seen:?}, not {state}")),
                    None => return Err(format!("{observer} does not know {member}")),
                }
            }
        }
        Ok(views)
    }

    /// Whether every running node has every running node alive; the
    /// views if so.
    fn converge_now(&self) -> Result<Views, String> {
        let alive: BTreeMap<String, &str> = self.running().into_iter().map(|n| (n, "alive")).collect();
        self.all_see(&alive, &[])
    }

    /// Waits until every running node has every running node alive; the
    /// views then.
    fn converge(&self) -> Views {
        let mut views = Views::new();
        eventually(&format!("{:?}: everyone alive everywhere", self.backend), || {
            views = self.converge_now()?;
            Ok(())
        });
        views
    }

    /// Stops a node without leaving (ringswim `shutdown`, Go `Shutdown`).
    fn kill(&mut self, name: &str) {
        if let Some(n) = self.rust.remove(name) {
            n.member.shutdown().expect("running");
        } else {
            self.go.call(json!({"cmd": "shutdown", "node": name}));
            self.go_running.remove(name);
        }
    }

    /// Leaves gracefully (ringswim `leave`, Go `Leave`); the node keeps
    /// running, as in Go, until [`Mixed::kill`].
    fn leave(&self, name: &str) {
        match self.rust.get(name) {
            Some(n) => n.member.leave(BROADCAST_WAIT).expect("leave broadcast goes out"),
            None => {
                self.go.call(json!({"cmd": "leave", "node": name, "timeout_ms": BROADCAST_WAIT.as_millis() as u64}));
            }
        }
    }

    /// Sends a user message from `from` to `to`, best-effort or reliable.
    fn send(&self, from: &str, to: &str, msg: &[u8], reliable: bool) {
        match self.rust.get(from) {
            Some(n) if reliable => n.member.send_reliable(self.addr(to), msg).expect("sent"),
            Some(n) => n.member.send_best_effort(self.addr(to), msg).expect("sent"),
            None => {
                self.go.call(
                    json!({"cmd": "send", "node": from, "to": to, "msg": hex::encode(msg), "reliable": reliable}),
                );
            }
        }
    }

    /// Whether `at` got exactly `msg` as a user message (ringswim:
    /// [`Delegate::notify_msg`]; Go: `NotifyMsg` or push/pull user state).
    fn got_message(&self, at: &str, msg: &[u8]) -> bool {
        match self.rust.get(at) {
            Some(node) => node.app.received.lock().expect("received").iter().any(|m| m == msg),
            None => {
                let answer = self.go.call(json!({"cmd": "messages", "node": at}));
                let want = hex::encode(msg);
                answer["messages"].as_array().expect("messages").iter().any(|m| m.as_str() == Some(want.as_str()))
            }
        }
    }

    /// Whether `at` has seen a user message or broadcast numbered `n` (its
    /// first 4 bytes), by any path (ringswim: [`Gossip::has_seen`]).
    fn has_seen(&self, at: &str, n: u32) -> bool {
        match self.rust.get(at) {
            Some(node) => node.app.gossip.has_seen(n),
            None => {
                let answer = self.go.call(json!({"cmd": "messages", "node": at}));
                let want = hex::encode(n.to_be_bytes());
                answer["messages"]
                    .as_array()
                    .expect("messages")
                    .iter()
                    .any(|m| m.as_str().is_some_and(|m| m.starts_with(&want)))
            }
        }
    }

    /// The acks `at`'s probes got: member -> (count, last payload).
    fn acks(&self, at: &str) -> BTreeMap<String, (u64, Vec<u8>)> {
        match self.rust.get(at) {
            Some(node) => node.app.acks.lock().expect("acks").clone(),
            None => {
                let answer = self.go.call(json!({"cmd": "acks", "node": at}));
                answer["acks"]
                    .as_object()
                    .expect("acks")
                    .iter()
                    .map(|(name, r)| {
                        let payload = hex::decode(r["payload"].as_str().expect("payload")).expect("hex");
                        (name.clone(), (r["count"].as_u64().expect("count"), payload))
                    })
                    .collect()
            }
        }
    }

    /// What Go node `at` received so far, decoded as memberlist does, by
    /// kind: `udp`, `tcp` (packets, streams), `udp:nack`, `tcp:push_pull`,
    /// ... (messages by type), `udp:compressed`, `tcp:compressed` (see
    /// `received` in tests/interop/go/gonodes/main.go).
    fn go_received(&self, at: &str) -> BTreeMap<String, u64> {
        let answer = self.go.call(json!({"cmd": "received", "node": at}));
        let counts = answer["received"].as_object().expect("received");
        counts.iter().map(|(kind, n)| (kind.clone(), n.as_u64().expect("a count"))).collect()
    }

    /// Go node `at`'s memberlist log lines so far.
    fn go_log(&self, at: &str) -> Vec<String> {
        let answer = self.go.call(json!({"cmd": "log", "node": at}));
        answer["lines"].as_array().expect("lines").iter().map(|l| l.as_str().expect("a line").to_owned()).collect()
    }

    /// The Go node's events: (kind, member, meta).
    fn go_events(&self, at: &str) -> Vec<(String, String, Vec<u8>)> {
        let answer = self.go.call(json!({"cmd": "events", "node": at}));
        answer["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                let meta = hex::decode(e["meta"].as_str().expect("meta")).expect("hex");
                (e["kind"].as_str().expect("kind").to_owned(), e["name"].as_str().expect("name").to_owned(), meta)
            })
            .collect()
    }
}

fn port_of(v: &Value) -> u16 {
    u16::try_from(v["port"].as_u64().expect("port")).expect("a port")
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Starts `rs-0`, has `go-0` join it, `rs-1` join `go-0` and `go-1` join
/// `rs-1` (push/pulls Go -> ringswim and ringswim -> Go), and waits until all
/// see all alive. On 127.0.0.1 ([`two_and_two_on`] for another address).
fn two_and_two(backend: Backend, opts: [Opts; 4]) -> (Mixed, Views) {
    two_and_two_on(LOOPBACK, backend, opts)
}

/// [`two_and_two`] with every node bound on `ip`.
fn two_and_two_on(ip: IpAddr, backend: Backend, opts: [Opts; 4]) -> (Mixed, Views) {
    let mut c = Mixed::new(backend, ip);
    for (name, o) in ["rs-0", "go-0", "rs-1", "go-1"].into_iter().zip(opts) {
        c.add(name, o);
    }
    c.join("go-0", "rs-0");
    c.join("rs-1", "go-0");
    c.join("go-1", "rs-1");
    let views = c.converge();
    (c, views)
}

#[test]
fn go_joins_ringswim_and_ringswim_joins_go() {
    for backend in backends() {
        let (c, views) = two_and_two(backend, [PLAIN; 4]);
        // Each member is known everywhere with its own meta and one
        // incarnation: the one it announces itself.
        for member in names(&["rs-0", "go-0", "rs-1", "go-1"]) {
            let own = &views[&member][&member];
            assert_eq!(own.meta, format!("meta:{member}").into_bytes(), "{backend:?} {member}");
            for (observer, table) in &views {
                assert_eq!(table[&member], *own, "{backend:?}: {observer}'s view of {member}");
            }
        }
        // Go's events: a join for each member, nothing else.
        for go in ["go-0", "go-1"] {
            let joined: BTreeSet<String> = c
                .go_events(go)
                .into_iter()
                .map(|(kind, name, _)| {
                    assert_eq!(kind, "join", "{backend:?} {go}: {name}");
                    name
                })
                .collect();
            assert_eq!(joined.len(), 4, "{backend:?} {go}: {joined:?}");
        }
        // ringswim's events: a join for each member.
        for rs in ["rs-0", "rs-1"] {
            let joined: BTreeSet<String> = c
                .rs(rs)
                .events
                .try_iter()
                .filter(|e| e.kind == NodeEventKind::Join)
                .map(|e| e.node.name.to_string())
                .collect();
            assert_eq!(joined.len(), 4, "{backend:?} {rs}: {joined:?}");
        }
    }
}

#[test]
fn eight_and_eight_converge_through_either_side() {
    for backend in backends() {
        let mut c = Mixed::new(backend, LOOPBACK);
        let order: Vec<String> = (0..8).flat_map(|i| [format!("rs-{i}"), format!("go-{i}")]).collect();
        for (k, name) in order.iter().enumerate() {
            c.add(name, PLAIN);
            match k {
                0 => {}
                // The last two join through three seeds at once, each one
                // a push/pull with members of both sides.
                14 | 15 => {
                    let seeds: Vec<SocketAddr> = order[..3].iter().map(|s| c.addr(s)).collect();
                    let joined = match c.rust.get(name) {
                        Some(n) => n.member.join(&seeds).expect("join"),
                        None => {
                            let addrs: Vec<String> = seeds.iter().map(SocketAddr::to_string).collect();
                            let answer = c.go.call(json!({"cmd": "join", "node": name, "addrs": addrs}));
                            answer["joined"].as_u64().expect("joined") as usize
                        }
                    };
                    assert_eq!(joined, 3, "{backend:?}: {name}");
                }
                // Every other one through the previous, on the other side.
                _ => c.join(name, &order[k - 1]),
            }
        }
        let views = c.converge();
        for member in &order {
            let own = &views[member][member];
            for (observer, table) in &views {
                assert_eq!(table[member], *own, "{backend:?}: {observer}'s view of {member}");
            }
        }
    }
}

#[test]
fn probes_both_ways_keep_everyone_alive() {
    for backend in backends() {
        let (c, converged) = two_and_two(backend, [PLAIN; 4]);
        let everyone = names(&["rs-0", "go-0", "rs-1", "go-1"]);
        // Until every node has had 3 acks from each other node (a few probe
        // rounds), every table has everyone alive, at the incarnation it
        // had (a refutation would raise it).
        eventually(&format!("{backend:?}: 3 acked probes of each member by each node"), || {
            let views = c.views();
            assert_eq!(views, converged, "{backend:?}: a member's state changed");
            for prober in &everyone {
                let acks = c.acks(prober);
                for target in everyone.iter().filter(|t| *t != prober) {
                    let (count, payload) = acks.get(target).cloned().unwrap_or_default();
                    if count < 3 {
                        return Err(format!("{prober} has {count} acks from {target}"));
                    }
                    assert_eq!(payload, format!("ack:{target}").into_bytes(), "{backend:?}: {prober} <- {target}");
                }
            }
            Ok(())
        });
        for rs in ["rs-0", "rs-1"] {
            let m = c.rs(rs).member.metrics();
            assert_eq!(m.get(GO_MSG, "suspect"), 0, "{backend:?}: {rs} suspected someone");
            assert_eq!(m.get(GO_MSG, "dead"), 0, "{backend:?}: {rs} declared someone dead");
            assert_eq!(c.rs(rs).member.health_score(), 0, "{backend:?}: {rs} unhealthy");
        }
        for go in ["go-0", "go-1"] {
            let leaves: Vec<_> = c.go_events(go).into_iter().filter(|(kind, ..)| kind != "join").collect();
            assert!(leaves.is_empty(), "{backend:?}: {go} saw {leaves:?}");
        }
    }
}

#[test]
fn a_paused_go_process_is_suspected_and_its_nodes_refute() {
    for backend in backends() {
        let (c, before) = two_and_two(backend, [PLAIN; 4]);
        // Stop the Go process: its nodes answer nothing, and ringswim
        // suspects them (only ringswim's tables can be read meanwhile).
        c.go.signal("STOP");
        eventually(&format!("{backend:?}: both Go nodes suspected at both ringswim nodes"), || {
            for rs in ["rs-0", "rs-1"] {
                for m in c.rs(rs).member.member_states() {
                    if m.node.name.starts_with("go-") && m.node.state == NodeState::Alive {
                        return Err(format!("{rs} still has {} alive", m.node.name));
                    }
                }
            }
            Ok(())
        });
        // Resumed, each Go node hears the accusation and refutes it with a
        // higher incarnation, which every node takes (whatever Go made of
        // the probes that ran out while it stood still, answered in turn).
        c.go.signal("CONT");
        let mut after = Views::new();
        eventually(&format!("{backend:?}: Go nodes refuted, everyone alive everywhere"), || {
            let views = c.converge_now()?;
            for go in ["go-0", "go-1"] {
                let (old, new) = (before[go][go].incarnation, views[go][go].incarnation);
                if new <= old {
                    return Err(format!("{go} still at incarnation {new}"));
                }
            }
            after = views;
            Ok(())
        });
        for member in ["rs-0", "go-0", "rs-1", "go-1"] {
            let own = &after[member][member];
            for (observer, table) in &after {
                assert_eq!(table[member].incarnation, own.incarnation, "{backend:?}: {observer}'s view of {member}");
            }
        }
        for rs in ["rs-0", "rs-1"] {
            assert!(c.rs(rs).member.metrics().get(GO_MSG, "suspect") > 0, "{backend:?}: {rs} never suspected");
        }
    }
}

/// Names the node [`rs_child_process`] hosts, and its backend.
const CHILD_ENV: &str = "GO_LIVE_RS_CHILD";

/// A ringswim node in a child process (this test binary running
/// [`rs_child_process`]), so that a test can stop it (SIGSTOP) and nothing
/// else. Killed on drop.
struct RsChild {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    addr: SocketAddr,
}

impl RsChild {
    fn spawn(name: &str, backend: Backend) -> RsChild {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--ignored", "--exact", "rs_child_process", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{name} {}", backend.name()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child node");
        let stdin = child.stdin.take().expect("piped");
        let (tx, lines) = channel();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        std::thread::spawn(move || {
            // Only what the child prints: libtest prints its own lines,
            // and the start of one ("test rs_child_process ... ") before
            // the child's first.
            for line in stdout.lines().map_while(Result::ok) {
                if let Some((_, line)) = line.split_once("CHILD ")
                    && tx.send(line.to_owned()).is_err()
                {
                    return;
                }
            }
        });
        let mut c = RsChild { child, stdin, lines, addr: SocketAddr::from((LOOPBACK, 0)) };
        c.addr = c.answer().parse().expect("the child's address");
        c
    }

    fn answer(&self) -> String {
        self.lines.recv_timeout(DEADLINE).expect("the child node answers")
    }

    /// Joins the cluster through `seed`.
    fn join(&mut self, seed: SocketAddr) {
        writeln!(self.stdin, "{seed}").expect("write to the child");
        assert_eq!(self.answer(), "joined", "the child node joins {seed}");
    }
}

impl Drop for RsChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Not a test: the body of [`RsChild`]'s process, which runs only this,
/// with [`CHILD_ENV`] set (without it, it returns at once). Hosts one
/// ringswim node as [`Mixed::add`] does, prints `CHILD ADDR`, then joins
/// each address read from stdin (`CHILD joined` after each), until stdin
/// closes.
#[test]
#[ignore = "the child process of tests that stop a ringswim node"]
fn rs_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (name, backend) = spec.split_once(' ').expect("NAME BACKEND");
    let backend = [Backend::Uring, Backend::Portable].into_iter().find(|b| b.name() == backend).expect("a backend");
    let runtime = Runtime::new(RuntimeOptions { threads: 1, backend: BackendChoice::Only(backend), pin: false })
        .expect("runtime starts");
    let node = RustNode::host(&runtime, name, PLAIN, SocketAddr::new(LOOPBACK, 0), initial_meta(name));
    println!("CHILD {}", node.member.local_node().expect("running").address());
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let seed: SocketAddr = line.trim().parse().expect("an address");
        node.member.join(&[seed]).expect("join");
        println!("CHILD joined");
    }
}

#[test]
fn a_paused_ringswim_node_is_suspected_by_go_and_refutes() {
    for backend in backends() {
        let (c, _) = two_and_two(backend, [PLAIN; 4]);
        let mut child = RsChild::spawn("rs-px", backend);
        child.join(c.addr("go-0"));
        let alive_everywhere = |min_incarnation: u32| {
            for (observer, table) in c.views() {
                match table.get("rs-px") {
                    Some(seen) if seen.state == "alive" && seen.incarnation >= min_incarnation => {
                        assert_eq!(seen.addr, child.addr, "{backend:?}: {observer}'s view of rs-px");
                    }
                    other => return Err(format!("{observer} has rs-px as {other:?}")),
                }
            }
            Ok(())
        };
        eventually(&format!("{backend:?}: rs-px alive everywhere"), || alive_everywhere(0));
        let before = c.views()["go-0"]["rs-px"].incarnation;
        // Stopped, it answers no probe: Go suspects it (so does ringswim).
        signal(&child.child, "STOP");
        eventually(&format!("{backend:?}: rs-px suspected at both Go nodes"), || {
            for (observer, table) in c.views().iter().filter(|(o, _)| o.starts_with("go-")) {
                if table["rs-px"].state == "alive" {
                    return Err(format!("{observer} still has rs-px alive"));
                }
            }
            Ok(())
        });
        // Resumed, it hears the accusation and refutes it with a higher
        // incarnation, which Go (and ringswim) take.
        signal(&child.child, "CONT");
        eventually(&format!("{backend:?}: rs-px refuted, alive everywhere"), || alive_everywhere(before + 1));
        c.converge();
    }
}

/// Lifeguard's indirect probe with nacks, live: rs-0 and go-0 with a third
/// member, rs-px, in a child process that is then stopped. Each prober's
/// only possible relay is the other side's node (the third member is the
/// target), so each indirect ping and nack counted came across.
#[test]
fn indirect_probes_of_a_paused_node_are_relayed_and_nacked_both_ways() {
    for backend in backends() {
        let mut c = Mixed::new(backend, LOOPBACK);
        c.add("rs-0", PLAIN);
        c.add("go-0", PLAIN);
        c.join("go-0", "rs-0");
        let mut child = RsChild::spawn("rs-px", backend);
        child.join(c.addr("go-0"));
        c.track("rs-px", child.addr);
        let everyone: BTreeMap<String, &str> =
            names(&["rs-0", "go-0", "rs-px"]).into_iter().map(|n| (n, "alive")).collect();
        eventually(&format!("{backend:?}: rs-px alive at rs-0 and go-0"), || c.all_see(&everyone, &[]).map(drop));
        signal(&child.child, "STOP");
        // Counted from the pause on (a probe slowed by a loaded machine
        // may have gone indirect before).
        let rs_probes = |reason: &str| c.rs("rs-0").member.metrics().get(PROBES, reason);
        let rs_before = ["indirect_ping_sent", "nack_received", "nack_sent"].map(rs_probes);
        let go_received = |kind: &str| c.go_received("go-0").get(kind).copied().unwrap_or(0);
        let go_before = ["udp:indirect_ping", "udp:nack"].map(go_received);
        eventually(&format!("{backend:?}: each side asked the other to ping rs-px, and got its nack"), || {
            let rs_now = ["indirect_ping_sent", "nack_received", "nack_sent"].map(rs_probes);
            let go_now = ["udp:indirect_ping", "udp:nack"].map(go_received);
            let grown = |before: &[u64], now: &[u64]| before.iter().zip(now).all(|(b, n)| n > b);
            if grown(&rs_before, &rs_now) && grown(&go_before, &go_now) {
                Ok(())
            } else {
                Err(format!(
                    "rs-0 indirect pings sent, nacks received, nacks sent {rs_before:?} -> {rs_now:?}; \
                     go-0 indirect pings received, nacks received {go_before:?} -> {go_now:?}"
                ))
            }
        });
        signal(&child.child, "CONT");
    }
}

/// [`two_and_two`] plus rs-2 and go-2, joined through the other side and
/// converged: the pair a test then loses.
fn two_and_two_plus_a_pair_to_lose(backend: Backend) -> Mixed {
    let (mut c, _) = two_and_two(backend, [PLAIN; 4]);
    c.add("rs-2", PLAIN);
    c.add("go-2", PLAIN);
    c.join("rs-2", "go-1");
    c.join("go-2", "rs-2");
    c.converge();
    c
}

/// The leave events ringswim node `rs` has had so far, by member name,
/// with the state each was in.
fn leave_events(c: &Mixed, rs: &str) -> BTreeMap<String, NodeState> {
    c.rs(rs)
        .events
        .try_iter()
        .filter(|e| e.kind == NodeEventKind::Leave)
        .map(|e| (e.node.name.to_string(), e.node.state))
        .collect()
}

/// go-2 and rs-2, both in `state`.
fn lost_pair(state: NodeState) -> BTreeMap<String, NodeState> {
    BTreeMap::from([("go-2".into(), state), ("rs-2".into(), state)])
}

#[test]
fn a_graceful_leave_is_seen_as_left_both_ways() {
    for backend in backends() {
        let mut c = two_and_two_plus_a_pair_to_lose(backend);
        c.leave("go-2");
        c.leave("rs-2");
        let mut expected: BTreeMap<String, &str> =
            ["rs-0", "go-0", "rs-1", "go-1"].iter().map(|n| ((*n).to_owned(), "alive")).collect();
        expected.insert("go-2".into(), "left");
        expected.insert("rs-2".into(), "left");
        // Nobody else is lost meanwhile. The leavers still run, and their
        // own tables say they left; they are not told of each other (Go
        // gossips, probes and push/pulls with alive and suspect members
        // only).
        let mut views = Views::new();
        eventually(&format!("{backend:?}: go-2 and rs-2 left at the others"), || {
            views = c.all_see(&expected, &["go-2", "rs-2"])?;
            Ok(())
        });
        for leaver in ["go-2", "rs-2"] {
            assert_eq!(views[leaver][leaver].state, "left", "{backend:?}: {leaver}'s own view");
        }
        for rs in ["rs-0", "rs-1"] {
            assert_eq!(leave_events(&c, rs), lost_pair(NodeState::Left), "{backend:?}: {rs}'s leave events");
        }
        for go in ["go-0", "go-1"] {
            let leaves: BTreeSet<String> =
                c.go_events(go).into_iter().filter(|(kind, ..)| kind == "leave").map(|(_, name, _)| name).collect();
            assert_eq!(leaves, BTreeSet::from(["go-2".into(), "rs-2".into()]), "{backend:?}: {go}'s leave events");
        }
        c.kill("go-2");
        c.kill("rs-2");
    }
}

/// Kills go-2 and rs-2 (shutdown without a leave: they stop without a
/// word) and waits until every other node has them dead; the views then.
fn kill_the_pair(c: &mut Mixed) -> Views {
    c.kill("go-2");
    c.kill("rs-2");
    let mut expected: BTreeMap<String, &str> = c.running().into_iter().map(|n| (n, "alive")).collect();
    expected.insert("go-2".into(), "dead");
    expected.insert("rs-2".into(), "dead");
    let mut views = Views::new();
    eventually(&format!("{:?}: go-2 and rs-2 dead everywhere", c.backend), || {
        views = c.all_see(&expected, &[])?;
        Ok(())
    });
    views
}

#[test]
fn a_killed_node_is_declared_dead_both_ways() {
    for backend in backends() {
        let mut c = two_and_two_plus_a_pair_to_lose(backend);
        kill_the_pair(&mut c);
        for rs in ["rs-0", "rs-1"] {
            assert_eq!(leave_events(&c, rs), lost_pair(NodeState::Dead), "{backend:?}: {rs}'s leave events");
        }
    }
}

/// Hashicorp/memberlist#229: a node killed, declared dead, then started
/// again under the same name and address, rejoins; the report saw "handler
/// queue full" drops at the node still in the cluster.
#[test]
fn a_killed_node_restarted_under_its_name_and_address_rejoins_without_drops() {
    for backend in backends() {
        let mut c = two_and_two_plus_a_pair_to_lose(backend);
        let dead = kill_the_pair(&mut c);
        // Each starts again, with a new meta, and joins through the other
        // side. It starts at incarnation 1, below the one it died at:
        // the push/pull tells it it is dead, and it refutes above that.
        let again = |name: &str| format!("meta:{name} again").into_bytes();
        c.restart("rs-2", PLAIN, again("rs-2"));
        c.restart("go-2", PLAIN, again("go-2"));
        c.join("rs-2", "go-0");
        c.join("go-2", "rs-0");
        eventually(&format!("{backend:?}: go-2 and rs-2 alive again everywhere, as restarted"), || {
            let views = c.converge_now()?;
            for member in ["go-2", "rs-2"] {
                let died_at = dead.values().map(|table| table[member].incarnation).max().expect("views");
                for (observer, table) in &views {
                    let seen = &table[member];
                    if seen.incarnation <= died_at || seen.meta != again(member) {
                        return Err(format!("{observer} has {member} as {seen:?}, which died at {died_at}"));
                    }
                }
            }
            Ok(())
        });
        // Nothing was dropped on either side: no ringswim queue or table
        // overflowed, and no Go node logged "handler queue full" (its
        // handoff queue, the drop of #229).
        for (name, node) in &c.rust {
            let dropped: Vec<_> = node.member.metrics().iter().filter(|&(m, _, n)| m == DROPPED && n > 0).collect();
            assert!(dropped.is_empty(), "{backend:?}: {name} dropped {dropped:?}");
        }
        for go in ["go-0", "go-1", "go-2"] {
            let log = c.go_log(go);
            assert!(!log.is_empty(), "{backend:?}: {go}'s log was not captured");
            let full: Vec<_> = log.iter().filter(|l| l.contains("handler queue full")).collect();
            assert!(full.is_empty(), "{backend:?}: {go} dropped: {full:?}");
        }
    }
}

/// Sends user messages numbered from `first` on, best-effort and reliable,
/// for each pair (from, to), and waits until each is at its addressee.
/// (Numbers must be new to the cluster: a node that got one relays it, and
/// push/pulls carry every message seen.)
fn exchange_user_messages(c: &Mixed, first: u32, pairs: &[(&str, &str)]) {
    let mut expected = Vec::new();
    for (i, (from, to)) in pairs.iter().enumerate() {
        for reliable in [false, true] {
            let n = first + 2 * i as u32 + u32::from(reliable);
            let mut msg = n.to_be_bytes().to_vec();
            // A reliable message far larger than a packet, a best-effort
            // one of about 1 KB, in one packet: both compressible.
            let repeat = if reliable { 500 } else { 30 };
            for k in 0..repeat {
                msg.extend_from_slice(format!(" {k} from {from} reliable={reliable}").as_bytes());
            }
            c.send(from, to, &msg, reliable);
            expected.push((*to, n, msg));
        }
    }
    eventually(&format!("{:?}: every user message", c.backend), || {
        match expected.iter().find(|(to, _, msg)| !c.got_message(to, msg)) {
            Some((to, n, _)) => Err(format!("{to} lacks message {n}")),
            None => Ok(()),
        }
    });
}

#[test]
fn user_messages_best_effort_and_reliable_both_ways() {
    for backend in backends() {
        let (c, _) = two_and_two(backend, [PLAIN; 4]);
        exchange_user_messages(&c, 1, &[("rs-0", "go-0"), ("go-0", "rs-0"), ("rs-1", "go-1"), ("go-1", "rs-1")]);
        // Broadcasts, piggybacked from Go's TransmitLimitedQueue and from
        // ringswim's, relayed by every node that sees one first, and carried
        // in push/pull user state: each reaches every node.
        c.go.call(json!({"cmd": "broadcast", "node": "go-0", "msg": hex::encode(b"\0\0\0\x64 go broadcast")}));
        assert!(c.rs("rs-0").app.gossip.offer(b"\0\0\0\x65 ringswim broadcast"));
        eventually(&format!("{backend:?}: both broadcasts at every node"), || {
            for at in ["rs-0", "go-0", "rs-1", "go-1"] {
                for n in [100, 101] {
                    if !c.has_seen(at, n) {
                        return Err(format!("{at} lacks broadcast {n}"));
                    }
                }
            }
            Ok(())
        });
    }
}

/// Every node bound on `[::1]` (skipped where the machine has no IPv6
/// loopback).
#[test]
fn on_ipv6_loopback_both_sides_join_converge_and_exchange_user_messages() {
    if let Err(e) = std::net::UdpSocket::bind((LOOPBACK_V6, 0)) {
        eprintln!("no IPv6 loopback here ({e}): skipped");
        return;
    }
    for backend in backends() {
        // Converged: every table has every member alive at the address it
        // bound, on [::1] (16 address bytes on the wire, both ways).
        let (c, views) = two_and_two_on(LOOPBACK_V6, backend, [PLAIN; 4]);
        for (observer, table) in &views {
            for (member, seen) in table {
                assert_eq!(seen.addr.ip(), LOOPBACK_V6, "{backend:?}: {observer}'s view of {member}");
            }
        }
        exchange_user_messages(&c, 1, &[("rs-0", "go-0"), ("go-0", "rs-0"), ("rs-1", "go-1"), ("go-1", "rs-1")]);
    }
}

/// With compression off on every node, then on on every node: push/pulls
/// carrying about 16 KB of user state each way, gossip, and user messages.
/// go-0's peers are all ringswim nodes, so what it received (decoded by
/// memberlist's own code, in gonodes) is what ringswim sent: every stream
/// compressed when on (Go compresses every stream), none when off, and
/// packets compressed only when on (both keep a packet's compressed form
/// only when smaller).
#[test]
fn compression_all_off_and_all_on_push_pulls_both_ways() {
    for backend in backends() {
        for compression in [false, true] {
            let opts = Opts { compression, key: None };
            let mut c = Mixed::new(backend, LOOPBACK);
            for name in ["rs-0", "go-0", "rs-1"] {
                c.add(name, opts);
            }
            // 16 compressible messages of about 1 KB at rs-0 (numbers 200..)
            // and at go-0 (300..), in their push/pull user state.
            let big = |n: u32| {
                let mut msg = n.to_be_bytes().to_vec();
                msg.extend(format!(" user state {n} ").repeat(64).into_bytes());
                msg
            };
            for k in 0..16 {
                assert!(c.rs("rs-0").app.gossip.offer(&big(200 + k)));
                c.go.call(json!({"cmd": "broadcast", "node": "go-0", "msg": hex::encode(big(300 + k))}));
            }
            // Go pushes to ringswim and reads its reply; ringswim pushes
            // to Go and reads its reply, which carries rs-0's state too.
            c.join("go-0", "rs-0");
            c.join("rs-1", "go-0");
            let views = c.converge();
            for member in ["rs-0", "go-0", "rs-1"] {
                let own = &views[member][member];
                for (observer, table) in &views {
                    assert_eq!(table[member], *own, "{backend:?} {compression}: {observer}'s view of {member}");
                }
            }
            // Each node has the others' user state (a Go node's record is
            // of messages it received, not of its own).
            let (from_rs_0, from_go_0): (Vec<u32>, Vec<u32>) = ((200..216).collect(), (300..316).collect());
            let both = [from_rs_0.clone(), from_go_0.clone()].concat();
            let wanted = [("rs-0", from_go_0), ("go-0", from_rs_0), ("rs-1", both)];
            eventually(&format!("{backend:?} compression {compression}: every user state everywhere"), || {
                for (at, numbers) in &wanted {
                    if let Some(n) = numbers.iter().find(|&&n| !c.has_seen(at, n)) {
                        return Err(format!("{at} lacks message {n}"));
                    }
                }
                Ok(())
            });
            exchange_user_messages(&c, 1, &[("rs-0", "go-0"), ("go-0", "rs-1")]);
            let got = c.go_received("go-0");
            let count = |kind: &str| got.get(kind).copied().unwrap_or(0);
            let what = format!("{backend:?} compression {compression}: go-0 received {got:?}");
            // The join push/pulls, and the reliable user message; the
            // best-effort one in a packet that compresses.
            assert!(count("tcp:push_pull") >= 2 && count("tcp:user") >= 1, "{what}");
            assert_eq!(count("tcp:undecoded") + count("udp:undecoded"), 0, "{what}");
            if compression {
                assert_eq!(count("tcp:compressed"), count("tcp"), "{what}");
                assert!(count("udp:compressed") > 0, "{what}");
            } else {
                assert_eq!(count("tcp:compressed") + count("udp:compressed"), 0, "{what}");
            }
        }
    }
}

#[test]
fn encrypted_cluster_with_compression_on_and_off_mixed() {
    let on = Opts { compression: true, key: Some(KEY) };
    let off = Opts { compression: false, key: Some(KEY) };
    for backend in backends() {
        let (mut c, _) = two_and_two(backend, [off, on, on, off]);
        exchange_user_messages(&c, 1, &[("rs-0", "go-0"), ("go-0", "rs-0"), ("rs-1", "go-1"), ("go-1", "rs-1")]);
        // Nodes without the key are refused on both sides (their
        // plaintext fails Go's and ringswim's verify-incoming).
        c.add("go-nokey", PLAIN);
        c.add("rs-nokey", PLAIN);
        assert!(c.try_join("go-nokey", "rs-0").is_err(), "{backend:?}: a Go node without the key joined ringswim");
        assert!(c.try_join("rs-nokey", "go-0").is_err(), "{backend:?}: a ringswim node without the key joined Go");
        c.kill("go-nokey");
        c.kill("rs-nokey");
        // A rotation on every node, then newcomers that know only the new
        // key join through the other side.
        let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
        for (op, key) in [("add", NEXT_KEY), ("use", NEXT_KEY), ("remove", KEY)] {
            for rs in ["rs-0", "rs-1"] {
                let ring = c.rs(rs).member.keyring();
                match op {
                    "add" => ring.add_key(key),
                    "use" => ring.use_key(key),
                    _ => ring.remove_key(key),
                }
                .expect("rotation step");
            }
            for go in ["go-0", "go-1"] {
                c.go.call(json!({"cmd": "key", "node": go, "op": op, "key": b64(key)}));
            }
        }
        c.add("go-2", Opts { compression: true, key: Some(NEXT_KEY) });
        c.add("rs-2", Opts { compression: false, key: Some(NEXT_KEY) });
        c.join("go-2", "rs-1");
        c.join("rs-2", "go-1");
        c.converge();
        exchange_user_messages(&c, 11, &[("rs-2", "go-2"), ("go-2", "rs-2")]);
        for rs in ["rs-0", "rs-1"] {
            let lost: Vec<_> = c.rs(rs).events.try_iter().filter(|e| e.kind == NodeEventKind::Leave).collect();
            let nokey = lost.iter().all(|e| e.node.name.ends_with("nokey"));
            assert!(nokey, "{backend:?}: {rs} lost {lost:?}");
        }
    }
}

#[test]
fn meta_updates_are_seen_by_the_other_side() {
    for backend in backends() {
        let (c, _) = two_and_two(backend, [PLAIN; 4]);
        // A short meta, then one of the largest size both allow.
        for size in [7, META_MAX_SIZE] {
            let meta_of = |name: &str| {
                let mut meta = format!("{name} {size}").into_bytes();
                meta.resize(size, b'.');
                meta
            };
            *c.rs("rs-0").app.meta.lock().expect("meta") = meta_of("rs-0");
            c.rs("rs-0").member.update_node(BROADCAST_WAIT).expect("update broadcast goes out");
            let timeout_ms = BROADCAST_WAIT.as_millis() as u64;
            let go_meta = hex::encode(meta_of("go-0"));
            c.go.call(json!({"cmd": "set_meta", "node": "go-0", "meta": go_meta, "timeout_ms": timeout_ms}));
            eventually(&format!("{backend:?}: both new {size}-byte metas everywhere"), || {
                for (observer, table) in c.views() {
                    for member in ["rs-0", "go-0"] {
                        let seen = &table[member];
                        if seen.meta != meta_of(member) {
                            let meta = String::from_utf8_lossy(&seen.meta);
                            return Err(format!("{observer} has {member}'s meta {meta:?}"));
                        }
                        assert_eq!(seen.state, "alive", "{backend:?}: {observer}'s view of {member}");
                    }
                }
                Ok(())
            });
            // Each side's event delegate heard of the other side's update.
            for go in ["go-0", "go-1"] {
                let updates: Vec<_> = c.go_events(go).into_iter().filter(|(kind, ..)| kind == "update").collect();
                let want = ("update".to_owned(), "rs-0".to_owned(), meta_of("rs-0"));
                assert!(updates.contains(&want), "{backend:?}: {go}'s updates {updates:?}");
            }
            for rs in ["rs-0", "rs-1"] {
                let updates: Vec<(String, Vec<u8>)> = c
                    .rs(rs)
                    .events
                    .try_iter()
                    .filter(|e| e.kind == NodeEventKind::Update)
                    .map(|e| (e.node.name.to_string(), e.node.meta))
                    .collect();
                let want = ("go-0".to_owned(), meta_of("go-0"));
                assert!(updates.contains(&want), "{backend:?}: {rs}'s updates {updates:?}");
            }
        }
    }
}

/// gonodes' `cluster` and `alive`, what `perf/cluster-vs-go.sh` measures
/// real Go with: every node started under the prefix and joined to the
/// first, each counting every node alive as its own member table says; nodes
/// started without the tap refuse `received`.
#[test]
fn gonodes_cluster_joins_every_node_and_alive_counts_them() {
    const NODES: usize = 6;
    let go = GoNodes::spawn();
    let started = go.call(json!({
        "cmd": "cluster", "nodes": NODES, "prefix": "go-", "join_at_once": 2, "tap": false,
        "push_pull_interval_ms": PUSH_PULL_INTERVAL.as_millis() as u64,
    }));
    assert_eq!(started["join_failed"], 0, "{started}");
    let expected: BTreeSet<String> = (0..NODES).map(|i| format!("go-{i}")).collect();
    eventually("every Go node counting every node alive", || {
        let alive = go.call(json!({"cmd": "alive"}));
        let counts = alive["alive"].as_object().ok_or("no counts")?;
        assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected, "{alive}");
        if counts.values().any(|n| n != NODES) {
            return Err(format!("counts {alive}"));
        }
        let views = go.call(json!({"cmd": "members"}));
        for (name, table) in views["views"].as_object().ok_or("no views")? {
            let alive_in_table = table.as_array().ok_or("no table")?.iter().filter(|m| m["state"] == "alive").count();
            if alive_in_table != NODES {
                return Err(format!("{name}'s table holds {alive_in_table} alive"));
            }
        }
        Ok(())
    });
    let refused = go.try_call(json!({"cmd": "received", "node": "go-1"}));
    assert_eq!(refused["ok"], false, "{refused}");
}
