//! Password prompts, shared by `midge passwd` and `midge ctrl` and read as `mosquitto_passwd`
//! and `mosquitto_ctrl` read them: the prompt on stdout; on a terminal the answer is read
//! without echo; otherwise (a pipe, as in scripts and tests) one line of stdin, as both tools
//! do when they cannot turn echo off, and the prompt line is ended after a non-empty answer.
//! Trailing `\r` and `\n` are cut; an empty answer or end of input is no password.

use std::io::{self, BufRead, IsTerminal, Write};

/// Why no password came back.
#[derive(Debug)]
pub enum PromptError {
    /// An empty answer or end of input.
    Empty,
    /// The two answers differ.
    Mismatch,
    /// Reading failed.
    Read(io::Error),
}

/// Asks for a password, and again with `verify` when given; the first answer is checked for
/// emptiness before the second is asked for.
pub fn get_password(prompt: &str, verify: Option<&str>) -> Result<Vec<u8>, PromptError> {
    let first = read_one(prompt)?;
    if let Some(verify) = verify {
        if first != read_one(verify)? {
            return Err(PromptError::Mismatch);
        }
    }
    Ok(first)
}

/// One non-empty answer.
fn read_one(prompt: &str) -> Result<Vec<u8>, PromptError> {
    let mut stdout = io::stdout().lock();
    let _ = write!(stdout, "{prompt}");
    let _ = stdout.flush();
    let terminal = io::stdin().is_terminal();
    let mut answer = if terminal {
        // Echo off (the typed newline is still echoed), one line, echo back on.
        match rpassword::read_password() {
            Ok(p) => p.into_bytes(),
            // Ctrl-D.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Vec::new(),
            Err(e) => return Err(PromptError::Read(e)),
        }
    } else {
        let mut line = Vec::new();
        io::stdin()
            .lock()
            .read_until(b'\n', &mut line)
            .map_err(PromptError::Read)?;
        line
    };
    while matches!(answer.last(), Some(b'\n' | b'\r')) {
        answer.pop();
    }
    if answer.is_empty() {
        return Err(PromptError::Empty);
    }
    if !terminal {
        // Both tools end the prompt line themselves after a non-empty answer.
        let _ = writeln!(stdout);
    }
    Ok(answer)
}
