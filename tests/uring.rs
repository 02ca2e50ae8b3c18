//! The io_uring layer against the live kernel, on loopback sockets.
//!
//! Every test first probes the kernel. Where io_uring is refused (or lacks
//! what the ring needs), the test prints why and checks that the refusal is
//! typed (a cause, or the names of what is missing, and `Ring::new`
//! refusing in the same words) instead of running the ring. Waits are
//! bounded by deadlines; nothing sleeps and hopes.
#![cfg(target_os = "linux")]

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use ringswim::engine::uring::{
    Cause, Completion, EchoConfig, Io, ReadOutcome, Ring, RingConfig, RingError, SendError, StreamError, StreamId,
    Support, probe, run_echo,
};

/// Upper bound on any wait in these tests.
const DEADLINE: Duration = Duration::from_secs(10);

/// The probe result, or `None` (with the reason printed and checked) when
/// the ring cannot run here.
fn support_or_skip(test: &str) -> Option<Support> {
    match probe() {
        Err(e) => {
            eprintln!("{test}: skipped, io_uring refused: {e}");
            assert!(matches!(
                e.cause,
                Cause::NotImplemented
                    | Cause::DisabledBySysctl { .. }
                    | Cause::NotPermitted
                    | Cause::NoMemory
                    | Cause::Other
            ));
            assert!(e.source.raw_os_error().is_some(), "a refusal carries its errno");
            None
        }
        Ok(s) if !s.ring_usable() => {
            let missing = s.missing();
            eprintln!("{test}: skipped, io_uring lacks {missing:?}");
            match Ring::new(&RingConfig::default(), &s) {
                Err(RingError::Unsupported(m)) => assert_eq!(m, missing),
                other => panic!("Ring::new must refuse what the probe lacks: {other:?}"),
            }
            None
        }
        Ok(s) => Some(s),
    }
}

fn small_ring(s: &Support, recv_buf_count: u16, send_slots: usize) -> Ring {
    let config = RingConfig { recv_buf_count, send_slots, ..RingConfig::default() };
    Ring::new(&config, s).expect("probe said the ring is usable")
}

/// Turns `ring` (100 ms waits) until `done(&ring)` or the deadline; returns
/// whether done. `on` sees every completion.
fn turn_until<F>(ring: &mut Ring, on: &mut F, mut done: impl FnMut(&Ring) -> bool) -> bool
where
    F: FnMut(&mut Io, Completion<'_>),
{
    let end = Instant::now() + DEADLINE;
    while !done(ring) {
        if Instant::now() >= end {
            return false;
        }
        ring.turn(Some(Duration::from_millis(100)), on).expect("turn");
    }
    true
}

#[test]
fn probe_is_consistent() {
    let Some(s) = support_or_skip("probe_is_consistent") else {
        return;
    };
    eprintln!("{s:#?}");
    // The live tests depend on what the opcode table says.
    assert!(s.ops.recvmsg && s.buf_ring && s.multishot_recvmsg);
    if s.setup.defer_taskrun {
        assert!(s.setup.single_issuer, "DEFER_TASKRUN requires SINGLE_ISSUER");
    }
    if s.multishot_accept {
        assert!(s.ops.accept);
    }
}

#[test]
fn datagrams_round_trip_past_the_buffer_ring_depth() {
    let Some(s) = support_or_skip("datagrams_round_trip") else {
        return;
    };
    // 8 receive buffers, 64 datagrams queued before the first turn: the
    // multishot recvmsg runs dry (ENOBUFS), is re-armed, and loses nothing.
    let mut ring = small_ring(&s, 8, 128);
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let echo_id = ring.add_udp(echo).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    peer.set_read_timeout(Some(DEADLINE)).unwrap();
    const N: usize = 64;
    for i in 0..N {
        let msg = format!("gossip {i:03} {}", "x".repeat(180));
        peer.send_to(msg.as_bytes(), echo_addr).unwrap();
    }

    let received = Cell::new(0);
    let done = turn_until(
        &mut ring,
        &mut |io, c| {
            if let Completion::Datagram { socket, from, bytes } = c {
                assert_eq!(socket, echo_id);
                assert_eq!(from, peer_addr);
                io.send_to(socket, from, bytes).expect("128 slots suffice");
                received.set(received.get() + 1);
            }
        },
        |_| received.get() == N,
    );
    assert!(done, "received {} of {N} before the deadline", received.get());
    ring.submit().unwrap();

    let mut echoed = BTreeSet::new();
    let mut buf = [0u8; 2048];
    for _ in 0..N {
        let (n, from) = peer.recv_from(&mut buf).expect("echo within the deadline");
        assert_eq!(from, echo_addr);
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("gossip ") && n == 191, "{text}");
        echoed.insert(text[7..10].to_string());
    }
    assert_eq!(echoed.len(), N, "every datagram echoed exactly once");

    let st = ring.stats().clone();
    eprintln!("{st:?}");
    assert!(st.enobufs >= 1, "64 queued datagrams must exhaust 8 buffers");
    assert!(st.recv_armed >= 2, "the multishot receive was re-armed");
    assert_eq!(st.datagrams_received, N as u64);
    assert!(st.enters < N as u64, "sends are batched: {} enters for {N} datagrams", st.enters);
}

