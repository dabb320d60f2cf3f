//! Dynamic security end to end: the Mosquitto configuration lines
//! `plugin …/mosquitto_dynamic_security.so` + `plugin_opt_config_file`, logins against the
//! JSON file (both the 2.0 `password`/`salt`/`iterations` form and the 2.1
//! `encoded_password` form), every ACL type with its allowed and denied case, the
//! priorities of seed 003's example, the `$CONTROL/dynamic-security/v1` API with its live
//! effects (kicks, CVE-2021-34434), and the file on disk.
//!
//! Expectations are Mosquitto's (plugins/dynamic-security in 2.0.x/2.1.x): refusals are
//! CONNACK 5 (3.1.1) / 0x87 (5.0); SUBSCRIBE denied is 0x80 / 0x87; a denied publish is
//! acknowledged (0x87 in 5.0) and dropped; a denied UNSUBSCRIBE answers 0x87 and keeps the
//! subscription; a kicked MQTT 5 client gets DISCONNECT 0x98 and, since Mosquitto kicks
//! with `with_will = false`, its will is not published.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use midge_core::dynsec::{Decision, DynSec, CONTROL_TOPIC, RESPONSE_TOPIC};
use midge_proto::{Connect, Packet, Properties, ProtocolVersion, QoS, Will};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const VERSIONS: [ProtocolVersion; 2] = [V311, V5];

/// Any directory will do: Midge recognises the plugin by its file name.
const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
const FILE: &str = "dynamic-security.json";

// ---------------------------------------------------------------------------------------
// A minimal JSON reader (the test crate has no JSON dependency)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(text: &str) -> Json {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing characters in {text}");
        v
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a JSON string, got {other:?}"),
        }
    }

    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("expected a JSON number, got {other:?}"),
        }
    }

    fn bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            other => panic!("expected a JSON boolean, got {other:?}"),
        }
    }

    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            other => panic!("expected a JSON array, got {other:?}"),
        }
    }

    /// The string items of an array.
    fn strings(&self) -> Vec<&str> {
        self.arr().iter().map(Json::str).collect()
    }
}

impl std::ops::Index<&str> for Json {
    type Output = Json;
    fn index(&self, key: &str) -> &Json {
        self.get(key).unwrap_or(&NULL)
    }
}

