//! The `$CONTROL/dynamic-security/v1` API: the envelope and its commands (every one in the reference table: 32).
//!
//! Request `{"commands":[{"command":"...", ...}, ...]}`, response
//! `{"responses":[{"command":"...", "error"|"data":..., "correlationData":"..."}, ...]}`.
//! Commands run in order; command names and keys match case-insensitively (strcasecmp,
//! cJSON). An envelope error (an item that is not an object, has no command, or has a
//! `correlationData` that is not a string) ends the batch there, as in Mosquitto, with the
//! responses gathered so far.
//!
//! Every command validates all of its arguments before it changes anything, so a failed
//! command leaves the state as it was (Mosquitto sometimes half-applies one).

use serde_json::{json, Map, Value};

use super::error::*;
use super::json::{acls_from, acls_json, get, get_bool, get_int, get_str, members_json};
use super::model::{
    clamp_priority, sort_members, valid_mqtt_utf8, valid_sub_topic, Acl, AclType, Client, Group,
    Member, Password, Role,
};
use super::{Admin, DynSec, Outcome};

type Request = Map<String, Value>;
/// `Ok(Some(data))` for commands answering with data.
type Reply = Result<Option<Value>, &'static str>;

/// What a batch does besides answering.
#[derive(Default)]
struct Effects {
    changed: bool,
    kick: Vec<String>,
    kick_anonymous: bool,
}

impl Effects {
    fn kick(&mut self, username: &str) {
        if !self.kick.iter().any(|k| k == username) {
            self.kick.push(username.to_string());
        }
    }

    /// Everyone in `group` (anonymous clients too, when it is the anonymous group), as
    /// Mosquitto's `group__kick_all` does when the group's rights change.
    fn kick_group(&mut self, ds: &DynSec, group: &str) {
        for member in ds.model.group_clients(group) {
            self.kick(&member.name);
        }
        if ds.model.anonymous_group.as_deref() == Some(group) {
            self.kick_anonymous = true;
        }
    }

    /// Everyone holding `role`, directly or through a group (`role__kick_all`).
    fn kick_role(&mut self, ds: &DynSec, role: &str) {
        for (username, client) in &ds.model.clients {
            if client.roles.iter().any(|r| r.name == role) {
                self.kick(username);
            }
        }
        for (name, group) in &ds.model.groups {
            if group.roles.iter().any(|r| r.name == role) {
                self.kick_group(ds, name);
            }
        }
    }
}

type Handler = fn(&mut DynSec, &Request, &mut Effects) -> Reply;

/// Every command, by canonical name.
const COMMANDS: [(&str, Handler); 32] = [
    ("setDefaultACLAccess", set_default_acl_access),
    ("getDefaultACLAccess", get_default_acl_access),
    ("getDetails", get_details),
    ("createClient", create_client),
    ("deleteClient", delete_client),
    ("enableClient", enable_client),
    ("disableClient", disable_client),
    ("getClient", get_client),
    ("listClients", list_clients),
    ("modifyClient", modify_client),
    ("setClientId", set_client_id),
    ("setClientPassword", set_client_password),
    ("addClientRole", add_client_role),
    ("removeClientRole", remove_client_role),
    ("createGroup", create_group),
    ("deleteGroup", delete_group),
    ("getGroup", get_group),
    ("listGroups", list_groups),
    ("modifyGroup", modify_group),
    ("addGroupClient", add_group_client),
    ("removeGroupClient", remove_group_client),
    ("addGroupRole", add_group_role),
    ("removeGroupRole", remove_group_role),
    ("setAnonymousGroup", set_anonymous_group),
    ("getAnonymousGroup", get_anonymous_group),
    ("createRole", create_role),
    ("deleteRole", delete_role),
    ("getRole", get_role),
    ("listRoles", list_roles),
    ("modifyRole", modify_role),
    ("addRoleACL", add_role_acl),
    ("removeRoleACL", remove_role_acl),
];

fn reply(command: &str, result: Result<Option<Value>, &str>, correlation: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("command".into(), json!(command));
    match result {
        Ok(Some(data)) => {
            o.insert("data".into(), data);
        }
        Ok(None) => {}
        Err(error) => {
            o.insert("error".into(), json!(error));
        }
    }
    if let Some(correlation) = correlation {
        o.insert("correlationData".into(), json!(correlation));
    }
    Value::Object(o)
}

