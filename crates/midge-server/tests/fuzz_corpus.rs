//! Replays the committed fuzz corpus of the persistence loader (`fuzz/corpus/store`): each
//! input is written to a file and opened as a store, which may fail but never panic. The
//! same few lines are the fuzz target `fuzz/fuzz_targets/store.rs`.

use std::path::PathBuf;

use midge_server::store::{Durability, Store};

#[test]
fn store_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/store");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
    let work = std::env::temp_dir().join(format!("midge-store-corpus-{}", std::process::id()));
    let mut count = 0;
    for entry in entries {
        let input = entry.unwrap().path();
        let data = std::fs::read(&input).unwrap();
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let path = work.join("midge.db");
        std::fs::write(&path, &data).unwrap();
        let result = std::panic::catch_unwind(|| {
            if let Ok((store, _snapshot)) = Store::open(&path, Durability::default()) {
                let _ = store.close();
            }
        });
        assert!(
            result.is_ok(),
            "{} panics the store loader",
            input.display()
        );
        count += 1;
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(count > 0, "corpus {} is empty", dir.display());
}
