//! `dynsec <command> [args]` → the request `mosquitto_ctrl` publishes to
//! `$CONTROL/dynamic-security/v1`: the same argument rules, the same JSON.

use serde_json::{json, Map, Value};

use super::options::atoi;
use crate::prompt::PromptError;

/// Where requests go and answers come from.
pub const REQUEST_TOPIC: &str = "$CONTROL/dynamic-security/v1";
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";

/// Why no request was built.
#[derive(Debug, PartialEq)]
pub enum BuildError {
    /// Wrong arguments: `Error: Invalid function arguments provided.` (exit 3). Any more
    /// specific message has been printed already.
    Invalid,
    /// `Command '<x>' not recognised.` (exit 13).
    Unknown(String),
    /// A password prompt failed; its message has been printed.
    Password,
}

/// Asks for a password: `(prompt, verify prompt, quiet)`.
pub type Prompter<'a> = dyn FnMut(&str, Option<&str>, bool) -> Result<String, PromptError> + 'a;

const DEFAULT_ACL_TYPES: [&str; 4] = [
    "publishClientSend",
    "publishClientReceive",
    "subscribe",
    "unsubscribe",
];

const ROLE_ACL_TYPES: [&str; 6] = [
    "publishClientSend",
    "publishClientReceive",
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
];

fn is_one_of(s: &str, list: &[&str]) -> bool {
    list.iter().any(|t| t.eq_ignore_ascii_case(s))
}

/// The whole request document for `command args…`.
pub fn build_request(
    command: &str,
    args: &[String],
    prompt: &mut Prompter<'_>,
) -> Result<Value, BuildError> {
    let cmd = build_command(command, args, prompt)?;
    Ok(json!({ "commands": [cmd] }))
}

/// The canonical name of a dynsec command given in any case.
fn canonical(command: &str) -> Option<&'static str> {
    const COMMANDS: [&str; 27] = [
        "setDefaultACLAccess",
        "getDefaultACLAccess",
        "createClient",
        "deleteClient",
        "getClient",
        "listClients",
        "setClientId",
        "setClientPassword",
        "addClientRole",
        "removeClientRole",
        "enableClient",
        "disableClient",
        "createGroup",
        "deleteGroup",
        "getGroup",
        "listGroups",
        "addGroupRole",
        "removeGroupRole",
        "addGroupClient",
        "removeGroupClient",
        "setAnonymousGroup",
        "getAnonymousGroup",
        "createRole",
        "deleteRole",
        "getRole",
        "listRoles",
        "addRoleACL",
    ];
    if command.eq_ignore_ascii_case("removeRoleACL") {
        return Some("removeRoleACL");
    }
    COMMANDS
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(command))
}

