use serde_json::{json, Value};

use super::*;

/// Written by Debian's `mosquitto_ctrl dynsec init ds.json admin pw` (2.0.11), verbatim,
/// including its `textName` spelling.
const CTRL_INIT: &str = r##"{
	"clients":	[{
			"username":	"admin",
			"textName":	"Dynsec admin user",
			"password":	"9ne8Ryd0cetJHvwBF0HF7xVVLDI8j4+ifmv9AniM/vzkZDD+LOt9nPlzCoB0QO6e0cJ6EDv9LI48LNiXqE9qqA==",
			"salt":	"f3fStZMtsnduHGxt",
			"iterations":	101,
			"roles":	[{
					"rolename":	"admin"
				}]
		}],
	"roles":	[{
			"rolename":	"admin",
			"acls":	[{
					"acltype":	"publishClientSend",
					"topic":	"$CONTROL/dynamic-security/#",
					"allow":	true
				}, {
					"acltype":	"publishClientReceive",
					"topic":	"$CONTROL/dynamic-security/#",
					"allow":	true
				}, {
					"acltype":	"subscribePattern",
					"topic":	"$CONTROL/dynamic-security/#",
					"allow":	true
				}, {
					"acltype":	"publishClientReceive",
					"topic":	"$SYS/#",
					"allow":	true
				}, {
					"acltype":	"subscribePattern",
					"topic":	"$SYS/#",
					"allow":	true
				}, {
					"acltype":	"publishClientReceive",
					"topic":	"#",
					"allow":	true
				}, {
					"acltype":	"subscribePattern",
					"topic":	"#",
					"allow":	true
				}, {
					"acltype":	"unsubscribePattern",
					"topic":	"#",
					"allow":	true
				}]
		}],
	"defaultACLAccess":	{
		"publishClientSend":	false,
		"publishClientReceive":	true,
		"subscribe":	false,
		"unsubscribe":	true
	}
}"##;

const ADMIN: Admin<'static> = Admin {
    client_id: "ctl",
    username: Some("admin"),
};

use AclAccess::{PublishClientReceive as Recv, PublishClientSend as Send, Subscribe as Sub};
use Decision::{Allow, Defer, Deny};

fn fast_salt() -> [u8; 12] {
    [7; 12]
}

/// An empty state whose new passwords hash quickly enough for tests.
fn empty() -> DynSec {
    let mut ds = DynSec::from_json("{}").expect("empty object loads");
    ds.set_salt_source(fast_salt);
    ds
}

/// Runs a batch; returns the responses and the outcome.
fn run(ds: &mut DynSec, commands: Value) -> (Vec<Value>, Outcome) {
    let payload = serde_json::to_vec(&json!({ "commands": commands })).unwrap();
    let outcome = ds.handle(&ADMIN, &payload);
    let response: Value = serde_json::from_slice(&outcome.response).unwrap();
    let responses = response["responses"].as_array().unwrap().clone();
    (responses, outcome)
}

/// Runs one command and returns its response.
fn one(ds: &mut DynSec, command: Value) -> Value {
    run(ds, json!([command])).0.remove(0)
}

fn ok(ds: &mut DynSec, command: Value) -> Value {
    let response = one(ds, command.clone());
    assert!(response.get("error").is_none(), "{command} -> {response}");
    response
}

fn err(ds: &mut DynSec, command: Value) -> String {
    let response = one(ds, command.clone());
    response["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{command} succeeded: {response}"))
        .to_string()
}

fn raw(ds: &mut DynSec, payload: &str) -> Value {
    serde_json::from_slice(&ds.handle(&ADMIN, payload.as_bytes()).response).unwrap()
}

// ---- loading and saving ------------------------------------------------------------------

#[test]
fn loads_the_file_mosquitto_ctrl_init_writes() {
    let ds = DynSec::from_json(CTRL_INIT).unwrap();
    assert_eq!(ds.authenticate(Some("admin"), Some(b"pw"), "any"), Allow);
    assert_eq!(ds.authenticate(Some("admin"), Some(b"px"), "any"), Deny);
    // cJSON's lookups ignore case: `textName` is the text name.
    assert_eq!(
        ds.model.clients["admin"].textname.as_deref(),
        Some("Dynsec admin user")
    );
    assert_eq!(
        ds.check(Some("admin"), "c", Send, "$CONTROL/dynamic-security/v1"),
        Allow
    );
    assert_eq!(ds.check(Some("admin"), "c", Send, "app/x"), Deny);
    assert_eq!(ds.check(Some("admin"), "c", Sub, "$SYS/#"), Allow);
    assert_eq!(ds.check(Some("admin"), "c", Sub, "#"), Allow);
}

#[test]
fn init_matches_mosquitto_ctrl() {
    let mut ds = DynSec::init("boss", "secret");
    ds.set_salt_source(fast_salt);
    assert_eq!(ds.authenticate(Some("boss"), Some(b"secret"), "x"), Allow);
    let ours = json::acls_json(&ds.model.roles["admin"]);
    let theirs = json::acls_json(&DynSec::from_json(CTRL_INIT).unwrap().model.roles["admin"]);
    assert_eq!(ours, theirs);
    let text = ds.to_json();
    // Mosquitto 2.0.11 reads only the 2.0 triple.
    assert!(text.contains("\"salt\"") && text.contains("\"iterations\": 1000"));
    assert!(!text.contains("encoded_password"));
    let again = DynSec::from_json(&text).unwrap();
    assert_eq!(
        again.authenticate(Some("boss"), Some(b"secret"), "x"),
        Allow
    );
}

#[test]
fn loads_the_2_1_form_and_keeps_what_2_0_cannot_read_encoded() {
    let argon = "$argon2id$v=19$m=47104,t=1,p=1$U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTUw$9ves7Lbz0/dWZU2mhe0FhelUw6WLIh2LT4g/3t1p1Jt8w7VEhqz/FFgD2hg3tefpAWxvB832P6f59U7/20zRzQ";
    let alice = "$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";
    let text = json!({
        "changeIndex": 7,
        "clients": [
            {"username": "alice", "encoded_password": alice},
            {"username": "argon", "encoded_password": argon},
        ]
    })
    .to_string();
    let ds = DynSec::from_json(&text).unwrap();
    assert_eq!(ds.model.change_index, 7);
    assert_eq!(ds.authenticate(Some("alice"), Some(b"s3cret"), "c"), Allow);
    assert_eq!(ds.authenticate(Some("argon"), Some(b"argonpw"), "c"), Allow);
    let saved: Value = serde_json::from_str(&ds.to_json()).unwrap();
    let clients = saved["clients"].as_array().unwrap();
    // PBKDF2 goes back to the 2.0 triple; argon2id stays encoded.
    assert_eq!(clients[0]["salt"], "fmqt2++sRIF8iKr1");
    assert_eq!(clients[0]["iterations"], 101);
    assert!(clients[0].get("encoded_password").is_none());
    assert_eq!(clients[1]["encoded_password"], argon);
    let again = DynSec::from_json(&ds.to_json()).unwrap();
    assert_eq!(
        again.authenticate(Some("alice"), Some(b"s3cret"), "c"),
        Allow
    );
}

