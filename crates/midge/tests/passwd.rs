//! `midge passwd`, driven as a subprocess, side by side with Debian's `mosquitto_passwd`
//! (2.0.11) and checked both ways: files `mosquitto_passwd` writes verify in Midge's parser, and
//! files `midge passwd` writes are accepted by a real `mosquitto` broker.
//!
//! These tests never skip: without Mosquitto's tools they fail and say how to install them.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, TempDir};
use midge_core::password::{HashKind, PasswordFile, PasswordHash};

const INSTALL: &str =
    "install mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients)";

/// The alice / s3cret vector from the compatibility reference (mosquitto_passwd 2.0.11).
const ALICE: &str = "alice:$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";

/// A fresh directory under the system temp dir, removed on drop.
fn temp_dir() -> TempDir {
    TempDir::with_prefix("midge-passwd-test")
}

impl TempDir {
    fn write_path(&self, name: &str, text: &str) -> PathBuf {
        PathBuf::from(self.write(name, text))
    }

    /// Names in the directory, sorted (to catch leftover temporary files).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Runs `program args` in `dir` with `stdin` piped in.
fn run_in(dir: &Path, program: &str, pre: &[&str], args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(pre)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => panic!("{program} not found on PATH: {INSTALL}"),
            _ => panic!("cannot run {program}: {e}"),
        });
    // The child may exit before reading everything (argument errors): ignore EPIPE.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait")
}

fn midge(dir: &Path, args: &[&str], stdin: &str) -> Output {
    run_in(dir, env!("CARGO_BIN_EXE_midge"), &["passwd"], args, stdin)
}

