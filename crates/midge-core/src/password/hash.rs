//! The three password hash encodings Mosquitto reads and writes.
//!
//! | Text form | Algorithm |
//! |---|---|
//! | `$6$<salt>$<hash>` | SHA-512(password ‖ salt), one round (Mosquitto 1.6, `-H sha512`) |
//! | `$7$<iterations>$<salt>$<hash>` | PBKDF2-HMAC-SHA512, 64-byte output (Mosquitto 2.0 default) |
//! | `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>` | Argon2id v1.3 (Mosquitto 2.1 `-H argon2id`) |
//!
//! `$6$`/`$7$` use standard base64 *with* padding (OpenSSL's BIO encoder); argon2id uses the
//! PHC/libargon2 encoding, standard base64 *without* padding. Parsing is strict — canonical
//! base64, canonical decimal numbers, exact lengths — so that [`PasswordHash::encode`] is the
//! exact inverse of [`PasswordHash::parse`] and an odd-looking entry is refused rather than
//! guessed at.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// Length of a `$6$`/`$7$` hash: SHA-512's output (`HASH_LEN` = `EVP_MAX_MD_SIZE` in Mosquitto).
pub const SHA512_LEN: usize = 64;
/// Salt length Midge writes for `$6$`/`$7$`: 12 bytes, because Mosquitto 2.0 (Debian's current
/// package) refuses any other length, and files written by `midge passwd` must stay readable by it.
pub const DEFAULT_SALT_LEN: usize = 12;
/// Salt length Mosquitto 2.1 writes (and the length used for argon2id).
pub const LONG_SALT_LEN: usize = 64;
/// PBKDF2 iterations for new `$7$` hashes: Mosquitto 2.1's default (2.0 used 101).
pub const DEFAULT_ITERATIONS: u32 = 1000;
/// Highest PBKDF2 iteration count accepted. The count comes from the file, and every CONNECT
/// with that username pays for it, so an absurd value would turn one line into a CPU sink.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Argon2id memory cost (KiB) for new hashes: Mosquitto 2.1's `m=47104` (46 MiB).
pub const ARGON2_M_KIB: u32 = 47104;
/// Argon2id passes for new hashes (Mosquitto 2.1).
pub const ARGON2_T: u32 = 1;
/// Argon2id lanes for new hashes (Mosquitto 2.1).
pub const ARGON2_P: u32 = 1;
/// Argon2id output length for new hashes (Mosquitto 2.1's `HASH_LEN`).
pub const ARGON2_HASH_LEN: usize = 64;
/// Highest argon2id memory cost accepted (1 GiB). `m` is read from the file and every
/// verification allocates that much, so it is capped at load time.
pub const ARGON2_MAX_M_KIB: u32 = 1_048_576;
/// Highest argon2id pass count accepted.
pub const ARGON2_MAX_T: u32 = 100;
/// Highest argon2id lane count accepted.
pub const ARGON2_MAX_P: u32 = 16;
/// Shortest argon2id salt accepted (libargon2's minimum).
const ARGON2_MIN_SALT: usize = 8;
/// Longest argon2id salt accepted (what Mosquitto writes; nothing needs more).
const ARGON2_MAX_SALT: usize = 64;
/// Shortest argon2id hash accepted. libargon2 allows 4 bytes, but with a hash that short a
/// random password matches with probability 2^-32 per try; refuse rather than accept a weak
/// entry silently.
const ARGON2_MIN_HASH: usize = 16;
/// Longest argon2id hash accepted.
const ARGON2_MAX_HASH: usize = 64;

/// Which algorithm a new hash uses (`mosquitto_passwd -H`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// `$6$`: one round of SHA-512. Weak; only for files that must be read by Mosquitto 1.6.
    Sha512,
    /// `$7$`: PBKDF2-HMAC-SHA512. Midge's default: read by Mosquitto 2.0 and 2.1.
    Pbkdf2Sha512,
    /// `$argon2id$`: read by Mosquitto 2.1 only (and only when built with argon2).
    Argon2id,
}

