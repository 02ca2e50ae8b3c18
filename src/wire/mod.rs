//! The bytes: everything memberlist 0.2.2 puts on the wire, and the 0.5 label
//! header. No I/O and no protocol state live here.
//!
//! - [`message`]: the message structs, decoded by borrowing from the input;
//! - [`msgpack`]: Go's msgpack dialect;
//! - [`frame`]: compound, CRC and label framing;
//! - [`compress`]: LZW (Go's `compress/lzw`, our own codec) and LZ4 (ringswim peers);
//! - [`crypto`]: AES-GCM and the keyring;
//! - [`packet`] and [`stream`]: the layers put together for UDP and TCP.
#![forbid(unsafe_code)]

pub mod compress;
pub mod crypto;
mod error;
pub mod frame;
mod lzw;
pub mod message;
pub mod msgpack;
pub mod packet;
pub mod stream;

pub use compress::Compression;
pub use crypto::{Encryption, EncryptionVersion, KeyError, Keyring, KeyringGuard, SecretKey, SharedKeyring};
pub use error::Error;
pub use message::{
    Accusation, Ack, Alive, ErrResp, IndirectPing, Message, MessageType, Nack, Ping, PushNodeState, PushPull,
};
pub use packet::{DecodeOptions, EncodeOptions, Layers, Packet, PacketDecoder, encode_packet, seal_packet};
pub use stream::{Framing, StreamDecoder, StreamFramer, StreamMessage, encode_stream};

/// Go's `maxPushStateBytes`: the largest stream message accepted.
pub const MAX_PUSH_STATE_BYTES: usize = 20 * 1024 * 1024;

/// Size limits applied while decoding, so that no input makes the decoder
/// allocate more than a small multiple of its own size or of these bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted (a UDP datagram cannot exceed 65,535 bytes).
    pub max_packet: usize,
    /// Total bytes all compressed layers of one packet may inflate to.
    pub max_packet_inflated: usize,
    /// Largest stream message, encrypted or inflated (Go's `maxPushStateBytes`).
    pub max_stream: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_packet: 65_536, max_packet_inflated: 65_536, max_stream: MAX_PUSH_STATE_BYTES }
    }
}