#[test]
fn loading_skips_bad_names_and_marks_incomplete_passwords_unusable() {
    let text = json!({
        "clients": [
            {"username": "", "password": "x"},
            {"username": 5},
            {"username": "bad\u{1}name"},
            {"username": "dup"},
            {"username": "dup", "textname": "second"},
            {"username": "nosalt", "password": "fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==", "iterations": 101},
            {"username": "ghost", "roles": [{"rolename": "missing"}], "unknown": true},
        ],
        "groups": [{"groupname": "g", "clients": [{"username": "ghost"}, {"username": "nobody"}]}],
        "anonymousGroup": "nonexistent",
    })
    .to_string();
    let ds = DynSec::from_json(&text).unwrap();
    let names: Vec<&str> = ds.model.clients.keys().map(String::as_str).collect();
    assert_eq!(names, ["dup", "ghost", "nosalt"]);
    assert_eq!(ds.model.clients["dup"].textname, None);
    assert_eq!(ds.authenticate(Some("nosalt"), Some(b"s3cret"), "c"), Deny);
    assert!(ds.model.clients["ghost"].roles.is_empty());
    assert_eq!(ds.model.group_clients("g").len(), 1);
    assert_eq!(ds.model.anonymous_group, None);
}

#[test]
fn load_errors_say_where() {
    assert!(matches!(
        DynSec::from_json("{"),
        Err(DynSecError::Syntax(_))
    ));
    assert_eq!(
        DynSec::from_json("[]").unwrap_err().to_string(),
        "top level: expected an object"
    );
    assert_eq!(
        DynSec::from_json(r#"{"clients": {}}"#)
            .unwrap_err()
            .to_string(),
        "clients: expected an array"
    );
    assert_eq!(
        DynSec::from_json(r#"{"clients": [{"username":"a"}, 3]}"#)
            .unwrap_err()
            .to_string(),
        "clients[1]: expected an object"
    );
    let e = DynSec::from_json(
        r#"{"clients": [{"username":"a"},{"username":"b","encoded_password":"plain"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("clients[1] (b): encoded_password:"), "{e}");
}

#[test]
fn round_trip() {
    let mut ds = DynSec::from_json(CTRL_INIT).unwrap();
    ds.set_salt_source(fast_salt);
    run(
        &mut ds,
        json!([
            {"command": "createRole", "rolename": "r", "textname": "t", "allowwildcardsubs": false,
             "acls": [{"acltype": "subscribeLiteral", "topic": "a/b", "priority": 3, "allow": true},
                      {"acltype": "publishClientSend", "topic": "x/#", "allow": true}]},
            {"command": "createGroup", "groupname": "g", "textdescription": "d", "roles": [{"rolename": "r", "priority": 2}]},
            {"command": "createClient", "username": "u", "password": "p", "clientid": "cid",
             "roles": [{"rolename": "r"}], "groups": [{"groupname": "g", "priority": 4}]},
            {"command": "disableClient", "username": "u"},
            {"command": "setAnonymousGroup", "groupname": "g"},
            {"command": "setDefaultACLAccess", "acls": [{"acltype": "subscribe", "allow": true}]},
        ]),
    );
    let text = ds.to_json();
    let again = DynSec::from_json(&text).unwrap();
    assert_eq!(again.to_json(), text);
    assert_eq!(again.model.change_index, 1);
    assert!(again.model.clients["u"].disabled);
    assert_eq!(again.model.clients["u"].clientid.as_deref(), Some("cid"));
    assert_eq!(again.model.anonymous_group.as_deref(), Some("g"));
    assert!(again.model.default_access.subscribe);
    assert!(!again.model.roles["r"].allow_wildcard_subs);
}

#[test]
fn debug_hides_hashes() {
    let ds = DynSec::from_json(CTRL_INIT).unwrap();
    let debug = format!("{ds:?}");
    assert!(!debug.contains("f3fStZMtsnduHGxt"));
    assert!(!debug.contains("9ne8Ryd0"));
    assert!(!debug.contains("[245"));
}

// ---- authentication -------------------------------------------------------------------------

#[test]
fn authentication() {
    let mut ds = empty();
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u", "password": "p"}),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "bound", "password": "p", "clientid": "dev1"}),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "nopw"}),
    );
    assert_eq!(ds.authenticate(Some("u"), Some(b"p"), "x"), Allow);
    assert_eq!(ds.authenticate(Some("u"), Some(b"q"), "x"), Deny);
    assert_eq!(ds.authenticate(Some("u"), None, "x"), Defer);
    assert_eq!(ds.authenticate(None, Some(b"p"), "x"), Defer);
    assert_eq!(ds.authenticate(Some("who"), Some(b"p"), "x"), Defer);
    assert_eq!(ds.authenticate(Some("bound"), Some(b"p"), "dev1"), Allow);
    assert_eq!(ds.authenticate(Some("bound"), Some(b"p"), "dev2"), Deny);
    assert_eq!(ds.authenticate(Some("bound"), Some(b"p"), "Dev1"), Deny);
    assert_eq!(ds.authenticate(Some("nopw"), Some(b""), "x"), Deny);
    ok(
        &mut ds,
        json!({"command": "disableClient", "username": "u"}),
    );
    assert_eq!(ds.authenticate(Some("u"), Some(b"p"), "x"), Deny);
    ok(&mut ds, json!({"command": "enableClient", "username": "u"}));
    assert_eq!(ds.authenticate(Some("u"), Some(b"p"), "x"), Allow);
}

// ---- ACL decisions ---------------------------------------------------------------------------

#[test]
fn default_access_per_event_and_control_fall_through() {
    let mut ds = empty();
    ok(&mut ds, json!({"command": "createClient", "username": "u"}));
    assert_eq!(ds.check(Some("u"), "c", Send, "a"), Deny);
    assert_eq!(ds.check(Some("u"), "c", Recv, "a"), Allow);
    assert_eq!(ds.check(Some("u"), "c", Sub, "a"), Deny);
    assert_eq!(ds.check(Some("u"), "c", AclAccess::Unsubscribe, "a"), Allow);
    assert_eq!(
        ds.check(
            Some("u"),
            "c",
            Recv,
            "$CONTROL/dynamic-security/v1/response"
        ),
        Deny
    );
    assert_eq!(
        ds.check(Some("u"), "c", AclAccess::Unsubscribe, "$CONTROL/#"),
        Deny
    );
    assert_eq!(ds.check(Some("stranger"), "c", Recv, "a"), Defer);
    ok(
        &mut ds,
        json!({"command": "setDefaultACLAccess", "acls": [
            {"acltype": "publishClientSend", "allow": true},
            {"acltype": "PUBLISHCLIENTRECEIVE", "allow": false},
            {"acltype": "subscribe", "allow": true},
            {"acltype": "unsubscribe", "allow": false},
            {"acltype": "bogus", "allow": true}]}),
    );
    assert_eq!(ds.check(Some("u"), "c", Send, "a"), Allow);
    assert_eq!(
        ds.check(Some("u"), "c", Send, "$CONTROL/dynamic-security/v1"),
        Deny
    );
    assert_eq!(ds.check(Some("u"), "c", Recv, "a"), Deny);
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/#"), Allow);
    assert_eq!(ds.check(Some("u"), "c", AclAccess::Unsubscribe, "a"), Deny);
    let d = ok(&mut ds, json!({"command": "getDefaultACLAccess"}));
    assert_eq!(
        d["data"]["acls"],
        json!([{"acltype": "publishClientSend", "allow": true},
               {"acltype": "publishClientReceive", "allow": false},
               {"acltype": "subscribe", "allow": true},
               {"acltype": "unsubscribe", "allow": false}])
    );
}

fn role(ds: &mut DynSec, name: &str, acls: Value) {
    ok(
        ds,
        json!({"command": "createRole", "rolename": name, "acls": acls}),
    );
}

#[test]
fn every_acl_type_allows_and_denies() {
    let mut ds = empty();
    role(
        &mut ds,
        "r",
        json!([
            {"acltype": "publishClientSend", "topic": "s/deny", "priority": 1, "allow": false},
            {"acltype": "publishClientSend", "topic": "s/#", "allow": true},
            {"acltype": "publishClientReceive", "topic": "r/deny", "priority": 1, "allow": false},
            {"acltype": "publishClientReceive", "topic": "r/#", "allow": true},
            {"acltype": "subscribeLiteral", "topic": "sl/+", "allow": true},
            {"acltype": "subscribeLiteral", "topic": "sl/no", "allow": false},
            {"acltype": "subscribePattern", "topic": "sp/deny", "priority": 1, "allow": false},
            {"acltype": "subscribePattern", "topic": "sp/#", "allow": true},
            {"acltype": "unsubscribeLiteral", "topic": "ul/x", "allow": false},
            {"acltype": "unsubscribePattern", "topic": "up/#", "allow": false},
            {"acltype": "unsubscribePattern", "topic": "ul/#", "allow": true},
        ]),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u", "roles": [{"rolename": "r"}]}),
    );
    let u = |ds: &DynSec, access, topic| ds.check(Some("u"), "c", access, topic);
    assert_eq!(u(&ds, Send, "s/x"), Allow);
    assert_eq!(u(&ds, Send, "s/deny"), Deny);
    assert_eq!(u(&ds, Recv, "r/x"), Allow);
    assert_eq!(u(&ds, Recv, "r/deny"), Deny);
    // A literal ACL is an exact string compare: `sl/+` grants the filter `sl/+` only.
    assert_eq!(u(&ds, Sub, "sl/+"), Allow);
    assert_eq!(u(&ds, Sub, "sl/a"), Deny);
    assert_eq!(u(&ds, Sub, "sl/no"), Deny);
    assert_eq!(u(&ds, Sub, "sp/a/+"), Allow);
    assert_eq!(u(&ds, Sub, "sp/deny"), Deny);
    assert_eq!(u(&ds, AclAccess::Unsubscribe, "ul/x"), Deny);
    assert_eq!(u(&ds, AclAccess::Unsubscribe, "ul/y"), Allow);
    assert_eq!(u(&ds, AclAccess::Unsubscribe, "up/y"), Deny);
}

#[test]
fn literal_is_checked_before_pattern_within_a_role() {
    let mut ds = empty();
    role(
        &mut ds,
        "r",
        json!([
            {"acltype": "subscribePattern", "topic": "a/#", "priority": 100, "allow": true},
            {"acltype": "subscribeLiteral", "topic": "a/secret", "priority": -100, "allow": false},
        ]),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u", "roles": [{"rolename": "r"}]}),
    );
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/secret"), Deny);
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/other"), Allow);
}

/// The example of seed 003 (Mosquitto's dynamic security documentation): client `sensor`
/// with role `hallway`, groups `temperature` (priority 2: roles `input` 5, `output` 1) and
/// `humidity` (priority 1: role `humidity`). Checking order: hallway, input, output,
/// humidity.
#[test]
fn priority_order_across_client_roles_groups_and_acls() {
    let mut ds = empty();
    let acl = |topic: &str, allow: bool| json!([{"acltype": "publishClientSend", "topic": topic, "allow": allow}]);
    role(&mut ds, "hallway", acl("hall/#", true));
    role(&mut ds, "input", acl("t/#", false));
    role(&mut ds, "output", acl("t/out/#", true));
    role(&mut ds, "humidity", acl("#", true));
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "temperature",
        "roles": [{"rolename": "output", "priority": 1}, {"rolename": "input", "priority": 5}]}),
    );
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "humidity", "roles": [{"rolename": "humidity"}]}),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "sensor", "roles": [{"rolename": "hallway"}],
        "groups": [{"groupname": "humidity", "priority": 1}, {"groupname": "temperature", "priority": 2}]}),
    );
    let s = |ds: &DynSec, topic| ds.check(Some("sensor"), "c", Send, topic);
    assert_eq!(s(&ds, "hall/x"), Allow);
    // input (group temperature, priority 5) comes before output (priority 1).
    assert_eq!(s(&ds, "t/out/x"), Deny);
    // humidity's `#` is reached last.
    assert_eq!(s(&ds, "other"), Allow);
    // Swap the groups' priorities: humidity's `#` now wins for t/...
    ok(
        &mut ds,
        json!({"command": "modifyClient", "username": "sensor",
        "groups": [{"groupname": "humidity", "priority": 3}, {"groupname": "temperature", "priority": 2}]}),
    );
    assert_eq!(s(&ds, "t/out/x"), Allow);
    // A client role beats every group role: deny hall/# in a group role has no effect.
    role(&mut ds, "nohall", acl("hall/#", false));
    ok(
        &mut ds,
        json!({"command": "addGroupRole", "groupname": "humidity", "rolename": "nohall", "priority": 50}),
    );
    assert_eq!(s(&ds, "hall/x"), Allow);
    // Inside a role, ACL priority decides, whatever the insertion order.
    role(
        &mut ds,
        "inner",
        json!([
        {"acltype": "publishClientSend", "topic": "p/#", "priority": 1, "allow": true},
        {"acltype": "publishClientSend", "topic": "p/x", "priority": 9, "allow": false}]),
    );
    ok(
        &mut ds,
        json!({"command": "addClientRole", "username": "sensor", "rolename": "inner", "priority": 10}),
    );
    assert_eq!(s(&ds, "p/x"), Deny);
    assert_eq!(s(&ds, "p/y"), Allow);
    // Equal client role priorities: ties go by role name.
    role(&mut ds, "a-allow", acl("tie", true));
    role(&mut ds, "b-deny", acl("tie", false));
    ok(
        &mut ds,
        json!({"command": "addClientRole", "username": "sensor", "rolename": "b-deny", "priority": 20}),
    );
    ok(
        &mut ds,
        json!({"command": "addClientRole", "username": "sensor", "rolename": "a-allow", "priority": 20}),
    );
    assert_eq!(s(&ds, "tie"), Allow);
}

