//! LZW exactly as Go's `compress/lzw` speaks it with `LSB` order and 8-bit
//! literals, the only way memberlist uses it.
//!
//! The format: codes are written least significant bit first; 0–255 are
//! literals, 256 clears the table, 257 ends the stream, and the codes from 258
//! name strings, each the previous code's string plus the first byte of the
//! next. Codes start 9 bits wide and widen by one bit as soon as the next code
//! to be assigned needs it, up to 12 bits.
//!
//! [`Encoder`] writes the same bytes as Go's `lzw.Writer` (`writer.go`): a clear
//! code first, then greedy longest matches; when the code about to be assigned
//! reaches 4095 it writes a clear code (at the current width) and starts over
//! at 9 bits; `Close` writes the pending code, which can trigger that same
//! clear, then the end code and the last partial byte. Go's writer never uses
//! code 4095.
//!
//! [`Decoder`] accepts what Go's `lzw.Reader` (`reader.go`) accepts and yields
//! the same bytes, including streams from writers that fill the table (at
//! 4095 assigned codes the table freezes until a clear code): a stream may
//! start without a clear code, anything after the end code is ignored, a code
//! beyond the next one to be assigned is an error, and so is input that ends
//! before the end code.
//!
//! Why not a general LZW crate: the table work dominates. The encoder keeps
//! its dictionary in one flat open-addressing hash table keyed by (prefix
//! code, next byte), each slot stamped with a generation, so starting a new
//! stream, or clearing the table inside one, costs one increment. The decoder
//! keeps, for each code, where its string already lies in the output: every
//! new code's string is the previous code's output plus one byte, which
//! directly follows it, so decoding a code is one copy from earlier output.

use super::Error;

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
    table: Box<[u64]>,
    child: Box<[u64]>,
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
        Self {
            table: vec![0; TABLE_MASK + 1].into_boxed_slice(),
            child: vec![0; 1 << MAX_WIDTH].into_boxed_slice(),
            generation: 0,
        }
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
        out.reserve(max_encoded_len(data.len()));
        let mut w = BitWriter { out, bits: 0, len: 0 };
        let mut width = MIN_WIDTH;
        w.put(CLEAR, width);
        let Some((&first, rest)) = data.split_first() else {
            w.put(END, width);
            w.finish();
            return;
        };
        let mut stamp = self.new_table();
        let mut code = u32::from(first);
        let mut hi = FIRST_HI;
        let mut overflow = FIRST_OVERFLOW;
        'input: for &byte in rest {
            let last_child = self.child[code as usize & 0xfff];
            if last_child & !0xfff == stamp | u64::from(byte) << 12 {
                code = (last_child & 0xfff) as u32;
                continue;
            }
            let key = code << 8 | u32::from(byte);
            let want = stamp | u64::from(key) << 12;
            let mut at = hash(key);
            loop {
                let slot = self.table[at];
                if slot & !0xfff == want {
                    self.child[code as usize & 0xfff] = stamp | u64::from(byte) << 12 | (slot & 0xfff);
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
            let prefix = code as usize & 0xfff;
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
            self.table[at] = want | u64::from(hi);
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
        w.finish();
    }
}

/// A slot index for a 20-bit key (Fibonacci hashing).
fn hash(key: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> (32 - TABLE_BITS)) as usize
}

/// Codes, least significant bit first, appended 32 bits at a time.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    bits: u64,
    len: u32,
}

impl BitWriter<'_> {
    fn put(&mut self, code: u32, width: u32) {
        self.bits |= u64::from(code) << self.len;
        self.len += width;
        if self.len >= 32 {
            self.out.extend_from_slice(&(self.bits as u32).to_le_bytes());
            self.bits >>= 32;
            self.len -= 32;
        }
    }

    fn finish(self) {
        let bytes = self.len.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.bits.to_le_bytes()[..bytes]);
    }
}

/// Where a code's string lies in the output buffer: `len` bytes from `at`.
#[derive(Clone, Copy, Default)]
struct Entry {
    at: usize,
    len: usize,
}

const CODES: usize = 1 << MAX_WIDTH;

/// Go's `lzw.NewReader(r, lzw.LSB, 8)`, reusable: one per thread is enough.
pub struct Decoder {
    /// Indexed by code; entries 258.. of the current stream (literals, clear
    /// and end need none).
    entries: Box<[Entry; CODES]>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

const CORRUPT: Error = Error::Decompress { algo: "lzw" };

/// Strings are copied 8 bytes at a time, so the output buffer keeps this many
/// bytes of room past the end of what is written.
const SLACK: usize = 8;

/// Where decoding stands between two codes.
#[derive(Clone, Copy)]
struct State<'a> {
    r: BitReader<'a>,
    width: u32,
    hi: u32,
    /// The previous code's string: the next code's string extends it and
    /// defines code `hi`, unless a clear code (or a full table) came since,
    /// which `len` 0 marks.
    last: Entry,
    /// The end of the output so far, in the buffer.
    end: usize,
}

