//! `midge ctrl` side by side with Debian's `mosquitto_ctrl` (2.0.11), both driving a real
//! `mosquitto` broker with the dynamic-security plugin, whose configuration `midge ctrl dynsec
//! init` wrote. The same commands must print the same text and exit with the same codes.
//!
//! These tests never skip: without Mosquitto they fail and say how to install it.

mod common;

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::dynsec::{
    midge_ctrl, require_mosquitto, run, words, Ctrl, Mosquitto, Run, ADMIN, ADMIN_PW,
};
use common::tls::{make_ca, Ca};
use common::{free_port, TempDir};

/// mosquitto_ctrl's output with its own name replaced by Midge's, the one intended difference
/// in text.
fn mosquitto_ctrl(args: &[String], stdin: &str, config_home: &Path) -> Run {
    let mut r = run("mosquitto_ctrl", args, stdin, config_home);
    r.stdout = r.stdout.replace("mosquitto_ctrl", "midge ctrl");
    r.stderr = r.stderr.replace("mosquitto_ctrl", "midge ctrl");
    r
}

/// A dynsec file written by `midge ctrl dynsec init` for admin / adminpw.
fn init_file(dir: &TempDir, name: &str) -> PathBuf {
    Ctrl::Midge.init(dir, name)
}

/// Two brokers from the same initial file: one driven by mosquitto_ctrl, one by midge ctrl.
struct Pair {
    dir: TempDir,
    mosquitto_side: Mosquitto,
    midge_side: Mosquitto,
}

impl Pair {
    fn start() -> Pair {
        require_mosquitto();
        let dir = TempDir::new();
        let a = init_file(&dir, "a.json");
        let b = dir.0.join("b.json");
        fs::copy(&a, &b).unwrap();
        let mosquitto_side = Mosquitto::start(&dir, "a", &a);
        let midge_side = Mosquitto::start(&dir, "b", &b);
        Pair {
            dir,
            mosquitto_side,
            midge_side,
        }
    }

    /// Runs `dynsec <command>` with both tools; returns both runs.
    fn both(&self, command: &str, stdin: &str) -> (Run, Run) {
        let mut m = self.mosquitto_side.admin();
        m.push("dynsec".into());
        m.extend(words(command));
        let mut g = self.midge_side.admin();
        g.push("dynsec".into());
        g.extend(words(command));
        (
            mosquitto_ctrl(&m, stdin, &self.dir.0),
            midge_ctrl(&g, stdin, &self.dir.0),
        )
    }

    /// Both tools print the same and exit the same.
    fn same(&self, command: &str) -> Run {
        self.same_with_input(command, "")
    }

    fn same_with_input(&self, command: &str, stdin: &str) -> Run {
        let (m, g) = self.both(command, stdin);
        assert_eq!(
            g, m,
            "`dynsec {command}`: midge ctrl (left) differs from mosquitto_ctrl (right)"
        );
        g
    }
}

