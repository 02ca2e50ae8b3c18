//! The LZW writer of Go's `compress/lzw` with `LSB` order and 8-bit literals,
//! the only way memberlist uses it: the same bytes as Go's `lzw.Writer`.
//!
//! The format: codes are written least significant bit first; 0–255 are
//! literals, 256 clears the table, 257 ends the stream, and the codes from 258
//! name strings, each the previous code's string plus the first byte of the
//! next. Codes start 9 bits wide and widen by one bit as soon as the next code
//! to be assigned needs it, up to 12 bits.
//!
//! What Go's writer (`writer.go`) does, and [`Encoder`] with it: a clear code
//! first, then greedy longest matches; when the code about to be assigned
//! reaches 4095 it writes a clear code (at the current width) and starts over
//! at 9 bits; `Close` writes the pending code, which can trigger that same
//! clear, then the end code and the last partial byte. Go's writer never uses
//! code 4095.
//!
//! Why not a general LZW crate: the dictionary lookups dominate, and they can
//! be cheap; see [`Encoder`]. Reading stays with `weezl` (in
//! [`super::compress`]): a reader of our own measured only 1.4–1.6× its
//! speed, too little to replace it.

const CLEAR: u32 = 256;
const END: u32 = 257;
/// The first width, and the `hi`/`overflow` a clear code resets to.
const MIN_WIDTH: u32 = 9;
const MAX_WIDTH: u32 = 12;
const FIRST_HI: u32 = END;
const FIRST_OVERFLOW: u32 = 1 << MIN_WIDTH;
/// Go's writer clears the table when the code it would assign reaches this.
const MAX_CODE: u32 = (1 << MAX_WIDTH) - 1;

/// Slots in the encoder's hash table: at most 3,837 codes live at once, so the
/// load stays under a half, and the table (64 KiB) stays small enough for the
/// fastest caches.
const TABLE_BITS: u32 = 13;
const TABLE_MASK: usize = (1 << TABLE_BITS) - 1;
/// Codes, and prefixes: 12 bits.
const CODES: usize = 1 << MAX_WIDTH;

/// The most bytes [`Encoder::encode`] writes for `n` input bytes: at most one
/// code per input byte, a clear code per 3,837 codes, the first clear code, a
/// clear code when closing and the end code, each at most 12 bits.
pub fn max_encoded_len(n: usize) -> usize {
    let codes = n.saturating_add(n / 1024).saturating_add(4);
    codes.saturating_mul(MAX_WIDTH as usize) / 8 + 1
}

/// Go's `lzw.NewWriter(w, lzw.LSB, 8)`, reusable: one per thread is enough.
///
/// The dictionary maps (prefix code, next byte) to a code. Two tables hold it,
/// both stamped with a generation, so that a slot of an older generation is
/// empty and a new table costs one increment:
/// - `child`, indexed by prefix code: the child code last found or made for
///   it. Structured input (msgpack keys, names, addresses that repeat) mostly
///   continues a string the way it last continued, and then this one load
///   answers;
/// - `table`, open addressing with linear probing on a hash of the pair: every
///   code, for the other children and to know that a pair is absent.
///
/// Both hold `generation << 32 | (prefix << 8 | byte) << 12 | code` (`child`
/// with the prefix bits zero).
pub struct Encoder {
    table: Box<[u64; TABLE_MASK + 1]>,
    child: Box<[u64; CODES]>,
    /// The current generation (never 0, so a zeroed slot is always empty).
    generation: u32,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self { table: zeroed(), child: zeroed(), generation: 0 }
    }

    /// An empty dictionary: the next generation, with the slots wiped once
    /// every 2³² − 1 generations, when the stamps would repeat.
    fn new_table(&mut self) -> u64 {
        self.generation = match self.generation.checked_add(1) {
            Some(g) => g,
            None => {
                self.table.fill(0);
                self.child.fill(0);
                1
            }
        };
        u64::from(self.generation) << 32
    }

    /// Appends `data` compressed, a whole stream from clear code to end code,
    /// to `out`: the bytes Go's writer produces for one `Write(data)` and
    /// `Close`.
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + max_encoded_len(data.len()), 0);
        let written = self.encode_into(data, &mut out[at..]);
        out.truncate(at + written);
    }

    /// Writes the stream into `buf`, which is long enough, and says how much
    /// of it it took.
    fn encode_into(&mut self, data: &[u8], buf: &mut [u8]) -> usize {
        let mut w = BitWriter { buf, at: 0, bits: 0, len: 0 };
        let mut width = MIN_WIDTH;
        w.put(CLEAR, width);
        let Some((&first, rest)) = data.split_first() else {
            w.put(END, width);
            return w.finish();
        };
        let mut stamp = self.new_table();
        let mut code = u32::from(first);
        let mut hi = FIRST_HI;
        let mut overflow = FIRST_OVERFLOW;
        'input: for &byte in rest {
            let last_child = self.child[code as usize & (CODES - 1)];
            if last_child & !0xfff == stamp | u64::from(byte) << 12 {
                code = (last_child & 0xfff) as u32;
                continue;
            }
            let key = code << 8 | u32::from(byte);
            let want = stamp | u64::from(key) << 12;
            let mut at = hash(key);
            loop {
                let slot = self.table[at & TABLE_MASK];
                if slot & !0xfff == want {
                    self.child[code as usize & (CODES - 1)] = stamp | u64::from(byte) << 12 | (slot & 0xfff);
                    code = (slot & 0xfff) as u32;
                    continue 'input;
                }
                if slot & !0xffff_ffff != stamp {
                    break;
                }
                at = (at + 1) & TABLE_MASK;
            }
            // No longer match: emit the code, and the byte starts the next one.
            w.put(code, width);
            let prefix = code as usize & (CODES - 1);
            code = u32::from(byte);
            hi += 1;
            if hi == overflow {
                width += 1;
                overflow <<= 1;
            }
            if hi == MAX_CODE {
                w.put(CLEAR, width);
                width = MIN_WIDTH;
                hi = FIRST_HI;
                overflow = FIRST_OVERFLOW;
                stamp = self.new_table();
                continue;
            }
            // `at` is the empty slot the probe stopped at.
            self.table[at & TABLE_MASK] = want | u64::from(hi);
            self.child[prefix] = stamp | u64::from(byte) << 12 | u64::from(hi);
        }
        // Go's Close: the pending code, the implied code (which may fill the
        // table), then the end code.
        w.put(code, width);
        hi += 1;
        if hi == overflow {
            width += 1;
        }
        if hi == MAX_CODE {
            w.put(CLEAR, width);
            width = MIN_WIDTH;
        }
        w.put(END, width);
        w.finish()
    }
}

