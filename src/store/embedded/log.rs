//! The commit log (`<store>-wal`): what makes a batch durable.
//!
//! A durable redb commit flushes twice and rewrites the B-tree's dirty
//! pages with their checksums, which was most of the writer's CPU. So a
//! batch is made durable by one append to this log and one `fdatasync`,
//! and then committed to redb without a flush (`Durability::None`: readers
//! see it at once; the file catches up at the next checkpoint). Only then
//! is any caller answered.
//!
//! A checkpoint is a durable redb commit that also starts a new
//! *generation* (kept in the `meta` table), which makes every frame in the
//! log stale at once; the next frame is written at the start of the file.
//! The writer checkpoints when the log is full, a few seconds after the
//! first frame since the last checkpoint, and when it stops. On open, the
//! frames of the current generation are applied again and a checkpoint
//! follows: a frame holds the puts and removes its batch made (not the
//! operations), so applying one again changes nothing.
//!
//! The file is filled with zeros when it is created, so an append never
//! grows it: `fdatasync` flushes the data blocks only, not the file's size
//! or extents, and a full disk cannot refuse an append.
//!
//! On disk, a frame is `length u32 | crc32 u32 | generation u64 | payload`
//! (little endian; the CRC covers the generation and the payload). Reading
//! stops at the first frame that is torn, corrupt or of another generation.
//! The payload is a sequence of effects: a tag byte (the table, shifted
//! left by one, with the low bit set for a remove), the key (a `u64` for
//! revocations, else a length-prefixed string), and for a put the value (a
//! `u64` for `meta`, else length-prefixed bytes).

use crate::store::StoreError;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The log's size: about 15,000 refreshes between checkpoints. (16 MiB,
/// a checkpoint every 65,000, read the same CPU in full runs of the floor
/// bench and takes longer to replay after a crash: see README.)
pub(super) const CAPACITY: u64 = 4 << 20;

const HEADER: usize = 16;

/// The tables a frame can touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Revocations = 0,
    Consumed = 1,
    Sessions = 2,
    Codes = 3,
    Meta = 4,
}

impl Table {
    fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag >> 1 {
            0 => Self::Revocations,
            1 => Self::Consumed,
            2 => Self::Sessions,
            3 => Self::Codes,
            4 => Self::Meta,
            _ => return None,
        })
    }
}

/// A key as stored: revocations are numbered, everything else is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key<'a> {
    Seq(u64),
    Name(&'a str),
}

/// A value as stored: `meta` holds numbers, everything else bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Number(u64),
    Bytes(&'a [u8]),
}

/// One put or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect<'a> {
    Put(Table, Key<'a>, Value<'a>),
    Remove(Table, Key<'a>),
}

/// The effects of one batch, encoded as they are being made; the frame
/// header is reserved in front so an append is one write.
pub(super) struct Frame {
    bytes: Vec<u8>,
}

impl Default for Frame {
    fn default() -> Self {
        Self { bytes: vec![0; HEADER] }
    }
}

impl Frame {
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.len() == HEADER
    }

    pub(super) fn put(&mut self, table: Table, key: Key<'_>, value: Value<'_>) {
        self.bytes.push((table as u8) << 1);
        self.key(key);
        match value {
            Value::Number(n) => self.bytes.extend_from_slice(&n.to_le_bytes()),
            Value::Bytes(b) => self.bytes_field(b),
        }
    }

    pub(super) fn remove(&mut self, table: Table, key: Key<'_>) {
        self.bytes.push(((table as u8) << 1) | 1);
        self.key(key);
    }

    fn key(&mut self, key: Key<'_>) {
        match key {
            Key::Seq(n) => self.bytes.extend_from_slice(&n.to_le_bytes()),
            Key::Name(name) => self.bytes_field(name.as_bytes()),
        }
    }

    fn bytes_field(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(bytes);
    }

    /// The frame as written: the header filled in for `generation`.
    fn sealed(&mut self, generation: u64) -> &[u8] {
        let length = (self.bytes.len() - HEADER) as u32;
        self.bytes[8..16].copy_from_slice(&generation.to_le_bytes());
        let crc = crc32fast::hash(&self.bytes[8..]);
        self.bytes[0..4].copy_from_slice(&length.to_le_bytes());
        self.bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        &self.bytes
    }
}

