//! msgpack in the dialect of `hashicorp/go-msgpack` as memberlist 0.2.2 uses it.
//!
//! Writing follows Go byte for byte: structs are maps keyed by Go field names
//! sorted by name (Go's codec sorts them; not declaration order), strings and byte slices are both written as the *old*
//! spec's raw type (fixraw / raw16 / raw32 — never str8 or bin), a nil byte
//! slice is msgpack nil, integers take the smallest form (positive values always
//! unsigned). Reading is liberal like Go's decoder: str8, bin8/16/32, signed
//! integers, nil for empty and unknown map keys are all accepted.
//!
//! Marker bytes come from `rmp`'s table; the reader borrows from the input and
//! checks every length against the bytes actually present before using it.

use rmp::Marker;

use super::Error;

// ---------------------------------------------------------------- writing

/// Writes a map header for `n` entries (fixmap, map16, map32 as Go does).
pub fn write_map_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(Marker::FixMap(n as u8).to_u8());
    } else if let Ok(n) = u16::try_from(n) {
        out.push(Marker::Map16.to_u8());
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(Marker::Map32.to_u8());
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Longest raw header: marker and a 32-bit length.
pub const RAW_HEADER_MAX: usize = 5;

/// The header of an old-spec raw of `n` bytes, as Go writes it: the bytes
/// and how many of them are used.
fn raw_header(n: usize) -> ([u8; RAW_HEADER_MAX], usize) {
    let mut h = [0; RAW_HEADER_MAX];
    if n < 32 {
        h[0] = Marker::FixStr(n as u8).to_u8();
        (h, 1)
    } else if let Ok(n) = u16::try_from(n) {
        h[0] = Marker::Str16.to_u8();
        h[1..3].copy_from_slice(&n.to_be_bytes());
        (h, 3)
    } else {
        h[0] = Marker::Str32.to_u8();
        h[1..5].copy_from_slice(&(n as u32).to_be_bytes());
        (h, 5)
    }
}

/// The header [`write_bytes`] puts before `n` bytes (nil when there are
/// none): for a writer that appends the bytes first and the header after.
pub fn bytes_header(n: usize) -> ([u8; RAW_HEADER_MAX], usize) {
    if n == 0 {
        let mut h = [0; RAW_HEADER_MAX];
        h[0] = Marker::Null.to_u8();
        return (h, 1);
    }
    raw_header(n)
}

/// Writes bytes as Go writes a `string` or non-nil `[]byte`: old-spec raw.
pub fn write_raw(out: &mut Vec<u8>, b: &[u8]) {
    let (header, len) = raw_header(b.len());
    out.extend_from_slice(&header[..len]);
    out.extend_from_slice(b);
}

/// Writes a Go `[]byte` field: nil when empty (Go's encoding of a nil slice).
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let (header, len) = bytes_header(b.len());
    out.extend_from_slice(&header[..len]);
    out.extend_from_slice(b);
}

