//! What a log line looks like and which ones are written: Mosquitto's message types
//! (`log_type`), how tracing levels and targets map onto them, the timestamp prefix
//! (`log_timestamp`, `log_timestamp_format`) and the per-type `$SYS` topic and syslog
//! priority. Pure: no I/O, no global state.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, TimeZone};
use midge_core::config::LogType;
use tracing::Level;

/// The tracing target of the "subscribed" event: Mosquitto's `subscribe` type.
pub const SUBSCRIBE_TARGET: &str = "midge::subscribe";
/// The tracing target of the "unsubscribed" event: Mosquitto's `unsubscribe` type.
pub const UNSUBSCRIBE_TARGET: &str = "midge::unsubscribe";

/// One of Mosquitto's message types, as a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error,
    Warning,
    Notice,
    Information,
    Debug,
    Subscribe,
    Unsubscribe,
}

impl Kind {
    /// Mosquitto's `$SYS/broker/log/...` topic for `log_dest topic`; `None` for the types
    /// it never publishes (debug).
    pub fn topic(self) -> Option<&'static str> {
        Some(match self {
            Kind::Error => "$SYS/broker/log/E",
            Kind::Warning => "$SYS/broker/log/W",
            Kind::Notice => "$SYS/broker/log/N",
            Kind::Information => "$SYS/broker/log/I",
            Kind::Subscribe => "$SYS/broker/log/M/subscribe",
            Kind::Unsubscribe => "$SYS/broker/log/M/unsubscribe",
            Kind::Debug => return None,
        })
    }

    /// The syslog priority Mosquitto gives the type.
    pub fn syslog_priority(self) -> i32 {
        match self {
            Kind::Error => libc::LOG_ERR,
            Kind::Warning => libc::LOG_WARNING,
            Kind::Notice | Kind::Subscribe | Kind::Unsubscribe => libc::LOG_NOTICE,
            Kind::Information => libc::LOG_INFO,
            Kind::Debug => libc::LOG_DEBUG,
        }
    }
}

/// The set of `log_type`s in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Types(u16);

const ERROR: u16 = 1;
const WARNING: u16 = 1 << 1;
const NOTICE: u16 = 1 << 2;
const INFORMATION: u16 = 1 << 3;
const DEBUG: u16 = 1 << 4;
const SUBSCRIBE: u16 = 1 << 5;
const UNSUBSCRIBE: u16 = 1 << 6;
const WEBSOCKETS: u16 = 1 << 7;
const INTERNAL: u16 = 1 << 8;
const ALL: u16 = u16::MAX;

impl Types {
    /// Mosquitto's default: error, warning, notice, information.
    pub const DEFAULT: Types = Types(ERROR | WARNING | NOTICE | INFORMATION);
    pub const ALL: Types = Types(ALL);

    /// The `log_type` lines in order (`none` clears, `all` sets every type; no line =
    /// the default); `-v` means all, whatever the file says.
    pub fn from_config(lines: &[LogType], verbose: bool) -> Types {
        if verbose {
            return Types::ALL;
        }
        if lines.is_empty() {
            return Types::DEFAULT;
        }
        Types(lines.iter().fold(0, |mask, t| match t {
            LogType::None => 0,
            LogType::All => ALL,
            LogType::Error => mask | ERROR,
            LogType::Warning => mask | WARNING,
            LogType::Notice => mask | NOTICE,
            LogType::Information => mask | INFORMATION,
            LogType::Debug => mask | DEBUG,
            LogType::Subscribe => mask | SUBSCRIBE,
            LogType::Unsubscribe => mask | UNSUBSCRIBE,
            LogType::Websockets => mask | WEBSOCKETS,
            LogType::Internal => mask | INTERNAL,
        }))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn from_bits(bits: u16) -> Types {
        Types(bits)
    }

    fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The type an event of this level and target is written as, or `None` when the
    /// `log_type`s leave it out. The subscribe/unsubscribe targets are their own types
    /// whatever their level; otherwise ERROR = error, WARN = warning, INFO = notice or
    /// information (either enables it; written as notice when notice is on), DEBUG = debug.
    /// TRACE is never written.
    pub fn classify(self, level: &Level, target: &str) -> Option<Kind> {
        let (kind, on) = match target {
            SUBSCRIBE_TARGET => (Kind::Subscribe, self.has(SUBSCRIBE)),
            UNSUBSCRIBE_TARGET => (Kind::Unsubscribe, self.has(UNSUBSCRIBE)),
            _ => match *level {
                Level::ERROR => (Kind::Error, self.has(ERROR)),
                Level::WARN => (Kind::Warning, self.has(WARNING)),
                Level::INFO if self.has(NOTICE) => (Kind::Notice, true),
                Level::INFO => (Kind::Information, self.has(INFORMATION)),
                Level::DEBUG => (Kind::Debug, self.has(DEBUG)),
                _ => (Kind::Debug, false),
            },
        };
        on.then_some(kind)
    }

    /// The most verbose tracing level any enabled type needs (the subscribe/unsubscribe
    /// events are DEBUG events).
    pub fn max_level(self) -> Option<Level> {
        if self.has(DEBUG | SUBSCRIBE | UNSUBSCRIBE) {
            Some(Level::DEBUG)
        } else if self.has(NOTICE | INFORMATION) {
            Some(Level::INFO)
        } else if self.has(WARNING) {
            Some(Level::WARN)
        } else if self.has(ERROR) {
            Some(Level::ERROR)
        } else {
            None
        }
    }
}

/// `log_timestamp` / `log_timestamp_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// `log_timestamp false`.
    None,
    /// The default: seconds since the epoch.
    Epoch,
    /// A strftime format, in local time.
    Strftime(String),
}

