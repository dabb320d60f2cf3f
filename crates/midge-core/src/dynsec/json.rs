//! `dynamic-security.json`: reading Mosquitto 2.0 and 2.1 files, writing what 2.0.11 reads.
//!
//! Reading follows the plugin's config loader: entries with an invalid, empty or duplicate
//! name are skipped, as are references to roles or groups that do not exist and ACLs with a
//! missing or unknown type or no topic. Keys are matched case-insensitively, because cJSON's
//! `cJSON_GetObjectItem` is (Mosquitto 2.0.11's `mosquitto_ctrl dynsec init` writes
//! `textName`, which the plugin reads as `textname`). A syntax error, a top level that is not
//! an object, a section of the wrong type or a malformed password hash is an error.
//!
//! Writing: PBKDF2 hashes as the 2.0 triple `password`/`salt`/`iterations` (2.0.11 reads
//! nothing else; 2.1 reads both), other hashes (argon2id, `$6$`, loaded from a 2.1 file) as
//! 2.1's `encoded_password`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::error::DynSecError;
use super::model::{
    clamp_priority, sort_members, valid_mqtt_utf8, Acl, AclType, Client, DefaultAccess, Group,
    Member, Model, Password, Role,
};
use crate::password::PasswordHash;

/// A key of a JSON object, looked up the way cJSON does: exact match first, then ignoring
/// ASCII case.
pub(crate) fn get<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub(crate) fn get_str<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    get(object, key).and_then(Value::as_str)
}

pub(crate) fn get_bool(object: &Map<String, Value>, key: &str) -> Option<bool> {
    get(object, key).and_then(Value::as_bool)
}

/// An integer field; cJSON keeps numbers as doubles, so `5.0` counts and `5.7` truncates.
pub(crate) fn get_int(object: &Map<String, Value>, key: &str) -> Option<i64> {
    let value = get(object, key)?;
    value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
}

/// A valid entity name: a non-empty string Mosquitto's UTF-8 check accepts.
fn valid_name(name: Option<&str>) -> Option<&str> {
    name.filter(|n| !n.is_empty() && valid_mqtt_utf8(n))
}

fn section<'a>(top: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], DynSecError> {
    match get(top, key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(DynSecError::Shape(format!("{key}: expected an array"))),
    }
}

fn object<'a>(
    value: &'a Value,
    key: &str,
    i: usize,
) -> Result<&'a Map<String, Value>, DynSecError> {
    value
        .as_object()
        .ok_or_else(|| DynSecError::Shape(format!("{key}[{i}]: expected an object")))
}

/// `[{<name_key>: "...", "priority": n}]`, keeping names for which `exists` holds, once each.
fn members(
    entry: &Map<String, Value>,
    list_key: &str,
    name_key: &str,
    exists: impl Fn(&str) -> bool,
) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    if let Some(Value::Array(items)) = get(entry, list_key) {
        for item in items.iter().filter_map(Value::as_object) {
            let Some(name) = get_str(item, name_key) else {
                continue;
            };
            if !exists(name) || out.iter().any(|m| m.name == name) {
                continue;
            }
            out.push(Member {
                name: name.to_string(),
                priority: clamp_priority(get_int(item, "priority").unwrap_or(-1)),
            });
        }
    }
    sort_members(&mut out);
    out
}

/// A role's `acls` array. Entries without a known type or a topic, and repeats of a type and
/// topic, are skipped; the topic itself is kept as written, even when it is not a valid filter
/// (Mosquitto 2.0.11 keeps `q/#/x`; the matcher never matches such a topic).
pub(crate) fn acls_from(items: &[Value]) -> Vec<Acl> {
    let mut out: Vec<Acl> = Vec::new();
    for item in items.iter().filter_map(Value::as_object) {
        let Some(acltype) = get_str(item, "acltype").and_then(AclType::from_name) else {
            continue;
        };
        let Some(topic) = get_str(item, "topic") else {
            continue;
        };
        if out.iter().any(|a| a.acltype == acltype && a.topic == topic) {
            continue;
        }
        out.push(Acl {
            acltype,
            topic: topic.to_string(),
            priority: clamp_priority(get_int(item, "priority").unwrap_or(0)),
            allow: get_bool(item, "allow").unwrap_or(false),
        });
    }
    out
}