/// A boxed array of zeros, made on the heap.
fn zeroed<const N: usize>() -> Box<[u64; N]> {
    vec![0; N].into_boxed_slice().try_into().unwrap_or_else(|_| unreachable!("N elements"))
}

/// A slot index for a 20-bit key (Fibonacci hashing).
fn hash(key: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> (32 - TABLE_BITS)) as usize
}

/// Codes, least significant bit first, written 32 bits at a time into a
/// buffer with room for them all ([`max_encoded_len`]).
struct BitWriter<'a> {
    buf: &'a mut [u8],
    at: usize,
    bits: u64,
    len: u32,
}

impl BitWriter<'_> {
    fn put(&mut self, code: u32, width: u32) {
        self.bits |= u64::from(code) << self.len;
        self.len += width;
        if self.len >= 32 {
            self.buf[self.at..self.at + 4].copy_from_slice(&(self.bits as u32).to_le_bytes());
            self.at += 4;
            self.bits >>= 32;
            self.len -= 32;
        }
    }

    /// Writes the last bits; the length written.
    fn finish(self) -> usize {
        let bytes = self.len.div_ceil(8) as usize;
        self.buf[self.at..self.at + bytes].copy_from_slice(&self.bits.to_le_bytes()[..bytes]);
        self.at + bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;
    use crate::wire::compress::{Compression, decompress};

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new().encode(data, &mut out);
        out
    }

    /// What the crate's LZW reader makes of `input`.
    fn decode(input: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        decompress(Compression::Lzw, input, limit, &mut out).map(|()| out)
    }

    const CORRUPT: Error = Error::Decompress { algo: "lzw" };

    /// A stream of these codes, each with its width.
    fn raw(codes: &[(u32, u32)]) -> Vec<u8> {
        let mut buf = vec![0; codes.len() * 2 + 8];
        let mut w = BitWriter { buf: &mut buf, at: 0, bits: 0, len: 0 };
        for &(code, width) in codes {
            w.put(code, width);
        }
        let len = w.finish();
        buf.truncate(len);
        buf
    }

    /// Codes of a stream, read back at the widths Go's reader would use.
    fn codes(stream: &[u8]) -> Vec<u32> {
        let (mut bits, mut len, mut bytes) = (0u64, 0u32, stream.iter());
        let (mut width, mut hi, mut overflow) = (MIN_WIDTH, FIRST_HI, FIRST_OVERFLOW);
        let mut out = Vec::new();
        loop {
            while len < width {
                let Some(&b) = bytes.next() else { return out };
                bits |= u64::from(b) << len;
                len += 8;
            }
            let c = (bits & ((1 << width) - 1)) as u32;
            (bits, len) = (bits >> width, len - width);
            out.push(c);
            match c {
                CLEAR => (width, hi, overflow) = (MIN_WIDTH, FIRST_HI, FIRST_OVERFLOW),
                END => return out,
                _ => {
                    hi += 1;
                    if hi >= overflow && width < MAX_WIDTH {
                        width += 1;
                        overflow <<= 1;
                    }
                }
            }
        }
    }

    #[test]
    fn empty_input_is_clear_then_end() {
        // 256 and 257 in 9 bits each, LSB first: Go writes 00 03 02.
        assert_eq!(encode(b""), [0x00, 0x03, 0x02]);
        assert_eq!(decode(&[0x00, 0x03, 0x02], 0), Ok(vec![]));
    }

    #[test]
    fn repeated_bytes_use_the_code_being_defined() {
        // "aaaa": clear, 'a', 258 ("aa", defined by this very use), 'a', end.
        let s = encode(b"aaaa");
        assert_eq!(codes(&s), [CLEAR, 97, 258, 97, END]);
        assert_eq!(decode(&s, 4), Ok(b"aaaa".to_vec()));
        assert!(matches!(decode(&s, 3), Err(Error::TooLarge { len: 4, limit: 3, .. })));
    }

    #[test]
    fn the_table_fills_and_clears_where_go_clears_it() {
        // Go clears after 3,838 codes (the implied codes 258..=4094, then
        // 4095 would be next), at 12 bits, and again 3,838 codes later.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let s = encode(&data);
        let c = codes(&s);
        let clears: Vec<usize> = c.iter().enumerate().filter(|&(_, &c)| c == CLEAR).map(|(i, _)| i).collect();
        assert!(clears.len() >= 3, "{clears:?}");
        assert_eq!(clears[0], 0);
        // Between clears: exactly MAX_CODE - FIRST_HI codes (258..=4094 implied).
        for w in clears.windows(2) {
            assert_eq!(w[1] - w[0] - 1, (MAX_CODE - FIRST_HI) as usize);
        }
        assert_eq!(decode(&s, data.len()), Ok(data));
    }

    /// Every pair of bytes once (de Bruijn B(256, 2)): one code per byte.
    fn no_pair_twice() -> Vec<u8> {
        fn db(t: usize, p: usize, a: &mut [u8; 3], out: &mut Vec<u8>) {
            if t > 2 {
                if 2 % p == 0 {
                    out.extend_from_slice(&a[1..=p]);
                }
            } else {
                a[t] = a[t - p];
                db(t + 1, p, a, out);
                for j in a[t - p] as usize + 1..256 {
                    a[t] = j as u8;
                    db(t + 1, t, a, out);
                }
            }
        }
        let mut out = Vec::new();
        db(1, 1, &mut [0; 3], &mut out);
        out
    }

    #[test]
    fn the_last_code_can_fill_the_table() {
        // Go's Close writes the pending code, counts the code it implies and,
        // when that fills the table, a clear code before the end code (which
        // is then 9 bits wide).
        let data = no_pair_twice();
        for (n, clears) in [(3_837, 1), (3_838, 2), (3_839, 2), (7_676, 3)] {
            let c = codes(&encode(&data[..n]));
            assert_eq!(c.len(), n + clears + 1, "{n}");
            assert_eq!(c.iter().filter(|&&c| c == CLEAR).count(), clears, "{n}");
            assert_eq!(c[c.len() - 2] == CLEAR, n % 3_838 == 0, "{n}");
        }
        assert_eq!(decode(&encode(&data), data.len()), Ok(data));
    }

    // What the reader must do with streams (the crate's reader is weezl's;
    // tests/go_interop.rs compares it with Go's on many more).

    #[test]
    fn truncated_and_invalid_streams_are_errors() {
        let s = encode(b"hello hello hello");
        for cut in 0..s.len() {
            assert_eq!(decode(&s[..cut], 1 << 10), Err(CORRUPT), "cut at {cut}");
        }
        // A code beyond the next one to be assigned: clear, 'a', 259.
        let bad = raw(&[(CLEAR, 9), (97, 9), (259, 9), (END, 9)]);
        assert_eq!(decode(&bad, 1 << 10), Err(CORRUPT));
    }

    #[test]
    fn a_full_table_freezes_until_a_clear_code() {
        // A writer that never clears (as Go's reader allows): after 258..=4095
        // are assigned, codes stay 12 bits and 4095 keeps its meaning.
        let mut codes = Vec::new();
        let mut expect = Vec::new();
        let (mut width, mut hi) = (MIN_WIDTH, FIRST_HI);
        codes.push((CLEAR, width));
        for i in 0..5_000u32 {
            let lit = i % 251;
            codes.push((lit, width));
            expect.push(lit as u8);
            hi += 1;
            if hi == (1 << width) && width < MAX_WIDTH {
                width += 1;
            }
        }
        // 4095 is (4093's literal, 4094's literal) = the 3,838th and 3,839th.
        codes.extend([(4095, width), (END, width)]);
        expect.extend([(3_837 % 251) as u8, (3_838 % 251) as u8]);
        assert_eq!(decode(&raw(&codes), usize::MAX), Ok(expect));
    }
}
