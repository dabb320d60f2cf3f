//! The broker's answer → the text `mosquitto_ctrl` prints: lists one name a line, getClient /
//! getGroup / getRole / getDefaultACLAccess / getAnonymousGroup as aligned fields, an error as
//! `<command>: Error: <error>` on stderr, nothing for a plain success.

use std::io::Write;

use serde_json::Value;

use super::json::{as_int, get, parse};

const INVALID: &str = "Error: Invalid response from server.";

/// Prints the response to the first command of the request. Write errors (a closed pipe) are
/// ignored, as printf's are.
pub fn print_response(payload: &[u8], out: &mut dyn Write, err: &mut dyn Write) {
    let _ = print_inner(payload, out, err);
}

fn print_inner(payload: &[u8], out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
    let Some(tree) = parse(payload) else {
        return writeln!(err, "Error: Payload not JSON.");
    };
    let response = get(&tree, "responses")
        .and_then(Value::as_array)
        .and_then(|r| r.first());
    let Some(response) = response else {
        return writeln!(err, "Error: Payload missing data.");
    };
    let Some(command) = get(response, "command") else {
        return writeln!(err, "Error: Payload missing data.");
    };
    let command = command.as_str().unwrap_or("(null)");
    if let Some(error) = get(response, "error") {
        return writeln!(
            err,
            "{command}: Error: {}",
            error.as_str().unwrap_or("(null)")
        );
    }
    let result = match command.to_ascii_lowercase().as_str() {
        "listclients" => print_list(response, "clients", "username", out),
        "listgroups" => print_list(response, "groups", "groupname", out),
        "listroles" => print_list(response, "roles", "rolename", out),
        "getclient" => print_client(response, out),
        "getgroup" => print_group(response, out),
        "getrole" => print_role(response, out),
        "getdefaultaclaccess" => print_default_acl_access(response, out),
        "getanonymousgroup" => print_anonymous_group(response, out),
        _ => Ok(Ok(())),
    }?;
    if result.is_err() {
        writeln!(err, "{INVALID}")?;
    }
    Ok(())
}

/// `Ok(Err(()))`: the response lacks what this command answers with.
type Printed = std::io::Result<Result<(), ()>>;

/// `data.<key>` as an object.
fn data_object<'a>(response: &'a Value, key: &str) -> Option<&'a Value> {
    let data = get(response, "data").filter(|d| d.is_object())?;
    get(data, key).filter(|o| o.is_object())
}

fn print_list(response: &Value, array: &str, key: &str, out: &mut dyn Write) -> Printed {
    let Some(data) = get(response, "data") else {
        return Ok(Err(()));
    };
    let Some(items) = get(data, array).and_then(Value::as_array) else {
        return Ok(Err(()));
    };
    for item in items {
        let name = if item.is_object() {
            get(item, key).and_then(Value::as_str)
        } else {
            item.as_str()
        };
        if let Some(name) = name {
            writeln!(out, "{name}")?;
        }
    }
    Ok(Ok(()))
}

/// ` (priority: n)`, -1 when absent.
fn priority(item: &Value) -> i64 {
    get(item, "priority").and_then(as_int).unwrap_or(-1)
}

/// The record a get command answers with, `data.<object>`, and its `<name>` member.
fn record<'a>(response: &'a Value, object: &str, name: &str) -> Option<(&'a Value, &'a str)> {
    let record = data_object(response, object)?;
    Some((record, get(record, name)?.as_str()?))
}

/// `lines` one a line, after `label` on the first and after blanks on the others, the label
/// column `width` wide.
fn column(
    out: &mut dyn Write,
    label: &str,
    width: usize,
    lines: impl Iterator<Item = String>,
) -> std::io::Result<()> {
    let mut label = label;
    for line in lines {
        writeln!(out, "{label:<width$} {line}")?;
        label = "";
    }
    Ok(())
}

