//! The small fixed-layout framings: compound packets, the CRC32 header and the
//! memberlist 0.5 label header.
//!
//! ```text
//! compound: [7][n: u8][len_1: u16 BE]..[len_n: u16 BE][part_1]..[part_n]
//! crc:      [12][crc32-ieee of the rest: u32 BE][rest]
//! label:    [244][len: u8, 1..=255][label bytes][rest]
//! ```

use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::Error;
use super::message::MessageType;

/// Go 0.2.2 computes the compound header size as `numParts*2` in `uint8`, so it
/// mis-decodes 128 parts or more (docs/go-behaviour.md §2): never send more to a Go peer.
pub const MAX_COMPOUND_PARTS_FOR_GO: usize = 127;
/// The count byte's own limit; ringswim decodes up to this many parts.
pub const MAX_COMPOUND_PARTS: usize = 255;
/// Go's assumed overhead of the compound header (`compoundHeaderOverhead`).
pub const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// Go's assumed overhead per compound part (`compoundOverhead`).
pub const COMPOUND_PART_OVERHEAD: usize = 2;
/// Bytes of the CRC header.
pub const CRC_HEADER_LEN: usize = 5;
/// Longest label (its length travels in one byte).
pub const LABEL_MAX_LEN: usize = 255;

/// `[hasCrcMsg][crc]` as laid out on the wire.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CrcHeader {
    kind: u8,
    crc: U32,
}

/// Appends a compound message of `parts` (each a complete encoded message).
/// Callers sending to Go peers keep to [`MAX_COMPOUND_PARTS_FOR_GO`] parts.
pub fn write_compound<P: AsRef<[u8]>>(out: &mut Vec<u8>, parts: &[P]) -> Result<(), Error> {
    write_compound_parts(out, parts.iter().map(AsRef::as_ref))
}

/// [`write_compound`] for parts from an iterator (walked twice: lengths,
/// then bytes), so that parts kept in different places need not be
/// gathered first. On error nothing is appended.
pub fn write_compound_parts<'p, I>(out: &mut Vec<u8>, parts: I) -> Result<(), Error>
where
    I: Iterator<Item = &'p [u8]> + Clone,
{
    let count = parts.clone().count();
    let n = u8::try_from(count).map_err(|_| Error::TooManyParts(count))?;
    if let Some(long) = parts.clone().find(|p| u16::try_from(p.len()).is_err()) {
        return Err(Error::PartTooLong(long.len()));
    }
    out.reserve(2 + 2 * count + parts.clone().map(<[u8]>::len).sum::<usize>());
    out.extend_from_slice(&[MessageType::Compound as u8, n]);
    for p in parts.clone() {
        // Checked above.
        out.extend_from_slice(U16::new(p.len() as u16).as_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(())
}

/// The parts of a compound body (after the type byte), with Go's truncation
/// semantics: parts are returned in order until one claims more bytes than are
/// left; that part and all after it are counted in `truncated`.
#[derive(Clone, Debug)]
pub struct CompoundParts<'a> {
    lengths: &'a [U16],
    next: usize,
    rest: &'a [u8],
}

impl<'a> CompoundParts<'a> {
    /// Parses the count byte and length table (checked against the bytes present).
    pub fn parse(body: &'a [u8]) -> Result<Self, Error> {
        let (&n, rest) = body.split_first().ok_or(Error::Truncated { what: "compound length byte" })?;
        let (lengths, rest) = <[U16]>::ref_from_prefix_with_elems(rest, usize::from(n))
            .map_err(|_| Error::Truncated { what: "compound length table" })?;
        Ok(Self { lengths, next: 0, rest })
    }

    /// Number of parts the header announces.
    pub fn announced(&self) -> usize {
        self.lengths.len()
    }

    /// Parts not returned because the packet ended first (Go's `trunc`);
    /// meaningful once the iterator is exhausted.
    pub fn truncated(&self) -> usize {
        self.lengths.len() - self.next
    }
}

impl<'a> Iterator for CompoundParts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.lengths.get(self.next)?.get());
        if len > self.rest.len() {
            return None;
        }
        let (part, rest) = self.rest.split_at(len);
        self.rest = rest;
        self.next += 1;
        Some(part)
    }
}

/// Prefixes `body` with a CRC header, appending to `out`.
pub fn write_crc(out: &mut Vec<u8>, body: &[u8]) {
    let at = out.len();
    reserve_crc(out);
    out.extend_from_slice(body);
    fill_crc(&mut out[at..]);
}

/// Appends room for a CRC header, which [`fill_crc`] fills once the
/// protected bytes follow it.
pub fn reserve_crc(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; CRC_HEADER_LEN]);
}

/// Writes the CRC header at the start of `buf` (room made by
/// [`reserve_crc`]) over the bytes after it.
pub fn fill_crc(buf: &mut [u8]) {
    let Ok((header, rest)) = CrcHeader::mut_from_prefix(buf) else { return };
    *header = CrcHeader { kind: MessageType::HasCrc as u8, crc: U32::new(crc32fast::hash(rest)) };
}

