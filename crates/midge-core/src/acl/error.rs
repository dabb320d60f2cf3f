//! The error an unusable ACL file becomes.

/// An ACL file that cannot be used, located to its line. Displays as `file:line: reason`,
/// the form the broker prints before refusing to start or, on reload, before keeping the
/// previous ACLs (Mosquitto's CVE-2017-7652: a reload that fails must never leave the
/// broker without a policy).
///
/// Mosquitto refuses the same lines, but its messages carry no line number; the reasons
/// here name the keyword first, like [`crate::ConfigError`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct AclError {
    /// The file name as given to [`crate::acl::parse`].
    pub file: String,
    /// 1-based line number of the offending line.
    pub line: usize,
    /// What is wrong, e.g. `topic: invalid access type "READ" (expected read, write,
    /// readwrite or deny)`.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::AclError;

    #[test]
    fn displays_as_file_line_reason() {
        let error = AclError {
            file: "/etc/mosquitto/acl".into(),
            line: 3,
            reason: "user: missing username".into(),
        };
        assert_eq!(
            error.to_string(),
            "/etc/mosquitto/acl:3: user: missing username"
        );
    }
}