#[test]
fn anonymous_group() {
    let mut ds = empty();
    role(
        &mut ds,
        "anon",
        json!([
        {"acltype": "publishClientSend", "topic": "public/#", "allow": true},
        {"acltype": "subscribePattern", "topic": "public/#", "allow": true}]),
    );
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "unauthenticated", "roles": [{"rolename": "anon"}]}),
    );
    assert_eq!(ds.check(None, "c", Send, "public/x"), Deny);
    ok(
        &mut ds,
        json!({"command": "setAnonymousGroup", "groupname": "unauthenticated"}),
    );
    assert_eq!(ds.check(None, "c", Send, "public/x"), Allow);
    assert_eq!(ds.check(None, "c", Sub, "public/#"), Allow);
    assert_eq!(ds.check(None, "c", Send, "private"), Deny);
    let g = ok(&mut ds, json!({"command": "getAnonymousGroup"}));
    assert_eq!(
        g["data"],
        json!({"group": {"groupname": "unauthenticated"}})
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "deleteGroup", "groupname": "unauthenticated"})
        ),
        "Deleting the anonymous group is forbidden"
    );
    // A named client does not get the anonymous group's roles.
    ok(&mut ds, json!({"command": "createClient", "username": "u"}));
    assert_eq!(ds.check(Some("u"), "c", Send, "public/x"), Deny);
}