/// `<name> (priority: n)` for each item of `items` that has a string `key`; a `label:` line
/// alone when `items` is not an array.
fn print_names(
    items: Option<&Value>,
    key: &str,
    label: &str,
    width: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let Some(items) = items.and_then(Value::as_array) else {
        return writeln!(out, "{label}");
    };
    let lines = items.iter().filter_map(|item| {
        let name = get(item, key)?.as_str()?;
        Some(format!("{name} (priority: {})", priority(item)))
    });
    column(out, label, width, lines)
}

fn print_client(response: &Value, out: &mut dyn Write) -> Printed {
    let Some((client, username)) = record(response, "client", "username") else {
        return Ok(Err(()));
    };
    writeln!(out, "Username: {username}")?;
    match get(client, "clientid").and_then(Value::as_str) {
        Some(id) => writeln!(out, "Clientid: {id}")?,
        None => writeln!(out, "Clientid:")?,
    }
    if let Some(disabled) = get(client, "disabled").and_then(Value::as_bool) {
        writeln!(out, "Disabled: {disabled}")?;
    }
    let width = "Username:".len();
    print_names(get(client, "roles"), "rolename", "Roles:", width, out)?;
    print_names(get(client, "groups"), "groupname", "Groups:", width, out)?;
    Ok(Ok(()))
}

fn print_group(response: &Value, out: &mut dyn Write) -> Printed {
    let Some((group, name)) = record(response, "group", "groupname") else {
        return Ok(Err(()));
    };
    writeln!(out, "Groupname: {name}")?;
    let width = "Groupname:".len();
    print_names(get(group, "roles"), "rolename", "Roles:", width, out)?;
    if let Some(clients) = get(group, "clients").and_then(Value::as_array) {
        let users = clients
            .iter()
            .filter_map(|c| get(c, "username")?.as_str().map(str::to_string));
        column(out, "Clients:", width, users)?;
    }
    Ok(Ok(()))
}

fn print_role(response: &Value, out: &mut dyn Write) -> Printed {
    let Some((role, name)) = record(response, "role", "rolename") else {
        return Ok(Err(()));
    };
    writeln!(out, "Rolename: {name}")?;
    if let Some(acls) = get(role, "acls").and_then(Value::as_array) {
        let lines = acls.iter().filter_map(|acl| {
            let acltype = get(acl, "acltype")?.as_str()?;
            let mut line = format!("{acltype:<20}");
            if let Some(allow) = get(acl, "allow").and_then(Value::as_bool) {
                line.push_str(if allow { " : allow" } else { " : deny " });
            }
            if let Some(topic) = get(acl, "topic").and_then(Value::as_str) {
                line.push_str(" : ");
                line.push_str(topic);
            }
            Some(format!("{line} (priority: {})", priority(acl)))
        });
        column(out, "ACLs:", "Rolename:".len(), lines)?;
    }
    Ok(Ok(()))
}

fn print_anonymous_group(response: &Value, out: &mut dyn Write) -> Printed {
    let Some((_, name)) = record(response, "group", "groupname") else {
        return Ok(Err(()));
    };
    writeln!(out, "{name}")?;
    Ok(Ok(()))
}

