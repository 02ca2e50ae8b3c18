//! Hosts in network namespaces: `ringswim agent`s, each in a namespace of
//! its own, joined across veth links and a bridge.
//!
//! - `cut_host_is_declared_dead_and_comes_back`: three hosts; one host's
//!   link is cut (`ip link set eth0 down` inside its namespace) until the
//!   other two declare it dead, then restored, and the three must agree
//!   again (it refuted); then cut until both sides have reaped each other
//!   (past `gossip_to_the_dead_time`, where Go memberlist 0.2.2 stays split
//!   for good), restored, and the three must agree again (ringswim's
//!   reconnect). About 75 s.
//! - `udp_cut_tcp_passing_is_survived_only_with_tcp_pings`: two clusters
//!   of two hosts; the bridge drops every UDP datagram within each pair
//!   (nftables, bridge family, in the hub), TCP passes. The member with
//!   Go's default (TCP fallback pings) keeps its peer alive; the one with
//!   `--disable-tcp-pings` declares its peer dead. About 30 s.
//! - `udp_cut_tcp_passing_against_go_nodes`: the same cut, with Go
//!   memberlist 0.2.2 nodes (`gonodes`, each in its host's namespace) at h0
//!   (Go's default) and h2 (`DisableTcpPings`), agents at h1 and h3
//!   (`--disable-tcp-pings`): h0 and h1 keep each other alive by TCP pings
//!   each answers for the other; h2 and h3 declare each other dead. About
//!   18 s.
//!
//! Each on both backends, in parallel (`local` profile).
//!
//! Layout (all made and removed by the test, names carry the pid and the
//! backend; the host's own interfaces, routes and nftables are never
//! touched):
//!
//! ```text
//!   ns h0 (10.77.0.1/24) eth0 ─ v0 ┐
//!   ns h1 (10.77.0.2/24) eth0 ─ v1 ┼ br0 in ns hub (nft table bridge ringswim)
//!   ns h2 (10.77.0.3/24) eth0 ─ v2 ┤
//!   ns h3 (10.77.0.4/24) eth0 ─ v3 ┘ (the UDP cut tests only)
//! ```
//!
//! The tests read each agent's view as an operator would, with
//! `ip netns exec NS ringswim members --http IP:PORT` (the table).
//! Without root or `ip netns` (or `nft`, for the UDP cut) a test prints why
//! and returns (skipped). Every wait is a condition with a bounded
//! deadline; agents are killed, the nftables table and the namespaces
//! deleted when a test ends, passed or not.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ringswim::engine::Backend;
use serde_json::json;

#[path = "common/backends.rs"]
#[macro_use]
mod backends;
#[path = "common/child.rs"]
mod child;
#[path = "common/gonodes.rs"]
mod gonodes;
use child::lines;
use gonodes::GoNodes;

/// Long enough for anything below on a loaded 2-core machine; a test that
/// hits it fails.
const DEADLINE: Duration = Duration::from_secs(60);
const HOSTS: usize = 3;
const MEMBER_PORT: u16 = 7946;
const HTTP_PORT: u16 = 8080;

fn host_ip(host: usize) -> String {
    format!("10.77.0.{}", host + 1)
}

