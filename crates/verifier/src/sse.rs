//! A Server-Sent Events decoder (WHATWG HTML §9.2.6), just what following
//! the revocation feed needs: events with a type and data, comments (the
//! server's keep-alives) ignored. Bytes arrive in arbitrary chunks, so a
//! line may be split anywhere, even inside a UTF-8 character.
//!
//! Lines end with LF or CRLF; a lone CR, which the format also allows, is
//! not treated as a line end (axum and every server in practice send LF).
//! The `id` field is not tracked: each revocation carries its own sequence
//! number, which is the cursor.

/// A line longer than this is not a feed event.
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Nor is an event whose `data:` lines add up to more than this (a feed
/// entry is a few hundred bytes).
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// `event:` (default `message`).
    pub event: String,
    /// The `data:` lines, joined with LF.
    pub data: String,
}

#[derive(Default)]
pub(crate) struct SseDecoder {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feed a chunk; complete events are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), &'static str> {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.field(&String::from_utf8_lossy(&line), out)?;
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_LINE_BYTES { Err("an event stream line is longer than 1 MiB") } else { Ok(()) }
    }

    fn field(&mut self, line: &str, out: &mut Vec<SseEvent>) -> Result<(), &'static str> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            if std::mem::take(&mut self.has_data) {
                let data = std::mem::take(&mut self.data);
                out.push(SseEvent { event: if event.is_empty() { "message".into() } else { event }, data });
            }
            return Ok(());
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_DATA_BYTES {
                    return Err("an event's data is longer than 1 MiB");
                }
                if std::mem::replace(&mut self.has_data, true) {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            // Comments ("" before the colon), id, retry, unknown fields.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut out).unwrap();
        }
        out
    }

    fn event(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn events_split_anywhere_decode_the_same() {
        let stream =
            "id: 1\nevent: revocation\ndata: {\"seq\":1,\"sub\":\"zoë\"}\n\n: keep-alive\n\r\nevent: ready\r\ndata: {\"cursor\":1}\r\n\r\n";
        let whole = decode(&[stream.as_bytes()]);
        assert_eq!(whole, [event("revocation", "{\"seq\":1,\"sub\":\"zoë\"}"), event("ready", "{\"cursor\":1}")]);
        for split in 0..stream.len() {
            let (a, b) = stream.as_bytes().split_at(split);
            assert_eq!(decode(&[a, b]), whole, "split at {split}");
        }
    }

    #[test]
    fn multi_line_data_joins_and_events_without_data_are_dropped() {
        assert_eq!(decode(&[b"data: a\ndata:b\n\nevent: nothing\n\ndata\n\n"]), [event("message", "a\nb"), event("message", "")]);
    }

    #[test]
    fn data_lines_adding_up_past_the_cap_are_refused() {
        let mut decoder = SseDecoder::default();
        let line = format!("data: {}\n", "a".repeat(64 * 1024));
        for _ in 1..(MAX_DATA_BYTES / (64 * 1024)) {
            decoder.push(line.as_bytes(), &mut Vec::new()).expect("up to the cap is accepted");
        }
        assert_eq!(decoder.push(line.as_bytes(), &mut Vec::new()), Err("an event's data is longer than 1 MiB"));
        // A dispatched event starts the count again.
        let mut fresh = SseDecoder::default();
        for _ in 0..32 {
            fresh.push(format!("data: {}\n\n", "b".repeat(64 * 1024)).as_bytes(), &mut Vec::new()).unwrap();
        }
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut decoder = SseDecoder::default();
        let chunk = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(decoder.push(&chunk, &mut Vec::new()).is_err());
    }
}
