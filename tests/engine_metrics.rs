//! The engine's metrics reach the `metrics` facade under Go memberlist's
//! names (and ringswim's): two members on loopback, a recorder installed
//! for this test process only, waited for with a deadline.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use ringswim::config::Config;
use ringswim::engine::{Backend, BackendChoice, Runtime, RuntimeOptions};

fn config(name: &str) -> Config {
    let mut c = Config::default_local().with_name(name);
    c.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    c.bind_port = 0;
    c
}

#[test]
fn go_names_reach_the_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let rt = Runtime::new(RuntimeOptions { threads: 1, backend: BackendChoice::Only(Backend::Portable), pin: false })
        .expect("runtime");
    let a = rt.host(config("a")).expect("a");
    let b = rt.host(config("b")).expect("b");
    b.join(&[a.local_node().expect("a runs").address()]).expect("join");

    // Exports come once a second (counters add up): wait until every
    // name we expect has been exported with a positive value.
    let want = [
        "memberlist.udp.sent",
        "memberlist.udp.received",
        "memberlist.tcp.connect",
        "memberlist.tcp.accept",
        "memberlist.tcp.sent",
        "memberlist.msg.alive",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = std::collections::BTreeMap::new();
    loop {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let name = key.key().name().to_owned();
            let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let v = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => 0.0,
            };
            seen.insert((name, labels), v);
        }
        let have = |n: &str| seen.iter().any(|((name, _), v)| name == n && *v > 0.0);
        if want.iter().all(|n| have(n)) && have("memberlist.node.instances") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing after 30 s: {:?}",
            want.iter().filter(|n| !have(n)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen.contains_key(&("ringswim.engine.backend".to_owned(), vec!["backend=portable".to_owned()])),
        "{seen:?}"
    );
    // Each member counts the other alive.
    assert_eq!(
        seen.get(&("memberlist.node.instances".to_owned(), vec!["node=a".to_owned(), "node_state=alive".to_owned()])),
        Some(&2.0)
    );
}
