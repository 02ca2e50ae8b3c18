//! The protocol core: SWIM with the Lifeguard extensions, as a sans-IO state
//! machine. Nothing here reads a clock, spawns a thread, touches a socket or
//! uses a global RNG: time arrives as [`Time`] with every input, randomness
//! from an RNG the driver seeds. `engine/` (real sockets) and `sim/` (virtual
//! time) are its two drivers.
//!
//! Built so far (issue 3 in progress): the self-contained parts of memberlist's
//! protocol, each with Go's own test cases ported.
#![forbid(unsafe_code)]

mod time;

pub use time::Time;
