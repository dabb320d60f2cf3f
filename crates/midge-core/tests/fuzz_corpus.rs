//! Replays the committed fuzz corpus (`fuzz/corpus/<target>`) through the checks the fuzz
//! targets run, so `cargo test` catches a regression on any input fuzzing once found.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use midge_core::fuzz_check;

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
fn config_corpus() {
    replay("config", fuzz_check::config);
}

#[test]
fn password_file_corpus() {
    replay("password_file", fuzz_check::password_file);
}

#[test]
fn acl_file_corpus() {
    replay("acl_file", fuzz_check::acl_file);
}

#[test]
fn psk_file_corpus() {
    replay("psk_file", fuzz_check::psk_file);
}

#[test]
fn dynsec_json_corpus() {
    replay("dynsec_json", fuzz_check::dynsec_json);
}
