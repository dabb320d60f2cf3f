//! The error every configuration problem becomes.

/// A configuration file that cannot be used, located to its line. Displays as
/// `file:line: message`, the form the broker prints before refusing to start (or, on
/// reload, before carrying on with the previous configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    /// The file name as given to [`crate::config::parse`].
    pub file: String,
    /// 1-based line number of the offending line.
    pub line: usize,
    /// What is wrong, e.g. `max_keepalive: value 70000 out of range 0..=65535`.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::ConfigError;

    #[test]
    fn displays_as_file_line_message() {
        let error = ConfigError {
            file: "mosquitto.conf".into(),
            line: 7,
            message: "unknown option 'foo'".into(),
        };
        assert_eq!(error.to_string(), "mosquitto.conf:7: unknown option 'foo'");
    }
}
