//! The bytes: everything memberlist 0.2.2 puts on the wire, and the 0.5 label
//! header. No I/O and no protocol state live here.
#![forbid(unsafe_code)]

pub mod crypto;
mod error;
pub mod msgpack;

pub use crypto::{EncryptionVersion, KeyError, Keyring, SecretKey};
pub use error::Error;
