//! Password files and hashes, compatible with Mosquitto's `password_file` and
//! `mosquitto_passwd`.
//!
//! Pure: the file arrives as text and new salts are passed in by the caller, so that
//! everything here is tested in-process. Verification is deliberately slow (PBKDF2, or
//! argon2id with 46 MiB per check); the server runs it off the I/O threads.

mod file;
mod hash;

pub use file::{PasswordFile, PasswordFileError, MAX_USERNAME_LEN};
pub use hash::{
    HashError, HashKind, PasswordHash, ARGON2_HASH_LEN, ARGON2_MAX_M_KIB, ARGON2_MAX_P,
    ARGON2_MAX_T, ARGON2_M_KIB, ARGON2_P, ARGON2_T, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN,
    LONG_SALT_LEN, MAX_ITERATIONS, SHA512_LEN,
};
