//! Mosquitto's Dynamic Security plugin, without the I/O: the `dynamic-security.json` file,
//! authentication, the ACL decision and the `$CONTROL/dynamic-security/v1` API.
//!
//! The file arrives as text and leaves as text ([`DynSec::from_json`], [`DynSec::to_json`]);
//! the API takes a request payload and returns the response payload together with what the
//! broker must do about it ([`Outcome`]: save the file, disconnect usernames, log lines).
//!
//! | file | holds |
//! |---|---|
//! | `model.rs` | clients, groups, roles, ACLs, default access |
//! | `json.rs` | loading 2.0/2.1 files, writing 2.0.11-readable ones |
//! | `matching.rs` | ACL topic vs topic name / subscription, `%c`/`%u` |
//! | `index.rs` | the precomputed per-client role lists and the ACL decision |
//! | `command.rs` | the API envelope and its commands |
//! | `error.rs` | every error text |

mod command;
mod error;
mod index;
mod json;
mod matching;
mod model;

#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

pub use error::DynSecError;

use crate::password::{HashKind, PasswordHash, DEFAULT_ITERATIONS, DEFAULT_SALT_LEN};
use index::Index;
use model::{Acl, AclType, Client, Member, Model, Password, Role};

/// The topic the API listens on.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// The topic responses are published on (QoS 0, not retained).
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";

/// What a client wants to do, as the plugin's four ACL events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclAccess {
    /// The client publishes (including its will).
    PublishClientSend,
    /// A message is delivered to the client.
    PublishClientReceive,
    /// The client subscribes; the topic is the filter.
    Subscribe,
    /// The client unsubscribes; the topic is the filter.
    Unsubscribe,
}

/// The plugin's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Granted.
    Allow,
    /// Refused.
    Deny,
    /// Not the plugin's to decide: the username is unknown to it (or, for authentication,
    /// no username or password was given). Mosquitto then asks the next source; when every
    /// source defers it refuses.
    Defer,
}

/// Who sent an API request: used for the log line only.
#[derive(Clone, Copy, Debug)]
pub struct Admin<'a> {
    /// The administrating connection's client id.
    pub client_id: &'a str,
    /// Its username.
    pub username: Option<&'a str>,
}

/// The result of one API request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The JSON payload to publish on [`RESPONSE_TOPIC`].
    pub response: Vec<u8>,
    /// Something changed: write [`DynSec::to_json`] to the file.
    pub changed: bool,
    /// Usernames whose connections must be closed, each once.
    pub kick: Vec<String>,
    /// Clients without a username must be closed too (the anonymous group's rights
    /// changed).
    pub kick_anonymous: bool,
    /// One INFO line per command, `dynsec: <clientid>/<username> | <command> | k=v ...`,
    /// passwords masked.
    pub log: Vec<String>,
}

/// Where new password salts come from. Returns 12 random bytes (Mosquitto 2.0 reads no
/// other salt length).
pub type SaltSource = fn() -> [u8; DEFAULT_SALT_LEN];

/// The whole plugin state. `Debug` never shows password hashes or salts.
#[derive(Clone, Debug)]
pub struct DynSec {
    model: Model,
    index: Index,
    salt: SaltSource,
}

/// Salts from std's randomly keyed SipHash over a counter. The keys are drawn from the OS
/// once per thread, so salts are unique and unpredictable without this crate doing I/O; a
/// salt needs no more. The server may plug in the OS generator with
/// [`DynSec::set_salt_source`].
fn default_salt() -> [u8; DEFAULT_SALT_LEN] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let mut out = [0u8; DEFAULT_SALT_LEN];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_u64(n);
        hasher.write_usize(i);
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

impl DynSec {
    fn from_model(model: Model) -> DynSec {
        let index = Index::build(&model);
        DynSec {
            model,
            index,
            salt: default_salt,
        }
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = Index::build(&self.model);
    }

    /// Reads a `dynamic-security.json` in Mosquitto 2.0 form (`password`/`salt`/`iterations`)
    /// or 2.1 form (`encoded_password`). Entries with invalid, empty or duplicate names are
    /// skipped, unknown keys ignored; a client whose 2.0 password fields are incomplete
    /// exists but cannot log in. The error's `Display` says what is wrong and where.
    pub fn from_json(text: &str) -> Result<DynSec, DynSecError> {
        json::load(text).map(DynSec::from_model)
    }

    /// The file, pretty-printed, loadable by Mosquitto 2.0.11 and 2.1.
    pub fn to_json(&self) -> String {
        json::save(&self.model)
    }

