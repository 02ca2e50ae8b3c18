//! Datagrams off the shard core: the work on a packet that needs no member
//! table (quinn-proto's Endpoint/Connection split).
//!
//! - In: an [`Opener`] checks the label, decrypts, checks the CRC,
//!   decompresses and decodes a datagram on any thread, and hands each
//!   message to [`Core::handle_message`] on the core's.
//! - Out: the core leaves each packet as a plain body (one message or a
//!   compound) with its destination and the layers to apply
//!   ([`Core::poll_packet`], into a buffer the caller owns); a [`Sealer`]
//!   compresses, adds the CRC, encrypts and labels it on any thread, with
//!   its own nonce source.
//!
//! [`Core::handle_packet`] and [`Core::poll_transmit`] do both steps on the
//! core, for drivers that need no more (the simulator, tests); the core's
//! own RNG draws the nonces then, so a simulation replays bit for bit.
//!
//! Both kinds of value read the node's keyring through a
//! [`SharedKeyring`]: a key installed with [`SharedKeyring::add_key`] or
//! made primary with [`SharedKeyring::use_key`] is seen by every opener and
//! sealer at its next packet.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::Rng;

use super::Core;
use crate::config::Config;
use crate::swim::metrics::{Metrics, PACKETS_REJECTED};
use crate::wire::crypto::NONCE_SIZE;
use crate::wire::{
    Compression, DecodeOptions, EncodeOptions, Encryption, EncryptionVersion, Error as WireError, Keyring, Limits,
    Message, Packet, PacketDecoder, SharedKeyring, seal_packet,
};

/// The layers a packet gets on its way out (Go `rawSendMsgPacket`), in the
/// order they are applied: compression (kept only when smaller), CRC,
/// encryption. The label, the last layer, is the node's
/// ([`Config::label`]) and so the [`Sealer`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketLayers {
    /// Go `EnableCompression`: LZW.
    pub compression: Option<Compression>,
    /// A CRC header: the peer speaks protocol 5 or later.
    pub crc: bool,
    /// Encrypt with the keyring's primary key in this format (Go
    /// `GossipVerifyOutgoing` with keys installed).
    pub encryption: Option<EncryptionVersion>,
}

/// A packet as the core leaves it ([`Core::poll_packet`]): where it goes
/// and which layers to apply; its body (one encoded message, or a compound
/// of them) is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutgoingPacket {
    /// Destination.
    pub to: SocketAddr,
    /// What [`Sealer::seal`] applies.
    pub layers: PacketLayers,
}

/// Seals packet bodies into datagrams on any thread: one per thread that
/// sends. Holds the node's keyring handle, its label and the source of
/// AES-GCM nonces (an RNG: the OS's in an engine).
#[derive(Debug)]
pub struct Sealer<R> {
    keyring: SharedKeyring,
    label: String,
    rng: R,
}

impl<R: Rng> Sealer<R> {
    /// A sealer for the node configured by `config` (its label), reading
    /// `keyring` ([`Core::keyring`]), drawing nonces from `rng`.
    pub fn new(config: &Config, keyring: SharedKeyring, rng: R) -> Sealer<R> {
        Sealer { keyring, label: config.label.clone(), rng }
    }

    /// Appends the datagram for `body` (from [`Core::poll_packet`]) to
    /// `out`: the packet's layers, then the label. Allocates nothing once
    /// `out` has room for a datagram (`udp_buffer_size`).
    ///
    /// Errors: [`WireError::NoKeys`] when the packet is to be encrypted and
    /// the keyring is empty, [`WireError::LabelTooLong`] for a label over
    /// 255 bytes (which `Config::validate` refuses); `out` is left as it was.
    pub fn seal(&mut self, packet: &OutgoingPacket, body: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        seal_body(&self.keyring.load(), &self.label, packet.layers, body, &mut self.rng, out)
    }
}

/// The one packet sealing path, for [`Sealer::seal`] and
/// [`Core::poll_transmit`]: a nonce is drawn from `rng` only when the packet
/// is encrypted.
fn seal_body<R: Rng + ?Sized>(
    keyring: &Keyring,
    label: &str,
    layers: PacketLayers,
    body: &[u8],
    rng: &mut R,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let encryption = layers.encryption.map(|version| Encryption { keyring, version, nonce: draw_nonce(rng) });
    let opts =
        EncodeOptions { compression: layers.compression, force_compression: false, crc: layers.crc, encryption, label };
    seal_packet(body, &opts, out)
}

