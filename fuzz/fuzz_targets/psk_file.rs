#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    midge_core::fuzz_check::psk_file(data);
});