impl std::ops::Index<usize> for Json {
    type Output = Json;
    fn index(&self, i: usize) -> &Json {
        match self {
            Json::Arr(items) => items.get(i).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i).copied(),
            Some(b),
            "JSON: expected {:?} at {}",
            b as char,
            self.i
        );
        self.i += 1;
    }

    fn peek(&mut self) -> u8 {
        self.ws();
        *self.s.get(self.i).expect("JSON: unexpected end")
    }

    fn literal(&mut self, word: &str, v: Json) -> Json {
        assert!(
            self.s[self.i..].starts_with(word.as_bytes()),
            "JSON: bad literal at {}",
            self.i
        );
        self.i += word.len();
        v
    }

    fn value(&mut self) -> Json {
        match self.peek() {
            b'{' => {
                self.eat(b'{');
                let mut members = Vec::new();
                if self.peek() == b'}' {
                    self.i += 1;
                    return Json::Obj(members);
                }
                loop {
                    let key = self.string();
                    self.eat(b':');
                    members.push((key, self.value()));
                    match self.peek() {
                        b',' => self.i += 1,
                        _ => {
                            self.eat(b'}');
                            return Json::Obj(members);
                        }
                    }
                }
            }
            b'[' => {
                self.eat(b'[');
                let mut items = Vec::new();
                if self.peek() == b']' {
                    self.i += 1;
                    return Json::Arr(items);
                }
                loop {
                    items.push(self.value());
                    match self.peek() {
                        b',' => self.i += 1,
                        _ => {
                            self.eat(b']');
                            return Json::Arr(items);
                        }
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
                Json::Num(
                    text.parse()
                        .unwrap_or_else(|_| panic!("JSON: bad number {text:?} at {start}")),
                )
            }
        }
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i).expect("JSON: unterminated string");
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).expect("JSON strings are UTF-8"),
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            self.i += 4;
                            let c = char::from_u32(u32::from_str_radix(hex, 16).unwrap())
                                .unwrap_or('\u{fffd}');
                            out.extend(c.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The broker
// ---------------------------------------------------------------------------------------

/// A broker with dynamic security on `<dir>/dynamic-security.json`.
struct Broker {
    addr: SocketAddr,
    handle: midge_server::ServerHandle,
    file: String,
    dir: TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// The configuration: `extra` global options, the plugin lines, one listener.
fn conf_text(file: &str, extra: &str) -> String {
    format!("{extra}\nplugin {PLUGIN}\nplugin_opt_config_file {file}\nlistener 1 127.0.0.1\n")
}

fn parse_conf(text: &str) -> midge_core::config::Config {
    let mut config = midge_core::config::parse(text, "test.conf").expect("test config parses");
    for l in &mut config.listeners {
        l.port = 0;
    }
    config
}

impl Broker {
    async fn start(json: &str, extra: &str) -> Broker {
        let dir = TempDir::new();
        let file = dir.write(FILE, json);
        let server = midge_server::Server::bind(&parse_conf(&conf_text(&file, extra)))
            .await
            .expect("broker binds");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        tokio::spawn(server.run());
        Broker {
            addr,
            handle,
            file,
            dir,
        }
    }

    fn file_text(&self) -> String {
        std::fs::read_to_string(&self.file).expect("read the dynamic security file")
    }
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

fn login(v: ProtocolVersion, id: &str, user: Option<&str>, password: Option<&str>) -> Connect {
    Connect {
        username: user.map(str::to_owned),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        ..connect_packet(v, id)
    }
}

/// Mosquitto's "not authorised" CONNACK, per version.
fn not_authorised(v: ProtocolVersion) -> &'static str {
    if v.is_v5() {
        "20 03 00 87 00"
    } else {
        "20 02 00 05"
    }
}

/// The CONNECT must be accepted within `within` (argon2id is slow in debug builds).
async fn accepted_within(addr: SocketAddr, c: Connect, within: Duration) -> Raw {
    let what = format!("{:?} {:?} {:?}", c.protocol, c.client_id, c.username);
    let mut raw = Raw::tcp(addr).await;
    raw.version = c.protocol;
    raw.send_packet(&Packet::Connect(Box::new(c))).await;
    let bytes = match raw.recv_raw_within(within).await {
        Ok(b) => b,
        Err(e) => panic!("{what}: no CONNACK: {e:?}"),
    };
    match raw.decode(&bytes) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0, "{what} should be accepted: {a:?}"),
        other => panic!("{what}: expected CONNACK, got {other:?}"),
    }
    raw
}

async fn accepted(addr: SocketAddr, c: Connect) -> Raw {
    accepted_within(addr, c, WAIT).await
}

/// The CONNECT must be refused with "not authorised" and the connection closed.
async fn refused(addr: SocketAddr, c: Connect) {
    let what = format!("{:?} {:?} {:?}", c.protocol, c.client_id, c.username);
    let v = c.protocol;
    let mut raw = Raw::tcp(addr).await;
    raw.version = v;
    raw.send_packet(&Packet::Connect(Box::new(c))).await;
    let got = match raw.recv_raw_within(WAIT).await {
        Ok(b) => b,
        Err(e) => panic!("{what}: expected a refusing CONNACK, got {e:?}"),
    };
    assert_eq!(
        to_hex(&got),
        to_hex(&hex(not_authorised(v))),
        "{what}: wrong CONNACK"
    );
    raw.expect_close().await;
}

/// The password every client created by [`create_client`] gets.
fn pw(user: &str) -> String {
    format!("pw-{user}")
}

/// Logs in as `user` (created by [`create_client`]) with client id `id`.
async fn user(addr: SocketAddr, v: ProtocolVersion, id: &str, user: &str) -> Raw {
    accepted(addr, login(v, id, Some(user), Some(&pw(user)))).await
}

/// A persistent session login: clean session 0 (3.1.1) or a session expiry (5.0).
fn persistent(v: ProtocolVersion, id: &str, user: &str) -> Connect {
    let mut c = login(v, id, Some(user), Some(&pw(user)));
    c.clean_start = false;
    if v.is_v5() {
        c.properties.session_expiry_interval = Some(600);
    }
    c
}

/// The SUBACK code of a subscription the roles refuse.
fn sub_denied(v: ProtocolVersion) -> u8 {
    if v.is_v5() {
        0x87
    } else {
        0x80
    }
}

/// Publishes at QoS 1 and expects the PUBACK of an allowed publish.
async fn publish_ok(raw: &mut Raw, topic: &str, payload: &[u8]) {
    let code = raw.publish(topic, payload, QoS::AtLeastOnce, false).await;
    assert!(code < 0x80, "publish to {topic} refused with {code:#04x}");
}

/// Publishes at QoS 1 and expects the ACL refusal: 0x87 for MQTT 5, a plain PUBACK for
/// 3.1.1 (Mosquitto acknowledges and drops).
async fn publish_denied(raw: &mut Raw, topic: &str, payload: &[u8]) {
    let code = raw.publish(topic, payload, QoS::AtLeastOnce, false).await;
    let want = if raw.version.is_v5() { 0x87 } else { 0x00 };
    assert_eq!(code, want, "publish to {topic}: PUBACK reason");
}

/// The next PUBLISH must be on `topic` with `payload` (acknowledged).
async fn expect_message(raw: &mut Raw, topic: &str, payload: &[u8]) {
    let p = raw.recv_publish_ack().await;
    assert_eq!(
        (&*p.topic, &p.payload[..]),
        (topic, payload),
        "expected {topic} {:?}",
        String::from_utf8_lossy(payload)
    );
}

/// SUBSCRIBE to one filter at QoS 1; returns the SUBACK code.
async fn sub(raw: &mut Raw, filter: &str) -> u8 {
    let codes = raw.subscribe(filter, QoS::AtLeastOnce).await;
    assert_eq!(codes.len(), 1);
    codes[0]
}

/// No PUBLISH may arrive for [`QUIET`]; a DISCONNECT 0x98 or a close is tolerated (Mosquitto
/// kicks clients whose roles changed, Midge rechecks their subscriptions instead).
async fn expect_no_publish_tolerating_kick(raw: &mut Raw) {
    loop {
        match raw.recv_raw_within(QUIET).await {
            Err(_) => return,
            Ok(bytes) => match raw.decode(&bytes) {
                Packet::Publish(p) => panic!(
                    "unexpected PUBLISH on {:?}: {:?}",
                    &*p.topic,
                    String::from_utf8_lossy(&p.payload)
                ),
                Packet::Disconnect(d) => {
                    assert_eq!(d.reason, 0x98, "only an administrative kick is expected");
                    return;
                }
                _ => {}
            },
        }
    }
}

/// A client logged in as the admin (whose role may subscribe to `#` and receive
/// everything), subscribed to `filter` at QoS 1.
async fn observer(b: &Broker, id: &str, filter: &str) -> Raw {
    let mut raw = accepted(b.addr, login(V5, id, Some("admin"), Some("adminpw"))).await;
    assert_eq!(
        sub(&mut raw, filter).await,
        1,
        "observer subscribes {filter}"
    );
    raw
}

// ---------------------------------------------------------------------------------------
// The administrator
// ---------------------------------------------------------------------------------------

/// A connection that sends `$CONTROL/dynamic-security/v1` requests and reads the answers.
struct Admin {
    raw: Raw,
}

impl Admin {
    async fn connect(b: &Broker) -> Admin {
        Admin::connect_as(b.addr, "admin-ctl", "admin", "adminpw").await
    }

    async fn connect_as(addr: SocketAddr, id: &str, username: &str, password: &str) -> Admin {
        let mut raw = accepted(addr, login(V5, id, Some(username), Some(password))).await;
        let codes = raw.subscribe(RESPONSE_TOPIC, QoS::AtMostOnce).await;
        assert_eq!(codes, vec![0], "the admin subscribes to the response topic");
        Admin { raw }
    }

    /// Sends `{"commands":[<commands>]}` and returns the parsed response.
    async fn send(&mut self, commands: &str) -> Json {
        let payload = format!(r#"{{"commands":[{commands}]}}"#);
        let code = self
            .raw
            .publish(CONTROL_TOPIC, payload.as_bytes(), QoS::AtLeastOnce, false)
            .await;
        assert_eq!(code, 0, "PUBACK of the admin request");
        let p = self
            .raw
            .wait_for("the dynsec response", |p| match p {
                Packet::Publish(p) if &*p.topic == RESPONSE_TOPIC => Some(p.clone()),
                _ => None,
            })
            .await;
        assert_eq!(p.qos, QoS::AtMostOnce, "responses are QoS 0");
        assert!(!p.retain, "responses are not retained");
        Json::parse(std::str::from_utf8(&p.payload).expect("UTF-8 response"))
    }

    /// Like [`Admin::send`], but every command must succeed.
    async fn ok(&mut self, commands: &str) -> Json {
        let r = self.send(commands).await;
        for resp in r["responses"].arr() {
            assert!(
                resp.get("error").is_none(),
                "command failed: {resp:?}\nrequest: {commands}"
            );
        }
        r
    }
}

fn cmd(command: &str, args: &str) -> String {
    if args.is_empty() {
        format!(r#"{{"command":"{command}"}}"#)
    } else {
        format!(r#"{{"command":"{command}",{args}}}"#)
    }
}

/// `createRole` with ACLs `(acltype, topic, allow, priority)`.
fn create_role(name: &str, acls: &[(&str, &str, bool, i64)]) -> String {
    let acls: Vec<String> = acls
        .iter()
        .map(|(t, topic, allow, prio)| {
            format!(r#"{{"acltype":"{t}","topic":"{topic}","allow":{allow},"priority":{prio}}}"#)
        })
        .collect();
    cmd(
        "createRole",
        &format!(r#""rolename":"{name}","acls":[{}]"#, acls.join(",")),
    )
}

/// `createClient` with password [`pw`] and these roles (priority -1).
fn create_client(username: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles
        .iter()
        .map(|r| format!(r#"{{"rolename":"{r}"}}"#))
        .collect();
    cmd(
        "createClient",
        &format!(
            r#""username":"{username}","password":"{}","roles":[{}]"#,
            pw(username),
            roles.join(",")
        ),
    )
}

fn add_role_acl(role: &str, acltype: &str, topic: &str, allow: bool, priority: i64) -> String {
    cmd(
        "addRoleACL",
        &format!(
            r#""rolename":"{role}","acltype":"{acltype}","topic":"{topic}","allow":{allow},"priority":{priority}"#
        ),
    )
}

fn remove_role_acl(role: &str, acltype: &str, topic: &str) -> String {
    cmd(
        "removeRoleACL",
        &format!(r#""rolename":"{role}","acltype":"{acltype}","topic":"{topic}""#),
    )
}

fn set_default(acltype: &str, allow: bool) -> String {
    cmd(
        "setDefaultACLAccess",
        &format!(r#""acls":[{{"acltype":"{acltype}","allow":{allow}}}]"#),
    )
}

/// A broker started from `mosquitto_ctrl dynsec init`'s document (admin / adminpw), the
/// admin connected, and `setup` run as one request. Every world also has the role
/// `sender` (publish anything) and its client `feeder`.
async fn world(extra: &str, setup: &[String]) -> (Broker, Admin) {
    let b = Broker::start(&DynSec::init("admin", "adminpw").to_json(), extra).await;
    let mut admin = Admin::connect(&b).await;
    let mut commands = vec![
        create_role("sender", &[("publishClientSend", "#", true, 0)]),
        create_client("feeder", &["sender"]),
    ];
    commands.extend(setup.iter().cloned());
    admin.ok(&commands.join(",")).await;
    (b, admin)
}

async fn feeder(b: &Broker) -> Raw {
    user(b.addr, V5, "feeder", "feeder").await
}

// ---------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------

/// Clients in both file forms. `alice` (2.0 triple, role `ctl`: may use the API), `carol` (2.1 `$7$`, 64-byte salt),
/// `bob` (2.1 `$6$`), `argo` (2.1 argon2id); `bound` is tied to client id `bound-id`,
/// `off` is disabled, `nopw` has no password at all. The vectors are Debian's
/// `mosquitto_passwd` 2.0.11 / `argon2` ones from the reference.
const VECTORS_FILE: &str = r#"{
  "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
  "clients": [
    {"username": "alice", "password": "fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==", "salt": "fmqt2++sRIF8iKr1", "iterations": 101, "roles": [{"rolename": "ctl"}]},
    {"username": "carol", "encoded_password": "$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$zChWqdkqNxqzDB4vJxgZXXRqV3a0RfIqXvo3oPnAzRciW2G3M15dMXU//HNcV6PXlX7rSZruug1P1l5/YLY+yQ=="},
    {"username": "bob", "encoded_password": "$6$QO6n4MiGao+ua12u$MWQQXEgNW+sU/kybxta+Pet5iHXXT1pebC0EUt1ECkqSPFTXSuEorAwg3wtC1i6AzL3vlO9y+0FThYtFgOZqTw=="},
    {"username": "argo", "encoded_password": "$argon2id$v=19$m=47104,t=1,p=1$U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTUw$9ves7Lbz0/dWZU2mhe0FhelUw6WLIh2LT4g/3t1p1Jt8w7VEhqz/FFgD2hg3tefpAWxvB832P6f59U7/20zRzQ"},
    {"username": "bound", "clientid": "bound-id", "password": "fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==", "salt": "fmqt2++sRIF8iKr1", "iterations": 101},
    {"username": "off", "disabled": true, "password": "fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==", "salt": "fmqt2++sRIF8iKr1", "iterations": 101},
    {"username": "nopw"}
  ],
  "groups": [],
  "roles": [
    {"rolename": "ctl", "acls": [
      {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": true},
      {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": true},
      {"acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "allow": true}
    ]}
  ]
}"#;

#[tokio::test]
async fn login_with_2_0_and_2_1_password_forms() {
    let b = Broker::start(VECTORS_FILE, "").await;
    for v in VERSIONS {
        // 2.0 form (password/salt/iterations).
        let mut raw = accepted(b.addr, login(v, "a1", Some("alice"), Some("s3cret"))).await;
        raw.ping().await;
        // 2.1 form, PBKDF2 with a 64-byte salt and SHA-512.
        accepted(b.addr, login(v, "c1", Some("carol"), Some("pbkdfpw"))).await;
        accepted(b.addr, login(v, "b1", Some("bob"), Some("hunter2"))).await;
        // Wrong passwords, each form.
        refused(b.addr, login(v, "a2", Some("alice"), Some("s3cret!"))).await;
        refused(b.addr, login(v, "c2", Some("carol"), Some("hunter2"))).await;
        refused(b.addr, login(v, "b2", Some("bob"), Some(""))).await;
    }
}

#[tokio::test]
async fn login_with_2_1_argon2id_password() {
    let b = Broker::start(VECTORS_FILE, "").await;
    let slow = Duration::from_secs(30);
    accepted_within(b.addr, login(V5, "g1", Some("argo"), Some("argonpw")), slow).await;
    let mut raw = Raw::tcp(b.addr).await;
    raw.version = V311;
    raw.send_packet(&Packet::Connect(Box::new(login(
        V311,
        "g2",
        Some("argo"),
        Some("argonp"),
    ))))
    .await;
    let got = raw.recv_raw_within(slow).await.expect("CONNACK");
    assert_eq!(to_hex(&got), to_hex(&hex(not_authorised(V311))));
}

#[tokio::test]
async fn login_refusals_unknown_no_password_disabled_unusable() {
    let b = Broker::start(VECTORS_FILE, "").await;
    for v in VERSIONS {
        // A username the plugin does not know: every source defers, so it is refused.
        refused(b.addr, login(v, "u1", Some("zed"), Some("s3cret"))).await;
        // A username without a password defers too (auth.c), and is refused.
        refused(b.addr, login(v, "u2", Some("alice"), None)).await;
        // Disabled, even with the right password.
        refused(b.addr, login(v, "u3", Some("off"), Some("s3cret"))).await;
        // A client without password fields exists but can never log in.
        refused(b.addr, login(v, "u4", Some("nopw"), Some(""))).await;
        refused(b.addr, login(v, "u5", Some("nopw"), Some("x"))).await;
        refused(b.addr, login(v, "u6", Some("nopw"), None)).await;
        // No username with allow_anonymous false (the default).
        refused(b.addr, login(v, "u7", None, None)).await;
    }
}

#[tokio::test]
async fn login_client_id_binding() {
    let b = Broker::start(VECTORS_FILE, "").await;
    for v in VERSIONS {
        accepted(b.addr, login(v, "bound-id", Some("bound"), Some("s3cret"))).await;
        refused(b.addr, login(v, "other-id", Some("bound"), Some("s3cret"))).await;
        refused(b.addr, login(v, "bound-id2", Some("bound"), Some("s3cret"))).await;
        // The right client id does not excuse a wrong password.
        refused(b.addr, login(v, "bound-id", Some("bound"), Some("nope"))).await;
    }
}

#[tokio::test]
async fn set_client_id_binds_live_and_kicks() {
    let (b, mut admin) = world("", &[create_client("u15", &[])]).await;
    let mut c = user(b.addr, V5, "free-id", "u15").await;
    admin
        .ok(&cmd(
            "setClientId",
            r#""username":"u15","clientid":"only-id""#,
        ))
        .await;
    c.expect_disconnect(0x98).await;
    for v in VERSIONS {
        refused(b.addr, login(v, "free-id", Some("u15"), Some(&pw("u15")))).await;
        user(b.addr, v, "only-id", "u15").await;
    }
    // No client id removes the binding.
    admin.ok(&cmd("setClientId", r#""username":"u15""#)).await;
    user(b.addr, V311, "free-id", "u15").await;
}

#[tokio::test]
async fn anonymous_clients_get_the_anonymous_group_roles() {
    let (b, _admin) = world(
        "allow_anonymous true",
        &[
            create_role(
                "anon-role",
                &[
                    ("publishClientSend", "anon/#", true, 0),
                    ("subscribePattern", "anon/#", true, 0),
                ],
            ),
            cmd(
                "createGroup",
                r#""groupname":"anon","roles":[{"rolename":"anon-role"}]"#,
            ),
            cmd("setAnonymousGroup", r#""groupname":"anon""#),
            create_client("named", &[]),
        ],
    )
    .await;
    for v in VERSIONS {
        let mut anon = accepted(b.addr, login(v, "anon-1", None, None)).await;
        assert_eq!(sub(&mut anon, "anon/#").await, 1);
        assert_eq!(sub(&mut anon, "other/#").await, sub_denied(v));
        publish_ok(&mut anon, "anon/x", b"hello").await;
        expect_message(&mut anon, "anon/x", b"hello").await;
        publish_denied(&mut anon, "other/x", b"no").await;
        anon.expect_silence(QUIET).await;

        // A named client is not in the anonymous group.
        let mut named = user(b.addr, v, "named-1", "named").await;
        assert_eq!(sub(&mut named, "anon/#").await, sub_denied(v));
        publish_denied(&mut named, "anon/y", b"no").await;
        anon.expect_silence(QUIET).await;

        // allow_anonymous true does not let unknown or wrong credentials in.
        refused(b.addr, login(v, "x1", Some("zed"), Some("zz"))).await;
        refused(b.addr, login(v, "x2", Some("named"), Some("wrong"))).await;
    }
}

#[tokio::test]
async fn anonymous_refused_when_not_allowed_even_with_an_anonymous_group() {
    let (b, _admin) = world(
        "allow_anonymous false",
        &[
            cmd("createGroup", r#""groupname":"anon""#),
            cmd("setAnonymousGroup", r#""groupname":"anon""#),
        ],
    )
    .await;
    for v in VERSIONS {
        refused(b.addr, login(v, "anon-1", None, None)).await;
    }
}

// ---------------------------------------------------------------------------------------
// ACL types
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn publish_client_send_allow_deny_and_default() {
    let (b, _admin) = world(
        "",
        &[
            create_role(
                "pub",
                &[
                    ("publishClientSend", "a/#", true, 0),
                    ("publishClientSend", "a/secret", false, 5),
                ],
            ),
            create_client("u1", &["pub"]),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "#").await;
    for v in VERSIONS {
        let mut c = user(b.addr, v, "c1", "u1").await;
        publish_ok(&mut c, "a/x", b"1").await;
        expect_message(&mut obs, "a/x", b"1").await;
        // The deny ACL has the higher priority.
        publish_denied(&mut c, "a/secret", b"2").await;
        // No ACL matches: the default publishClientSend is deny.
        publish_denied(&mut c, "b/x", b"3").await;
        obs.expect_silence(QUIET).await;
        // QoS 0 denied: nothing comes back, nothing is delivered.
        c.publish("a/secret", b"4", QoS::AtMostOnce, false).await;
        c.ping().await;
        obs.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn publish_client_receive_filters_deliveries() {
    let (b, _admin) = world(
        "",
        &[
            create_role(
                "reader",
                &[
                    ("subscribePattern", "r/#", true, 0),
                    ("publishClientReceive", "r/secret", false, 1),
                    ("publishClientReceive", "r/#", true, 0),
                ],
            ),
            create_client("u2", &["reader"]),
        ],
    )
    .await;
    let mut f = feeder(&b).await;
    for v in VERSIONS {
        let mut s = user(b.addr, v, "s1", "u2").await;
        assert_eq!(sub(&mut s, "r/#").await, 1);
        publish_ok(&mut f, "r/secret", b"hidden").await;
        publish_ok(&mut f, "r/ok", b"shown").await;
        // The first (and only) message that arrives is the allowed one.
        expect_message(&mut s, "r/ok", b"shown").await;
        s.expect_silence(QUIET).await;
        s.disconnect().await;
    }
    // Retained messages sent on subscribe are filtered the same way.
    let code = f
        .publish("r/secret", b"kept-hidden", QoS::AtLeastOnce, true)
        .await;
    assert!(code < 0x80);
    let code = f.publish("r/open", b"kept", QoS::AtLeastOnce, true).await;
    assert!(code < 0x80);
    for v in VERSIONS {
        let mut s = user(b.addr, v, "s2", "u2").await;
        assert_eq!(sub(&mut s, "r/#").await, 1);
        let p = s.recv_publish_ack().await;
        assert_eq!(
            (&*p.topic, &p.payload[..], p.retain),
            ("r/open", &b"kept"[..], true)
        );
        s.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn will_is_checked_against_publish_client_send() {
    let (b, _admin) = world(
        "",
        &[
            create_role("wills", &[("publishClientSend", "will/ok", true, 0)]),
            create_client("w1", &["wills"]),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "will/#").await;
    for v in VERSIONS {
        for (topic, delivered) in [("will/ok", true), ("will/denied", false)] {
            let mut c = login(v, "cw", Some("w1"), Some(&pw("w1")));
            c.will = Some(Will {
                topic: topic.into(),
                payload: Bytes::from_static(b"bye"),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            });
            let raw = accepted(b.addr, c).await;
            // Closing the socket without DISCONNECT publishes the will.
            drop(raw);
            if delivered {
                expect_message(&mut obs, topic, b"bye").await;
            } else {
                obs.expect_silence(QUIET).await;
            }
        }
    }
}

#[tokio::test]
async fn subscribe_literal_is_checked_before_pattern() {
    let (b, _admin) = world(
        "",
        &[
            create_role(
                "subs",
                &[
                    ("subscribeLiteral", "s/#", false, 0),
                    ("subscribePattern", "s/#", true, 0),
                    // The literal allow wins although the pattern deny has the higher
                    // priority: literals are checked first.
                    ("subscribeLiteral", "lit/x", true, -5),
                    ("subscribePattern", "lit/#", false, 10),
                ],
            ),
            create_client("u3", &["subs"]),
        ],
    )
    .await;
    for v in VERSIONS {
        let mut c = user(b.addr, v, "c3", "u3").await;
        let d = sub_denied(v);
        let ack = c
            .subscribe_with(
                vec![
                    filter("s/#", QoS::AtLeastOnce),
                    filter("s/+", QoS::AtLeastOnce),
                    filter("s/x", QoS::AtLeastOnce),
                    filter("lit/x", QoS::AtLeastOnce),
                    filter("lit/y", QoS::AtLeastOnce),
                    filter("other/x", QoS::AtLeastOnce),
                    // Wider than the pattern: refused.
                    filter("#", QoS::AtLeastOnce),
                    filter("+/x", QoS::AtLeastOnce),
                ],
                Properties::default(),
            )
            .await;
        assert_eq!(ack.codes, vec![d, 1, 1, 1, d, d, d, d], "{v:?}");
        c.disconnect().await;
    }
    // What was granted delivers; what was denied does not.
    let mut c = user(b.addr, V5, "c3", "u3").await;
    assert_eq!(sub(&mut c, "s/#").await, 0x87);
    assert_eq!(sub(&mut c, "lit/x").await, 1);
    let mut f = feeder(&b).await;
    publish_ok(&mut f, "s/a", b"1").await;
    publish_ok(&mut f, "lit/x", b"2").await;
    expect_message(&mut c, "lit/x", b"2").await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unsubscribe_literal_and_pattern_denied_keep_the_subscription() {
    let (b, _admin) = world(
        "",
        &[
            create_role(
                "unsub",
                &[
                    ("subscribePattern", "#", true, 0),
                    ("unsubscribeLiteral", "keep/x", false, 0),
                    ("unsubscribePattern", "keep2/#", false, 0),
                    // Literal first: this filter may be unsubscribed although the
                    // pattern says no.
                    ("unsubscribeLiteral", "keep2/free", true, 0),
                ],
            ),
            create_client("u4", &["unsub"]),
        ],
    )
    .await;
    let mut f = feeder(&b).await;
    for v in VERSIONS {
        let mut c = user(b.addr, v, "c4", "u4").await;
        for t in ["keep/x", "keep2/y", "keep2/free", "free/x"] {
            assert_eq!(sub(&mut c, t).await, 1, "subscribe {t}");
        }
        let ack = c
            .unsubscribe(&["keep/x", "keep2/y", "keep2/free", "free/x"])
            .await;
        if v.is_v5() {
            assert_eq!(ack.codes, vec![0x87, 0x87, 0x00, 0x00]);
        } else {
            assert!(ack.codes.is_empty(), "3.1.1 UNSUBACK has no reason codes");
        }
        for t in ["free/x", "keep2/free", "keep/x", "keep2/y"] {
            publish_ok(&mut f, t, t.as_bytes()).await;
        }
        // The two denied unsubscriptions still deliver, the two allowed ones do not.
        expect_message(&mut c, "keep/x", b"keep/x").await;
        expect_message(&mut c, "keep2/y", b"keep2/y").await;
        c.expect_silence(QUIET).await;
        c.disconnect().await;
    }
}

#[tokio::test]
async fn allowwildcardsubs_false_refuses_wildcard_filters() {
    let (b, mut admin) = world(
        "",
        &[
            cmd(
                "createRole",
                r#""rolename":"nowild","allowwildcardsubs":false,"acls":[{"acltype":"subscribePattern","topic":"w/#","allow":true}]"#,
            ),
            create_client("u5", &["nowild"]),
        ],
    )
    .await;
    for v in VERSIONS {
        let mut c = user(b.addr, v, "c5", "u5").await;
        let d = sub_denied(v);
        assert_eq!(sub(&mut c, "w/x").await, 1);
        assert_eq!(sub(&mut c, "w/+").await, d);
        assert_eq!(sub(&mut c, "w/#").await, d);
        c.disconnect().await;
    }
    // Live: modifyRole lets wildcards in again.
    admin
        .ok(&cmd(
            "modifyRole",
            r#""rolename":"nowild","allowwildcardsubs":true"#,
        ))
        .await;
    let mut c = user(b.addr, V5, "c5", "u5").await;
    assert_eq!(sub(&mut c, "w/+").await, 1);
}

#[tokio::test]
async fn client_id_and_username_substitution_in_patterns() {
    let (b, _admin) = world(
        "",
        &[
            create_role(
                "own",
                &[
                    ("publishClientSend", "users/%u/#", true, 0),
                    ("subscribePattern", "clients/%c/#", true, 0),
                    // Literal ACLs are not substituted.
                    ("subscribeLiteral", "lit/%c", true, 0),
                ],
            ),
            create_client("u6", &["own"]),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "users/#").await;
    for v in VERSIONS {
        let mut c = user(b.addr, v, "c6", "u6").await;
        let d = sub_denied(v);
        publish_ok(&mut c, "users/u6/x", b"mine").await;
        expect_message(&mut obs, "users/u6/x", b"mine").await;
        publish_denied(&mut c, "users/u7/x", b"theirs").await;
        publish_denied(&mut c, "users/c6/x", b"id is not username").await;
        obs.expect_silence(QUIET).await;
        assert_eq!(sub(&mut c, "clients/c6/#").await, 1);
        assert_eq!(sub(&mut c, "clients/c7/#").await, d);
        assert_eq!(sub(&mut c, "clients/u6/#").await, d);
        assert_eq!(sub(&mut c, "lit/c6").await, d);
        assert_eq!(sub(&mut c, "lit/%c").await, 1);
        c.disconnect().await;
    }
}

#[tokio::test]
async fn default_acl_access_applies_and_changes_live() {
    let (b, mut admin) = world(
        "",
        &[
            create_role(
                "viewer",
                &[
                    ("subscribePattern", "v/#", true, 0),
                    ("unsubscribePattern", "v/#", true, 0),
                ],
            ),
            create_client("viewer", &["viewer"]),
            create_client("plain", &[]),
        ],
    )
    .await;
    let r = admin.ok(&cmd("getDefaultACLAccess", "")).await;
    let acls = r["responses"][0]["data"]["acls"].arr().to_vec();
    let defaults: Vec<(String, bool)> = acls
        .iter()
        .map(|a| (a["acltype"].str().to_string(), a["allow"].bool()))
        .collect();
    for (t, want) in [
        ("publishClientSend", false),
        ("publishClientReceive", true),
        ("subscribe", false),
        ("unsubscribe", true),
    ] {
        assert!(
            defaults.contains(&(t.to_string(), want)),
            "{t} default {want}: {defaults:?}"
        );
    }

    let mut f = feeder(&b).await;
    let mut plain = user(b.addr, V5, "plain-1", "plain").await;
    let mut viewer = user(b.addr, V5, "viewer-1", "viewer").await;
    // publishClientSend: deny by default.
    publish_denied(&mut plain, "v/p", b"no").await;
    // subscribe: deny by default.
    assert_eq!(sub(&mut plain, "v/#").await, 0x87);
    // publishClientReceive: allow by default (no ACL of that type anywhere).
    assert_eq!(sub(&mut viewer, "v/#").await, 1);
    publish_ok(&mut f, "v/1", b"one").await;
    expect_message(&mut viewer, "v/1", b"one").await;
    // unsubscribe: allow by default.
    assert_eq!(sub(&mut viewer, "v/other").await, 1);
    assert_eq!(plain.unsubscribe(&["v/none"]).await.codes, vec![0x11]);

    // Flip all four.
    admin
        .ok(&[
            set_default("publishClientSend", true),
            set_default("publishClientReceive", false),
            set_default("subscribe", true),
            set_default("unsubscribe", false),
        ]
        .join(","))
        .await;
    let r = admin.ok(&cmd("getDefaultACLAccess", "")).await;
    for a in r["responses"][0]["data"]["acls"].arr() {
        let want = matches!(a["acltype"].str(), "publishClientSend" | "subscribe");
        assert_eq!(a["allow"].bool(), want, "{a:?}");
    }
    settle().await;
    let mut plain = user(b.addr, V5, "plain-2", "plain").await;
    assert_eq!(sub(&mut plain, "w/#").await, 1, "subscribe now allowed");
    publish_ok(&mut plain, "w/x", b"sent").await;
    // ...but delivery is now denied by default, to plain and to the viewer.
    publish_ok(&mut f, "v/2", b"two").await;
    plain.expect_silence(QUIET).await;
    viewer.expect_silence(QUIET).await;
    // Unsubscribe now denied by default for plain (no unsubscribe ACL), still allowed
    // for the viewer's role.
    assert_eq!(plain.unsubscribe(&["w/#"]).await.codes, vec![0x87]);
    assert_eq!(viewer.unsubscribe(&["v/other"]).await.codes, vec![0x00]);
}

#[tokio::test]
async fn control_topics_are_never_allowed_by_default() {
    let (b, mut admin) = world(
        "",
        &[
            // `#` matches no `$` topic, so this grants nothing under `$CONTROL`.
            create_role(
                "everything",
                &[
                    ("publishClientSend", "#", true, 0),
                    ("subscribePattern", "#", true, 0),
                    ("publishClientReceive", "#", true, 0),
                ],
            ),
            create_client("mallory", &["everything"]),
            set_default("publishClientSend", true),
            set_default("subscribe", true),
            set_default("publishClientReceive", true),
        ],
    )
    .await;
    let evil = create_client("evil", &[]);
    for v in VERSIONS {
        let mut m = user(b.addr, v, "m1", "mallory").await;
        // Subscribing to the response topic falls through to deny.
        assert_eq!(
            sub(&mut m, "$CONTROL/dynamic-security/v1/response").await,
            sub_denied(v)
        );
        assert_eq!(sub(&mut m, "$CONTROL/#").await, sub_denied(v));
        // A request from a client without a $CONTROL grant is refused and ignored.
        let payload = format!(r#"{{"commands":[{evil}]}}"#);
        publish_denied(&mut m, CONTROL_TOPIC, payload.as_bytes()).await;
        m.expect_silence(QUIET).await;
    }
    // The admin saw no response to it, and nothing changed.
    admin.raw.expect_silence(QUIET).await;
    let r = admin.ok(&cmd("listClients", r#""verbose":false"#)).await;
    let clients = r["responses"][0]["data"]["clients"].strings();
    assert!(!clients.contains(&"evil"), "{clients:?}");
    refused(b.addr, login(V5, "e1", Some("evil"), Some(&pw("evil")))).await;
    assert!(!DynSec::from_json(&b.file_text())
        .unwrap()
        .has_client("evil"));
}

#[tokio::test]
async fn control_requests_are_consumed_not_routed() {
    let (b, mut admin) = world("", &[]).await;
    // The admin role may subscribe to both `#` and `$CONTROL/dynamic-security/#`.
    let mut obs = observer(&b, "obs", "#").await;
    assert_eq!(sub(&mut obs, "$CONTROL/dynamic-security/#").await, 1);
    admin.ok(&create_client("newbie", &[])).await;
    // Only the response reaches the observer, never the request.
    let p = obs.recv_publish_ack().await;
    assert_eq!(&*p.topic, RESPONSE_TOPIC);
    obs.expect_silence(QUIET).await;
    // A `$CONTROL/...` topic of no endpoint is consumed as well.
    let mut second = Admin::connect_as(b.addr, "admin-2", "admin", "adminpw").await;
    let code = second
        .raw
        .publish(
            "$CONTROL/dynamic-security/v2",
            b"{}",
            QoS::AtLeastOnce,
            false,
        )
        .await;
    assert_eq!(code, 0);
    obs.expect_silence(QUIET).await;
    second.raw.expect_silence(QUIET).await;

    // No role makes `$SYS` writable; reading it is the admin role's right.
    assert_eq!(sub(&mut obs, "$SYS/#").await, 1);
    admin
        .ok(&[
            create_role("sys-writer", &[("publishClientSend", "$SYS/#", true, 0)]),
            create_client("sysw", &["sys-writer"]),
        ]
        .join(","))
        .await;
    let mut w = user(b.addr, V5, "sysw-1", "sysw").await;
    publish_denied(&mut w, "$SYS/broker/fake", b"x").await;
    while let Some(p) = obs.try_recv(QUIET).await {
        match p {
            Packet::Publish(p) => {
                assert_ne!(&*p.topic, "$SYS/broker/fake");
                obs.ack(&p).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // An MQTT 3.1.1 administrator works the same way.
    let mut v3 = accepted(
        b.addr,
        login(V311, "admin-3", Some("admin"), Some("adminpw")),
    )
    .await;
    assert_eq!(v3.subscribe(RESPONSE_TOPIC, QoS::AtMostOnce).await, vec![0]);
    let req = format!(
        r#"{{"commands":[{}]}}"#,
        cmd("getClient", r#""username":"newbie","correlationData":"v3""#)
    );
    publish_ok(&mut v3, CONTROL_TOPIC, req.as_bytes()).await;
    let p = v3.recv_publish().await;
    assert_eq!(&*p.topic, RESPONSE_TOPIC);
    let r = Json::parse(std::str::from_utf8(&p.payload).unwrap());
    assert_eq!(r["responses"][0]["correlationData"].str(), "v3");
    assert_eq!(
        r["responses"][0]["data"]["client"]["username"].str(),
        "newbie"
    );
}

/// Receiving the response is a delivery like any other: without an explicit
/// `publishClientReceive` grant, the default allow does not reach `$CONTROL` (acl.c), so
/// a role that may send requests but not receive answers gets none, while its requests
/// still run.
#[tokio::test]
async fn responses_need_an_explicit_receive_grant() {
    let (b, mut admin) = world(
        "",
        &[
            create_role(
                "half",
                &[
                    ("publishClientSend", "$CONTROL/dynamic-security/#", true, 0),
                    ("subscribePattern", "$CONTROL/dynamic-security/#", true, 0),
                ],
            ),
            create_client("half", &["half"]),
        ],
    )
    .await;
    let mut h = user(b.addr, V5, "half-1", "half").await;
    assert_eq!(sub(&mut h, RESPONSE_TOPIC).await, 1);
    let req = format!(r#"{{"commands":[{}]}}"#, create_client("made-by-half", &[]));
    publish_ok(&mut h, CONTROL_TOPIC, req.as_bytes()).await;
    // Responses go to every subscriber allowed to receive them: the admin sees this one.
    let p = admin.raw.recv_publish().await;
    assert_eq!(&*p.topic, RESPONSE_TOPIC);
    let r = Json::parse(std::str::from_utf8(&p.payload).unwrap());
    assert_eq!(r["responses"][0]["command"].str(), "createClient");
    assert!(r["responses"][0].get("error").is_none());
    h.expect_silence(QUIET).await;
    let r = admin.ok(&cmd("listClients", "")).await;
    assert!(r["responses"][0]["data"]["clients"]
        .strings()
        .contains(&"made-by-half"));
}

// ---------------------------------------------------------------------------------------
// Priorities (seed 003's example)
// ---------------------------------------------------------------------------------------

/// Client `sensor` has role `hallway` and groups `temperature` (priority 2, roles `input`
/// priority 5 and `output` priority 1) and `humidity` (priority 1, role `humidity`). The
/// order is: hallway, input, output, humidity; the first matching ACL decides.
#[tokio::test]
async fn priorities_client_roles_then_groups_then_acls() {
    let (b, mut admin) = world(
        "",
        &[
            create_role(
                "hallway",
                &[
                    ("publishClientSend", "p/1", true, 0),
                    ("publishClientSend", "p/6/#", true, 1),
                    ("publishClientSend", "p/6/x", false, 5),
                ],
            ),
            create_role(
                "input",
                &[
                    ("publishClientSend", "p/1", false, 100),
                    ("publishClientSend", "p/2", false, 0),
                ],
            ),
            create_role(
                "output",
                &[
                    ("publishClientSend", "p/2", true, 100),
                    ("publishClientSend", "p/3", true, 0),
                ],
            ),
            create_role(
                "humidity",
                &[
                    ("publishClientSend", "p/3", false, 100),
                    ("publishClientSend", "p/4", true, 0),
                ],
            ),
            cmd(
                "createGroup",
                r#""groupname":"temperature","roles":[{"rolename":"input","priority":5},{"rolename":"output","priority":1}]"#,
            ),
            cmd(
                "createGroup",
                r#""groupname":"humidity","roles":[{"rolename":"humidity"}]"#,
            ),
            create_client("sensor", &["hallway"]),
            cmd(
                "addGroupClient",
                r#""groupname":"temperature","username":"sensor","priority":2"#,
            ),
            cmd(
                "addGroupClient",
                r#""groupname":"humidity","username":"sensor","priority":1"#,
            ),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "p/#").await;
    let mut s = user(b.addr, V5, "sensor-1", "sensor").await;
    // The client's own role comes before any group role, whatever the ACL priorities.
    publish_ok(&mut s, "p/1", b"1").await;
    expect_message(&mut obs, "p/1", b"1").await;
    // input (5) before output (1) in the same group.
    publish_denied(&mut s, "p/2", b"2").await;
    // temperature (2) before humidity (1).
    publish_ok(&mut s, "p/3", b"3").await;
    expect_message(&mut obs, "p/3", b"3").await;
    // Only humidity has it.
    publish_ok(&mut s, "p/4", b"4").await;
    expect_message(&mut obs, "p/4", b"4").await;
    // Nothing matches: default deny.
    publish_denied(&mut s, "p/5", b"5").await;
    // Inside a role, the higher ACL priority first.
    publish_denied(&mut s, "p/6/x", b"6x").await;
    publish_ok(&mut s, "p/6/y", b"6y").await;
    expect_message(&mut obs, "p/6/y", b"6y").await;
    obs.expect_silence(QUIET).await;

    // Swap the group order: humidity now comes first and denies p/3.
    admin
        .ok(&[
            cmd(
                "removeGroupClient",
                r#""groupname":"humidity","username":"sensor""#,
            ),
            cmd(
                "addGroupClient",
                r#""groupname":"humidity","username":"sensor","priority":3"#,
            ),
        ]
        .join(","))
        .await;
    // Group membership changes kick the client (Mosquitto does too).
    s.expect_disconnect(0x98).await;
    let mut s = user(b.addr, V5, "sensor-1", "sensor").await;
    publish_denied(&mut s, "p/3", b"3").await;
    publish_ok(&mut s, "p/4", b"4").await;
    expect_message(&mut obs, "p/4", b"4").await;
    obs.expect_silence(QUIET).await;

    // getClient shows the groups in priority order.
    let r = admin.ok(&cmd("getClient", r#""username":"sensor""#)).await;
    let groups = &r["responses"][0]["data"]["client"]["groups"];
    assert_eq!(groups[0]["groupname"].str(), "humidity");
    assert_eq!(groups[0]["priority"].num(), 3.0);
    assert_eq!(groups[1]["groupname"].str(), "temperature");
}

/// Equal priorities are ordered by name: role `a-deny` is checked before `b-allow`, group
/// `g-a` before `g-b`.
#[tokio::test]
async fn equal_priorities_are_ordered_by_name() {
    let (b, _admin) = world(
        "",
        &[
            create_role("b-allow", &[("publishClientSend", "t/1", true, 0)]),
            create_role("a-deny", &[("publishClientSend", "t/1", false, 0)]),
            create_role("gb-role", &[("publishClientSend", "t/2", true, 0)]),
            create_role("ga-role", &[("publishClientSend", "t/2", false, 0)]),
            cmd(
                "createGroup",
                r#""groupname":"g-b","roles":[{"rolename":"gb-role"}]"#,
            ),
            cmd(
                "createGroup",
                r#""groupname":"g-a","roles":[{"rolename":"ga-role"}]"#,
            ),
            create_client("tie", &["b-allow", "a-deny"]),
            cmd("addGroupClient", r#""groupname":"g-b","username":"tie""#),
            cmd("addGroupClient", r#""groupname":"g-a","username":"tie""#),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "t/#").await;
    let mut c = user(b.addr, V5, "tie-1", "tie").await;
    publish_denied(&mut c, "t/1", b"1").await;
    publish_denied(&mut c, "t/2", b"2").await;
    obs.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------
// Live effects
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_client_logs_in_without_restart() {
    let (b, mut admin) = world("", &[]).await;
    for v in VERSIONS {
        refused(b.addr, login(v, "n1", Some("newbie"), Some(&pw("newbie")))).await;
    }
    admin.ok(&create_client("newbie", &[])).await;
    for v in VERSIONS {
        let mut c = user(b.addr, v, "n1", "newbie").await;
        c.ping().await;
        refused(b.addr, login(v, "n2", Some("newbie"), Some("wrong"))).await;
    }
}

/// Mosquitto's `setClientPassword` kicks the client ("Enforce any changes":
/// `mosquitto_kick_client_by_username` in clients.c, 2.0 and 2.1), so a connected client
/// is disconnected; the old password no longer works, the new one does.
#[tokio::test]
async fn set_client_password_takes_effect_and_kicks() {
    let (b, mut admin) = world("", &[create_client("u7", &[])]).await;
    let mut c5 = user(b.addr, V5, "c7-5", "u7").await;
    let mut c3 = user(b.addr, V311, "c7-3", "u7").await;
    admin
        .ok(&cmd(
            "setClientPassword",
            r#""username":"u7","password":"brand-new""#,
        ))
        .await;
    c5.expect_disconnect(0x98).await;
    c3.expect_close().await;
    for v in VERSIONS {
        refused(b.addr, login(v, "c7", Some("u7"), Some(&pw("u7")))).await;
        accepted(b.addr, login(v, "c7", Some("u7"), Some("brand-new"))).await;
    }
    // An empty password is refused and changes nothing.
    let r = admin
        .send(&cmd(
            "setClientPassword",
            r#""username":"u7","password":"""#,
        ))
        .await;
    assert_eq!(
        r["responses"][0]["error"].str(),
        "Empty password is not allowed"
    );
    accepted(b.addr, login(V5, "c7", Some("u7"), Some("brand-new"))).await;
}

/// A kick ends the connection, not the persistent session: what was queued while the
/// client was away is delivered when it comes back.
#[tokio::test]
async fn kicked_persistent_session_survives() {
    let (b, mut admin) = world(
        "",
        &[
            create_role("keep", &[("subscribePattern", "k/#", true, 0)]),
            create_client("u18", &["keep"]),
        ],
    )
    .await;
    let mut f = feeder(&b).await;
    for v in VERSIONS {
        let mut c = accepted(b.addr, persistent(v, "c18", "u18")).await;
        assert_eq!(sub(&mut c, "k/#").await, 1);
        admin
            .ok(&cmd(
                "setClientPassword",
                &format!(r#""username":"u18","password":"{}""#, pw("u18")),
            ))
            .await;
        if v.is_v5() {
            c.expect_disconnect(0x98).await;
        } else {
            c.expect_close().await;
        }
        settle().await;
        publish_ok(&mut f, "k/1", b"queued").await;
        let (mut c, ack) = Raw::connect_with(b.addr, persistent(v, "c18", "u18")).await;
        assert!(ack.session_present, "{v:?}");
        expect_message(&mut c, "k/1", b"queued").await;
        c.disconnect().await;
    }
}

/// An administrator changing its own password: the request is acknowledged before the
/// kick (Mosquitto 2.1, #2474), then the connection ends with 0x98.
#[tokio::test]
async fn admin_changing_its_own_password_gets_its_ack_before_the_kick() {
    let (b, _admin) = world(
        "",
        &[cmd(
            "createClient",
            &format!(
                r#""username":"root2","password":"{}","roles":[{{"rolename":"admin"}}]"#,
                pw("root2")
            ),
        )],
    )
    .await;
    let mut root = user(b.addr, V5, "root2-1", "root2").await;
    let req = format!(
        r#"{{"commands":[{}]}}"#,
        cmd(
            "setClientPassword",
            r#""username":"root2","password":"other""#
        )
    );
    let code = root
        .publish(CONTROL_TOPIC, req.as_bytes(), QoS::AtLeastOnce, false)
        .await;
    assert_eq!(code, 0);
    loop {
        match root.recv().await {
            Packet::Publish(p) => assert_eq!(&*p.topic, RESPONSE_TOPIC),
            Packet::Disconnect(d) => {
                assert_eq!(d.reason, 0x98);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    root.expect_close().await;
    accepted(b.addr, login(V5, "root2-1", Some("root2"), Some("other"))).await;
}

#[tokio::test]
async fn delete_client_disconnects_and_refuses() {
    let (b, mut admin) = world("", &[create_client("u8", &[]), create_client("u9", &[])]).await;
    let mut c5 = user(b.addr, V5, "c8-5", "u8").await;
    let mut c3 = user(b.addr, V311, "c8-3", "u8").await;
    let mut other = user(b.addr, V5, "c9", "u9").await;
    admin.ok(&cmd("deleteClient", r#""username":"u8""#)).await;
    c5.expect_disconnect(0x98).await;
    c3.expect_close().await;
    // Only that username is kicked.
    other.ping().await;
    for v in VERSIONS {
        refused(b.addr, login(v, "c8", Some("u8"), Some(&pw("u8")))).await;
    }
}

#[tokio::test]
async fn group_membership_changes_kick_the_client() {
    let (b, mut admin) = world(
        "",
        &[
            cmd("createGroup", r#""groupname":"g16""#),
            create_client("u16", &[]),
            create_client("u17", &[]),
            cmd("addGroupClient", r#""groupname":"g16","username":"u17""#),
        ],
    )
    .await;
    let mut c = user(b.addr, V5, "c16", "u16").await;
    admin
        .ok(&cmd(
            "addGroupClient",
            r#""groupname":"g16","username":"u16""#,
        ))
        .await;
    c.expect_disconnect(0x98).await;
    let mut c = user(b.addr, V5, "c16", "u16").await;
    admin
        .ok(&cmd(
            "removeGroupClient",
            r#""groupname":"g16","username":"u16""#,
        ))
        .await;
    c.expect_disconnect(0x98).await;
    // deleteGroup kicks its remaining members.
    let mut c = user(b.addr, V311, "c17", "u17").await;
    admin.ok(&cmd("deleteGroup", r#""groupname":"g16""#)).await;
    c.expect_close().await;
}

#[tokio::test]
async fn disable_client_disconnects_enable_lets_back_in() {
    let (b, mut admin) = world("", &[create_client("u10", &[])]).await;
    let mut c5 = user(b.addr, V5, "c10-5", "u10").await;
    let mut c3 = user(b.addr, V311, "c10-3", "u10").await;
    admin.ok(&cmd("disableClient", r#""username":"u10""#)).await;
    c5.expect_disconnect(0x98).await;
    c3.expect_close().await;
    for v in VERSIONS {
        refused(b.addr, login(v, "c10", Some("u10"), Some(&pw("u10")))).await;
    }
    let r = admin.ok(&cmd("getClient", r#""username":"u10""#)).await;
    assert!(r["responses"][0]["data"]["client"]["disabled"].bool());
    admin.ok(&cmd("enableClient", r#""username":"u10""#)).await;
    for v in VERSIONS {
        user(b.addr, v, "c10", "u10").await;
    }
}

/// Mosquitto kicks with `with_will = false` (`mosquitto_kick_client_by_username(username,
/// false)` sets the context to `mosq_cs_disconnecting`, and `context__send_will` sends
/// nothing in that state): a client disabled by the administrator leaves no will.
#[tokio::test]
async fn kicked_client_will_is_not_published() {
    let (b, mut admin) = world(
        "",
        &[
            create_role("willer", &[("publishClientSend", "will/#", true, 0)]),
            create_client("u11", &["willer"]),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "will/#").await;
    for v in VERSIONS {
        let mut c = login(v, "c11", Some("u11"), Some(&pw("u11")));
        c.will = Some(Will {
            topic: "will/u11".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        });
        let mut raw = accepted(b.addr, c).await;
        admin.ok(&cmd("disableClient", r#""username":"u11""#)).await;
        if v.is_v5() {
            raw.expect_disconnect(0x98).await;
        } else {
            raw.expect_close().await;
        }
        obs.expect_silence(QUIET).await;
        admin.ok(&cmd("enableClient", r#""username":"u11""#)).await;
    }
}

/// Mosquitto kicks every client holding a role, directly or through a group, when the
/// role's ACLs change (`role__kick_all` after addRoleACL / removeRoleACL / modifyRole in
/// plugins/dynamic-security/roles.c, 2.0 and 2.1).
#[tokio::test]
async fn role_acl_changes_kick_the_clients_holding_the_role() {
    let (b, mut admin) = world(
        "",
        &[
            create_role("r12", &[("subscribePattern", "x/#", true, 0)]),
            create_client("u12", &["r12"]),
            cmd(
                "createGroup",
                r#""groupname":"g12","roles":[{"rolename":"r12"}]"#,
            ),
            create_client("u13", &[]),
            cmd("addGroupClient", r#""groupname":"g12","username":"u13""#),
        ],
    )
    .await;
    let changes = [
        add_role_acl("r12", "publishClientSend", "x/#", true, 0),
        remove_role_acl("r12", "publishClientSend", "x/#"),
        cmd("modifyRole", r#""rolename":"r12","textname":"changed""#),
    ];
    for change in changes {
        let mut direct = user(b.addr, V5, "c12", "u12").await;
        let mut member = user(b.addr, V5, "c13", "u13").await;
        admin.ok(&change).await;
        direct.expect_disconnect(0x98).await;
        member.expect_disconnect(0x98).await;
    }
}

/// Mosquitto kicks a group's members when the group's roles change (`group__kick_all`
/// after addGroupRole / removeGroupRole in groups.c).
#[tokio::test]
async fn group_role_changes_kick_the_group_members() {
    let (b, mut admin) = world(
        "",
        &[
            create_role("r14", &[]),
            cmd("createGroup", r#""groupname":"g14""#),
            create_client("u14", &[]),
            cmd("addGroupClient", r#""groupname":"g14","username":"u14""#),
        ],
    )
    .await;
    for change in [
        cmd("addGroupRole", r#""groupname":"g14","rolename":"r14""#),
        cmd("removeGroupRole", r#""groupname":"g14","rolename":"r14""#),
    ] {
        let mut member = user(b.addr, V5, "c14", "u14").await;
        admin.ok(&change).await;
        member.expect_disconnect(0x98).await;
    }
}

/// deleteRole kicks the clients that hold the role directly and the members of every
/// group that has it (`role__remove_all_clients`, `role__remove_all_groups` in roles.c).
#[tokio::test]
async fn delete_role_kicks_group_members_holding_it() {
    let (b, mut admin) = world(
        "",
        &[
            create_role("r15", &[("subscribePattern", "x/#", true, 0)]),
            cmd(
                "createGroup",
                r#""groupname":"g15","roles":[{"rolename":"r15"}]"#,
            ),
            create_client("u15", &[]),
            cmd("addGroupClient", r#""groupname":"g15","username":"u15""#),
        ],
    )
    .await;
    let mut member = user(b.addr, V5, "c15", "u15").await;
    admin.ok(&cmd("deleteRole", r#""rolename":"r15""#)).await;
    member.expect_disconnect(0x98).await;
}

/// Changes that concern the anonymous group kick every client without a username
/// (`mosquitto_kick_client_by_username(NULL, false)` after setAnonymousGroup, and in
/// `group__kick_all` / `role__kick_all` for the anonymous group).
#[tokio::test]
async fn anonymous_group_changes_kick_anonymous_clients() {
    let (b, mut admin) = world(
        "allow_anonymous true",
        &[
            create_role("anon-role", &[("subscribePattern", "a/#", true, 0)]),
            cmd(
                "createGroup",
                r#""groupname":"anon","roles":[{"rolename":"anon-role"}]"#,
            ),
            cmd("createGroup", r#""groupname":"anon2""#),
            cmd("setAnonymousGroup", r#""groupname":"anon""#),
        ],
    )
    .await;
    for change in [
        add_role_acl("anon-role", "publishClientSend", "a/#", true, 0),
        cmd("setAnonymousGroup", r#""groupname":"anon2""#),
    ] {
        let mut anon = accepted(b.addr, login(V5, "anon-1", None, None)).await;
        admin.ok(&change).await;
        anon.expect_disconnect(0x98).await;
    }
}

#[tokio::test]
async fn add_client_role_grants_after_reconnect() {
    let (b, mut admin) = world(
        "",
        &[
            create_role("pub", &[("publishClientSend", "g/#", true, 0)]),
            create_client("u14", &[]),
        ],
    )
    .await;
    let mut obs = observer(&b, "obs", "g/#").await;
    let mut c = user(b.addr, V5, "c14", "u14").await;
    publish_denied(&mut c, "g/1", b"no").await;
    admin
        .ok(&cmd(
            "addClientRole",
            r#""username":"u14","rolename":"pub""#,
        ))
        .await;
    // Mosquitto kicks on addClientRole; the next connection has the right.
    c.expect_disconnect(0x98).await;
    let mut c = user(b.addr, V5, "c14", "u14").await;
    publish_ok(&mut c, "g/1", b"yes").await;
    expect_message(&mut obs, "g/1", b"yes").await;
}

// ---------------------------------------------------------------------------------------
// CVE-2021-34434: revoked subscribe rights drop existing subscriptions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revoked_subscribe_right_drops_offline_persistent_subscription() {
    for v in VERSIONS {
        let (b, mut admin) = world(
            "",
            &[
                create_role("cve", &[("subscribePattern", "cve/#", true, 0)]),
                create_client("sleeper", &["cve"]),
            ],
        )
        .await;
        let mut f = feeder(&b).await;
        let mut s = accepted(b.addr, persistent(v, "sleeper-1", "sleeper")).await;
        assert_eq!(sub(&mut s, "cve/#").await, 1);
        s.disconnect().await;
        settle().await;
        // Control: while allowed, a message published while offline is kept for it.
        publish_ok(&mut f, "cve/before", b"kept").await;
        let mut s = accepted(b.addr, persistent(v, "sleeper-1", "sleeper")).await;
        expect_message(&mut s, "cve/before", b"kept").await;
        s.disconnect().await;
        settle().await;

        admin
            .ok(&remove_role_acl("cve", "subscribePattern", "cve/#"))
            .await;
        settle().await;
        publish_ok(&mut f, "cve/after", b"must not arrive").await;
        let (mut s, ack) = Raw::connect_with(b.addr, persistent(v, "sleeper-1", "sleeper")).await;
        assert!(ack.session_present, "{v:?}: the session itself is kept");
        s.expect_silence(QUIET).await;
        publish_ok(&mut f, "cve/later", b"nor this").await;
        s.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn revoked_subscribe_right_drops_connected_subscription() {
    for v in VERSIONS {
        let (b, mut admin) = world(
            "",
            &[
                create_role("cve", &[("subscribePattern", "cve/#", true, 0)]),
                create_client("awake", &["cve"]),
            ],
        )
        .await;
        let mut f = feeder(&b).await;
        let mut s = accepted(b.addr, persistent(v, "awake-1", "awake")).await;
        assert_eq!(sub(&mut s, "cve/#").await, 1);
        publish_ok(&mut f, "cve/1", b"allowed").await;
        expect_message(&mut s, "cve/1", b"allowed").await;

        admin
            .ok(&remove_role_acl("cve", "subscribePattern", "cve/#"))
            .await;
        settle().await;
        publish_ok(&mut f, "cve/2", b"revoked").await;
        expect_no_publish_tolerating_kick(&mut s).await;
        drop(s);
        // Whether it was kicked or not, its session holds no such subscription.
        let (mut s, _) = Raw::connect_with(b.addr, persistent(v, "awake-1", "awake")).await;
        publish_ok(&mut f, "cve/3", b"revoked").await;
        s.expect_silence(QUIET).await;
        assert_eq!(sub(&mut s, "cve/#").await, sub_denied(v));
    }
}

/// A subscription made under `defaultACLAccess.subscribe = true` goes when the default is
/// set back to deny.
#[tokio::test]
async fn default_subscribe_revoked_drops_subscriptions() {
    let (b, mut admin) = world(
        "",
        &[create_client("loose", &[]), set_default("subscribe", true)],
    )
    .await;
    let mut f = feeder(&b).await;
    let mut s = accepted(b.addr, persistent(V5, "loose-1", "loose")).await;
    assert_eq!(sub(&mut s, "d/#").await, 1);
    publish_ok(&mut f, "d/1", b"1").await;
    expect_message(&mut s, "d/1", b"1").await;
    admin.ok(&set_default("subscribe", false)).await;
    settle().await;
    publish_ok(&mut f, "d/2", b"2").await;
    s.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn changes_are_saved_atomically_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let (b, mut admin) = world("", &[]).await;
    admin.ok(&create_client("saved", &[])).await;
    let saved = DynSec::from_json(&b.file_text()).expect("the saved file loads");
    assert!(saved.has_client("saved"));
    assert!(saved.has_client("feeder"));
    assert_eq!(
        saved.authenticate(Some("saved"), Some(pw("saved").as_bytes()), "any"),
        Decision::Allow
    );
    assert_eq!(
        saved.authenticate(Some("saved"), Some(b"wrong"), "any"),
        Decision::Deny
    );
    let mode = std::fs::metadata(&b.file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file holds password hashes: {mode:o}");
    let names: Vec<String> = std::fs::read_dir(&b.dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![FILE.to_string()], "no temporary file left");

    // A read-only request does not rewrite the file; a later change does.
    let before = b.file_text();
    admin.ok(&cmd("listClients", "")).await;
    assert_eq!(b.file_text(), before);
    admin
        .ok(&cmd("deleteClient", r#""username":"saved""#))
        .await;
    let saved = DynSec::from_json(&b.file_text()).unwrap();
    assert!(!saved.has_client("saved"));

    // The saved file starts a new broker with the same state.
    let b2 = Broker::start(&b.file_text(), "").await;
    user(b2.addr, V5, "f2", "feeder").await;
}

/// Saving keeps what it loaded: both password forms, the client id binding, the disabled
/// flag, the client without a password.
#[tokio::test]
async fn saving_keeps_both_password_forms_and_flags() {
    let b = Broker::start(VECTORS_FILE, "").await;
    let mut admin = Admin::connect_as(b.addr, "a-ctl", "alice", "s3cret").await;
    admin.ok(&create_client("newbie", &[])).await;
    let saved = DynSec::from_json(&b.file_text()).expect("the saved file loads");
    for (user, password, id, want) in [
        ("alice", "s3cret", "x", Decision::Allow),
        ("alice", "wrong", "x", Decision::Deny),
        ("carol", "pbkdfpw", "x", Decision::Allow),
        ("bob", "hunter2", "x", Decision::Allow),
        ("bob", "hunter3", "x", Decision::Deny),
        ("bound", "s3cret", "bound-id", Decision::Allow),
        ("bound", "s3cret", "x", Decision::Deny),
        ("off", "s3cret", "x", Decision::Deny),
        ("nopw", "", "x", Decision::Deny),
        ("newbie", "pw-newbie", "x", Decision::Allow),
    ] {
        assert_eq!(
            saved.authenticate(Some(user), Some(password.as_bytes()), id),
            want,
            "{user} / {password} / {id}"
        );
    }
    assert!(saved.has_client("argo"));
    // And the broker still lets them in.
    accepted(b.addr, login(V5, "c", Some("carol"), Some("pbkdfpw"))).await;
    accepted(b.addr, login(V311, "n", Some("newbie"), Some("pw-newbie"))).await;
}

#[tokio::test]
async fn broken_or_missing_file_fails_bind_naming_the_file() {
    let dir = TempDir::new();
    let broken = dir.write("broken.json", "{\"clients\": [");
    let missing = dir.path("missing.json");
    for file in [&broken, &missing] {
        let config = parse_conf(&conf_text(file, ""));
        match midge_server::Server::bind(&config).await {
            Ok(_) => panic!("a broker started with {file}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(file.as_str()), "{msg:?} should name {file}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Response shapes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn response_shapes() {
    let (_b, mut admin) = world(
        "",
        &[
            create_role("r1", &[("subscribePattern", "a/#", true, 3)]),
            cmd(
                "createGroup",
                r#""groupname":"g1","textname":"Group one","roles":[{"rolename":"r1","priority":4}]"#,
            ),
            cmd(
                "createClient",
                r#""username":"shape","password":"pw","clientid":"shape-id","textname":"Shape","textdescription":"A client","roles":[{"rolename":"r1","priority":7}],"groups":[{"groupname":"g1","priority":2}]"#,
            ),
        ],
    )
    .await;

    // getClient, with correlationData echoed.
    let r = admin
        .ok(&cmd(
            "getClient",
            r#""username":"shape","correlationData":"abc""#,
        ))
        .await;
    let resp = &r["responses"][0];
    assert_eq!(resp["command"].str(), "getClient");
    assert_eq!(resp["correlationData"].str(), "abc");
    let client = &resp["data"]["client"];
    assert_eq!(client["username"].str(), "shape");
    assert_eq!(client["clientid"].str(), "shape-id");
    assert_eq!(client["textname"].str(), "Shape");
    assert_eq!(client["textdescription"].str(), "A client");
    assert_eq!(client["roles"][0]["rolename"].str(), "r1");
    assert_eq!(client["roles"][0]["priority"].num(), 7.0);
    assert_eq!(client["groups"][0]["groupname"].str(), "g1");
    assert_eq!(client["groups"][0]["priority"].num(), 2.0);
    assert!(client.get("password").is_none(), "no hash in responses");
    assert!(client.get("disabled").is_none() || !client["disabled"].bool());

    // listClients: names, or objects when verbose; count/offset page.
    let r = admin.ok(&cmd("listClients", "")).await;
    let data = &r["responses"][0]["data"];
    assert_eq!(data["totalCount"].num(), 3.0);
    let mut names = data["clients"].strings();
    names.sort();
    assert_eq!(names, vec!["admin", "feeder", "shape"]);
    let r = admin.ok(&cmd("listClients", r#""verbose":true"#)).await;
    let verbose = r["responses"][0]["data"]["clients"].arr();
    assert_eq!(verbose.len(), 3);
    assert!(verbose.iter().all(|c| c.get("username").is_some()));
    let r = admin
        .ok(&cmd("listClients", r#""count":1,"offset":1"#))
        .await;
    let data = &r["responses"][0]["data"];
    assert_eq!(data["totalCount"].num(), 3.0);
    assert_eq!(data["clients"].arr().len(), 1);

    // listRoles.
    let r = admin.ok(&cmd("listRoles", "")).await;
    let data = &r["responses"][0]["data"];
    assert_eq!(data["totalCount"].num(), 3.0);
    let mut roles = data["roles"].strings();
    roles.sort();
    assert_eq!(roles, vec!["admin", "r1", "sender"]);

    // getRole.
    let r = admin.ok(&cmd("getRole", r#""rolename":"r1""#)).await;
    let role = &r["responses"][0]["data"]["role"];
    assert_eq!(role["rolename"].str(), "r1");
    assert!(role["allowwildcardsubs"].bool());
    assert_eq!(role["acls"][0]["acltype"].str(), "subscribePattern");
    assert_eq!(role["acls"][0]["topic"].str(), "a/#");
    assert_eq!(role["acls"][0]["priority"].num(), 3.0);
    assert!(role["acls"][0]["allow"].bool());

    // getGroup.
    let r = admin.ok(&cmd("getGroup", r#""groupname":"g1""#)).await;
    let group = &r["responses"][0]["data"]["group"];
    assert_eq!(group["groupname"].str(), "g1");
    assert_eq!(group["textname"].str(), "Group one");
    assert_eq!(group["clients"][0]["username"].str(), "shape");
    assert_eq!(group["roles"][0]["rolename"].str(), "r1");
    assert_eq!(group["roles"][0]["priority"].num(), 4.0);

    // Errors: one response per command, in order, the failing one with `error`.
    let r = admin
        .send(
            &[
                cmd("getClient", r#""username":"nobody""#),
                cmd("deleteRole", r#""rolename":"nope""#),
                cmd("noSuchCommand", ""),
                cmd("getDefaultACLAccess", ""),
            ]
            .join(","),
        )
        .await;
    let responses = r["responses"].arr();
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0]["error"].str(), "Client not found");
    assert_eq!(responses[1]["command"].str(), "deleteRole");
    assert_eq!(responses[1]["error"].str(), "Role not found");
    assert_eq!(responses[2]["error"].str(), "Unknown command");
    assert!(responses[3].get("error").is_none());
    assert_eq!(responses[3]["data"]["acls"].arr().len(), 4);

    // A payload that is not JSON.
    let code = admin
        .raw
        .publish(CONTROL_TOPIC, b"not json", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(code, 0);
    let p = admin
        .raw
        .wait_for("the error response", |p| match p {
            Packet::Publish(p) if &*p.topic == RESPONSE_TOPIC => Some(p.clone()),
            _ => None,
        })
        .await;
    let r = Json::parse(std::str::from_utf8(&p.payload).unwrap());
    assert_eq!(r["responses"][0]["error"].str(), "Payload not valid JSON");
}
