//! `midge passwd`: manage a password file, command-line compatible with Debian's
//! `mosquitto_passwd` 2.0 (same options, same messages, same exit codes), plus 2.1's
//! `-H argon2id`.
//!
//! ```text
//! midge passwd [-H sha512-pbkdf2|sha512|argon2id] [-I iterations] [-c | -D] passwordfile username
//! midge passwd [-H ..] [-I iterations] [-c] -b passwordfile username password
//! midge passwd -U passwordfile
//! ```
//!
//! Where Midge deliberately differs from `mosquitto_passwd` 2.0.11 (each one a bug or trap there):
//! - Every write goes to a temporary file in the same directory, is fsynced, then renamed over
//!   the original, so a crash leaves the old file or the new one, never half of each.
//!   2.0.11 rewrites the file in place.
//! - Created files get mode 0600 (2.0.11 leaves them to the umask, usually world-readable);
//!   a replaced file keeps its mode and (where permitted) its owner.
//! - Comment lines, blank lines and lines without `:` are kept as they are. 2.0.11 calls them
//!   "corrupt", and when updating a user it then silently drops the rest of the file.
//! - `-U` leaves lines that already hold a valid hash alone (with a warning). 2.0.11 hashes
//!   the hash, which locks the user out when `-U` is run twice.
//! - `-U` hashes everything after the first `:` (trimmed of surrounding blanks, as 2.0.11
//!   does); 2.0.11 cuts a plaintext password at a second `:`.
//! - `-U` honours `-I` (2.0.11 ignores it there).
//! - Empty usernames and usernames with leading or trailing blanks are refused: the broker
//!   trims blanks, so such a user could never log in.
//! - A username listed twice is written once (the broker refuses duplicates).
//! - The default is `$7$` with a 12-byte salt and 1000 iterations: readable by Mosquitto 2.0
//!   (which only reads 12-byte salts) and 2.1; 2.0 itself writes 101 iterations.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use midge_core::password::{
    HashKind, PasswordFile, PasswordHash, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN, LONG_SALT_LEN,
    MAX_ITERATIONS, MAX_USERNAME_LEN,
};

use crate::prompt::{get_password, PromptError};

/// Longest password accepted, as in `mosquitto_passwd` (an MQTT binary field is at most 65535
/// bytes, so a longer one could never be sent).
const MAX_PASSWORD_LEN: usize = 65535;

/// The process has failed with this exit code; the message has already been printed.
#[derive(Debug)]
struct Failure(u8);

type Result<T> = std::result::Result<T, Failure>;

/// Prints `message` on stderr and returns exit code 1, like every error of `mosquitto_passwd`.
fn fail(message: impl std::fmt::Display) -> Failure {
    eprintln!("{message}");
    Failure(1)
}

/// Entry point: `args` are the arguments after `passwd`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code)) => ExitCode::from(code),
    }
}

fn print_usage() {
    // stdout, like mosquitto_passwd.
    print!(
        "midge passwd is a tool for managing password files for Midge and Mosquitto.

Usage: midge passwd [-H sha512-pbkdf2 | -H sha512 | -H argon2id] [-I iterations] [-c | -D] passwordfile username
       midge passwd [-H sha512-pbkdf2 | -H sha512 | -H argon2id] [-I iterations] [-c] -b passwordfile username password
       midge passwd -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended:
      Mosquitto 2.0 and 2.1 read it. sha512 is for Mosquitto 1.6 and earlier;
      argon2id is read by Mosquitto 2.1 only.
 -I : number of sha512-pbkdf2 iterations (default {DEFAULT_ITERATIONS}).
 -U : update a plain text password file to use hashed passwords.

"
    );
}

/// What the command line asks for.
enum Action<'a> {
    /// `-c`: write a new file holding just this user.
    Create {
        username: &'a str,
        password: Option<&'a OsStr>,
    },
    /// `-D`: remove the user.
    Delete { username: &'a str },
    /// `-U`: hash every plaintext password.
    HashPlaintext,
    /// Add the user or change their password.
    Set {
        username: &'a str,
        password: Option<&'a OsStr>,
    },
}