#[test]
fn dynsec_commands_print_what_mosquitto_ctrl_prints() {
    let p = Pair::start();
    let sequence = [
        "createClient alice -p alicepw -c aliceid",
        "createClient alice -p alicepw",
        "createClient bob -p bobpw",
        "createRole r1",
        "createRole r1",
        "createRole r2",
        "addRoleACL r1 publishClientSend a/# allow 5",
        "addRoleACL r1 subscribePattern a/# deny",
        "addRoleACL r1 subscribeLiteral a/b allow",
        "addRoleACL r1 unsubscribePattern # allow -3",
        "addRoleACL r1 publishClientSend a/# allow",
        "addRoleACL nope publishClientSend a/# allow",
        "addClientRole alice r1 3",
        "addClientRole alice r2",
        "addClientRole bob r1",
        "addClientRole nobody r1",
        "getClient alice",
        "getClient bob",
        "listClients",
        "listClients 1",
        "listClients 1 1",
        "createGroup g1",
        "createGroup g2",
        "addGroupClient g1 alice 7",
        "addGroupClient g1 bob",
        "addGroupClient g2 alice",
        "addGroupRole g1 r1 2",
        "addGroupRole g1 r2",
        "getGroup g1",
        "getGroup g2",
        "getClient alice",
        "listGroups",
        "listGroups 1 1",
        "listRoles",
        "listRoles 2",
        "getRole r1",
        "getRole r2",
        "getRole admin",
        "getDefaultACLAccess",
        "getClient nobody",
        "getGroup nogroup",
        "getRole norole",
        "deleteRole norole",
        "deleteGroup nogroup",
        "getAnonymousGroup",
        "setAnonymousGroup g2",
        "setAnonymousGroup nogroup",
        "getAnonymousGroup",
        "setClientId alice newid",
        "getClient alice",
        "setClientId alice",
        "getClient alice",
        "removeRoleACL r1 subscribeLiteral a/b",
        "removeRoleACL r1 subscribeLiteral a/b",
        "getRole r1",
        "removeGroupRole g1 r1",
        "removeGroupClient g1 bob",
        "getGroup g1",
        "removeClientRole alice r1",
        "disableClient alice",
        "getClient alice",
        "enableClient alice",
        "getClient alice",
        "setClientPassword bob bobpw2",
        "deleteClient bob",
        "deleteClient bob",
        // Not "deleteGroup g2": deleting the anonymous group crashes mosquitto 2.0.11.
        "deleteGroup g1",
        "deleteRole r2",
        "listClients",
        "listGroups",
        "listRoles",
        // Argument errors, caught before connecting.
        "getClient",
        "getClient a b",
        "createClient",
        "frob",
        "addRoleACL r1 bad a allow",
        "addRoleACL r1 publishClientSend a maybe",
        "setDefaultACLAccess subscribe maybe",
        "setDefaultACLAccess publish allow",
        "listClients 1 2 3",
        "help",
    ];
    for command in sequence {
        p.same(command);
    }
    // Spot checks that the comparison compares something.
    let r = p.same("getRole r1");
    assert!(
        r.stdout
            .contains("ACLs:     publishClientSend    : allow : a/# (priority: 5)"),
        "{r:?}"
    );
    let r = p.same("getClient nobody");
    assert_eq!(
        r.stderr.lines().last(),
        Some("getClient: Error: Client not found")
    );
    assert_eq!(r.code, Some(0));
    let r = p.same("getClient");
    assert_eq!(r.stderr, "Error: Invalid function arguments provided.\n");
    assert_eq!(r.code, Some(3));
    assert_eq!(p.same("frob").code, Some(13));
}

#[test]
fn clients_created_by_midge_ctrl_can_log_in() {
    let p = Pair::start();
    let b = &p.midge_side;
    let ctrl = |cmd: &str, stdin: &str| {
        let mut args = b.admin();
        args.push("dynsec".into());
        args.extend(words(cmd));
        midge_ctrl(&args, stdin, &p.dir.0)
    };
    assert_eq!(ctrl("createClient carol -p carolpw", "").code, Some(0));
    assert_eq!(b.publish("carol", "carolpw", None), Some(0), "{}", b.log());
    assert_ne!(b.publish("carol", "wrong", None), Some(0));
    // A client id bound to the client.
    assert_eq!(
        ctrl("createClient erin -p erinpw -c erin-id", "").code,
        Some(0)
    );
    assert_eq!(b.publish("erin", "erinpw", Some("erin-id")), Some(0));
    assert_ne!(b.publish("erin", "erinpw", Some("other-id")), Some(0));
    // A new password, then disabled.
    assert_eq!(ctrl("setClientPassword carol carolpw2", "").code, Some(0));
    assert_ne!(b.publish("carol", "carolpw", None), Some(0));
    assert_eq!(b.publish("carol", "carolpw2", None), Some(0));
    assert_eq!(ctrl("disableClient carol", "").code, Some(0));
    assert_ne!(b.publish("carol", "carolpw2", None), Some(0));
    assert_eq!(ctrl("deleteClient erin", "").code, Some(0));
    assert_ne!(b.publish("erin", "erinpw", Some("erin-id")), Some(0));
}

