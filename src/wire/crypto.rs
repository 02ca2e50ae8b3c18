//! AES-GCM message encryption and the keyring, as Go memberlist's `security.go`
//! and `keyring.go` define them.
//!
//! Encrypted payload layout (both packets and streams):
//! `[version: u8][nonce: 12][ciphertext][tag: 16]`.
//! - version 0: the plaintext is PKCS#7-padded to the AES block size first
//!   (memberlist protocol version 1 peers);
//! - version 1: no padding (everything newer).
//!
//! Packets are encrypted whole (additional data: the label, if any); streams
//! carry `[encryptMsg][u32 length]` in front, and those 5 bytes (then the label)
//! are the additional data.
//!
//! Each key's AES key schedule is expanded once when the key is installed, not
//! per message as Go does.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AesGcm, Nonce, Tag};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Guard};

use super::Error;

/// Bytes taken by the version byte.
pub const VERSION_SIZE: usize = 1;
/// AES-GCM nonce size used by memberlist.
pub const NONCE_SIZE: usize = 12;
/// AES-GCM tag size.
pub const TAG_SIZE: usize = 16;
/// AES block size (PKCS#7 padding unit of version 0).
pub const BLOCK_SIZE: usize = 16;

type Aes128Gcm = AesGcm<Aes128, aes_gcm::aead::consts::U12>;
type Aes192Gcm = AesGcm<Aes192, aes_gcm::aead::consts::U12>;
type Aes256Gcm = AesGcm<Aes256, aes_gcm::aead::consts::U12>;

/// Encryption format version (the first byte of an encrypted payload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EncryptionVersion {
    /// PKCS#7-padded plaintext; spoken with memberlist protocol version 1.
    V0 = 0,
    /// Unpadded; spoken with protocol versions 2 and up (the default).
    #[default]
    V1 = 1,
}

impl EncryptionVersion {
    /// Go's `encryptionVersion()`: protocol 1 uses version 0, everything else 1.
    pub fn for_protocol(protocol_version: u8) -> Self {
        if protocol_version == 1 { Self::V0 } else { Self::V1 }
    }

    /// Parses the version byte; `None` for versions Go does not know either.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::V0),
            1 => Some(Self::V1),
            _ => None,
        }
    }

    /// Worst-case bytes added by encryption (Go's `encryptOverhead`).
    pub fn overhead(self) -> usize {
        match self {
            Self::V0 => VERSION_SIZE + NONCE_SIZE + BLOCK_SIZE + TAG_SIZE,
            Self::V1 => VERSION_SIZE + NONCE_SIZE + TAG_SIZE,
        }
    }

    /// Exact encrypted size of a plaintext of `len` bytes (Go's `encryptedLength`).
    pub fn encrypted_len(self, len: usize) -> usize {
        match self {
            Self::V0 => VERSION_SIZE + NONCE_SIZE + len + (BLOCK_SIZE - len % BLOCK_SIZE) + TAG_SIZE,
            Self::V1 => VERSION_SIZE + NONCE_SIZE + len + TAG_SIZE,
        }
    }
}

/// One AES-GCM key with its expanded key schedule.
#[derive(Clone)]
pub struct SecretKey {
    raw: Vec<u8>,
    cipher: Cipher,
}

#[derive(Clone)]
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// Why a key or keyring operation was refused (Go's keyring rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Go: "key size must be 16, 24 or 32 bytes".
    #[error("key size must be 16, 24 or 32 bytes, got {0}")]
    BadLength(usize),
    /// Go: "Empty primary key not allowed".
    #[error("empty primary key not allowed")]
    EmptyPrimary,
    /// Go: "Requested key is not in the keyring".
    #[error("requested key is not in the keyring")]
    NotInstalled,
    /// Go: "Removing the primary key is not allowed".
    #[error("removing the primary key is not allowed")]
    RemovePrimary,
}