#[test]
fn patterns_substitute_client_id_and_username_but_not_in_literals() {
    let mut ds = empty();
    role(
        &mut ds,
        "r",
        json!([
        {"acltype": "publishClientSend", "topic": "dev/%c/#", "allow": true},
        {"acltype": "publishClientReceive", "topic": "usr/%u/#", "allow": true},
        {"acltype": "subscribePattern", "topic": "usr/%u/+", "allow": true},
        {"acltype": "subscribeLiteral", "topic": "lit/%c", "allow": true},
        {"acltype": "unsubscribePattern", "topic": "dev/%c", "allow": false}]),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "alice", "roles": [{"rolename": "r"}]}),
    );
    let a = |ds: &DynSec, access, topic| ds.check(Some("alice"), "d1", access, topic);
    assert_eq!(a(&ds, Send, "dev/d1/t"), Allow);
    assert_eq!(a(&ds, Send, "dev/d2/t"), Deny);
    ok(
        &mut ds,
        json!({"command": "setDefaultACLAccess", "acls": [{"acltype": "publishClientReceive", "allow": false}]}),
    );
    assert_eq!(a(&ds, Recv, "usr/alice/x"), Allow);
    assert_eq!(a(&ds, Recv, "usr/bob/x"), Deny);
    assert_eq!(a(&ds, Sub, "usr/alice/+"), Allow);
    assert_eq!(a(&ds, Sub, "usr/alice/#"), Deny);
    assert_eq!(a(&ds, Sub, "usr/+/+"), Deny);
    assert_eq!(a(&ds, Sub, "lit/%c"), Allow);
    assert_eq!(a(&ds, Sub, "lit/d1"), Deny);
    assert_eq!(a(&ds, AclAccess::Unsubscribe, "dev/d1"), Deny);
    assert_eq!(a(&ds, AclAccess::Unsubscribe, "dev/d2"), Allow);
}

#[test]
fn allowwildcardsubs_false_refuses_wildcard_filters() {
    let mut ds = empty();
    ok(
        &mut ds,
        json!({"command": "createRole", "rolename": "r", "allowwildcardsubs": false,
        "acls": [{"acltype": "subscribePattern", "topic": "#", "allow": true}]}),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u", "roles": [{"rolename": "r"}]}),
    );
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/b"), Allow);
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/+"), Deny);
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/#"), Deny);
    // Unsubscribing is not affected.
    assert_eq!(
        ds.check(Some("u"), "c", AclAccess::Unsubscribe, "a/#"),
        Allow
    );
    assert!(!ds.subscription_still_allowed(Some("u"), "c", "a/#"));
    ok(
        &mut ds,
        json!({"command": "modifyRole", "rolename": "r", "allowwildcardsubs": true}),
    );
    assert_eq!(ds.check(Some("u"), "c", Sub, "a/#"), Allow);
    assert!(ds.subscription_still_allowed(Some("u"), "c", "a/#"));
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "modifyRole", "rolename": "r", "allowwildcardsubs": "no"})
        ),
        "Invalid allowwildcardsubs"
    );
}

