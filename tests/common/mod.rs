//! Helpers shared by the integration tests that feed decoders bad input.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// SplitMix64: a tiny, seeded, version-independent generator, so that a flood
/// or corpus is the same on every run and every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Appends `n` random bytes.
    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let target = out.len() + n;
        while out.len() < target {
            let word = self.next().to_le_bytes();
            let take = (target - out.len()).min(8);
            out.extend_from_slice(&word[..take]);
        }
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        self.fill(&mut v, n);
        v
    }

    /// One element of `from` (non-empty).
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

thread_local! {
    /// Set while `catch_panic` runs: the panic hook stores the panic's message
    /// and location here instead of printing it.
    static CAPTURED: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

fn install_quiet_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
                Some(slot) => {
                    *slot = Some(info.to_string().replace('\n', " "));
                    true
                }
                None => false,
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it comes back as `Err(message and location)`
/// instead of failing the test there, so that a test can collect every panic
/// with the input that caused it.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_quiet_hook();
    CAPTURED.with(|c| *c.borrow_mut() = Some(None));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let site = CAPTURED.with(|c| c.borrow_mut().take().flatten());
    result.map_err(|_| site.unwrap_or_else(|| "unknown panic".into()))
}