pub(crate) fn handle(ds: &mut DynSec, admin: &Admin, payload: &[u8]) -> Outcome {
    let mut responses = Vec::new();
    let mut log = Vec::new();
    let mut effects = Effects::default();
    let envelope = |error| reply("Unknown command", Err(error), None);
    match serde_json::from_slice::<Value>(payload) {
        Err(_) => responses.push(envelope(PAYLOAD_NOT_JSON)),
        Ok(value) => match value
            .as_object()
            .and_then(|o| get(o, "commands"))
            .and_then(Value::as_array)
        {
            None => responses.push(envelope(INVALID_COMMANDS)),
            Some(commands) => {
                for item in commands {
                    let Some(request) = item.as_object() else {
                        responses.push(envelope(COMMAND_NOT_OBJECT));
                        break;
                    };
                    let Some(name) = get_str(request, "command") else {
                        responses.push(envelope(MISSING_COMMAND));
                        break;
                    };
                    let correlation = match get(request, "correlationData") {
                        None => None,
                        Some(Value::String(s)) => Some(s.as_str()),
                        Some(_) => {
                            responses.push(reply(name, Err(BAD_CORRELATION), None));
                            break;
                        }
                    };
                    let Some(&(canonical, handler)) = COMMANDS
                        .iter()
                        .find(|(known, _)| known.eq_ignore_ascii_case(name))
                    else {
                        responses.push(reply(name, Err(UNKNOWN_COMMAND), correlation));
                        continue;
                    };
                    let result = handler(ds, request, &mut effects);
                    if result.is_ok() {
                        // Mosquitto logs a command once it has succeeded: the log is an
                        // audit trail of what was done.
                        log.push(log_line(admin, canonical, request));
                    }
                    responses.push(reply(canonical, result, correlation));
                }
            }
        },
    }
    if effects.changed {
        ds.model.change_index += 1;
        ds.rebuild_index();
    }
    let response = serde_json::to_vec(&json!({ "responses": responses }))
        .expect("serialising a Value cannot fail");
    Outcome {
        response,
        changed: effects.changed,
        kick: effects.kick,
        kick_anonymous: effects.kick_anonymous,
        log,
    }
}

/// `dynsec: <clientid>/<username> | <command> | k=v | ...`: the request's scalar fields in
/// request order with passwords masked; list commands show their effective paging.
fn log_line(admin: &Admin, command: &str, request: &Request) -> String {
    let mut line = format!(
        "dynsec: {}/{} | {}",
        admin.client_id,
        admin.username.unwrap_or(""),
        command
    );
    if command.starts_with("list") {
        let (verbose, count, offset) = paging(request);
        line.push_str(&format!(
            " | verbose={verbose} | count={count} | offset={offset}"
        ));
        return line;
    }
    for (key, value) in request {
        if key.eq_ignore_ascii_case("command") || key.eq_ignore_ascii_case("correlationData") {
            continue;
        }
        let shown = match value {
            _ if key.eq_ignore_ascii_case("password") => "*****".to_string(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        line.push_str(&format!(" | {key}={shown}"));
    }
    if command.starts_with("add") && command != "addRoleACL" && get(request, "priority").is_none() {
        line.push_str(" | priority=-1");
    }
    line
}

// ---- argument helpers ----------------------------------------------------------------

/// A required name: missing or not a string, empty, or failing Mosquitto's UTF-8 check.
fn name<'a>(
    request: &'a Request,
    key: &str,
    invalid: &'static str,
    empty: &'static str,
    utf8: &'static str,
) -> Result<&'a str, &'static str> {
    let value = get_str(request, key).ok_or(invalid)?;
    if value.is_empty() {
        return Err(empty);
    }
    if !valid_mqtt_utf8(value) {
        return Err(utf8);
    }
    Ok(value)
}

fn username(request: &Request) -> Result<&str, &'static str> {
    name(
        request,
        "username",
        INVALID_USERNAME,
        EMPTY_USERNAME,
        USERNAME_UTF8,
    )
}

fn groupname(request: &Request) -> Result<&str, &'static str> {
    name(
        request,
        "groupname",
        INVALID_GROUPNAME,
        EMPTY_GROUPNAME,
        GROUPNAME_UTF8,
    )
}

