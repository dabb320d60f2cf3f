//! Password prompts, as `mosquitto_ctrl` asks them (its `get_password`): the prompt on
//! stdout, the answer read without echo, a newline after a non-empty answer, an optional
//! second prompt to confirm.

use std::io::{self, BufRead, IsTerminal, Write};

/// Why no password came back.
#[derive(Debug, PartialEq)]
pub enum PromptError {
    /// An empty answer or end of input.
    Empty,
    /// The two answers differ.
    Mismatch,
}

/// Asks for a password (twice when `verify` is given). Unless `quiet`, a failure is reported
/// on stderr as mosquitto_ctrl does: `Error: Empty password.` / `Error: Passwords do not match.`
pub fn get_password(
    prompt: &str,
    verify: Option<&str>,
    quiet: bool,
) -> Result<String, PromptError> {
    let first = read_one(prompt);
    let Some(first) = first else {
        if !quiet {
            eprintln!("Error: Empty password.");
        }
        return Err(PromptError::Empty);
    };
    if let Some(verify) = verify {
        let Some(second) = read_one(verify) else {
            if !quiet {
                eprintln!("Error: Empty password.");
            }
            return Err(PromptError::Empty);
        };
        if first != second {
            if !quiet {
                eprintln!("Error: Passwords do not match.");
            }
            return Err(PromptError::Mismatch);
        }
    }
    Ok(first)
}

/// One answer; `None` when empty. On a terminal the answer is read without echo; otherwise
/// (a pipe, as in scripts and tests) one line of stdin, as mosquitto_ctrl does when it cannot
/// turn echo off.
fn read_one(prompt: &str) -> Option<String> {
    let mut stdout = io::stdout().lock();
    let terminal = io::stdin().is_terminal();
    let answer = if terminal {
        let _ = write!(stdout, "{prompt}");
        let _ = stdout.flush();
        // Echo off (the typed newline is still echoed), one line, echo back on.
        rpassword::read_password().unwrap_or_default()
    } else {
        let _ = write!(stdout, "{prompt}");
        let _ = stdout.flush();
        let mut line = Vec::new();
        if io::stdin().lock().read_until(b'\n', &mut line).is_err() {
            line.clear();
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    };
    if answer.is_empty() {
        return None;
    }
    if !terminal {
        // mosquitto_ctrl ends the prompt line itself after a non-empty answer.
        let _ = writeln!(stdout);
    }
    Some(answer)
}
