//! The `compress` message: `[9]{"Algo": u8, "Buf": bytes}`.
//!
//! - Algo 0, LZW as Go's `compress/lzw` writes it (LSB first, 8-bit literals,
//!   codes up to 12 bits, clear and end codes): written by our own encoder
//!   ([`super::lzw`]), byte for byte what Go's writer writes, and read by
//!   `weezl`, which reads what Go's reader reads.
//! - Algo 1, LZ4 block format with a little-endian u32 size prefix (`lz4_flex`).
//!   Go memberlist rejects it ("Cannot decompress unknown algorithm"), so it is
//!   only ever sent to peers that announced they understand it.
//!
//! Decompression is bounded: output beyond `limit` bytes is an error, so a
//! small hostile input cannot make a large allocation.

use std::cell::RefCell;

use weezl::{BitOrder, LzwStatus};

use super::Error;
use super::lzw;
use super::message::MessageType;
use super::msgpack::{self, Reader};

/// Compression algorithm of a `compress` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Go's `lzwAlgo` (0): what every memberlist speaks.
    Lzw,
    /// ringswim's LZ4 (1): ringswim peers only.
    Lz4,
}

impl Compression {
    /// The `Algo` value on the wire.
    pub fn algo(self) -> u8 {
        match self {
            Self::Lzw => 0,
            Self::Lz4 => 1,
        }
    }

    /// Name for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lzw => "lzw",
            Self::Lz4 => "lz4",
        }
    }

    fn from_algo(algo: u64) -> Result<Self, Error> {
        match algo {
            0 => Ok(Self::Lzw),
            1 => Ok(Self::Lz4),
            other => Err(Error::UnknownCompression(other)),
        }
    }
}

const LZW_LITERAL_WIDTH: u8 = 8;

thread_local! {
    // The coders' tables (weezl's a few KiB, the encoder's 96 KiB) are reused
    // per thread, so nothing is allocated on the hot path (and a new stream
    // costs the encoder nothing).
    static LZW_DECODER: RefCell<weezl::decode::Decoder> =
        RefCell::new(weezl::decode::Decoder::new(BitOrder::Lsb, LZW_LITERAL_WIDTH));
    static LZW_ENCODER: RefCell<lzw::Encoder> = RefCell::new(lzw::Encoder::new());
}

/// Appends a complete `compress` message holding `data` compressed with `algo`.
/// The compressed bytes are written in place (their length prefix is fixed
/// up after), so nothing is allocated when `out` has room.
pub fn write_compressed(out: &mut Vec<u8>, algo: Compression, data: &[u8]) {
    out.push(MessageType::Compress as u8);
    msgpack::write_map_len(out, 2);
    msgpack::write_key(out, "Algo");
    msgpack::write_uint(out, algo.algo().into());
    msgpack::write_key(out, "Buf");
    let header_at = out.len();
    out.extend_from_slice(&[0; msgpack::RAW_HEADER_MAX]);
    let data_at = out.len();
    compress_into(algo, data, out);
    let (header, header_len) = msgpack::bytes_header(out.len() - data_at);
    // The header is shorter than the room left for it unless the data is
    // 64 KiB or more: move the data back to close the gap.
    let gap = msgpack::RAW_HEADER_MAX - header_len;
    out.copy_within(data_at.., data_at - gap);
    out.truncate(out.len() - gap);
    out[header_at..header_at + header_len].copy_from_slice(&header[..header_len]);
}

/// Compresses `data` with `algo` (the `Buf` field's contents).
pub fn compress(algo: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress_into(algo, data, &mut out);
    out
}

/// Appends `data` compressed with `algo` (the `Buf` field's contents) to `out`.
pub fn compress_into(algo: Compression, data: &[u8], out: &mut Vec<u8>) {
    match algo {
        Compression::Lzw => LZW_ENCODER.with(|enc| enc.borrow_mut().encode(data, out)),
        Compression::Lz4 => {
            // Go-side format of ringswim peers: u32 LE size, then the block.
            let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&size.to_le_bytes());
            let at = out.len();
            out.resize(at + lz4_flex::block::get_maximum_output_size(data.len()), 0);
            // The output has the worst-case size, so compression cannot fail.
            let written = lz4_flex::block::compress_into(data, &mut out[at..]).unwrap_or(0);
            out.truncate(at + written);
        }
    }
}

