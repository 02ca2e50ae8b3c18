//! The portable backend's UDP: a batch of datagrams per system call.
//! On Linux, `recvmmsg` through `nix` and `sendmmsg` through `rustix` (safe
//! wrappers; neither sets a socket option, so what goes on the wire is what
//! one `send_to` per datagram sends: the kernel's default path-MTU handling,
//! as on Go's sockets, which fragments a datagram over the path MTU rather
//! than refuse it; no segmentation offload; every datagram its own).
//! Elsewhere, one `recv_from`/`send_to` per datagram behind the same calls.
#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

use super::super::runtime::ShardCounters;

/// Largest datagram read (a UDP datagram cannot be larger; Go reads into
/// 65,536 bytes too, `udpPacketBufSize`).
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams read from one socket per call, and so handled before the
/// turn's sends go out: a flood on one socket neither starves the others
/// nor grows the send queue without bound.
pub(super) const RECV_BATCH: usize = 64;
/// Datagrams handed to the kernel per `sendmmsg`.
#[cfg(target_os = "linux")]
const SEND_BATCH: usize = 32;

/// Where a batch of datagrams is read into: [`RECV_BATCH`] buffers of
/// [`MAX_DATAGRAM`] bytes, allocated once and reused for every batch (the
/// pages of a buffer are touched only as far as datagrams fill it).
pub(super) struct RecvBuffers {
    buffers: Vec<u8>,
    /// The last batch: each datagram's length and sender.
    received: Vec<(usize, SocketAddr)>,
    /// `recvmmsg`'s headers, one set per address family: the kernel writes
    /// each header's address length back (16 for IPv4, 28 for IPv6) and
    /// `nix` does not restore it, so a set shared by both families would
    /// truncate IPv6 senders after an IPv4 batch.
    #[cfg(target_os = "linux")]
    v4: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrIn>,
    #[cfg(target_os = "linux")]
    v6: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrIn6>,
}

impl RecvBuffers {
    /// The buffers, allocated once for the thread.
    pub fn new() -> RecvBuffers {
        RecvBuffers {
            buffers: vec![0; RECV_BATCH * MAX_DATAGRAM],
            received: Vec::with_capacity(RECV_BATCH),
            #[cfg(target_os = "linux")]
            v4: nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH, None),
            #[cfg(target_os = "linux")]
            v6: nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH, None),
        }
    }

    /// Reads up to [`RECV_BATCH`] datagrams waiting on `socket` (bound to
    /// an IPv6 address if `ipv6`); they are [`RecvBuffers::datagram`]`(0..n)`.
    /// Fewer than [`RECV_BATCH`] means the socket is drained: the kernel
    /// stops a batch early only when nothing more is queued (an error after
    /// the first datagram would also stop it, but an unconnected socket
    /// without `IP_RECVERR` has none to report), and with edge-triggered
    /// epoll a datagram that arrives later brings a new event. Errors as
    /// `recv_from`'s: `WouldBlock` when nothing waits.
    pub fn receive(&mut self, socket: &UdpSocket, ipv6: bool) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        return self.receive_batch(socket, ipv6);
        #[cfg(not(target_os = "linux"))]
        return self.receive_one_by_one(socket, ipv6);
    }

    /// Datagram `i` of the last [`RecvBuffers::receive`]: its sender and its
    /// bytes (mutable: the shard opens packets in place).
    pub fn datagram(&mut self, i: usize) -> (SocketAddr, &mut [u8]) {
        let (len, from) = self.received[i];
        (from, &mut self.buffers[i * MAX_DATAGRAM..][..len])
    }

    /// One `recvmmsg`.
    #[cfg(target_os = "linux")]
    fn receive_batch(&mut self, socket: &UdpSocket, ipv6: bool) -> io::Result<usize> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrLike, recvmmsg};

        /// Fills `into` from one `recvmmsg` with the headers of the socket's
        /// family.
        fn batch<S: SockaddrLike + Copy + Into<SocketAddr>>(
            fd: std::os::fd::RawFd,
            headers: &mut MultiHeaders<S>,
            buffers: &mut [u8],
            into: &mut Vec<(usize, SocketAddr)>,
        ) -> io::Result<()> {
            let mut chunks = buffers.chunks_exact_mut(MAX_DATAGRAM);
            let mut slices: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().expect("RECV_BATCH buffers"))]);
            let received = recvmmsg(fd, headers, slices.iter_mut(), MsgFlags::empty(), None)?;
            // The kernel writes every sender's address (a datagram socket
            // always has one); the fallback never applies.
            into.extend(received.map(|r| (r.bytes, r.address.map_or(UNSPECIFIED, Into::into))));
            Ok(())
        }

        self.received.clear();
        let fd = socket.as_raw_fd();
        if ipv6 {
            batch(fd, &mut self.v6, &mut self.buffers, &mut self.received)?;
        } else {
            batch(fd, &mut self.v4, &mut self.buffers, &mut self.received)?;
        }
        Ok(self.received.len())
    }

    /// `recv_from` until [`RECV_BATCH`] datagrams or the socket would
    /// block (platforms without `recvmmsg`; also tested on Linux). Other
    /// errors (interrupted, an ICMP error surfacing) are passed over, as
    /// one datagram at a time always did: a short batch still means
    /// `WouldBlock` was heard.
    #[cfg(any(test, not(target_os = "linux")))]
    fn receive_one_by_one(&mut self, socket: &UdpSocket, _ipv6: bool) -> io::Result<usize> {
        self.received.clear();
        while self.received.len() < RECV_BATCH {
            let buffer = &mut self.buffers[self.received.len() * MAX_DATAGRAM..][..MAX_DATAGRAM];
            match socket.recv_from(buffer) {
                Ok((n, from)) => self.received.push((n, from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.received.is_empty() => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {}
            }
        }
        Ok(self.received.len())
    }
}

#[cfg(target_os = "linux")]
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));

