//! `stream_decode`: see `ringswim_fuzz::check_stream` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringswim_fuzz::check_stream(data));
