//! Dynamic security, Midge against Debian's Mosquitto 2.0.11 with its plugin, as real
//! processes: the same administration commands (through `mosquitto_ctrl` and `midge ctrl`)
//! print the same, files move between the two brokers in both directions, and logins and
//! ACLs look the same to `mosquitto_pub` / `mosquitto_sub`.
//!
//! These tests never skip: without Mosquitto they fail and say how to install it.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::dynsec::{
    dynsec_conf, require_mosquitto, run, words, Ctrl, MidgeBroker, Mosquitto, Run, ADMIN, ADMIN_PW,
    INSTALL_MOSQUITTO,
};
use common::{free_port, TempDir};

/// Both brokers started from copies of one `mosquitto_ctrl dynsec init` file.
struct Both {
    dir: TempDir,
    mosquitto: Mosquitto,
    midge: MidgeBroker,
}

impl Both {
    fn start() -> Both {
        require_mosquitto();
        let dir = TempDir::new();
        let init = Ctrl::Mosquitto.init(&dir, "init.json");
        let (mosquitto, midge) = start_both_on(&dir, &init, false);
        Both {
            dir,
            mosquitto,
            midge,
        }
    }

    /// Runs `command` with `tool` against both; returns (Mosquitto's run, Midge's run).
    fn both(&self, tool: Ctrl, command: &str) -> (Run, Run) {
        (
            tool.dynsec(self.mosquitto.port, command, &self.dir.0),
            tool.dynsec(self.midge.port, command, &self.dir.0),
        )
    }
}

/// Every command the `dynsec` module has, with successes, every error the broker answers
/// with, and argument errors, in an order where each one sees what the earlier ones did.
const SEQUENCE: &[&str] = &[
    "listClients",
    "listGroups",
    "listRoles",
    "getRole admin",
    "getClient admin",
    "getDefaultACLAccess",
    "getAnonymousGroup",
    "createClient alice -p alicepw -c aliceid",
    "createClient alice -p alicepw",
    "createClient bob -p bobpw",
    "createClient carol -p carolpw",
    "createRole r1",
    "createRole r1",
    "createRole r2",
    "createRole r3",
    "addRoleACL r1 publishClientSend a/# allow 5",
    "addRoleACL r1 subscribePattern a/# deny",
    "addRoleACL r1 subscribeLiteral a/b allow",
    "addRoleACL r1 unsubscribePattern # allow -3",
    "addRoleACL r1 publishClientSend a/# allow",
    "addRoleACL r1 publishClientReceive a/+/c deny 100",
    "addRoleACL r2 subscribePattern x/# allow 1",
    "addRoleACL r2 unsubscribeLiteral x/y deny",
    "addRoleACL nope publishClientSend a/# allow",
    "addRoleACL r3 publishClientSend big/# allow 200000",
    "addRoleACL r3 publishClientSend small/# allow -200000",
    "addRoleACL r3 subscribePattern a/#/b allow",
    "addRoleACL r3 subscribeLiteral a/#/b allow",
    "addRoleACL r3 publishClientSend a/+x allow",
    "addRoleACL r3 unsubscribePattern é/ü allow",
    "createClient josé -p pw",
    "getClient josé",
    "deleteClient josé",
    "addClientRole alice r1 3",
    "addClientRole alice r2",
    "addClientRole bob r1",
    "addClientRole alice r1 3",
    "addClientRole nobody r1",
    "addClientRole bob norole",
    "getClient alice",
    "getClient bob",
    "getClient nobody",
    "listClients",
    "listClients 1",
    "listClients 1 1",
    "listClients 2 2",
    "listClients 10 10",
    "createGroup g1",
    "createGroup g2",
    "createGroup g1",
    "addGroupClient g1 alice 7",
    "addGroupClient g1 bob",
    "addGroupClient g2 alice",
    "addGroupClient g1 alice",
    "addGroupClient g1 nobody",
    "addGroupClient nogroup alice",
    "addGroupRole g1 r1 2",
    "addGroupRole g1 r2",
    "addGroupRole g2 r3 9",
    "addGroupRole g1 r2",
    "addGroupRole nogroup r1",
    "addGroupRole g1 norole",
    "getGroup g1",
    "getGroup g2",
    "getGroup nogroup",
    "getClient alice",
    "getClient bob",
    "listGroups",
    "listGroups 1",
    "listGroups 1 1",
    "listRoles",
    "listRoles 2",
    "listRoles 2 1",
    "getRole r1",
    "getRole r2",
    "getRole r3",
    "getRole norole",
    "getAnonymousGroup",
    "setAnonymousGroup g2",
    "setAnonymousGroup nogroup",
    "getAnonymousGroup",
    "setClientId alice newid",
    "getClient alice",
    "setClientId alice",
    "getClient alice",
    "setClientId nobody x",
    "setClientPassword bob bobpw2",
    "setClientPassword nobody x",
    "removeRoleACL r1 subscribeLiteral a/b",
    "removeRoleACL r1 subscribeLiteral a/b",
    "removeRoleACL norole subscribeLiteral a/b",
    "getRole r1",
    "removeGroupRole g1 r1",
    "removeGroupRole g1 r1",
    "removeGroupRole nogroup r1",
    "removeGroupClient g1 bob",
    "removeGroupClient g1 bob",
    "removeGroupClient nogroup bob",
    "getGroup g1",
    "removeClientRole alice r1",
    "removeClientRole alice r1",
    "removeClientRole nobody r1",
    "getClient alice",
    "disableClient alice",
    "getClient alice",
    "disableClient nobody",
    "enableClient alice",
    "getClient alice",
    "enableClient nobody",
    "deleteClient bob",
    "deleteClient bob",
    "getGroup g1",
    // Not the anonymous group g2: deleting it stops mosquitto 2.0.11.
    "deleteGroup g1",
    "deleteGroup g1",
    "getClient alice",
    "deleteRole r2",
    "deleteRole r2",
    "getClient alice",
    "deleteRole r3",
    "getGroup g2",
    "listClients",
    "listGroups",
    "listRoles",
    "setDefaultACLAccess publishClientSend allow",
    "setDefaultACLAccess subscribe allow",
    "getDefaultACLAccess",
    // Argument errors, caught by the tool.
    "getClient",
    "createClient",
    "frob",
    "addRoleACL r1 bad a allow",
    "setDefaultACLAccess subscribe maybe",
];