fn password_from(entry: &Map<String, Value>, at: &str) -> Result<Password, DynSecError> {
    let bad = |e: String| DynSecError::Shape(format!("{at}: {e}"));
    if let Some(encoded) = get_str(entry, "encoded_password") {
        let hash =
            PasswordHash::parse(encoded).map_err(|e| bad(format!("encoded_password: {e}")))?;
        return Ok(Password::Hash(hash));
    }
    let (Some(password), Some(salt), Some(iterations)) = (
        get_str(entry, "password"),
        get_str(entry, "salt"),
        get_int(entry, "iterations"),
    ) else {
        // The plugin marks such a client's password invalid: it exists but cannot log in.
        return Ok(Password::Unusable);
    };
    if iterations < 1 {
        return Err(bad(format!("iterations {iterations} is not positive")));
    }
    // 2.1 composes exactly this and parses it, so the two forms share one validation.
    PasswordHash::parse(&format!("$7${iterations}${salt}${password}"))
        .map(Password::Hash)
        .map_err(|e| bad(format!("password/salt/iterations: {e}")))
}

/// Reads a `dynamic-security.json`.
pub(crate) fn load(text: &str) -> Result<Model, DynSecError> {
    let top: Value = serde_json::from_str(text).map_err(|e| DynSecError::Syntax(e.to_string()))?;
    let top = top
        .as_object()
        .ok_or_else(|| DynSecError::Shape("top level: expected an object".to_string()))?;
    let mut model = Model {
        change_index: get(top, "changeIndex").and_then(Value::as_u64).unwrap_or(0),
        ..Model::default()
    };

    match get(top, "defaultACLAccess") {
        None | Some(Value::Null) => {}
        Some(Value::Object(access)) => {
            let d = &mut model.default_access;
            let defaults = DefaultAccess::default();
            d.publish_client_send =
                get_bool(access, "publishClientSend").unwrap_or(defaults.publish_client_send);
            d.publish_client_receive =
                get_bool(access, "publishClientReceive").unwrap_or(defaults.publish_client_receive);
            d.subscribe = get_bool(access, "subscribe").unwrap_or(defaults.subscribe);
            d.unsubscribe = get_bool(access, "unsubscribe").unwrap_or(defaults.unsubscribe);
        }
        Some(_) => {
            return Err(DynSecError::Shape(
                "defaultACLAccess: expected an object".to_string(),
            ))
        }
    }

    // Roles first: clients and groups refer to them.
    for (i, item) in section(top, "roles")?.iter().enumerate() {
        let entry = object(item, "roles", i)?;
        let Some(name) = valid_name(get_str(entry, "rolename")) else {
            continue;
        };
        if model.roles.contains_key(name) {
            continue;
        }
        let role = Role {
            textname: get_str(entry, "textname").map(str::to_string),
            textdescription: get_str(entry, "textdescription").map(str::to_string),
            allow_wildcard_subs: get_bool(entry, "allowwildcardsubs").unwrap_or(true),
            acls: match get(entry, "acls") {
                Some(Value::Array(items)) => acls_from(items),
                _ => Vec::new(),
            },
        };
        model.roles.insert(name.to_string(), role);
    }

    for (i, item) in section(top, "clients")?.iter().enumerate() {
        let entry = object(item, "clients", i)?;
        let Some(name) = valid_name(get_str(entry, "username")) else {
            continue;
        };
        if model.clients.contains_key(name) {
            continue;
        }
        let client = Client {
            password: password_from(entry, &format!("clients[{i}] ({name})"))?,
            clientid: get_str(entry, "clientid")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            textname: get_str(entry, "textname").map(str::to_string),
            textdescription: get_str(entry, "textdescription").map(str::to_string),
            disabled: get_bool(entry, "disabled").unwrap_or(false),
            roles: members(entry, "roles", "rolename", |r| model.roles.contains_key(r)),
            groups: Vec::new(),
        };
        model.clients.insert(name.to_string(), client);
    }

    for (i, item) in section(top, "groups")?.iter().enumerate() {
        let entry = object(item, "groups", i)?;
        let Some(name) = valid_name(get_str(entry, "groupname")) else {
            continue;
        };
        if model.groups.contains_key(name) {
            continue;
        }
        let group = Group {
            textname: get_str(entry, "textname").map(str::to_string),
            textdescription: get_str(entry, "textdescription").map(str::to_string),
            roles: members(entry, "roles", "rolename", |r| model.roles.contains_key(r)),
        };
        for member in members(entry, "clients", "username", |u| {
            model.clients.contains_key(u)
        }) {
            if let Some(client) = model.clients.get_mut(&member.name) {
                client.groups.push(Member {
                    name: name.to_string(),
                    priority: member.priority,
                });
                sort_members(&mut client.groups);
            }
        }
        model.groups.insert(name.to_string(), group);
    }

    model.anonymous_group = get_str(top, "anonymousGroup")
        .filter(|g| model.groups.contains_key(*g))
        .map(str::to_string);
    Ok(model)
}

