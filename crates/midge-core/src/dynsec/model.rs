//! The plugin's data: clients, groups, roles and their ACLs, as the file and the API see them.
//!
//! Maps are `BTreeMap`s keyed by name: Mosquitto keeps its hash tables sorted with `strcmp`,
//! and lists, pagination and the written file follow that order, which byte order on UTF-8
//! reproduces.

use std::collections::BTreeMap;
use std::fmt;

use crate::password::PasswordHash;

/// Priorities are clamped to this magnitude, as Mosquitto 2.1 does.
pub(crate) const PRIORITY_LIMIT: i64 = 100_000;

/// Clamps a priority read from JSON.
pub(crate) fn clamp_priority(value: i64) -> i32 {
    value.clamp(-PRIORITY_LIMIT, PRIORITY_LIMIT) as i32
}

/// One of the six ACL types a role can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum AclType {
    PublishClientSend,
    PublishClientReceive,
    SubscribeLiteral,
    SubscribePattern,
    UnsubscribeLiteral,
    UnsubscribePattern,
}

impl AclType {
    /// All types, in the order Mosquitto lists a role's ACLs.
    pub(crate) const ALL: [AclType; 6] = [
        AclType::PublishClientSend,
        AclType::PublishClientReceive,
        AclType::SubscribeLiteral,
        AclType::SubscribePattern,
        AclType::UnsubscribeLiteral,
        AclType::UnsubscribePattern,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            AclType::PublishClientSend => "publishClientSend",
            AclType::PublishClientReceive => "publishClientReceive",
            AclType::SubscribeLiteral => "subscribeLiteral",
            AclType::SubscribePattern => "subscribePattern",
            AclType::UnsubscribeLiteral => "unsubscribeLiteral",
            AclType::UnsubscribePattern => "unsubscribePattern",
        }
    }

    /// Mosquitto compares ACL type names with `strcasecmp`.
    pub(crate) fn from_name(name: &str) -> Option<AclType> {
        AclType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

/// One ACL of a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Acl {
    pub(crate) acltype: AclType,
    pub(crate) topic: String,
    pub(crate) priority: i32,
    pub(crate) allow: bool,
}

/// A role: a named, priority-ordered set of ACLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Role {
    pub(crate) textname: Option<String>,
    pub(crate) textdescription: Option<String>,
    /// 2.1: `false` refuses any subscription with `+` or `#` when this role is reached.
    pub(crate) allow_wildcard_subs: bool,
    /// In insertion order; [`Role::sorted_acls`] gives Mosquitto's order.
    pub(crate) acls: Vec<Acl>,
}

impl Role {
    pub(crate) fn new() -> Role {
        Role {
            textname: None,
            textdescription: None,
            allow_wildcard_subs: true,
            acls: Vec::new(),
        }
    }

    /// ACLs grouped by type (in [`AclType::ALL`] order), each group by priority, highest
    /// first; equal priorities keep insertion order (Mosquitto's sort is a stable merge sort).
    pub(crate) fn sorted_acls(&self) -> Vec<&Acl> {
        let mut acls: Vec<&Acl> = self.acls.iter().collect();
        acls.sort_by_key(|acl| (acl.acltype, std::cmp::Reverse(acl.priority)));
        acls
    }

    /// The ACL of this type with exactly this topic (the key Mosquitto uses).
    pub(crate) fn find_acl(&self, acltype: AclType, topic: &str) -> Option<usize> {
        self.acls
            .iter()
            .position(|acl| acl.acltype == acltype && acl.topic == topic)
    }
}

/// A name with a priority: a role of a client or group, a group of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) name: String,
    /// -1 when not given; not written out then.
    pub(crate) priority: i32,
}

/// Sorts like Mosquitto's `rolelist_cmp`/`grouplist_cmp`: priority descending, then name.
pub(crate) fn sort_members(members: &mut [Member]) {
    members.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// A client's password.
#[derive(Clone)]
pub(crate) enum Password {
    /// No password set, or the file's entry was incomplete: nobody can log in with it.
    Unusable,
    Hash(PasswordHash),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash's own Debug already hides salt and hash; say only whether there is one.
        match self {
            Password::Unusable => f.write_str("Unusable"),
            Password::Hash(hash) => write!(f, "Hash({:?})", hash.kind()),
        }
    }
}

/// A client: credentials, an optional client id binding, roles and groups.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pub(crate) password: Password,
    pub(crate) clientid: Option<String>,
    pub(crate) textname: Option<String>,
    pub(crate) textdescription: Option<String>,
    pub(crate) disabled: bool,
    /// Sorted with [`sort_members`].
    pub(crate) roles: Vec<Member>,
    /// Sorted with [`sort_members`]. Group membership is stored here only; a group's client
    /// list is derived from it.
    pub(crate) groups: Vec<Member>,
}

impl Client {
    pub(crate) fn new() -> Client {
        Client {
            password: Password::Unusable,
            clientid: None,
            textname: None,
            textdescription: None,
            disabled: false,
            roles: Vec::new(),
            groups: Vec::new(),
        }
    }
}

/// A group: roles shared by its member clients.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Group {
    pub(crate) textname: Option<String>,
    pub(crate) textdescription: Option<String>,
    /// Sorted with [`sort_members`].
    pub(crate) roles: Vec<Member>,
}

/// What happens when no ACL matched, per event (`defaultACLAccess`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DefaultAccess {
    pub(crate) publish_client_send: bool,
    pub(crate) publish_client_receive: bool,
    pub(crate) subscribe: bool,
    pub(crate) unsubscribe: bool,
}

impl Default for DefaultAccess {
    fn default() -> DefaultAccess {
        DefaultAccess {
            publish_client_send: false,
            publish_client_receive: true,
            subscribe: false,
            unsubscribe: true,
        }
    }
}

/// The whole configuration, without the derived index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    pub(crate) change_index: u64,
    pub(crate) default_access: DefaultAccess,
    pub(crate) clients: BTreeMap<String, Client>,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) anonymous_group: Option<String>,
}

impl Model {
    /// The clients of `group`, with the priority the group has in each client's list.
    pub(crate) fn group_clients(&self, group: &str) -> Vec<Member> {
        self.clients
            .iter()
            .filter_map(|(username, client)| {
                client
                    .groups
                    .iter()
                    .find(|g| g.name == group)
                    .map(|g| Member {
                        name: username.clone(),
                        priority: g.priority,
                    })
            })
            .collect()
    }
}

/// Mosquitto's `mosquitto_validate_utf8` beyond what a Rust `str` already guarantees: no
/// U+0000, no C0/C1 control characters, no non-characters.
pub(crate) fn valid_mqtt_utf8(s: &str) -> bool {
    s.chars().all(|c| {
        let cp = c as u32;
        !(cp <= 0x1f
            || (0x7f..=0x9f).contains(&cp)
            || (0xfdd0..=0xfdef).contains(&cp)
            || (cp & 0xfffe) == 0xfffe)
    })
}

/// Mosquitto's `mosquitto_sub_topic_check`: `+` and `#` only as whole levels, `#` only last,
/// at most 65535 bytes.
pub(crate) fn valid_sub_topic(topic: &str) -> bool {
    if topic.len() > 65535 {
        return false;
    }
    let mut levels = topic.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains(['+', '#']) && level.len() != 1 {
            return false;
        }
        if level == "#" && levels.peek().is_some() {
            return false;
        }
    }
    true
}