/// Where Midge answers differently, on purpose: (command, what Midge prints, what Mosquitto
/// 2.0.11 prints instead). Midge clamps priorities to ±100000 as Mosquitto 2.1 does; 2.0.11
/// keeps them as given.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "getRole r3",
    "big/# (priority: 100000)\n          publishClientSend    : allow : small/# (priority: -100000)",
    "big/# (priority: 200000)\n          publishClientSend    : allow : small/# (priority: -200000)",
)];

/// Runs the sequence with `tool` against both brokers. Fails with every command whose runs
/// differ; returns Midge's runs by command (the last of repeated ones).
fn same_answers(b: &Both, tool: Ctrl) -> HashMap<&'static str, Run> {
    let mut diffs = Vec::new();
    let mut runs = HashMap::new();
    for &command in SEQUENCE {
        let (m, g) = b.both(tool, command);
        let known = KNOWN_DIFFERENCES.iter().find(|k| k.0 == command);
        if let Some((_, ours, theirs)) = known {
            // Exactly this difference, nothing else.
            let expected = Run {
                stdout: g.stdout.replace(ours, theirs),
                ..g.clone()
            };
            assert_ne!(g.stdout, expected.stdout, "`{command}`: {g:?}");
            if m != expected {
                diffs.push(format!(
                    "`dynsec {command}` (beyond the known difference)\n  mosquitto: {m:?}\n  midge:     {g:?}"
                ));
            }
        } else if m != g {
            diffs.push(format!(
                "`dynsec {command}`\n  mosquitto: {m:?}\n  midge:     {g:?}"
            ));
        }
        runs.insert(command, g);
    }
    assert!(
        diffs.is_empty(),
        "{tool:?}: Midge answers differently from Mosquitto:\n{}\n--- mosquitto log:\n{}\n--- midge log:\n{}",
        diffs.join("\n"),
        b.mosquitto.log(),
        b.midge.log()
    );
    runs
}

/// A dynsec file without what must differ between two brokers: password hashes and salts;
/// and the documented differences of Midge's files (`midge`), checked, then removed: 2.1's
/// `changeIndex` and `allowwildcardsubs` (which 2.0.11 ignores), and 1,000 iterations for
/// passwords Midge hashed (2.0.11: 101).
fn normalised(file: &Path, midge: bool) -> serde_json::Value {
    let text = fs::read(file).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let doc = v.as_object_mut().unwrap();
    if midge {
        assert!(doc.remove("changeIndex").is_some_and(|c| c.is_u64()));
    }
    for client in doc["clients"].as_array_mut().unwrap() {
        let client = client.as_object_mut().unwrap();
        for key in ["password", "salt", "encoded_password"] {
            client.remove(key);
        }
        if midge && client["username"] != ADMIN {
            assert_eq!(client.remove("iterations"), Some(1000.into()));
        } else if !midge && client["username"] != ADMIN {
            assert_eq!(client.remove("iterations"), Some(101.into()));
        }
    }
    for role in doc["roles"].as_array_mut().unwrap() {
        let role = role.as_object_mut().unwrap();
        if midge {
            assert_eq!(role.remove("allowwildcardsubs"), Some(true.into()));
        }
    }
    v
}