#[test]
fn control_topics_need_an_explicit_grant() {
    let mut ds = empty();
    role(
        &mut ds,
        "all",
        json!([{"acltype": "publishClientSend", "topic": "#", "allow": true}]),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u", "roles": [{"rolename": "all"}]}),
    );
    ok(
        &mut ds,
        json!({"command": "setDefaultACLAccess", "acls": [{"acltype": "publishClientSend", "allow": true}]}),
    );
    assert_eq!(
        ds.check(Some("u"), "c", Send, "$CONTROL/dynamic-security/v1"),
        Deny
    );
    ok(
        &mut ds,
        json!({"command": "addRoleACL", "rolename": "all", "acltype": "publishClientSend",
        "topic": "$CONTROL/dynamic-security/#", "allow": true}),
    );
    assert_eq!(
        ds.check(Some("u"), "c", Send, "$CONTROL/dynamic-security/v1"),
        Allow
    );
}

#[test]
fn subscription_recheck_treats_unknown_users_with_the_default() {
    let mut ds = empty();
    assert!(!ds.subscription_still_allowed(Some("ghost"), "c", "a"));
    ok(
        &mut ds,
        json!({"command": "setDefaultACLAccess", "acls": [{"acltype": "subscribe", "allow": true}]}),
    );
    assert!(ds.subscription_still_allowed(Some("ghost"), "c", "a"));
    assert!(!ds.subscription_still_allowed(Some("ghost"), "c", "$CONTROL/x"));
}

// ---- the envelope ----------------------------------------------------------------------------

#[test]
fn envelope_errors_are_mosquittos() {
    let mut ds = empty();
    // Responses recorded from Mosquitto 2.0.11.
    let unknown = |e: &str| json!({"responses": [{"command": "Unknown command", "error": e}]});
    assert_eq!(raw(&mut ds, "nope"), unknown("Payload not valid JSON"));
    assert_eq!(raw(&mut ds, "{}"), unknown("Invalid/missing commands"));
    assert_eq!(
        raw(&mut ds, r#"{"commands":{}}"#),
        unknown("Invalid/missing commands")
    );
    assert_eq!(
        raw(&mut ds, r#"{"commands":[1]}"#),
        unknown("Command not an object")
    );
    assert_eq!(
        raw(&mut ds, r#"{"commands":[{}]}"#),
        unknown("Missing command")
    );
    assert_eq!(
        raw(
            &mut ds,
            r#"{"commands":[{"command":"foo","correlationData":"x"},{"command":"getanonymousgroup"}]}"#
        ),
        json!({"responses": [
            {"command": "foo", "error": "Unknown command", "correlationData": "x"},
            {"command": "getAnonymousGroup", "data": {"group": {"groupname": ""}}}]})
    );
    // A bad correlationData ends the batch.
    assert_eq!(
        raw(
            &mut ds,
            r#"{"commands":[{"command":"getDefaultACLAccess","correlationData":5},{"command":"listClients"}]}"#
        ),
        json!({"responses": [{"command": "getDefaultACLAccess", "error": "Invalid correlationData data type."}]})
    );
    assert_eq!(
        raw(
            &mut ds,
            r#"{"commands":[{"command":"createClient","username":"u1","correlationData":"c1"},{"command":"createClient","username":"u1"}]}"#
        ),
        json!({"responses": [
            {"command": "createClient", "correlationData": "c1"},
            {"command": "createClient", "error": "Client already exists"}]})
    );
}

#[test]
fn change_index_counts_changing_batches() {
    let mut ds = empty();
    let details = |ds: &mut DynSec| ok(ds, json!({"command": "getDetails"}))["data"].clone();
    assert_eq!(
        details(&mut ds),
        json!({"clientCount": 0, "groupCount": 0, "roleCount": 0, "changeIndex": 0})
    );
    let (_, outcome) = run(
        &mut ds,
        json!([
        {"command": "createClient", "username": "a"},
        {"command": "createGroup", "groupname": "g"},
        {"command": "createRole", "rolename": "r"}]),
    );
    assert!(outcome.changed);
    assert_eq!(
        details(&mut ds),
        json!({"clientCount": 1, "groupCount": 1, "roleCount": 1, "changeIndex": 1})
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "listClients"}, {"command": "getClient", "username": "zz"}]),
    );
    assert!(!outcome.changed);
    assert_eq!(details(&mut ds)["changeIndex"], 1);
}

#[test]
fn log_lines_mask_passwords() {
    let mut ds = empty();
    let (_, outcome) = run(
        &mut ds,
        json!([
        {"command": "createClient", "username": "u1", "password": "secret"},
        {"command": "createRole", "rolename": "r1"},
        {"command": "addClientRole", "username": "u1", "rolename": "r1"},
        {"command": "listClients", "verbose": true},
        {"command": "deleteRole", "rolename": "nope"}]),
    );
    assert_eq!(
        outcome.log,
        [
            "dynsec: ctl/admin | createClient | username=u1 | password=*****",
            "dynsec: ctl/admin | createRole | rolename=r1",
            "dynsec: ctl/admin | addClientRole | username=u1 | rolename=r1 | priority=-1",
            "dynsec: ctl/admin | listClients | verbose=true | count=-1 | offset=0",
        ]
    );
    assert!(!String::from_utf8(outcome.response)
        .unwrap()
        .contains("secret"));
}

// ---- commands ----------------------------------------------------------------------------------

