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

use std::cell::RefCell;
use std::fmt::{self, Write};
use tracing::{Event, Level, Subscriber};
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
        });
        tracing::debug!(answer = 42, "outside any span");
    }

    /// The lines `format` writes for [`log_a_request`], timestamps cut off.
    fn lines<F>(format: F) -> Vec<String>
    where
        F: FormatEvent<tracing_subscriber::Registry, tracing_subscriber::fmt::format::DefaultFields> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(captured.clone()).event_format(format);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, log_a_request);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| line.split_once(' ').expect("a timestamp, then the rest").1.to_string()).collect()
    }

    #[test]
    fn lines_read_exactly_as_the_default_format_writes_them() {
        let default = lines(tracing_subscriber::fmt::format().with_ansi(false));
        assert_eq!(default.len(), 4, "{default:#?}");
        assert_eq!(lines(PlainLine), default);
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