/// Spot checks that the comparison compares something.
fn spot_checks(runs: &HashMap<&str, Run>) {
    let out = |c: &str| runs[c].stdout.clone();
    let err = |c: &str| runs[c].stderr.lines().last().unwrap_or("").to_string();
    assert_eq!(out("listRoles"), "admin\nr1\n");
    assert_eq!(out("listClients"), "admin\nalice\ncarol\n");
    // The last one: r1 removed from alice, r2 deleted, g1 deleted.
    assert_eq!(
        out("getClient alice"),
        "Username: alice\nClientid:\nGroups:   g2 (priority: -1)\n"
    );
    assert!(out("getRole r3").contains(" : allow : big/# (priority: "));
    assert_eq!(
        err("getClient nobody"),
        "getClient: Error: Client not found"
    );
    assert_eq!(
        err("createRole r1"),
        "createRole: Error: Role already exists"
    );
    assert_eq!(
        err("addGroupClient g1 alice"),
        "addGroupClient: Error: Client is already in this group"
    );
    assert_eq!(runs["getClient nobody"].code, Some(0));
    assert_eq!(runs["frob"].code, Some(13));
}

#[test]
fn mosquitto_ctrl_gets_the_same_answers_from_both_brokers() {
    let b = Both::start();
    let runs = same_answers(&b, Ctrl::Mosquitto);
    spot_checks(&runs);
    assert_eq!(
        normalised(&b.dir.0.join("midge.json"), true),
        normalised(&b.dir.0.join("mosquitto.json"), false),
        "the files the brokers wrote (midge left, mosquitto right)"
    );
    // mosquitto_ctrl 2.0.11 sends `"access":"allow"`, which both brokers ignore.
    assert_eq!(
        runs["getDefaultACLAccess"].stdout,
        "publishClientSend    : deny\npublishClientReceive : allow\nsubscribe            : deny\nunsubscribe          : allow\n"
    );
}

#[test]
fn midge_ctrl_gets_the_same_answers_from_both_brokers() {
    let b = Both::start();
    let runs = same_answers(&b, Ctrl::Midge);
    spot_checks(&runs);
    // midge ctrl sends the boolean `allow` both brokers read.
    assert_eq!(
        runs["getDefaultACLAccess"].stdout,
        "publishClientSend    : allow\npublishClientReceive : allow\nsubscribe            : allow\nunsubscribe          : allow\n"
    );
}

// ---------------------------------------------------------------------------------------
// Logins and ACLs seen by mosquitto_pub / mosquitto_sub
// ---------------------------------------------------------------------------------------

/// Who connects: a username and password (none = anonymous) and the client id to use.
#[derive(Clone, Copy, Debug)]
struct Login {
    user: Option<(&'static str, &'static str)>,
    id: &'static str,
}

const fn login(user: &'static str, password: &'static str, id: &'static str) -> Login {
    Login {
        user: Some((user, password)),
        id,
    }
}

const fn anonymous(id: &'static str) -> Login {
    Login { user: None, id }
}

impl Login {
    fn args(&self, port: u16) -> Vec<String> {
        let mut a = words(&format!("-h 127.0.0.1 -p {port} -i {}", self.id));
        if let Some((user, password)) = self.user {
            a.extend(words(&format!("-u {user} -P {password}")));
        }
        a
    }
}

/// One subscriber and one publish: what `mosquitto_sub -d -v` printed (its debug lines name
/// the fixed client id, so nothing in them differs between runs), and the publisher's run.
#[derive(Debug, PartialEq)]
struct Seen {
    subscriber: Run,
    publisher: Run,
}

impl Seen {
    /// The message line `-v` prints for `topic`, if it arrived.
    fn got(&self, topic: &str) -> bool {
        self.subscriber
            .stdout
            .lines()
            .any(|l| l == format!("{topic} {PAYLOAD}"))
    }
}

const PAYLOAD: &str = "hello";