fn rolename(request: &Request) -> Result<&str, &'static str> {
    name(
        request,
        "rolename",
        INVALID_ROLENAME,
        EMPTY_ROLENAME,
        ROLENAME_UTF8,
    )
}

/// An optional string: absent is `None`, anything but a string is `invalid`.
fn optional<'a>(
    request: &'a Request,
    key: &str,
    invalid: &'static str,
) -> Result<Option<&'a str>, &'static str> {
    match get(request, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid),
    }
}

fn priority(request: &Request, default: i64) -> i32 {
    clamp_priority(get_int(request, "priority").unwrap_or(default))
}

fn text(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_string)
}

/// A `roles` argument: `None` when absent (keep), the new sorted list otherwise.
fn roles_arg(ds: &DynSec, request: &Request) -> Result<Option<Vec<Member>>, &'static str> {
    let items = match get(request, "roles") {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(BAD_ROLES),
    };
    let mut out: Vec<Member> = Vec::new();
    for item in items {
        let item = item.as_object().ok_or(BAD_ROLES)?;
        let role = get_str(item, "rolename").ok_or(BAD_ROLES)?;
        if !ds.model.roles.contains_key(role) {
            return Err(ROLE_NOT_FOUND);
        }
        if !out.iter().any(|m| m.name == role) {
            out.push(Member {
                name: role.to_string(),
                priority: priority(item, -1),
            });
        }
    }
    sort_members(&mut out);
    Ok(Some(out))
}

/// A `groups` (of a client) or `clients` (of a group) argument.
fn members_arg(
    request: &Request,
    list_key: &str,
    name_key: &str,
    invalid: &'static str,
    missing: &'static str,
    exists: impl Fn(&str) -> bool,
) -> Result<Option<Vec<Member>>, &'static str> {
    let items = match get(request, list_key) {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid),
    };
    let mut out: Vec<Member> = Vec::new();
    for item in items {
        let item = item.as_object().ok_or(invalid)?;
        let member = get_str(item, name_key).ok_or(invalid)?;
        if !exists(member) {
            return Err(missing);
        }
        if !out.iter().any(|m| m.name == member) {
            out.push(Member {
                name: member.to_string(),
                priority: priority(item, -1),
            });
        }
    }
    sort_members(&mut out);
    Ok(Some(out))
}

fn groups_arg(ds: &DynSec, request: &Request) -> Result<Option<Vec<Member>>, &'static str> {
    members_arg(
        request,
        "groups",
        "groupname",
        BAD_GROUPS_NAME,
        GROUPS_NAME_MISSING,
        |g| ds.model.groups.contains_key(g),
    )
}

/// `verbose` (false), `count` (-1 = all), `offset` (0).
fn paging(request: &Request) -> (bool, i64, i64) {
    (
        get_bool(request, "verbose").unwrap_or(false),
        get_int(request, "count").unwrap_or(-1),
        get_int(request, "offset").unwrap_or(0),
    )
}

/// Mosquitto's list loop: skip `offset`, then stop after `count` entries, where a count of
/// 0 still yields one entry (it decrements before testing); a negative count means all.
fn page<T>(items: impl Iterator<Item = T>, count: i64, offset: i64) -> Vec<T> {
    let items = items.skip(offset.max(0) as usize);
    if count < 0 {
        items.collect()
    } else {
        items.take(count.max(1) as usize).collect()
    }
}

fn list_reply(key: &str, total: usize, entries: Vec<Value>) -> Reply {
    let mut o = Map::new();
    o.insert("totalCount".into(), json!(total));
    o.insert(key.into(), Value::Array(entries));
    Ok(Some(Value::Object(o)))
}

fn set_groups(ds: &mut DynSec, username: &str, groups: Vec<Member>) {
    if let Some(client) = ds.model.clients.get_mut(username) {
        client.groups = groups;
    }
}

// ---- default access and details -------------------------------------------------------