/// Sends `datagrams` (destination, bytes) from `socket`, in order, and
/// counts each in `counters`: sent, or lost (a full send buffer, an
/// unreachable or invalid destination, a datagram too large), as UDP
/// allows. Each datagram is tried once, as with one `send_to` each.
pub(super) fn send<'d>(
    socket: &UdpSocket,
    datagrams: impl Iterator<Item = (SocketAddr, &'d [u8])>,
    counters: &ShardCounters,
) {
    #[cfg(target_os = "linux")]
    send_batches(socket, datagrams, counters);
    #[cfg(not(target_os = "linux"))]
    send_one_by_one(socket, datagrams, counters);
}

/// [`SEND_BATCH`] datagrams per `sendmmsg`. The kernel stops a batch at
/// the first datagram it refuses and reports how many went before it: that
/// one is counted lost and the batch goes on after it.
#[cfg(target_os = "linux")]
fn send_batches<'d>(
    socket: &UdpSocket,
    datagrams: impl Iterator<Item = (SocketAddr, &'d [u8])>,
    counters: &ShardCounters,
) {
    use std::io::IoSlice;

    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};

    let mut datagrams = datagrams.peekable();
    let unused = UNSPECIFIED.as_any();
    while datagrams.peek().is_some() {
        let mut batch: [(SocketAddr, &[u8]); SEND_BATCH] = [(UNSPECIFIED, &[]); SEND_BATCH];
        let mut len = 0;
        for (slot, datagram) in batch.iter_mut().zip(&mut datagrams) {
            *slot = datagram;
            len += 1;
        }
        let addrs: [SocketAddrAny; SEND_BATCH] =
            std::array::from_fn(|i| if i < len { batch[i].0.as_any() } else { unused.clone() });
        let slices: [IoSlice<'_>; SEND_BATCH] = std::array::from_fn(|i| IoSlice::new(batch[i].1));
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; SEND_BATCH] = std::array::from_fn(|_| Default::default());
        let mut controls = controls.iter_mut();
        let mut headers: [MMsgHdr<'_>; SEND_BATCH] = std::array::from_fn(|i| {
            let control = controls.next().expect("SEND_BATCH controls");
            MMsgHdr::new_with_addr(&addrs[i], std::slice::from_ref(&slices[i]), control)
        });
        let mut next = 0;
        while next < len {
            let sent = sendmmsg(socket, &mut headers[next..len], SendFlags::empty()).unwrap_or(0);
            for (_, bytes) in &batch[next..next + sent] {
                counters.datagram_sent(Some(bytes.len()));
            }
            next += sent;
            if next < len {
                counters.datagram_sent(None);
                next += 1;
            }
        }
    }
}