#[test]
fn password_prompts_match_mosquitto_ctrl() {
    let p = Pair::start();
    // createClient without -p asks twice; the client then logs in with that password.
    let r = p.same_with_input("createClient dave", "davepw\ndavepw\n");
    assert!(
        r.stdout.starts_with("Enter new password for dave."),
        "{r:?}"
    );
    assert_eq!(p.midge_side.publish("dave", "davepw", None), Some(0));
    assert_eq!(p.mosquitto_side.publish("dave", "davepw", None), Some(0));
    // An empty answer creates a client that cannot log in.
    p.same_with_input("createClient frank", "\n");
    p.same("getClient frank");
    // setClientPassword without a password asks too.
    p.same_with_input("setClientPassword dave davepw2", "");
    p.same_with_input("setClientPassword dave", "newpw\nnewpw\n");
    assert_eq!(p.midge_side.publish("dave", "newpw", None), Some(0));
    // The admin password, asked when -u comes without -P.
    let opts = |b: &Mosquitto| {
        words(&format!(
            "-h 127.0.0.1 -p {} -u {ADMIN} dynsec listRoles",
            b.port
        ))
    };
    let m = mosquitto_ctrl(&opts(&p.mosquitto_side), &format!("{ADMIN_PW}\n"), &p.dir.0);
    let g = midge_ctrl(&opts(&p.midge_side), &format!("{ADMIN_PW}\n"), &p.dir.0);
    assert_eq!(g, m);
    assert!(
        g.stdout.starts_with("Password for admin: \nadmin\n"),
        "{g:?}"
    );
    // Mismatched answers: the same message. mosquitto_ctrl exits 0 there; midge ctrl 1,
    // because nothing was done.
    let (m, g) = p.both("createClient gina", "a\nb\n");
    assert_eq!(
        (g.stdout.as_str(), g.stderr.as_str()),
        (m.stdout.as_str(), m.stderr.as_str())
    );
    assert_eq!(g.stderr, "Error: Passwords do not match.\n");
    assert_eq!((m.code, g.code), (Some(0), Some(1)));
}

#[test]
fn set_default_acl_access_takes_effect() {
    // mosquitto_ctrl 2.0.11 sends {"acltype":..,"access":"allow"}, which its own plugin
    // ignores; midge ctrl sends the boolean `allow` the plugin reads.
    let p = Pair::start();
    let (m, g) = p.both("setDefaultACLAccess subscribe allow", "");
    assert_eq!(g, m);
    let (m, g) = p.both("getDefaultACLAccess", "");
    assert!(m.stdout.contains("subscribe            : deny\n"), "{m:?}");
    assert_eq!(
        g.stdout,
        "publishClientSend    : deny\npublishClientReceive : allow\nsubscribe            : allow\nunsubscribe          : allow\n"
    );
    let (_, g) = p.both("setDefaultACLAccess publishClientSend ALLOW", "");
    assert_eq!(g.code, Some(0));
    let (_, g) = p.both("getDefaultACLAccess", "");
    assert!(
        g.stdout.starts_with("publishClientSend    : allow\n"),
        "{g:?}"
    );
}