fn print_default_acl_access(response: &Value, out: &mut dyn Write) -> Printed {
    let Some(data) = get(response, "data").filter(|d| d.is_object()) else {
        return Ok(Err(()));
    };
    let Some(acls) = get(data, "acls").and_then(Value::as_array) else {
        return Ok(Err(()));
    };
    for acl in acls {
        let acltype = get(acl, "acltype").and_then(Value::as_str);
        let allow = get(acl, "allow").and_then(Value::as_bool);
        let (Some(acltype), Some(allow)) = (acltype, allow) else {
            return Ok(Err(()));
        };
        writeln!(
            out,
            "{acltype:<20} : {}",
            if allow { "allow" } else { "deny" }
        )?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(payload: &str) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_response(payload.as_bytes(), &mut out, &mut err);
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn get_client() {
        let (out, err) = show(
            r#"{"responses":[{"command":"getClient","data":{"client":{"username":"alice","clientid":"aliceid","disabled":true,"roles":[{"rolename":"r1","priority":3},{"rolename":"r2"}],"groups":[{"groupname":"g1","priority":7},{"groupname":"g2"}]}}}]}"#,
        );
        assert_eq!(
            out,
            "Username: alice\nClientid: aliceid\nDisabled: true\nRoles:    r1 (priority: 3)\n          r2 (priority: -1)\nGroups:   g1 (priority: 7)\n          g2 (priority: -1)\n"
        );
        assert_eq!(err, "");
        let (out, _) = show(
            r#"{"responses":[{"command":"getClient","data":{"client":{"username":"a","roles":[],"groups":[]}}}]}"#,
        );
        assert_eq!(out, "Username: a\nClientid:\n");
        let (out, _) =
            show(r#"{"responses":[{"command":"getClient","data":{"client":{"username":"a"}}}]}"#);
        assert_eq!(out, "Username: a\nClientid:\nRoles:\nGroups:\n");
    }

    #[test]
    fn get_group_and_role() {
        let (out, _) = show(
            r#"{"responses":[{"command":"getGroup","data":{"group":{"groupname":"g1","clients":[{"username":"alice"},{"username":"bob"}],"roles":[{"rolename":"r1"}]}}}]}"#,
        );
        assert_eq!(
            out,
            "Groupname: g1\nRoles:     r1 (priority: -1)\nClients:   alice\n           bob\n"
        );
        let (out, _) = show(
            r#"{"responses":[{"command":"getRole","data":{"role":{"rolename":"r1","acls":[{"acltype":"publishClientSend","topic":"a/#","priority":5,"allow":true},{"acltype":"subscribePattern","topic":"a/#","priority":0,"allow":false}]}}}]}"#,
        );
        assert_eq!(
            out,
            "Rolename: r1\nACLs:     publishClientSend    : allow : a/# (priority: 5)\n          subscribePattern     : deny  : a/# (priority: 0)\n"
        );
    }

    #[test]
    fn lists_defaults_and_anonymous_group() {
        let (out, _) = show(
            r#"{"responses":[{"command":"listClients","data":{"totalCount":2,"clients":["admin","alice"]}}]}"#,
        );
        assert_eq!(out, "admin\nalice\n");
        let (out, _) = show(
            r#"{"responses":[{"command":"listRoles","data":{"roles":[{"rolename":"r","acls":[]}]}}]}"#,
        );
        assert_eq!(out, "r\n");
        let (out, _) = show(
            r#"{"responses":[{"command":"getDefaultACLAccess","data":{"acls":[{"acltype":"publishClientSend","allow":false},{"acltype":"publishClientReceive","allow":true}]}}]}"#,
        );
        assert_eq!(
            out,
            "publishClientSend    : deny\npublishClientReceive : allow\n"
        );
        let (out, _) = show(
            r#"{"responses":[{"command":"getAnonymousGroup","data":{"group":{"groupname":""}}}]}"#,
        );
        assert_eq!(out, "\n");
    }

    #[test]
    fn errors() {
        assert_eq!(
            show(r#"{"responses":[{"command":"getClient","error":"Client not found"}]}"#),
            (String::new(), "getClient: Error: Client not found\n".into())
        );
        assert_eq!(show("nope").1, "Error: Payload not JSON.\n");
        assert_eq!(
            show(r#"{"responses":[]}"#).1,
            "Error: Payload missing data.\n"
        );
        assert_eq!(show(r#"{"x":1}"#).1, "Error: Payload missing data.\n");
        assert_eq!(
            show(r#"{"responses":[{"command":"getClient","data":{}}]}"#).1,
            "Error: Invalid response from server.\n"
        );
        assert_eq!(
            show(r#"{"responses":[{"command":"createClient"}]}"#),
            (String::new(), String::new())
        );
    }
}