fn mosquitto_passwd(dir: &Path, args: &[&str], stdin: &str) -> Output {
    run_in(dir, "mosquitto_passwd", &[], args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success with no output at all (mosquitto_passwd 2.0 is silent when it works).
fn ok_silently(out: &Output) {
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn load(path: &Path) -> PasswordFile {
    let text = fs::read_to_string(path).expect("read password file");
    PasswordFile::parse(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn hash_of(path: &Path, user: &str) -> PasswordHash {
    load(path).get(user).expect("user in file").clone()
}

#[test]
fn create_add_update_delete() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    ok_silently(&midge(
        &dir.0,
        &["-c", "-b", "passwd", "alice", "s3cret"],
        "",
    ));
    assert_eq!(mode(&file), 0o600, "a created file is private");
    assert_eq!(lines(&file).len(), 1);
    let f = load(&file);
    assert!(f.verify("alice", b"s3cret"));
    assert!(!f.verify("alice", b"s3cret2"));

    ok_silently(&midge(&dir.0, &["-b", "passwd", "bob", "hunter2"], ""));
    let after_add = lines(&file);
    assert_eq!(after_add.len(), 2);
    assert!(after_add[1].starts_with("bob:$7$1000$"));
    let f = load(&file);
    assert!(f.verify("alice", b"s3cret") && f.verify("bob", b"hunter2"));

    // Update: alice's line is replaced where it was; bob's is untouched.
    ok_silently(&midge(&dir.0, &["-b", "passwd", "alice", "new one"], ""));
    let after_update = lines(&file);
    assert_eq!(after_update.len(), 2);
    assert!(after_update[0].starts_with("alice:"));
    assert_ne!(after_update[0], after_add[0]);
    assert_eq!(after_update[1], after_add[1]);
    let f = load(&file);
    assert!(f.verify("alice", b"new one") && !f.verify("alice", b"s3cret"));

    ok_silently(&midge(&dir.0, &["-D", "passwd", "bob"], ""));
    assert_eq!(lines(&file), after_update[..1]);
    assert!(!load(&file).contains("bob"));

    // -c overwrites.
    ok_silently(&midge(&dir.0, &["-c", "-b", "passwd", "carol", "x"], ""));
    let f = load(&file);
    assert_eq!(f.usernames().collect::<Vec<_>>(), ["carol"]);
    assert_eq!(dir.names(), ["passwd"], "no temporary file is left behind");
}

#[test]
fn default_hash_is_pbkdf2_with_a_12_byte_salt_and_1000_iterations() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    ok_silently(&midge(&dir.0, &["-c", "-b", "passwd", "u", "pw"], ""));
    match hash_of(&file, "u") {
        PasswordHash::Pbkdf2Sha512 {
            iterations, salt, ..
        } => assert_eq!((iterations, salt.len()), (1000, 12)),
        other => panic!("{other:?}"),
    }
    ok_silently(&midge(
        &dir.0,
        &["-H", "sha512-pbkdf2", "-I", "5", "-b", "passwd", "v", "pw"],
        "",
    ));
    assert!(lines(&file)[1].starts_with("v:$7$5$"));
    assert!(load(&file).verify("v", b"pw"));
}

#[test]
fn sha512_and_argon2id() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    ok_silently(&midge(
        &dir.0,
        &["-H", "sha512", "-c", "-b", "passwd", "bob", "hunter2"],
        "",
    ));
    match hash_of(&file, "bob") {
        PasswordHash::Sha512 { salt, .. } => assert_eq!(salt.len(), 12),
        other => panic!("{other:?}"),
    }
    ok_silently(&midge(
        &dir.0,
        &["-H", "argon2id", "-b", "passwd", "dave", "argonpw"],
        "",
    ));
    let line = &lines(&file)[1];
    assert!(
        line.starts_with("dave:$argon2id$v=19$m=47104,t=1,p=1$"),
        "{line}"
    );
    match hash_of(&file, "dave") {
        PasswordHash::Argon2id { salt, hash, .. } => assert_eq!((salt.len(), hash.len()), (64, 64)),
        other => panic!("{other:?}"),
    }
    let f = load(&file);
    assert!(f.verify("bob", b"hunter2") && !f.verify("bob", b"hunter3"));
    assert!(f.verify("dave", b"argonpw"));
}

#[test]
fn prompts_read_stdin_when_it_is_not_a_terminal() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    let out = midge(&dir.0, &["-c", "passwd", "alice"], "s3cret\ns3cret\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Password: \nReenter password: \n");
    assert!(load(&file).verify("alice", b"s3cret"));
    // \r\n line ends are stripped; inner and trailing spaces are kept (as mosquitto_passwd).
    let out = midge(&dir.0, &["passwd", "bob"], "pw \r\npw \r\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let f = load(&file);
    assert!(f.verify("bob", b"pw ") && !f.verify("bob", b"pw"));

    let before = fs::read(&file).expect("read");
    let out = midge(&dir.0, &["passwd", "bob"], "one\ntwo\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "Error: Passwords do not match.\n");
    // Every trailing \r and \n is cut, so "\r\r\n" is empty (as in mosquitto_passwd 2.0.11).
    for stdin in ["", "\n\n", "pw\n", "\r\r\n\r\r\n"] {
        let out = midge(&dir.0, &["passwd", "bob"], stdin);
        assert_eq!(out.status.code(), Some(1), "{stdin:?}");
        assert_eq!(text(&out.stderr), "Error: Empty password.\n", "{stdin:?}");
    }
    assert_eq!(
        fs::read(&file).expect("read"),
        before,
        "failed prompts change nothing"
    );
}

/// The same command, the same input and the same starting file: `midge passwd` must print
/// the same thing on stdout and stderr and exit with the same code as `mosquitto_passwd`.
#[test]
fn messages_and_exit_codes_match_mosquitto_passwd() {
    let long_user = "u".repeat(65536);
    let long_password = "p".repeat(65536);
    let plaintext = "alice:pw\nbob:\n";
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        // (arguments, stdin, starting file)
        (vec!["-c", "-D", "passwd", "bob"], "", ALICE),
        (vec!["-c", "-U", "passwd"], "", ALICE),
        (vec!["-U", "-D", "passwd"], "", ALICE),
        (vec!["-b", "-D", "passwd", "alice", "pw"], "", ALICE),
        (vec!["-H", "md5", "-b", "passwd", "x", "y"], "", ALICE),
        (vec!["-H"], "", ALICE),
        (vec!["-I"], "", ALICE),
        (vec!["-I", "0", "-b", "passwd", "y", "y"], "", ALICE),
        (vec!["-I", "abc", "-b", "passwd", "y", "y"], "", ALICE),
        (vec!["-c", "passwd"], "", ALICE),
        (vec!["-c", "-b", "passwd", "u"], "", ALICE),
        (vec!["-D", "passwd"], "", ALICE),
        (vec!["-U"], "", ALICE),
        (vec!["-U", "passwd", "extra"], "", ALICE),
        (vec!["-b", "passwd", "a:b", "pw"], "", ALICE),
        (vec!["-b", "passwd", "a\tb", "pw"], "", ALICE),
        (vec!["-b", "passwd", "a\u{7f}b", "pw"], "", ALICE),
        (vec!["-b", "passwd", &long_user, "pw"], "", ALICE),
        (vec!["-b", "passwd", "bob", &long_password], "", ALICE),
        (vec!["-b", "missing", "u", "p"], "", ALICE),
        (vec!["-U", "missing"], "", ALICE),
        (vec!["-D", "missing", "u"], "", ALICE),
        (vec!["missing", "u"], "pw\npw\n", ALICE),
        (vec!["-c", "-b", "no/such/dir", "u", "p"], "", ALICE),
        (vec!["-D", "passwd", "nobody"], "", ALICE),
        (vec!["passwd", "bob"], "pw1\npw2\n", ALICE),
        (vec!["passwd", "bob"], "pw1\n", ALICE),
        (vec!["passwd", "bob"], "", ALICE),
        (vec!["passwd", "bob"], "\n\n", ALICE),
        (vec!["-c", "passwd", "bob"], "\r\r\n\r\r\n", ALICE),
        (vec!["-c", "passwd", "bob"], "a\nb\n", ALICE),
        (vec!["-U", "passwd"], "", plaintext),
        // Successes print the same prompts (and nothing else).
        (vec!["passwd", "bob"], "pw\npw\n", ALICE),
        (vec!["-c", "passwd", "bob"], "pw\r\npw\r\n", ALICE),
        (vec!["passwd", "bob"], "pw\r\r\npw\n", ALICE),
        (vec!["-b", "passwd", "bob", "pw"], "", ALICE),
        (vec!["-D", "passwd", "alice"], "", ALICE),
        (vec!["-H", "sha512", "-b", "passwd", "bob", "pw"], "", ALICE),
        (vec!["-x", "passwd", "bob"], "", ALICE),
        (vec!["passwd", "bob", "pw"], "", ALICE),
    ];
    for (args, stdin, start) in cases {
        let ours = temp_dir();
        let theirs = temp_dir();
        let start = format!("{start}\n");
        ours.write_path("passwd", &start);
        theirs.write_path("passwd", &start);
        let a = midge(&ours.0, &args, stdin);
        let b = mosquitto_passwd(&theirs.0, &args, stdin);
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(20).collect()).collect();
        assert_eq!(a.status.code(), b.status.code(), "exit code of {shown:?}");
        assert_eq!(text(&a.stderr), text(&b.stderr), "stderr of {shown:?}");
        if !args.is_empty() && args[0] == "-x" || args == ["passwd", "bob", "pw"] {
            // Usage: same shape, but it names midge passwd (checked in `usage`).
            assert!(text(&a.stdout).contains("Usage: midge passwd"));
        } else {
            assert_eq!(text(&a.stdout), text(&b.stdout), "stdout of {shown:?}");
        }
        if !a.status.success() {
            assert_eq!(
                fs::read_to_string(ours.join("passwd")).expect("read"),
                start,
                "a failed {shown:?} leaves the file alone"
            );
        }
    }
}

#[test]
fn usage() {
    let dir = temp_dir();
    let out = midge(&dir.0, &[], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty());
    let usage = text(&out.stdout);
    assert!(usage.starts_with("midge passwd is a tool for managing password files"));
    for line in [
        "Usage: midge passwd [-H sha512-pbkdf2 | -H sha512 | -H argon2id] [-I iterations] [-c | -D] passwordfile username",
        "       midge passwd -U passwordfile",
        " -b : run in batch mode",
    ] {
        assert!(usage.contains(line), "{line}\n{usage}");
    }
    // The broker's own command line is unaffected by the dispatch.
    let out = Command::new(env!("CARGO_BIN_EXE_midge"))
        .arg("--help")
        .output()
        .expect("run midge --help");
    assert!(out.status.success());
}

/// Where Midge deliberately refuses what mosquitto_passwd 2.0.11 accepts.
#[test]
fn usernames_the_broker_could_never_match_are_refused() {
    let dir = temp_dir();
    let file = dir.write_path("passwd", &format!("{ALICE}\n"));
    for (user, message) in [
        ("", "Error: Username must not be empty.\n"),
        (
            " alice",
            "Error: Username must not begin or end with blanks.\n",
        ),
        (
            "alice ",
            "Error: Username must not begin or end with blanks.\n",
        ),
    ] {
        let out = midge(&dir.0, &["-b", "passwd", user, "pw"], "");
        assert_eq!(out.status.code(), Some(1), "{user:?}");
        assert_eq!(text(&out.stderr), message, "{user:?}");
    }
    assert_eq!(lines(&file), [ALICE]);
}

#[test]
fn comments_blank_lines_and_other_lines_are_kept() {
    // mosquitto_passwd 2.0.11 calls these "corrupt" and, when updating, drops the rest of
    // the file; Midge keeps every line it does not change.
    let dir = temp_dir();
    let file = dir.write_path(
        "passwd",
        &format!("# operators\n{ALICE}\n\nstray line\n#bob:old\n"),
    );
    ok_silently(&midge(&dir.0, &["-b", "passwd", "bob", "hunter2"], ""));
    let got = lines(&file);
    assert_eq!(
        got[..5],
        ["# operators", ALICE, "", "stray line", "#bob:old"]
    );
    assert!(got[5].starts_with("bob:$7$"));
    ok_silently(&midge(&dir.0, &["-D", "passwd", "alice"], ""));
    assert_eq!(
        lines(&file)[..4],
        ["# operators", "", "stray line", "#bob:old"]
    );
    assert!(load(&file).verify("bob", b"hunter2"));
}

#[test]
fn a_duplicated_user_is_written_once() {
    let dir = temp_dir();
    let bob = ALICE.replace("alice", "bob");
    let file = dir.write_path("passwd", &format!("{ALICE}\n{bob}\n{ALICE}\n"));
    ok_silently(&midge(&dir.0, &["-b", "passwd", "alice", "pw"], ""));
    let got = lines(&file);
    assert_eq!(got.len(), 2);
    assert!(got[0].starts_with("alice:$7$1000$"));
    assert_eq!(got[1], bob);
    assert!(load(&file).verify("alice", b"pw"));
}

#[test]
fn update_warns_when_the_broker_would_refuse_the_result() {
    let dir = temp_dir();
    dir.write_path("passwd", "bob:plaintext\n");
    let out = midge(&dir.0, &["-b", "passwd", "alice", "pw"], "");
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Warning: ") && stderr.contains(":1: user 'bob': invalid password hash"),
        "{stderr}"
    );
}