fn set_default_acl_access(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let Some(Value::Array(items)) = get(request, "acls") else {
        return Err(BAD_ACTIONS);
    };
    let access = &mut ds.model.default_access;
    for item in items.iter().filter_map(Value::as_object) {
        let (Some(acltype), Some(allow)) = (get_str(item, "acltype"), get_bool(item, "allow"))
        else {
            continue;
        };
        let slot = match acltype {
            t if t.eq_ignore_ascii_case("publishClientSend") => &mut access.publish_client_send,
            t if t.eq_ignore_ascii_case("publishClientReceive") => {
                &mut access.publish_client_receive
            }
            t if t.eq_ignore_ascii_case("subscribe") => &mut access.subscribe,
            t if t.eq_ignore_ascii_case("unsubscribe") => &mut access.unsubscribe,
            _ => continue,
        };
        *slot = allow;
    }
    fx.changed = true;
    Ok(None)
}

fn get_default_acl_access(ds: &mut DynSec, _: &Request, _: &mut Effects) -> Reply {
    let d = &ds.model.default_access;
    Ok(Some(json!({"acls": [
        {"acltype": "publishClientSend", "allow": d.publish_client_send},
        {"acltype": "publishClientReceive", "allow": d.publish_client_receive},
        {"acltype": "subscribe", "allow": d.subscribe},
        {"acltype": "unsubscribe", "allow": d.unsubscribe},
    ]})))
}

fn get_details(ds: &mut DynSec, _: &Request, _: &mut Effects) -> Reply {
    let m = &ds.model;
    Ok(Some(json!({
        "clientCount": m.clients.len(),
        "groupCount": m.groups.len(),
        "roleCount": m.roles.len(),
        "changeIndex": m.change_index,
    })))
}

// ---- clients ---------------------------------------------------------------------------

fn client_json(username: &str, client: &Client) -> Value {
    let mut o = Map::new();
    o.insert("username".into(), json!(username));
    for (key, value) in [
        ("clientid", &client.clientid),
        ("textname", &client.textname),
        ("textdescription", &client.textdescription),
    ] {
        if let Some(value) = value {
            o.insert(key.into(), json!(value));
        }
    }
    if client.disabled {
        o.insert("disabled".into(), json!(true));
    }
    o.insert("roles".into(), members_json(&client.roles, "rolename"));
    o.insert("groups".into(), members_json(&client.groups, "groupname"));
    Value::Object(o)
}

fn create_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let username = username(request)?;
    let password = optional(request, "password", INVALID_PASSWORD)?;
    let clientid = optional(request, "clientid", INVALID_CLIENTID)?;
    if clientid.is_some_and(|c| !valid_mqtt_utf8(c)) {
        return Err(CLIENTID_UTF8);
    }
    let textname = optional(request, "textname", INVALID_TEXTNAME)?;
    let textdescription = optional(request, "textdescription", INVALID_TEXTDESCRIPTION)?;
    if ds.model.clients.contains_key(username) {
        return Err(CLIENT_EXISTS);
    }
    let roles = roles_arg(ds, request)?.unwrap_or_default();
    let groups = groups_arg(ds, request)?.unwrap_or_default();
    let client = Client {
        password: password.map_or(Password::Unusable, |p| ds.hash(p)),
        clientid: text(clientid),
        textname: text(textname),
        textdescription: text(textdescription),
        disabled: false,
        roles,
        groups,
    };
    ds.model.clients.insert(username.to_string(), client);
    fx.changed = true;
    Ok(None)
}

/// The username argument of a command on an existing client.
fn existing_client<'a>(ds: &DynSec, request: &'a Request) -> Result<&'a str, &'static str> {
    let username = get_str(request, "username").ok_or(INVALID_USERNAME)?;
    if !valid_mqtt_utf8(username) {
        return Err(USERNAME_UTF8);
    }
    if !ds.model.clients.contains_key(username) {
        return Err(CLIENT_NOT_FOUND);
    }
    Ok(username)
}

fn client_mut<'a>(ds: &'a mut DynSec, username: &str) -> &'a mut Client {
    ds.model
        .clients
        .get_mut(username)
        .expect("checked by existing_client")
}

fn delete_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let username = existing_client(ds, request)?;
    ds.model.clients.remove(username);
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn enable_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let username = existing_client(ds, request)?;
    client_mut(ds, username).disabled = false;
    fx.changed = true;
    Ok(None)
}

fn disable_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let username = existing_client(ds, request)?;
    client_mut(ds, username).disabled = true;
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn get_client(ds: &mut DynSec, request: &Request, _: &mut Effects) -> Reply {
    let username = existing_client(ds, request)?;
    let client = &ds.model.clients[username];
    Ok(Some(json!({ "client": client_json(username, client) })))
}

