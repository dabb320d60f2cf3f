//! The ACL decision, from an index rebuilt whenever the configuration changes.
//!
//! `check(PublishClientReceive)` runs once per delivered message and subscriber, so it is a
//! hash lookup of the username followed by a walk over precompiled, already ordered role
//! lists: no sorting, no cloning, no allocation.
//!
//! The order is Mosquitto's (acl.c): the client's own roles (priority descending, ties by
//! name), then each group (same order) with its roles; inside a role, its ACLs of the type
//! in question by priority. The first ACL that matches decides. For subscribe and
//! unsubscribe, each role's `*Literal` ACLs (exact string compare) come before its
//! `*Pattern` ones, and for subscribe a role with `allowwildcardsubs: false` refuses any
//! filter with `+` or `#` as soon as it is reached.

use std::collections::HashMap;

use super::matching::acl_matches;
use super::model::{AclType, Model, Role};
use super::{AclAccess, Decision};

#[derive(Clone, Debug)]
struct CompiledAcl {
    topic: Box<str>,
    allow: bool,
}

#[derive(Clone, Debug)]
struct CompiledRole {
    allow_wildcard_subs: bool,
    /// Indexed by [`AclType`] as `usize`, each sorted by priority.
    acls: [Box<[CompiledAcl]>; 6],
}

impl CompiledRole {
    fn new(role: &Role) -> CompiledRole {
        let mut acls: [Vec<CompiledAcl>; 6] = Default::default();
        for acl in role.sorted_acls() {
            acls[acl.acltype as usize].push(CompiledAcl {
                topic: acl.topic.as_str().into(),
                allow: acl.allow,
            });
        }
        CompiledRole {
            allow_wildcard_subs: role.allow_wildcard_subs,
            acls: acls.map(Vec::into_boxed_slice),
        }
    }

    fn list(&self, acltype: AclType) -> &[CompiledAcl] {
        &self.acls[acltype as usize]
    }

    /// This role's answer, or `None` when none of its ACLs matched.
    fn decide(
        &self,
        access: AclAccess,
        topic: &str,
        client_id: &str,
        username: Option<&str>,
    ) -> Option<bool> {
        let patterns = |acltype, subscription| {
            self.list(acltype)
                .iter()
                .find(|acl| acl_matches(&acl.topic, topic, client_id, username, subscription, true))
                .map(|acl| acl.allow)
        };
        let literal = |acltype| {
            self.list(acltype)
                .iter()
                .find(|acl| &*acl.topic == topic)
                .map(|acl| acl.allow)
        };
        match access {
            AclAccess::PublishClientSend => patterns(AclType::PublishClientSend, false),
            AclAccess::PublishClientReceive => patterns(AclType::PublishClientReceive, false),
            AclAccess::Subscribe => {
                if !self.allow_wildcard_subs && topic.contains(['+', '#']) {
                    return Some(false);
                }
                literal(AclType::SubscribeLiteral)
                    .or_else(|| patterns(AclType::SubscribePattern, true))
            }
            AclAccess::Unsubscribe => literal(AclType::UnsubscribeLiteral)
                .or_else(|| patterns(AclType::UnsubscribePattern, true)),
        }
    }
}

/// Every client's roles, resolved and ordered, plus the anonymous group's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    roles: Vec<CompiledRole>,
    clients: HashMap<Box<str>, Box<[u32]>>,
    anonymous: Box<[u32]>,
}

impl Index {
    pub(crate) fn build(model: &Model) -> Index {
        let positions: HashMap<&str, u32> = model
            .roles
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i as u32))
            .collect();
        let roles = model.roles.values().map(CompiledRole::new).collect();
        let group_roles = |group: &str, out: &mut Vec<u32>| {
            if let Some(group) = model.groups.get(group) {
                out.extend(
                    group
                        .roles
                        .iter()
                        .filter_map(|r| positions.get(r.name.as_str()).copied()),
                );
            }
        };
        let clients = model
            .clients
            .iter()
            .map(|(username, client)| {
                let mut list: Vec<u32> = client
                    .roles
                    .iter()
                    .filter_map(|r| positions.get(r.name.as_str()).copied())
                    .collect();
                for group in &client.groups {
                    group_roles(&group.name, &mut list);
                }
                (username.as_str().into(), list.into_boxed_slice())
            })
            .collect();
        let mut anonymous = Vec::new();
        if let Some(group) = &model.anonymous_group {
            group_roles(group, &mut anonymous);
        }
        Index {
            roles,
            clients,
            anonymous: anonymous.into_boxed_slice(),
        }
    }

    /// The roles' answer: `Some(allow)` from the first matching ACL, `None` when nothing
    /// matched, and `Err(())` for a username the plugin does not know.
    pub(crate) fn decide(
        &self,
        username: Option<&str>,
        client_id: &str,
        access: AclAccess,
        topic: &str,
    ) -> Result<Option<bool>, ()> {
        let roles: &[u32] = match username {
            Some(username) => self.clients.get(username).ok_or(())?,
            None => &self.anonymous,
        };
        Ok(roles
            .iter()
            .find_map(|&role| self.roles[role as usize].decide(access, topic, client_id, username)))
    }
}

/// The answer when no ACL matched: `defaultACLAccess`, but `$CONTROL...` is never granted by
/// falling through (acl.c), it must be granted by a role.
pub(crate) fn fall_through(model: &Model, access: AclAccess, topic: &str) -> Decision {
    let default = &model.default_access;
    let allow = match access {
        AclAccess::PublishClientSend => default.publish_client_send,
        AclAccess::PublishClientReceive => default.publish_client_receive,
        AclAccess::Subscribe => default.subscribe,
        AclAccess::Unsubscribe => default.unsubscribe,
    };
    if allow && !topic.starts_with("$CONTROL") {
        Decision::Allow
    } else {
        Decision::Deny
    }
}