/// Why [`Decoder::run`] stopped.
enum Stop {
    /// The stream is over, well or badly.
    Done(Result<(), Error>),
    /// The next code's string, this long, does not fit the buffer (the code
    /// is left unread).
    Room(usize),
}

impl Decoder {
    pub fn new() -> Self {
        let entries = vec![Entry::default(); CODES].into_boxed_slice();
        Self { entries: entries.try_into().unwrap_or_else(|_| unreachable!("CODES entries")) }
    }

    /// Decodes one stream, appending it to `out`. More than `limit` bytes of
    /// output is [`Error::TooLarge`] (what was decoded up to the limit stays
    /// in `out`); a code that is not valid where it stands, or input that ends
    /// before the end code, is [`Error::Decompress`]. Output space grows with
    /// what is produced (at first in proportion to the input) and never beyond
    /// the limit but for a few bytes.
    pub fn decode(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let mut st = State {
            r: BitReader { input, bits: 0, len: 0 },
            width: MIN_WIDTH,
            hi: FIRST_HI,
            last: Entry::default(),
            end: start,
        };
        let first = input.len().saturating_mul(2).saturating_add(64);
        let mut need = 0;
        let res = loop {
            // Room for `need` more bytes and then some: in proportion to what
            // is already there (at first to the input), so a tiny stream costs
            // a tiny buffer and a large one few copies; never past the limit,
            // so that whatever fits is within it.
            let produced = st.end - start;
            if need > limit - produced {
                let len = produced.saturating_add(need);
                break Err(Error::TooLarge { what: "decompressed payload", len, limit });
            }
            let most = (limit - produced).saturating_add(SLACK);
            let room = need.saturating_add(SLACK).max(produced).max(first).min(most);
            if out.len() < st.end + room {
                // Exactly: `resize` alone may double the capacity.
                out.reserve_exact(st.end + room - out.len());
                out.resize(st.end + room, 0);
            }
            match self.run(&mut st, out) {
                Stop::Done(res) => break res,
                Stop::Room(len) => need = len,
            }
        };
        out.truncate(st.end);
        res
    }

    /// Decodes codes into `buf` until the stream ends or a string does not
    /// fit; the output so far ends at `st.end`.
    fn run(&mut self, st: &mut State<'_>, buf: &mut [u8]) -> Stop {
        let State { mut r, mut width, mut hi, mut last, mut end } = *st;
        let entries = &mut *self.entries;
        let stop = loop {
            let Some(code) = r.read(width) else { break Stop::Done(Err(CORRUPT)) };
            let len = if code < CLEAR {
                if buf.len() - end <= SLACK {
                    r.unread(code, width);
                    break Stop::Room(1);
                }
                buf[end] = code as u8;
                1
            } else if code > END && code <= hi {
                let kwk = code == hi && last.len != 0;
                let (from, len) = if kwk {
                    // The code being defined: the previous string plus its
                    // own first byte (copied with the junk byte after it,
                    // then set).
                    (last.at, last.len + 1)
                } else {
                    // Every code below `hi` was defined since the last clear
                    // code (and `hi` itself, once the table is full), so its
                    // string ends before `end`.
                    let e = entries[code as usize & (CODES - 1)];
                    (e.at, e.len)
                };
                if len + SLACK > buf.len() - end {
                    r.unread(code, width);
                    break Stop::Room(len);
                }
                // 8 bytes at a time: the last chunk may write junk past the
                // string, into room the next string overwrites. The string
                // ends before `end`, so no chunk reads what this one wrote.
                // (The string is always in `buf`; were it not, that would be
                // an error, not a panic.)
                if copy8(buf, from, end).is_none() {
                    break Stop::Done(Err(CORRUPT));
                }
                let mut k = 8;
                while k < len {
                    if copy8(buf, from + k, end + k).is_none() {
                        break;
                    }
                    k += 8;
                }
                if k < len {
                    break Stop::Done(Err(CORRUPT));
                }
                if kwk {
                    buf[end + len - 1] = buf[from];
                }
                len
            } else if code == CLEAR {
                width = MIN_WIDTH;
                hi = FIRST_HI;
                last.len = 0;
                continue;
            } else if code == END {
                break Stop::Done(Ok(()));
            } else {
                break Stop::Done(Err(CORRUPT));
            };
            if last.len != 0 {
                // `hi`'s string: the previous one plus this one's first byte,
                // which follows it in the output.
                entries[hi as usize & (CODES - 1)] = Entry { at: last.at, len: last.len + 1 };
            }
            last = Entry { at: end, len };
            end += len;
            hi += 1;
            if hi >> width != 0 {
                if width == MAX_WIDTH {
                    // A full table: no more codes until a clear code.
                    last.len = 0;
                    hi -= 1;
                } else {
                    width += 1;
                }
            }
        };
        *st = State { r, width, hi, last, end };
        stop
    }
}

