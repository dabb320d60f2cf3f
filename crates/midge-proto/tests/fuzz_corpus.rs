//! Replays the committed fuzz corpus (`fuzz/corpus/decode_*`) through the checks the fuzz
//! targets run, so `cargo test` catches a regression on any input fuzzing once found.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use midge_proto::fuzz_check;
use midge_proto::ProtocolVersion;

fn replay(target: &str, check: impl Fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| check(&data)));
        assert!(result.is_ok(), "{} fails its check", path.display());
        count += 1;
    }
    assert!(count > 0, "corpus {} is empty", dir.display());
}

#[test]
fn decode_v31_corpus() {
    replay("decode_v31", |d| {
        fuzz_check::decode(d, ProtocolVersion::V31)
    });
}

#[test]
fn decode_v311_corpus() {
    replay("decode_v311", |d| {
        fuzz_check::decode(d, ProtocolVersion::V311)
    });
}

#[test]
fn decode_v5_corpus() {
    replay("decode_v5", |d| fuzz_check::decode(d, ProtocolVersion::V5));
}