/// Writes an unsigned integer in its smallest form.
pub fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if let Ok(v) = u8::try_from(v) {
        out.extend_from_slice(&[Marker::U8.to_u8(), v]);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(Marker::U16.to_u8());
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(Marker::U32.to_u8());
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(Marker::U64.to_u8());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Writes a signed integer as Go does: non-negative values as unsigned.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8);
    } else if let Ok(v) = i8::try_from(v) {
        out.extend_from_slice(&[Marker::I8.to_u8(), v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(Marker::I16.to_u8());
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(Marker::I32.to_u8());
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(Marker::I64.to_u8());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Writes a bool.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { Marker::True.to_u8() } else { Marker::False.to_u8() });
}

/// Writes a map key (a Go field name).
pub fn write_key(out: &mut Vec<u8>, name: &str) {
    write_raw(out, name.as_bytes());
}

/// Bytes [`write_map_len`] writes for `n`.
pub fn map_len_len(n: usize) -> usize {
    if n < 16 {
        1
    } else if n <= usize::from(u16::MAX) {
        3
    } else {
        5
    }
}

/// Bytes [`write_raw`] writes for `n` bytes of content.
pub fn raw_len(n: usize) -> usize {
    n + if n < 32 {
        1
    } else if n <= usize::from(u16::MAX) {
        3
    } else {
        5
    }
}

/// Bytes [`write_bytes`] writes for `n` bytes of content.
pub fn bytes_len(n: usize) -> usize {
    if n == 0 { 1 } else { raw_len(n) }
}

/// Bytes [`write_uint`] writes for `v`.
pub fn uint_len(v: u64) -> usize {
    match v {
        0..128 => 1,
        128..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Bytes [`write_int`] writes for `v`.
pub fn int_len(v: i64) -> usize {
    match v {
        0.. => uint_len(v as u64),
        -32..0 => 1,
        -0x80..-32 => 2,
        -0x8000..-0x80 => 3,
        -0x8000_0000..-0x8000 => 5,
        _ => 9,
    }
}

/// Bytes [`write_key`] writes for `name`.
pub fn key_len(name: &str) -> usize {
    raw_len(name.len())
}

// ---------------------------------------------------------------- reading

/// A cursor over msgpack bytes that hands out slices of the input.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated { what });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    fn be16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn be32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn be64(&mut self, what: &'static str) -> Result<u64, Error> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn marker(&mut self, what: &'static str) -> Result<Marker, Error> {
        Ok(Marker::from_u8(self.byte(what)?))
    }

    /// Reads a map header. The count is checked against the bytes left (every
    /// entry takes at least two), so callers may trust it as a loop bound.
    pub fn read_map_len(&mut self, what: &'static str) -> Result<usize, Error> {
        let n = match self.marker(what)? {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => usize::from(self.be16(what)?),
            Marker::Map32 => self.be32(what)? as usize,
            _ => return Err(Error::MsgpackType { what, expected: "map" }),
        };
        if n.saturating_mul(2) > self.remaining() {
            return Err(Error::Truncated { what });
        }
        Ok(n)
    }

    /// Reads a string or binary value (any of raw/str/bin forms), or nil as empty.
    pub fn read_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        // Fast path: fixraw, the form of every key and of most names.
        if let Some(&b) = self.buf.get(self.pos)
            && b & 0xe0 == 0xa0
        {
            let n = usize::from(b & 0x1f);
            if let Some(s) = self.buf.get(self.pos + 1..self.pos + 1 + n) {
                self.pos += 1 + n;
                return Ok(s);
            }
        }
        let n = match self.marker(what)? {
            // An empty slice at the current position (not a static one), so callers
            // can locate every returned slice inside the input.
            Marker::Null => return Ok(&self.buf[self.pos..self.pos]),
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => usize::from(self.byte(what)?),
            Marker::Str16 | Marker::Bin16 => usize::from(self.be16(what)?),
            Marker::Str32 | Marker::Bin32 => self.be32(what)? as usize,
            _ => return Err(Error::MsgpackType { what, expected: "bytes" }),
        };
        self.take(n, what)
    }

    /// Reads a Go `string` field as UTF-8.
    pub fn read_str(&mut self, what: &'static str) -> Result<&'a str, Error> {
        std::str::from_utf8(self.read_bytes(what)?).map_err(|_| Error::InvalidUtf8 { field: what })
    }

    /// Reads any msgpack integer as `i128` (covers u64 and i64 alike).
    fn read_integer(&mut self, what: &'static str) -> Result<i128, Error> {
        Ok(match self.marker(what)? {
            Marker::FixPos(v) => i128::from(v),
            Marker::FixNeg(v) => i128::from(v),
            Marker::U8 => i128::from(self.byte(what)?),
            Marker::U16 => i128::from(self.be16(what)?),
            Marker::U32 => i128::from(self.be32(what)?),
            Marker::U64 => i128::from(self.be64(what)?),
            Marker::I8 => i128::from(self.byte(what)? as i8),
            Marker::I16 => i128::from(self.be16(what)? as i16),
            Marker::I32 => i128::from(self.be32(what)? as i32),
            Marker::I64 => i128::from(self.be64(what)? as i64),
            Marker::Null => 0,
            _ => return Err(Error::MsgpackType { what, expected: "integer" }),
        })
    }

    /// Reads an integer that must fit `T` (Go's overflow check).
    pub fn read_int<T: TryFrom<i128>>(&mut self, what: &'static str) -> Result<T, Error> {
        T::try_from(self.read_integer(what)?).map_err(|_| Error::OutOfRange { field: what })
    }

    /// Reads a bool (nil reads as false, like Go's zero value).
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, Error> {
        match self.marker(what)? {
            Marker::True => Ok(true),
            Marker::False | Marker::Null => Ok(false),
            _ => Err(Error::MsgpackType { what, expected: "bool" }),
        }
    }

    /// Skips one value of any kind (unknown map keys). Iterative: a count of
    /// values still to skip replaces recursion, bounded by the bytes left.
    pub fn skip(&mut self) -> Result<(), Error> {
        const WHAT: &str = "skipped value";
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let add = match self.marker(WHAT)? {
                Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => 0,
                Marker::U8 | Marker::I8 => self.take(1, WHAT).map(|_| 0)?,
                Marker::U16 | Marker::I16 => self.take(2, WHAT).map(|_| 0)?,
                Marker::U32 | Marker::I32 | Marker::F32 => self.take(4, WHAT).map(|_| 0)?,
                Marker::U64 | Marker::I64 | Marker::F64 => self.take(8, WHAT).map(|_| 0)?,
                Marker::FixStr(n) => self.take(usize::from(n), WHAT).map(|_| 0)?,
                Marker::Str8 | Marker::Bin8 => {
                    let n = usize::from(self.byte(WHAT)?);
                    self.take(n, WHAT).map(|_| 0)?
                }
                Marker::Str16 | Marker::Bin16 => {
                    let n = usize::from(self.be16(WHAT)?);
                    self.take(n, WHAT).map(|_| 0)?
                }
                Marker::Str32 | Marker::Bin32 => {
                    let n = self.be32(WHAT)? as usize;
                    self.take(n, WHAT).map(|_| 0)?
                }
                Marker::FixArray(n) => usize::from(n),
                Marker::Array16 => usize::from(self.be16(WHAT)?),
                Marker::Array32 => self.be32(WHAT)? as usize,
                Marker::FixMap(n) => 2 * usize::from(n),
                Marker::Map16 => 2 * usize::from(self.be16(WHAT)?),
                Marker::Map32 => 2 * (self.be32(WHAT)? as usize),
                Marker::FixExt1 => self.take(2, WHAT).map(|_| 0)?,
                Marker::FixExt2 => self.take(3, WHAT).map(|_| 0)?,
                Marker::FixExt4 => self.take(5, WHAT).map(|_| 0)?,
                Marker::FixExt8 => self.take(9, WHAT).map(|_| 0)?,
                Marker::FixExt16 => self.take(17, WHAT).map(|_| 0)?,
                Marker::Ext8 => {
                    let n = usize::from(self.byte(WHAT)?);
                    self.take(n + 1, WHAT).map(|_| 0)?
                }
                Marker::Ext16 => {
                    let n = usize::from(self.be16(WHAT)?);
                    self.take(n + 1, WHAT).map(|_| 0)?
                }
                Marker::Ext32 => {
                    let n = self.be32(WHAT)? as usize;
                    self.take(n.saturating_add(1), WHAT).map(|_| 0)?
                }
                Marker::Reserved => return Err(Error::MsgpackMarker(0xc1)),
            };
            // Every element takes at least one byte, so `pending` never exceeds
            // the input left and the loop ends within the input's length.
            if add > self.remaining() {
                return Err(Error::Truncated { what: WHAT });
            }
            pending += add;
        }
        Ok(())
    }

    /// Reads a struct encoded as a map: calls `field(key, reader)` for each entry;
    /// `field` returns `Ok(false)` for keys it does not know, which are skipped.
    pub fn read_struct(
        &mut self,
        what: &'static str,
        mut field: impl FnMut(&[u8], &mut Self) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let n = self.read_map_len(what)?;
        for _ in 0..n {
            let key = self.read_bytes(what)?;
            if !field(key, self)? {
                self.skip()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_use_the_old_raw_forms_like_go() {
        let mut out = Vec::new();
        write_raw(&mut out, &[b'x'; 31]);
        assert_eq!(out[0], 0xbf);
        out.clear();
        write_raw(&mut out, &[b'x'; 40]);
        assert_eq!(&out[..3], &[0xda, 0x00, 0x28], "40-byte name goes out as raw16, never str8");
        out.clear();
        write_raw(&mut out, &[b'x'; 70000]);
        assert_eq!(&out[..5], &[0xdb, 0x00, 0x01, 0x11, 0x70]);
        out.clear();
        write_bytes(&mut out, &[]);
        assert_eq!(out, [0xc0], "nil []byte is msgpack nil");
    }

    #[test]
    fn integers_take_go_widths() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (255, &[0xcc, 0xff]),
            (256, &[0xcd, 0x01, 0x00]),
            (65536, &[0xce, 0x00, 0x01, 0x00, 0x00]),
            (-1, &[0xff]),
            (-33, &[0xd0, 0xdf]),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            write_int(&mut out, *v);
            assert_eq!(&out, want, "{v}");
            assert_eq!(Reader::new(&out).read_int::<i64>("v").unwrap(), *v);
        }
    }

    #[test]
    fn reader_accepts_new_spec_forms_and_checks_ranges() {
        assert_eq!(Reader::new(&[0xd9, 2, b'h', b'i']).read_str("s").unwrap(), "hi");
        assert_eq!(Reader::new(&[0xc4, 1, 7]).read_bytes("b").unwrap(), &[7]);
        assert_eq!(Reader::new(&[0xcd, 1, 0]).read_int::<u8>("p"), Err(Error::OutOfRange { field: "p" }));
        assert_eq!(Reader::new(&[0xff]).read_int::<u32>("p"), Err(Error::OutOfRange { field: "p" }));
        assert_eq!(Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff]).read_bytes("b"), Err(Error::Truncated { what: "b" }));
        assert_eq!(Reader::new(&[0xdf, 0xff, 0xff, 0xff, 0xff]).read_map_len("m"), Err(Error::Truncated { what: "m" }));
    }

    #[test]
    fn skip_is_bounded() {
        // An array claiming 4 G elements in 5 bytes.
        assert!(Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip().is_err());
        // Deep nesting of single-element arrays: no recursion, just runs out of bytes.
        let deep = vec![0x91u8; 1000];
        assert!(Reader::new(&deep).skip().is_err());
        let mut r = Reader::new(&[0x92, 0x01, 0x81, 0xa1, b'k', 0xc0, 0x05]);
        r.skip().unwrap();
        assert_eq!(r.rest(), &[0x05]);
    }

    #[test]
    fn lengths_match_what_is_written() {
        let edges: Vec<i64> = [0i64, 1, 31, 32, 127, 128, 255, 256, 65_535, 65_536, 1 << 31, u32::MAX as i64, i64::MAX]
            .into_iter()
            .flat_map(|v| [v, -v, v.saturating_sub(1), -v - 1])
            .chain([i64::MIN, -33, -129, -32_769])
            .collect();
        for v in edges {
            let mut out = Vec::new();
            write_int(&mut out, v);
            assert_eq!(int_len(v), out.len(), "int {v}");
            if v >= 0 {
                out.clear();
                write_uint(&mut out, v as u64);
                assert_eq!(uint_len(v as u64), out.len(), "uint {v}");
            }
        }
        let mut out = Vec::new();
        write_uint(&mut out, u64::MAX);
        assert_eq!(uint_len(u64::MAX), out.len());
        for n in [0usize, 1, 15, 16, 31, 32, 65_535, 65_536] {
            let b = vec![7u8; n];
            let mut out = Vec::new();
            write_raw(&mut out, &b);
            assert_eq!(raw_len(n), out.len(), "raw {n}");
            out.clear();
            write_bytes(&mut out, &b);
            assert_eq!(bytes_len(n), out.len(), "bytes {n}");
            out.clear();
            write_map_len(&mut out, n);
            assert_eq!(map_len_len(n), out.len(), "map {n}");
        }
    }
}
