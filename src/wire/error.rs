//! The one error type of the wire layer: everything a packet or stream from the
//! network can get wrong, each case named so it can be counted.

/// Why bytes from the network were rejected. Every decoder in [`crate::wire`]
/// returns this instead of panicking; [`Error::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the structure needs.
    #[error("truncated {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// A message type byte memberlist does not define.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// A message type valid elsewhere but not in this position (e.g. a stream
    /// type inside a packet, or an ack where a push/pull was expected).
    #[error("unexpected message type {0} here")]
    UnexpectedMessageType(u8),
    /// A msgpack value of the wrong kind for a field.
    #[error("msgpack: {what}: expected {expected}")]
    MsgpackType {
        /// Message and field being decoded.
        what: &'static str,
        /// The kind the field needs.
        expected: &'static str,
    },
    /// A msgpack marker that is reserved or unsupported (e.g. 0xc1, ext types).
    #[error("msgpack: unsupported marker 0x{0:02x}")]
    MsgpackMarker(u8),
    /// An integer that does not fit the Go field type.
    #[error("field {field} out of range")]
    OutOfRange {
        /// Go field name.
        field: &'static str,
    },
    /// A Go string field that is not UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// Go field name.
        field: &'static str,
    },
    /// A length or count larger than the configured limit.
    #[error("{what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The claimed or produced size.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The CRC32 in a hasCrc header does not match the contents.
    #[error("bad checksum: header says {expected:08x}, contents give {computed:08x}")]
    BadCrc {
        /// CRC carried in the header.
        expected: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// Decryption was required but no key is configured.
    #[error("encrypted input but no keys configured")]
    NoKeys,
    /// Encryption is required (GossipVerifyIncoming) but the input is plaintext.
    #[error("encryption is configured but the input is not encrypted")]
    NotEncrypted,
    /// No installed key authenticates the input.
    #[error("no installed key could decrypt the message")]
    DecryptFailed,
    /// An encryption version byte other than 0 and 1.
    #[error("unsupported encryption version {0}")]
    UnknownEncryptionVersion(u8),
    /// Version 0 PKCS#7 padding byte out of range.
    #[error("bad PKCS#7 padding")]
    BadPadding,
    /// A compression algorithm this build does not know.
    #[error("unknown compression algorithm {0}")]
    UnknownCompression(u64),
    /// The compressed data is corrupt.
    #[error("corrupt {algo} data")]
    Decompress {
        /// Algorithm name.
        algo: &'static str,
    },
    /// Compression/compound layers nested deeper than allowed.
    #[error("layers nested too deep")]
    NestingTooDeep,
    /// A compound of more parts than its count byte can carry.
    #[error("compound of {0} parts (at most 255)")]
    TooManyParts(usize),
    /// A compound part longer than its u16 length field can carry.
    #[error("compound part of {0} bytes (at most 65535)")]
    PartTooLong(usize),
    /// A label header with length 0.
    #[error("label header present but empty")]
    EmptyLabel,
    /// A label longer than 255 bytes.
    #[error("label of {0} bytes (at most 255)")]
    LabelTooLong(usize),
    /// The input carries a different label than the one configured.
    #[error("label mismatch: expected {expected:?}, got {got:?}")]
    LabelMismatch {
        /// Label configured locally ("" for none).
        expected: String,
        /// Label found in the input ("" for none).
        got: String,
    },
}

impl Error {
    /// Short stable name for metrics (`ringswim.packets.rejected{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::UnknownMessageType(_) => "unknown_type",
            Self::UnexpectedMessageType(_) => "unexpected_type",
            Self::MsgpackType { .. } | Self::MsgpackMarker(_) => "msgpack",
            Self::OutOfRange { .. } => "out_of_range",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::TooLarge { .. } => "too_large",
            Self::BadCrc { .. } => "bad_crc",
            Self::NoKeys | Self::NotEncrypted => "encryption_required",
            Self::DecryptFailed | Self::UnknownEncryptionVersion(_) | Self::BadPadding => "decrypt",
            Self::UnknownCompression(_) | Self::Decompress { .. } => "decompress",
            Self::NestingTooDeep => "nesting",
            Self::TooManyParts(_) | Self::PartTooLong(_) => "compound",
            Self::EmptyLabel | Self::LabelTooLong(_) | Self::LabelMismatch { .. } => "label",
        }
    }
}