/// One command object.
pub fn build_command(
    command: &str,
    args: &[String],
    prompt: &mut Prompter<'_>,
) -> Result<Value, BuildError> {
    let Some(name) = canonical(command) else {
        return Err(BuildError::Unknown(command.to_string()));
    };
    // Members in mosquitto_ctrl's order: `command` first, then as each command adds them.
    let mut cmd = Map::new();
    cmd.insert("command".into(), name.into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match name {
        "setDefaultACLAccess" => {
            let [acltype, access] = a[..] else {
                return Err(BuildError::Invalid);
            };
            if !is_one_of(acltype, &DEFAULT_ACL_TYPES) {
                return Err(BuildError::Invalid);
            }
            let allow = if access.eq_ignore_ascii_case("allow") {
                true
            } else if access.eq_ignore_ascii_case("deny") {
                false
            } else {
                eprintln!("Error: access must be \"allow\" or \"deny\".");
                return Err(BuildError::Invalid);
            };
            // mosquitto_ctrl 2.0.11 sends `"access":"allow"`, which the plugin ignores (it
            // reads the boolean `allow`), so its setDefaultACLAccess changes nothing. The form
            // the plugin reads is sent here (as 2.0.12 and later do).
            put(
                &mut cmd,
                "acls",
                json!([{ "acltype": acltype, "allow": allow }]),
            );
        }
        "getDefaultACLAccess" | "getAnonymousGroup" => {}
        "createClient" => {
            let Some((username, rest)) = a.split_first() else {
                return Err(BuildError::Invalid);
            };
            let (mut clientid, mut password) = (None, None);
            let mut i = 0;
            while i < rest.len() {
                match rest[i] {
                    // -c in 2.0, -i in 2.1: both accepted.
                    flag @ ("-c" | "-i") => {
                        let Some(v) = rest.get(i + 1) else {
                            eprintln!("Error: {flag} argument given, but no clientid provided.");
                            return Err(BuildError::Invalid);
                        };
                        clientid = Some(*v);
                        i += 1;
                    }
                    "-p" => {
                        let Some(v) = rest.get(i + 1) else {
                            eprintln!("Error: -p argument given, but no password provided.");
                            return Err(BuildError::Invalid);
                        };
                        password = Some(v.to_string());
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            if password.is_none() {
                println!("Enter new password for {username}. Press return for no password (user will be unable to login).");
                match prompt(
                    &format!("New password for {username}: "),
                    Some(&format!("Reenter password for {username}: ")),
                    true,
                ) {
                    Ok(p) => password = Some(p),
                    Err(PromptError::Mismatch) => {
                        eprintln!("Error: Passwords do not match.");
                        return Err(BuildError::Password);
                    }
                    Err(_) => println!(),
                }
            }
            put(&mut cmd, "username", (*username).into());
            if let Some(c) = clientid {
                put(&mut cmd, "clientid", c.into());
            }
            if let Some(p) = password {
                put(&mut cmd, "password", p.into());
            }
        }
        "deleteClient" | "enableClient" | "disableClient" | "getClient" => {
            let [username] = a[..] else {
                return Err(BuildError::Invalid);
            };
            put(&mut cmd, "username", username.into());
        }
        "setClientId" => {
            let (username, clientid) = match a[..] {
                [username] => (username, None),
                [username, clientid] => (username, Some(clientid)),
                _ => return Err(BuildError::Invalid),
            };
            put(&mut cmd, "username", username.into());
            if let Some(c) = clientid {
                put(&mut cmd, "clientid", c.into());
            }
        }
        "setClientPassword" => {
            let (username, password) = match a[..] {
                [username, password] => (username, password.to_string()),
                [username] => {
                    match prompt(
                        &format!("New password for {username}: "),
                        Some(&format!("Reenter password for {username}: ")),
                        false,
                    ) {
                        Ok(p) => (username, p),
                        Err(_) => return Err(BuildError::Password),
                    }
                }
                _ => return Err(BuildError::Invalid),
            };
            put(&mut cmd, "username", username.into());
            put(&mut cmd, "password", password.into());
        }
        "addClientRole" | "removeClientRole" => {
            with_priority(&mut cmd, &a, "username", "rolename")?;
        }
        "addGroupRole" | "removeGroupRole" => {
            with_priority(&mut cmd, &a, "groupname", "rolename")?;
        }
        "addGroupClient" | "removeGroupClient" => {
            // Arguments are <group> <user>; mosquitto_ctrl puts username first in the JSON.
            let [group, user, ref priority @ ..] = a[..] else {
                return Err(BuildError::Invalid);
            };
            let mut swapped = vec![user, group];
            swapped.extend_from_slice(priority);
            with_priority(&mut cmd, &swapped, "username", "groupname")?;
        }
        "createGroup" | "deleteGroup" | "getGroup" | "setAnonymousGroup" => {
            let [group] = a[..] else {
                return Err(BuildError::Invalid);
            };
            put(&mut cmd, "groupname", group.into());
        }
        "createRole" | "deleteRole" | "getRole" => {
            let [role] = a[..] else {
                return Err(BuildError::Invalid);
            };
            put(&mut cmd, "rolename", role.into());
        }
        "listClients" | "listGroups" | "listRoles" => {
            let (count, offset) = match a[..] {
                [] => (-1, -1),
                [c] => (atoi(c), -1),
                [c, o] => (atoi(c), atoi(o)),
                _ => return Err(BuildError::Invalid),
            };
            if count > 0 {
                put(&mut cmd, "count", count.into());
            }
            if offset > 0 {
                put(&mut cmd, "offset", offset.into());
            }
        }
        "addRoleACL" => {
            let (role, acltype, topic, action, priority) = match a[..] {
                [r, t, f, act] => (r, t, f, act, -1),
                [r, t, f, act, p] => (r, t, f, act, atoi(p)),
                _ => return Err(BuildError::Invalid),
            };
            if !is_one_of(acltype, &ROLE_ACL_TYPES) {
                return Err(BuildError::Invalid);
            }
            let allow = if action.eq_ignore_ascii_case("allow") {
                true
            } else if action.eq_ignore_ascii_case("deny") {
                false
            } else {
                return Err(BuildError::Invalid);
            };
            put(&mut cmd, "rolename", role.into());
            put(&mut cmd, "acltype", acltype.into());
            put(&mut cmd, "topic", topic.into());
            put(&mut cmd, "allow", allow.into());
            if priority != -1 {
                put(&mut cmd, "priority", priority.into());
            }
        }
        "removeRoleACL" => {
            let [role, acltype, topic] = a[..] else {
                return Err(BuildError::Invalid);
            };
            if !is_one_of(acltype, &ROLE_ACL_TYPES) {
                return Err(BuildError::Invalid);
            }
            put(&mut cmd, "rolename", role.into());
            put(&mut cmd, "acltype", acltype.into());
            put(&mut cmd, "topic", topic.into());
        }
        _ => return Err(BuildError::Unknown(command.to_string())),
    }
    Ok(Value::Object(cmd))
}

fn put(cmd: &mut Map<String, Value>, key: &str, value: Value) {
    cmd.insert(key.to_string(), value);
}

/// `<first> <second> [priority]`: the priority is sent unless it is -1 (mosquitto_ctrl's
/// "not given"), and accepted (then sent) on the remove commands as mosquitto_ctrl does.
fn with_priority(
    cmd: &mut Map<String, Value>,
    a: &[&str],
    first: &str,
    second: &str,
) -> Result<(), BuildError> {
    let (x, y, priority) = match a[..] {
        [x, y] => (x, y, -1),
        [x, y, p] => (x, y, atoi(p)),
        _ => return Err(BuildError::Invalid),
    };
    put(cmd, first, x.into());
    put(cmd, second, y.into());
    if priority != -1 {
        put(cmd, "priority", priority.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::json::to_compact;
    use super::*;

    fn no_prompt(_: &str, _: Option<&str>, _: bool) -> Result<String, PromptError> {
        panic!("unexpected prompt")
    }

    fn req(line: &str) -> Result<String, BuildError> {
        let words: Vec<String> = line.split(' ').map(str::to_string).collect();
        build_request(&words[0], &words[1..], &mut no_prompt).map(|j| to_compact(&j))
    }

    fn cmd(json: &str) -> String {
        format!(r#"{{"commands":[{json}]}}"#)
    }

    #[test]
    fn requests_match_mosquitto_ctrl() {
        let cases = [
            (
                "getDefaultACLAccess",
                r#"{"command":"getDefaultACLAccess"}"#,
            ),
            (
                "setDefaultACLAccess subscribe allow",
                r#"{"command":"setDefaultACLAccess","acls":[{"acltype":"subscribe","allow":true}]}"#,
            ),
            (
                "createClient u -p pw -c cid",
                r#"{"command":"createClient","username":"u","clientid":"cid","password":"pw"}"#,
            ),
            (
                "createClient u -i cid -p pw",
                r#"{"command":"createClient","username":"u","clientid":"cid","password":"pw"}"#,
            ),
            (
                "deleteClient u",
                r#"{"command":"deleteClient","username":"u"}"#,
            ),
            ("getclient u", r#"{"command":"getClient","username":"u"}"#),
            ("listClients", r#"{"command":"listClients"}"#),
            ("listClients 5", r#"{"command":"listClients","count":5}"#),
            (
                "listRoles 5 2",
                r#"{"command":"listRoles","count":5,"offset":2}"#,
            ),
            ("listGroups 0 0", r#"{"command":"listGroups"}"#),
            (
                "setClientId u",
                r#"{"command":"setClientId","username":"u"}"#,
            ),
            (
                "setClientId u c",
                r#"{"command":"setClientId","username":"u","clientid":"c"}"#,
            ),
            (
                "setClientPassword u p",
                r#"{"command":"setClientPassword","username":"u","password":"p"}"#,
            ),
            (
                "addClientRole u r",
                r#"{"command":"addClientRole","username":"u","rolename":"r"}"#,
            ),
            (
                "addClientRole u r 4",
                r#"{"command":"addClientRole","username":"u","rolename":"r","priority":4}"#,
            ),
            (
                "removeClientRole u r",
                r#"{"command":"removeClientRole","username":"u","rolename":"r"}"#,
            ),
            (
                "enableClient u",
                r#"{"command":"enableClient","username":"u"}"#,
            ),
            (
                "disableClient u",
                r#"{"command":"disableClient","username":"u"}"#,
            ),
            (
                "createGroup g",
                r#"{"command":"createGroup","groupname":"g"}"#,
            ),
            (
                "deleteGroup g",
                r#"{"command":"deleteGroup","groupname":"g"}"#,
            ),
            ("getGroup g", r#"{"command":"getGroup","groupname":"g"}"#),
            (
                "addGroupRole g r 2",
                r#"{"command":"addGroupRole","groupname":"g","rolename":"r","priority":2}"#,
            ),
            (
                "removeGroupRole g r",
                r#"{"command":"removeGroupRole","groupname":"g","rolename":"r"}"#,
            ),
            (
                "addGroupClient g u 7",
                r#"{"command":"addGroupClient","username":"u","groupname":"g","priority":7}"#,
            ),
            (
                "removeGroupClient g u",
                r#"{"command":"removeGroupClient","username":"u","groupname":"g"}"#,
            ),
            (
                "setAnonymousGroup g",
                r#"{"command":"setAnonymousGroup","groupname":"g"}"#,
            ),
            ("getAnonymousGroup", r#"{"command":"getAnonymousGroup"}"#),
            ("createRole r", r#"{"command":"createRole","rolename":"r"}"#),
            ("deleteRole r", r#"{"command":"deleteRole","rolename":"r"}"#),
            ("getRole r", r#"{"command":"getRole","rolename":"r"}"#),
            (
                "addRoleACL r publishClientSend a/# allow 5",
                r#"{"command":"addRoleACL","rolename":"r","acltype":"publishClientSend","topic":"a/#","allow":true,"priority":5}"#,
            ),
            (
                "addRoleACL r subscribePattern a/# DENY",
                r#"{"command":"addRoleACL","rolename":"r","acltype":"subscribePattern","topic":"a/#","allow":false}"#,
            ),
            (
                "removeRoleACL r unsubscribeLiteral a/b",
                r#"{"command":"removeRoleACL","rolename":"r","acltype":"unsubscribeLiteral","topic":"a/b"}"#,
            ),
        ];
        for (line, json) in cases {
            assert_eq!(req(line), Ok(cmd(json)), "{line}");
        }
    }

    #[test]
    fn wrong_arguments_are_refused() {
        for line in [
            "getClient",
            "getClient a b",
            "createClient",
            "setDefaultACLAccess subscribe maybe",
            "setDefaultACLAccess publish allow",
            "addRoleACL r bad a allow",
            "addRoleACL r publishClientSend a maybe",
            "removeRoleACL r publishClientSend",
            "listClients 1 2 3",
            "addClientRole u",
            "createClient u -p",
            "createClient u -c",
        ] {
            assert_eq!(req(line), Err(BuildError::Invalid), "{line}");
        }
        assert_eq!(req("frob x"), Err(BuildError::Unknown("frob".into())));
    }

    #[test]
    fn prompts_for_missing_passwords() {
        let mut asked = Vec::new();
        let mut answer = |p: &str, v: Option<&str>, quiet: bool| {
            asked.push((p.to_string(), v.map(str::to_string), quiet));
            Ok("secret".to_string())
        };
        let j = build_command("setClientPassword", &["bob".into()], &mut answer).unwrap();
        assert_eq!(
            to_compact(&j),
            r#"{"command":"setClientPassword","username":"bob","password":"secret"}"#
        );
        assert_eq!(
            asked,
            [(
                "New password for bob: ".to_string(),
                Some("Reenter password for bob: ".to_string()),
                false
            )]
        );
        // createClient: an empty answer creates a client without password.
        let mut empty = |_: &str, _: Option<&str>, _: bool| Err(PromptError::Empty);
        let j = build_command("createClient", &["bob".into()], &mut empty).unwrap();
        assert_eq!(
            to_compact(&j),
            r#"{"command":"createClient","username":"bob"}"#
        );
        let mut mismatch = |_: &str, _: Option<&str>, _: bool| Err(PromptError::Mismatch);
        assert_eq!(
            build_command("createClient", &["bob".into()], &mut mismatch),
            Err(BuildError::Password)
        );
    }
}
