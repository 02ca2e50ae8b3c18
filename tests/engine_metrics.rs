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
    // Go's timers and samples, per node: every value recorded so far.
    // (`memberlist.pushPullNode` times push/pulls a node opens: b's join
    // now, a's first periodic one only after its push/pull interval.)
    let timed = ["memberlist.probeNode", "memberlist.gossip", "memberlist.size.local", "memberlist.size.remote"];
    let mut seen = std::collections::BTreeMap::new();
    let mut histograms: std::collections::BTreeMap<(String, Vec<String>), Vec<f64>> = Default::default();
    loop {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let name = key.key().name().to_owned();
            let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let v = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(values) => {
                    let values: Vec<f64> = values.into_iter().map(|v| v.into_inner()).collect();
                    let all = histograms.entry((name.clone(), labels.clone())).or_default();
                    all.extend(&values);
                    all.len() as f64
                }
            };
            // The largest value seen: a snapshot may carry only what
            // changed since the last one.
            let kept = seen.entry((name, labels)).or_insert(v);
            *kept = f64::max(*kept, v);
        }
        let have = |n: &str| seen.iter().any(|((name, _), v)| name == n && *v > 0.0);
        let timed_by_both =
            |n: &str| ["node=a", "node=b"].iter().all(|node| histograms.keys().any(|(k, l)| k == n && l == &[*node]));
        let joiner_timed = histograms.keys().any(|(k, l)| k == "memberlist.pushPullNode" && l == &["node=b"]);
        if want.iter().all(|n| have(n))
            && have("memberlist.node.instances")
            && timed.iter().all(|n| timed_by_both(n))
            && joiner_timed
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing after 30 s: {:?} {:?}",
            want.iter().filter(|n| !have(n)).collect::<Vec<_>>(),
            timed.iter().filter(|n| !timed_by_both(n)).collect::<Vec<_>>()
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
    // The join's push/pull, measured at both ends: b's state as b sent it
    // is a's remote state, byte for byte (plain, before compression).
    let values = |name: &str, node: &str| histograms[&(name.to_owned(), vec![format!("node={node}")])].clone();
    let sent_by_b = values("memberlist.size.local", "b");
    let received_by_a = values("memberlist.size.remote", "a");
    assert!(sent_by_b.iter().all(|&n| n > 0.0), "{sent_by_b:?}");
    assert!(sent_by_b.iter().any(|n| received_by_a.contains(n)), "b sent {sent_by_b:?}, a received {received_by_a:?}");
    // b's join push/pull took some time, and less than the TCP timeout.
    let push_pulls = values("memberlist.pushPullNode", "b");
    assert!(push_pulls.iter().all(|&ms| ms > 0.0 && ms < 10_000.0), "{push_pulls:?}");
}