    /// The document `mosquitto_ctrl dynsec init <file> <admin> <password>` (2.0.11) writes:
    /// the admin client with role `admin`, which may use `$CONTROL/dynamic-security/#`,
    /// receive and subscribe to `$SYS/#` and `#`, and unsubscribe from anything; default
    /// access; no groups, no anonymous group.
    pub fn init(admin_username: &str, admin_password: &str) -> DynSec {
        let mut model = Model::default();
        let acl = |acltype, topic: &str| Acl {
            acltype,
            topic: topic.to_string(),
            priority: 0,
            allow: true,
        };
        let role = Role {
            acls: vec![
                acl(AclType::PublishClientSend, "$CONTROL/dynamic-security/#"),
                acl(AclType::PublishClientReceive, "$CONTROL/dynamic-security/#"),
                acl(AclType::SubscribePattern, "$CONTROL/dynamic-security/#"),
                acl(AclType::PublishClientReceive, "$SYS/#"),
                acl(AclType::SubscribePattern, "$SYS/#"),
                acl(AclType::PublishClientReceive, "#"),
                acl(AclType::SubscribePattern, "#"),
                acl(AclType::UnsubscribePattern, "#"),
            ],
            ..Role::new()
        };
        model.roles.insert("admin".to_string(), role);
        let mut dynsec = DynSec::from_model(model);
        let client = Client {
            password: dynsec.hash(admin_password),
            textname: Some("Dynsec admin user".to_string()),
            roles: vec![Member {
                name: "admin".to_string(),
                priority: -1,
            }],
            ..Client::new()
        };
        dynsec
            .model
            .clients
            .insert(admin_username.to_string(), client);
        dynsec.rebuild_index();
        dynsec
    }

    /// Replaces where new password salts come from (for example the OS generator).
    pub fn set_salt_source(&mut self, source: SaltSource) {
        self.salt = source;
    }

    /// A new PBKDF2-SHA512 hash (12-byte salt, [`DEFAULT_ITERATIONS`]) of `password`.
    pub(crate) fn hash(&self, password: &str) -> Password {
        Password::Hash(PasswordHash::new(
            HashKind::Pbkdf2Sha512,
            password.as_bytes(),
            &(self.salt)(),
            Some(DEFAULT_ITERATIONS),
        ))
    }

    /// Checks a CONNECT's credentials (auth.c): no username or no password, or a username
    /// the plugin does not know, defers; a disabled client, a client id other than the one
    /// the client is bound to, an unusable password or a wrong one is refused. The
    /// comparison is constant-time; the hash is slow on purpose, so call this off the I/O
    /// threads.
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
    ) -> Decision {
        let (Some(username), Some(password)) = (username, password) else {
            return Decision::Defer;
        };
        let Some(client) = self.model.clients.get(username) else {
            return Decision::Defer;
        };
        if client.disabled {
            return Decision::Deny;
        }
        if client.clientid.as_deref().is_some_and(|id| id != client_id) {
            return Decision::Deny;
        }
        match &client.password {
            Password::Hash(hash) if hash.verify(password) => Decision::Allow,
            _ => Decision::Deny,
        }
    }

    /// The ACL decision (acl.c). A known username walks its own roles, then its groups'
    /// roles, in priority order; no username walks the anonymous group's roles; an unknown
    /// username defers. The first matching ACL decides. When none matches, the event's
    /// `defaultACLAccess` applies, except that a topic starting with `$CONTROL` is refused:
    /// it must be granted by a role. For `Subscribe`/`Unsubscribe` the topic is the filter.
    ///
    /// Allocation-free: safe on the delivery path.
    pub fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        access: AclAccess,
        topic: &str,
    ) -> Decision {
        match self.index.decide(username, client_id, access, topic) {
            Err(()) => Decision::Defer,
            Ok(Some(true)) => Decision::Allow,
            Ok(Some(false)) => Decision::Deny,
            Ok(None) => index::fall_through(&self.model, access, topic),
        }
    }

    /// Whether an existing subscription survives a change (the CVE-2021-34434 recheck):
    /// [`DynSec::check`] with `Subscribe`, where an unknown username gets the default
    /// subscribe access.
    pub fn subscription_still_allowed(
        &self,
        username: Option<&str>,
        client_id: &str,
        filter: &str,
    ) -> bool {
        match self.check(username, client_id, AclAccess::Subscribe, filter) {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Defer => {
                index::fall_through(&self.model, AclAccess::Subscribe, filter) == Decision::Allow
            }
        }
    }

    /// Runs one `$CONTROL/dynamic-security/v1` request: every command in order, stopping at
    /// an envelope error. See [`Outcome`] for what the broker must do afterwards.
    pub fn handle(&mut self, admin: &Admin, payload: &[u8]) -> Outcome {
        command::handle(self, admin, payload)
    }

    /// Whether `username` is a client of the plugin.
    pub fn has_client(&self, username: &str) -> bool {
        self.model.clients.contains_key(username)
    }
}