fn list_clients(ds: &mut DynSec, request: &Request, _: &mut Effects) -> Reply {
    let (verbose, count, offset) = paging(request);
    let entries = page(ds.model.clients.iter(), count, offset)
        .into_iter()
        .map(|(name, client)| {
            if verbose {
                client_json(name, client)
            } else {
                json!(name)
            }
        })
        .collect();
    list_reply("clients", ds.model.clients.len(), entries)
}

fn modify_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let username = existing_client(ds, request)?;
    let clientid = optional(request, "clientid", INVALID_CLIENTID)?;
    if clientid.is_some_and(|c| !valid_mqtt_utf8(c)) {
        return Err(CLIENTID_UTF8);
    }
    // An empty password leaves the password as it is (Mosquitto 2.0.11).
    let password = optional(request, "password", INVALID_PASSWORD)?.filter(|p| !p.is_empty());
    let textname = optional(request, "textname", INVALID_TEXTNAME)?;
    let textdescription = optional(request, "textdescription", INVALID_TEXTDESCRIPTION)?;
    let roles = roles_arg(ds, request)?;
    let groups = groups_arg(ds, request)?;
    let hash = password.map(|p| ds.hash(p));
    let client = client_mut(ds, username);
    if let Some(clientid) = clientid {
        client.clientid = text(Some(clientid));
    }
    if let Some(hash) = hash {
        client.password = hash;
    }
    if let Some(textname) = textname {
        client.textname = text(Some(textname));
    }
    if let Some(textdescription) = textdescription {
        client.textdescription = text(Some(textdescription));
    }
    if let Some(roles) = roles {
        client.roles = roles;
    }
    if let Some(groups) = groups {
        client.groups = groups;
    }
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn set_client_id(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let username = get_str(request, "username").ok_or(INVALID_USERNAME)?;
    if !valid_mqtt_utf8(username) {
        return Err(USERNAME_UTF8);
    }
    let clientid = optional(request, "clientid", INVALID_CLIENT_ID)?;
    if clientid.is_some_and(|c| !valid_mqtt_utf8(c)) {
        return Err(CLIENTID_UTF8);
    }
    let username = existing_client(ds, request)?;
    client_mut(ds, username).clientid = text(clientid);
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn set_client_password(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "username").ok_or(INVALID_USERNAME)?;
    let password = get_str(request, "password").ok_or(INVALID_PASSWORD)?;
    if password.is_empty() {
        return Err(EMPTY_PASSWORD);
    }
    let username = existing_client(ds, request)?;
    let hash = ds.hash(password);
    client_mut(ds, username).password = hash;
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

/// The `rolename` argument of a command on an existing role.
fn existing_role<'a>(ds: &DynSec, request: &'a Request) -> Result<&'a str, &'static str> {
    let role = get_str(request, "rolename").ok_or(INVALID_ROLENAME)?;
    if !valid_mqtt_utf8(role) {
        return Err(ROLENAME_UTF8);
    }
    if !ds.model.roles.contains_key(role) {
        return Err(ROLE_NOT_FOUND);
    }
    Ok(role)
}

/// Adds `name` to a role or group list in priority order; `duplicate` when it is there.
fn add_member(
    members: &mut Vec<Member>,
    name: &str,
    priority: i32,
    duplicate: &'static str,
) -> Result<(), &'static str> {
    if members.iter().any(|m| m.name == name) {
        return Err(duplicate);
    }
    members.push(Member {
        name: name.to_string(),
        priority,
    });
    sort_members(members);
    Ok(())
}

fn add_client_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "username").ok_or(INVALID_USERNAME)?;
    get_str(request, "rolename").ok_or(INVALID_ROLENAME)?;
    let username = existing_client(ds, request)?;
    let role = existing_role(ds, request)?;
    let priority = priority(request, -1);
    // Mosquitto 2.0.11 answers a duplicate with exactly `Internal error`.
    add_member(
        &mut client_mut(ds, username).roles,
        role,
        priority,
        INTERNAL,
    )?;
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn remove_client_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "username").ok_or(INVALID_USERNAME)?;
    get_str(request, "rolename").ok_or(INVALID_ROLENAME)?;
    let username = existing_client(ds, request)?;
    let role = existing_role(ds, request)?;
    // Removing a role the client does not have succeeds (Mosquitto 2.0.11).
    client_mut(ds, username).roles.retain(|r| r.name != role);
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

