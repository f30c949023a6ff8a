//! The plain-text log line, when stderr is not a terminal (a container, a
//! pipe, a file): the very layout of tracing-subscriber's default format
//!
//! ```text
//! 2026-11-30T19:48:00.123456Z  INFO http{method=POST path=/oauth2/token request_id=…}: tessera::http::request_id: finished processing request status=200 latency_ms=0.41
//! ```
//!
//! written with plain string appends instead of its styling wrappers (which
//! format every piece through `fmt` even with colours off), and with the
//! date and time of the current second formatted once per thread. The
//! default format logs a line per request, so this is on every request's
//! path: it took the line from about 20 k to about 10 k instructions.
//! [`PlainFields`] does the same for fields, of events and of the spans a
//! request opens (`name=value`, written without painting each name and
//! `=` in no colour).

use std::cell::RefCell;
use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as described in the module documentation.
pub struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        timestamp(&mut writer, std::time::SystemTime::now())?;
        let meta = event.metadata();
        writer.write_str(level(meta.level()))?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>().filter(|fields| !fields.is_empty()) {
                    writer.write_char('{')?;
                    writer.write_str(fields.as_str())?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// Fields exactly as tracing-subscriber's `DefaultFields` writes them with
/// colours off: the message as it is, every other field `name=value` (a
/// string value quoted, `r#` taken off a name), separated by spaces.
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor { writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// `name=` (after a space unless it is the first field), or nothing
    /// for the message; false when the field is not written.
    fn name(&mut self, name: &str) -> bool {
        // What the `log` bridge already put elsewhere in the line.
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if !std::mem::replace(&mut self.first, false) {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            self.result = self.result.and_then(|()| {
                self.writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.writer.write_char('=')
            });
        }
        self.result.is_ok()
    }

    /// An integer as `Debug` writes it.
    fn integer(&mut self, field: &Field, value: impl itoa::Integer) {
        if self.name(field.name()) {
            self.result = self.writer.write_str(itoa::Buffer::new().format(value));
        }
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if self.name("message") {
                self.result = self.writer.write_str(value);
            }
        } else if value.bytes().all(|byte| (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\') {
            // Nothing for `Debug` to escape: the string in quotes.
            if self.name(field.name()) {
                self.result =
                    self.writer.write_char('"').and_then(|()| self.writer.write_str(value)).and_then(|()| self.writer.write_char('"'));
            }
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field.name()) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => self.record_debug(field, &format_args!("{value} {}.sources={}", field.name(), Sources(source))),
            None => self.record_debug(field, &format_args!("{value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field.name()) {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

/// An error's sources as the default format lists them: `[first, second]`.
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut source = Some(self.0);
        while let Some(error) = source {
            list.entry(&format_args!("{error}"));
            source = error.source();
        }
        list.finish()
    }
}

/// The level as the default format shows it: padded to five, then a space.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR ",
        Level::WARN => " WARN ",
        Level::INFO => " INFO ",
        Level::DEBUG => "DEBUG ",
        Level::TRACE => "TRACE ",
    }
}

thread_local! {
    /// The Unix second last formatted on this thread, and its text
    /// (`2026-11-30T19:48:00`).
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// `2026-11-30T19:48:00.123456Z ` (RFC 3339, UTC, microseconds, then a space).
fn timestamp(writer: &mut impl Write, now: std::time::SystemTime) -> fmt::Result {
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs() as i64;
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            text.clear();
            let time = chrono::DateTime::from_timestamp(second, 0).unwrap_or_default();
            let _ = write!(text, "{}", time.format("%Y-%m-%dT%H:%M:%S"));
            *cached = second;
        }
        writer.write_str(text)
    })?;
    let micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    writer.write_char('.')?;
    writer.write_str(std::str::from_utf8(&digits).expect("ASCII digits"))?;
    writer.write_str("Z ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// What a request logs: lines in nested spans with fields, at each level.
    fn log_a_request() {
        let span = tracing::info_span!("http", method = %"POST", path = %"/oauth2/token", request_id = "r-1");
        span.in_scope(|| {
            tracing::info!(status = 200u16, latency_ms = 0.25f64, "finished processing request");
            let grant = tracing::info_span!("grant", grant_type = "refresh_token", client = "web");
            grant.in_scope(|| tracing::warn!(security_event = "refresh_token_reuse", sid = "s-1", "reuse \"quoted\""));
            tracing::info_span!("empty").in_scope(|| tracing::error!("no fields"));
            let error = std::io::Error::other(std::io::Error::other("the disk is full"));
            let r#type = "raw";
            tracing::error!(
                error = &error as &dyn std::error::Error,
                r#type,
                flag = true,
                n = -3i64,
                u = 7u64,
                f = 1.5f64,
                "with {}",
                "args"
            );
            let plain = std::io::Error::other("plain");
            tracing::warn!(error = &plain as &dyn std::error::Error, shown = %"display", debugged = ?Some("x"), "log.target" = "skipped");
            tracing::info!(
                quoted = "a \"b\" \\ c",
                tab = "\t",
                accented = "é",
                empty = "",
                big = u64::MAX,
                small = i64::MIN,
                no = false,
                ""
            );
        });
        tracing::debug!(answer = 42, "outside any span");
    }

    /// The lines `format` writes for [`log_a_request`] with `fields`,
    /// timestamps cut off.
    fn lines<F, N>(format: F, fields: N) -> Vec<String>
    where
        F: FormatEvent<tracing_subscriber::Registry, N> + Send + Sync + 'static,
        N: for<'writer> FormatFields<'writer> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(captured.clone()).fmt_fields(fields).event_format(format);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, log_a_request);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| line.split_once(' ').expect("a timestamp, then the rest").1.to_string()).collect()
    }

    #[test]
    fn lines_read_exactly_as_the_default_format_writes_them() {
        let default = lines(tracing_subscriber::fmt::format().with_ansi(false), tracing_subscriber::fmt::format::DefaultFields::new());
        assert_eq!(default.len(), 7, "{default:#?}");
        assert_eq!(lines(PlainLine, PlainFields), default);
        assert_eq!(
            default[0],
            " INFO http{method=POST path=/oauth2/token request_id=\"r-1\"}: tessera::telemetry::line::tests: finished processing request status=200 latency_ms=0.25"
        );
    }

    #[test]
    fn the_timestamp_is_rfc_3339_utc_with_microseconds() {
        let mut text = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_796_068_080_000_042);
        timestamp(&mut text, at).unwrap();
        assert_eq!(text, "2026-11-30T19:48:00.000042Z ");
        // The same second again comes from the cache; the next one does not.
        text.clear();
        timestamp(&mut text, at + Duration::from_micros(999_000)).unwrap();
        timestamp(&mut text, at + Duration::from_secs(1)).unwrap();
        assert_eq!(text, "2026-11-30T19:48:00.999042Z 2026-11-30T19:48:01.000042Z ");
        let default = tracing_subscriber::fmt::time::SystemTime;
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::FormatTime::format_time(&default, &mut Writer::new(&mut theirs)).unwrap();
        let mut ours = String::new();
        timestamp(&mut ours, std::time::SystemTime::now()).unwrap();
        assert_eq!(theirs.len() + 1, ours.len(), "{theirs} / {ours}");
        assert_eq!(theirs[..16], ours[..16], "same minute (unless it turned between the calls)");
    }
}
