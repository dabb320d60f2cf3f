//! Mosquitto's `password_file`: one `username:hash` per line.

use std::collections::HashMap;
use std::fmt;

use super::hash::{HashKind, PasswordHash, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN, SHA512_LEN};

/// Longest username accepted: MQTT strings are at most 65535 bytes, so a longer one could
/// never log in (Mosquitto applies the same limit).
pub const MAX_USERNAME_LEN: usize = 65535;

/// A password file that parsed without a single bad line.
///
/// Line rules (Mosquitto's, `security_default.c` / 2.1's `password_parse.c`):
/// - a line starting with `#` is a comment; blank lines are skipped;
/// - a line without `:` is skipped, as Mosquitto does;
/// - otherwise the username is everything before the first `:` and the hash everything after
///   it, both with surrounding whitespace removed (Mosquitto trims both, so ` alice :…` is the
///   user `alice` there and must be here too); a trailing `\r` is ignored.
///
/// **Fail closed.** An empty username, a username with control characters or longer than
/// 65535 bytes, a username that appears twice, or a hash that does not parse (plaintext
/// included) makes [`PasswordFile::parse`] refuse the *whole* file with `file:line: reason`.
/// Mosquitto 2.0 instead logs and drops just that line, which quietly changes who may log
/// in; Midge would rather not start (or, on reload, keep the previous file).
#[derive(Clone)]
pub struct PasswordFile {
    /// Entries in file order (kept for `Debug`).
    entries: Vec<(String, PasswordHash)>,
    /// Username → index into `entries`.
    index: HashMap<String, usize>,
    /// What unknown usernames are verified against; see [`PasswordFile::verify`].
    dummy: PasswordHash,
}

/// Why a password file was refused: displays as `file:line: reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PasswordFileError {
    /// The file name given to [`PasswordFile::parse`].
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub reason: String,
}

impl PasswordFile {
    /// Parses the text of a password file. `file_name` is only used in error messages.
    pub fn parse(text: &str, file_name: &str) -> Result<PasswordFile, PasswordFileError> {
        let mut entries: Vec<(String, PasswordHash)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        // First line of each username, for the duplicate message.
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let err = |reason: String| PasswordFileError {
                file: file_name.to_string(),
                line: number,
                reason,
            };
            // ASCII blanks only, as Mosquitto's `isspace` trimming in the C locale; the CLI
            // (`midge passwd`) uses the same rule to find a user's line.
            let line = line.trim_ascii_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((username, hash)) = line.split_once(':') else {
                continue;
            };
            let username = username.trim_ascii();
            let hash = hash.trim_ascii();
            check_username(username).map_err(&err)?;
            if let Some(first) = first_line.get(username) {
                return Err(err(format!(
                    "user '{}' appears twice (first on line {first})",
                    username.escape_debug()
                )));
            }
            let hash = PasswordHash::parse(hash).map_err(|e| {
                err(format!(
                    "user '{}': invalid password hash: {e}",
                    username.escape_debug()
                ))
            })?;
            first_line.insert(username.to_string(), number);
            index.insert(username.to_string(), entries.len());
            entries.push((username.to_string(), hash));
        }
        let dummy = dummy_for(&entries);
        Ok(PasswordFile {
            entries,
            index,
            dummy,
        })
    }

    /// Checks a CONNECT's username and password. An unknown username is verified against a
    /// dummy hash with the cost of the file's most common kind of entry before `false` is
    /// returned, so a failed login takes as long for a missing user as for a wrong password
    /// and the timing does not reveal which usernames exist (Mosquitto returns at once).
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        match self.index.get(username) {
            Some(&i) => self.entries[i].1.verify(password),
            None => {
                #[cfg(test)]
                tests::DUMMY_VERIFIES.with(|n| n.set(n.get() + 1));
                // black_box: the result is thrown away, and the work must not be.
                std::hint::black_box(self.dummy.verify(std::hint::black_box(password)));
                false
            }
        }
    }

    /// Is `username` in the file?
    pub fn contains(&self, username: &str) -> bool {
        self.index.contains_key(username)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No users at all (every login fails).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hash stored for `username`.
    pub fn get(&self, username: &str) -> Option<&PasswordHash> {
        self.index.get(username).map(|&i| &self.entries[i].1)
    }

    /// Usernames in file order.
    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(u, _)| u.as_str())
    }
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Usernames and kinds only: salts and hashes would allow an offline attack.
        struct Users<'a>(&'a [(String, PasswordHash)]);
        impl fmt::Debug for Users<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(u, h)| (u, h.kind())))
                    .finish()
            }
        }
        f.debug_struct("PasswordFile")
            .field("users", &Users(&self.entries))
            .finish_non_exhaustive()
    }
}

fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("empty username".to_string());
    }
    if username.len() > MAX_USERNAME_LEN {
        return Err(format!(
            "username is {} bytes long (at most {MAX_USERNAME_LEN})",
            username.len()
        ));
    }
    if username.chars().any(char::is_control) {
        return Err(format!(
            "username '{}' contains a control character",
            username.escape_debug()
        ));
    }
    Ok(())
}

/// The dummy for unknown users: same cost as the most common (kind, parameters) in the file,
/// so that guessing usernames against a uniform file is timing-blind. Built with a fixed salt
/// and a zero hash (see [`PasswordHash::dummy_like`]), so parsing costs no hashing.
fn dummy_for(entries: &[(String, PasswordHash)]) -> PasswordHash {
    let mut counts: HashMap<_, (usize, usize)> = HashMap::new();
    for (i, (_, hash)) in entries.iter().enumerate() {
        counts.entry(hash.cost_profile()).or_insert((0, i)).0 += 1;
    }
    // Most common profile; ties go to the one seen first, so the choice is deterministic.
    let best = counts
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|&(_, i)| i);
    match best {
        Some(i) => entries[i].1.dummy_like(),
        // No users: every login fails anyway; use what `midge passwd` writes by default.
        None => PasswordHash::Pbkdf2Sha512 {
            iterations: DEFAULT_ITERATIONS,
            salt: vec![0x5a; DEFAULT_SALT_LEN],
            hash: [0; SHA512_LEN],
        },
    }
}

impl PasswordFile {
    /// The kind of the dummy hash (for tests and diagnostics).
    pub fn dummy_kind(&self) -> HashKind {
        self.dummy.kind()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Dummy verifications done on this thread (tests run on their own threads).
        pub(crate) static DUMMY_VERIFIES: Cell<usize> = const { Cell::new(0) };
    }

    fn dummy_verifies() -> usize {
        DUMMY_VERIFIES.with(Cell::get)
    }

    const ALICE: &str = "$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";
    const BOB: &str = "$6$QO6n4MiGao+ua12u$MWQQXEgNW+sU/kybxta+Pet5iHXXT1pebC0EUt1ECkqSPFTXSuEorAwg3wtC1i6AzL3vlO9y+0FThYtFgOZqTw==";
    const CAROL: &str = "$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$zChWqdkqNxqzDB4vJxgZXXRqV3a0RfIqXvo3oPnAzRciW2G3M15dMXU//HNcV6PXlX7rSZruug1P1l5/YLY+yQ==";

    fn file(text: &str) -> PasswordFile {
        PasswordFile::parse(text, "passwd").unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str) -> String {
        PasswordFile::parse(text, "passwd").unwrap_err().to_string()
    }

    #[test]
    fn mixed_file_verifies_each_user() {
        let text = format!("alice:{ALICE}\nbob:{BOB}\ncarol:{CAROL}\n");
        let f = file(&text);
        assert_eq!(f.len(), 3);
        assert!(!f.is_empty());
        assert!(f.verify("alice", b"s3cret"));
        assert!(f.verify("bob", b"hunter2"));
        assert!(f.verify("carol", b"pbkdfpw"));
        assert!(!f.verify("alice", b"hunter2"));
        assert!(!f.verify("bob", b"s3cret"));
        assert!(!f.verify("carol", b""));
        assert!(f.contains("bob") && !f.contains("dave") && !f.contains("Bob"));
        assert_eq!(f.usernames().collect::<Vec<_>>(), ["alice", "bob", "carol"]);
        assert_eq!(f.get("bob").map(PasswordHash::kind), Some(HashKind::Sha512));
    }

