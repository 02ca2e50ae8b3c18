//! `packet_decode`: see `ringswim_fuzz::check_packet` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringswim_fuzz::check_packet(data));