/// `[{<key>: name, "priority": p}]`, with `priority` left out at its default of -1 like
/// Mosquitto does.
pub(crate) fn members_json(members: &[Member], key: &str) -> Value {
    Value::Array(
        members
            .iter()
            .map(|m| {
                let mut o = Map::new();
                o.insert(key.to_string(), json!(m.name));
                if m.priority != -1 {
                    o.insert("priority".to_string(), json!(m.priority));
                }
                Value::Object(o)
            })
            .collect(),
    )
}

pub(crate) fn acls_json(role: &Role) -> Value {
    Value::Array(
        role.sorted_acls()
            .into_iter()
            .map(|acl| {
                json!({
                    "acltype": acl.acltype.name(),
                    "topic": acl.topic,
                    "priority": acl.priority,
                    "allow": acl.allow,
                })
            })
            .collect(),
    )
}

fn insert_text(o: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        o.insert(key.to_string(), json!(value));
    }
}

fn client_json(username: &str, client: &Client) -> Value {
    let mut o = Map::new();
    o.insert("username".into(), json!(username));
    insert_text(&mut o, "clientid", &client.clientid);
    insert_text(&mut o, "textname", &client.textname);
    insert_text(&mut o, "textdescription", &client.textdescription);
    if client.disabled {
        o.insert("disabled".into(), json!(true));
    }
    o.insert("roles".into(), members_json(&client.roles, "rolename"));
    match &client.password {
        Password::Unusable => {}
        Password::Hash(PasswordHash::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        }) => {
            o.insert("password".into(), json!(STANDARD.encode(hash)));
            o.insert("salt".into(), json!(STANDARD.encode(salt)));
            o.insert("iterations".into(), json!(iterations));
        }
        Password::Hash(other) => {
            o.insert("encoded_password".into(), json!(other.encode()));
        }
    }
    Value::Object(o)
}

/// The file, pretty-printed with tabs like Mosquitto's cJSON output.
pub(crate) fn save(model: &Model) -> String {
    let d = &model.default_access;
    let mut top = Map::new();
    top.insert("changeIndex".into(), json!(model.change_index));
    top.insert(
        "defaultACLAccess".into(),
        json!({
            "publishClientSend": d.publish_client_send,
            "publishClientReceive": d.publish_client_receive,
            "subscribe": d.subscribe,
            "unsubscribe": d.unsubscribe,
        }),
    );
    top.insert(
        "clients".into(),
        Value::Array(
            model
                .clients
                .iter()
                .map(|(name, client)| client_json(name, client))
                .collect(),
        ),
    );
    top.insert(
        "groups".into(),
        Value::Array(
            model
                .groups
                .iter()
                .map(|(name, group)| {
                    let mut o = Map::new();
                    o.insert("groupname".into(), json!(name));
                    insert_text(&mut o, "textname", &group.textname);
                    insert_text(&mut o, "textdescription", &group.textdescription);
                    o.insert("roles".into(), members_json(&group.roles, "rolename"));
                    o.insert(
                        "clients".into(),
                        members_json(&model.group_clients(name), "username"),
                    );
                    Value::Object(o)
                })
                .collect(),
        ),
    );
    top.insert(
        "roles".into(),
        Value::Array(
            model
                .roles
                .iter()
                .map(|(name, role)| {
                    let mut o = Map::new();
                    o.insert("rolename".into(), json!(name));
                    insert_text(&mut o, "textname", &role.textname);
                    insert_text(&mut o, "textdescription", &role.textdescription);
                    o.insert("allowwildcardsubs".into(), json!(role.allow_wildcard_subs));
                    o.insert("acls".into(), acls_json(role));
                    Value::Object(o)
                })
                .collect(),
        ),
    );
    if let Some(group) = &model.anonymous_group {
        top.insert("anonymousGroup".into(), json!(group));
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&Value::Object(top), &mut serializer)
        .expect("serialising a Value into a Vec cannot fail");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}