fn run(args: &[OsString]) -> Result<()> {
    if args.is_empty() {
        print_usage();
        return Err(Failure(1));
    }
    // Options come first, in any order; the first argument that is not one of them starts
    // the positional arguments (mosquitto_passwd's loop, so `-x` is a file name).
    let mut kind = HashKind::Pbkdf2Sha512;
    let mut iterations = DEFAULT_ITERATIONS;
    let (mut batch, mut create, mut delete, mut hash_plaintext) = (false, false, false, false);
    let mut idx = 0;
    while idx < args.len() {
        match args[idx].to_str() {
            Some("-H") => {
                let Some(name) = args.get(idx + 1) else {
                    return Err(fail(
                        "Error: -H argument given but not enough other arguments.",
                    ));
                };
                kind = name.to_str().and_then(HashKind::from_name).ok_or_else(|| {
                    fail(format!(
                        "Error: Unknown hash type '{}'",
                        name.to_string_lossy()
                    ))
                })?;
                idx += 1;
            }
            Some("-b") => batch = true,
            Some("-c") => create = true,
            Some("-D") => delete = true,
            Some("-I") => {
                let Some(n) = args.get(idx + 1) else {
                    return Err(fail(
                        "Error: -I argument given but not enough other arguments.",
                    ));
                };
                iterations = match n.to_str().and_then(|n| n.parse::<u32>().ok()) {
                    Some(0) | None => return Err(fail("Error: Number of iterations must be > 0.")),
                    // The broker refuses more (a per-login CPU cap); do not write what it
                    // would refuse to load.
                    Some(n) if n > MAX_ITERATIONS => {
                        return Err(fail(format!(
                            "Error: Number of iterations must be at most {MAX_ITERATIONS}."
                        )))
                    }
                    Some(n) => n,
                };
                idx += 1;
            }
            Some("-U") => hash_plaintext = true,
            _ => break,
        }
        idx += 1;
    }

    if create && delete {
        return Err(fail("Error: -c and -D cannot be used together."));
    }
    if create && hash_plaintext {
        return Err(fail("Error: -c and -U cannot be used together."));
    }
    if delete && hash_plaintext {
        return Err(fail("Error: -D and -U cannot be used together."));
    }
    if delete && batch {
        return Err(fail("Error: -b and -D cannot be used together."));
    }

    let rest = &args[idx..];
    // Argument counts exactly as mosquitto_passwd checks them (with -c, extra arguments
    // are ignored there too).
    let (file, username, password) = if create {
        if batch {
            if rest.len() < 3 {
                return Err(fail(
                    "Error: -c argument given but password file, username, or password missing.",
                ));
            }
            (&rest[0], Some(&rest[1]), Some(rest[2].as_os_str()))
        } else {
            if rest.len() < 2 {
                return Err(fail(
                    "Error: -c argument given but password file or username missing.",
                ));
            }
            (&rest[0], Some(&rest[1]), None)
        }
    } else if delete {
        if rest.len() < 2 {
            return Err(fail(
                "Error: -D argument given but password file or username missing.",
            ));
        }
        (&rest[0], Some(&rest[1]), None)
    } else if hash_plaintext {
        if rest.len() != 1 {
            return Err(fail("Error: -U argument given but password file missing."));
        }
        (&rest[0], None, None)
    } else if batch && rest.len() == 3 {
        (&rest[0], Some(&rest[1]), Some(rest[2].as_os_str()))
    } else if !batch && rest.len() == 2 {
        (&rest[0], Some(&rest[1]), None)
    } else {
        print_usage();
        return Err(Failure(1));
    };

    let username = username.map(|u| check_username(u)).transpose()?;
    if password.is_some_and(|p| p.len() > MAX_PASSWORD_LEN) {
        return Err(fail(
            "Error: Password must be less than 65536 characters long.",
        ));
    }
    let path = resolve(Path::new(file))?;
    let hasher = Hasher { kind, iterations };
    let action = match (create, delete, hash_plaintext, username) {
        (true, _, _, Some(username)) => Action::Create { username, password },
        (_, true, _, Some(username)) => Action::Delete { username },
        (_, _, true, _) => Action::HashPlaintext,
        (_, _, _, Some(username)) => Action::Set { username, password },
        (_, _, _, None) => unreachable!("every action but -U has a username"),
    };
    match action {
        Action::Create { username, password } => {
            let password = match password {
                Some(p) => p.as_bytes().to_vec(),
                None => prompt_twice()?,
            };
            let mut contents = hasher.line(username.as_bytes(), &password)?;
            contents.push(b'\n');
            // Overwriting keeps an existing file's mode and owner, as mosquitto_passwd's
            // in-place truncation does.
            let existing = fs::metadata(&path).ok();
            replace_file(&path, &contents, existing.as_ref()).map_err(|e| {
                fail(format!(
                    "Error: Unable to open file {} for writing. {}.",
                    path.display(),
                    describe(&e)
                ))
            })
        }
        Action::Delete { username } => {
            let (old, meta) = read_existing(&path)?;
            let mut found = false;
            let lines: Vec<&[u8]> = split_lines(&old)
                .filter(|line| {
                    let matches = line_user(line) == Some(username.as_bytes());
                    found |= matches;
                    !matches
                })
                .collect();
            if !found {
                return Err(fail(format!(
                    "Warning: User {username} not found in password file."
                )));
            }
            write_back(&path, &lines, &meta)
        }
        Action::Set { username, password } => {
            let (old, meta) = read_existing(&path)?;
            // Prompted only once the file is known to be there, as mosquitto_passwd does.
            let password = match password {
                Some(p) => p.as_bytes().to_vec(),
                None => prompt_twice()?,
            };
            let new_line = hasher.line(username.as_bytes(), &password)?;
            let mut lines: Vec<&[u8]> = Vec::new();
            let mut found = false;
            for line in split_lines(&old) {
                if line_user(line) == Some(username.as_bytes()) {
                    // The first entry is replaced in place; any later duplicate is dropped,
                    // because the broker refuses a file that names a user twice.
                    if !found {
                        lines.push(&new_line);
                        found = true;
                    }
                } else {
                    lines.push(line);
                }
            }
            if !found {
                lines.push(&new_line);
            }
            write_back(&path, &lines, &meta)
        }
        Action::HashPlaintext => {
            let (old, meta) = read_existing(&path)?;
            let mut new_lines: Vec<Vec<u8>> = Vec::new();
            let mut seen: Vec<&[u8]> = Vec::new();
            for (number, line) in split_lines(&old).enumerate() {
                let Some((username, password)) = split_entry(line) else {
                    new_lines.push(line.to_vec());
                    continue;
                };
                let corrupt = || {
                    fail(format!(
                        "Error: Corrupt password file at line {}.",
                        number + 1
                    ))
                };
                if username.is_empty() || password.is_empty() {
                    return Err(corrupt());
                }
                let Ok(name) = std::str::from_utf8(username) else {
                    return Err(corrupt());
                };
                if name.chars().any(char::is_control) || name.len() > MAX_USERNAME_LEN {
                    return Err(corrupt());
                }
                if seen.contains(&username) {
                    return Err(fail(format!(
                        "Error: Duplicate user {name} in password file at line {}.",
                        number + 1
                    )));
                }
                seen.push(username);
                let already_hashed =
                    std::str::from_utf8(password).is_ok_and(|p| PasswordHash::parse(p).is_ok());
                if already_hashed {
                    eprintln!(
                        "Warning: User {name} already has a hashed password, left unchanged."
                    );
                    new_lines.push(line.to_vec());
                } else {
                    new_lines.push(hasher.line(username, password)?);
                }
            }
            let lines: Vec<&[u8]> = new_lines.iter().map(Vec::as_slice).collect();
            write_back(&path, &lines, &meta)
        }
    }
}

