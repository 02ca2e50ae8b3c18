//! Embedding ringswim: three members in this process on loopback, the way
//! an application would run one each. They join, watch each other through
//! a channel of membership events, one leaves gracefully, and the rest see
//! it go.
//!
//! `cargo run --example embedder`

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;

use ringswim::config::Config;
use ringswim::delegate::{ChannelEventDelegate, NodeEventKind};
use ringswim::engine::{Runtime, RuntimeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One runtime hosts all three (Memberlist::create would give each its own).
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let (tx, events) = channel();
    let mut members = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let mut config = Config::default_local().with_name(name);
        config.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.bind_port = 0; // the kernel picks a free port, advertised as is
        if name == "alpha" {
            // Watch the cluster from alpha.
            config = config.with_events(Arc::new(ChannelEventDelegate::new(tx.clone())));
        }
        members.push(runtime.host(config)?);
    }
    let seed = members[0].local_node()?.address();
    for m in &members[1..] {
        let contacted = m.join(&[seed])?;
        println!("{} joined through {seed} ({contacted} answered)", m.name());
    }
    // alpha hears of all three joining (itself first).
    for event in events.iter().take(3) {
        println!("alpha: {:?} {} at {}", event.kind, event.node.name, event.node.address());
    }
    members[2].leave(Duration::from_secs(5))?;
    for event in events.iter() {
        if event.kind == NodeEventKind::Leave {
            println!("alpha: {} left ({:?})", event.node.name, event.node.state);
            break;
        }
    }
    let names: Vec<String> = members[0].members().iter().map(|n| n.name.to_string()).collect();
    println!("alpha's members now: {names:?}");
    Ok(())
}