#[test]
fn hash_plaintext_file_with_u() {
    let dir = temp_dir();
    let file = dir.write_path(
        "passwd",
        &format!(
            "# plain\nalice:s3cret\n bob :  hunter2  \r\ncarol:a:b\n\n{}\n",
            ALICE.replace("alice", "dave")
        ),
    );
    let out = midge(&dir.0, &["-U", "passwd"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "Warning: User dave already has a hashed password, left unchanged.\n"
    );
    let got = lines(&file);
    assert_eq!(got[0], "# plain");
    assert_eq!(got[4], "");
    assert_eq!(got[5], ALICE.replace("alice", "dave"));
    let f = load(&file);
    assert!(f.verify("alice", b"s3cret"));
    // Surrounding blanks are trimmed, as mosquitto_passwd does.
    assert!(f.verify("bob", b"hunter2"));
    // Everything after the first ':' is the password (mosquitto_passwd would cut at "a").
    assert!(f.verify("carol", b"a:b"));
    assert!(f.verify("dave", b"s3cret"));

    // A second -U changes nothing (mosquitto_passwd would hash the hashes).
    let before = fs::read(&file).expect("read");
    let out = midge(&dir.0, &["-U", "passwd"], "");
    assert!(out.status.success());
    assert_eq!(fs::read(&file).expect("read"), before);

    // -H and -I apply to -U.
    let file = dir.write_path("plain2", "erin:pw\n");
    ok_silently(&midge(&dir.0, &["-H", "sha512", "-U", "plain2"], ""));
    assert_eq!(hash_of(&file, "erin").kind(), HashKind::Sha512);
    let file = dir.write_path("plain3", "erin:pw\n");
    ok_silently(&midge(&dir.0, &["-I", "7", "-U", "plain3"], ""));
    assert!(lines(&file)[0].starts_with("erin:$7$7$"));

    // Refusals leave the file alone.
    for (start, message) in [
        (":pw\n", "Error: Corrupt password file at line 1.\n"),
        ("a:pw\nb:\n", "Error: Corrupt password file at line 2.\n"),
        (
            "a:pw\na:pw2\n",
            "Error: Duplicate user a in password file at line 2.\n",
        ),
    ] {
        let file = dir.write_path("bad", start);
        let out = midge(&dir.0, &["-U", "bad"], "");
        assert_eq!(out.status.code(), Some(1), "{start:?}");
        assert_eq!(text(&out.stderr), message, "{start:?}");
        assert_eq!(fs::read_to_string(&file).expect("read"), start);
    }
}

#[test]
fn file_modes() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    ok_silently(&midge(&dir.0, &["-c", "-b", "passwd", "a", "pw"], ""));
    assert_eq!(mode(&file), 0o600);
    // An existing file keeps its mode through update, delete and -c.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).expect("chmod");
    ok_silently(&midge(&dir.0, &["-b", "passwd", "b", "pw"], ""));
    assert_eq!(mode(&file), 0o640);
    ok_silently(&midge(&dir.0, &["-D", "passwd", "b"], ""));
    assert_eq!(mode(&file), 0o640);
    ok_silently(&midge(&dir.0, &["-c", "-b", "passwd", "c", "pw"], ""));
    assert_eq!(mode(&file), 0o640);
    let plain = dir.write_path("plain", "a:pw\n");
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o604)).expect("chmod");
    ok_silently(&midge(&dir.0, &["-U", "plain"], ""));
    assert_eq!(mode(&plain), 0o604);
    assert_eq!(dir.names(), ["passwd", "plain"]);
}

