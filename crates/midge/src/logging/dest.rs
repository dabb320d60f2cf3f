//! Where log lines go (`log_dest`): stdout, stderr, one append-only file, syslog and the
//! `$SYS/broker/log/...` topics. Turning the option lines into a set, opening the file,
//! and writing one line to each place.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use midge_core::config::LogDest;

/// The destinations the `log_dest` lines ask for, before anything is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub stdout: bool,
    pub stderr: bool,
    pub syslog: bool,
    pub topic: bool,
    pub file: Option<String>,
    /// Destinations Midge does not have (`dlt`, `android`), for a start-up warning.
    pub unavailable: Vec<&'static str>,
}

impl Wanted {
    /// The `log_dest` lines in order: `none` clears the earlier ones; no line = stderr,
    /// as Mosquitto in the foreground.
    pub fn from_config(lines: &[LogDest]) -> Wanted {
        let mut w = Wanted::default();
        if lines.is_empty() {
            w.stderr = true;
            return w;
        }
        for d in lines {
            match d {
                LogDest::None => {
                    w = Wanted {
                        unavailable: std::mem::take(&mut w.unavailable),
                        ..Wanted::default()
                    }
                }
                LogDest::Stdout => w.stdout = true,
                LogDest::Stderr => w.stderr = true,
                LogDest::Syslog => w.syslog = true,
                LogDest::Topic => w.topic = true,
                LogDest::File(path) => w.file = Some(path.clone()),
                LogDest::Dlt => w.unavailable.push("dlt"),
                LogDest::Android => w.unavailable.push("android"),
            }
        }
        w
    }
}

/// The open log file.
#[derive(Debug)]
pub struct LogFile {
    pub path: String,
    file: File,
}

impl LogFile {
    /// Opens `path` for appending, created with mode 0600 (less whatever the umask
    /// removes); an existing file keeps its mode.
    pub fn open(path: &str) -> std::io::Result<LogFile> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(LogFile {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes one line (newline included) in one `write` on an append-only descriptor,
    /// so lines from several threads never interleave.
    pub fn write_line(&self, line: &[u8]) {
        let _ = (&self.file).write_all(line);
    }
}

/// The destinations in force, files and syslog open.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub stdout: bool,
    pub stderr: bool,
    pub syslog: bool,
    pub topic: bool,
    pub file: Option<Arc<LogFile>>,
}

impl Sinks {
    /// Writes `line` (no newline) to the stream and file destinations.
    pub fn write_streams(&self, line: &str) {
        if !(self.stdout || self.stderr || self.file.is_some()) {
            return;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if self.stdout {
            let _ = std::io::stdout().lock().write_all(&buf);
        }
        if self.stderr {
            let _ = std::io::stderr().lock().write_all(&buf);
        }
        if let Some(f) = &self.file {
            f.write_line(&buf);
        }
    }
}

/// syslog through the C library: `openlog("midge", LOG_PID | LOG_CONS, facility)`.
pub mod syslog {
    use std::ffi::CString;

    /// `log_facility N` = localN; none = daemon (Mosquitto's default).
    pub fn facility(n: Option<u8>) -> libc::c_int {
        match n {
            None => libc::LOG_DAEMON,
            Some(n) => libc::LOG_LOCAL0 + (libc::c_int::from(n.min(7)) << 3),
        }
    }

    /// Opens (or re-opens with another facility) the connection to the system logger.
    pub fn open(facility: libc::c_int) {
        // openlog keeps the pointer: the identity must live as long as the process.
        static IDENT: &[u8] = b"midge\0";
        // SAFETY: IDENT is a NUL-terminated static string; openlog has no other
        // preconditions.
        unsafe {
            libc::openlog(
                IDENT.as_ptr().cast(),
                libc::LOG_PID | libc::LOG_CONS,
                facility,
            )
        };
    }

    pub fn close() {
        // SAFETY: closelog has no preconditions.
        unsafe { libc::closelog() };
    }

    /// Sends one line at `priority`; the text goes through "%s", never as a format.
    pub fn send(priority: libc::c_int, line: &str) {
        let Ok(text) = CString::new(line.replace('\0', " ")) else {
            return;
        };
        // SAFETY: both strings are NUL-terminated and outlive the call; "%s" consumes
        // exactly the one argument given.
        unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn default_is_stderr() {
        let w = Wanted::from_config(&[]);
        assert!(w.stderr && !w.stdout && !w.syslog && !w.topic && w.file.is_none());
    }

    #[test]
    fn lines_add_up_and_none_clears() {
        let w = Wanted::from_config(&[
            LogDest::Stderr,
            LogDest::None,
            LogDest::Stdout,
            LogDest::Topic,
            LogDest::File("/tmp/x.log".into()),
        ]);
        assert!(!w.stderr && w.stdout && w.topic && !w.syslog);
        assert_eq!(w.file.as_deref(), Some("/tmp/x.log"));
        let w = Wanted::from_config(&[LogDest::Syslog, LogDest::None]);
        assert_eq!(w, Wanted::default());
    }

    #[test]
    fn dlt_and_android_are_reported_and_ignored() {
        let w = Wanted::from_config(&[LogDest::Dlt, LogDest::None, LogDest::Android]);
        assert_eq!(w.unavailable, vec!["dlt", "android"]);
        assert!(!w.stderr);
    }

    #[test]
    fn facility_numbers_are_local0_to_local7() {
        assert_eq!(syslog::facility(None), libc::LOG_DAEMON);
        assert_eq!(syslog::facility(Some(0)), libc::LOG_LOCAL0);
        assert_eq!(syslog::facility(Some(5)), libc::LOG_LOCAL5);
        assert_eq!(syslog::facility(Some(7)), libc::LOG_LOCAL7);
    }

    #[test]
    fn file_is_appended_and_created_0600() {
        let dir = std::env::temp_dir().join(format!("midge-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        let f = LogFile::open(path.to_str().unwrap()).unwrap();
        f.write_line(b"one\n");
        let again = LogFile::open(path.to_str().unwrap()).unwrap();
        again.write_line(b"two\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o600, 0, "mode {mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
