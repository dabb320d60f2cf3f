//! The tracing layer: every event the broker logs becomes one Mosquitto-style line,
//! filtered by the `log_type`s and written to the `log_dest`s in force.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::dest::syslog;
use super::format::{self, Stamp, Types};
use super::Shared;

thread_local! {
    /// Set while this thread publishes a log line to its `$SYS` topic: whatever is
    /// logged meanwhile is not published again (no feedback loop).
    pub(super) static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

pub(super) struct MosquittoLayer {
    pub(super) shared: Arc<Shared>,
}

impl MosquittoLayer {
    fn types(&self) -> Types {
        self.shared.types()
    }
}

impl<S: Subscriber> Layer<S> for MosquittoLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Re-asked after every change of `log_type` (rebuild_interest_cache).
        if self.types().classify(meta.level(), meta.target()).is_some() {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.types().classify(meta.level(), meta.target()).is_some()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(match self.types().max_level() {
            Some(level) => level.into(),
            None => tracing::level_filters::LevelFilter::OFF,
        })
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let Some(kind) = self.types().classify(meta.level(), meta.target()) else {
            return;
        };
        let mut text = Message::default();
        event.record(&mut text);
        let text = format::message_text(kind, &text.0);
        let settings = self.shared.settings();
        let line = match &settings.stamp {
            Stamp::Strftime(_) => format::line(&settings.stamp, &chrono::Local::now(), &text),
            stamp => format::line(stamp, &chrono::Utc::now(), &text),
        };
        settings.sinks.write_streams(&line);
        if settings.sinks.syslog {
            syslog::send(kind.syslog_priority(), &line);
        }
        if settings.sinks.topic && !PUBLISHING.with(Cell::get) {
            if let (Some(topic), Some(queue)) = (kind.topic(), self.shared.topic.get()) {
                // Published by the server's task (never under a lock the event may have
                // been logged under); a full queue drops the line rather than block.
                let _ = queue.try_send((topic, line));
            }
        }
    }
}

/// The event's message, then any other fields as ` name=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let message = format!("{value:?}");
            self.0.insert_str(0, &message);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