#[test]
fn a_symlinked_file_is_updated_through_the_link() {
    let dir = temp_dir();
    let target = dir.write_path("real", &format!("{ALICE}\n"));
    std::os::unix::fs::symlink("real", dir.join("link")).expect("symlink");
    ok_silently(&midge(&dir.0, &["-b", "link", "bob", "pw"], ""));
    assert!(fs::symlink_metadata(dir.join("link"))
        .expect("lstat")
        .file_type()
        .is_symlink());
    assert!(load(&target).verify("bob", b"pw"));
    assert_eq!(dir.names(), ["link", "real"]);
}

/// Debian's mosquitto_passwd writes; Midge's parser reads.
#[test]
fn files_from_mosquitto_passwd_verify_in_midge() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    ok_silently(&mosquitto_passwd(
        &dir.0,
        &["-c", "-b", "passwd", "alice", "s3cret"],
        "",
    ));
    ok_silently(&mosquitto_passwd(
        &dir.0,
        &["-H", "sha512", "-b", "passwd", "bob", "hunter2"],
        "",
    ));
    ok_silently(&mosquitto_passwd(
        &dir.0,
        &["-I", "3", "-b", "passwd", "carol", "c c"],
        "",
    ));
    let out = mosquitto_passwd(&dir.0, &["passwd", "dave"], "d4ve\nd4ve\n");
    assert!(out.status.success());
    let f = load(&file);
    assert_eq!(f.len(), 4);
    assert_eq!(
        f.get("alice").map(PasswordHash::kind),
        Some(HashKind::Pbkdf2Sha512)
    );
    assert_eq!(f.get("bob").map(PasswordHash::kind), Some(HashKind::Sha512));
    assert!(f.verify("alice", b"s3cret"));
    assert!(f.verify("bob", b"hunter2"));
    assert!(f.verify("carol", b"c c"));
    assert!(f.verify("dave", b"d4ve"));
    assert!(!f.verify("alice", b"hunter2"));
    assert!(!f.verify("bob", b"s3cret"));
    assert!(!f.verify("nobody", b"s3cret"));
    // The lines Midge's encoder writes back are byte for byte what mosquitto_passwd wrote.
    for line in lines(&file) {
        let (user, hash) = line.split_once(':').expect("user line");
        assert_eq!(f.get(user).expect("user").encode(), hash);
    }

    // Both tools work on the same file in turn.
    ok_silently(&midge(&dir.0, &["-b", "passwd", "erin", "e"], ""));
    ok_silently(&mosquitto_passwd(
        &dir.0,
        &["-b", "passwd", "frank", "f"],
        "",
    ));
    ok_silently(&midge(&dir.0, &["-D", "passwd", "bob"], ""));
    let f = load(&file);
    assert!(f.verify("alice", b"s3cret") && f.verify("erin", b"e") && f.verify("frank", b"f"));
    assert!(!f.contains("bob"));

    // mosquitto_passwd -U on a plaintext file.
    let plain = dir.write_path("plain", "gina:g1na\nhal:h4l\n");
    ok_silently(&mosquitto_passwd(&dir.0, &["-U", "plain"], ""));
    let f = load(&plain);
    assert!(f.verify("gina", b"g1na") && f.verify("hal", b"h4l"));
}

