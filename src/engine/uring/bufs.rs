//! Memory shared with the kernel, allocated once:
//!
//! - [`ProvidedBufs`]: a provided buffer ring (`IORING_REGISTER_PBUF_RING`,
//!   kernel 5.19): `depth` buffers of `entry_size` bytes that multishot
//!   `recvmsg` picks from. A buffer the kernel filled comes back as a
//!   [`RecvBuf`] guard, which returns it to the ring when dropped. When the
//!   ring is empty the kernel ends the multishot receive with `ENOBUFS`; the
//!   datagram stays in the socket and the ring owner re-arms.
//! - [`SendSlots`]: a fixed pool of `(msghdr, iovec, sockaddr, payload)` for
//!   `sendmsg`; a slot is handed back only when the kernel's CQE for it has
//!   arrived (the kernel reads all four until then).
//!
//! Both hold their memory through raw allocations rather than `Vec`s or
//! boxes, so that no Rust reference ever covers memory the kernel may be
//! reading or writing: a reference is made to one buffer or slot at a time,
//! and only while the kernel has no claim on it.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::io;
use std::net::SocketAddr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::Submitter;
use io_uring::types::BufRingEntry;
use socket2::SockAddr;

/// Page alignment the kernel requires for the buffer ring's entry array.
const RING_ALIGN: usize = 4096;

/// Allocates `layout` zeroed; aborts like `Box` does when memory runs out.
fn alloc_zeroed_checked(layout: Layout) -> NonNull<u8> {
    debug_assert!(layout.size() > 0);
    // SAFETY: `layout` has a non-zero size (all callers build it from
    // positive counts and sizes, checked in their constructors).
    let ptr = unsafe { alloc_zeroed(layout) };
    NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout))
}

/// A provided buffer ring: the entry array the kernel reads and the buffers
/// it writes datagrams into.
#[derive(Debug)]
pub(crate) struct ProvidedBufs {
    /// `depth` entries, page aligned; entry 0's reserved field is the tail.
    ring: NonNull<BufRingEntry>,
    ring_layout: Layout,
    /// `depth * entry_size` bytes of buffers, buffer `bid` at `bid * entry_size`.
    data: NonNull<u8>,
    data_layout: Layout,
    entry_size: usize,
    depth: u16,
    /// Our copy of the tail (the kernel only reads the shared one).
    tail: u16,
    bgid: u16,
    /// `out[bid]`: the kernel handed buffer `bid` to us and it is not back.
    out: Vec<bool>,
    /// Set when the kernel may still use the memory: it is never freed.
    leaked: bool,
}

