//! A bare io_uring UDP echo: the floor under the engine's packet path.
//!
//! Two UDP sockets on 127.0.0.1 share one [`Ring`] on the calling thread.
//! Socket A keeps `window` gossip-sized datagrams (200 bytes by default,
//! about "1 ping + 5 alive" in memberlist's encoding) in flight to socket B;
//! B echoes each back; each echo A receives sends the next one. No decoding,
//! no protocol: multishot receive, batched `sendmsg`, one `io_uring_enter`
//! per turn. [`run_echo`] returns packets per second and the CPU each packet
//! cost; it is the `"backend":"echo"` line of `ringswim bench engine`.

use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::probe::Support;
use super::ring::{Completion, Ring, RingConfig, RingError};

/// What [`run_echo`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoConfig {
    /// How long to run.
    pub duration: Duration,
    /// Datagram payload, bytes (at most `ring.send_buf_size`).
    pub payload_len: usize,
    /// Datagrams kept in flight.
    pub window: usize,
    /// The ring's sizes.
    pub ring: RingConfig,
}

impl Default for EchoConfig {
    /// One second, 200-byte datagrams, 32 in flight, default ring.
    fn default() -> Self {
        EchoConfig { duration: Duration::from_secs(1), payload_len: 200, window: 32, ring: RingConfig::default() }
    }
}

/// What [`run_echo`] measured. A packet is one datagram received (and so
/// one sent): both directions count.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EchoReport {
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Datagrams received, both sockets together.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// `packets / seconds`.
    pub packets_per_s: f64,
    /// Process CPU time (user + system, all threads, io_uring workers
    /// included) over the run, seconds.
    pub cpu_s: f64,
    /// `packets / cpu_s`: packets per second of one fully used core.
    pub packets_per_core_s: f64,
    /// Process CPU nanoseconds per packet.
    pub cpu_ns_per_packet: f64,
    /// CPU nanoseconds per packet of the calling thread alone (equal to
    /// the above when nothing else runs; lower when other threads do).
    pub thread_cpu_ns_per_packet: f64,
    /// Multishot receives ended by an empty buffer ring (re-armed).
    pub enobufs: u64,
    /// Sends refused for want of a free slot (retried).
    pub send_pool_exhausted: u64,
    /// `sendmsg` CQEs with an error.
    pub send_errors: u64,
    /// `io_uring_enter` calls.
    pub enters: u64,
}

/// CPU time (user + system) of `who` (`RUSAGE_SELF` or `RUSAGE_THREAD`).
fn cpu_time(who: libc::c_int) -> Duration {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `rusage` through a pointer valid for
    // writes of that size.
    if unsafe { libc::getrusage(who, usage.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: zero-initialised (a valid `rusage`), then filled by the kernel.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.clamp(0, 999_999) * 1000) as u32);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs the echo for `config.duration` on the calling thread.
///
/// Errors: the ring cannot be built on this kernel ([`RingError`]), or a
/// socket cannot be bound on 127.0.0.1.
pub fn run_echo(config: &EchoConfig, support: &Support) -> Result<EchoReport, RingError> {
    if config.payload_len == 0 || config.payload_len > config.ring.send_buf_size {
        return Err(RingError::Config("payload_len must be in 1..=send_buf_size"));
    }
    let mut ring = Ring::new(&config.ring, support)?;
    let a_sock = UdpSocket::bind("127.0.0.1:0")?;
    let b_sock = UdpSocket::bind("127.0.0.1:0")?;
    let b_addr: SocketAddr = b_sock.local_addr()?;
    let a = ring.add_udp(a_sock)?;
    let b = ring.add_udp(b_sock)?;
    let payload: Vec<u8> = (0..config.payload_len).map(|i| (i * 31 + 7) as u8).collect();

    // Pings A still owes the window (a send found no free slot).
    let mut owed = config.window;
    let mut packets = 0u64;
    let mut bytes = 0u64;
    let cpu0 = cpu_time(libc::RUSAGE_SELF);
    let thread0 = cpu_time(libc::RUSAGE_THREAD);
    let start = Instant::now();
    let end = start + config.duration;
    loop {
        while owed > 0 && ring.send_to(a, b_addr, &payload).is_ok() {
            owed -= 1;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wait = (end - now).min(Duration::from_millis(100));
        ring.turn(Some(wait), &mut |io, c| {
            if let Completion::Datagram { socket, from, bytes: data } = c {
                packets += 1;
                bytes += data.len() as u64;
                let sent = if socket == b { io.send_to(b, from, data) } else { io.send_to(a, b_addr, data) };
                if sent.is_err() {
                    owed += 1;
                }
            }
        })?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_s = (cpu_time(libc::RUSAGE_SELF) - cpu0).as_secs_f64();
    let thread_s = (cpu_time(libc::RUSAGE_THREAD) - thread0).as_secs_f64();
    let per = |x: f64| if packets == 0 { 0.0 } else { x / packets as f64 };
    let stats = ring.stats().clone();
    Ok(EchoReport {
        seconds,
        packets,
        bytes,
        packets_per_s: packets as f64 / seconds,
        cpu_s,
        packets_per_core_s: if cpu_s > 0.0 { packets as f64 / cpu_s } else { 0.0 },
        cpu_ns_per_packet: per(cpu_s * 1e9),
        thread_cpu_ns_per_packet: per(thread_s * 1e9),
        enobufs: stats.enobufs,
        send_pool_exhausted: stats.send_pool_exhausted,
        send_errors: stats.send_errors,
        enters: stats.enters,
    })
}
