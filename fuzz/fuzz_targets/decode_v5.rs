#![no_main]

use libfuzzer_sys::fuzz_target;
use midge_proto::ProtocolVersion;

fuzz_target!(|data: &[u8]| {
    midge_proto::fuzz_check::decode(data, ProtocolVersion::V5);
});
