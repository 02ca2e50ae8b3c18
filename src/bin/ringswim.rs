//! The `ringswim` command line.
//!
//! - `ringswim decode [--key BASE64]... [--label TEXT] [--stream] [FILE]`:
//!   one raw UDP packet (or TCP stream message) → one JSON object on stdout.
//! - `ringswim encode [--compress] [--crc] [--key BASE64 [--encryption-version 0|1]]
//!   [--label TEXT] [--stream]`: `{"messages":[...]}` on stdin → bytes on stdout.
//!
//! Bad input prints one line naming the problem on stderr and exits 1; nothing
//! is written to stdout then.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{Parser, Subcommand, ValueEnum};
use ringswim::inspect::{self, DecodeRequest, EncodeRequest};
use ringswim::wire::{Compression, EncryptionVersion};

#[derive(Parser)]
#[command(name = "ringswim", version, about = "SWIM + Lifeguard membership, wire-compatible with Go memberlist 0.2.2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode one packet (or stream message) to JSON.
    Decode {
        /// Decryption key, base64 (16, 24 or 32 bytes); repeat for a keyring.
        /// With a key given, the input must be encrypted.
        #[arg(long = "key", value_name = "BASE64")]
        keys: Vec<String>,
        /// Require this label (without it, any label is accepted and reported).
        #[arg(long)]
        label: Option<String>,
        /// The input is one TCP stream message, not a UDP packet.
        #[arg(long)]
        stream: bool,
        /// Input file (stdin when absent).
        file: Option<PathBuf>,
    },
    /// Encode JSON messages from stdin to packet (or stream) bytes on stdout.
    Encode {
        /// Compress (LZW unless --compression says otherwise).
        #[arg(long)]
        compress: bool,
        /// Compression algorithm; lz4 is understood by ringswim peers only.
        #[arg(long, value_enum, default_value_t = Algo::Lzw)]
        compression: Algo,
        /// Add a CRC32 header (packets only).
        #[arg(long)]
        crc: bool,
        /// Encryption key, base64; the first one encrypts.
        #[arg(long = "key", value_name = "BASE64")]
        keys: Vec<String>,
        /// Encryption format version (0: PKCS#7 padded, 1: unpadded).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        encryption_version: u8,
        /// Label header, also authenticated when encrypting.
        #[arg(long, default_value = "")]
        label: String,
        /// Build one TCP stream message instead of a UDP packet.
        #[arg(long)]
        stream: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Algo {
    Lzw,
    Lz4,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Decode { keys, label, stream, file } => {
            let bytes = match file {
                Some(path) => std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                None => read_stdin()?,
            };
            let req = DecodeRequest { keys: decode_keys(&keys)?, label, stream };
            let json = inspect::decode_to_json(&bytes, &req).map_err(|e| e.to_string())?;
            // Written as one piece; a closed pipe is an error, not a panic.
            let mut line = json.to_string().into_bytes();
            line.push(b'\n');
            write_stdout(&line)
        }
        Command::Encode { compress, compression, crc, keys, encryption_version, label, stream } => {
            let input = read_stdin()?;
            let value: serde_json::Value = serde_json::from_slice(&input).map_err(|e| format!("json: {e}"))?;
            let req = EncodeRequest {
                compression: compress.then_some(match compression {
                    Algo::Lzw => Compression::Lzw,
                    Algo::Lz4 => Compression::Lz4,
                }),
                crc,
                keys: decode_keys(&keys)?,
                encryption_version: if encryption_version == 0 { EncryptionVersion::V0 } else { EncryptionVersion::V1 },
                label,
                stream,
            };
            let bytes = inspect::encode_from_json(&value, &req).map_err(|e| e.to_string())?;
            write_stdout(&bytes)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("stdin: {e}"))?;
    Ok(buf)
}

fn decode_keys(keys: &[String]) -> Result<Vec<Vec<u8>>, String> {
    keys.iter()
        .map(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .map_err(|e| format!("--key {k:?}: not base64: {e}"))
        })
        .collect()
}