    #[test]
    fn comments_blank_lines_and_lines_without_colon_are_skipped() {
        let text = format!(
            "# users\n\n   \nalice:{ALICE}\r\nnot a user line\n#bob:{BOB}\nbob:{BOB}   \n\t\n"
        );
        let f = file(&text);
        assert_eq!(f.usernames().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(f.verify("alice", b"s3cret"));
        assert!(f.verify("bob", b"hunter2"));
        assert!(!f.contains("#bob"));
    }

    #[test]
    fn whitespace_around_username_and_hash_is_trimmed_like_mosquitto() {
        let f = file(&format!(" alice\t: {ALICE} \n"));
        assert!(f.contains("alice"));
        assert!(!f.contains(" alice"));
        assert!(f.verify("alice", b"s3cret"));
    }

    #[test]
    fn username_is_everything_before_the_first_colon() {
        // The hash part then contains a ':' and cannot parse: refused, not split again.
        assert_eq!(
            error(&format!("a:b:{ALICE}\n")),
            "passwd:1: user 'a': invalid password hash: unknown hash format \
             (expected $6$, $7$ or $argon2id$; plaintext is not accepted)"
        );
    }

    #[test]
    fn empty_file_is_valid_and_denies_everyone() {
        for text in ["", "\n", "# nobody\n"] {
            let f = file(text);
            assert!(f.is_empty());
            assert!(!f.verify("alice", b"s3cret"));
            assert_eq!(f.dummy_kind(), HashKind::Pbkdf2Sha512);
        }
    }

    #[test]
    fn bad_lines_give_file_and_line() {
        let long = "u".repeat(65536);
        let cases: Vec<(String, &str)> = vec![
            (format!(":{ALICE}\n"), "passwd:1: empty username"),
            (format!("# c\n  :{ALICE}\n"), "passwd:2: empty username"),
            (
                format!("alice:{ALICE}\nbob:s3cret\n"),
                "passwd:2: user 'bob': invalid password hash: unknown hash format \
                 (expected $6$, $7$ or $argon2id$; plaintext is not accepted)",
            ),
            (
                "\n\nbob:\n".to_string(),
                "passwd:3: user 'bob': invalid password hash: unknown hash format \
                 (expected $6$, $7$ or $argon2id$; plaintext is not accepted)",
            ),
            (
                "bob:$7$0$fmqt2++sRIF8iKr1$x\n".to_string(),
                "passwd:1: user 'bob': invalid password hash: $7$: iteration count must be \
                 a number from 1 to 10000000",
            ),
            (
                "bob:$6$fmqt2++sRIF8iKr1$abc\n".to_string(),
                "passwd:1: user 'bob': invalid password hash: $6$: hash is not valid base64",
            ),
            (
                format!("alice:{ALICE}\n\nalice:{BOB}\n"),
                "passwd:3: user 'alice' appears twice (first on line 1)",
            ),
            (
                format!("alice:{ALICE}\n alice :{BOB}\n"),
                "passwd:2: user 'alice' appears twice (first on line 1)",
            ),
            (
                format!("al\u{1}ice:{ALICE}\n"),
                "passwd:1: username 'al\\u{1}ice' contains a control character",
            ),
            (
                format!("al\u{7f}ice:{ALICE}\n"),
                "passwd:1: username 'al\\u{7f}ice' contains a control character",
            ),
            (
                format!("a\tb:{ALICE}\n"),
                "passwd:1: username 'a\\tb' contains a control character",
            ),
            (
                format!("{long}:{ALICE}\n"),
                "passwd:1: username is 65536 bytes long (at most 65535)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error(&text), want, "{text:?}");
        }
        // A 65535-byte username is fine.
        assert!(file(&format!("{}:{ALICE}\n", "u".repeat(65535))).contains(&"u".repeat(65535)));
    }

    #[test]
    fn the_file_name_is_the_one_given() {
        let e = PasswordFile::parse("bob:x\n", "/etc/mosquitto/passwd").unwrap_err();
        assert_eq!(e.file, "/etc/mosquitto/passwd");
        assert_eq!(e.line, 1);
        assert!(e
            .to_string()
            .starts_with("/etc/mosquitto/passwd:1: user 'bob': "));
    }

    #[test]
    fn unknown_users_pay_for_a_dummy_verification() {
        let f = file(&format!("alice:{ALICE}\n"));
        let before = dummy_verifies();
        assert!(!f.verify("mallory", b"s3cret"));
        assert!(!f.verify("", b""));
        assert_eq!(dummy_verifies(), before + 2);
        // Known users do not touch the dummy, whether the password is right or wrong.
        assert!(f.verify("alice", b"s3cret"));
        assert!(!f.verify("alice", b"wrong"));
        assert_eq!(dummy_verifies(), before + 2);
    }

    #[test]
    fn the_dummy_has_the_cost_of_the_most_common_entry() {
        let mut text = format!("bob:{BOB}\n");
        for i in 0..3 {
            text.push_str(&format!("a{i}:{ALICE}\n"));
        }
        text.push_str(&format!("carol:{CAROL}\n"));
        let f = file(&text);
        assert_eq!(f.dummy.cost_profile(), f.get("a0").unwrap().cost_profile());
        // Tie: the profile seen first wins.
        let f = file(&format!("bob:{BOB}\ncarol:{CAROL}\n"));
        assert_eq!(f.dummy_kind(), HashKind::Sha512);
        let f = file(&format!("carol:{CAROL}\nbob:{BOB}\n"));
        assert_eq!(
            f.dummy.cost_profile(),
            f.get("carol").unwrap().cost_profile()
        );
        // The dummy never verifies, whatever the password.
        for pw in [&b""[..], b"pbkdfpw", b"hunter2", b"s3cret"] {
            assert!(!f.dummy.verify(pw));
        }
    }

    #[test]
    fn debug_shows_usernames_and_kinds_only() {
        let f = file(&format!("alice:{ALICE}\nbob:{BOB}\n"));
        let dbg = format!("{f:?}");
        assert_eq!(
            dbg,
            "PasswordFile { users: {\"alice\": Pbkdf2Sha512, \"bob\": Sha512}, .. }"
        );
        assert!(!dbg.contains("fmqt2"));
    }
}
