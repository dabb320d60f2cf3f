//! Who may connect and what they may do: the password file, the ACL file and the client id
//! rules of one listener, loaded from disk into an immutable snapshot. A reload builds a new
//! snapshot and swaps it in; a reload that fails keeps the old one (fail closed, never open).

use std::sync::Arc;

use arc_swap::ArcSwap;
use midge_core::acl::{self, Access, AclFile};
use midge_core::config::ResolvedSecurity;
use midge_core::password::PasswordFile;
use midge_core::psk::PskFile;

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
    /// `clientid_prefixes`: client ids must start with this.
    pub clientid_prefix: Option<String>,
    pub auto_id_prefix: String,
    pub allow_zero_length_clientid: bool,
}

impl Policy {
    /// Reads and parses the files `security` names. The error is `file:line: reason` (or
    /// `file: reason` when the file cannot be read) for the log.
    pub fn load(security: &ResolvedSecurity) -> Result<Policy, String> {
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
        Ok(Policy {
            allow_anonymous: security.allow_anonymous,
            passwords,
            acl,
            psks,
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
        match &self.acl {
            Some(acl) => acl.check(username, client_id, topic, access),
            None => !topic.starts_with('$') || acl::dollar_topic_allowed(topic, access),
        }
    }
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