/// The effects in a frame's payload, in order.
pub(super) fn effects(payload: &[u8]) -> impl Iterator<Item = Result<Effect<'_>, StoreError>> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        Some(next_effect(&mut rest))
    })
}

fn next_effect<'a>(rest: &mut &'a [u8]) -> Result<Effect<'a>, StoreError> {
    let corrupt = || StoreError("the commit log holds a frame that cannot be read, although its checksum matches".into());
    let take = |rest: &mut &'a [u8], n: usize| -> Result<&'a [u8], StoreError> {
        if rest.len() < n {
            return Err(corrupt());
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    };
    let number = |rest: &mut &'a [u8]| take(rest, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let field = |rest: &mut &'a [u8]| {
        let length = u32::from_le_bytes(take(rest, 4)?.try_into().expect("4 bytes")) as usize;
        take(rest, length)
    };
    let tag = take(rest, 1)?[0];
    let table = Table::from_tag(tag).ok_or_else(corrupt)?;
    let key = match table {
        Table::Revocations => Key::Seq(number(rest)?),
        _ => Key::Name(std::str::from_utf8(field(rest)?).map_err(|_| corrupt())?),
    };
    if tag & 1 == 1 {
        return Ok(Effect::Remove(table, key));
    }
    let value = match table {
        Table::Meta => Value::Number(number(rest)?),
        _ => Value::Bytes(field(rest)?),
    };
    Ok(Effect::Put(table, key, value))
}

/// The log next to the store at `store`.
pub(super) fn path_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_os_string();
    name.push("-wal");
    PathBuf::from(name)
}

/// The payloads of the frames of `generation` in the log at `path`, in
/// order; `None` when there is no log.
pub(super) fn read(path: &Path, generation: u64) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError(format!("reading the commit log {}: {e}", path.display()))),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| StoreError(format!("reading the commit log {}: {e}", path.display())))?;
    Ok(Some(frames(&bytes, generation).map(<[u8]>::to_vec).collect()))
}

/// The frames of `generation` at the start of `bytes`.
fn frames(bytes: &[u8], generation: u64) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let header = rest.get(..HEADER)?;
        let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let stamped = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let frame = rest.get(..HEADER.checked_add(length)?)?;
        if stamped != generation || crc32fast::hash(&frame[8..]) != crc {
            return None;
        }
        rest = &rest[frame.len()..];
        Some(&frame[HEADER..])
    })
}

/// The open log: where the next frame goes, and the generation it carries.
pub(super) struct CommitLog {
    file: File,
    path: PathBuf,
    generation: u64,
    end: u64,
}

