//! The node's keyring is shared: a `Sealer` and an `Opener` running on
//! another thread follow key operations made while they run (Go's
//! `Keyring.AddKey` / `UseKey` / `RemoveKey` on a live memberlist).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use rand::SeedableRng;
use rand::rngs::StdRng;
use ringswim::config::Config;
use ringswim::swim::{Core, Opener, OutgoingPacket, PacketLayers, Sealer, Time};
use ringswim::wire::{DecodeOptions, EncryptionVersion, Error, Keyring, Message, Nack, PacketDecoder, SharedKeyring};

const OLD: [u8; 32] = [7; 32];
const NEW: [u8; 16] = [9; 16];

fn addr() -> SocketAddr {
    "10.0.0.1:7946".parse().expect("address")
}

fn config(key: Option<&[u8]>) -> Config {
    let c = Config::default_lan().with_name("a");
    match key {
        Some(key) => c.with_secret_key(key.to_vec()),
        None => c,
    }
}

fn encrypted() -> OutgoingPacket {
    OutgoingPacket {
        to: addr(),
        layers: PacketLayers { compression: None, crc: true, encryption: Some(EncryptionVersion::V1) },
    }
}

fn body() -> Vec<u8> {
    Message::Nack(Nack { seq_no: 5 }).to_vec()
}

/// Whether `datagram` opens with a keyring holding `key` alone.
fn opens_with(key: &[u8], datagram: &[u8]) -> Result<(), Error> {
    let ring = Keyring::new(&[], Some(key)).expect("key");
    let opts = DecodeOptions { keyring: Some(&ring), verify_incoming: true, ..DecodeOptions::default() };
    let (mut decoder, mut bytes) = (PacketDecoder::new(), datagram.to_vec());
    let msgs = decoder.decode(&mut bytes, &opts)?.into_messages()?;
    assert_eq!(msgs, vec![Message::Nack(Nack { seq_no: 5 })]);
    Ok(())
}

enum Job {
    Seal,
    Open(Vec<u8>),
}

enum Done {
    Sealed(Vec<u8>),
    Opened(Result<usize, Error>),
}

#[test]
fn a_sealer_and_an_opener_on_another_thread_follow_a_key_rotation() {
    let config = config(Some(&OLD));
    let core = Core::new(config.clone(), addr(), Time::ZERO, StdRng::seed_from_u64(1)).expect("core");
    let keyring: SharedKeyring = core.keyring().clone();

    let (jobs, inbox) = mpsc::channel::<Job>();
    let (outbox, results) = mpsc::channel::<Done>();
    let worker = {
        let (config, keyring) = (config.clone(), keyring.clone());
        thread::spawn(move || {
            let mut sealer = Sealer::new(&config, keyring.clone(), StdRng::seed_from_u64(2));
            let mut opener = Opener::new(&config, keyring, ringswim::swim::metrics::Metrics::new());
            for job in inbox {
                let done = match job {
                    Job::Seal => {
                        let mut datagram = Vec::new();
                        sealer.seal(&encrypted(), &body(), &mut datagram).expect("seal");
                        Done::Sealed(datagram)
                    }
                    Job::Open(mut datagram) => Done::Opened(opener.open(&mut datagram, |_| {})),
                };
                outbox.send(done).expect("results");
            }
            opener.metrics().get(ringswim::swim::metrics::PACKETS_REJECTED, "decrypt")
        })
    };
    let seal = || {
        jobs.send(Job::Seal).expect("worker");
        match results.recv().expect("worker") {
            Done::Sealed(datagram) => datagram,
            Done::Opened(_) => unreachable!("asked to seal"),
        }
    };
    let before = seal();
    assert_eq!(opens_with(&OLD, &before), Ok(()));

    // Install and use the new key here: the worker seals with it next.
    keyring.add_key(&NEW).expect("install");
    assert_eq!(opens_with(&OLD, &seal()), Ok(()), "installing does not change the primary");
    keyring.use_key(&NEW).expect("use");
    let after = seal();
    assert_eq!(opens_with(&NEW, &after), Ok(()));
    assert_eq!(opens_with(&OLD, &after), Err(Error::DecryptFailed));

    // The worker still opens what the old key sealed, until it is removed.
    let open = |datagram: Vec<u8>| {
        jobs.send(Job::Open(datagram)).expect("worker");
        match results.recv().expect("worker") {
            Done::Opened(result) => result,
            Done::Sealed(_) => unreachable!("asked to open"),
        }
    };
    assert_eq!(open(before.clone()), Ok(1));
    keyring.remove_key(&OLD).expect("remove");
    assert_eq!(open(before), Err(Error::DecryptFailed));
    assert_eq!(open(after), Ok(1));
    drop(jobs);
    assert_eq!(worker.join().expect("worker"), 1, "the refusal is counted by reason");
}

#[test]
fn installing_a_first_key_turns_encryption_on() {
    let mut core = Core::new(config(None), addr(), Time::ZERO, StdRng::seed_from_u64(1)).expect("core");
    let me = core.local_node().clone();
    let mut body = Vec::new();
    core.send_best_effort(&me, b"plain").expect("fits");
    assert_eq!(core.poll_packet(&mut body).map(|p| p.layers.encryption), Some(None));

    core.keyring().add_key(&NEW).expect("install");
    assert_eq!(core.keyring().load().primary().map(|k| k.as_bytes()), Some(&NEW[..]));
    core.send_best_effort(&me, b"secret").expect("fits");
    assert_eq!(core.poll_packet(&mut body).map(|p| p.layers.encryption), Some(Some(EncryptionVersion::V1)));
}