/// `subscriber` subscribes to `filter` (waiting up to 3 s for one message), and once its
/// SUBACK has arrived (or it has given up), `publisher` publishes `topic` at QoS 1 with
/// protocol `version`.
fn observe(
    port: u16,
    subscriber: Login,
    filter: &str,
    publisher: Login,
    topic: &str,
    version: &str,
) -> Seen {
    observe_payload(port, subscriber, filter, publisher, topic, version, PAYLOAD)
}

/// [`observe`] with the message `payload`.
fn observe_payload(
    port: u16,
    subscriber: Login,
    filter: &str,
    publisher: Login,
    topic: &str,
    version: &str,
    payload: &str,
) -> Seen {
    let mut args = words("-oL mosquitto_sub -d -v -C 1 -W 3");
    args.extend(subscriber.args(port));
    args.extend(["-t".to_string(), filter.to_string()]);
    let mut sub = KillOnDrop(
        Command::new("stdbuf")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run stdbuf mosquitto_sub ({e}): {INSTALL_MOSQUITTO}")
            }),
    );
    let child = &mut sub.0;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Until the SUBACK, or the end of its output (a refused login).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("received SUBACK") => break,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("mosquitto_sub: no SUBACK within 5 s"),
        }
    }
    let mut pub_args = publisher.args(port);
    pub_args.extend(words(&format!("-V {version} -q 1 -t {topic} -m")));
    pub_args.push(payload.to_string());
    let publisher = run("mosquitto_pub", &pub_args, "", Path::new("/nonexistent"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "mosquitto_sub did not end");
        thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    Seen {
        subscriber: Run {
            stdout: reader.join().unwrap(),
            stderr,
            code: status.code(),
        },
        publisher,
    }
}

/// A child process killed when dropped (a panic while waiting for it included).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a broker of each kind on a copy of `file`, anonymous clients as `allow_anonymous`.
fn start_both_on(dir: &TempDir, file: &Path, allow_anonymous: bool) -> (Mosquitto, MidgeBroker) {
    let (m, g) = (dir.0.join("mosquitto.json"), dir.0.join("midge.json"));
    fs::copy(file, &m).unwrap();
    fs::copy(file, &g).unwrap();
    let (mp, gp) = (free_port(), free_port());
    let conf = |f: &Path, port: u16| {
        dynsec_conf(f, allow_anonymous, &format!("listener {port} 127.0.0.1\n"))
    };
    (
        Mosquitto::start_conf(dir, "mosquitto", mp, &conf(&m, mp)),
        MidgeBroker::start_conf(dir, "midge", gp, &conf(&g, gp)),
    )
}

/// Runs `commands` with mosquitto_ctrl against one broker; each must succeed.
fn administer(port: u16, commands: &[&str], home: &Path) {
    for command in commands {
        let r = Ctrl::Mosquitto.dynsec(port, command, home);
        assert!(
            r.code == Some(0) && !r.stderr.contains("Error"),
            "`dynsec {command}` on port {port}: {r:?}"
        );
    }
}

/// Users, roles and an anonymous group for the matrix.
const MATRIX_SETUP: &[&str] = &[
    "createClient pub -p pubpw",
    "createClient sub -p subpw",
    "createClient limited -p limitedpw",
    "createClient bound -p boundpw -c bound-id",
    "createRole publisher",
    "addRoleACL publisher publishClientSend m/# allow",
    "addRoleACL publisher publishClientSend m/denied/# deny 5",
    "createRole subscriber",
    "addRoleACL subscriber subscribePattern m/# allow",
    "addRoleACL subscriber subscribeLiteral m/+/literal allow",
    "addRoleACL subscriber publishClientReceive m/hidden/# deny 5",
    "addClientRole pub publisher",
    "addClientRole sub subscriber",
    "addClientRole bound subscriber",
    "createGroup anon",
    "createRole anonrole",
    "addRoleACL anonrole subscribePattern m/# allow",
    "addRoleACL anonrole publishClientSend m/anon allow",
    "addGroupRole anon anonrole",
    "setAnonymousGroup anon",
];

const PUB: Login = login("pub", "pubpw", "pub-client");
const SUB: Login = login("sub", "subpw", "sub-client");

