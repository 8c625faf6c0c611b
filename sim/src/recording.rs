//! Writing and reading recordings: [`Recorder`] and the streaming [`RecordingReader`].
//!
//! The reader checks every line (JSON shape, known node, time never going backwards, an identity
//! on every sighting). In strict mode the first bad line is an error carrying its line number;
//! in lenient mode bad lines are skipped and counted by reason ([`SkipCounts`]).

use crate::record::{Header, Record, FORMAT_NAME, FORMAT_VERSION};
use footfall_proto::frame::NodeId;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Write};

/// Writes records as JSON lines, the header first.
#[derive(Debug)]
pub struct Recorder<W: Write> {
    out: W,
    lines: u64,
}

impl<W: Write> Recorder<W> {
    /// Start a recording on `out` by writing `header`. Wrap files in a `BufWriter`.
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Self> {
        write_line(&mut out, &Record::Header(header.clone()))?;
        Ok(Self { out, lines: 1 })
    }

    /// Append one record. The caller keeps times non-decreasing (readers reject lines whose
    /// time goes backwards).
    pub fn write(&mut self, record: &Record) -> std::io::Result<()> {
        write_line(&mut self.out, record)?;
        self.lines += 1;
        Ok(())
    }

    /// Lines written so far, the header included.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Flush and hand back the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_line<W: Write, T: Serialize>(out: &mut W, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// How to read a recording.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Skip and count bad lines instead of failing on the first.
    pub lenient: bool,
    /// Nodes of the store; sightings from any other node are bad lines. `None` accepts any node.
    pub nodes: Option<HashSet<NodeId>>,
}

impl ReadOptions {
    /// Strict reading that checks nodes against `nodes`.
    pub fn with_nodes(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            lenient: false,
            nodes: Some(nodes.into_iter().collect()),
        }
    }

    /// The same options, lenient.
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }
}

/// Lines skipped in lenient mode (and unknown record types, skipped in both modes), by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SkipCounts {
    /// Not JSON, or not the shape of any record.
    pub malformed: u64,
    /// Sightings from a node the store does not have.
    pub unknown_node: u64,
    /// Lines whose time is earlier than an earlier line's.
    pub time_backwards: u64,
    /// Sightings without any identity field.
    pub no_identity: u64,
    /// Well-formed lines of a record type this version does not know (forward compatibility).
    pub unknown_type: u64,
}

impl SkipCounts {
    /// Every skipped line.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.unknown_node
            + self.time_backwards
            + self.no_identity
            + self.unknown_type
    }
}

/// A bad recording line, with its 1-based line number.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ReadError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    #[source]
    pub kind: ReadErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The underlying reader failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// Not JSON, or not the shape of a record.
    #[error("malformed line: {0}")]
    Malformed(String),
    /// The first line is not a recording header.
    #[error(
        "not a footfall recording: the first line must be a header with format {FORMAT_NAME:?}"
    )]
    MissingHeader,
    /// A header of a newer, incompatible version.
    #[error("unsupported recording version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
    },
    /// A sighting from a node the store does not have.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// Time went backwards.
    #[error("time goes backwards: {t} ms after {previous} ms")]
    TimeBackwards {
        /// This line's time.
        t: u64,
        /// The latest time before it.
        previous: u64,
    },
    /// A sighting without any identity field.
    #[error(
        "sighting has no identity (addr, ibeacon, altbeacon, eddystone_uid, eid or short_hash)"
    )]
    NoIdentity,
}

/// Streams records out of a recording. Iterating yields records in file order; in strict mode
/// the first bad line yields `Err` and ends the iteration.
#[derive(Debug)]
pub struct RecordingReader<R: BufRead> {
    input: R,
    options: ReadOptions,
    header: Header,
    line: u64,
    buf: String,
    last_t: u64,
    skipped: SkipCounts,
    done: bool,
}

#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

const KNOWN_TYPES: [&str; 4] = ["header", "sighting", "truth", "device"];