#[test]
fn init_writes_what_mosquitto_ctrl_writes() {
    require_mosquitto();
    let dir = TempDir::new();
    let ours = dir.0.join("ours.json");
    let theirs = dir.0.join("theirs.json");
    let args = |f: &Path| words(&format!("dynsec init {} {ADMIN} {ADMIN_PW}", f.display()));
    let g = midge_ctrl(&args(&ours), "", &dir.0);
    let m = mosquitto_ctrl(&args(&theirs), "", &dir.0);
    assert_eq!(
        g.stdout.replace("ours.json", "X"),
        m.stdout.replace("theirs.json", "X")
    );
    assert_eq!((g.code, m.code), (Some(0), Some(0)));
    // The same document, salt and hash aside.
    let mask = |p: &Path| {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                if l.contains("\"password\":") || l.contains("\"salt\":") {
                    l.split(':').next().unwrap().to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(mask(&ours), mask(&theirs));
    assert!(!fs::read_to_string(&ours).unwrap().ends_with('\n'));
    assert_eq!(
        fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // An existing file is left alone, with mosquitto_ctrl's message (it exits 0 there).
    let before = fs::read(&ours).unwrap();
    let g = midge_ctrl(&args(&ours), "", &dir.0);
    let m = mosquitto_ctrl(&args(&theirs), "", &dir.0);
    assert_eq!(
        g.stderr.replace("ours.json", "X"),
        m.stderr.replace("theirs.json", "X")
    );
    assert_eq!((g.code, m.code), (Some(1), Some(0)));
    assert_eq!(fs::read(&ours).unwrap(), before);
    // Prompted password, and the argument errors.
    let prompted = dir.0.join("prompted.json");
    let g = midge_ctrl(
        &words(&format!("dynsec init {} boss", prompted.display())),
        "bosspw\nbosspw\n",
        &dir.0,
    );
    assert!(
        g.stdout.starts_with("New password for boss: \nReenter password for boss: \nThe client 'boss' has been created"),
        "{g:?}"
    );
    for bad in ["dynsec init", "dynsec init f", "dynsec init f u p extra"] {
        let (g, m) = (
            midge_ctrl(&words(bad), "", &dir.0),
            mosquitto_ctrl(&words(bad), "", &dir.0),
        );
        assert_eq!(g, m, "{bad}");
    }
    // Both files load in Mosquitto and the admin logs in.
    for f in [&ours, &prompted] {
        let b = Mosquitto::start(&dir, "init", f);
        let user = if f == &prompted { "boss" } else { ADMIN };
        let pw = if f == &prompted { "bosspw" } else { ADMIN_PW };
        let r = midge_ctrl(
            &words(&format!(
                "-h 127.0.0.1 -p {} -u {user} -P {pw} dynsec getRole admin",
                b.port
            )),
            "",
            &dir.0,
        );
        assert_eq!(r.code, Some(0), "{r:?}\n{}", b.log());
        assert!(r.stdout.starts_with("Rolename: admin\nACLs:     publishClientSend    : allow : $CONTROL/dynamic-security/# (priority: 0)\n"), "{r:?}");
    }
}

#[test]
fn options_file_is_honoured() {
    let p = Pair::start();
    let b = &p.midge_side;
    let text = format!(
        "# admin connection\n-h 127.0.0.1\n-p {}\n-u {ADMIN}\n-P {ADMIN_PW}\n",
        b.port
    );
    // -o <file>.
    let file = p.dir.write("ctrl.conf", &text);
    let home = TempDir::new();
    let r = midge_ctrl(&words(&format!("-o {file} dynsec listRoles")), "", &home.0);
    assert_eq!((r.stdout.as_str(), r.code), ("admin\n", Some(0)), "{r:?}");
    // The command line overrides the file.
    let r = midge_ctrl(
        &words(&format!("-o {file} -P wrong dynsec listRoles")),
        "",
        &home.0,
    );
    assert_eq!(
        r.stderr.lines().last(),
        Some("Connection error: Not authorized")
    );
    // The default file: $XDG_CONFIG_HOME/mosquitto_ctrl.conf (documented) ...
    fs::write(home.0.join("mosquitto_ctrl.conf"), &text).unwrap();
    let r = midge_ctrl(&words("dynsec listRoles"), "", &home.0);
    assert_eq!((r.stdout.as_str(), r.code), ("admin\n", Some(0)), "{r:?}");
    // ... or the name mosquitto_ctrl 2.0.11 actually reads, without .conf.
    fs::remove_file(home.0.join("mosquitto_ctrl.conf")).unwrap();
    fs::write(home.0.join("mosquitto_ctrl"), &text).unwrap();
    let g = midge_ctrl(&words("dynsec listRoles"), "", &home.0);
    let text_m = text.replace(&b.port.to_string(), &p.mosquitto_side.port.to_string());
    let home_m = TempDir::new();
    fs::write(home_m.0.join("mosquitto_ctrl"), &text_m).unwrap();
    let m = mosquitto_ctrl(&words("dynsec listRoles"), "", &home_m.0);
    assert_eq!(g, m);
    assert_eq!(g.stdout, "admin\n");
    // A bad line in the file.
    let bad = p.dir.write("bad.conf", "-p\n");
    let r = midge_ctrl(&words(&format!("-o {bad} dynsec listRoles")), "", &home.0);
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("Error: -p argument given but no port specified.\n", Some(1))
    );
    // A missing -o file is an error, not silently ignored.
    let r = midge_ctrl(
        &words("-o /nonexistent/ctrl.conf dynsec listRoles"),
        "",
        &home.0,
    );
    assert_eq!(r.code, Some(1), "{r:?}");
}

#[test]
fn connection_failures() {
    let p = Pair::start();
    let dir = &p.dir.0;
    // Refused CONNECT: the same message; mosquitto_ctrl exits 0, midge ctrl 1.
    for v in ["5", "311"] {
        let args = |b: &Mosquitto| {
            words(&format!(
                "-h 127.0.0.1 -p {} -V {v} -u {ADMIN} -P wrong dynsec listClients",
                b.port
            ))
        };
        let m = mosquitto_ctrl(&args(&p.mosquitto_side), "", dir);
        let g = midge_ctrl(&args(&p.midge_side), "", dir);
        assert_eq!(
            (g.stdout.as_str(), g.stderr.as_str()),
            (m.stdout.as_str(), m.stderr.as_str())
        );
        assert_eq!((m.code, g.code), (Some(0), Some(1)));
    }
    // Nothing listening.
    let closed = free_port();
    let args = words(&format!(
        "-h 127.0.0.1 -p {closed} -u a -P b dynsec listClients"
    ));
    let (m, g) = (mosquitto_ctrl(&args, "", dir), midge_ctrl(&args, "", dir));
    assert_eq!(g, m);
    assert_eq!(g.code, Some(14));
    // Other module, no module.
    for a in ["frob listClients", "dynsec", ""] {
        let (m, g) = (
            mosquitto_ctrl(&words(a), "", dir),
            midge_ctrl(&words(a), "", dir),
        );
        assert_eq!(
            (g.stderr.as_str(), g.code),
            (m.stderr.as_str(), m.code),
            "{a}"
        );
    }
    // Every protocol version and QoS.
    for v in ["31", "311", "5"] {
        for q in ["0", "1", "2"] {
            let mut args = p.midge_side.admin();
            args.extend(words(&format!("-V {v} -q {q} dynsec listRoles")));
            let r = midge_ctrl(&args, "", dir);
            assert_eq!(
                (r.stdout.as_str(), r.code),
                ("admin\n", Some(0)),
                "-V {v} -q {q}: {r:?}"
            );
        }
    }
}

#[test]
fn no_answer_times_out_with_a_message() {
    // A "broker" that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = thread::spawn(move || {
        let conn = listener.accept();
        thread::sleep(Duration::from_secs(12));
        drop(conn);
    });
    let home = TempDir::new();
    let started = Instant::now();
    let r = midge_ctrl(
        &words(&format!(
            "-h 127.0.0.1 -p {port} -u a -P b dynsec listClients"
        )),
        "",
        &home.0,
    );
    let took = started.elapsed();
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("Timed out"), "{r:?}");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "{took:?}"
    );
    holder.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// TLS and TLS-PSK