impl ProvidedBufs {
    /// Allocates `depth` buffers of `entry_size` bytes for buffer group
    /// `bgid` and puts them all in the ring.
    ///
    /// `depth` must be a power of two in `1..=32768` and `entry_size` in
    /// `1..=u32::MAX`; otherwise `InvalidInput`.
    pub(crate) fn new(entry_size: usize, depth: u16, bgid: u16) -> io::Result<Self> {
        if depth == 0 || !depth.is_power_of_two() || depth > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring depth must be a power of two in 1..=32768",
            ));
        }
        if entry_size == 0 || u32::try_from(entry_size).is_err() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer ring entry size must be in 1..=u32::MAX"));
        }
        let ring_layout = Layout::array::<BufRingEntry>(usize::from(depth)).and_then(|l| l.align_to(RING_ALIGN));
        let data_layout = entry_size
            .checked_mul(usize::from(depth))
            .ok_or(())
            .and_then(|n| Layout::from_size_align(n, 64).map_err(|_| ()));
        let (Ok(ring_layout), Ok(data_layout)) = (ring_layout, data_layout) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer ring too large"));
        };
        let ring = alloc_zeroed_checked(ring_layout).cast::<BufRingEntry>();
        let data = alloc_zeroed_checked(data_layout);
        let mut bufs = ProvidedBufs {
            ring,
            ring_layout,
            data,
            data_layout,
            entry_size,
            depth,
            tail: 0,
            bgid,
            out: vec![true; usize::from(depth)],
            leaked: false,
        };
        for bid in 0..depth {
            bufs.recycle(bid);
        }
        Ok(bufs)
    }

    /// Buffer group id to put in `recvmsg` SQEs.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Registers the ring with `submitter`'s io_uring under [`Self::bgid`].
    ///
    /// # Safety
    /// `self` must not be dropped (its memory freed) while the kernel may use
    /// it: until the group is unregistered, or the ring is closed with no
    /// operation that selects from this group still in flight. (Marking it
    /// [`Self::leak`] also satisfies this.)
    pub(crate) unsafe fn register(&self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: the entry array spans `depth` entries of our allocation,
        // page aligned; the caller keeps it alive as long as the kernel may
        // read it (this function's contract).
        unsafe { submitter.register_buf_ring_with_flags(self.ring.as_ptr() as u64, self.depth, self.bgid, 0) }
    }

    /// Takes buffer `bid`, of which the kernel filled `len` bytes, out of
    /// the ring; it goes back when the returned guard drops. `None` if `bid`
    /// or `len` is out of range or the buffer is already out (a kernel that
    /// broke the protocol: the CQE is then ignored).
    ///
    /// # Safety
    /// `bid` must come from a CQE of an operation that selected from this
    /// buffer group, reaped after that operation finished with the buffer
    /// (any CQE carrying `IORING_CQE_F_BUFFER`): the kernel no longer writes
    /// to it.
    pub(crate) unsafe fn take(&mut self, bid: u16, len: usize) -> Option<RecvBuf<'_>> {
        if bid >= self.depth || len > self.entry_size || self.out[usize::from(bid)] {
            return None;
        }
        self.out[usize::from(bid)] = true;
        Some(RecvBuf { bufs: self, bid, len })
    }

    /// Puts buffer `bid` back at the tail of the ring and publishes the tail.
    fn recycle(&mut self, bid: u16) {
        let out = &mut self.out[usize::from(bid)];
        assert!(*out, "buffer {bid} returned twice");
        *out = false;
        let mask = self.depth - 1;
        let index = usize::from(self.tail & mask);
        let addr = self.buf_ptr(bid) as u64;
        // The kernel only reads entries between its head and the published
        // tail; at most `depth - 1` buffers are in the ring now (this one was
        // out), so the slot at `tail` is not among them. Only the entry's own
        // fields are written (not the tail, which overlays entry 0's reserved field).
        // SAFETY: `index < depth` (inside the entry array), and the kernel does not read
        // this slot until the tail is published (above).
        let entry = unsafe { &mut *self.ring.as_ptr().add(index) };
        entry.set_addr(addr);
        entry.set_len(self.entry_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // The tail is shared with the kernel, which only reads it: an
        // `AtomicU16` view gives the release store its acquire load pairs with.
        // SAFETY: `BufRingEntry::tail` gives entry 0's reserved `u16` in our initialised ring:
        // 2-aligned, alive as long as `self`; `AtomicU16` has the size and alignment of `u16`.
        let tail = unsafe { &*BufRingEntry::tail(self.ring.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Address of buffer `bid` (no reference is made).
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < depth`, so the offset stays inside the data
        // allocation of `depth * entry_size` bytes.
        unsafe { self.data.as_ptr().add(usize::from(bid) * self.entry_size) }
    }

    /// Never free the memory: the kernel may still be using it.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for ProvidedBufs {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: both pointers came from `alloc_zeroed` with these layouts
        // and are freed once; the ring owner's drop order (or `leak`)
        // guarantees the kernel no longer uses them.
        unsafe {
            dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}

/// A buffer the kernel filled, out of the ring until this guard drops.
#[derive(Debug)]
pub(crate) struct RecvBuf<'a> {
    bufs: &'a mut ProvidedBufs,
    bid: u16,
    len: usize,
}

impl RecvBuf<'_> {
    /// The `len` bytes the kernel wrote.
    pub(crate) fn bytes(&self) -> &[u8] {
        // The guard borrows the pool mutably, so no other reference to it exists.
        // SAFETY: buffer `bid` is out of the ring (`take`'s contract: the kernel no longer
        // writes it), `len <= entry_size` (checked in `take`), the memory zero-initialised.
        unsafe { std::slice::from_raw_parts(self.bufs.buf_ptr(self.bid), self.len) }
    }

    /// The `len` bytes the kernel wrote, writable (decrypt in place).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.buf_ptr(self.bid), self.len) }
    }
}

impl Drop for RecvBuf<'_> {
    fn drop(&mut self) {
        self.bufs.recycle(self.bid);
    }
}

/// An all-zero `msghdr`: no name, no iovecs, no control data.
pub(crate) fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is a plain C struct of pointers, lengths and flags
    // (plus private padding on some libcs); all-zero is a valid value of
    // every field (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// One `sendmsg`'s header, its one iovec and its destination.
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
}

/// A fixed pool of send slots with their payload buffers.
pub(crate) struct SendSlots {
    /// `count` slots, from a leaked `Box<[SendSlot]>` (addresses stable).
    slots: NonNull<SendSlot>,
    count: usize,
    /// `count * size` payload bytes, slot `i`'s at `i * size`.
    data: NonNull<u8>,
    data_layout: Layout,
    size: usize,
    free: Vec<u32>,
    busy: Vec<bool>,
    leaked: bool,
}

impl std::fmt::Debug for SendSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSlots")
            .field("count", &self.count)
            .field("size", &self.size)
            .field("free", &self.free.len())
            .finish()
    }
}

impl SendSlots {
    /// `count` slots (`1..=u32::MAX`) of `size` payload bytes (`>= 1`).
    pub(crate) fn new(count: usize, size: usize) -> io::Result<Self> {
        let invalid = |m| io::Error::new(io::ErrorKind::InvalidInput, m);
        if count == 0 || u32::try_from(count).is_err() {
            return Err(invalid("send slot count must be in 1..=u32::MAX"));
        }
        if size == 0 {
            return Err(invalid("send slot size must be at least 1"));
        }
        let data_layout = size
            .checked_mul(count)
            .and_then(|n| Layout::from_size_align(n, 64).ok())
            .ok_or_else(|| invalid("send slot pool too large"))?;
        let unspecified = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        let boxed: Box<[SendSlot]> = (0..count)
            .map(|_| SendSlot {
                hdr: zeroed_msghdr(),
                iov: libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
                addr: unspecified.clone(),
            })
            .collect();
        let slots = NonNull::new(Box::into_raw(boxed).cast::<SendSlot>()).expect("Box::into_raw is never null");
        let data = alloc_zeroed_checked(data_layout);
        Ok(SendSlots {
            slots,
            count,
            data,
            data_layout,
            size,
            free: (0..count as u32).rev().collect(),
            busy: vec![false; count],
            leaked: false,
        })
    }

    /// Largest payload a slot holds, in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Slots not waiting for a CQE.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Fills a free slot with a datagram of `payload` to `to`. Returns its
    /// index and the `msghdr` to put in the SQE, or `None` when every slot
    /// is in flight. `payload.len()` must be at most [`Self::size`].
    pub(crate) fn acquire(&mut self, to: SocketAddr, payload: &[u8]) -> Option<(u32, *const libc::msghdr)> {
        assert!(payload.len() <= self.size, "payload larger than a send slot");
        let index = self.free.pop()?;
        let i = index as usize;
        debug_assert!(!self.busy[i]);
        self.busy[i] = true;
        // SAFETY: `i < count`; the slot was free, so no SQE points at it and
        // the kernel does not read it; `&mut self` excludes other references.
        let slot = unsafe { &mut *self.slots.as_ptr().add(i) };
        // SAFETY: `i * size + size <= count * size`, inside `data`; the
        // payload buffer of a free slot is not read by the kernel.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr().add(i * self.size), self.size) };
        buf[..payload.len()].copy_from_slice(payload);
        slot.addr = SockAddr::from(to);
        slot.iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: payload.len() };
        slot.hdr = zeroed_msghdr();
        slot.hdr.msg_name = slot.addr.as_ptr().cast_mut().cast();
        slot.hdr.msg_namelen = slot.addr.len();
        slot.hdr.msg_iov = &mut slot.iov;
        slot.hdr.msg_iovlen = 1;
        Some((index, &slot.hdr))
    }

    /// Hands slot `index` back to the pool. Returns `false` (and does
    /// nothing) if it was not in flight.
    ///
    /// # Safety
    /// The CQE of the `sendmsg` that used slot `index` must have been reaped:
    /// the kernel no longer reads the slot.
    pub(crate) unsafe fn release(&mut self, index: u32) -> bool {
        match self.busy.get_mut(index as usize) {
            Some(busy) if *busy => {
                *busy = false;
                self.free.push(index);
                true
            }
            _ => false,
        }
    }

    /// Never free the memory: the kernel may still read it.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for SendSlots {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: `slots` came from `Box::into_raw` of a boxed slice of `count` slots and
        // `data` from `alloc_zeroed` with `data_layout`; each is freed once, after the ring
        // owner made sure the kernel no longer reads them (or leaked them instead).
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.slots.as_ptr(), self.count)));
            dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_cycle_through_the_ring_tail() {
        let mut bufs = ProvidedBufs::new(32, 4, 7).unwrap();
        assert_eq!(bufs.tail, 4);
        // SAFETY: no kernel is involved; every buffer is in the ring, so
        // taking one as the kernel would have handed it out is sound.
        let mut b = unsafe { bufs.take(2, 5) }.unwrap();
        b.bytes_mut().copy_from_slice(b"hello");
        assert_eq!(b.bytes(), b"hello");
        drop(b);
        assert_eq!(bufs.tail, 5);
        // SAFETY: as above.
        assert!(unsafe { bufs.take(4, 1) }.is_none(), "bid out of range");
        // SAFETY: as above.
        assert!(unsafe { bufs.take(0, 33) }.is_none(), "len over entry size");
        assert!(ProvidedBufs::new(32, 3, 0).is_err(), "depth not a power of two");
    }

    #[test]
    fn send_slot_is_reused_only_after_release() {
        let mut slots = SendSlots::new(2, 16).unwrap();
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let (a, _) = slots.acquire(to, b"one").unwrap();
        let (b, hdr) = slots.acquire(to, b"two").unwrap();
        assert_ne!(a, b);
        assert!(slots.acquire(to, b"three").is_none());
        // SAFETY: `hdr` points into slot `b`, which is still acquired.
        let hdr = unsafe { &*hdr };
        assert_eq!(hdr.msg_iovlen, 1);
        // SAFETY: no kernel read these slots.
        assert!(unsafe { slots.release(a) });
        // SAFETY: as above.
        assert!(!unsafe { slots.release(a) }, "double release refused");
        assert_eq!(slots.free(), 1);
        assert!(slots.acquire(to, b"four").is_some());
    }
}