// ---- groups ----------------------------------------------------------------------------

fn group_json(ds: &DynSec, name: &str, group: &Group) -> Value {
    let mut o = Map::new();
    o.insert("groupname".into(), json!(name));
    for (key, value) in [
        ("textname", &group.textname),
        ("textdescription", &group.textdescription),
    ] {
        if let Some(value) = value {
            o.insert(key.into(), json!(value));
        }
    }
    o.insert(
        "clients".into(),
        members_json(&ds.model.group_clients(name), "username"),
    );
    o.insert("roles".into(), members_json(&group.roles, "rolename"));
    Value::Object(o)
}

fn existing_group<'a>(ds: &DynSec, request: &'a Request) -> Result<&'a str, &'static str> {
    let group = get_str(request, "groupname").ok_or(INVALID_GROUPNAME)?;
    if !valid_mqtt_utf8(group) {
        return Err(GROUPNAME_UTF8);
    }
    if !ds.model.groups.contains_key(group) {
        return Err(GROUP_NOT_FOUND);
    }
    Ok(group)
}

fn group_mut<'a>(ds: &'a mut DynSec, name: &str) -> &'a mut Group {
    ds.model
        .groups
        .get_mut(name)
        .expect("checked by existing_group")
}

fn create_group(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let groupname = groupname(request)?;
    let textname = optional(request, "textname", INVALID_TEXTNAME)?;
    let textdescription = optional(request, "textdescription", INVALID_TEXTDESCRIPTION)?;
    if ds.model.groups.contains_key(groupname) {
        return Err(GROUP_EXISTS);
    }
    let roles = roles_arg(ds, request)?.unwrap_or_default();
    ds.model.groups.insert(
        groupname.to_string(),
        Group {
            textname: text(textname),
            textdescription: text(textdescription),
            roles,
        },
    );
    fx.changed = true;
    Ok(None)
}

fn delete_group(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let group = existing_group(ds, request)?;
    if ds.model.anonymous_group.as_deref() == Some(group) {
        return Err(DELETE_ANONYMOUS);
    }
    for member in ds.model.group_clients(group) {
        fx.kick(&member.name);
        if let Some(client) = ds.model.clients.get_mut(&member.name) {
            client.groups.retain(|g| g.name != group);
        }
    }
    ds.model.groups.remove(group);
    fx.changed = true;
    Ok(None)
}

fn get_group(ds: &mut DynSec, request: &Request, _: &mut Effects) -> Reply {
    let name = existing_group(ds, request)?;
    let group = &ds.model.groups[name];
    Ok(Some(json!({ "group": group_json(ds, name, group) })))
}

fn list_groups(ds: &mut DynSec, request: &Request, _: &mut Effects) -> Reply {
    let (verbose, count, offset) = paging(request);
    let entries = page(ds.model.groups.iter(), count, offset)
        .into_iter()
        .map(|(name, group)| {
            if verbose {
                group_json(ds, name, group)
            } else {
                json!(name)
            }
        })
        .collect();
    list_reply("groups", ds.model.groups.len(), entries)
}

fn modify_group(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let name = existing_group(ds, request)?;
    let textname = optional(request, "textname", INVALID_TEXTNAME)?;
    let textdescription = optional(request, "textdescription", INVALID_TEXTDESCRIPTION)?;
    let roles = roles_arg(ds, request)?;
    let clients = members_arg(
        request,
        "clients",
        "username",
        BAD_CLIENTS_NAME,
        CLIENTS_NAME_MISSING,
        |u| ds.model.clients.contains_key(u),
    )?;
    let group = group_mut(ds, name);
    if let Some(textname) = textname {
        group.textname = text(Some(textname));
    }
    if let Some(textdescription) = textdescription {
        group.textdescription = text(Some(textdescription));
    }
    let roles_changed = roles.is_some();
    if let Some(roles) = roles {
        group.roles = roles;
    }
    if roles_changed {
        let name = name.to_owned();
        fx.kick_group(ds, &name);
    }
    if let Some(clients) = clients {
        // Everyone whose group list changes is kicked: old members and new ones.
        for old in ds.model.group_clients(name) {
            fx.kick(&old.name);
            if let Some(client) = ds.model.clients.get_mut(&old.name) {
                client.groups.retain(|g| g.name != name);
            }
        }
        for new in clients {
            fx.kick(&new.name);
            if let Some(client) = ds.model.clients.get_mut(&new.name) {
                client.groups.push(Member {
                    name: name.to_string(),
                    priority: new.priority,
                });
                sort_members(&mut client.groups);
            }
        }
    }
    fx.changed = true;
    Ok(None)
}