/// More datagrams than send slots, queued without a turn: a send that
/// finds every slot in flight reaps the sends the kernel has completed and
/// goes out too (a datagram is dropped, and counted in
/// `send_pool_exhausted`, only if none has completed); oversized payloads
/// are still refused.
#[test]
fn a_full_send_pool_reaps_completed_sends_before_dropping() {
    let Some(s) = support_or_skip("send_pool_exhaustion") else {
        return;
    };
    let mut ring = small_ring(&s, 8, 4);
    let sock = ring.add_udp(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(DEADLINE)).unwrap();
    let to = sink.local_addr().unwrap();
    let results: Vec<_> = (0..10u8).map(|i| ring.send_to(sock, to, &[i; 100])).collect();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(ring.stats().send_slots_reclaimed >= 1);
    assert_eq!(ring.stats().send_pool_exhausted, 0);
    assert_eq!(ring.send_to(sock, to, &[0; 5000]), Err(SendError::TooLarge { len: 5000, max: 1400 }));

    ring.submit().unwrap();
    let mut buf = [0u8; 200];
    let mut got = BTreeSet::new();
    for _ in 0..10 {
        let (n, _) = sink.recv_from(&mut buf).unwrap();
        assert_eq!(n, 100);
        got.insert(buf[0]);
    }
    assert_eq!(got, (0..10).collect::<BTreeSet<u8>>());
    // The last slots come back with their CQEs.
    assert!(turn_until(&mut ring, &mut |_, _| {}, |r| r.free_send_slots() == 4));
    assert_eq!(ring.stats().datagrams_sent, 10);
    assert!(ring.send_to(sock, to, b"again").is_ok());
}

#[test]
fn full_submission_queue_is_submitted_and_retried() {
    let Some(s) = support_or_skip("full_submission_queue") else {
        return;
    };
    let config = RingConfig { sq_entries: 4, cq_entries: 64, send_slots: 64, ..RingConfig::default() };
    let mut ring = Ring::new(&config, &s).unwrap();
    let sock = ring.add_udp(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(DEADLINE)).unwrap();
    let to = sink.local_addr().unwrap();
    for i in 0..32u8 {
        ring.send_to(sock, to, &[i; 10]).expect("64 slots");
    }
    assert!(ring.stats().sq_full >= 1, "32 sends overflow a 4-entry SQ");
    ring.turn(Some(Duration::ZERO), &mut |_, _| {}).unwrap();
    let mut got = BTreeSet::new();
    let mut buf = [0u8; 16];
    for _ in 0..32 {
        let (n, _) = sink.recv_from(&mut buf).expect("every datagram sent");
        assert_eq!(n, 10);
        got.insert(buf[0]);
    }
    assert_eq!(got.len(), 32);
    assert!(turn_until(&mut ring, &mut |_, _| {}, |r| r.stats().datagrams_sent == 32));
}

/// Completions of interest, as owned values.
#[derive(Debug)]
enum Seen {
    Accepted(StreamId),
    Connected(StreamId, bool),
    Data(StreamId, Vec<u8>),
    Eof(StreamId),
    Written(StreamId, usize),
    Other,
}