impl CommitLog {
    /// Open the log at `path` for `generation`, which no frame in it
    /// carries yet; create it, full of zeros, if it is missing or short.
    pub(super) fn open(path: &Path, generation: u64) -> Result<Self, StoreError> {
        let failed = |e: std::io::Error| StoreError(format!("preparing the commit log {}: {e}", path.display()));
        let existed = path.exists();
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path).map_err(failed)?;
        let length = file.metadata().map_err(failed)?.len();
        if length < CAPACITY {
            let zeros = vec![0u8; 64 << 10];
            let mut at = length;
            while at < CAPACITY {
                let n = zeros.len().min((CAPACITY - at) as usize);
                file.write_all_at(&zeros[..n], at).map_err(failed)?;
                at += n as u64;
            }
            file.sync_all().map_err(failed)?;
        }
        if !existed && let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(failed)?;
        }
        Ok(Self { file, path: path.to_path_buf(), generation, end: 0 })
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// True when frames were appended since the last checkpoint.
    pub(super) fn pending(&self) -> bool {
        self.end > 0
    }

    /// True when `frame` fits in what is left of the log.
    pub(super) fn fits(&self, frame: &Frame) -> bool {
        self.end + frame.bytes.len() as u64 <= CAPACITY
    }

    /// Write `frame` and wait until it is on disk.
    pub(super) fn append(&mut self, frame: &mut Frame) -> Result<(), StoreError> {
        let bytes = frame.sealed(self.generation);
        let written = self.file.write_all_at(bytes, self.end).and_then(|()| self.file.sync_data());
        written.map_err(|e| StoreError(format!("writing the commit log {}: {e}", self.path.display())))?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// A checkpoint made `generation` current: start again at the front.
    pub(super) fn restart(&mut self, generation: u64) {
        self.generation = generation;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Frame {
        let mut frame = Frame::default();
        frame.put(Table::Consumed, Key::Name(&format!("jti-{n}")), Value::Bytes(b"{\"child\":1}"));
        frame.put(Table::Revocations, Key::Seq(n), Value::Bytes(b"entry"));
        frame.put(Table::Meta, Key::Name("next_seq"), Value::Number(n + 1));
        frame.remove(Table::Sessions, Key::Name("alice\u{0}s1"));
        frame.remove(Table::Revocations, Key::Seq(7));
        frame
    }

    #[test]
    fn effects_read_back_as_written() {
        let mut log_frame = sample(3);
        let sealed = log_frame.sealed(9).to_vec();
        let payloads: Vec<&[u8]> = frames(&sealed, 9).collect();
        assert_eq!(payloads.len(), 1);
        let read: Vec<Effect> = effects(payloads[0]).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            read,
            [
                Effect::Put(Table::Consumed, Key::Name("jti-3"), Value::Bytes(b"{\"child\":1}")),
                Effect::Put(Table::Revocations, Key::Seq(3), Value::Bytes(b"entry")),
                Effect::Put(Table::Meta, Key::Name("next_seq"), Value::Number(4)),
                Effect::Remove(Table::Sessions, Key::Name("alice\u{0}s1")),
                Effect::Remove(Table::Revocations, Key::Seq(7)),
            ]
        );
    }

    #[test]
    fn reading_stops_at_a_torn_corrupt_or_stale_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("tessera.redb"));
        let mut log = CommitLog::open(&path, 5).unwrap();
        for n in 0..3 {
            log.append(&mut sample(n)).unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), CAPACITY, "appends never grow the file");
        assert_eq!(read(&path, 5).unwrap().unwrap().len(), 3);
        assert_eq!(read(&path, 4).unwrap().unwrap().len(), 0, "frames of another generation are stale");

        // After a checkpoint, the old frames behind the new ones are stale.
        log.restart(6);
        log.append(&mut sample(10)).unwrap();
        let live = read(&path, 6).unwrap().unwrap();
        assert_eq!(live.len(), 1);
        assert!(effects(&live[0]).any(|e| e.unwrap() == Effect::Put(Table::Revocations, Key::Seq(10), Value::Bytes(b"entry"))));

        // A flipped byte in the second frame: only the first is read.
        log.append(&mut sample(11)).unwrap();
        log.append(&mut sample(12)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let first = HEADER + u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
        bytes[first + HEADER + 3] ^= 0x40;
        assert_eq!(frames(&bytes, 6).count(), 1, "a corrupt frame ends the log");

        // A torn last frame (its tail never reached the disk).
        let bytes = std::fs::read(&path).unwrap();
        let two = frames(&bytes, 6).take(2).map(|f| f.len() + HEADER).sum::<usize>();
        let mut torn = bytes.clone();
        torn[two + HEADER + 5..].fill(0);
        assert_eq!(frames(&torn, 6).count(), 2, "a torn frame ends the log");
        assert_eq!(frames(&bytes[..two + 10], 6).count(), 2, "so does one cut short");
        assert!(read(&dir.path().join("missing-wal"), 6).unwrap().is_none());
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_until_the_log_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CommitLog::open(&path_for(&dir.path().join("s.redb")), 1).unwrap();
        let mut big = Frame::default();
        big.put(Table::Codes, Key::Name("c"), Value::Bytes(&vec![1u8; (CAPACITY / 2) as usize]));
        assert!(log.fits(&big));
        log.append(&mut big).unwrap();
        assert!(!log.fits(&big), "a second half-log frame does not fit");
        log.restart(2);
        assert!(log.fits(&big) && !log.pending());
    }
}
