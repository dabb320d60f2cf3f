//! Who may connect and what they may do: the password file, the ACL file, dynamic security
//! and the client id rules of one listener, loaded from disk into an immutable snapshot. A
//! reload builds a new snapshot and swaps it in; a reload that fails keeps the old one (fail
//! closed, never open).
//!
//! The sources are consulted in Mosquitto's order: the password file, then dynamic
//! security, for logins; the ACL file for publishes and deliveries, then dynamic security.
//! When every source configured passes ("defers"), the answer is no.

use std::sync::Arc;

use arc_swap::ArcSwap;
use midge_core::acl::{self, Access, AclFile};
use midge_core::config::ResolvedSecurity;
use midge_core::dynsec::{AclAccess, Decision};
use midge_core::password::PasswordFile;
use midge_core::psk::PskFile;

use crate::broker::Broker;
use crate::dynsec::DynSecInstance;

/// One listener's security, as loaded.
#[derive(Debug)]
pub struct Policy {
    pub allow_anonymous: bool,
    /// `password_file`: when set, a client with a username must match it.
    pub passwords: Option<PasswordFile>,
    /// `acl_file`: when set, every publish and delivery is checked against it.
    pub acl: Option<AclFile>,
    /// `psk_file`: the keys a `psk_hint` listener's TLS handshakes are checked against.
    pub psks: Option<PskFile>,
    /// The dynamic security plugin (`plugin …/mosquitto_dynamic_security.so`), shared with
    /// every listener naming the same file.
    pub dynsec: Option<Arc<DynSecInstance>>,
    /// `clientid_prefixes`: client ids must start with this.
    pub clientid_prefix: Option<String>,
    pub auto_id_prefix: String,
    pub allow_zero_length_clientid: bool,
}

impl Policy {
    /// Reads and parses the files `security` names. The error is `file:line: reason` (or
    /// `file: reason` when the file cannot be read) for the log.
    pub fn load(security: &ResolvedSecurity, broker: &Arc<Broker>) -> Result<Policy, String> {
        let passwords = match &security.password_file {
            Some(path) => {
                let text = read(path)?;
                Some(PasswordFile::parse(&text, path).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let acl = match &security.acl_file {
            Some(path) => {
                let text = read(path)?;
                Some(acl::parse(&text, path).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let psks = match &security.psk_file {
            Some(path) => {
                let text = read(path)?;
                Some(PskFile::parse(&text, path).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut dynsec = None;
        for plugin in &security.plugins {
            let file = plugin.dynamic_security_file()?;
            let instance = broker.dynsec.get_or_load(file, broker)?;
            if dynsec
                .as_ref()
                .is_some_and(|d: &Arc<DynSecInstance>| !Arc::ptr_eq(d, &instance))
            {
                return Err(format!(
                    "{}:{}: only one dynamic security file can apply to a listener",
                    plugin.file, plugin.line
                ));
            }
            dynsec = Some(instance);
        }
        Ok(Policy {
            allow_anonymous: security.allow_anonymous,
            passwords,
            acl,
            psks,
            dynsec,
            clientid_prefix: security.clientid_prefixes.clone(),
            auto_id_prefix: security.auto_id_prefix.clone(),
            allow_zero_length_clientid: security.allow_zero_length_clientid,
        })
    }

    /// Whether this client may publish to (`Write`) or receive (`Read`) `topic`. Without an
    /// ACL file, Mosquitto's rules for `$` topics still apply (no writes into `$SYS`).
    pub fn may(
        &self,
        username: Option<&str>,
        client_id: &str,
        topic: &str,
        access: Access,
    ) -> bool {
        let Some(dynsec) = &self.dynsec else {
            return match &self.acl {
                Some(acl) => acl.check(username, client_id, topic, access),
                None => !topic.starts_with('$') || acl::dollar_topic_allowed(topic, access),
            };
        };
        if topic.starts_with('$') && !acl::dollar_topic_allowed(topic, access) {
            return false;
        }
        // The ACL file decides publishes and deliveries when there is one; it has no say
        // on (un)subscribing, which dynamic security roles do restrict.
        if let (Some(acl), Access::Read | Access::Write) = (&self.acl, access) {
            return acl.check(username, client_id, topic, access);
        }
        let access = match access {
            Access::Read => AclAccess::PublishClientReceive,
            Access::Write => AclAccess::PublishClientSend,
            Access::Subscribe => AclAccess::Subscribe,
            Access::Unsubscribe => AclAccess::Unsubscribe,
        };
        let username = username.filter(|u| !u.is_empty());
        dynsec.state().check(username, client_id, access, topic) == Decision::Allow
    }

    /// Checks a login against the password file, then dynamic security, as Mosquitto
    /// does. `None` when no source knows the username (the caller refuses the client:
    /// a username nobody vouches for is never let in). Slow on purpose (password hashing):
    /// call it off the I/O threads.
    pub fn verify_login(&self, username: &str, password: Option<&[u8]>, client_id: &str) -> bool {
        if let Some(pf) = &self.passwords {
            if pf.contains(username) || self.dynsec.is_none() {
                // Unknown users cost a dummy hash, so timing does not reveal who exists.
                return pf.verify(username, password.unwrap_or_default());
            }
        }
        if let Some(dynsec) = &self.dynsec {
            let state = dynsec.state();
            return match state.authenticate(Some(username), password, client_id) {
                Decision::Allow => true,
                Decision::Deny => false,
                Decision::Defer => {
                    // Unknown username or no password: pay for one hash anyway, so that
                    // the time a refusal takes does not tell which usernames exist.
                    dummy_hash(password.unwrap_or_default());
                    false
                }
            };
        }
        false
    }

    /// Whether any source checks passwords (otherwise a username is no credential).
    pub fn checks_passwords(&self) -> bool {
        self.passwords.is_some() || self.dynsec.is_some()
    }
}

/// Costs what verifying a dynamic security password costs (PBKDF2-SHA512, Mosquitto's
/// iteration count), and decides nothing.
fn dummy_hash(password: &[u8]) {
    use std::sync::OnceLock;
    static DUMMY: OnceLock<midge_core::password::PasswordHash> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| {
        midge_core::password::PasswordHash::new(
            midge_core::password::HashKind::Pbkdf2Sha512,
            b"midge dummy password",
            &[0u8; 12],
            None,
        )
    });
    let _ = hash.verify(password);
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// A listener's policy, swappable at reload while connections keep running.
#[derive(Debug)]
pub struct PolicyHandle {
    current: ArcSwap<Policy>,
}

impl PolicyHandle {
    pub fn new(policy: Policy) -> PolicyHandle {
        PolicyHandle {
            current: ArcSwap::from_pointee(policy),
        }
    }

    pub fn get(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Runs `f` against the current policy without touching its reference count: the
    /// per-delivery ACL check takes this path.
    pub fn with<R>(&self, f: impl FnOnce(&Policy) -> R) -> R {
        f(&self.current.load())
    }

    pub fn replace(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}
