#![no_main]
//! The persistence loader on a file holding the input. The same few lines are in
//! crates/midge-server/tests/fuzz_corpus.rs, which replays the corpus.

use libfuzzer_sys::fuzz_target;
use midge_server::store::{Durability, Store};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("midge-fuzz-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("midge.db");
    std::fs::write(&path, data).unwrap();
    if let Ok((store, _snapshot)) = Store::open(&path, Durability::default()) {
        let _ = store.close();
    }
    let _ = std::fs::remove_dir_all(&dir);
});