// ---------------------------------------------------------------------------------------

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

/// A certificate for `names` (DNS names) and 127.0.0.1 when `with_ip`, as (cert, key) PEM.
fn leaf(ca: &Ca, cn: &str, names: &[&str], with_ip: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if with_ip {
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn tls_and_psk_connections() {
    require_mosquitto();
    let dir = TempDir::new();
    let dynsec = init_file(&dir, "tls.json");
    let ca = make_ca("Midge ctrl test CA");
    let other = make_ca("Other CA");
    let (sc, sk) = leaf(&ca, "localhost", &["localhost"], true);
    let (wc, wk) = leaf(&ca, "elsewhere", &["elsewhere.example"], false);
    let (cc, ck) = leaf(&ca, "ctrl client", &[], false);
    let ca_file = dir.write("ca.crt", &ca.cert.pem());
    let other_ca = dir.write("other.crt", &other.cert.pem());
    let server = (dir.write("server.crt", &sc), dir.write("server.key", &sk));
    let wrong = (dir.write("wrong.crt", &wc), dir.write("wrong.key", &wk));
    let client = (dir.write("client.crt", &cc), dir.write("client.key", &ck));
    let psk_file = dir.write("psk.txt", "ctrl-id:00112233445566778899aabbccddeeff\n");
    let (tls_port, mutual_port, wrong_port, psk_port) =
        (free_port(), free_port(), free_port(), free_port());
    let listeners = format!(
        "listener {tls_port} 127.0.0.1\ncafile {ca_file}\ncertfile {}\nkeyfile {}\n\
         listener {mutual_port} 127.0.0.1\ncafile {ca_file}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
         listener {wrong_port} 127.0.0.1\ncafile {ca_file}\ncertfile {}\nkeyfile {}\n\
         listener {psk_port} 127.0.0.1\npsk_hint midge\npsk_file {psk_file}\n",
        server.0, server.1, server.0, server.1, wrong.0, wrong.1
    );
    let b = Mosquitto::start_with(&dir, "tls", &dynsec, tls_port, &listeners);
    let home = TempDir::new();
    let args = |opts: &str| {
        let mut a = words(opts);
        a.extend(words(&format!("-u {ADMIN} -P {ADMIN_PW} dynsec listRoles")));
        a
    };
    let ours = |opts: String| midge_ctrl(&args(&opts), "", &home.0);
    let both = |opts: String| {
        (
            midge_ctrl(&args(&opts), "", &home.0),
            mosquitto_ctrl(&args(&opts), "", &home.0),
        )
    };
    // Server TLS, by name and by address: no "without encryption" warning.
    for host in ["localhost", "127.0.0.1"] {
        let (g, m) = both(format!("-h {host} -p {tls_port} --cafile {ca_file}"));
        assert_eq!(g, m, "{host}\n{}", b.log());
        assert_eq!((g.stdout.as_str(), g.stderr.as_str()), ("admin\n", ""));
    }
    // --capath: a directory of hashed CA certificates.
    let capath = dir.0.join("capath");
    fs::create_dir(&capath).unwrap();
    let hash = Command::new("openssl")
        .args(["x509", "-hash", "-noout", "-in", &ca_file])
        .output()
        .expect("openssl");
    let hash = String::from_utf8(hash.stdout).unwrap();
    fs::copy(&ca_file, capath.join(format!("{}.0", hash.trim()))).unwrap();
    let g = ours(format!(
        "-h localhost -p {tls_port} --capath {}",
        capath.display()
    ));
    assert_eq!((g.stdout.as_str(), g.code), ("admin\n", Some(0)), "{g:?}");
    // Mutual TLS.
    let (g, m) = both(format!(
        "-h localhost -p {mutual_port} --cafile {ca_file} --cert {} --key {}",
        client.0, client.1
    ));
    assert_eq!(g, m);
    assert_eq!(g.stdout, "admin\n");
    // --tls-version.
    let g = ours(format!(
        "-h localhost -p {tls_port} --cafile {ca_file} --tls-version tlsv1.2"
    ));
    assert_eq!(g.stdout, "admin\n", "{g:?}");
    // Without a client certificate the mutual listener refuses.
    let g = ours(format!("-h localhost -p {mutual_port} --cafile {ca_file}"));
    assert_ne!(g.code, Some(0), "{g:?}");
    // The wrong CA, and a certificate for another name: refused; --insecure accepts the name.
    let g = ours(format!("-h localhost -p {tls_port} --cafile {other_ca}"));
    assert_eq!(g.code, Some(8), "{g:?}");
    assert!(g.stderr.contains("A TLS error occurred"), "{g:?}");
    let g = ours(format!("-h localhost -p {wrong_port} --cafile {ca_file}"));
    assert_eq!(g.code, Some(8), "{g:?}");
    let (g, m) = both(format!(
        "-h localhost -p {wrong_port} --cafile {ca_file} --insecure"
    ));
    assert_eq!(g, m);
    assert_eq!(g.stdout, "admin\n");
    // A missing CA file.
    let (g, m) = both(format!(
        "-h localhost -p {tls_port} --cafile /nonexistent.crt"
    ));
    assert_eq!((g.stderr.as_str(), g.code), (m.stderr.as_str(), Some(1)));
    // TLS-PSK.
    let g = ours(format!(
        "-h 127.0.0.1 -p {psk_port} --psk 00112233445566778899aabbccddeeff --psk-identity ctrl-id"
    ));
    assert_eq!(
        (g.stdout.as_str(), g.code),
        ("admin\n", Some(0)),
        "{g:?}\n{}",
        b.log()
    );
    let g = ours(format!(
        "-h 127.0.0.1 -p {psk_port} --psk 00 --psk-identity ctrl-id"
    ));
    assert_ne!(g.code, Some(0), "{g:?}");
}

#[test]
fn unix_socket_and_bind_address() {
    require_mosquitto();
    let dir = TempDir::new();
    let dynsec = init_file(&dir, "unix.json");
    let sock = dir.0.join("mqtt.sock");
    let port = free_port();
    let b = Mosquitto::start_with(
        &dir,
        "unix",
        &dynsec,
        port,
        &format!("listener {port} 127.0.0.1\nlistener 0 {}\n", sock.display()),
    );
    let login = format!("-u {ADMIN} -P {ADMIN_PW} dynsec listRoles");
    let unix = words(&format!("--unix {} {login}", sock.display()));
    let g = midge_ctrl(&unix, "", &dir.0);
    let m = mosquitto_ctrl(&unix, "", &dir.0);
    assert_eq!((g.stdout.as_str(), g.code), (m.stdout.as_str(), m.code));
    assert_eq!(g.stdout, "admin\n", "{g:?}\n{}", b.log());
    // Nothing crosses a network there: no warning (mosquitto_ctrl prints it anyway).
    assert_eq!(g.stderr, "");
    let r = midge_ctrl(
        &words(&format!("--unix {}/missing.sock {login}", dir.0.display())),
        "",
        &dir.0,
    );
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("Error: No such file or directory\n", Some(14))
    );
    // -A: the local address to connect from.
    let r = midge_ctrl(
        &words(&format!(
            "-A 127.0.0.1 -h 127.0.0.1 -p {port} --quiet {login}"
        )),
        "",
        &dir.0,
    );
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("admin\n", ""));
    assert!(b.log().contains("New connection from 127.0.0.1"));
}