impl Stamp {
    pub fn from_config(timestamp: bool, format: Option<&str>) -> Stamp {
        match (timestamp, format) {
            (false, _) => Stamp::None,
            (true, None) => Stamp::Epoch,
            (true, Some(f)) => Stamp::Strftime(f.to_owned()),
        }
    }

    /// Why the format cannot be used, for a start-up warning; lines then carry
    /// "Time error" as Mosquitto writes when strftime fails.
    pub fn problem(&self) -> Option<String> {
        match self {
            Stamp::Strftime(f) if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) => {
                Some(format!(
                    "log_timestamp_format '{f}' is not a valid strftime format; log lines will start with 'Time error'"
                ))
            }
            _ => None,
        }
    }
}

/// The message as Mosquitto would write it: warnings and errors say so when the text
/// does not already.
pub fn message_text(kind: Kind, message: &str) -> String {
    let prefix = match kind {
        Kind::Error => "Error",
        Kind::Warning => "Warning",
        _ => return message.to_owned(),
    };
    let head = message.get(..prefix.len()).unwrap_or("");
    if head.eq_ignore_ascii_case(prefix) {
        message.to_owned()
    } else {
        format!("{prefix}: {message}")
    }
}

/// One log line without its newline: `<timestamp>: <message>` (Mosquitto's format), or
/// the message alone with `log_timestamp false`.
pub fn line<Tz: TimeZone>(stamp: &Stamp, now: &DateTime<Tz>, message: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = String::with_capacity(message.len() + 24);
    match stamp {
        Stamp::None => {}
        Stamp::Epoch => {
            let _ = write!(out, "{}: ", now.timestamp());
        }
        Stamp::Strftime(format) => {
            // chrono reports an invalid format as a fmt::Error (`to_string` would panic).
            if write!(out, "{}", now.format(format)).is_err() || out.is_empty() {
                out.clear();
                out.push_str("Time error");
            }
            out.push_str(": ");
        }
    }
    out.push_str(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn at(epoch: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(epoch, 0).unwrap()
    }

    #[test]
    fn default_line_is_epoch_colon_message() {
        assert_eq!(
            line(&Stamp::Epoch, &at(1_700_000_000), "New client connected"),
            "1700000000: New client connected"
        );
    }

    #[test]
    fn no_timestamp_is_the_message_alone() {
        assert_eq!(line(&Stamp::None, &at(1), "hello"), "hello");
    }

    #[test]
    fn strftime_format_in_the_given_zone() {
        let stamp = Stamp::Strftime("%Y-%m-%dT%H:%M:%S".into());
        assert_eq!(
            line(&stamp, &at(1_700_000_000), "x"),
            "2023-11-14T22:13:20: x"
        );
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let t = at(1_700_000_000).with_timezone(&plus2);
        assert_eq!(line(&stamp, &t, "x"), "2023-11-15T00:13:20: x");
        assert_eq!(stamp.problem(), None);
    }

    #[test]
    fn bad_or_empty_strftime_format_writes_time_error() {
        let bad = Stamp::Strftime("%Q %Y".into());
        assert!(bad.problem().is_some());
        assert_eq!(line(&bad, &at(0), "m"), "Time error: m");
        assert_eq!(
            line(&Stamp::Strftime(String::new()), &at(0), "m"),
            "Time error: m"
        );
    }

    #[test]
    fn stamp_from_config() {
        assert_eq!(Stamp::from_config(true, None), Stamp::Epoch);
        assert_eq!(Stamp::from_config(false, Some("%s")), Stamp::None);
        assert_eq!(
            Stamp::from_config(true, Some("%s")),
            Stamp::Strftime("%s".into())
        );
    }

    #[test]
    fn default_types_are_error_warning_notice_information() {
        let t = Types::from_config(&[], false);
        assert_eq!(t, Types::DEFAULT);
        assert_eq!(t.classify(&Level::ERROR, "x"), Some(Kind::Error));
        assert_eq!(t.classify(&Level::WARN, "x"), Some(Kind::Warning));
        assert_eq!(t.classify(&Level::INFO, "x"), Some(Kind::Notice));
        assert_eq!(t.classify(&Level::DEBUG, "x"), None);
        assert_eq!(t.classify(&Level::DEBUG, SUBSCRIBE_TARGET), None);
        assert_eq!(t.max_level(), Some(Level::INFO));
    }

    #[test]
    fn error_only_leaves_out_connection_lines() {
        let t = Types::from_config(&[LogType::Error], false);
        assert_eq!(t.classify(&Level::ERROR, "x"), Some(Kind::Error));
        assert_eq!(t.classify(&Level::WARN, "x"), None);
        assert_eq!(t.classify(&Level::INFO, "x"), None);
        assert_eq!(t.max_level(), Some(Level::ERROR));
    }

    #[test]
    fn information_alone_enables_info_events_as_information() {
        let t = Types::from_config(&[LogType::Information], false);
        assert_eq!(t.classify(&Level::INFO, "x"), Some(Kind::Information));
        let t = Types::from_config(&[LogType::Notice], false);
        assert_eq!(t.classify(&Level::INFO, "x"), Some(Kind::Notice));
    }

    #[test]
    fn none_clears_and_all_sets_everything() {
        let t = Types::from_config(&[LogType::Error, LogType::None], false);
        assert_eq!(t.classify(&Level::ERROR, "x"), None);
        assert_eq!(t.max_level(), None);
        let t = Types::from_config(&[LogType::None, LogType::Warning], false);
        assert_eq!(t.classify(&Level::WARN, "x"), Some(Kind::Warning));
        let t = Types::from_config(&[LogType::All], false);
        assert_eq!(t.classify(&Level::DEBUG, "x"), Some(Kind::Debug));
        assert_eq!(t.classify(&Level::TRACE, "x"), None);
    }

    #[test]
    fn verbose_is_all_whatever_the_file_says() {
        let t = Types::from_config(&[LogType::None], true);
        assert_eq!(t, Types::ALL);
        assert_eq!(t.max_level(), Some(Level::DEBUG));
    }

    #[test]
    fn subscribe_targets_are_their_own_types() {
        let t = Types::from_config(&[LogType::Subscribe], false);
        assert_eq!(
            t.classify(&Level::DEBUG, SUBSCRIBE_TARGET),
            Some(Kind::Subscribe)
        );
        assert_eq!(t.classify(&Level::DEBUG, UNSUBSCRIBE_TARGET), None);
        assert_eq!(t.classify(&Level::DEBUG, "x"), None);
        assert_eq!(t.max_level(), Some(Level::DEBUG));
        let t = Types::from_config(&[LogType::Unsubscribe], false);
        assert_eq!(
            t.classify(&Level::DEBUG, UNSUBSCRIBE_TARGET),
            Some(Kind::Unsubscribe)
        );
        // debug alone does not bring the subscribe lines.
        let t = Types::from_config(&[LogType::Debug], false);
        assert_eq!(t.classify(&Level::DEBUG, SUBSCRIBE_TARGET), None);
    }

    #[test]
    fn topics_and_priorities_are_mosquittos() {
        assert_eq!(Kind::Error.topic(), Some("$SYS/broker/log/E"));
        assert_eq!(Kind::Warning.topic(), Some("$SYS/broker/log/W"));
        assert_eq!(Kind::Notice.topic(), Some("$SYS/broker/log/N"));
        assert_eq!(Kind::Information.topic(), Some("$SYS/broker/log/I"));
        assert_eq!(Kind::Subscribe.topic(), Some("$SYS/broker/log/M/subscribe"));
        assert_eq!(
            Kind::Unsubscribe.topic(),
            Some("$SYS/broker/log/M/unsubscribe")
        );
        assert_eq!(Kind::Debug.topic(), None);
        assert_eq!(Kind::Subscribe.syslog_priority(), libc::LOG_NOTICE);
        assert_eq!(Kind::Information.syslog_priority(), libc::LOG_INFO);
    }

    #[test]
    fn warnings_and_errors_say_so_once() {
        assert_eq!(message_text(Kind::Warning, "x"), "Warning: x");
        assert_eq!(message_text(Kind::Warning, "Warning: x"), "Warning: x");
        assert_eq!(message_text(Kind::Error, "error in y"), "error in y");
        assert_eq!(message_text(Kind::Error, "bad"), "Error: bad");
        assert_eq!(message_text(Kind::Notice, "hi"), "hi");
        assert_eq!(message_text(Kind::Error, "é"), "Error: é");
    }
}