impl SecretKey {
    /// Validates the length (16, 24 or 32 bytes: AES-128/192/256) and expands the key.
    pub fn new(raw: &[u8]) -> Result<Self, KeyError> {
        let cipher = match raw.len() {
            16 => Aes128Gcm::new_from_slice(raw).map(|c| Cipher::Aes128(Box::new(c))),
            24 => Aes192Gcm::new_from_slice(raw).map(|c| Cipher::Aes192(Box::new(c))),
            32 => Aes256Gcm::new_from_slice(raw).map(|c| Cipher::Aes256(Box::new(c))),
            n => return Err(KeyError::BadLength(n)),
        }
        .map_err(|_| KeyError::BadLength(raw.len()))?;
        Ok(Self { raw: raw.to_vec(), cipher })
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn seal(&self, nonce: &[u8; NONCE_SIZE], ad: &[u8], buf: &mut [u8]) -> [u8; TAG_SIZE] {
        let nonce = Nonce::from(*nonce);
        // Encryption only fails for inputs beyond GCM's 64 GiB limit, far above
        // any stream limit; the fallback keeps this path panic-free regardless.
        let tag = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt_inout_detached(&nonce, ad, buf.into()),
            Cipher::Aes192(c) => c.encrypt_inout_detached(&nonce, ad, buf.into()),
            Cipher::Aes256(c) => c.encrypt_inout_detached(&nonce, ad, buf.into()),
        };
        tag.map(Into::into).unwrap_or([0; TAG_SIZE])
    }