fn seen(c: Completion<'_>) -> Seen {
    match c {
        Completion::Accepted { stream, .. } => Seen::Accepted(stream),
        Completion::Connected { stream, result } => Seen::Connected(stream, result.is_ok()),
        Completion::Read { stream, outcome: ReadOutcome::Data(b) } => Seen::Data(stream, b.to_vec()),
        Completion::Read { stream, outcome: ReadOutcome::Eof } => Seen::Eof(stream),
        Completion::Written { stream, result } => Seen::Written(stream, result.unwrap()),
        _ => Seen::Other,
    }
}

#[test]
fn tcp_connect_write_read_close_round_trip() {
    let Some(s) = support_or_skip("tcp_round_trip") else {
        return;
    };
    let mut ring = small_ring(&s, 8, 8);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    ring.add_listener(listener).unwrap();
    let client = ring.connect(addr).unwrap();

    let server = Cell::new(None);
    let connected = Cell::new(false);
    let ok = turn_until(
        &mut ring,
        &mut |_, c| match seen(c) {
            Seen::Accepted(id) => server.set(Some(id)),
            Seen::Connected(id, ok) => connected.set(ok && id == client),
            other => panic!("unexpected {other:?}"),
        },
        |_| server.get().is_some() && connected.get(),
    );
    assert!(ok, "accept and connect complete");
    let server = server.get().unwrap();
    assert_ne!(server, client);

    // The client writes 1 MB (more than one send takes), the server reads
    // it all, one read at a time.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    ring.write(client, payload[..1000].to_vec()).unwrap();
    ring.write(client, payload[1000..].to_vec()).unwrap();
    ring.read(server, 65536).unwrap();
    assert!(matches!(ring.read(server, 10), Err(StreamError::ReadPending)));
    let got = RefCell::new(Vec::new());
    let written = Cell::new(0);
    let ok = turn_until(
        &mut ring,
        &mut |io, c| match seen(c) {
            Seen::Data(id, b) => {
                assert_eq!(id, server);
                got.borrow_mut().extend_from_slice(&b);
                io.read(server, 65536).unwrap();
            }
            Seen::Written(id, n) => {
                assert_eq!(id, client);
                written.set(written.get() + n);
            }
            other => panic!("unexpected {other:?}"),
        },
        |_| got.borrow().len() == payload.len() && written.get() == payload.len(),
    );
    let got = got.into_inner();
    assert!(ok, "read {} of {} bytes, written {}", got.len(), payload.len(), written.get());
    assert!(got == payload, "bytes arrive in order");

    // The client closes: the server's pending read sees end of stream.
    ring.close(client).unwrap();
    assert!(matches!(ring.write(client, vec![1]), Err(StreamError::Unknown)));
    let eof = Cell::new(false);
    let ok = turn_until(
        &mut ring,
        &mut |_, c| {
            if let Seen::Eof(id) = seen(c) {
                eof.set(id == server);
            }
        },
        |_| eof.get(),
    );
    assert!(ok, "server sees EOF");
    ring.close(server).unwrap();
    assert!(matches!(ring.close(server), Err(StreamError::Unknown)));
    assert!(turn_until(&mut ring, &mut |_, c| panic!("{c:?}"), |r| r.streams() == 0));
}