/// A `mosquitto` broker on a free loopback port, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    fn start(dir: &TempDir, password_file: &Path) -> Mosquitto {
        let port = free_port();
        // `user root`: when run as root, Mosquitto otherwise drops to the `mosquitto` user
        // before reading the password file, which then cannot read a 0600 file in a private
        // temp dir. Ignored when not run as root.
        let conf = dir.write_path(
            "mosquitto.conf",
            &format!(
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
                password_file.display()
            ),
        );
        let log = dir.join("mosquitto.log");
        let log_file = fs::File::create(&log).expect("log file");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(log_file.try_clone().expect("clone"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => panic!("mosquitto not found on PATH: {INSTALL}"),
                _ => panic!("cannot run mosquitto: {e}"),
            });
        let mut broker = Mosquitto { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("mosquitto exited with {status}:\n{}", broker.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start:\n{}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Exit code of `mosquitto_pub -u user -P password` (0 = connected and published).
    fn publish(&self, user: &str, password: &str) -> Option<i32> {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", user, "-P", password, "-t", "midge/test", "-m", "hi"])
            .output()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    panic!("mosquitto_pub not found on PATH: {INSTALL}")
                }
                _ => panic!("cannot run mosquitto_pub: {e}"),
            });
        out.status.code()
    }
}