    fn open(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let (Ok(nonce), Ok(tag)) = (<[u8; NONCE_SIZE]>::try_from(nonce), <[u8; TAG_SIZE]>::try_from(tag)) else {
            return false;
        };
        let nonce = Nonce::from(nonce);
        let tag = Tag::from(tag);
        match &self.cipher {
            Cipher::Aes128(c) => c.decrypt_inout_detached(&nonce, ad, buf.into(), &tag).is_ok(),
            Cipher::Aes192(c) => c.decrypt_inout_detached(&nonce, ad, buf.into(), &tag).is_ok(),
            Cipher::Aes256(c) => c.decrypt_inout_detached(&nonce, ad, buf.into(), &tag).is_ok(),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SecretKey(AES-{})", self.raw.len() * 8)
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for SecretKey {}

/// The installed keys. The first is the primary: it encrypts everything sent;
/// every key is tried to decrypt, primary first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<SecretKey>,
}

impl Keyring {
    /// Go's `NewKeyring(keys, primaryKey)`: an empty keyring when both are empty;
    /// otherwise the primary must be given and every key must be valid.
    pub fn new(keys: &[&[u8]], primary: Option<&[u8]>) -> Result<Self, KeyError> {
        let mut ring = Self::default();
        if keys.is_empty() && primary.is_none_or(|p| p.is_empty()) {
            return Ok(ring);
        }
        let primary = primary.filter(|p| !p.is_empty()).ok_or(KeyError::EmptyPrimary)?;
        ring.add_key(primary)?;
        for k in keys {
            ring.add_key(k)?;
        }
        Ok(ring)
    }

    /// Installs a key; the first key installed becomes the primary. Adding an
    /// installed key again is a no-op (Go's `AddKey`).
    pub fn add_key(&mut self, raw: &[u8]) -> Result<(), KeyError> {
        let key = SecretKey::new(raw)?;
        if !self.keys.iter().any(|k| k.raw == raw) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes an installed key the primary (Go's `UseKey`).
    pub fn use_key(&mut self, raw: &[u8]) -> Result<(), KeyError> {
        let idx = self.keys.iter().position(|k| k.raw == raw).ok_or(KeyError::NotInstalled)?;
        let key = self.keys.remove(idx);
        self.keys.insert(0, key);
        Ok(())
    }

    /// Removes a non-primary key; removing an absent key is a no-op (Go's `RemoveKey`).
    pub fn remove_key(&mut self, raw: &[u8]) -> Result<(), KeyError> {
        if self.keys.first().is_some_and(|k| k.raw == raw) {
            return Err(KeyError::RemovePrimary);
        }
        self.keys.retain(|k| k.raw != raw);
        Ok(())
    }

    /// All keys, primary first.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// The key that encrypts outgoing messages.
    pub fn primary(&self) -> Option<&SecretKey> {
        self.keys.first()
    }

    /// Whether encryption is on (Go's `EncryptionEnabled`).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Appends `[version][nonce][ciphertext][tag]` of `plain` to `out`, using the
    /// primary key and the caller's `nonce` (Go's `encryptPayload`, which
    /// draws the nonce itself; here the caller does, so that the wire layer
    /// has no randomness of its own). A nonce must never repeat under one key:
    /// draw 12 random bytes per message. Fails with [`Error::NoKeys`] on an
    /// empty keyring.
    pub fn encrypt_into(
        &self,
        version: EncryptionVersion,
        nonce: &[u8; NONCE_SIZE],
        plain: &[u8],
        ad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let encryption = Encryption { keyring: self, version, nonce: *nonce };
        let body_start = encryption.begin(out)?;
        out.extend_from_slice(plain);
        encryption.finish(ad, out, body_start);
        Ok(())
    }

    /// Decrypts `[version][nonce][ciphertext][tag]` in place, trying every key.
    /// Returns the plaintext range inside `buf` and the version found.
    pub fn decrypt_in_place(
        &self,
        buf: &mut [u8],
        ad: &[u8],
    ) -> Result<(std::ops::Range<usize>, EncryptionVersion), Error> {
        if self.keys.is_empty() {
            return Err(Error::NoKeys);
        }
        let first = *buf.first().ok_or(Error::Truncated { what: "encrypted payload" })?;
        let version = EncryptionVersion::from_byte(first).ok_or(Error::UnknownEncryptionVersion(first))?;
        if buf.len() < version.encrypted_len(0) {
            return Err(Error::Truncated { what: "encrypted payload" });
        }
        let body_end = buf.len() - TAG_SIZE;
        let (head, tag) = buf.split_at_mut(body_end);
        let (nonce, body) = head[VERSION_SIZE..].split_at_mut(NONCE_SIZE);
        // Decrypting in place destroys the ciphertext on failure, so every key
        // but the last works on a copy.
        let mut opened = false;
        if self.keys.len() > 1 {
            let pristine = body.to_vec();
            for key in &self.keys {
                if key.open(nonce, ad, body, tag) {
                    opened = true;
                    break;
                }
                body.copy_from_slice(&pristine);
            }
        } else {
            opened = self.keys[0].open(nonce, ad, body, tag);
        }
        if !opened {
            return Err(Error::DecryptFailed);
        }
        let start = VERSION_SIZE + NONCE_SIZE;
        let mut end = body_end;
        if version == EncryptionVersion::V0 {
            // Go trusts the pad byte blindly; a bogus one would make it slice out
            // of range, so it is checked here.
            let pad = usize::from(buf[end - 1]);
            if pad == 0 || pad > BLOCK_SIZE || pad > end - start {
                return Err(Error::BadPadding);
            }
            end -= pad;
        }
        Ok((start..end, version))
    }
}

/// The keyring as the threads of one node share it (Go's `*Keyring`, which
/// every memberlist goroutine reads and `Keyring.AddKey` / `UseKey` /
/// `RemoveKey` change while it runs): a cheap handle (`Clone` shares, it does
/// not copy) that any thread can read while another changes it.
///
/// Reads take a snapshot ([`SharedKeyring::load`]) without a lock, so the
/// threads that seal and open packets never wait for one another or for a
/// key operation; a change publishes a new snapshot (copy on write, under a
/// mutex that orders concurrent changes), which the next `load` sees. Key
/// changes are rare and small (a few keys); packets are many. This is
/// `arc-swap`'s use case, where an `RwLock` would make every reader write to
/// one shared counter.
#[derive(Clone, Default)]
pub struct SharedKeyring {
    inner: Arc<SharedInner>,
}

#[derive(Default)]
struct SharedInner {
    current: ArcSwap<Keyring>,
    /// Held while a change is made, so that two changes do not race.
    writer: Mutex<()>,
}

/// A snapshot of a [`SharedKeyring`]: dereferences to the [`Keyring`] as it
/// was when loaded. Hold it for one packet or one batch, not for long.
pub struct KeyringGuard(Guard<Arc<Keyring>>);

impl std::ops::Deref for KeyringGuard {
    type Target = Keyring;
    fn deref(&self) -> &Keyring {
        &self.0
    }
}

impl SharedKeyring {
    /// Shares `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self { inner: Arc::new(SharedInner { current: ArcSwap::from_pointee(keyring), writer: Mutex::new(()) }) }
    }

    /// The keyring now (lock-free).
    pub fn load(&self) -> KeyringGuard {
        KeyringGuard(self.inner.current.load())
    }

    /// Go `Keyring.AddKey`: installs a key for decryption; the first key of
    /// an empty keyring becomes the primary (and turns encryption on).
    /// Installing an installed key does nothing. [`KeyError::BadLength`]
    /// unless 16, 24 or 32 bytes.
    pub fn add_key(&self, raw: &[u8]) -> Result<(), KeyError> {
        self.change(|ring| ring.add_key(raw))
    }

    /// Go `Keyring.UseKey`: makes an installed key the primary, which
    /// encrypts everything sent from now on. [`KeyError::NotInstalled`]
    /// otherwise. Peers must have the key installed first.
    pub fn use_key(&self, raw: &[u8]) -> Result<(), KeyError> {
        self.change(|ring| ring.use_key(raw))
    }

    /// Go `Keyring.RemoveKey`: uninstalls a key; removing an absent key does
    /// nothing. [`KeyError::RemovePrimary`] for the primary key.
    pub fn remove_key(&self, raw: &[u8]) -> Result<(), KeyError> {
        self.change(|ring| ring.remove_key(raw))
    }

    /// Whether encryption is on (Go `EncryptionEnabled`).
    pub fn is_enabled(&self) -> bool {
        self.load().is_enabled()
    }

    fn change(&self, op: impl FnOnce(&mut Keyring) -> Result<(), KeyError>) -> Result<(), KeyError> {
        let _writer = self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Keyring::clone(&self.inner.current.load());
        op(&mut next)?;
        self.inner.current.store(Arc::new(next));
        Ok(())
    }
}

impl From<Keyring> for SharedKeyring {
    fn from(keyring: Keyring) -> Self {
        Self::new(keyring)
    }
}

impl fmt::Debug for SharedKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keyring's Debug names key sizes only.
        f.debug_tuple("SharedKeyring").field(&*self.load()).finish()
    }
}

/// How to encrypt one outgoing packet or stream message: the keyring's
/// primary key, the format version, and a nonce the caller drew (fresh for
/// every message: the wire layer draws no randomness of its own).
#[derive(Clone, Copy, Debug)]
pub struct Encryption<'k> {
    /// Its primary key encrypts.
    pub keyring: &'k Keyring,
    /// Format version (0: padded, for protocol 1 peers; 1 otherwise).
    pub version: EncryptionVersion,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_SIZE],
}