/// Reads a `compress` body (after the type byte): the algorithm and `Buf`.
pub fn read_compressed(body: &[u8]) -> Result<(Compression, &[u8]), Error> {
    let mut algo = 0u64;
    // Missing `Buf` is empty; the empty slice points into `body`, as every
    // slice this returns does (callers locate it by address).
    let mut buf: &[u8] = &body[..0];
    Reader::new(body).read_struct("compress", |k, r| {
        match k {
            b"Algo" => algo = r.read_int("Algo")?,
            b"Buf" => buf = r.read_bytes("Buf")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((Compression::from_algo(algo)?, buf))
}

/// Decompresses `input`, appending to `out`, failing once `limit` bytes of
/// output would be exceeded.
pub fn decompress(algo: Compression, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    match algo {
        Compression::Lzw => lzw_decompress(input, limit, out),
        Compression::Lz4 => lz4_decompress(input, limit, out),
    }
}

fn lzw_decompress(mut input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    const MAX_CHUNK: usize = 64 * 1024;
    const CORRUPT: Error = Error::Decompress { algo: "lzw" };
    let start = out.len();
    // Output space grows with what is actually produced, starting from a size
    // proportional to the input: a tiny compressed message must not cost a big
    // zero-filled buffer (thousands of them fit in one packet).
    let mut chunk = (input.len() * 4 + 64).min(MAX_CHUNK);
    LZW_DECODER.with(|dec| {
        let mut dec = dec.borrow_mut();
        dec.reset();
        loop {
            // Room for one byte past the limit, so exceeding it is detectable.
            let room = chunk.min(limit.saturating_add(1) - (out.len() - start));
            chunk = (chunk * 2).min(MAX_CHUNK);
            let at = out.len();
            out.resize(at + room, 0);
            let res = dec.decode_bytes(input, &mut out[at..]);
            out.truncate(at + res.consumed_out);
            input = &input[res.consumed_in..];
            let produced = out.len() - start;
            if produced > limit {
                return Err(Error::TooLarge { what: "decompressed payload", len: produced, limit });
            }
            match res.status {
                Ok(LzwStatus::Done) => return Ok(()),
                Ok(LzwStatus::Ok) => {}
                // Input exhausted without the end code: Go reports unexpected EOF.
                Ok(LzwStatus::NoProgress) | Err(_) => return Err(CORRUPT),
            }
        }
    })
}

fn lz4_decompress(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    const CORRUPT: Error = Error::Decompress { algo: "lz4" };
    let (size, block) = input.split_first_chunk::<4>().ok_or(CORRUPT)?;
    let size = u32::from_le_bytes(*size) as usize;
    // An LZ4 block expands at most ~255 times; a larger claim is a lie that
    // would otherwise cost an allocation of the claimed size.
    let plausible = block.len().saturating_mul(255).saturating_add(16);
    if size > limit.min(plausible) {
        return Err(Error::TooLarge { what: "decompressed payload", len: size, limit: limit.min(plausible) });
    }
    let at = out.len();
    out.resize(at + size, 0);
    match lz4_flex::block::decompress_into(block, &mut out[at..]) {
        Ok(n) if n == size => Ok(()),
        _ => {
            out.truncate(at);
            Err(CORRUPT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 13) as u8 + b'a').collect()
    }

    #[test]
    fn both_algorithms_round_trip() {
        for algo in [Compression::Lzw, Compression::Lz4] {
            for len in [0, 1, 100, 5000, 70_000] {
                let data = sample(len);
                let mut msg = Vec::new();
                write_compressed(&mut msg, algo, &data);
                let (got_algo, buf) = read_compressed(&msg[1..]).unwrap();
                assert_eq!(got_algo, algo);
                let mut out = Vec::new();
                decompress(algo, buf, 1 << 20, &mut out).unwrap();
                assert_eq!(out, data, "{algo:?} {len}");
            }
        }
    }

    #[test]
    fn output_is_bounded() {
        let data = vec![0u8; 100_000];
        for algo in [Compression::Lzw, Compression::Lz4] {
            let buf = compress(algo, &data);
            let mut out = Vec::new();
            let err = decompress(algo, &buf, 10_000, &mut out).unwrap_err();
            assert!(matches!(err, Error::TooLarge { .. }), "{algo:?}: {err:?}");
            assert!(out.len() <= 10_001);
        }
    }

    #[test]
    fn no_limit_means_no_limit() {
        let data = sample(10_000);
        for algo in [Compression::Lzw, Compression::Lz4] {
            let mut out = Vec::new();
            decompress(algo, &compress(algo, &data), usize::MAX, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn lz4_size_claims_beyond_any_real_ratio_are_refused_before_allocating() {
        let mut out = Vec::new();
        let claim = [0x00, 0x00, 0x40, 0x01, 0x10]; // 20 MiB from one byte of block
        assert!(matches!(decompress(Compression::Lz4, &claim, 20 << 20, &mut out), Err(Error::TooLarge { .. })));
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut out = Vec::new();
        assert!(decompress(Compression::Lzw, &[0xff; 50], 1 << 16, &mut out).is_err());
        assert!(decompress(Compression::Lzw, &[], 1 << 16, &mut out).is_err());
        assert!(decompress(Compression::Lz4, &[10, 0, 0, 0, 0xff], 1 << 16, &mut out).is_err());
        assert!(decompress(Compression::Lz4, &[0xff, 0xff, 0xff, 0x7f], 1 << 16, &mut out).is_err());
        assert_eq!(read_compressed(&[0x81, 0xa4, b'A', b'l', b'g', b'o', 7]), Err(Error::UnknownCompression(7)));
    }
}