#[test]
fn closed_stream_late_completion_is_ignored() {
    let Some(s) = support_or_skip("closed_stream_late_completion") else {
        return;
    };
    let mut ring = small_ring(&s, 8, 8);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = ring.connect(addr).unwrap();
    let connected = Cell::new(false);
    assert!(turn_until(
        &mut ring,
        &mut |_, c| connected.set(matches!(seen(c), Seen::Connected(id, true) if id == stream)),
        |_| connected.get(),
    ));
    // Connected: the connection waits in the accept queue.
    let (mut peer, _) = listener.accept().unwrap();

    // A read is submitted and pending in the kernel when the stream closes.
    ring.read(stream, 100).unwrap();
    ring.turn(Some(Duration::ZERO), &mut |_, c| {
        assert!(matches!(c, Completion::Timeout), "nothing to complete yet: {c:?}")
    })
    .unwrap();
    let late_before = ring.stats().late_completions;
    ring.close(stream).unwrap();
    let _ = peer.write_all(b"too late");

    // A new stream may reuse the slot, never the id.
    let second = ring.connect(addr).unwrap();
    assert_ne!(second, stream);

    let connected = Cell::new(false);
    let ok = turn_until(
        &mut ring,
        &mut |_, c| match seen(c) {
            Seen::Connected(id, true) if id == second => connected.set(true),
            other => panic!("a closed stream's completion was delivered: {other:?}"),
        },
        // Until the closed stream's read CQE is back and the stream freed.
        |r| connected.get() && r.streams() == 1,
    );
    assert!(ok, "second connects; the closed stream is freed");
    assert!(ring.stats().late_completions > late_before, "its read CQE was counted late");
    let mut buf = [0u8; 1];
    peer.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(peer.read(&mut buf).unwrap(), 0, "the peer sees the close");
}

#[test]
fn timeout_fires() {
    let Some(s) = support_or_skip("timeout_fires") else {
        return;
    };
    let mut ring = small_ring(&s, 8, 8);
    let mut timeouts = 0;
    let n = ring
        .turn(Some(Duration::from_millis(20)), &mut |_, c| {
            assert!(matches!(c, Completion::Timeout), "{c:?}");
            timeouts += 1;
        })
        .unwrap();
    assert_eq!((n, timeouts), (1, 1));
    // A zero timeout returns at once, with the timeout delivered.
    let n = ring.turn(Some(Duration::ZERO), &mut |_, _| {}).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn waker_wakes_a_blocked_turn() {
    let Some(s) = support_or_skip("waker_wakes") else {
        return;
    };
    let mut ring = small_ring(&s, 8, 8);
    let waker = ring.waker();
    // Arm the wake read first, so the wake below may land while the turn
    // blocks or before: both must end in `Woken`.
    ring.turn(Some(Duration::ZERO), &mut |_, _| {}).unwrap();
    let t = std::thread::spawn(move || waker.wake().unwrap());
    let woken = Cell::new(false);
    let timed_out = Cell::new(false);
    let end = Instant::now() + DEADLINE;
    while !woken.get() && Instant::now() < end {
        // No other completion can come; the timeout is only a safety net.
        ring.turn(Some(DEADLINE), &mut |_, c| match c {
            Completion::Woken => woken.set(true),
            Completion::Timeout => timed_out.set(true),
            other => panic!("unexpected {other:?}"),
        })
        .unwrap();
    }
    t.join().unwrap();
    assert!(woken.get() && !timed_out.get());
}

#[test]
fn removed_socket_is_closed_after_its_receive_ends() {
    let Some(s) = support_or_skip("removed_socket") else {
        return;
    };
    let mut ring = small_ring(&s, 8, 8);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a_addr = a.local_addr().unwrap();
    let a = ring.add_udp(a).unwrap();
    ring.turn(Some(Duration::ZERO), &mut |_, _| {}).unwrap();
    assert!(ring.remove_udp(a));
    assert!(!ring.remove_udp(a));
    assert_eq!(ring.send_to(a, a_addr, b"x"), Err(SendError::UnknownSocket));
    let b = ring.add_udp(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    assert_ne!(a, b);
    assert!(turn_until(&mut ring, &mut |_, c| panic!("unexpected {c:?}"), |r| { r.udp_sockets() == 1 }));
    // Its port is free again: the descriptor was closed.
    UdpSocket::bind(a_addr).expect("the removed socket's port is free");
}

#[test]
fn echo_runs() {
    let Some(s) = support_or_skip("echo_runs") else {
        return;
    };
    let config = EchoConfig { duration: Duration::from_millis(300), ..Default::default() };
    let r = run_echo(&config, &s).unwrap();
    eprintln!("{r:?}");
    assert!(r.packets > 0 && r.bytes == r.packets * 200);
    assert!(r.cpu_ns_per_packet > 0.0 && r.cpu_ns_per_packet.is_finite());
    assert_eq!(r.send_errors, 0);
}
