//! The one error type of a run: a message for a person, because every failure the tool can
//! meet (a refused connection, a broker that closed on us, a bad option) ends the run and is
//! printed, never matched on.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchError(String);

impl BenchError {
    pub fn new(msg: impl Into<String>) -> BenchError {
        BenchError(msg.into())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<String> for BenchError {
    fn from(s: String) -> BenchError {
        BenchError(s)
    }
}
