//! Every error text the plugin can answer with, and the load error.
//!
//! The API strings are Mosquitto 2.1.2's, byte for byte: management tools (mosquitto_ctrl,
//! the Management Center) show them to users and some scripts match on them.

/// Why a `dynamic-security.json` could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DynSecError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// Valid JSON of the wrong shape; the string says where (`clients[3]: ...`).
    #[error("{0}")]
    Shape(String),
}

pub(crate) const INTERNAL: &str = "Internal error";
pub(crate) const PAYLOAD_NOT_JSON: &str = "Payload not valid JSON";
pub(crate) const INVALID_COMMANDS: &str = "Invalid/missing commands";
pub(crate) const COMMAND_NOT_OBJECT: &str = "Command not an object";
pub(crate) const MISSING_COMMAND: &str = "Missing command";
pub(crate) const BAD_CORRELATION: &str = "Invalid correlationData data type.";
pub(crate) const UNKNOWN_COMMAND: &str = "Unknown command";

pub(crate) const INVALID_USERNAME: &str = "Invalid/missing username";
pub(crate) const USERNAME_UTF8: &str = "Username not valid UTF-8";
pub(crate) const EMPTY_USERNAME: &str = "Empty username";
pub(crate) const CLIENT_NOT_FOUND: &str = "Client not found";
pub(crate) const CLIENT_EXISTS: &str = "Client already exists";
pub(crate) const INVALID_PASSWORD: &str = "Invalid/missing password";
pub(crate) const EMPTY_PASSWORD: &str = "Empty password is not allowed";
pub(crate) const INVALID_CLIENTID: &str = "Invalid/missing client id";
pub(crate) const INVALID_CLIENT_ID: &str = "Invalid/missing client ID";
pub(crate) const CLIENTID_UTF8: &str = "Client ID not valid UTF-8";
pub(crate) const INVALID_TEXTNAME: &str = "Invalid/missing textname";
pub(crate) const INVALID_TEXTDESCRIPTION: &str = "Invalid/missing textdescription";

pub(crate) const INVALID_GROUPNAME: &str = "Invalid/missing groupname";
pub(crate) const GROUPNAME_UTF8: &str = "Group name not valid UTF-8";
pub(crate) const EMPTY_GROUPNAME: &str = "Empty groupname";
pub(crate) const GROUP_NOT_FOUND: &str = "Group not found";
pub(crate) const GROUP_EXISTS: &str = "Group already exists";
pub(crate) const ALREADY_IN_GROUP: &str = "Client is already in this group";
pub(crate) const GROUP_ALREADY_HAS_ROLE: &str = "Group is already in this role";
pub(crate) const DELETE_ANONYMOUS: &str = "Deleting the anonymous group is forbidden";

pub(crate) const INVALID_ROLENAME: &str = "Invalid/missing rolename";
pub(crate) const ROLENAME_UTF8: &str = "Role name not valid UTF-8";
pub(crate) const EMPTY_ROLENAME: &str = "Empty rolename";
pub(crate) const ROLE_NOT_FOUND: &str = "Role not found";
pub(crate) const ROLE_EXISTS: &str = "Role already exists";
pub(crate) const BAD_ROLES: &str = "'roles' not an array or missing/invalid rolename";
pub(crate) const BAD_GROUPS_NAME: &str = "'groups' contains an object with an invalid 'groupname'";
pub(crate) const GROUPS_NAME_MISSING: &str =
    "'groups' contains an object with a 'groupname' that does not exist";
pub(crate) const BAD_CLIENTS_NAME: &str = "'clients' contains an object with an invalid 'username'";
pub(crate) const CLIENTS_NAME_MISSING: &str =
    "'clients' contains an object with a 'username' that does not exist";

pub(crate) const INVALID_ACLTYPE: &str = "Invalid/missing acltype";
pub(crate) const UNKNOWN_ACLTYPE: &str = "Unknown acltype";
pub(crate) const INVALID_TOPIC: &str = "Invalid/missing topic";
pub(crate) const TOPIC_UTF8: &str = "Topic not valid UTF-8";
pub(crate) const INVALID_ACL_TOPIC: &str = "Invalid ACL topic";
pub(crate) const ACL_EXISTS: &str = "ACL with this topic already exists";
pub(crate) const ACL_NOT_FOUND: &str = "ACL not found";
pub(crate) const BAD_ACTIONS: &str = "Missing/invalid actions array";
pub(crate) const BAD_ALLOWWILDCARDSUBS: &str = "Invalid allowwildcardsubs";