#[test]
fn logins_and_acls_look_the_same_to_mosquitto_clients() {
    require_mosquitto();
    let dir = TempDir::new();
    let init = Ctrl::Mosquitto.init(&dir, "init.json");
    let (mosquitto, midge) = start_both_on(&dir, &init, true);
    administer(mosquitto.port, MATRIX_SETUP, &dir.0);
    administer(midge.port, MATRIX_SETUP, &dir.0);
    // (what, subscriber, filter, publisher, topic, protocol, delivered)
    let cases: [(&str, Login, &str, Login, &str, &str, bool); 13] = [
        ("allowed", SUB, "m/#", PUB, "m/ok", "311", true),
        (
            "allowed, MQTT 5 publisher",
            SUB,
            "m/#",
            PUB,
            "m/ok",
            "5",
            true,
        ),
        (
            "publish denied by a higher-priority ACL",
            SUB,
            "m/#",
            PUB,
            "m/denied/x",
            "311",
            false,
        ),
        (
            "publish denied, MQTT 5 publisher",
            SUB,
            "m/#",
            PUB,
            "m/denied/x",
            "5",
            false,
        ),
        (
            "receive denied",
            SUB,
            "m/#",
            PUB,
            "m/hidden/x",
            "311",
            false,
        ),
        (
            "literal subscription",
            SUB,
            "m/+/literal",
            PUB,
            "m/a/literal",
            "311",
            true,
        ),
        (
            "subscribe denied by default",
            login("limited", "limitedpw", "limited-client"),
            "m/#",
            PUB,
            "m/ok",
            "311",
            false,
        ),
        (
            "publish denied by default",
            SUB,
            "m/#",
            login("limited", "limitedpw", "limited-client"),
            "m/ok",
            "5",
            false,
        ),
        (
            "anonymous subscriber",
            anonymous("anon-sub"),
            "m/#",
            PUB,
            "m/ok",
            "311",
            true,
        ),
        (
            "anonymous publisher",
            SUB,
            "m/#",
            anonymous("anon-pub"),
            "m/anon",
            "311",
            true,
        ),
        (
            "anonymous publisher denied",
            SUB,
            "m/#",
            anonymous("anon-pub"),
            "m/other",
            "5",
            false,
        ),
        (
            "wrong password",
            login("sub", "wrong", "sub-client"),
            "m/#",
            PUB,
            "m/ok",
            "311",
            false,
        ),
        (
            "client id bound",
            login("bound", "boundpw", "bound-id"),
            "m/#",
            PUB,
            "m/ok",
            "311",
            true,
        ),
    ];
    let mut diffs = Vec::new();
    for (what, sub, filter, publisher, topic, version, delivered) in cases {
        let m = observe(mosquitto.port, sub, filter, publisher, topic, version);
        let g = observe(midge.port, sub, filter, publisher, topic, version);
        assert_eq!(m.got(topic), delivered, "{what}: mosquitto: {m:#?}");
        if m != g {
            diffs.push(format!("{what}:\n  mosquitto: {m:?}\n  midge:     {g:?}"));
        }
    }
    // A client id other than the bound one, and unknown users, are refused by both.
    for bad in [
        login("bound", "boundpw", "other-id"),
        login("nobody", "x", "nobody-client"),
    ] {
        let args = |port| {
            let mut a = bad.args(port);
            a.extend(words("-t m/x -m x"));
            a
        };
        let m = run("mosquitto_pub", &args(mosquitto.port), "", &dir.0);
        let g = run("mosquitto_pub", &args(midge.port), "", &dir.0);
        assert_ne!(m.code, Some(0), "{bad:?}: {m:?}");
        if m != g {
            diffs.push(format!("{bad:?}:\n  mosquitto: {m:?}\n  midge:     {g:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "mosquitto_pub / mosquitto_sub see Midge differently:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn dynsec_files_move_between_the_brokers() {
    require_mosquitto();
    let dir = TempDir::new();
    let file = Ctrl::Mosquitto.init(&dir, "handover.json");
    // Written by Mosquitto: clients and roles added through its API.
    let mosquitto = Mosquitto::start(&dir, "mosquitto1", &file);
    administer(
        mosquitto.port,
        &[
            "createClient dave -p davepw",
            "createRole writer",
            "addRoleACL writer publishClientSend hand/# allow",
            "addRoleACL writer publishClientSend hand/secret/# deny 5",
            "addClientRole dave writer",
            "createClient erin -p erinpw -c erin-id",
            "createRole reader",
            "addRoleACL reader subscribePattern hand/# allow",
            "addClientRole erin reader",
        ],
        &dir.0,
    );
    drop(mosquitto);
    let dave = login("dave", "davepw", "dave-client");
    let erin = login("erin", "erinpw", "erin-id");
    let check_acls = |port: u16, dave: Login, who: &str| {
        let seen = observe(port, erin, "hand/#", dave, "hand/open", "311");
        assert!(seen.got("hand/open"), "{who}: {seen:#?}");
        let seen = observe(port, erin, "hand/#", dave, "hand/secret/x", "311");
        assert!(!seen.got("hand/secret/x"), "{who}: {seen:#?}");
    };

    // Midge loads it: the users log in with their passwords, and only with them.
    let midge = MidgeBroker::start(&dir, "midge", &file);
    assert_eq!(
        midge.publish("dave", "davepw", None),
        Some(0),
        "{}",
        midge.log()
    );
    assert_ne!(midge.publish("dave", "wrong", None), Some(0));
    assert_eq!(midge.publish("erin", "erinpw", Some("erin-id")), Some(0));
    assert_ne!(midge.publish("erin", "erinpw", Some("other")), Some(0));
    check_acls(midge.port, dave, "midge on mosquitto's file");
    // Changed through Midge's API.
    administer(
        midge.port,
        &[
            "createClient frank -p frankpw",
            "addClientRole frank writer",
            "setClientPassword dave davepw2",
        ],
        &dir.0,
    );
    assert_ne!(midge.publish("dave", "davepw", None), Some(0));
    assert_eq!(midge.publish("dave", "davepw2", None), Some(0));
    drop(midge);

    // Mosquitto loads what Midge wrote.
    let mosquitto = Mosquitto::start(&dir, "mosquitto2", &file);
    assert_eq!(
        mosquitto.publish("frank", "frankpw", None),
        Some(0),
        "{}",
        mosquitto.log()
    );
    assert_ne!(mosquitto.publish("frank", "wrong", None), Some(0));
    assert_eq!(mosquitto.publish("dave", "davepw2", None), Some(0));
    assert_ne!(mosquitto.publish("dave", "davepw", None), Some(0));
    assert_eq!(
        mosquitto.publish("erin", "erinpw", Some("erin-id")),
        Some(0)
    );
    let dave = login("dave", "davepw2", "dave-client");
    check_acls(mosquitto.port, dave, "mosquitto on midge's file");
    let frank = login("frank", "frankpw", "frank-client");
    let seen = observe(mosquitto.port, erin, "hand/#", frank, "hand/frank", "311");
    assert!(seen.got("hand/frank"), "{seen:#?}");
    // The admin still administers it.
    let r = Ctrl::Mosquitto.dynsec(mosquitto.port, "listClients", &dir.0);
    assert_eq!(r.stdout, "admin\ndave\nerin\nfrank\n", "{r:?}");
}

// ---------------------------------------------------------------------------------------
// The JSON API itself, for what mosquitto_ctrl cannot send
// ---------------------------------------------------------------------------------------

/// Requests published as they are to `$CONTROL/dynamic-security/v1`, in order.
const API_REQUESTS: &[&str] = &[
    r#"{"commands":[{"command":"createClient","username":"alice","password":"pw","correlationData":"1"},{"command":"createRole","rolename":"r1"},{"command":"createRole","rolename":"r2"},{"command":"createGroup","groupname":"g1"},{"command":"createGroup","groupname":"g2"}]}"#,
    r#"{"commands":[{"command":"modifyClient","username":"alice","textname":"Alice","textdescription":"The first","clientid":"alice-id","password":"pw2","roles":[{"rolename":"r1","priority":2},{"rolename":"r2"}],"groups":[{"groupname":"g1","priority":3}]}]}"#,
    r#"{"commands":[{"command":"getClient","username":"alice"}]}"#,
    r#"{"commands":[{"command":"modifyClient","username":"alice","clientid":""}]}"#,
    r#"{"commands":[{"command":"getClient","username":"alice"}]}"#,
    r#"{"commands":[{"command":"modifyClient","username":"alice","roles":[{"rolename":"nope"}]}]}"#,
    r#"{"commands":[{"command":"modifyClient","username":"nobody","textname":"x"}]}"#,
    r#"{"commands":[{"command":"modifyGroup","groupname":"g1","textname":"G one","textdescription":"d","roles":[{"rolename":"r2","priority":4}]}]}"#,
    r#"{"commands":[{"command":"getGroup","groupname":"g1"}]}"#,
    r#"{"commands":[{"command":"modifyRole","rolename":"r1","textname":"R one","textdescription":"d","acls":[{"acltype":"publishClientSend","topic":"x/#","priority":3,"allow":true},{"acltype":"subscribeLiteral","topic":"x/y","allow":false}]}]}"#,
    r#"{"commands":[{"command":"getRole","rolename":"r1"}]}"#,
    r#"{"commands":[{"command":"listClients","verbose":true}]}"#,
    r#"{"commands":[{"command":"listGroups","verbose":true,"count":1,"offset":1}]}"#,
    r#"{"commands":[{"command":"listRoles","verbose":true}]}"#,
    r#"{"commands":[{"command":"modifyClient","username":"alice","groups":[{"groupname":"nope"}]}]}"#,
    // Mosquitto dropped alice from g1 above; now both brokers have.
    r#"{"commands":[{"command":"modifyClient","username":"alice","groups":[]},{"command":"getGroup","groupname":"g1"}]}"#,
    r#"{"commands":[{"command":"setDefaultACLAccess","acls":[{"acltype":"publishClientSend","allow":true},{"acltype":"subscribe","allow":true}]},{"command":"getDefaultACLAccess"}]}"#,
    r#"{"commands":[{"command":"createClient","username":"bob","password":"pw","roles":[{"rolename":"r1"}],"groups":[{"groupname":"g2","priority":1}]},{"command":"getClient","username":"bob"}]}"#,
    r#"{"commands":[{"command":"getGroup","groupname":"g2"}]}"#,
    r#"{"commands":[{"command":"addGroupClient","groupname":"g2","username":"alice","priority":5},{"command":"getGroup","groupname":"g2"},{"command":"getClient","username":"alice"}]}"#,
    r#"{"commands":[{"command":"createRole","rolename":"r3","acls":[{"acltype":"subscribePattern","topic":"s/#","allow":true}]},{"command":"getRole","rolename":"r3"}]}"#,
    r#"{"commands":[{"command":"createGroup","groupname":"g3","roles":[{"rolename":"r3"}]},{"command":"getGroup","groupname":"g3"}]}"#,
    r#"{"commands":[{"command":"GETCLIENT","username":"bob","correlationData":"case"}]}"#,
    r#"{"commands":[{"command":"createClient"}]}"#,
    r#"{"commands":[{"command":"createClient","username":"x","password":5}]}"#,
    r#"{"commands":[{"command":"createClient","username":5}]}"#,
    r#"{"commands":[{"command":"setClientPassword","username":"bob","password":""}]}"#,
    r#"{"commands":[{"command":"addRoleACL","rolename":"r1","acltype":"frob","topic":"a"}]}"#,
    r#"{"commands":[{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend"}]}"#,
    r#"{"commands":[{"command":"addGroupClient","groupname":"g1","username":"nobody"}]}"#,
    r#"{"commands":[{"command":"frob","correlationData":"x"}]}"#,
    r#"{"commands":[{"command":"getClient","username":"bob","correlationData":5}]}"#,
    r#"{"commands":[{}]}"#,
    r#"{"commands":[1]}"#,
    r#"{"commands":"x"}"#,
    r#"{"x":1}"#,
    "not json",
    r#"{"commands":[{"command":"deleteClient","username":"alice"},{"command":"deleteRole","rolename":"r1"},{"command":"deleteGroup","groupname":"g1"},{"command":"listClients"},{"command":"listRoles"},{"command":"listGroups"}]}"#,
    r#"{"commands":[{"command":"getClient","username":"bob"}]}"#,
];

/// Where Midge answers differently, on purpose: (request, Mosquitto 2.0.11's answer, Midge's).
/// A `groups` list naming a group that does not exist is refused with 2.1.2's error;
/// 2.0.11 reports success and drops the client from every group.
const KNOWN_API_DIFFERENCES: &[(&str, &str, &str)] = &[(
    r#"{"commands":[{"command":"modifyClient","username":"alice","groups":[{"groupname":"nope"}]}]}"#,
    r#"{"responses":[{"command":"modifyClient"}]}"#,
    r#"{"responses":[{"command":"modifyClient","error":"'groups' contains an object with a 'groupname' that does not exist"}]}"#,
)];

/// Where Mosquitto 2.0.11 answers from freed memory, with Midge's (right) answer. Deleting
/// alice and r1 in one batch leaves bob, who had r1, with a dangling role: 2.0.11's answer
/// lists a role with a garbage name, and its file saves one ("admin" and "defaultACLAccess"
/// seen), which bob has after a restart.
const MOSQUITTO_USE_AFTER_FREE: &[(&str, &str)] = &[(
    r#"{"commands":[{"command":"getClient","username":"bob"}]}"#,
    r#"{"responses":[{"command":"getClient","data":{"client":{"username":"bob","roles":[],"groups":[{"groupname":"g2","priority":1}]}}}]}"#,
)];

/// Removes 2.1's `"allowwildcardsubs": true` from every role in a Midge answer (2.0.11 has
/// no such field); returns how many there were.
fn strip_allowwildcardsubs(v: &mut serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(map) => {
            let own = match map.get("allowwildcardsubs") {
                Some(serde_json::Value::Bool(true)) if map.contains_key("rolename") => {
                    map.remove("allowwildcardsubs");
                    1
                }
                _ => 0,
            };
            own + map.values_mut().map(strip_allowwildcardsubs).sum::<usize>()
        }
        serde_json::Value::Array(items) => items.iter_mut().map(strip_allowwildcardsubs).sum(),
        _ => 0,
    }
}

/// Removes the `priority` of every client a group lists in a Midge answer (Mosquitto 2.0.11
/// never lists it there, though the client's own `groups` show it); returns how many.
fn strip_group_client_priorities(v: &mut serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(map) => {
            let mut n = 0;
            if map.contains_key("groupname") {
                if let Some(clients) = map.get_mut("clients").and_then(|c| c.as_array_mut()) {
                    for client in clients.iter_mut().filter_map(|c| c.as_object_mut()) {
                        n += usize::from(client.remove("priority").is_some());
                    }
                }
            }
            n + map
                .values_mut()
                .map(strip_group_client_priorities)
                .sum::<usize>()
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().map(strip_group_client_priorities).sum()
        }
        _ => 0,
    }
}

const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
const REQUEST_TOPIC: &str = "$CONTROL/dynamic-security/v1";

/// The broker's answer to `request` (the `-v` line, without the topic), or what the
/// subscriber printed when there was none.
fn api(port: u16, request: &str) -> String {
    let seen = observe_payload(
        port,
        login(ADMIN, ADMIN_PW, "admin-sub"),
        RESPONSE_TOPIC,
        login(ADMIN, ADMIN_PW, "admin-pub"),
        REQUEST_TOPIC,
        "311",
        request,
    );
    let prefix = format!("{RESPONSE_TOPIC} ");
    match seen
        .subscriber
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
    {
        Some(answer) => answer.to_string(),
        None => format!("no answer: {seen:?}"),
    }
}

#[test]
fn the_json_api_answers_the_same() {
    require_mosquitto();
    let dir = TempDir::new();
    let init = Ctrl::Mosquitto.init(&dir, "init.json");
    let (mosquitto, midge) = start_both_on(&dir, &init, false);
    let mut diffs = Vec::new();
    let (mut wildcard_flags, mut group_priorities) = (0, 0);
    for &request in API_REQUESTS {
        let (m, g) = (api(mosquitto.port, request), api(midge.port, request));
        if let Some((_, ours)) = MOSQUITTO_USE_AFTER_FREE.iter().find(|k| k.0 == request) {
            assert_eq!(g, *ours, "{request}");
            continue;
        }
        if let Some((_, theirs, ours)) = KNOWN_API_DIFFERENCES.iter().find(|k| k.0 == request) {
            assert_eq!((m.as_str(), g.as_str()), (*theirs, *ours), "{request}");
            continue;
        }
        let parsed = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
        // The same JSON; members in another order would be no difference.
        let same = match (parsed(&m), parsed(&g)) {
            (Some(a), Some(mut b)) => {
                wildcard_flags += strip_allowwildcardsubs(&mut b);
                group_priorities += strip_group_client_priorities(&mut b);
                a == b
            }
            _ => m == g,
        };
        if !same {
            diffs.push(format!("{request}\n  mosquitto: {m}\n  midge:     {g}"));
        }
    }
    assert!(
        wildcard_flags > 0,
        "the roles' allowwildcardsubs were not seen"
    );
    assert!(group_priorities > 0, "no group listed a client's priority");
    // The files, but for bob's roles (see MOSQUITTO_USE_AFTER_FREE).
    let (mut ours, mut theirs) = (
        normalised(&dir.0.join("midge.json"), true),
        normalised(&dir.0.join("mosquitto.json"), false),
    );
    let bob_roles = |v: &mut serde_json::Value| {
        let clients = v["clients"].as_array_mut().unwrap();
        let bob = clients.iter_mut().find(|c| c["username"] == "bob").unwrap();
        bob.as_object_mut().unwrap().remove("roles")
    };
    assert_eq!(bob_roles(&mut ours), Some(serde_json::json!([])));
    bob_roles(&mut theirs);
    assert_eq!(
        ours, theirs,
        "the files the brokers wrote (midge left, mosquitto right)"
    );
    assert!(
        diffs.is_empty(),
        "the JSON API answers differently:\n{}",
        diffs.join("\n")
    );
}