impl<R: BufRead> RecordingReader<R> {
    /// Read the header and get ready to stream. A missing or unsupported header is an error in
    /// both modes.
    pub fn open(input: R, options: ReadOptions) -> Result<Self, ReadError> {
        let mut reader = Self {
            input,
            options,
            header: Header::new(""),
            line: 0,
            buf: String::new(),
            last_t: 0,
            skipped: SkipCounts::default(),
            done: false,
        };
        let err = |line, kind| Err(ReadError { line, kind });
        loop {
            match reader.next_line() {
                Err(e) => return err(reader.line, ReadErrorKind::Io(e)),
                Ok(false) => return err(reader.line.max(1), ReadErrorKind::MissingHeader),
                Ok(true) if reader.buf.trim().is_empty() => continue,
                Ok(true) => break,
            }
        }
        match serde_json::from_str::<Record>(reader.buf.trim_end()) {
            Ok(Record::Header(h)) if h.format == FORMAT_NAME => {
                if h.version > FORMAT_VERSION {
                    return err(
                        reader.line,
                        ReadErrorKind::UnsupportedVersion { found: h.version },
                    );
                }
                reader.header = h;
                Ok(reader)
            }
            _ => err(reader.line, ReadErrorKind::MissingHeader),
        }
    }

    /// The recording's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Lines skipped so far, by reason.
    pub fn skipped(&self) -> SkipCounts {
        self.skipped
    }

    /// Number of the line read last (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    fn next_line(&mut self) -> std::io::Result<bool> {
        self.buf.clear();
        let n = self.input.read_line(&mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        Ok(true)
    }

    /// Check one non-blank line.
    fn check(&mut self) -> Result<Option<Record>, ReadErrorKind> {
        let text = self.buf.trim_end();
        let record = match serde_json::from_str::<Record>(text) {
            Ok(r) => r,
            Err(e) => {
                return match serde_json::from_str::<TypeOnly>(text) {
                    Ok(t) if !KNOWN_TYPES.contains(&t.kind.as_str()) => {
                        self.skipped.unknown_type += 1;
                        Ok(None)
                    }
                    _ => Err(ReadErrorKind::Malformed(e.to_string())),
                };
            }
        };
        if let Record::Header(_) = record {
            return Err(ReadErrorKind::Malformed("a second header".into()));
        }
        if let Record::Sighting(s) = &record {
            if let Some(nodes) = &self.options.nodes {
                if !nodes.contains(&s.node) {
                    return Err(ReadErrorKind::UnknownNode(s.node));
                }
            }
            if !s.has_identity() {
                return Err(ReadErrorKind::NoIdentity);
            }
        }
        if let Some(t) = record.time() {
            if t < self.last_t {
                return Err(ReadErrorKind::TimeBackwards {
                    t,
                    previous: self.last_t,
                });
            }
            self.last_t = t;
        }
        Ok(Some(record))
    }
}

impl<R: BufRead> Iterator for RecordingReader<R> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_line() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(ReadError {
                        line: self.line + 1,
                        kind: e.into(),
                    }));
                }
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Ok(true) => {}
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            match self.check() {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => continue,
                Err(kind) if self.options.lenient => {
                    let c = &mut self.skipped;
                    match kind {
                        ReadErrorKind::UnknownNode(_) => c.unknown_node += 1,
                        ReadErrorKind::TimeBackwards { .. } => c.time_backwards += 1,
                        ReadErrorKind::NoIdentity => c.no_identity += 1,
                        _ => c.malformed += 1,
                    }
                }
                Err(kind) => {
                    self.done = true;
                    return Some(Err(ReadError {
                        line: self.line,
                        kind,
                    }));
                }
            }
        }
        None
    }
}

impl fmt::Display for SkipCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} skipped (malformed {}, unknown node {}, time backwards {}, no identity {}, unknown type {})",
            self.total(),
            self.malformed,
            self.unknown_node,
            self.time_backwards,
            self.no_identity,
            self.unknown_type
        )
    }
}