/// Runs a command that must end by itself and succeed; its stdout.
fn must(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {args:?}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The nftables table a test filters br0 with, in the hub namespace: the
/// bridge family filters what crosses the bridge, as a switch would, so
/// that the hosts see only loss.
const FILTER_TABLE: &str = "ringswim";

/// The namespaces of one test; deleted on drop (which also removes the
/// veth pairs and the bridge inside them), after the nftables table.
struct Lab {
    hub: String,
    hosts: Vec<String>,
    /// Every namespace made so far, to delete.
    made: Vec<String>,
    /// Whether [`FILTER_TABLE`] was made, to delete.
    filtered: bool,
}

impl Lab {
    /// Makes the hub with its bridge and `hosts` hosts with their addresses;
    /// `Err` if this machine will not (not root, no `ip netns`).
    fn new(tag: &str, hosts: usize) -> Result<Lab, String> {
        let prefix = format!("rsw{}{tag}", std::process::id());
        let mut lab = Lab { hub: format!("{prefix}-hub"), hosts: Vec::new(), made: Vec::new(), filtered: false };
        must("ip", &["netns", "add", &lab.hub])?;
        lab.made.push(lab.hub.clone());
        let hub = lab.hub.clone();
        must("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        must("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for host in 0..hosts {
            let ns = format!("{prefix}-h{host}");
            must("ip", &["netns", "add", &ns])?;
            lab.made.push(ns.clone());
            let port = format!("v{host}");
            must("ip", &["-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            must("ip", &["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            must("ip", &["-n", &ns, "addr", "add", &format!("{}/24", host_ip(host)), "dev", "eth0"])?;
            must("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            must("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            lab.hosts.push(ns);
        }
        Ok(lab)
    }

    /// Brings a host's only link down or up, inside its namespace.
    fn set_link(&self, host: usize, state: &str) {
        must("ip", &["-n", &self.hosts[host], "link", "set", "dev", "eth0", state]).expect("ip link set");
    }

    /// `nft ARGS` in the hub namespace.
    fn nft(&self, args: &[&str]) -> Result<String, String> {
        must("ip", &[&["netns", "exec", &self.hub, "nft"], args].concat())
    }

    /// Makes [`FILTER_TABLE`] with an empty `forward` chain on br0; `Err`
    /// if this machine will not (no `nft`, no nftables in the kernel).
    fn add_filter(&mut self) -> Result<(), String> {
        self.nft(&["add", "table", "bridge", FILTER_TABLE])?;
        self.filtered = true;
        let chain = "{ type filter hook forward priority 0; policy accept; }";
        self.nft(&["add", "chain", "bridge", FILTER_TABLE, "forward", chain]).map(drop)
    }

    /// Drops every UDP datagram between hosts `a` and `b` on the bridge
    /// (counted as `udp a-b` and `udp b-a`), TCP passing; counts the TCP
    /// connections each opens to the other (`syn a-b`, `syn b-a`).
    fn cut_udp(&self, a: usize, b: usize) {
        for (from, to) in [(a, b), (b, a)] {
            let (from_ip, to_ip) = (host_ip(from), host_ip(to));
            let udp = ["ip", "saddr", &from_ip, "ip", "daddr", &to_ip, "meta", "l4proto", "udp", "counter", "drop"];
            self.add_rule(&udp, &format!("udp {from}-{to}"));
            let syn = ["ip", "saddr", &from_ip, "ip", "daddr", &to_ip, "tcp flags & (syn|ack) == syn", "counter"];
            self.add_rule(&syn, &format!("syn {from}-{to}"));
        }
    }

    fn add_rule(&self, rule: &[&str], comment: &str) {
        let quoted = format!("\"{comment}\"");
        let args = [&["add", "rule", "bridge", FILTER_TABLE, "forward"], rule, &["comment", &quoted]].concat();
        self.nft(&args).expect("nft add rule");
    }

    /// The packets the rule with `comment` has counted.
    fn counted(&self, comment: &str) -> u64 {
        let listing = self.nft(&["-j", "list", "table", "bridge", FILTER_TABLE]).expect("nft list");
        let listing: serde_json::Value = serde_json::from_str(&listing).expect("nft -j prints JSON");
        let rules = listing["nftables"].as_array().into_iter().flatten().filter_map(|entry| entry.get("rule"));
        let rule = rules.into_iter().find(|r| r["comment"] == comment).unwrap_or_else(|| panic!("no rule {comment}"));
        let counter = rule["expr"].as_array().into_iter().flatten().find_map(|e| e.get("counter"));
        counter.and_then(|c| c["packets"].as_u64()).unwrap_or_else(|| panic!("rule {comment} counts nothing: {rule}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.filtered
            && let Err(e) = self.nft(&["delete", "table", "bridge", FILTER_TABLE])
        {
            eprintln!("cleanup: {e}");
        }
        for ns in self.made.iter().rev() {
            if let Err(e) = must("ip", &["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// One `ringswim agent` in a host's namespace; killed on drop.
struct Agent {
    child: Child,
    /// Its stderr, line by line (for failure messages; also keeps the
    /// pipe drained).
    stderr: Receiver<String>,
    /// Its event lines.
    events: Receiver<String>,
}

impl Agent {
    /// `ringswim agent --name hHOST` on the host's address, joining
    /// `join`'s, with `extra` flags.
    fn start(lab: &Lab, host: usize, backend: Backend, join: Option<usize>, extra: &[&str]) -> Agent {
        let ip = host_ip(host);
        let (bind, http) = (format!("{ip}:{MEMBER_PORT}"), format!("{ip}:{HTTP_PORT}"));
        let name = format!("h{host}");
        let mut args = vec!["agent", "--name", &name, "--bind", &bind, "--http", &http, "--profile", "local"];
        args.extend(["--backend", backend.name()]);
        let seed = join.map(|j| format!("{}:{MEMBER_PORT}", host_ip(j)));
        if let Some(seed) = &seed {
            args.extend(["--join", seed]);
        }
        args.extend(extra);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.hosts[host], env!("CARGO_BIN_EXE_ringswim")])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ip netns exec ringswim agent");
        let events = lines(child.stdout.take().expect("piped"));
        let stderr = lines(child.stderr.take().expect("piped"));
        Agent { child, stderr, events }
    }

    /// Panics if the agent has exited (with what it said).
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            let said: Vec<String> = self.stderr.try_iter().collect();
            panic!("agent exited {status}: {said:#?}");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row of `ringswim members`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    address: String,
    status: String,
    incarnation: u64,
}

/// A host's view, by name, from `ringswim members` run in its namespace
/// (which ends by itself: its HTTP timeout is 10 s).
fn view(lab: &Lab, host: usize) -> Result<BTreeMap<String, Row>, String> {
    let http = format!("{}:{HTTP_PORT}", host_ip(host));
    let binary = env!("CARGO_BIN_EXE_ringswim");
    let table = must("ip", &["netns", "exec", &lab.hosts[host], binary, "members", "--http", &http])?;
    let mut rows = table.lines().map(|l| l.split_whitespace().collect::<Vec<_>>());
    if rows.next() != Some(vec!["Name", "Address", "Status", "Incarnation"]) {
        return Err(format!("no header: {table}"));
    }
    rows.map(|r| match r[..] {
        [name, address, status, incarnation] => Ok((
            name.to_owned(),
            Row {
                address: address.to_owned(),
                status: status.to_owned(),
                incarnation: incarnation.parse().map_err(|e| format!("{table}: {e}"))?,
            },
        )),
        _ => Err(format!("bad row {r:?} in {table}")),
    })
    .collect()
}

/// Polls `check` every 100 ms until it returns `Ok` or [`DEADLINE`]
/// passes; then panics with its last complaint.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        match check() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= until => panic!("timed out waiting for {what}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `Ok(view)` if `host` lists exactly `h0..h2`, `h{dead}` as `dead` and
/// every other one `alive` at its own address.
fn sees(lab: &Lab, host: usize, dead: Option<usize>) -> Result<BTreeMap<String, Row>, String> {
    let members = view(lab, host)?;
    let expected: Vec<(String, String, &str)> = (0..HOSTS)
        .map(|h| {
            let status = if Some(h) == dead { "dead" } else { "alive" };
            (format!("h{h}"), format!("{}:{MEMBER_PORT}", host_ip(h)), status)
        })
        .collect();
    let seen: Vec<(String, String, &str)> =
        members.iter().map(|(n, r)| (n.clone(), r.address.clone(), r.status.as_str())).collect();
    if seen == expected { Ok(members) } else { Err(format!("h{host} sees {members:?}")) }
}

fn cut_host_is_declared_dead_and_comes_back(backend: Backend) {
    let lab = match Lab::new(&backend.name()[..1], HOSTS) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("network namespaces unavailable here ({e}): skipped");
            return;
        }
    };
    let mut agents = vec![Agent::start(&lab, 0, backend, None, &[])];
    // h0 must serve before the others join it.
    eventually("h0 serves", || view(&lab, 0).map(drop));
    agents.extend((1..HOSTS).map(|h| Agent::start(&lab, h, backend, Some(0), &[])));
    for host in 0..HOSTS {
        eventually(&format!("h{host} sees three alive"), || sees(&lab, host, None));
    }
    let cut = HOSTS - 1;
    let cut_name = format!("h{cut}");

    // A short cut: the link is back while the others still hold h2 dead
    // (`gossip_to_the_dead_time`, 15 s here). Only an alive with a higher
    // incarnation revives a dead member (Go `aliveNode`): h2 has refuted.
    let before = view(&lab, 0).expect("h0's view")[&cut_name].incarnation;
    lab.set_link(cut, "down");
    for host in 0..cut {
        eventually(&format!("h{host} sees h{cut} dead"), || sees(&lab, host, Some(cut)));
    }
    lab.set_link(cut, "up");
    for host in 0..HOSTS {
        let members = eventually(&format!("h{host} sees three alive after a short cut"), || sees(&lab, host, None));
        let after = members[&cut_name].incarnation;
        assert!(after > before, "h{host}: h{cut} alive at incarnation {after}, dead at {before}");
    }

    // A long cut: each side reaps the other (two clusters, where Go
    // memberlist 0.2.2 stays for good: nothing crosses to a reaped member).
    // ringswim's reconnect (a push/pull with a member declared dead, every
    // `Extensions::reconnect_interval`) joins them again once the link is up.
    lab.set_link(cut, "down");
    for host in 0..HOSTS {
        let alone: Vec<String> =
            if host == cut { vec![cut_name.clone()] } else { (0..cut).map(|h| format!("h{h}")).collect() };
        eventually(&format!("h{host} lists only {alone:?}"), || {
            let members = view(&lab, host)?;
            let names: Vec<&String> = members.keys().collect();
            if names == alone.iter().collect::<Vec<_>>() { Ok(()) } else { Err(format!("{members:?}")) }
        });
    }
    lab.set_link(cut, "up");
    for host in 0..HOSTS {
        eventually(&format!("h{host} sees three alive after a long cut"), || sees(&lab, host, None));
    }
    for agent in &mut agents {
        agent.assert_running();
    }
}

/// `host`'s view of `other`: its status and incarnation.
fn status_of(lab: &Lab, host: usize, other: usize) -> Result<(String, u64), String> {
    let members = view(lab, host)?;
    let row =
        members.get(&format!("h{other}")).ok_or_else(|| format!("h{host} does not list h{other}: {members:?}"))?;
    Ok((row.status.clone(), row.incarnation))
}

/// How many TCP connections h0 must open to h1 after the UDP cut (its
/// probes' TCP fallback pings, and a push/pull every 15 s) while h1 stays
/// alive: without the fallback, h1 would be suspect after the first probe
/// and dead 3 probe intervals later (`local`: suspicion 3 × 1 s).
const FALLBACK_PINGS: u64 = 10;

/// Four hosts (tagged `tag`) with the UDP filter in place, or `None`
/// (printed: skipped) where namespaces or nftables are unavailable.
fn lab_with_filter(tag: &str) -> Option<Lab> {
    let mut lab = match Lab::new(tag, 4) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("network namespaces unavailable here ({e}): skipped");
            return None;
        }
    };
    if let Err(e) = lab.add_filter() {
        eprintln!("nftables unavailable here ({e}): skipped");
        return None;
    }
    Some(lab)
}

fn udp_cut_tcp_passing_is_survived_only_with_tcp_pings(backend: Backend) {
    let Some(lab) = lab_with_filter(&format!("{}u", &backend.name()[..1])) else { return };
    // Two clusters of two: h1 joins h0 (Go's default, TCP pings on), h3
    // joins h2 (--disable-tcp-pings). Two members, so no indirect probe
    // can route around the cut.
    let mut agents =
        vec![Agent::start(&lab, 0, backend, None, &[]), Agent::start(&lab, 2, backend, None, &["--disable-tcp-pings"])];
    eventually("h0 serves", || view(&lab, 0).map(drop));
    eventually("h2 serves", || view(&lab, 2).map(drop));
    agents.push(Agent::start(&lab, 1, backend, Some(0), &[]));
    agents.push(Agent::start(&lab, 3, backend, Some(2), &[]));
    for (host, other) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
        eventually(&format!("h{host} sees h{other} alive"), || match status_of(&lab, host, other)? {
            (status, _) if status == "alive" => Ok(()),
            seen => Err(format!("{seen:?}")),
        });
    }
    let (_, incarnation) = status_of(&lab, 0, 1).expect("h0's view");
    lab.cut_udp(0, 1);
    lab.cut_udp(2, 3);

    // TCP fallback on: every view h0 gives meanwhile has h1 alive at the
    // same incarnation (a suspicion h1 heard of by push/pull would have
    // made it refute).
    eventually(&format!("h0 opens {FALLBACK_PINGS} TCP connections to h1 with h1 alive"), || {
        let seen = status_of(&lab, 0, 1)?;
        assert_eq!(seen, ("alive".to_owned(), incarnation), "h0's view of h1 with UDP cut, TCP pings on");
        let connections = lab.counted("syn 0-1");
        if connections >= FALLBACK_PINGS { Ok(()) } else { Err(format!("{connections} connections")) }
    });
    assert!(lab.counted("udp 0-1") > 0, "h0's UDP to h1 was dropped");
    let events: Vec<String> = agents[0].events.try_iter().collect();
    assert!(!events.iter().any(|e| e.contains(r#""event":"leave""#)), "h0 lost h1: {events:#?}");

    // TCP fallback off: h2 declares h3 dead.
    eventually("h2 sees h3 dead", || match status_of(&lab, 2, 3)? {
        (status, _) if status == "dead" => Ok(()),
        seen => Err(format!("{seen:?}")),
    });
    assert!(lab.counted("udp 2-3") > 0, "h2's UDP to h3 was dropped");
    for agent in &mut agents {
        agent.assert_running();
    }
}

/// Go node `node`'s view of `other`: its status and incarnation.
fn go_status_of(go: &mut GoNodes, node: &str, other: &str) -> Result<(String, u64), String> {
    let m = go.member(node, other).ok_or_else(|| format!("{node} does not list {other}"))?;
    Ok((m["state"].as_str().unwrap_or_default().to_owned(), m["incarnation"].as_u64().unwrap_or_default()))
}

/// `Ok` if `seen`'s status is `status`.
fn has_status(status: &str, seen: (String, u64)) -> Result<(), String> {
    if seen.0 == status { Ok(()) } else { Err(format!("{seen:?}")) }
}

fn udp_cut_tcp_passing_against_go_nodes(backend: Backend) {
    let Some(lab) = lab_with_filter(&format!("{}g", &backend.name()[..1])) else { return };
    // Go memberlist 0.2.2 nodes at h0 (Go's default) and h2
    // (DisableTcpPings), each in a gonodes process in its namespace;
    // agents at h1 (default) and h3 (--disable-tcp-pings) join them.
    let mut go = [0, 2].map(|host| {
        let mut nodes = GoNodes::spawn(&["ip", "netns", "exec", &lab.hosts[host]]);
        let request =
            json!({"cmd": "start", "name": format!("h{host}"), "bind_addr": host_ip(host), "disable_tcp_pings": host == 2});
        let started = nodes.call(request);
        let at = format!("{}:{}", started["addr"].as_str().expect("addr"), started["port"]);
        (nodes, at)
    });
    let mut agents = [
        Agent::start(&lab, 1, backend, None, &["--join", &go[0].1]),
        Agent::start(&lab, 3, backend, None, &["--join", &go[1].1, "--disable-tcp-pings"]),
    ];
    for (i, go_host) in [0, 2].into_iter().enumerate() {
        let (nodes, rs_host) = (&mut go[i].0, go_host + 1);
        let (go_name, rs_name) = (format!("h{go_host}"), format!("h{rs_host}"));
        eventually(&format!("{go_name} (Go) sees {rs_name} alive"), || {
            has_status("alive", go_status_of(nodes, &go_name, &rs_name)?)
        });
        eventually(&format!("{rs_name} sees {go_name} (Go) alive"), || {
            has_status("alive", status_of(&lab, rs_host, go_host)?)
        });
    }
    let (_, go_incarnation) = go_status_of(&mut go[0].0, "h0", "h1").expect("h0's view");
    let (_, rs_incarnation) = status_of(&lab, 1, 0).expect("h1's view");
    lab.cut_udp(0, 1);
    lab.cut_udp(2, 3);

    // TCP pings on, both sides: each keeps the other alive at the same
    // incarnation while it opens FALLBACK_PINGS connections to it (Go's
    // fallback pings answered by ringswim, ringswim's by Go).
    eventually(&format!("h0 (Go) and h1 each open {FALLBACK_PINGS} TCP connections to the other"), || {
        let alive = |incarnation| ("alive".to_owned(), incarnation);
        assert_eq!(go_status_of(&mut go[0].0, "h0", "h1")?, alive(go_incarnation), "h0's (Go) view of h1");
        assert_eq!(status_of(&lab, 1, 0)?, alive(rs_incarnation), "h1's view of h0 (Go)");
        let connections = [lab.counted("syn 0-1"), lab.counted("syn 1-0")];
        if connections.iter().all(|&n| n >= FALLBACK_PINGS) { Ok(()) } else { Err(format!("{connections:?}")) }
    });
    // TCP pings off, both sides: each declares the other dead.
    eventually("h2 (Go, DisableTcpPings) sees h3 dead", || has_status("dead", go_status_of(&mut go[1].0, "h2", "h3")?));
    eventually("h3 (--disable-tcp-pings) sees h2 (Go) dead", || has_status("dead", status_of(&lab, 3, 2)?));
    for agent in &mut agents {
        agent.assert_running();
    }
}

on_each_backend!(
    cut_host_is_declared_dead_and_comes_back,
    udp_cut_tcp_passing_is_survived_only_with_tcp_pings,
    udp_cut_tcp_passing_against_go_nodes,
);