/// Reads one MQTT packet (first byte, body) from a raw socket.
fn read_packet(s: &mut TcpStream) -> (u8, Vec<u8>) {
    use std::io::Read;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let first = b[0];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        s.read_exact(&mut b).unwrap();
        len |= usize::from(b[0] & 0x7f) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (first, body)
}

fn publish_packet(retain: bool, payload: &str) -> Vec<u8> {
    let topic = b"$CONTROL/dynamic-security/v1/response";
    let len = 2 + topic.len() + payload.len();
    assert!(len < 128);
    let mut p = vec![0x30 | u8::from(retain), len as u8, 0, topic.len() as u8];
    p.extend_from_slice(topic);
    p.extend_from_slice(payload.as_bytes());
    p
}

#[test]
fn a_retained_message_on_the_response_topic_is_not_the_answer() {
    // A hand-written MQTT 3.1.1 "broker" that offers a retained message first.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (first, _) = read_packet(&mut s);
        assert_eq!(first >> 4, 1, "CONNECT");
        s.write_all(&[0x20, 2, 0, 0]).unwrap();
        let (first, body) = read_packet(&mut s);
        assert_eq!(first, 0x82, "SUBSCRIBE");
        s.write_all(&[0x90, 3, body[0], body[1], 1]).unwrap();
        let (first, body) = read_packet(&mut s);
        assert_eq!(first, 0x32, "PUBLISH at QoS 1");
        let request = String::from_utf8_lossy(&body).into_owned();
        let id = &body[body.len() - 2 - r#"{"commands":[{"command":"listRoles"}]}"#.len()..];
        s.write_all(&[0x40, 2, id[0], id[1]]).unwrap();
        s.write_all(&publish_packet(
            true,
            r#"{"responses":[{"command":"listRoles","data":{"roles":["old"]}}]}"#,
        ))
        .unwrap();
        s.write_all(&publish_packet(
            false,
            r#"{"responses":[{"command":"listRoles","data":{"roles":["new"]}}]}"#,
        ))
        .unwrap();
        let (first, _) = read_packet(&mut s);
        assert_eq!(first, 0xe0, "DISCONNECT");
        request
    });
    let home = TempDir::new();
    let r = midge_ctrl(
        &words(&format!(
            "-h 127.0.0.1 -p {port} -V mqttv311 --quiet dynsec listRoles"
        )),
        "",
        &home.0,
    );
    let request = broker.join().unwrap();
    assert!(
        request.ends_with(r#"{"commands":[{"command":"listRoles"}]}"#),
        "{request}"
    );
    assert_eq!((r.stdout.as_str(), r.code), ("new\n", Some(0)), "{r:?}");
}
