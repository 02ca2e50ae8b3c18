//! A compound of alive messages, what a joining cluster gossips: the input
//! the LZW tests against Go and the codec bench both use
//! (`#[path = ".../common/alive_compound.rs"] mod alive_compound;`).

use ringswim::wire::{Alive, Message, frame};

/// A compound of `n` alive messages (21-character names, IPv4, 36-byte
/// meta, 6-byte Vsn): about 1,400 bytes at 12.
pub fn alive_compound(n: usize) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let name = format!("node-{:04}.dc1.example", 37 * i + 5);
            let meta = format!("role=web,zone=us-east-1a,rack=r{:02}", i % 16);
            Message::Alive(Alive {
                incarnation: 1 + i as u32,
                node: &name,
                addr: &[10, 0, 1, i as u8],
                port: 7946,
                meta: meta.as_bytes(),
                vsn: &[1, 5, 2, 0, 0, 0],
            })
            .to_vec()
        })
        .collect();
    let mut out = Vec::new();
    frame::write_compound(&mut out, &parts).expect("compound");
    out
}
