//! [`Name`]: a member's name, kept inline when short.
//!
//! Every member holds the name of every other one, so a cluster of N holds N²
//! names. A `String` puts each on the heap (a 32-byte allocation for a host
//! name) and sends every lookup through a second pointer; most member names
//! (host names, `node-1234`) fit in the 22 bytes a `Name` keeps inline, in
//! the same 24 bytes a `String` takes. Longer names (UUIDs) go on the heap.
#![forbid(unsafe_code)]

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest name kept inline.
const INLINE: usize = 22;

/// A member name (Go `Node.Name`): a string, stored inline up to 22 bytes.
/// Derefs to `str`; compares, orders and hashes as its `str`.
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Copied from a `str` at a char boundary (the whole string), so
            // valid UTF-8; the fallback is unreachable.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }

    /// The name's bytes, without re-checking UTF-8 (for hashing and
    /// comparing in hot paths).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// Whether the name is kept inline (no allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Name(Repr::Inline { len, bytes })
            }
            _ => Name(Repr::Heap(s.into())),
        }
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        if s.len() <= INLINE { Name::from(s.as_str()) } else { Name(Repr::Heap(s.into_boxed_str())) }
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::from(s.as_str())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.as_str().to_owned()
    }
}

impl Default for Name {
    fn default() -> Name {
        Name::from("")
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        // Byte order is `str` order.
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that `Borrow<str>` lookups work.
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::*;

    #[test]
    fn short_names_are_inline_long_ones_on_the_heap_and_both_read_back() {
        assert_eq!(std::mem::size_of::<Name>(), std::mem::size_of::<String>());
        for s in ["", "node-1", "a-22-byte-host-name-xx", "ünïcödé", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"] {
            let n = Name::from(s);
            assert_eq!(n.as_str(), s);
            assert_eq!(n.is_inline(), s.len() <= INLINE, "{s}");
            assert_eq!(Name::from(s.to_owned()), n);
            assert_eq!(String::from(n.clone()), s);
            assert_eq!(n, s);
            assert_eq!(format!("{n}/{n:?}"), format!("{s}/{s:?}"));
        }
    }

    #[test]
    fn compares_orders_and_hashes_as_its_str() {
        let names = ["b", "a", "node-10", "node-9", "a-name-longer-than-twenty-two-bytes"];
        let ours: BTreeSet<Name> = names.iter().map(|&s| Name::from(s)).collect();
        let strs: BTreeSet<&str> = names.iter().copied().collect();
        assert!(ours.iter().map(Name::as_str).eq(strs.iter().copied()));
        let set: HashSet<Name> = names.iter().map(|&s| Name::from(s)).collect();
        assert!(names.iter().all(|s| set.contains(*s)), "Borrow<str> lookups");
    }
}