/// mosquitto_passwd's username rules, then Midge's: a username the broker could never match
/// is refused here rather than written.
fn check_username(username: &OsStr) -> Result<&str> {
    let Some(username) = username.to_str() else {
        // MQTT usernames are UTF-8 strings.
        return Err(fail("Error: Username must be valid UTF-8."));
    };
    if username.len() > MAX_USERNAME_LEN {
        return Err(fail(
            "Error: Username must be less than 65536 characters long.",
        ));
    }
    if username.chars().any(char::is_control) {
        return Err(fail("Error: Username must not contain control characters."));
    }
    if username.contains(':') {
        return Err(fail("Error: Username must not contain the ':' character."));
    }
    if username.is_empty() {
        return Err(fail("Error: Username must not be empty."));
    }
    if username.trim_ascii() != username {
        return Err(fail("Error: Username must not begin or end with blanks."));
    }
    Ok(username)
}

/// Works on the file a symlink points to (mosquitto_passwd calls `realpath`), so that
/// renaming over it replaces the target, not the link.
fn resolve(path: &Path) -> Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(fail(format!(
            "Error reading password file: {}",
            describe(&e)
        ))),
    }
}

/// Opens the file read-write (as mosquitto_passwd does, so that a file the caller may not
/// write is refused before anything is prompted) and reads it.
fn read_existing(path: &Path) -> Result<(Vec<u8>, Metadata)> {
    let open_error = |e: io::Error| {
        fail(format!(
            "Error: Unable to open password file {}. {}.",
            path.display(),
            describe(&e)
        ))
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(open_error)?;
    let meta = file.metadata().map_err(open_error)?;
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(open_error)?;
    Ok((contents, meta))
}

/// Joins `lines`, replaces the file, and warns if the result is a file the broker will
/// refuse (a plaintext or malformed line written by hand, say).
fn write_back(path: &Path, lines: &[&[u8]], meta: &Metadata) -> Result<()> {
    let mut contents = Vec::new();
    for line in lines {
        contents.extend_from_slice(line);
        contents.push(b'\n');
    }
    replace_file(path, &contents, Some(meta)).map_err(|e| {
        fail(format!(
            "Error: Unable to update password file {}. {}.",
            path.display(),
            describe(&e)
        ))
    })?;
    match std::str::from_utf8(&contents) {
        Ok(text) => {
            if let Err(e) = PasswordFile::parse(text, &path.display().to_string()) {
                eprintln!("Warning: {e}. Midge will not load this file until that is fixed.");
            }
        }
        Err(_) => eprintln!(
            "Warning: {} is not valid UTF-8. Midge will not load it until that is fixed.",
            path.display()
        ),
    }
    Ok(())
}

/// Replaces `path` with `contents` atomically: a temporary file in the same directory
/// (a rename cannot cross file systems), fsynced, renamed over the original, then the
/// directory fsynced so the rename itself survives a crash. A new file gets mode 0600; an
/// existing one keeps its mode and, where the caller may set it, its owner (root editing a
/// file owned by the broker's user must not take it away from that user).
fn replace_file(path: &Path, contents: &[u8], existing: Option<&Metadata>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EISDIR))?;
    let (tmp_path, mut tmp) = create_temp(dir, name)?;
    let result = (|| {
        tmp.write_all(contents)?;
        let mode = existing.map_or(0o600, |m| m.permissions().mode() & 0o7777);
        tmp.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(m) = existing {
            // Best effort: only root (or the owner, for the group) may do this.
            let _ = std::os::unix::fs::fchown(&tmp, Some(m.uid()), Some(m.gid()));
        }
        tmp.sync_all()?;
        fs::rename(&tmp_path, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

/// A new file `.<name>.tmp-<random>` in `dir`, created exclusively with mode 0600 so that
/// no other user can open it between creation and rename.
fn create_temp(dir: &Path, name: &OsStr) -> io::Result<(PathBuf, File)> {
    let mut last_error = None;
    for _ in 0..16 {
        let suffix = getrandom::u32().map_err(|e| io::Error::other(e.to_string()))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{suffix:08x}"));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
        {
            Ok(f) => return Ok((tmp_path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no temporary file name")))
}

/// The text `strerror` gives (mosquitto_passwd's messages use it), without Rust's
/// " (os error N)" suffix.
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// The lines of a file, without their `\n`; a final line without one still counts.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    data.split(|&b| b == b'\n').filter(move |_| !empty)
}

/// `(username, rest)` of a user line, both trimmed of blanks; `None` for the lines the broker
/// skips (blank, `#` comment, no `:`). The same rules as `PasswordFile::parse`, so that the
/// tool and the broker agree on which line belongs to whom.
fn split_entry(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = line.trim_ascii_end();
    if line.is_empty() || line[0] == b'#' {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
}

fn line_user(line: &[u8]) -> Option<&[u8]> {
    split_entry(line).map(|(user, _)| user)
}

/// The algorithm and cost for new hashes.
struct Hasher {
    kind: HashKind,
    iterations: u32,
}

impl Hasher {
    /// `username:hash` (no newline) with a fresh salt from the OS.
    fn line(&self, username: &[u8], password: &[u8]) -> Result<Vec<u8>> {
        // 12 bytes for $6$/$7$ because Mosquitto 2.0 reads nothing else; argon2id only
        // exists in 2.1, which writes 64.
        let mut salt = vec![
            0u8;
            match self.kind {
                HashKind::Argon2id => LONG_SALT_LEN,
                HashKind::Sha512 | HashKind::Pbkdf2Sha512 => DEFAULT_SALT_LEN,
            }
        ];
        getrandom::fill(&mut salt)
            .map_err(|e| fail(format!("Error: Unable to generate a salt: {e}.")))?;
        let hash = PasswordHash::new(self.kind, password, &salt, Some(self.iterations));
        let mut line = username.to_vec();
        line.push(b':');
        line.extend_from_slice(hash.encode().as_bytes());
        Ok(line)
    }
}

/// Reads the password twice, like mosquitto_passwd: `Error: Empty password.` (exit 1) for an
/// empty one or end of input, `Error: Passwords do not match.` (exit 2).
fn prompt_twice() -> Result<Vec<u8>> {
    let password = get_password("Password: ", Some("Reenter password: ")).map_err(|e| match e {
        PromptError::Empty => fail("Error: Empty password."),
        PromptError::Mismatch => {
            eprintln!("Error: Passwords do not match.");
            Failure(2)
        }
        PromptError::Read(e) => fail(format!("Error: Unable to read password. {}.", describe(&e))),
    })?;
    if password.len() > MAX_PASSWORD_LEN {
        return Err(fail(
            "Error: Password must be less than 65536 characters long.",
        ));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_the_broker_reads_them() {
        let v: Vec<&[u8]> = split_lines(b"a:1\nb:2").collect();
        assert_eq!(v, [&b"a:1"[..], b"b:2"]);
        let v: Vec<&[u8]> = split_lines(b"a:1\n\nb:2\n").collect();
        assert_eq!(v, [&b"a:1"[..], b"", b"b:2"]);
        assert_eq!(split_lines(b"").count(), 0);
        assert_eq!(split_lines(b"\n").count(), 0);
        assert_eq!(split_lines(b"\n\n").count(), 2);
    }

    #[test]
    fn entries_match_the_broker_parser() {
        assert_eq!(
            split_entry(b" alice :pw \r"),
            Some((&b"alice"[..], &b"pw"[..]))
        );
        assert_eq!(split_entry(b"a:b:c"), Some((&b"a"[..], &b"b:c"[..])));
        assert_eq!(split_entry(b"#a:b"), None);
        assert_eq!(split_entry(b"   "), None);
        assert_eq!(split_entry(b"no colon"), None);
        assert_eq!(split_entry(b":x"), Some((&b""[..], &b"x"[..])));
    }

    #[test]
    fn errors_read_like_strerror() {
        let e = io::Error::from_raw_os_error(nix::libc::ENOENT);
        assert_eq!(describe(&e), "No such file or directory");
    }
}