/// A fresh AES-GCM nonce.
pub(super) fn draw_nonce<R: Rng + ?Sized>(rng: &mut R) -> [u8; NONCE_SIZE] {
    let mut nonce = [0u8; NONCE_SIZE];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// How a node reads what it receives (Go `GossipVerifyIncoming`, `Label`,
/// `SkipInboundLabelCheck`): the one mapping of the [`Config`] to
/// [`DecodeOptions`], for packets and streams alike.
#[derive(Clone, Debug, Default)]
pub(super) struct InboundRules {
    label: String,
    verify_incoming: bool,
    skip_label_check: bool,
}

impl InboundRules {
    pub(super) fn new(config: &Config) -> InboundRules {
        InboundRules {
            label: config.label.clone(),
            verify_incoming: config.gossip_verify_incoming,
            skip_label_check: config.skip_inbound_label_check,
        }
    }

    /// The decode options with the keyring as it is now.
    pub(super) fn options<'k>(&'k self, keyring: &'k Keyring) -> DecodeOptions<'k> {
        DecodeOptions {
            keyring: Some(keyring),
            verify_incoming: self.verify_incoming,
            label: &self.label,
            skip_label_check: self.skip_label_check,
            limits: Limits::default(),
        }
    }

    /// Opens one datagram (in place): label, decryption, CRC, compound and
    /// compress layers. Its messages decode as the packet is read.
    pub(super) fn open<'a>(
        &self,
        decoder: &'a mut PacketDecoder,
        keyring: &Keyring,
        bytes: &'a mut [u8],
    ) -> Result<Packet<'a>, WireError> {
        decoder.decode(bytes, &self.options(keyring))
    }
}

/// Opens datagrams on any thread, before the core sees them: label check,
/// decryption, CRC, decompression and decoding (Go `ingestPacket` up to
/// `handleCommand`). One per receiving thread; its buffers are reused, so
/// opening a datagram allocates nothing once warm.
///
/// Every datagram or compound part it refuses is counted under
/// `ringswim.packets.rejected` by
/// [`wire::Error::reason`](crate::wire::Error::reason), into the
/// [`Metrics`] it is given: the core's own ([`Core::metrics`], a shared
/// handle), so that one set of counters covers the node.
#[derive(Debug)]
pub struct Opener {
    decoder: PacketDecoder,
    keyring: SharedKeyring,
    rules: InboundRules,
    metrics: Metrics,
}

impl Opener {
    /// An opener for the node configured by `config`, reading `keyring`
    /// ([`Core::keyring`]) and counting into `metrics` ([`Core::metrics`]).
    pub fn new(config: &Config, keyring: SharedKeyring, metrics: Metrics) -> Opener {
        Opener { decoder: PacketDecoder::new(), keyring, rules: InboundRules::new(config), metrics }
    }

    /// Opens `bytes` (decrypting in place) and hands each good message to
    /// `deliver`, in order (for [`Core::handle_message`]). A bad part of a
    /// compound spoils only itself, as in Go. Returns how many messages were
    /// delivered, or why the whole datagram was refused; either way every
    /// refusal is counted in [`Opener::metrics`].
    pub fn open<'a>(
        &'a mut self,
        bytes: &'a mut [u8],
        mut deliver: impl FnMut(Message<'a>),
    ) -> Result<usize, WireError> {
        self.open_parts(bytes, |msg, _| deliver(msg))
    }

    /// [`Opener::open`], handing each good message with the opened bytes
    /// it was decoded from (type byte and body; see
    /// [`Packet::parts`](crate::wire::Packet::parts)): for a driver that
    /// copies them to another thread, where [`Message::decode`] reads them
    /// again for [`Core::handle_message`].
    pub fn open_parts<'a>(
        &'a mut self,
        bytes: &'a mut [u8],
        mut deliver: impl FnMut(Message<'a>, &'a [u8]),
    ) -> Result<usize, WireError> {
        let packet = match self.rules.open(&mut self.decoder, &self.keyring.load(), bytes) {
            Ok(packet) => packet,
            Err(err) => {
                self.metrics.count(PACKETS_REJECTED, err.reason());
                return Err(err);
            }
        };
        let mut delivered = 0;
        for part in packet.parts() {
            match part {
                Ok((msg, raw)) => {
                    deliver(msg, raw);
                    delivered += 1;
                }
                Err(err) => self.metrics.count(PACKETS_REJECTED, err.reason()),
            }
        }
        Ok(delivered)
    }

    /// The counters it counts into (datagrams and compound parts refused,
    /// by reason).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Packets waiting for [`Core::poll_packet`]: their bodies back to back in
/// one buffer, reused from packet to packet, so queueing one allocates
/// nothing once warm.
#[derive(Debug, Default)]
pub(super) struct PacketQueue {
    bodies: Vec<u8>,
    /// Start of the oldest body not yet polled.
    head: usize,
    packets: VecDeque<(OutgoingPacket, usize)>,
}

