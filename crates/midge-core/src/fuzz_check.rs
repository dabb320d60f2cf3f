//! The checks the fuzz targets (`fuzz/fuzz_targets/`) run on every input, shared with
//! `tests/fuzz_corpus.rs`, which replays the committed corpus in `cargo test`. Each parser
//! takes the input as UTF-8 (lossily, as the broker never sees anything else) and must never
//! panic.

use crate::dynsec::DynSec;

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// `mosquitto.conf`.
pub fn config(data: &[u8]) {
    let _ = crate::config::parse(&text(data), "fuzz.conf");
}

/// `password_file`.
pub fn password_file(data: &[u8]) {
    let _ = crate::password::PasswordFile::parse(&text(data), "fuzz.pwfile");
}

/// `acl_file`.
pub fn acl_file(data: &[u8]) {
    let _ = crate::acl::parse(&text(data), "fuzz.acl");
}

/// `psk_file`.
pub fn psk_file(data: &[u8]) {
    let _ = crate::psk::PskFile::parse(&text(data), "fuzz.psk");
}

/// The dynamic security file: whatever loads is saved, and what was saved loads again and
/// saves to the same text.
pub fn dynsec_json(data: &[u8]) {
    let Ok(dynsec) = DynSec::from_json(&text(data)) else {
        return;
    };
    let saved = dynsec.to_json();
    match DynSec::from_json(&saved) {
        Ok(again) => assert_eq!(again.to_json(), saved, "save, load, save differs"),
        Err(e) => panic!("a saved file does not load: {e}\n{saved}"),
    }
}
