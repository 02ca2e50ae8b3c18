//! The engine on real loopback sockets: nodes hosted by one runtime find
//! each other, spread what they are told, and see deaths and leaves.
//! Every wait is on an event with a bounded deadline.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ringswim::config::Config;
use ringswim::delegate::{NodeEvent, NodeEventKind};
use ringswim::engine::{Backend, BackendChoice, Memberlist, Runtime, RuntimeOptions};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config(name: &str) -> Config {
    let mut c = Config::default_local().with_name(name);
    c.bind_addr = LOOPBACK;
    c.bind_port = 0;
    c
}

fn address(m: &Memberlist) -> SocketAddr {
    m.local_node().expect("running").address()
}

/// Waits until `events` has told of every name in `want` joining (and
/// none of them since leaving), or `deadline` passes. The names still
/// missing.
fn await_joins(events: &Receiver<NodeEvent>, want: &HashSet<String>, deadline: Instant) -> HashSet<String> {
    let mut seen = HashSet::new();
    while seen.len() < want.len() {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        match events.recv_timeout(left) {
            Ok(e) if e.kind == NodeEventKind::Join => {
                seen.insert(e.node.name.to_string());
            }
            Ok(e) if e.kind == NodeEventKind::Leave => {
                seen.remove(e.node.name.as_str());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    want.difference(&seen).cloned().collect()
}

fn runtime(backend: Backend) -> Runtime {
    Runtime::new(RuntimeOptions { threads: 2, backend: BackendChoice::Only(backend), pin: false })
        .expect("runtime starts")
}

fn converge(backend: Backend, n: usize) {
    let rt = runtime(backend);
    let members: Vec<Memberlist> = (0..n).map(|i| rt.host(config(&format!("node-{i}"))).expect("hosted")).collect();
    let events: Vec<Receiver<NodeEvent>> = members.iter().map(|m| m.events().expect("first take")).collect();
    let seed = address(&members[0]);
    for m in &members[1..] {
        assert!(m.join(&[seed]).expect("join node 0") >= 1);
    }
    let names: HashSet<String> = (0..n).map(|i| format!("node-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, ev) in events.iter().enumerate() {
        let missing = await_joins(ev, &names, deadline);
        assert!(missing.is_empty(), "node-{i} never heard of {missing:?}");
    }
    for m in &members {
        assert_eq!(m.num_members(), n, "{}", m.name());
    }
}

#[test]
fn portable_three_nodes_converge() {
    converge(Backend::Portable, 3);
}

#[test]
fn portable_64_nodes_converge() {
    converge(Backend::Portable, 64);
}