#[test]
fn client_commands_and_errors() {
    let mut ds = empty();
    role(&mut ds, "r1", json!([]));
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "g1"}),
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createClient"})),
        "Invalid/missing username"
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createClient", "username": 1})),
        "Invalid/missing username"
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createClient", "username": ""})),
        "Empty username"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "a\u{7}"})
        ),
        "Username not valid UTF-8"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "password": 5})
        ),
        "Invalid/missing password"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "clientid": 5})
        ),
        "Invalid/missing client id"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "clientid": "\u{0}"})
        ),
        "Client ID not valid UTF-8"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "textname": 5})
        ),
        "Invalid/missing textname"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "textdescription": []})
        ),
        "Invalid/missing textdescription"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "roles": 5})
        ),
        "'roles' not an array or missing/invalid rolename"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "roles": [{"x": 1}]})
        ),
        "'roles' not an array or missing/invalid rolename"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "roles": [{"rolename": "zz"}]})
        ),
        "Role not found"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "groups": [{"groupname": 3}]})
        ),
        "'groups' contains an object with an invalid 'groupname'"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createClient", "username": "u", "groups": [{"groupname": "zz"}]})
        ),
        "'groups' contains an object with a 'groupname' that does not exist"
    );
    // Nothing was created by the failures.
    assert!(!ds.has_client("u"));
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u", "password": "p", "clientid": "",
        "textname": "T", "roles": [{"rolename": "r1", "priority": 3}], "groups": [{"groupname": "g1"}]}),
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createClient", "username": "u"})),
        "Client already exists"
    );
    let c = ok(&mut ds, json!({"command": "getClient", "username": "u"}));
    assert_eq!(
        c["data"],
        json!({"client": {"username": "u", "textname": "T",
        "roles": [{"rolename": "r1", "priority": 3}], "groups": [{"groupname": "g1"}]}})
    );
    assert_eq!(
        err(&mut ds, json!({"command": "getClient", "username": "zz"})),
        "Client not found"
    );
    assert_eq!(
        err(&mut ds, json!({"command": "getClient"})),
        "Invalid/missing username"
    );

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setClientPassword", "username": "u"})
        ),
        "Invalid/missing password"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setClientPassword", "username": "u", "password": ""})
        ),
        "Empty password is not allowed"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setClientPassword", "username": "zz", "password": "x"})
        ),
        "Client not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "setClientPassword", "username": "u", "password": "new"}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    assert_eq!(ds.authenticate(Some("u"), Some(b"new"), "c"), Allow);

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setClientId", "username": "u", "clientid": 4})
        ),
        "Invalid/missing client ID"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setClientId", "username": "zz", "clientid": "x"})
        ),
        "Client not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "setClientId", "username": "u", "clientid": "dev"}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    assert_eq!(ds.authenticate(Some("u"), Some(b"new"), "other"), Deny);
    ok(&mut ds, json!({"command": "setClientId", "username": "u"}));
    assert_eq!(ds.authenticate(Some("u"), Some(b"new"), "other"), Allow);

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addClientRole", "username": "u"})
        ),
        "Invalid/missing rolename"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addClientRole", "username": "zz", "rolename": "r1"})
        ),
        "Client not found"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addClientRole", "username": "u", "rolename": "zz"})
        ),
        "Role not found"
    );
    // Mosquitto 2.0.11 answers a duplicate role with "Internal error".
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addClientRole", "username": "u", "rolename": "r1"})
        ),
        "Internal error"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "removeClientRole", "username": "u", "rolename": "zz"})
        ),
        "Role not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "removeClientRole", "username": "u", "rolename": "r1"}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    ok(
        &mut ds,
        json!({"command": "removeClientRole", "username": "u", "rolename": "r1"}),
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "addClientRole", "username": "u", "rolename": "r1", "priority": 7}]),
    );
    assert_eq!(outcome.kick, ["u"]);

    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "disableClient", "username": "u"}, {"command": "enableClient", "username": "u"}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "disableClient", "username": "zz"})
        ),
        "Client not found"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "enableClient", "username": "zz"})
        ),
        "Client not found"
    );

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "modifyClient", "username": "zz"})
        ),
        "Client not found"
    );
    // Mosquitto 2.0.11: an empty password in modifyClient changes nothing.
    ok(
        &mut ds,
        json!({"command": "modifyClient", "username": "u", "password": ""}),
    );
    assert_eq!(ds.authenticate(Some("u"), Some(b"new"), "c"), Allow);
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "modifyClient", "username": "u", "roles": [{"rolename": "zz"}]})
        ),
        "Role not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "modifyClient", "username": "u", "textname": "", "textdescription": "D",
        "clientid": "cc", "password": "pw2", "roles": [], "groups": []}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    let c = ok(&mut ds, json!({"command": "getClient", "username": "u"}));
    assert_eq!(
        c["data"],
        json!({"client": {"username": "u", "clientid": "cc", "textdescription": "D", "roles": [], "groups": []}})
    );
    assert_eq!(ds.authenticate(Some("u"), Some(b"pw2"), "cc"), Allow);

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "deleteClient", "username": "zz"})
        ),
        "Client not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "deleteClient", "username": "u"}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    assert!(!ds.has_client("u"));
}

#[test]
fn list_pagination() {
    let mut ds = empty();
    for name in ["c", "a", "d", "b"] {
        ok(
            &mut ds,
            json!({"command": "createClient", "username": name}),
        );
    }
    let list = |ds: &mut DynSec, extra: Value| {
        let mut command = json!({"command": "listClients"});
        for (k, v) in extra.as_object().unwrap() {
            command[k] = v.clone();
        }
        ok(ds, command)["data"].clone()
    };
    assert_eq!(
        list(&mut ds, json!({})),
        json!({"totalCount": 4, "clients": ["a", "b", "c", "d"]})
    );
    assert_eq!(
        list(&mut ds, json!({"count": 2})),
        json!({"totalCount": 4, "clients": ["a", "b"]})
    );
    assert_eq!(
        list(&mut ds, json!({"count": 2, "offset": 3})),
        json!({"totalCount": 4, "clients": ["d"]})
    );
    assert_eq!(
        list(&mut ds, json!({"offset": 9})),
        json!({"totalCount": 4, "clients": []})
    );
    // Mosquitto 2.0.11: a count of 0 still returns one entry.
    assert_eq!(
        list(&mut ds, json!({"count": 0, "offset": 1})),
        json!({"totalCount": 4, "clients": ["b"]})
    );
    assert_eq!(
        list(&mut ds, json!({"verbose": true, "count": 1})),
        json!({"totalCount": 4, "clients": [{"username": "a", "roles": [], "groups": []}]})
    );
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "g2"}),
    );
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "g1"}),
    );
    let groups = ok(
        &mut ds,
        json!({"command": "listGroups", "count": 1, "offset": 1}),
    );
    assert_eq!(groups["data"], json!({"totalCount": 2, "groups": ["g2"]}));
    role(&mut ds, "r", json!([]));
    let roles = ok(&mut ds, json!({"command": "listRoles", "verbose": true}));
    assert_eq!(
        roles["data"],
        json!({"totalCount": 1, "roles": [{"rolename": "r", "allowwildcardsubs": true, "acls": []}]})
    );
}