fn add_group_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "groupname").ok_or(INVALID_GROUPNAME)?;
    get_str(request, "username").ok_or(INVALID_USERNAME)?;
    let username = existing_client(ds, request)?;
    let group = existing_group(ds, request)?;
    let priority = priority(request, -1);
    add_member(
        &mut client_mut(ds, username).groups,
        group,
        priority,
        ALREADY_IN_GROUP,
    )?;
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn remove_group_client(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "groupname").ok_or(INVALID_GROUPNAME)?;
    get_str(request, "username").ok_or(INVALID_USERNAME)?;
    let username = existing_client(ds, request)?;
    let group = existing_group(ds, request)?;
    // Removing a non-member succeeds (Mosquitto 2.0.11).
    let mut groups = client_mut(ds, username).groups.clone();
    groups.retain(|g| g.name != group);
    set_groups(ds, username, groups);
    fx.changed = true;
    fx.kick(username);
    Ok(None)
}

fn add_group_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "groupname").ok_or(INVALID_GROUPNAME)?;
    get_str(request, "rolename").ok_or(INVALID_ROLENAME)?;
    let name = existing_group(ds, request)?;
    let role = existing_role(ds, request)?;
    let priority = priority(request, -1);
    add_member(
        &mut group_mut(ds, name).roles,
        role,
        priority,
        GROUP_ALREADY_HAS_ROLE,
    )?;
    let name = name.to_owned();
    fx.kick_group(ds, &name);
    fx.changed = true;
    Ok(None)
}

fn remove_group_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    get_str(request, "groupname").ok_or(INVALID_GROUPNAME)?;
    get_str(request, "rolename").ok_or(INVALID_ROLENAME)?;
    let group = existing_group(ds, request)?;
    let role = existing_role(ds, request)?;
    group_mut(ds, group).roles.retain(|r| r.name != role);
    let group = group.to_owned();
    fx.kick_group(ds, &group);
    fx.changed = true;
    Ok(None)
}

fn set_anonymous_group(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let group = existing_group(ds, request)?;
    ds.model.anonymous_group = Some(group.to_string());
    fx.kick_anonymous = true;
    fx.changed = true;
    Ok(None)
}

fn get_anonymous_group(ds: &mut DynSec, _: &Request, _: &mut Effects) -> Reply {
    let name = ds.model.anonymous_group.as_deref().unwrap_or("");
    Ok(Some(json!({"group": {"groupname": name}})))
}

// ---- roles -----------------------------------------------------------------------------

fn role_json(name: &str, role: &Role) -> Value {
    let mut o = Map::new();
    o.insert("rolename".into(), json!(name));
    for (key, value) in [
        ("textname", &role.textname),
        ("textdescription", &role.textdescription),
    ] {
        if let Some(value) = value {
            o.insert(key.into(), json!(value));
        }
    }
    o.insert("allowwildcardsubs".into(), json!(role.allow_wildcard_subs));
    o.insert("acls".into(), acls_json(role));
    Value::Object(o)
}

fn allow_wildcard_subs(request: &Request) -> Result<Option<bool>, &'static str> {
    match get(request, "allowwildcardsubs") {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(BAD_ALLOWWILDCARDSUBS),
    }
}

fn acls_arg(request: &Request) -> Option<Vec<Acl>> {
    match get(request, "acls") {
        Some(Value::Array(items)) => Some(acls_from(items)),
        _ => None,
    }
}