impl HashKind {
    /// The name `mosquitto_passwd -H` uses for this kind.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Sha512 => "sha512",
            HashKind::Pbkdf2Sha512 => "sha512-pbkdf2",
            HashKind::Argon2id => "argon2id",
        }
    }

    /// Inverse of [`HashKind::name`].
    pub fn from_name(name: &str) -> Option<HashKind> {
        match name {
            "sha512" => Some(HashKind::Sha512),
            "sha512-pbkdf2" => Some(HashKind::Pbkdf2Sha512),
            "argon2id" => Some(HashKind::Argon2id),
            _ => None,
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a password hash string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not `$6$`, `$7$` or `$argon2id$` — this includes plaintext passwords.
    #[error("unknown hash format (expected $6$, $7$ or $argon2id$; plaintext is not accepted)")]
    UnknownFormat,
    /// Right prefix, wrong number of `$`-separated fields.
    #[error("{0}: wrong number of '$'-separated fields")]
    Fields(&'static str),
    /// A field that should be base64 is not canonical base64.
    #[error("{prefix}: {field} is not valid base64")]
    Base64 {
        prefix: &'static str,
        field: &'static str,
    },
    /// A salt of a length Mosquitto never writes.
    #[error("{prefix}: salt is {len} bytes (expected {expected})")]
    SaltLength {
        prefix: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// A hash of the wrong length.
    #[error("{prefix}: hash is {len} bytes (expected {expected})")]
    HashLength {
        prefix: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// The PBKDF2 iteration count is not a number in 1..=10,000,000.
    #[error("$7$: iteration count must be a number from 1 to {MAX_ITERATIONS}")]
    Iterations,
    /// The argon2id `v=`, `m=`, `t=` or `p=` field is missing, malformed or out of range.
    #[error("$argon2id$: {0}")]
    Argon2Params(String),
}

/// A parsed password hash. `Debug` shows the kind and cost parameters, never salt or hash.
#[derive(Clone)]
pub enum PasswordHash {
    /// `$6$<salt>$<hash>`.
    Sha512 { salt: Vec<u8>, hash: [u8; 64] },
    /// `$7$<iterations>$<salt>$<hash>`.
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: [u8; 64],
    },
    /// `$argon2id$v=19$m=<m_kib>,t=<t>,p=<p>$<salt>$<hash>`.
    Argon2id {
        m_kib: u32,
        t: u32,
        p: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Salt and hash are left out: with them an offline dictionary attack is possible.
        match self {
            PasswordHash::Sha512 { .. } => f.debug_struct("Sha512").finish_non_exhaustive(),
            PasswordHash::Pbkdf2Sha512 { iterations, .. } => f
                .debug_struct("Pbkdf2Sha512")
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            PasswordHash::Argon2id { m_kib, t, p, .. } => f
                .debug_struct("Argon2id")
                .field("m_kib", m_kib)
                .field("t", t)
                .field("p", p)
                .finish_non_exhaustive(),
        }
    }
}

impl PasswordHash {
    /// Parses one of Mosquitto's encodings (the part of a password-file line after `username:`).
    pub fn parse(s: &str) -> Result<PasswordHash, HashError> {
        if let Some(rest) = s.strip_prefix("$6$") {
            let parts: Vec<&str> = rest.split('$').collect();
            let [salt, hash] = parts[..] else {
                return Err(HashError::Fields("$6$"));
            };
            Ok(PasswordHash::Sha512 {
                salt: decode_sha_salt("$6$", salt)?,
                hash: decode_sha_hash("$6$", hash)?,
            })
        } else if let Some(rest) = s.strip_prefix("$7$") {
            let parts: Vec<&str> = rest.split('$').collect();
            let [iterations, salt, hash] = parts[..] else {
                return Err(HashError::Fields("$7$"));
            };
            let iterations = parse_decimal(iterations)
                .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                .ok_or(HashError::Iterations)?;
            Ok(PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt: decode_sha_salt("$7$", salt)?,
                hash: decode_sha_hash("$7$", hash)?,
            })
        } else if let Some(rest) = s.strip_prefix("$argon2id$") {
            parse_argon2id(rest)
        } else {
            Err(HashError::UnknownFormat)
        }
    }

    /// The text form, exactly as Mosquitto writes it; `parse(h.encode())` gives `h` back.
    pub fn encode(&self) -> String {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                format!("$6${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => format!(
                "$7${iterations}${}${}",
                STANDARD.encode(salt),
                STANDARD.encode(hash)
            ),
            PasswordHash::Argon2id {
                m_kib,
                t,
                p,
                salt,
                hash,
            } => format!(
                "$argon2id$v=19$m={m_kib},t={t},p={p}${}${}",
                STANDARD_NO_PAD.encode(salt),
                STANDARD_NO_PAD.encode(hash)
            ),
        }
    }

    /// The algorithm of this hash.
    pub fn kind(&self) -> HashKind {
        match self {
            PasswordHash::Sha512 { .. } => HashKind::Sha512,
            PasswordHash::Pbkdf2Sha512 { .. } => HashKind::Pbkdf2Sha512,
            PasswordHash::Argon2id { .. } => HashKind::Argon2id,
        }
    }

    /// Does `password` hash to this? The comparison is constant-time, so how many leading
    /// bytes matched does not show in the timing.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Sha512 { salt, hash } => sha512_once(password, salt).ct_eq(hash).into(),
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => pbkdf2_sha512(password, salt, *iterations)
                .ct_eq(hash)
                .into(),
            PasswordHash::Argon2id {
                m_kib,
                t,
                p,
                salt,
                hash,
            } => match argon2id(password, salt, *m_kib, *t, *p, hash.len()) {
                Some(computed) => computed.ct_eq(hash).into(),
                // Parameters were validated by `parse`/`new`; failing here means the value
                // was built by hand with bad ones. Fail closed.
                None => false,
            },
        }
    }

    /// Hashes `password` with `salt`, which the caller draws from the OS (this crate does no
    /// I/O). `iterations` applies to [`HashKind::Pbkdf2Sha512`] only and defaults to
    /// [`DEFAULT_ITERATIONS`]; argon2id uses Mosquitto 2.1's parameters (m=47104, t=1, p=1,
    /// 64-byte hash).
    ///
    /// # Panics
    /// If the result would not be readable back by [`PasswordHash::parse`]: a `$6$`/`$7$` salt
    /// other than 12 or 64 bytes, an argon2id salt outside 8..=64 bytes, or iterations outside
    /// 1..=[`MAX_ITERATIONS`]. These are the caller's constants, not user input.
    pub fn new(
        kind: HashKind,
        password: &[u8],
        salt: &[u8],
        iterations: Option<u32>,
    ) -> PasswordHash {
        match kind {
            HashKind::Sha512 => {
                assert!(
                    sha_salt_len_ok(salt.len()),
                    "$6$ salt must be 12 or 64 bytes"
                );
                PasswordHash::Sha512 {
                    salt: salt.to_vec(),
                    hash: sha512_once(password, salt),
                }
            }
            HashKind::Pbkdf2Sha512 => {
                assert!(
                    sha_salt_len_ok(salt.len()),
                    "$7$ salt must be 12 or 64 bytes"
                );
                let iterations = iterations.unwrap_or(DEFAULT_ITERATIONS);
                assert!(
                    (1..=MAX_ITERATIONS).contains(&iterations),
                    "iterations must be 1..={MAX_ITERATIONS}"
                );
                PasswordHash::Pbkdf2Sha512 {
                    iterations,
                    salt: salt.to_vec(),
                    hash: pbkdf2_sha512(password, salt, iterations),
                }
            }
            HashKind::Argon2id => {
                assert!(
                    (ARGON2_MIN_SALT..=ARGON2_MAX_SALT).contains(&salt.len()),
                    "argon2id salt must be 8..=64 bytes"
                );
                let hash = argon2id(
                    password,
                    salt,
                    ARGON2_M_KIB,
                    ARGON2_T,
                    ARGON2_P,
                    ARGON2_HASH_LEN,
                )
                .expect("Mosquitto 2.1's argon2id parameters are valid");
                PasswordHash::Argon2id {
                    m_kib: ARGON2_M_KIB,
                    t: ARGON2_T,
                    p: ARGON2_P,
                    salt: salt.to_vec(),
                    hash,
                }
            }
        }
    }

    /// A hash with the same algorithm, cost parameters and salt/hash lengths as `self` but a
    /// fixed salt and an all-zero hash. Verifying against it costs exactly what verifying
    /// against `self` costs and always fails (finding a password whose hash is all zeros is a
    /// preimage attack). Used for unknown usernames, so the time a failed login takes does
    /// not tell whether the user exists.
    pub(crate) fn dummy_like(&self) -> PasswordHash {
        match self {
            PasswordHash::Sha512 { salt, .. } => PasswordHash::Sha512 {
                salt: vec![0x5a; salt.len()],
                hash: [0; SHA512_LEN],
            },
            PasswordHash::Pbkdf2Sha512 {
                iterations, salt, ..
            } => PasswordHash::Pbkdf2Sha512 {
                iterations: *iterations,
                salt: vec![0x5a; salt.len()],
                hash: [0; SHA512_LEN],
            },
            PasswordHash::Argon2id {
                m_kib,
                t,
                p,
                salt,
                hash,
            } => PasswordHash::Argon2id {
                m_kib: *m_kib,
                t: *t,
                p: *p,
                salt: vec![0x5a; salt.len()],
                hash: vec![0; hash.len()],
            },
        }
    }

    /// The cost profile that [`PasswordHash::dummy_like`] reproduces: two hashes with the same
    /// profile take the same time to verify.
    pub(crate) fn cost_profile(&self) -> (HashKind, u32, u32, u32, usize, usize) {
        match self {
            PasswordHash::Sha512 { salt, .. } => (HashKind::Sha512, 0, 0, 0, salt.len(), 64),
            PasswordHash::Pbkdf2Sha512 {
                iterations, salt, ..
            } => (HashKind::Pbkdf2Sha512, *iterations, 0, 0, salt.len(), 64),
            PasswordHash::Argon2id {
                m_kib,
                t,
                p,
                salt,
                hash,
            } => (HashKind::Argon2id, *m_kib, *t, *p, salt.len(), hash.len()),
        }
    }
}