#[test]
fn group_commands_and_errors() {
    let mut ds = empty();
    role(&mut ds, "r1", json!([]));
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u1"}),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "u2"}),
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createGroup"})),
        "Invalid/missing groupname"
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createGroup", "groupname": ""})),
        "Empty groupname"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createGroup", "groupname": "\u{1f}"})
        ),
        "Group name not valid UTF-8"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createGroup", "groupname": "g", "roles": [{"rolename": "zz"}]})
        ),
        "Role not found"
    );
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "g", "textname": "G", "roles": [{"rolename": "r1", "priority": 3}]}),
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createGroup", "groupname": "g"})),
        "Group already exists"
    );

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupClient", "groupname": "g"})
        ),
        "Invalid/missing username"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupClient", "groupname": "zz", "username": "u1"})
        ),
        "Group not found"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupClient", "groupname": "g", "username": "zz"})
        ),
        "Client not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "addGroupClient", "groupname": "g", "username": "u1", "priority": 2}]),
    );
    assert_eq!(outcome.kick, ["u1"]);
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupClient", "groupname": "g", "username": "u1"})
        ),
        "Client is already in this group"
    );
    let g = ok(&mut ds, json!({"command": "getGroup", "groupname": "g"}));
    assert_eq!(
        g["data"],
        json!({"group": {"groupname": "g", "textname": "G",
        "clients": [{"username": "u1", "priority": 2}], "roles": [{"rolename": "r1", "priority": 3}]}})
    );
    assert_eq!(
        err(&mut ds, json!({"command": "getGroup", "groupname": "zz"})),
        "Group not found"
    );

    // Group role changes kick nobody.
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupRole", "groupname": "g", "rolename": "r1"})
        ),
        "Group is already in this role"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupRole", "groupname": "g", "rolename": "zz"})
        ),
        "Role not found"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addGroupRole", "groupname": "zz", "rolename": "r1"})
        ),
        "Group not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "removeGroupRole", "groupname": "g", "rolename": "r1"},
        {"command": "addGroupRole", "groupname": "g", "rolename": "r1"}]),
    );
    // The group's rights changed: its members are kicked (Mosquitto's group__kick_all).
    assert_eq!(outcome.kick, ["u1"]);
    assert!(outcome.changed);
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "removeGroupRole", "groupname": "g", "rolename": "zz"})
        ),
        "Role not found"
    );

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "modifyGroup", "groupname": "zz"})
        ),
        "Group not found"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "modifyGroup", "groupname": "g", "clients": [{"username": 1}]})
        ),
        "'clients' contains an object with an invalid 'username'"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "modifyGroup", "groupname": "g", "clients": [{"username": "zz"}]})
        ),
        "'clients' contains an object with a 'username' that does not exist"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "modifyGroup", "groupname": "g", "textdescription": "D", "clients": [{"username": "u2"}]}]),
    );
    assert_eq!(outcome.kick, ["u1", "u2"]);
    assert_eq!(
        ds.model.group_clients("g"),
        [model::Member {
            name: "u2".into(),
            priority: -1
        }]
    );

    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "removeGroupClient", "groupname": "g", "username": "u1"}]),
    );
    assert_eq!(outcome.kick, ["u1"]);
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "removeGroupClient", "groupname": "zz", "username": "u1"})
        ),
        "Group not found"
    );

    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setAnonymousGroup", "groupname": "zz"})
        ),
        "Group not found"
    );
    assert_eq!(
        err(&mut ds, json!({"command": "setAnonymousGroup"})),
        "Invalid/missing groupname"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "deleteGroup", "groupname": "zz"})
        ),
        "Group not found"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([{"command": "deleteGroup", "groupname": "g"}]),
    );
    assert_eq!(outcome.kick, ["u2"]);
    assert!(ds.model.clients["u2"].groups.is_empty());
}

#[test]
fn role_commands_and_errors() {
    let mut ds = empty();
    assert_eq!(
        err(&mut ds, json!({"command": "createRole"})),
        "Invalid/missing rolename"
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createRole", "rolename": ""})),
        "Empty rolename"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "createRole", "rolename": "\u{85}"})
        ),
        "Role name not valid UTF-8"
    );
    ok(
        &mut ds,
        json!({"command": "createRole", "rolename": "r", "textname": "R",
        "acls": [{"acltype": "bogus", "topic": "x"}, {"acltype": "publishClientSend", "topic": "a/#", "priority": 2, "allow": true},
                 {"acltype": "publishClientSend"}, {"acltype": "publishClientSend", "topic": "a/#"}]}),
    );
    assert_eq!(
        err(&mut ds, json!({"command": "createRole", "rolename": "r"})),
        "Role already exists"
    );
    let r = ok(&mut ds, json!({"command": "getRole", "rolename": "r"}));
    assert_eq!(
        r["data"],
        json!({"role": {"rolename": "r", "textname": "R", "allowwildcardsubs": true,
        "acls": [{"acltype": "publishClientSend", "topic": "a/#", "priority": 2, "allow": true}]}})
    );
    assert_eq!(
        err(&mut ds, json!({"command": "getRole", "rolename": "zz"})),
        "Role not found"
    );

    let add = |extra: Value| {
        let mut c = json!({"command": "addRoleACL", "rolename": "r"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "addRoleACL", "rolename": "zz", "acltype": "subscribePattern", "topic": "x"})
        ),
        "Role not found"
    );
    assert_eq!(
        err(&mut ds, add(json!({"topic": "x"}))),
        "Invalid/missing acltype"
    );
    assert_eq!(
        err(&mut ds, add(json!({"acltype": "nope", "topic": "x"}))),
        "Unknown acltype"
    );
    assert_eq!(
        err(&mut ds, add(json!({"acltype": "subscribePattern"}))),
        "Invalid/missing topic"
    );
    assert_eq!(
        err(
            &mut ds,
            add(json!({"acltype": "subscribePattern", "topic": "a\u{1}"}))
        ),
        "Topic not valid UTF-8"
    );
    assert_eq!(
        err(
            &mut ds,
            add(json!({"acltype": "subscribePattern", "topic": "a/#/b"}))
        ),
        "Invalid ACL topic"
    );
    assert_eq!(
        err(
            &mut ds,
            add(json!({"acltype": "subscribePattern", "topic": "a+"}))
        ),
        "Invalid ACL topic"
    );
    let (_, outcome) = run(
        &mut ds,
        json!([add(
            json!({"acltype": "SUBSCRIBEPATTERN", "topic": "s/#", "allow": true})
        )]),
    );
    assert!(outcome.kick.is_empty(), "nobody holds the role yet");
    assert!(outcome.changed);
    assert_eq!(
        err(
            &mut ds,
            add(json!({"acltype": "subscribePattern", "topic": "s/#"}))
        ),
        "ACL with this topic already exists"
    );
    let r = ok(&mut ds, json!({"command": "getRole", "rolename": "r"}));
    assert_eq!(
        r["data"]["role"]["acls"][1],
        json!({"acltype": "subscribePattern", "topic": "s/#", "priority": 0, "allow": true})
    );

    let remove = json!({"command": "removeRoleACL", "rolename": "r", "acltype": "subscribePattern", "topic": "s/#"});
    ok(&mut ds, remove.clone());
    assert_eq!(err(&mut ds, remove), "ACL not found");
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "removeRoleACL", "rolename": "r", "acltype": "x", "topic": "s"})
        ),
        "Unknown acltype"
    );

    assert_eq!(
        err(&mut ds, json!({"command": "modifyRole", "rolename": "zz"})),
        "Role not found"
    );
    ok(
        &mut ds,
        json!({"command": "modifyRole", "rolename": "r", "textdescription": "D", "acls": []}),
    );
    let r = ok(&mut ds, json!({"command": "getRole", "rolename": "r"}));
    assert_eq!(
        r["data"],
        json!({"role": {"rolename": "r", "textname": "R", "textdescription": "D", "allowwildcardsubs": true, "acls": []}})
    );

    // Deleting a role kicks the clients that held it directly, not group members.
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "direct", "roles": [{"rolename": "r"}]}),
    );
    ok(
        &mut ds,
        json!({"command": "createClient", "username": "member", "groups": []}),
    );
    ok(
        &mut ds,
        json!({"command": "createGroup", "groupname": "g", "roles": [{"rolename": "r"}]}),
    );
    ok(
        &mut ds,
        json!({"command": "addGroupClient", "groupname": "g", "username": "member"}),
    );
    assert_eq!(
        err(&mut ds, json!({"command": "deleteRole", "rolename": "zz"})),
        "Role not found"
    );
    let (_, outcome) = run(&mut ds, json!([{"command": "deleteRole", "rolename": "r"}]));
    // Holders directly and through a group (Mosquitto's role__kick_all).
    assert_eq!(outcome.kick, ["direct", "member"]);
    assert!(ds.model.groups["g"].roles.is_empty());
    assert!(ds.model.clients["direct"].roles.is_empty());
}

