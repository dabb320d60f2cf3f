//! The broker's answer → the text `mosquitto_ctrl` prints: lists one name a line, getClient /
//! getGroup / getRole / getDefaultACLAccess / getAnonymousGroup as aligned fields, an error as
//! `<command>: Error: <error>` on stderr, nothing for a plain success.

use std::io::Write;

use super::json::Json;

const INVALID: &str = "Error: Invalid response from server.";

/// Prints the response to the first command of the request. Write errors (a closed pipe) are
/// ignored, as printf's are.
pub fn print_response(payload: &[u8], out: &mut dyn Write, err: &mut dyn Write) {
    let _ = print_inner(payload, out, err);
}

fn print_inner(payload: &[u8], out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
    let Some(tree) = Json::parse(payload) else {
        return writeln!(err, "Error: Payload not JSON.");
    };
    let response = tree
        .get("responses")
        .and_then(Json::as_array)
        .and_then(|r| r.first());
    let Some(response) = response else {
        return writeln!(err, "Error: Payload missing data.");
    };
    let Some(command) = response.get("command") else {
        return writeln!(err, "Error: Payload missing data.");
    };
    let command = command.as_str().unwrap_or("(null)");
    if let Some(error) = response.get("error") {
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
fn data_object<'a>(response: &'a Json, key: &str) -> Option<&'a Json> {
    let data = response.get("data").filter(|d| d.is_object())?;
    data.get(key).filter(|o| o.is_object())
}

fn print_list(response: &Json, array: &str, key: &str, out: &mut dyn Write) -> Printed {
    let Some(data) = response.get("data") else {
        return Ok(Err(()));
    };
    let Some(items) = data.get(array).and_then(Json::as_array) else {
        return Ok(Err(()));
    };
    for item in items {
        let name = if item.is_object() {
            item.get(key).and_then(Json::as_str)
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
fn priority(item: &Json) -> i64 {
    item.get("priority").and_then(Json::as_int).unwrap_or(-1)
}

/// The `Roles:` block; `width` is the label column of the record it is part of.
fn print_roles(roles: Option<&Json>, width: usize, out: &mut dyn Write) -> std::io::Result<()> {
    let Some(roles) = roles.and_then(Json::as_array) else {
        return writeln!(out, "Roles:");
    };
    let mut first = true;
    for role in roles {
        if let Some(name) = role.get("rolename").and_then(Json::as_str) {
            let label = if first { "Roles:" } else { "" };
            first = false;
            writeln!(out, "{label:<width$} {name} (priority: {})", priority(role))?;
        }
    }
    Ok(())
}

fn print_client(response: &Json, out: &mut dyn Write) -> Printed {
    let Some(client) = data_object(response, "client") else {
        return Ok(Err(()));
    };
    let Some(username) = client.get("username").and_then(Json::as_str) else {
        return Ok(Err(()));
    };
    writeln!(out, "Username: {username}")?;
    match client.get("clientid").and_then(Json::as_str) {
        Some(id) => writeln!(out, "Clientid: {id}")?,
        None => writeln!(out, "Clientid:")?,
    }
    if let Some(disabled) = client.get("disabled").and_then(Json::as_bool) {
        writeln!(out, "Disabled: {disabled}")?;
    }
    print_roles(client.get("roles"), "Username:".len(), out)?;
    match client.get("groups").and_then(Json::as_array) {
        Some(groups) => {
            let mut first = true;
            for group in groups {
                if let Some(name) = group.get("groupname").and_then(Json::as_str) {
                    let label = if first { "Groups:" } else { "" };
                    first = false;
                    writeln!(out, "{label:<9} {name} (priority: {})", priority(group))?;
                }
            }
        }
        None => writeln!(out, "Groups:")?,
    }
    Ok(Ok(()))
}

fn print_group(response: &Json, out: &mut dyn Write) -> Printed {
    let Some(group) = data_object(response, "group") else {
        return Ok(Err(()));
    };
    let Some(name) = group.get("groupname").and_then(Json::as_str) else {
        return Ok(Err(()));
    };
    writeln!(out, "Groupname: {name}")?;
    print_roles(group.get("roles"), "Groupname:".len(), out)?;
    if let Some(clients) = group.get("clients").and_then(Json::as_array) {
        let mut first = true;
        for client in clients {
            if let Some(user) = client.get("username").and_then(Json::as_str) {
                let label = if first { "Clients:" } else { "" };
                first = false;
                writeln!(out, "{label:<10} {user}")?;
            }
        }
    }
    Ok(Ok(()))
}

fn print_role(response: &Json, out: &mut dyn Write) -> Printed {
    let Some(role) = data_object(response, "role") else {
        return Ok(Err(()));
    };
    let Some(name) = role.get("rolename").and_then(Json::as_str) else {
        return Ok(Err(()));
    };
    writeln!(out, "Rolename: {name}")?;
    if let Some(acls) = role.get("acls").and_then(Json::as_array) {
        let mut first = true;
        for acl in acls {
            let Some(acltype) = acl.get("acltype").and_then(Json::as_str) else {
                continue;
            };
            let label = if first { "ACLs:" } else { "" };
            first = false;
            let mut line = format!("{label:<9} {acltype:<20}");
            if let Some(allow) = acl.get("allow").and_then(Json::as_bool) {
                line.push_str(if allow { " : allow" } else { " : deny " });
            }
            if let Some(topic) = acl.get("topic").and_then(Json::as_str) {
                line.push_str(" : ");
                line.push_str(topic);
            }
            writeln!(out, "{line} (priority: {})", priority(acl))?;
        }
    }
    Ok(Ok(()))
}

fn print_anonymous_group(response: &Json, out: &mut dyn Write) -> Printed {
    let Some(group) = data_object(response, "group") else {
        return Ok(Err(()));
    };
    let Some(name) = group.get("groupname").and_then(Json::as_str) else {
        return Ok(Err(()));
    };
    writeln!(out, "{name}")?;
    Ok(Ok(()))
}

fn print_default_acl_access(response: &Json, out: &mut dyn Write) -> Printed {
    let Some(data) = response.get("data").filter(|d| d.is_object()) else {
        return Ok(Err(()));
    };
    let Some(acls) = data.get("acls").and_then(Json::as_array) else {
        return Ok(Err(()));
    };
    for acl in acls {
        let acltype = acl.get("acltype").and_then(Json::as_str);
        let allow = acl.get("allow").and_then(Json::as_bool);
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