fn create_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let rolename = rolename(request)?;
    let textname = optional(request, "textname", INVALID_TEXTNAME)?;
    let textdescription = optional(request, "textdescription", INVALID_TEXTDESCRIPTION)?;
    let wildcards = allow_wildcard_subs(request)?;
    if ds.model.roles.contains_key(rolename) {
        return Err(ROLE_EXISTS);
    }
    let role = Role {
        textname: text(textname),
        textdescription: text(textdescription),
        allow_wildcard_subs: wildcards.unwrap_or(true),
        acls: acls_arg(request).unwrap_or_default(),
    };
    ds.model.roles.insert(rolename.to_string(), role);
    fx.changed = true;
    Ok(None)
}

fn delete_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let role = existing_role(ds, request)?.to_owned();
    let role = role.as_str();
    fx.kick_role(ds, role);
    for client in ds.model.clients.values_mut() {
        client.roles.retain(|r| r.name != role);
    }
    for group in ds.model.groups.values_mut() {
        group.roles.retain(|r| r.name != role);
    }
    ds.model.roles.remove(role);
    fx.changed = true;
    Ok(None)
}

fn get_role(ds: &mut DynSec, request: &Request, _: &mut Effects) -> Reply {
    let name = existing_role(ds, request)?;
    Ok(Some(
        json!({ "role": role_json(name, &ds.model.roles[name]) }),
    ))
}

fn list_roles(ds: &mut DynSec, request: &Request, _: &mut Effects) -> Reply {
    let (verbose, count, offset) = paging(request);
    let entries = page(ds.model.roles.iter(), count, offset)
        .into_iter()
        .map(|(name, role)| {
            if verbose {
                role_json(name, role)
            } else {
                json!(name)
            }
        })
        .collect();
    list_reply("roles", ds.model.roles.len(), entries)
}

fn modify_role(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let name = existing_role(ds, request)?;
    let textname = optional(request, "textname", INVALID_TEXTNAME)?;
    let textdescription = optional(request, "textdescription", INVALID_TEXTDESCRIPTION)?;
    let wildcards = allow_wildcard_subs(request)?;
    let acls = acls_arg(request);
    let role = ds
        .model
        .roles
        .get_mut(name)
        .expect("checked by existing_role");
    if let Some(textname) = textname {
        role.textname = text(Some(textname));
    }
    if let Some(textdescription) = textdescription {
        role.textdescription = text(Some(textdescription));
    }
    if let Some(wildcards) = wildcards {
        role.allow_wildcard_subs = wildcards;
    }
    if let Some(acls) = acls {
        role.acls = acls;
    }
    let name = name.to_owned();
    fx.kick_role(ds, &name);
    fx.changed = true;
    Ok(None)
}

/// `acltype` and `topic` of addRoleACL/removeRoleACL.
fn acl_key(request: &Request) -> Result<(AclType, &str), &'static str> {
    let acltype = get_str(request, "acltype").ok_or(INVALID_ACLTYPE)?;
    let acltype = AclType::from_name(acltype).ok_or(UNKNOWN_ACLTYPE)?;
    let topic = get_str(request, "topic").ok_or(INVALID_TOPIC)?;
    if !valid_mqtt_utf8(topic) {
        return Err(TOPIC_UTF8);
    }
    if !valid_sub_topic(topic) {
        return Err(INVALID_ACL_TOPIC);
    }
    Ok((acltype, topic))
}

fn add_role_acl(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let name = existing_role(ds, request)?;
    let (acltype, topic) = acl_key(request)?;
    let role = ds
        .model
        .roles
        .get_mut(name)
        .expect("checked by existing_role");
    if role.find_acl(acltype, topic).is_some() {
        return Err(ACL_EXISTS);
    }
    role.acls.push(Acl {
        acltype,
        topic: topic.to_string(),
        priority: priority(request, 0),
        allow: get_bool(request, "allow").unwrap_or(false),
    });
    let name = name.to_owned();
    fx.kick_role(ds, &name);
    fx.changed = true;
    Ok(None)
}

fn remove_role_acl(ds: &mut DynSec, request: &Request, fx: &mut Effects) -> Reply {
    let name = existing_role(ds, request)?;
    let (acltype, topic) = acl_key(request)?;
    let role = ds
        .model
        .roles
        .get_mut(name)
        .expect("checked by existing_role");
    let position = role.find_acl(acltype, topic).ok_or(ACL_NOT_FOUND)?;
    role.acls.remove(position);
    let name = name.to_owned();
    fx.kick_role(ds, &name);
    fx.changed = true;
    Ok(None)
}
