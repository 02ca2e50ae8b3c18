//! A user-broadcast service on ringswim: every member re-gossips what it
//! hears (as serf does for its user events), using memberlist's
//! `TransmitLimitedQueue` for the retransmit budget, and hands what is new
//! to the application. Node 0 publishes three messages; the example waits
//! until every member has them.
//!
//! `cargo run --example broadcast`

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringswim::config::Config;
use ringswim::delegate::Delegate;
use ringswim::engine::{Runtime, RuntimeOptions};
use ringswim::swim::{Broadcast, TransmitLimitedQueue};

/// One user message; unique (never replaces another).
struct Message(Arc<[u8]>);

impl Broadcast for Message {
    fn message(&self) -> Arc<[u8]> {
        Arc::clone(&self.0)
    }
    fn is_unique(&self) -> bool {
        true
    }
}

/// The delegate: what we have seen, and the queue we gossip it from.
struct Service {
    cluster_size: usize,
    state: Mutex<(TransmitLimitedQueue<Message>, BTreeSet<Vec<u8>>)>,
}

impl Service {
    fn new(retransmit_mult: usize, cluster_size: usize) -> Service {
        Service { cluster_size, state: Mutex::new((TransmitLimitedQueue::new(retransmit_mult), BTreeSet::new())) }
    }
    /// Publishes `msg` (or takes one heard): new ones are queued for gossip.
    fn publish(&self, msg: &[u8]) -> bool {
        let mut s = self.state.lock().expect("not poisoned");
        let new = s.1.insert(msg.to_vec());
        if new {
            s.0.queue_broadcast(Message(msg.into()));
        }
        new
    }
    fn seen(&self) -> usize {
        self.state.lock().expect("not poisoned").1.len()
    }
}

impl Delegate for Service {
    fn notify_msg(&self, msg: &[u8]) {
        self.publish(msg);
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let mut s = self.state.lock().expect("not poisoned");
        s.0.get_broadcasts(overhead, limit, self.cluster_size).iter().map(|m| m.to_vec()).collect()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 8;
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let mut nodes = Vec::new();
    for i in 0..N {
        let mut config = Config::default_local().with_name(format!("node-{i}"));
        config.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.bind_port = 0;
        let service = Arc::new(Service::new(config.effective_retransmit_mult(), N));
        let member = runtime.host(config.with_delegate(Arc::clone(&service) as Arc<dyn Delegate>))?;
        nodes.push((member, service));
    }
    let seed = nodes[0].0.local_node()?.address();
    for (member, _) in &nodes[1..] {
        member.join(&[seed])?;
    }
    let start = Instant::now();
    for text in ["deploy v42", "drain rack 7", "hello"] {
        nodes[0].1.publish(text.as_bytes());
    }
    while nodes.iter().any(|(_, s)| s.seen() < 3) {
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the broadcasts did not reach every member in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("3 broadcasts at all {N} members after {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
}
