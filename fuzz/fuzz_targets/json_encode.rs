//! `json_encode`: see `ringswim_fuzz::check_json` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringswim_fuzz::check_json(data));
