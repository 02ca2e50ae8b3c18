//! Three hosts in network namespaces: `ringswim agent`s, each in a
//! namespace of its own, joined across veth links; one host's link is cut
//! (`ip link set eth0 down` inside its namespace) until the other two
//! declare it dead, then restored, and the three must agree again (it
//! refuted); then cut until both sides have reaped each other (past
//! `gossip_to_the_dead_time`, where Go memberlist 0.2.2 stays split for
//! good), restored, and the three must agree again (ringswim's reconnect).
//! About 75 s, both backends in parallel (`local` profile).
//!
//! Layout (all made and removed by the test, names carry the pid and the
//! backend; the host's own interfaces and routes are never touched):
//!
//! ```text
//!   ns h0 (10.77.0.1/24) eth0 ─ v0 ┐
//!   ns h1 (10.77.0.2/24) eth0 ─ v1 ┼ br0 in ns hub
//!   ns h2 (10.77.0.3/24) eth0 ─ v2 ┘
//! ```
//!
//! The test reads each agent's view as an operator would, with
//! `ip netns exec NS ringswim members --http IP:PORT` (the table).
//! Without root or `ip netns` it prints why and returns (skipped). Every
//! wait is a condition with a bounded deadline; agents are killed and
//! namespaces deleted when a test ends, passed or not.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ringswim::engine::Backend;

#[path = "common/backends.rs"]
#[macro_use]
mod backends;
#[path = "common/child.rs"]
mod child;
use child::lines;

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

/// The namespaces of one test; deleted on drop (which also removes the
/// veth pairs and the bridge inside them).
struct Lab {
    hub: String,
    hosts: Vec<String>,
    /// Every namespace made so far, to delete.
    made: Vec<String>,
}

impl Lab {
    /// Makes the hub with its bridge and the hosts with their addresses;
    /// `Err` if this machine will not (not root, no `ip netns`).
    fn new(tag: &str) -> Result<Lab, String> {
        let prefix = format!("rsw{}{tag}", std::process::id());
        let mut lab = Lab { hub: format!("{prefix}-hub"), hosts: Vec::new(), made: Vec::new() };
        must("ip", &["netns", "add", &lab.hub])?;
        lab.made.push(lab.hub.clone());
        let hub = lab.hub.clone();
        must("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        must("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for host in 0..HOSTS {
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
}

impl Drop for Lab {
    fn drop(&mut self) {
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
    _stdout: Receiver<String>,
}

impl Agent {
    fn start(lab: &Lab, host: usize, backend: Backend, join: Option<usize>) -> Agent {
        let ip = host_ip(host);
        let (bind, http) = (format!("{ip}:{MEMBER_PORT}"), format!("{ip}:{HTTP_PORT}"));
        let name = format!("h{host}");
        let mut args = vec!["agent", "--name", &name, "--bind", &bind, "--http", &http, "--profile", "local"];
        args.extend(["--backend", backend.name()]);
        let seed = join.map(|j| format!("{}:{MEMBER_PORT}", host_ip(j)));
        if let Some(seed) = &seed {
            args.extend(["--join", seed]);
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.hosts[host], env!("CARGO_BIN_EXE_ringswim")])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ip netns exec ringswim agent");
        let stdout = lines(child.stdout.take().expect("piped"));
        let stderr = lines(child.stderr.take().expect("piped"));
        Agent { child, stderr, _stdout: stdout }
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
    let lab = match Lab::new(&backend.name()[..1]) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("network namespaces unavailable here ({e}): skipped");
            return;
        }
    };
    let mut agents = vec![Agent::start(&lab, 0, backend, None)];
    // h0 must serve before the others join it.
    eventually("h0 serves", || view(&lab, 0).map(drop));
    agents.extend((1..HOSTS).map(|h| Agent::start(&lab, h, backend, Some(0))));
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

on_each_backend!(cut_host_is_declared_dead_and_comes_back);