/// One `send_to` per datagram (platforms without `sendmmsg`; also tested
/// on Linux).
#[cfg(any(test, not(target_os = "linux")))]
fn send_one_by_one<'d>(
    socket: &UdpSocket,
    datagrams: impl Iterator<Item = (SocketAddr, &'d [u8])>,
    counters: &ShardCounters,
) {
    for (to, bytes) in datagrams {
        counters.datagram_sent(socket.send_to(bytes, to).ok());
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::Ordering;

    use super::*;

    type Receive = fn(&mut RecvBuffers, &UdpSocket, bool) -> io::Result<usize>;
    /// Both ways of receiving: the platform's and one call per datagram.
    #[cfg(target_os = "linux")]
    const RECEIVES: [Receive; 2] = [RecvBuffers::receive_batch, RecvBuffers::receive_one_by_one];
    #[cfg(not(target_os = "linux"))]
    const RECEIVES: [Receive; 1] = [RecvBuffers::receive_one_by_one];

    /// Both ways of sending: batched (`true`, where the platform has it)
    /// and one call per datagram.
    const SENDS: [bool; 2] = [cfg!(target_os = "linux"), false];

    fn send_with(batched: bool, socket: &UdpSocket, datagrams: Vec<(SocketAddr, &[u8])>, counters: &ShardCounters) {
        if batched {
            send(socket, datagrams.into_iter(), counters);
        } else {
            send_one_by_one(socket, datagrams.into_iter(), counters);
        }
    }

    fn bind(ip: std::net::IpAddr) -> UdpSocket {
        UdpSocket::bind(SocketAddr::new(ip, 0)).expect("loopback socket")
    }

    fn payload(len: usize, tag: u8) -> Vec<u8> {
        (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
    }

    /// Reads until `want` datagrams came (loopback delivers at once, but
    /// the test does not count on it: it waits on readiness, bounded).
    fn receive_all(
        receive: Receive,
        buffers: &mut RecvBuffers,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let ipv6 = socket.local_addr().expect("bound").is_ipv6();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < want {
            match receive(buffers, socket, ipv6) {
                Ok(n) => got.extend((0..n).map(|i| {
                    let (from, bytes) = buffers.datagram(i);
                    (from, bytes.to_vec())
                })),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "{} of {want} datagrams came", got.len());
                    std::thread::yield_now();
                }
                Err(e) => panic!("receive: {e}"),
            }
        }
        got
    }

    /// Every datagram arrives whole and alone (sizes up to the largest UDP
    /// datagram: no DF refusal, no merging), with its sender's address, on
    /// IPv4 and IPv6 sockets read through the same buffers in turn (a
    /// header set shared by both families would cut IPv6 senders short).
    #[test]
    fn datagrams_arrive_whole_with_their_senders_on_both_families() {
        let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
        for receive in RECEIVES {
            for batched in SENDS {
                let mut buffers = RecvBuffers::new();
                let families: &[(std::net::IpAddr, usize)] = if v6 {
                    &[
                        (Ipv4Addr::LOCALHOST.into(), 65_507),
                        (Ipv6Addr::LOCALHOST.into(), 65_527),
                        (Ipv4Addr::LOCALHOST.into(), 65_507),
                    ]
                } else {
                    &[(Ipv4Addr::LOCALHOST.into(), 65_507)]
                };
                for &(ip, largest) in families {
                    let (from, to) = (bind(ip), bind(ip));
                    let sizes = [0, 1, 1_400, 9_000, largest];
                    let sent: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| payload(n, i as u8)).collect();
                    let counters = ShardCounters::default();
                    let dest = to.local_addr().expect("bound");
                    send_with(batched, &from, sent.iter().map(|d| (dest, d.as_slice())).collect(), &counters);
                    assert_eq!(counters.udp_packets_sent.load(Ordering::Relaxed), sizes.len() as u64, "{ip}");
                    assert_eq!(counters.udp_send_failed.load(Ordering::Relaxed), 0, "{ip}");
                    let got = receive_all(receive, &mut buffers, &to, sizes.len());
                    let sender = from.local_addr().expect("bound");
                    assert_eq!(got, sent.into_iter().map(|d| (sender, d)).collect::<Vec<_>>(), "{ip}");
                }
            }
        }
    }

    /// A full batch is followed by the rest; a batch shorter than
    /// [`RECV_BATCH`] leaves nothing waiting (what lets the backend skip the
    /// call that would only say `WouldBlock`).
    #[test]
    fn a_short_batch_leaves_the_socket_drained() {
        for receive in RECEIVES {
            let (from, to) = (bind(Ipv4Addr::LOCALHOST.into()), bind(Ipv4Addr::LOCALHOST.into()));
            let dest = to.local_addr().expect("bound");
            for i in 0..RECV_BATCH + 3 {
                from.send_to(&payload(8, i as u8), dest).expect("loopback send");
            }
            let mut buffers = RecvBuffers::new();
            assert_eq!(receive_all(receive, &mut buffers, &to, RECV_BATCH).len(), RECV_BATCH);
            assert_eq!(receive(&mut buffers, &to, false).expect("three wait"), 3);
            assert_eq!(receive(&mut buffers, &to, false).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
        }
    }

    /// Datagrams the kernel refuses (too large, a destination of the other
    /// family) are counted lost, one each, and the datagrams after them in
    /// the same batch still go, in order.
    #[test]
    fn a_refused_datagram_is_counted_lost_and_the_batch_goes_on() {
        for batched in SENDS {
            let (from, to) = (bind(Ipv4Addr::LOCALHOST.into()), bind(Ipv4Addr::LOCALHOST.into()));
            let dest = to.local_addr().expect("bound");
            let elsewhere = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), dest.port());
            let too_large = payload(65_508, 0);
            let good: Vec<Vec<u8>> = (0..70).map(|i| payload(1 + i, i as u8)).collect();
            let mut datagrams: Vec<(SocketAddr, &[u8])> = good.iter().map(|d| (dest, d.as_slice())).collect();
            datagrams.insert(5, (dest, &too_large));
            datagrams.insert(40, (elsewhere, &good[0]));
            let counters = ShardCounters::default();
            send_with(batched, &from, datagrams, &counters);
            assert_eq!(counters.udp_packets_sent.load(Ordering::Relaxed), good.len() as u64);
            assert_eq!(
                counters.udp_bytes_sent.load(Ordering::Relaxed),
                good.iter().map(|d| d.len() as u64).sum::<u64>()
            );
            assert_eq!(counters.udp_send_failed.load(Ordering::Relaxed), 2);
            let got = receive_all(RECEIVES[0], &mut RecvBuffers::new(), &to, good.len());
            assert_eq!(got.into_iter().map(|(_, d)| d).collect::<Vec<_>>(), good);
        }
    }
}