fn sha_salt_len_ok(len: usize) -> bool {
    len == DEFAULT_SALT_LEN || len == LONG_SALT_LEN
}

fn sha512_once(password: &[u8], salt: &[u8]) -> [u8; 64] {
    let mut digest = Sha512::new();
    digest.update(password);
    digest.update(salt);
    digest.finalize().into()
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

fn argon2_params(m_kib: u32, t: u32, p: u32, out_len: usize) -> Option<argon2::Params> {
    argon2::Params::new(m_kib, t, p, Some(out_len)).ok()
}

fn argon2id(
    password: &[u8],
    salt: &[u8],
    m_kib: u32,
    t: u32,
    p: u32,
    out_len: usize,
) -> Option<Vec<u8>> {
    let params = argon2_params(m_kib, t, p, out_len)?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = vec![0u8; out_len];
    hasher.hash_password_into(password, salt, &mut out).ok()?;
    Some(out)
}

fn decode_sha_salt(prefix: &'static str, field: &str) -> Result<Vec<u8>, HashError> {
    let salt = STANDARD.decode(field).map_err(|_| HashError::Base64 {
        prefix,
        field: "salt",
    })?;
    if !sha_salt_len_ok(salt.len()) {
        return Err(HashError::SaltLength {
            prefix,
            len: salt.len(),
            expected: "12 or 64",
        });
    }
    Ok(salt)
}

fn decode_sha_hash(prefix: &'static str, field: &str) -> Result<[u8; 64], HashError> {
    let hash = STANDARD.decode(field).map_err(|_| HashError::Base64 {
        prefix,
        field: "hash",
    })?;
    let len = hash.len();
    hash.try_into().map_err(|_| HashError::HashLength {
        prefix,
        len,
        expected: "64",
    })
}

/// A canonical unsigned decimal: digits only, no sign, no leading zero, fits in u32.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn parse_argon2id(rest: &str) -> Result<PasswordHash, HashError> {
    const P: &str = "$argon2id$";
    let parts: Vec<&str> = rest.split('$').collect();
    let [version, params, salt, hash] = parts[..] else {
        return Err(HashError::Fields(P));
    };
    // Only v=19 (Argon2 1.3): it is what libargon2 and Mosquitto write; the older 1.0
    // (v=16, or no v= at all) is refused rather than supported for nobody.
    if version != "v=19" {
        return Err(HashError::Argon2Params(format!(
            "version must be v=19, not {version:?}"
        )));
    }
    let bad = |what: &str| HashError::Argon2Params(what.to_string());
    let mut fields = params.split(',');
    let mut field = |name: &str| -> Result<u32, HashError> {
        fields
            .next()
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix('='))
            .and_then(parse_decimal)
            .ok_or_else(|| bad("parameters must be m=<KiB>,t=<passes>,p=<lanes>"))
    };
    let (m_kib, t, p) = (field("m")?, field("t")?, field("p")?);
    if fields.next().is_some() {
        return Err(bad("parameters must be m=<KiB>,t=<passes>,p=<lanes>"));
    }
    if m_kib > ARGON2_MAX_M_KIB {
        return Err(HashError::Argon2Params(format!(
            "m={m_kib} is above the limit of {ARGON2_MAX_M_KIB} KiB (1 GiB)"
        )));
    }
    if !(1..=ARGON2_MAX_T).contains(&t) {
        return Err(HashError::Argon2Params(format!(
            "t={t} is outside 1..={ARGON2_MAX_T}"
        )));
    }
    if !(1..=ARGON2_MAX_P).contains(&p) {
        return Err(HashError::Argon2Params(format!(
            "p={p} is outside 1..={ARGON2_MAX_P}"
        )));
    }
    let salt = STANDARD_NO_PAD
        .decode(salt)
        .map_err(|_| HashError::Base64 {
            prefix: P,
            field: "salt",
        })?;
    if !(ARGON2_MIN_SALT..=ARGON2_MAX_SALT).contains(&salt.len()) {
        return Err(HashError::SaltLength {
            prefix: P,
            len: salt.len(),
            expected: "8 to 64",
        });
    }
    let hash = STANDARD_NO_PAD
        .decode(hash)
        .map_err(|_| HashError::Base64 {
            prefix: P,
            field: "hash",
        })?;
    if !(ARGON2_MIN_HASH..=ARGON2_MAX_HASH).contains(&hash.len()) {
        return Err(HashError::HashLength {
            prefix: P,
            len: hash.len(),
            expected: "16 to 64",
        });
    }
    // Argon2's own rule (m ≥ 8·p): checked now so that a bad line fails at load time,
    // not as a silent "wrong password" at every login.
    if argon2_params(m_kib, t, p, hash.len()).is_none() {
        return Err(HashError::Argon2Params(format!(
            "m={m_kib} is too small for p={p} (need m >= 8*p)"
        )));
    }
    Ok(PasswordHash::Argon2id {
        m_kib,
        t,
        p,
        salt,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors from the compatibility reference: written by Debian's mosquitto_passwd
    // 2.0.11, the Debian `argon2` CLI and Python's hashlib.
    const ALICE: &str = "$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";
    const BOB: &str = "$6$QO6n4MiGao+ua12u$MWQQXEgNW+sU/kybxta+Pet5iHXXT1pebC0EUt1ECkqSPFTXSuEorAwg3wtC1i6AzL3vlO9y+0FThYtFgOZqTw==";
    const CAROL: &str = "$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$zChWqdkqNxqzDB4vJxgZXXRqV3a0RfIqXvo3oPnAzRciW2G3M15dMXU//HNcV6PXlX7rSZruug1P1l5/YLY+yQ==";
    const ARGON: &str = "$argon2id$v=19$m=47104,t=1,p=1$U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTUw$9ves7Lbz0/dWZU2mhe0FhelUw6WLIh2LT4g/3t1p1Jt8w7VEhqz/FFgD2hg3tefpAWxvB832P6f59U7/20zRzQ";

    fn parsed(s: &str) -> PasswordHash {
        PasswordHash::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn pbkdf2_vector_12_byte_salt() {
        let h = parsed(ALICE);
        assert!(matches!(
            &h,
            PasswordHash::Pbkdf2Sha512 { iterations: 101, salt, .. } if salt.len() == 12
        ));
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cret "));
        assert!(!h.verify(b"S3cret"));
        assert!(!h.verify(b""));
    }

    #[test]
    fn sha512_vector() {
        let h = parsed(BOB);
        assert_eq!(h.kind(), HashKind::Sha512);
        assert!(h.verify(b"hunter2"));
        assert!(!h.verify(b"hunter3"));
    }

    #[test]
    fn pbkdf2_vector_64_byte_salt() {
        let h = parsed(CAROL);
        assert!(matches!(
            &h,
            PasswordHash::Pbkdf2Sha512 { iterations: 1000, salt, .. }
                if salt.as_slice() == (0u8..64).collect::<Vec<_>>()
        ));
        assert!(h.verify(b"pbkdfpw"));
        assert!(!h.verify(b"pbkdfpx"));
    }

    /// The only argon2 hash computation in the unit tests: 46 MiB per run is slow in debug.
    #[test]
    fn argon2id_vector() {
        let h = parsed(ARGON);
        assert!(matches!(
            &h,
            PasswordHash::Argon2id { m_kib: 47104, t: 1, p: 1, salt, hash }
                if salt.as_slice() == [b'S'; 64] && hash.len() == 64
        ));
        assert!(h.verify(b"argonpw"));
    }

    #[test]
    fn encode_is_the_exact_inverse_of_parse() {
        for s in [ALICE, BOB, CAROL, ARGON] {
            assert_eq!(parsed(s).encode(), s);
        }
    }

    #[test]
    fn new_hashes_verify_and_round_trip() {
        let salt12 = [7u8; 12];
        let salt64 = [9u8; 64];
        for (kind, salt) in [
            (HashKind::Sha512, &salt12[..]),
            (HashKind::Sha512, &salt64[..]),
            (HashKind::Pbkdf2Sha512, &salt12[..]),
            (HashKind::Pbkdf2Sha512, &salt64[..]),
        ] {
            let h = PasswordHash::new(kind, b"pw", salt, None);
            assert_eq!(h.kind(), kind);
            assert!(h.verify(b"pw"));
            assert!(!h.verify(b"px"));
            let text = h.encode();
            assert_eq!(parsed(&text).encode(), text);
        }
        let h = PasswordHash::new(HashKind::Pbkdf2Sha512, b"pw", &salt12, None);
        assert!(h.encode().starts_with("$7$1000$"));
        let h = PasswordHash::new(HashKind::Pbkdf2Sha512, b"pw", &salt12, Some(5));
        assert!(h.encode().starts_with("$7$5$"));
    }

    #[test]
    fn new_matches_mosquitto_passwd_output() {
        // Same salt and iterations as the alice vector → the same line mosquitto_passwd wrote.
        let PasswordHash::Pbkdf2Sha512 { salt, .. } = parsed(ALICE) else {
            unreachable!()
        };
        let h = PasswordHash::new(HashKind::Pbkdf2Sha512, b"s3cret", &salt, Some(101));
        assert_eq!(h.encode(), ALICE);
        let PasswordHash::Sha512 { salt, .. } = parsed(BOB) else {
            unreachable!()
        };
        assert_eq!(
            PasswordHash::new(HashKind::Sha512, b"hunter2", &salt, None).encode(),
            BOB
        );
    }

    #[test]
    fn argon2id_new_encodes_mosquitto_parameters() {
        // Checks the text layout without paying for a 46 MiB hash: build the value by hand.
        let h = PasswordHash::Argon2id {
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt: vec![b'S'; 64],
            hash: vec![0; 64],
        };
        let text = h.encode();
        assert!(text.starts_with("$argon2id$v=19$m=47104,t=1,p=1$U1NTU1NT"));
        // libargon2's encoding has no base64 padding.
        assert!(!text.ends_with('='));
        assert_eq!(parsed(&text).encode(), text);
    }

    #[test]
    fn dummy_keeps_cost_and_never_verifies() {
        for s in [ALICE, BOB, CAROL] {
            let h = parsed(s);
            let d = h.dummy_like();
            assert_eq!(d.cost_profile(), h.cost_profile());
            assert!(!d.verify(b""));
            assert!(!d.verify(b"s3cret"));
            // And it is itself a well-formed hash.
            assert_eq!(parsed(&d.encode()).cost_profile(), h.cost_profile());
        }
        let a = parsed(ARGON).dummy_like();
        assert_eq!(a.cost_profile(), parsed(ARGON).cost_profile());
    }

    #[test]
    fn debug_shows_no_salt_or_hash() {
        for s in [ALICE, BOB, CAROL, ARGON] {
            let h = parsed(s);
            let dbg = format!("{h:?}");
            let (PasswordHash::Pbkdf2Sha512 { salt, .. }
            | PasswordHash::Sha512 { salt, .. }
            | PasswordHash::Argon2id { salt, .. }) = &h;
            assert!(!dbg.contains(&STANDARD.encode(salt)[..8]), "{dbg}");
            assert!(!dbg.contains("hash:"), "{dbg}");
        }
        assert_eq!(
            format!("{:?}", parsed(ALICE)),
            "Pbkdf2Sha512 { iterations: 101, .. }"
        );
        assert_eq!(format!("{:?}", parsed(BOB)), "Sha512 { .. }");
        assert_eq!(
            format!("{:?}", parsed(ARGON)),
            "Argon2id { m_kib: 47104, t: 1, p: 1, .. }"
        );
    }

    #[test]
    fn malformed_hashes_are_refused() {
        let salt12 = "fmqt2++sRIF8iKr1";
        let hash64 = "fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";
        let h63 = STANDARD.encode([1u8; 63]);
        let h65 = STANDARD.encode([1u8; 65]);
        let s11 = STANDARD.encode([1u8; 11]);
        let s13 = STANDARD.encode([1u8; 13]);
        let s32 = STANDARD.encode([1u8; 32]);
        let nopad = hash64.trim_end_matches('=');
        let a_salt = STANDARD_NO_PAD.encode([b'S'; 64]);
        let a_hash = STANDARD_NO_PAD.encode([1u8; 64]);
        let cases: Vec<(String, HashError)> = vec![
            // Plaintext, empty, unknown prefixes.
            ("s3cret".into(), HashError::UnknownFormat),
            ("".into(), HashError::UnknownFormat),
            ("$".into(), HashError::UnknownFormat),
            (format!("$5${salt12}${hash64}"), HashError::UnknownFormat),
            (format!("$8${salt12}${hash64}"), HashError::UnknownFormat),
            (
                format!("$argon2i$v=19$m=8,t=1,p=1${a_salt}${a_hash}"),
                HashError::UnknownFormat,
            ),
            (
                format!(" $7$101${salt12}${hash64}"),
                HashError::UnknownFormat,
            ),
            // Missing / extra parts.
            ("$6$".into(), HashError::Fields("$6$")),
            (format!("$6${salt12}"), HashError::Fields("$6$")),
            (format!("$6${salt12}${hash64}$"), HashError::Fields("$6$")),
            ("$7$".into(), HashError::Fields("$7$")),
            (format!("$7${salt12}${hash64}"), HashError::Fields("$7$")),
            (format!("$7$101${salt12}"), HashError::Fields("$7$")),
            (
                format!("$7$101${salt12}${hash64}$x"),
                HashError::Fields("$7$"),
            ),
            ("$argon2id$".into(), HashError::Fields("$argon2id$")),
            (
                format!("$argon2id$m=8,t=1,p=1${a_salt}${a_hash}"),
                HashError::Fields("$argon2id$"),
            ),
            // Iterations.
            (format!("$7$0${salt12}${hash64}"), HashError::Iterations),
            (format!("$7$${salt12}${hash64}"), HashError::Iterations),
            (format!("$7$-1${salt12}${hash64}"), HashError::Iterations),
            (format!("$7$+5${salt12}${hash64}"), HashError::Iterations),
            (format!("$7$0101${salt12}${hash64}"), HashError::Iterations),
            (format!("$7$1e3${salt12}${hash64}"), HashError::Iterations),
            (
                format!("$7$10000001${salt12}${hash64}"),
                HashError::Iterations,
            ),
            (
                format!("$7$99999999999${salt12}${hash64}"),
                HashError::Iterations,
            ),
            // Bad base64: wrong alphabet, missing padding, junk, whitespace.
            (
                format!("$7$101$fmqt2++sRIF8iKr!${hash64}"),
                HashError::Base64 {
                    prefix: "$7$",
                    field: "salt",
                },
            ),
            (
                format!("$7$101${salt12}${nopad}"),
                HashError::Base64 {
                    prefix: "$7$",
                    field: "hash",
                },
            ),
            (
                format!("$6${salt12}${hash64} "),
                HashError::Base64 {
                    prefix: "$6$",
                    field: "hash",
                },
            ),
            (
                format!("$6$fmqt2--sRIF8iKr1${hash64}"),
                HashError::Base64 {
                    prefix: "$6$",
                    field: "salt",
                },
            ),
            // Wrong lengths.
            (
                format!("$7$101${s11}${hash64}"),
                HashError::SaltLength {
                    prefix: "$7$",
                    len: 11,
                    expected: "12 or 64",
                },
            ),
            (
                format!("$7$101${s13}${hash64}"),
                HashError::SaltLength {
                    prefix: "$7$",
                    len: 13,
                    expected: "12 or 64",
                },
            ),
            (
                format!("$6${s32}${hash64}"),
                HashError::SaltLength {
                    prefix: "$6$",
                    len: 32,
                    expected: "12 or 64",
                },
            ),
            (
                format!("$7$101$${hash64}"),
                HashError::SaltLength {
                    prefix: "$7$",
                    len: 0,
                    expected: "12 or 64",
                },
            ),
            (
                format!("$7$101${salt12}${h63}"),
                HashError::HashLength {
                    prefix: "$7$",
                    len: 63,
                    expected: "64",
                },
            ),
            (
                format!("$6${salt12}${h65}"),
                HashError::HashLength {
                    prefix: "$6$",
                    len: 65,
                    expected: "64",
                },
            ),
            (
                format!("$6${salt12}$"),
                HashError::HashLength {
                    prefix: "$6$",
                    len: 0,
                    expected: "64",
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(PasswordHash::parse(&input).err(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn malformed_argon2id_is_refused() {
        let salt = STANDARD_NO_PAD.encode([b'S'; 64]);
        let hash = STANDARD_NO_PAD.encode([1u8; 64]);
        let ok = |params: &str| format!("$argon2id$v=19${params}${salt}${hash}");
        assert!(PasswordHash::parse(&ok("m=47104,t=1,p=1")).is_ok());
        assert!(PasswordHash::parse(&ok("m=1048576,t=100,p=16")).is_ok());
        for params in [
            "m=1048577,t=1,p=1",
            "m=47104,t=0,p=1",
            "m=47104,t=101,p=1",
            "m=47104,t=1,p=0",
            "m=47104,t=1,p=17",
            "m=7,t=1,p=1",
            "m=64,t=1,p=9",
            "t=1,m=47104,p=1",
            "m=47104,t=1",
            "m=47104,t=1,p=1,x=2",
            "m=047104,t=1,p=1",
            "m=,t=1,p=1",
            "m=4294967296,t=1,p=1",
            "m47104,t=1,p=1",
        ] {
            assert!(
                matches!(
                    PasswordHash::parse(&ok(params)),
                    Err(HashError::Argon2Params(_))
                ),
                "{params}"
            );
        }
        for version in ["v=16", "v=", "v=019"] {
            let s = format!("$argon2id${version}$m=47104,t=1,p=1${salt}${hash}");
            assert!(
                matches!(PasswordHash::parse(&s), Err(HashError::Argon2Params(_))),
                "{s}"
            );
        }
        let padded = STANDARD.encode([1u8; 64]);
        let short = STANDARD_NO_PAD.encode([1u8; 15]);
        let short_salt = STANDARD_NO_PAD.encode([1u8; 7]);
        let long_salt = STANDARD_NO_PAD.encode([1u8; 65]);
        let base = "$argon2id$v=19$m=47104,t=1,p=1";
        for (s, want) in [
            (
                format!("{base}${salt}${padded}"),
                HashError::Base64 {
                    prefix: "$argon2id$",
                    field: "hash",
                },
            ),
            (
                format!("{base}${salt}${short}"),
                HashError::HashLength {
                    prefix: "$argon2id$",
                    len: 15,
                    expected: "16 to 64",
                },
            ),
            (
                format!("{base}${short_salt}${hash}"),
                HashError::SaltLength {
                    prefix: "$argon2id$",
                    len: 7,
                    expected: "8 to 64",
                },
            ),
            (
                format!("{base}${long_salt}${hash}"),
                HashError::SaltLength {
                    prefix: "$argon2id$",
                    len: 65,
                    expected: "8 to 64",
                },
            ),
        ] {
            assert_eq!(PasswordHash::parse(&s).err(), Some(want), "{s}");
        }
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            PasswordHash::parse("plain").unwrap_err().to_string(),
            "unknown hash format (expected $6$, $7$ or $argon2id$; plaintext is not accepted)"
        );
        assert_eq!(
            PasswordHash::parse("$7$0$a$b").unwrap_err().to_string(),
            "$7$: iteration count must be a number from 1 to 10000000"
        );
        assert_eq!(
            PasswordHash::parse("$6$$").unwrap_err().to_string(),
            "$6$: salt is 0 bytes (expected 12 or 64)"
        );
    }

    #[test]
    fn hash_kind_names() {
        for kind in [HashKind::Sha512, HashKind::Pbkdf2Sha512, HashKind::Argon2id] {
            assert_eq!(HashKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(HashKind::from_name("md5"), None);
    }

    #[test]
    #[should_panic(expected = "salt must be 12 or 64 bytes")]
    fn new_refuses_a_salt_mosquitto_cannot_read() {
        PasswordHash::new(HashKind::Pbkdf2Sha512, b"pw", &[0; 16], None);
    }
}