/// If `buf` starts with a CRC header, checks it and returns the protected bytes
/// (`Some`); otherwise `None`. Go only treats packets of 5+ bytes this way.
pub fn strip_crc(buf: &[u8]) -> Result<Option<&[u8]>, Error> {
    let Ok((header, rest)) = CrcHeader::ref_from_prefix(buf) else {
        return Ok(None);
    };
    if header.kind != MessageType::HasCrc as u8 {
        return Ok(None);
    }
    let computed = crc32fast::hash(rest);
    let expected = header.crc.get();
    if computed != expected {
        return Err(Error::BadCrc { expected, computed });
    }
    Ok(Some(rest))
}

/// Appends a label header (`label` must be 1..=255 bytes; empty writes nothing).
pub fn write_label(out: &mut Vec<u8>, label: &str) -> Result<(), Error> {
    if label.is_empty() {
        return Ok(());
    }
    let len = u8::try_from(label.len()).map_err(|_| Error::LabelTooLong(label.len()))?;
    out.extend_from_slice(&[MessageType::HasLabel as u8, len]);
    out.extend_from_slice(label.as_bytes());
    Ok(())
}

/// Splits off a label header if present: `(label, rest)`; `label` is empty when
/// there is none. An empty or truncated label header is an error, as in Go 0.5.
pub fn strip_label(buf: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    match buf {
        [kind, rest @ ..] if *kind == MessageType::HasLabel as u8 => {
            let (&len, rest) = rest.split_first().ok_or(Error::Truncated { what: "label header" })?;
            if len == 0 {
                return Err(Error::EmptyLabel);
            }
            if usize::from(len) > rest.len() {
                return Err(Error::Truncated { what: "label" });
            }
            Ok(rest.split_at(usize::from(len)))
        }
        _ => Ok((&[], buf)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_round_trip_and_go_truncation() {
        let parts: Vec<Vec<u8>> = vec![vec![8, 1], vec![8, 2, 2], vec![8]];
        let mut out = Vec::new();
        write_compound(&mut out, &parts).unwrap();
        assert_eq!(&out[..8], &[7, 3, 0, 2, 0, 3, 0, 1]);
        let got: Vec<&[u8]> = CompoundParts::parse(&out[1..]).unwrap().collect();
        assert_eq!(got, parts.iter().map(Vec::as_slice).collect::<Vec<_>>());

        // Cut the last two bytes: the third part and the second are lost... in Go
        // order: part 1 complete, part 2 claims 3 bytes but 2 remain.
        let cut = &out[1..out.len() - 2];
        let mut it = CompoundParts::parse(cut).unwrap();
        assert_eq!(it.next(), Some(&[8u8, 1][..]));
        assert_eq!(it.next(), None);
        assert_eq!(it.truncated(), 2);
    }

    #[test]
    fn compound_of_255_parts_decodes_and_256_is_refused() {
        let parts = vec![vec![8u8, 0]; 255];
        let mut out = Vec::new();
        write_compound(&mut out, &parts).unwrap();
        let it = CompoundParts::parse(&out[1..]).unwrap();
        assert_eq!(it.announced(), 255);
        assert_eq!(it.count(), 255);
        let parts = vec![vec![8u8]; 256];
        assert_eq!(write_compound(&mut Vec::new(), &parts), Err(Error::TooManyParts(256)));
    }

    #[test]
    fn compound_header_is_checked_against_bytes_present() {
        assert!(CompoundParts::parse(&[]).is_err());
        assert!(CompoundParts::parse(&[200, 0, 1]).is_err());
    }

    #[test]
    fn crc_detects_corruption() {
        let mut out = Vec::new();
        write_crc(&mut out, b"\x08hello");
        assert_eq!(strip_crc(&out).unwrap(), Some(&b"\x08hello"[..]));
        out[6] ^= 1;
        assert!(matches!(strip_crc(&out), Err(Error::BadCrc { .. })));
        assert_eq!(strip_crc(&[12, 0, 0]).unwrap(), None, "too short to carry a CRC");
    }

    #[test]
    fn labels() {
        let mut out = Vec::new();
        write_label(&mut out, "blue").unwrap();
        out.push(8);
        assert_eq!(strip_label(&out).unwrap(), (&b"blue"[..], &[8u8][..]));
        assert_eq!(strip_label(&[8]).unwrap(), (&b""[..], &[8u8][..]));
        assert_eq!(strip_label(&[244, 0, 8]), Err(Error::EmptyLabel));
        assert_eq!(strip_label(&[244, 5, b'a']), Err(Error::Truncated { what: "label" }));
        assert_eq!(write_label(&mut out, &"x".repeat(256)), Err(Error::LabelTooLong(256)));
    }
}