/// `midge passwd` writes; Debian's mosquitto broker (2.0.11) reads.
#[test]
fn files_from_midge_passwd_are_accepted_by_mosquitto() {
    let dir = temp_dir();
    let file = dir.join("passwd");
    ok_silently(&midge(
        &dir.0,
        &["-c", "-b", "passwd", "alice", "s3cret"],
        "",
    ));
    ok_silently(&midge(
        &dir.0,
        &["-H", "sha512", "-b", "passwd", "bob", "hunter2"],
        "",
    ));
    ok_silently(&midge(
        &dir.0,
        &["-I", "5000", "-b", "passwd", "carol", "c c"],
        "",
    ));
    let out = midge(&dir.0, &["passwd", "dave"], "d4ve\nd4ve\n");
    assert!(out.status.success());
    let plain = dir.write_path("plain", "erin:e\n");
    ok_silently(&midge(&dir.0, &["-U", "plain"], ""));
    let erin = lines(&plain).remove(0);
    fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| writeln!(f, "{erin}"))
        .expect("append");

    let broker = Mosquitto::start(&dir, &file);
    let checks = [
        ("alice", "s3cret", true),
        ("bob", "hunter2", true),
        ("carol", "c c", true),
        ("dave", "d4ve", true),
        ("erin", "e", true),
        ("alice", "wrong", false),
        ("bob", "s3cret", false),
        ("carol", "c", false),
        ("nobody", "s3cret", false),
    ];
    for (user, password, accepted) in checks {
        let code = broker.publish(user, password);
        if accepted {
            assert_eq!(code, Some(0), "{user}/{password}\n{}", broker.log());
        } else {
            assert!(code.is_some_and(|c| c != 0), "{user}/{password}: {code:?}");
        }
    }
    let log = broker.log();
    assert!(!log.contains("Invalid password hash"), "{log}");
    drop(broker);
}