/// Copies `buf[from..from + 8]` to `buf[to..to + 8]`, if both are in `buf`.
#[inline(always)]
fn copy8(buf: &mut [u8], from: usize, to: usize) -> Option<()> {
    let chunk = *buf.get(from..)?.first_chunk::<8>()?;
    *buf.get_mut(to..)?.first_chunk_mut::<8>()? = chunk;
    Some(())
}

/// Codes, least significant bit first.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    input: &'a [u8],
    bits: u64,
    len: u32,
}

impl BitReader<'_> {
    /// The next `width`-bit code, or `None` if the input ends first.
    fn read(&mut self, width: u32) -> Option<u32> {
        if let Some(chunk) = self.input.first_chunk::<8>() {
            // Top up to 56–63 bits from the next 8 bytes without a branch on
            // how many are needed. Bits above the whole bytes taken are the
            // start of the next byte, which the next top-up puts at the same
            // place again, so they are never wrong.
            self.bits |= u64::from_le_bytes(*chunk) << self.len;
            self.input = &self.input[((63 - self.len) / 8) as usize..];
            self.len |= 56;
        } else if self.len < width {
            // The last few bytes, one at a time.
            let (now, later) = self.input.split_at(self.input.len().min(((63 - self.len) / 8) as usize));
            for &b in now {
                self.bits |= u64::from(b) << self.len;
                self.len += 8;
            }
            self.input = later;
            if self.len < width {
                return None;
            }
        }
        let code = (self.bits & ((1 << width) - 1)) as u32;
        self.bits >>= width;
        self.len -= width;
        Some(code)
    }

    /// Puts back the code just read.
    fn unread(&mut self, code: u32, width: u32) {
        self.bits = self.bits << width | u64::from(code);
        self.len += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new().encode(data, &mut out);
        out
    }

    fn decode(input: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        Decoder::new().decode(input, limit, &mut out).map(|()| out)
    }

    /// Codes of a stream, read back at the widths Go's reader would use.
    fn codes(stream: &[u8]) -> Vec<u32> {
        let mut r = BitReader { input: stream, bits: 0, len: 0 };
        let (mut width, mut hi, mut overflow) = (MIN_WIDTH, FIRST_HI, FIRST_OVERFLOW);
        let mut out = Vec::new();
        while let Some(c) = r.read(width) {
            out.push(c);
            match c {
                CLEAR => (width, hi, overflow) = (MIN_WIDTH, FIRST_HI, FIRST_OVERFLOW),
                END => break,
                _ => {
                    hi += 1;
                    if hi >= overflow && width < MAX_WIDTH {
                        width += 1;
                        overflow <<= 1;
                    }
                }
            }
        }
        out
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

    #[test]
    fn truncated_and_invalid_streams_are_errors() {
        let s = encode(b"hello hello hello");
        for cut in 0..s.len() {
            assert_eq!(decode(&s[..cut], 1 << 10), Err(CORRUPT), "cut at {cut}");
        }
        // A code beyond the next one to be assigned: clear, 'a', 259.
        let mut bad = Vec::new();
        let mut w = BitWriter { out: &mut bad, bits: 0, len: 0 };
        w.put(CLEAR, 9);
        w.put(97, 9);
        w.put(259, 9);
        w.put(END, 9);
        w.finish();
        assert_eq!(decode(&bad, 1 << 10), Err(CORRUPT));
    }

    #[test]
    fn a_full_table_freezes_until_a_clear_code() {
        // A writer that never clears (as Go's reader allows): after 258..=4095
        // are assigned, codes stay 12 bits and 4095 keeps its meaning.
        let mut s = Vec::new();
        let mut w = BitWriter { out: &mut s, bits: 0, len: 0 };
        let mut expect = Vec::new();
        let (mut width, mut hi) = (MIN_WIDTH, FIRST_HI);
        w.put(CLEAR, width);
        for i in 0..5_000u32 {
            let lit = i % 251;
            w.put(lit, width);
            expect.push(lit as u8);
            hi += 1;
            if hi == (1 << width) && width < MAX_WIDTH {
                width += 1;
            }
        }
        // 4095 is (4093's literal, 4094's literal) = the 3,838th and 3,839th.
        w.put(4095, width);
        expect.extend([(3_837 % 251) as u8, (3_838 % 251) as u8]);
        w.put(END, width);
        w.finish();
        assert_eq!(decode(&s, usize::MAX), Ok(expect));
    }
}