impl PacketQueue {
    /// Queues a packet whose body `write` appends; a body it fails to write
    /// is not queued.
    pub(super) fn push(
        &mut self,
        packet: OutgoingPacket,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        if self.packets.is_empty() {
            self.bodies.clear();
            self.head = 0;
        } else if self.head > self.bodies.len() / 2 {
            // A driver that polls one packet per input: drop what it took.
            self.bodies.drain(..self.head);
            self.head = 0;
        }
        let at = self.bodies.len();
        match write(&mut self.bodies) {
            Ok(()) => {
                self.packets.push_back((packet, self.bodies.len() - at));
                Ok(())
            }
            Err(err) => {
                self.bodies.truncate(at);
                Err(err)
            }
        }
    }

    /// The oldest packet and its body.
    pub(super) fn pop(&mut self) -> Option<(OutgoingPacket, &[u8])> {
        let (packet, len) = self.packets.pop_front()?;
        let body = &self.bodies[self.head..self.head + len];
        self.head += len;
        Some((packet, body))
    }

    /// Packets queued.
    pub(super) fn len(&self) -> usize {
        self.packets.len()
    }
}

impl<R> Core<R> {
    /// The keyring this node encrypts and decrypts with (Go
    /// `Config.Keyring`), shared: clone it for [`Opener`]s and [`Sealer`]s
    /// on other threads, and change it with [`SharedKeyring::add_key`],
    /// [`SharedKeyring::use_key`] and [`SharedKeyring::remove_key`] while
    /// the node runs (Go's keyring operations, with Go's rules). Installing
    /// the first key into an empty keyring turns encryption on, as in Go.
    pub fn keyring(&self) -> &SharedKeyring {
        &self.net.keyring
    }

    /// The next packet to send, oldest first: its body (one encoded message
    /// or a compound) replaces the contents of `body`, and the descriptor
    /// says where it goes and what a [`Sealer`] must apply. Nothing is
    /// allocated once `body` has room for one.
    pub fn poll_packet(&mut self, body: &mut Vec<u8>) -> Option<OutgoingPacket> {
        let (packet, bytes) = self.net.outbox.pop()?;
        body.clear();
        body.extend_from_slice(bytes);
        Some(packet)
    }

    /// Packets queued for [`Core::poll_packet`] / [`Core::poll_transmit`].
    pub fn queued_packets(&self) -> usize {
        self.net.outbox.len()
    }

    /// The layers of a packet sent now to a peer that does (`crc`) or does
    /// not speak protocol 5.
    pub(super) fn packet_layers(&self, crc: bool) -> PacketLayers {
        PacketLayers {
            compression: self.config.enable_compression.then_some(Compression::Lzw),
            crc,
            encryption: self.outgoing_encryption(),
        }
    }

    /// The encryption of what we send now, if any (Go `EncryptionEnabled()
    /// && GossipVerifyOutgoing`; the version by `encryptionVersion()`).
    pub(super) fn outgoing_encryption(&self) -> Option<EncryptionVersion> {
        (self.config.gossip_verify_outgoing && self.net.keyring.is_enabled())
            .then(|| EncryptionVersion::for_protocol(self.config.protocol_version))
    }
}

impl<R: Rng> Core<R> {
    /// The next datagram to send, complete (label, encryption, CRC,
    /// compression applied), oldest first: [`Core::poll_packet`] and
    /// [`Sealer::seal`] in one step, with nonces from the core's RNG (so a
    /// seeded simulation replays bit for bit). Allocates the returned
    /// datagram; a driver that cares seals into its own buffers.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        loop {
            let (packet, body) = self.net.outbox.pop()?;
            // Room for the worst case: LZW output 1.5 times the input (12-bit
            // codes for 8-bit literals) before it is dropped for being larger,
            // plus the compress, CRC, encryption and label headers.
            let mut bytes = Vec::with_capacity(body.len() + body.len() / 2 + 96 + self.config.label.len());
            let keyring = self.net.keyring.load();
            // Errors are ours (no keys while encryption was asked, a label
            // that `Config::validate` refuses): the packet is dropped, as Go
            // drops a packet it cannot encrypt.
            if seal_body(&keyring, &self.config.label, packet.layers, body, &mut self.rng, &mut bytes).is_ok() {
                return Some(Transmit { to: packet.to, bytes });
            }
        }
    }
}

/// One complete datagram to send (quinn-proto's `Transmit` with the bytes
/// attached): what [`Core::poll_transmit`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The datagram: label, encryption, CRC, compression and compound layers
    /// already applied.
    pub bytes: Vec<u8>,
}