#[test]
fn set_default_acl_access_needs_an_array() {
    let mut ds = empty();
    assert_eq!(
        err(&mut ds, json!({"command": "setDefaultACLAccess"})),
        "Missing/invalid actions array"
    );
    assert_eq!(
        err(
            &mut ds,
            json!({"command": "setDefaultACLAccess", "acls": {}})
        ),
        "Missing/invalid actions array"
    );
}

#[test]
fn priorities_are_clamped() {
    let mut ds = empty();
    role(
        &mut ds,
        "r",
        json!([{"acltype": "publishClientSend", "topic": "a", "priority": 5_000_000, "allow": true}]),
    );
    let r = ok(&mut ds, json!({"command": "getRole", "rolename": "r"}));
    assert_eq!(r["data"]["role"]["acls"][0]["priority"], 100_000);
}

#[test]
fn keys_and_command_names_ignore_case_like_cjson() {
    let mut ds = empty();
    let response = raw(
        &mut ds,
        r#"{"Commands":[{"COMMAND":"CREATECLIENT","UserName":"u","Password":"p","CorrelationData":"k"}]}"#,
    );
    assert_eq!(
        response,
        json!({"responses": [{"command": "createClient", "correlationData": "k"}]})
    );
    assert_eq!(ds.authenticate(Some("u"), Some(b"p"), "c"), Allow);
}

#[test]
fn kicks_are_listed_once_per_batch() {
    let mut ds = empty();
    role(&mut ds, "r", json!([]));
    ok(&mut ds, json!({"command": "createClient", "username": "u"}));
    let (_, outcome) = run(
        &mut ds,
        json!([
        {"command": "addClientRole", "username": "u", "rolename": "r"},
        {"command": "setClientPassword", "username": "u", "password": "x"},
        {"command": "modifyRole", "rolename": "r", "acls": []},
        {"command": "disableClient", "username": "u"}]),
    );
    assert_eq!(outcome.kick, ["u"]);
    assert!(outcome.changed);
}

/// `check` runs per delivered message: it must not allocate. Counted per thread, like
/// `tests/no_alloc.rs`, so tests running in parallel do not interfere.
mod no_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::*;

    struct Counting;

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards every call to the system allocator unchanged; the thread-locals are
    // const-initialised `Cell`s, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if COUNTING.with(Cell::get) {
                ALLOCATIONS.with(|a| a.set(a.get() + 1));
            }
            System.alloc(layout)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    #[test]
    fn check_does_not_allocate() {
        let mut ds = empty();
        role(
            &mut ds,
            "r",
            json!([
            {"acltype": "publishClientReceive", "topic": "usr/%u/#", "allow": true},
            {"acltype": "publishClientReceive", "topic": "dev/%c/+", "allow": true},
            {"acltype": "publishClientReceive", "topic": "deny/#", "priority": 5, "allow": false},
            {"acltype": "publishClientSend", "topic": "a/#", "allow": true},
            {"acltype": "subscribeLiteral", "topic": "lit", "allow": true},
            {"acltype": "subscribePattern", "topic": "s/+/#", "allow": true}]),
        );
        ok(
            &mut ds,
            json!({"command": "createGroup", "groupname": "g", "roles": [{"rolename": "r"}]}),
        );
        ok(
            &mut ds,
            json!({"command": "createClient", "username": "alice", "groups": [{"groupname": "g"}]}),
        );
        ok(
            &mut ds,
            json!({"command": "setAnonymousGroup", "groupname": "g"}),
        );
        ALLOCATIONS.with(|a| a.set(0));
        COUNTING.with(|c| c.set(true));
        let answers = [
            ds.check(Some("alice"), "d1", Recv, "usr/alice/x"),
            ds.check(Some("alice"), "d1", Recv, "dev/d1/t"),
            ds.check(Some("alice"), "d1", Recv, "deny/x"),
            ds.check(Some("alice"), "d1", Recv, "plain/topic/with/levels"),
            ds.check(Some("alice"), "d1", Send, "a/b"),
            ds.check(Some("alice"), "d1", Sub, "lit"),
            ds.check(Some("alice"), "d1", Sub, "s/x/#"),
            ds.check(Some("nobody"), "d1", Recv, "x"),
            ds.check(None, "d1", Recv, "$CONTROL/x"),
        ];
        COUNTING.with(|c| c.set(false));
        assert_eq!(ALLOCATIONS.with(Cell::get), 0);
        assert_eq!(
            answers,
            [Allow, Allow, Deny, Allow, Allow, Allow, Allow, Defer, Deny]
        );
    }
}