impl Encryption<'_> {
    /// Appends `[version][nonce]`; the plaintext goes after it, then
    /// [`Encryption::finish`] encrypts it in place. Returns where the
    /// plaintext starts. [`Error::NoKeys`] (nothing appended) on an empty
    /// keyring.
    pub(super) fn begin(&self, out: &mut Vec<u8>) -> Result<usize, Error> {
        if self.keyring.primary().is_none() {
            return Err(Error::NoKeys);
        }
        out.push(self.version as u8);
        out.extend_from_slice(&self.nonce);
        Ok(out.len())
    }

    /// Pads (version 0), encrypts `out[body_start..]` in place and appends
    /// the tag. `body_start` comes from [`Encryption::begin`].
    pub(super) fn finish(&self, ad: &[u8], out: &mut Vec<u8>, body_start: usize) {
        // `begin` checked that there is a primary key.
        let Some(key) = self.keyring.primary() else { return };
        if self.version == EncryptionVersion::V0 {
            let pad = BLOCK_SIZE - (out.len() - body_start) % BLOCK_SIZE;
            out.extend(std::iter::repeat_n(pad as u8, pad));
        }
        out.reserve(TAG_SIZE);
        let tag = key.seal(&self.nonce, ad, &mut out[body_start..]);
        out.extend_from_slice(&tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K16: [u8; 16] = [1; 16];
    const K24: [u8; 24] = [2; 24];
    const K32: [u8; 32] = [3; 32];

    #[test]
    fn keyring_follows_go_rules() {
        assert_eq!(Keyring::new(&[], None).unwrap().keys().len(), 0);
        assert_eq!(Keyring::new(&[&K16], None), Err(KeyError::EmptyPrimary));
        assert_eq!(Keyring::new(&[], Some(&[0; 15])), Err(KeyError::BadLength(15)));
        let mut ring = Keyring::new(&[&K16, &K24], Some(&K32)).unwrap();
        assert_eq!(ring.primary().unwrap().as_bytes(), &K32);
        assert_eq!(ring.keys().len(), 3);
        ring.add_key(&K16).unwrap();
        assert_eq!(ring.keys().len(), 3, "adding an installed key is a no-op");
        assert_eq!(ring.remove_key(&K32), Err(KeyError::RemovePrimary));
        assert_eq!(ring.use_key(&[9; 16]), Err(KeyError::NotInstalled));
        ring.use_key(&K24).unwrap();
        assert_eq!(ring.primary().unwrap().as_bytes(), &K24);
        ring.remove_key(&K32).unwrap();
        ring.remove_key(&[7; 16]).unwrap();
        let left: Vec<&[u8]> = ring.keys().iter().map(SecretKey::as_bytes).collect();
        assert_eq!(left, vec![&K24[..], &K16[..]]);
    }

    #[test]
    fn every_key_size_and_version_round_trips() {
        for raw in [&K16[..], &K24[..], &K32[..]] {
            for version in [EncryptionVersion::V0, EncryptionVersion::V1] {
                for len in [0usize, 1, 15, 16, 17, 1400] {
                    let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    let ring = Keyring::new(&[], Some(raw)).unwrap();
                    let mut out = Vec::new();
                    ring.encrypt_into(version, &[5; NONCE_SIZE], &plain, b"ad", &mut out).unwrap();
                    assert_eq!(out.len(), version.encrypted_len(len));
                    let (range, got) = ring.decrypt_in_place(&mut out, b"ad").unwrap();
                    assert_eq!(got, version);
                    assert_eq!(&out[range], &plain[..]);
                }
            }
        }
    }

    #[test]
    fn secondary_key_decrypts_and_wrong_ad_or_key_fails() {
        let sender = Keyring::new(&[], Some(&K16)).unwrap();
        let receiver = Keyring::new(&[&K16], Some(&K32)).unwrap();
        let mut out = Vec::new();
        sender.encrypt_into(EncryptionVersion::V1, &[6; NONCE_SIZE], b"hello", b"", &mut out).unwrap();
        let mut copy = out.clone();
        let (range, _) = receiver.decrypt_in_place(&mut copy, b"").unwrap();
        assert_eq!(&copy[range], b"hello");
        let mut copy = out.clone();
        assert_eq!(receiver.decrypt_in_place(&mut copy, b"label"), Err(Error::DecryptFailed));
        let stranger = Keyring::new(&[], Some(&K24)).unwrap();
        assert_eq!(stranger.decrypt_in_place(&mut out, b""), Err(Error::DecryptFailed));
    }

    #[test]
    fn short_or_unknown_payloads_are_typed_errors() {
        let ring = Keyring::new(&[], Some(&K16)).unwrap();
        assert_eq!(ring.decrypt_in_place(&mut [], b""), Err(Error::Truncated { what: "encrypted payload" }));
        assert_eq!(ring.decrypt_in_place(&mut [1; 28], b""), Err(Error::Truncated { what: "encrypted payload" }));
        assert_eq!(ring.decrypt_in_place(&mut [2; 40], b""), Err(Error::UnknownEncryptionVersion(2)));
        assert_eq!(ring.decrypt_in_place(&mut [1; 40], b""), Err(Error::DecryptFailed));
    }
}
