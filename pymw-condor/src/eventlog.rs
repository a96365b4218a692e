//! Incremental reader for HTCondor job event logs.
//!
//! A job event log (the submit command `log = FILE`) is the cheapest and most
//! reliable way to follow jobs: the schedd and shadow append one event per
//! state change, and nothing has to be queried. HTCondor writes it in one of
//! two formats this module reads:
//!
//! - **text** (the default): each event is a header line
//!   `NNN (CCC.PPP.SSS) YYYY-MM-DD HH:MM:SS text`, body lines, and a line that
//!   is exactly `...`;
//! - **JSON** (job attribute `+UserLogUseXML = 2`): pretty-printed objects
//!   written back to back, with no array around them and nothing between them.
//!
//! [`EventLogReader`] takes bytes as they arrive and returns the events that
//! are complete; a partial event (the writer may be in the middle of one) is
//! kept until the rest arrives. [`EventLogFollower`] wraps a reader around a
//! file and reads what was appended since the last poll.
//!
//! Every event carries the byte offset where it starts in the log
//! ([`JobEvent::offset`]). Offsets identify events exactly: a master that
//! restarts and reads the log again from offset 0 can drop every event whose
//! offset it has already handled, or resume at a stored
//! [`EventLogFollower::offset`] and read nothing twice.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Largest event the reader buffers before giving up on it.
///
/// Real events are a few hundred bytes to a few kilobytes; anything larger
/// means the bytes are not an event log, and the reader skips ahead instead of
/// buffering without bound.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Most bytes one [`EventLogFollower::poll`] reads; the rest waits for the
/// next poll, so memory stays bounded on a huge log.
const MAX_READ_PER_POLL: u64 = 8 << 20;

/// The two event log formats the reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventLogFormat {
    /// The default, human-readable format (events end with a `...` line).
    Text,
    /// Back-to-back JSON objects, selected per job with `+UserLogUseXML = 2`.
    Json,
}

impl EventLogFormat {
    /// Detect the format from the start of a log: the first non-whitespace
    /// byte is `{` for JSON and a digit (the event number) for text.
    ///
    /// Returns `Ok(None)` while `bytes` holds only whitespace, and an error for
    /// anything else (an XML log starts with `<`).
    pub fn detect(bytes: &[u8]) -> Result<Option<Self>, EventLogError> {
        match bytes.iter().position(|b| !b.is_ascii_whitespace()) {
            None => Ok(None),
            Some(i) => Self::from_first_byte(bytes[i], i as u64).map(Some),
        }
    }

    fn from_first_byte(byte: u8, offset: u64) -> Result<Self, EventLogError> {
        match byte {
            b'{' => Ok(Self::Json),
            b'0'..=b'9' => Ok(Self::Text),
            _ => Err(EventLogError::UnknownFormat { offset, byte }),
        }
    }
}

/// When an event happened, as written in the log: **local time of the access
/// point, without a time zone**.
///
/// Text logs have whole seconds; JSON logs add milliseconds. Logs written with
/// the pre-ISO date format (`MM/DD HH:MM:SS`) have no year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTime {
    /// Year, absent in the old `MM/DD` header format.
    pub year: Option<u16>,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 60.
    pub second: u8,
    /// Milliseconds, present in JSON logs only.
    pub millisecond: Option<u16>,
}

impl fmt::Display for EventTime {
    /// ISO 8601 without a zone: `2026-11-24T01:02:14.525` (`--11-24T…` when
    /// the year is unknown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.year {
            Some(year) => write!(f, "{year:04}-")?,
            None => f.write_str("--")?,
        }
        write!(
            f,
            "{:02}-{:02}T{:02}:{:02}:{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )?;
        if let Some(ms) = self.millisecond {
            write!(f, ".{ms:03}")?;
        }
        Ok(())
    }
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobExit {
    /// The process exited with this code (`(1) Normal termination (return value N)`).
    Normal {
        /// The exit code; non-zero is still a normal termination.
        exit_code: i64,
    },
    /// The process was killed by this signal (`(0) Abnormal termination (signal N)`).
    Signal {
        /// The signal number, such as 11 for SIGSEGV.
        signal: i64,
    },
}

/// Which step of a file transfer a `040` event reports.
///
/// These events say nothing about success: "Finished transferring output
/// files" is logged even when the transfer failed and the job is then held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileTransferStage {
    /// Waiting in the transfer queue for input files.
    InputQueued,
    /// Input transfer started (the event names the destination host).
    InputStarted,
    /// Input transfer finished.
    InputFinished,
    /// Waiting in the transfer queue for output files.
    OutputQueued,
    /// Output transfer started.
    OutputStarted,
    /// Output transfer finished.
    OutputFinished,
}

impl FileTransferStage {
    fn from_json_type(code: u64) -> Option<Self> {
        Some(match code {
            1 => Self::InputQueued,
            2 => Self::InputStarted,
            3 => Self::InputFinished,
            4 => Self::OutputQueued,
            5 => Self::OutputStarted,
            6 => Self::OutputFinished,
            _ => return None,
        })
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "Entered queue to transfer input files" => Self::InputQueued,
            "Started transferring input files" => Self::InputStarted,
            "Finished transferring input files" => Self::InputFinished,
            "Entered queue to transfer output files" => Self::OutputQueued,
            "Started transferring output files" => Self::OutputStarted,
            "Finished transferring output files" => Self::OutputFinished,
            _ => return None,
        })
    }
}

/// One event from a job event log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobEvent {
    /// Cluster id of the job.
    pub cluster: u64,
    /// Process id of the job within its cluster.
    pub proc: u64,
    /// When the event was written (local time, no zone).
    pub time: EventTime,
    /// What happened.
    pub kind: JobEventKind,
    /// Byte offset of the event's first byte in the log. Unique per event in
    /// one log file, so it identifies events when a log is read again.
    pub offset: u64,
}

/// What an event reports. The event number is [`JobEventKind::code`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobEventKind {
    /// `000`: the job was queued.
    Submitted {
        /// The expanded `submit_event_notes` (pymw puts the task id there).
        notes: Option<String>,
    },
    /// `001`: the job started running.
    Executing {
        /// The execute host, as a sinful string (`<127.0.0.1:9618?...>`).
        host: String,
        /// The slot it runs in (`slot1_1@host`), when the log names it.
        slot_name: Option<String>,
    },
    /// `004` without requeue: the job stopped running and went back to idle
    /// (vacate, preemption, `condor_rm` or `condor_hold` of a running job, a
    /// transfer failure). More events follow: a rerun, `012` or `009`.
    Evicted {
        /// Why, when the log says it (absent for `condor_rm`, vacate, hold).
        reason: Option<String>,
    },
    /// `004` "Job terminated and was requeued": the job exited but its
    /// `OnExitRemove` policy (such as `max_retries`) sent it back to the queue
    /// for another run.
    Requeued {
        /// How the run that was requeued ended.
        exit: Option<JobExit>,
        /// The policy message, such as "The job attribute OnExitRemove
        /// expression '…' evaluated to FALSE".
        reason: Option<String>,
    },
    /// `005`: the job ended and leaves the queue as Completed, whatever its
    /// exit code.
    Terminated {
        /// Exit code or signal of the last run.
        exit: JobExit,
        /// Bytes the last run sent back (output transfer).
        bytes_sent: Option<u64>,
        /// Bytes the last run received (input transfer).
        bytes_received: Option<u64>,
    },
    /// `006`: new memory figures for a running job.
    ImageSize {
        /// Image size in KiB.
        image_size_kb: u64,
        /// Memory usage in MB, when given.
        memory_usage_mb: Option<u64>,
        /// Resident set size in KiB, when given.
        resident_set_size_kb: Option<u64>,
    },
    /// `009`: the job was removed (`condor_rm`, `periodic_remove`, ...).
    Aborted {
        /// Why, such as "via condor_rm (by user tester)".
        reason: Option<String>,
    },
    /// `012`: the job was put on hold and will not run until released.
    Held {
        /// The hold reason (empty if the log gives none).
        reason: String,
        /// `HoldReasonCode`, such as 13 for an input transfer failure. Taken
        /// from this event, never from an earlier `021`.
        code: Option<i64>,
        /// `HoldReasonSubCode`, often an errno or the policy's subcode.
        subcode: Option<i64>,
    },
    /// `013`: a held job was released and is idle again.
    Released {
        /// Why, such as "via condor_release (by user tester)".
        reason: Option<String>,
    },
    /// `021`: a daemon reported an error for the job (usually followed by an
    /// eviction and a hold, whose code may differ).
    RemoteError {
        /// The daemon that reported it, such as `starter`.
        daemon: String,
        /// Where it happened (a slot name such as `slot1_1@host`).
        host: String,
        /// The error text.
        message: String,
        /// The hold code the daemon suggested.
        code: Option<i64>,
        /// The hold subcode the daemon suggested.
        subcode: Option<i64>,
    },
    /// `040`: a file transfer step.
    FileTransfer {
        /// Which step.
        stage: FileTransferStage,
        /// The other end, given for [`FileTransferStage::InputStarted`].
        host: Option<String>,
    },
    /// Any other event, or a `040` whose step is not known.
    Other {
        /// The event number.
        code: u32,
    },
}

impl JobEventKind {
    /// The event number (`0` for submitted, `5` for terminated, ...).
    pub fn code(&self) -> u32 {
        match self {
            Self::Submitted { .. } => 0,
            Self::Executing { .. } => 1,
            Self::Evicted { .. } | Self::Requeued { .. } => 4,
            Self::Terminated { .. } => 5,
            Self::ImageSize { .. } => 6,
            Self::Aborted { .. } => 9,
            Self::Held { .. } => 12,
            Self::Released { .. } => 13,
            Self::RemoteError { .. } => 21,
            Self::FileTransfer { .. } => 40,
            Self::Other { code } => *code,
        }
    }
}

/// What can go wrong reading an event log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The log starts with something that is neither JSON nor text.
    #[error(
        "not a readable job event log: byte {byte:#04x} at offset {offset} starts neither a \
         text event (a digit) nor a JSON event ('{{'); XML logs (log_xml, UserLogUseXML = 1) \
         are not supported, use the default text format or +UserLogUseXML = 2"
    )]
    UnknownFormat {
        /// Offset of the offending byte.
        offset: u64,
        /// The offending byte.
        byte: u8,
    },
    /// One event could not be understood; the reader skipped it.
    #[error("malformed job event at offset {offset}: {message}")]
    Malformed {
        /// Offset where the event starts.
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// An event grew past [`MAX_EVENT_BYTES`] without ending; the reader
    /// skipped ahead to the next event.
    #[error("job event at offset {offset} is longer than {limit} bytes; skipped")]
    TooLarge {
        /// Offset where the event starts.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// The log ended in the middle of an event.
    #[error("job event log ends inside an event starting at offset {offset} ({len} bytes)")]
    Incomplete {
        /// Offset where the partial event starts.
        offset: u64,
        /// How many bytes of it there are.
        len: usize,
    },
    /// The followed file is now shorter than what was already read: it was
    /// replaced or truncated, and offsets no longer mean the same events.
    #[error(
        "job event log {path} is {len} bytes long but {offset} bytes were already read; \
         it was truncated or replaced"
    )]
    Truncated {
        /// The log file.
        path: PathBuf,
        /// How far it had been read.
        offset: u64,
        /// Its length now.
        len: u64,
    },
    /// Reading the file failed.
    #[error("reading job event log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Turns the bytes of a job event log into [`JobEvent`]s, as they arrive.
///
/// Bytes can be fed in pieces of any size: an event split across calls is
/// returned once its last byte has arrived. If an event cannot be parsed,
/// [`feed`](Self::feed) returns the error, skips that event, and keeps the
/// events it had already parsed for the next call: call `feed` again (with
/// more bytes, or an empty slice) and nothing else is lost.
#[derive(Debug)]
pub struct EventLogReader {
    format: Option<EventLogFormat>,
    /// Bytes not yet consumed; `buf[0]` is at stream offset `base`.
    buf: Vec<u8>,
    base: u64,
    /// Text: where the next unscanned line starts. JSON: buffer length at the
    /// last attempt that found the event incomplete.
    scanned: usize,
    /// Skipping a bad event: up to the next `...` line (text) or the next
    /// `{` at the start of a line (JSON).
    skipping: bool,
    /// Events parsed before an error, handed out by the next call.
    ready: Vec<JobEvent>,
}

impl EventLogReader {
    /// A reader for a log of a known format.
    pub fn new(format: EventLogFormat) -> Self {
        Self::with_format(Some(format))
    }

    /// A reader that detects the format from the first non-whitespace byte
    /// (see [`EventLogFormat::detect`]).
    pub fn detecting() -> Self {
        Self::with_format(None)
    }

    fn with_format(format: Option<EventLogFormat>) -> Self {
        Self {
            format,
            buf: Vec::new(),
            base: 0,
            scanned: 0,
            skipping: false,
            ready: Vec::new(),
        }
    }

    /// Start counting offsets at `offset` instead of 0, for a reader that is
    /// fed a log from the middle (which must be an event boundary).
    pub fn starting_at(mut self, offset: u64) -> Self {
        self.base = offset;
        self
    }

    /// The format, once known.
    pub fn format(&self) -> Option<EventLogFormat> {
        self.format
    }

    /// Offset just past the last event returned or skipped: where reading
    /// could resume without missing or repeating an event.
    pub fn offset(&self) -> u64 {
        self.base
    }

    /// How many bytes are buffered as the start of an event not yet complete.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Append `bytes` and return every event completed by them, in log order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<JobEvent>, EventLogError> {
        self.buf.extend_from_slice(bytes);
        let mut events = std::mem::take(&mut self.ready);
        match self.drain(&mut events) {
            Ok(()) => Ok(events),
            Err(err) => {
                self.ready = events;
                Err(err)
            }
        }
    }

    /// Declare the end of the log: returns events still held back by an
    /// earlier error, or [`EventLogError::Incomplete`] if a partial event is
    /// buffered.
    pub fn finish(&mut self) -> Result<Vec<JobEvent>, EventLogError> {
        let events = self.feed(&[])?;
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace());
        match start {
            Some(i) if !self.skipping => {
                self.ready = events;
                Err(EventLogError::Incomplete {
                    offset: self.base + i as u64,
                    len: self.buf.len() - i,
                })
            }
            _ => Ok(events),
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.base += n as u64;
        self.scanned = 0;
    }

    fn drain(&mut self, out: &mut Vec<JobEvent>) -> Result<(), EventLogError> {
        loop {
            if self.skipping {
                if !self.skip_bad_event() {
                    return Ok(());
                }
                continue;
            }
            let leading = self
                .buf
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            if leading > 0 {
                self.consume(leading);
            }
            let Some(&first) = self.buf.first() else {
                return Ok(());
            };
            let format = match self.format {
                Some(format) => format,
                None => match EventLogFormat::from_first_byte(first, self.base) {
                    Ok(format) => {
                        self.format = Some(format);
                        format
                    }
                    Err(err) => {
                        let len = self.buf.len();
                        self.consume(len);
                        return Err(err);
                    }
                },
            };
            let next = match format {
                EventLogFormat::Text => self.next_text_event(),
                EventLogFormat::Json => self.next_json_event(),
            };
            match next {
                None => return Ok(()),
                Some(Ok(event)) => out.push(event),
                Some(Err(err)) => return Err(err),
            }
        }
    }

    /// Skip input up to the start of the next event; `false` if more bytes
    /// are needed to find it.
    fn skip_bad_event(&mut self) -> bool {
        let format = self.format.unwrap_or(EventLogFormat::Text);
        let found = match format {
            EventLogFormat::Text => find_text_terminator(&self.buf, 0).map(|(_, end)| end),
            // A top-level JSON object starts with '{' at the start of a line;
            // nested ones are indented.
            EventLogFormat::Json => find(&self.buf, b"\n{").map(|i| i + 1),
        };
        match found {
            Some(end) => {
                self.consume(end);
                self.skipping = false;
                true
            }
            None => {
                let n = match format {
                    // Keep the unfinished last line: it may become `...`
                    // (unless it is absurdly long, to bound memory).
                    EventLogFormat::Text if self.buf.len() <= MAX_EVENT_BYTES => self
                        .buf
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1),
                    EventLogFormat::Text => self.buf.len(),
                    // Keep a trailing newline: the next byte may be the '{'.
                    EventLogFormat::Json => {
                        self.buf.len() - usize::from(self.buf.last() == Some(&b'\n'))
                    }
                };
                self.consume(n);
                false
            }
        }
    }

    fn too_large(&mut self) -> Option<Result<JobEvent, EventLogError>> {
        if self.buf.len() <= MAX_EVENT_BYTES {
            return None;
        }
        let offset = self.base;
        // Drop the first byte so that skipping cannot find this event's own
        // start again, then skip to the next event.
        self.consume(1);
        self.skipping = true;
        Some(Err(EventLogError::TooLarge {
            offset,
            limit: MAX_EVENT_BYTES,
        }))
    }

    fn next_text_event(&mut self) -> Option<Result<JobEvent, EventLogError>> {
        match find_text_terminator(&self.buf, self.scanned) {
            Some((body_end, end)) => {
                let offset = self.base;
                let text = String::from_utf8_lossy(&self.buf[..body_end]).into_owned();
                self.consume(end);
                Some(parse_text_event(&text, offset))
            }
            None => {
                // Resume scanning at the start of the last, unfinished line.
                self.scanned = self
                    .buf
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                self.too_large()
            }
        }
    }

    fn next_json_event(&mut self) -> Option<Result<JobEvent, EventLogError>> {
        // An object can only be complete once a '}' arrived since the last try.
        if !self.buf[self.scanned..].contains(&b'}') {
            self.scanned = self.buf.len();
            return self.too_large();
        }
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        let offset = self.base;
        match stream.next() {
            None => None,
            Some(Ok(value)) => {
                let end = stream.byte_offset();
                self.consume(end);
                Some(parse_json_event(value, offset))
            }
            Some(Err(err)) if err.is_eof() => {
                self.scanned = self.buf.len();
                self.too_large()
            }
            Some(Err(err)) => {
                self.consume(1);
                self.skipping = true;
                Some(Err(EventLogError::Malformed {
                    offset,
                    message: format!("invalid JSON: {err}"),
                }))
            }
        }
    }
}

/// Find the next line that is exactly `...`, scanning lines from `from`
/// (a line start). Returns where that line starts (the end of the event's own
/// text) and where the line after it starts.
fn find_text_terminator(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut line_start = from;
    while let Some(nl) = buf[line_start..].iter().position(|&b| b == b'\n') {
        let line = &buf[line_start..line_start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let next = line_start + nl + 1;
        if line == b"..." {
            return Some((line_start, next));
        }
        line_start = next;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn malformed(offset: u64, message: impl Into<String>) -> EventLogError {
    EventLogError::Malformed {
        offset,
        message: message.into(),
    }
}

// ---------------------------------------------------------------- text format

struct TextHeader<'a> {
    code: u32,
    cluster: u64,
    proc: u64,
    time: EventTime,
    /// The text after the time: "Job submitted from host: <...>".
    rest: &'a str,
}

fn parse_text_header(line: &str) -> Option<TextHeader<'_>> {
    let (code, rest) = line.split_once(' ')?;
    let code = parse_digits(code)?;
    let rest = rest.strip_prefix('(')?;
    let (id, rest) = rest.split_once(')')?;
    let mut id = id.split('.');
    let cluster = parse_digits(id.next()?)?;
    let proc = parse_digits(id.next()?)?;
    let _subproc: u64 = parse_digits(id.next()?)?;
    if id.next().is_some() {
        return None;
    }
    let rest = rest.strip_prefix(' ')?;
    let (date, rest) = rest.split_once(' ')?;
    let (time, rest) = match rest.split_once(' ') {
        Some((time, rest)) => (time, rest),
        None => (rest, ""),
    };
    let time = parse_header_time(date, time)?;
    Some(TextHeader {
        code,
        cluster,
        proc,
        time,
        rest,
    })
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `2026-11-24` or the old `11/24`, then `01:00:19` with optional `.mmm`.
fn parse_header_time(date: &str, time: &str) -> Option<EventTime> {
    let (year, month, day) = if let Some((month, day)) = date.split_once('/') {
        (None, month, day)
    } else {
        let mut parts = date.split('-');
        let year = parse_fixed::<u16>(parts.next()?, 4)?;
        let month = parts.next()?;
        let day = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        (Some(year), month, day)
    };
    let mut t = parse_clock(time)?;
    t.year = year;
    t.month = parse_fixed(month, 2)?;
    t.day = parse_fixed(day, 2)?;
    valid_time(t)
}

/// `HH:MM:SS` or `HH:MM:SS.mmm`, date fields left for the caller.
fn parse_clock(time: &str) -> Option<EventTime> {
    let (hms, millisecond) = match time.split_once('.') {
        Some((hms, ms)) => (hms, Some(parse_fixed::<u16>(ms, 3)?)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let hour = parse_fixed(parts.next()?, 2)?;
    let minute = parse_fixed(parts.next()?, 2)?;
    let second = parse_fixed(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    Some(EventTime {
        year: None,
        month: 1,
        day: 1,
        hour,
        minute,
        second,
        millisecond,
    })
}

fn parse_fixed<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() != len {
        return None;
    }
    parse_digits(s)
}

fn valid_time(t: EventTime) -> Option<EventTime> {
    let ok = (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour < 24
        && t.minute < 60
        && t.second <= 60
        && t.millisecond.is_none_or(|ms| ms < 1000);
    ok.then_some(t)
}

/// `Code 13 Subcode 2`.
fn parse_code_line(line: &str) -> Option<(i64, i64)> {
    let rest = line.trim().strip_prefix("Code ")?;
    let (code, subcode) = rest.split_once(" Subcode ")?;
    Some((code.trim().parse().ok()?, subcode.trim().parse().ok()?))
}

/// `74  -  Run Bytes Sent By Job` → (74, "Run Bytes Sent By Job").
fn parse_stat_line(line: &str) -> Option<(u64, &str)> {
    let (number, label) = line.trim().split_once("  -  ")?;
    Some((parse_digits(number.trim())?, label.trim()))
}

/// `(1) Normal termination (return value 3)` or
/// `(0) Abnormal termination (signal 11)`.
fn parse_termination(line: &str) -> Option<JobExit> {
    let number_after = |marker: &str| -> Option<i64> {
        let start = line.find(marker)? + marker.len();
        let rest = &line[start..];
        rest[..rest.find(')')?].trim().parse().ok()
    };
    if let Some(exit_code) = number_after("Normal termination (return value ")
        && !line.contains("Abnormal")
    {
        return Some(JobExit::Normal { exit_code });
    }
    number_after("Abnormal termination (signal ").map(|signal| JobExit::Signal { signal })
}

/// What a body line of a `004`/`005` event is.
enum UsageLine<'a> {
    /// `(N) ...` status lines.
    Status(&'a str),
    /// `N  -  label` statistics.
    Stat(u64, &'a str),
    /// Usage lines, the resource table, blank lines, the closing sentence.
    Noise,
    /// Anything else: a reason.
    Text(&'a str),
}

fn classify_usage_line(line: &str) -> UsageLine<'_> {
    // "\t\tUsr 0 00:00:00, ..." and the table rows "\t   Cpus   :  ...".
    if line.starts_with("\t\t") || line.starts_with("\t ") {
        return UsageLine::Noise;
    }
    let t = line.trim();
    if t.is_empty()
        || t.starts_with("Partitionable Resources")
        || t.starts_with("Job terminated of its own accord")
    {
        return UsageLine::Noise;
    }
    if t.starts_with('(') {
        return UsageLine::Status(t);
    }
    if let Some((n, label)) = parse_stat_line(t) {
        return UsageLine::Stat(n, label);
    }
    UsageLine::Text(t)
}

fn first_text_line<'a>(body: &[&'a str]) -> Option<&'a str> {
    body.iter().map(|l| l.trim()).find(|l| !l.is_empty())
}

fn parse_text_event(text: &str, offset: u64) -> Result<JobEvent, EventLogError> {
    let mut lines = text.lines();
    let header_line = lines.next().unwrap_or("");
    let header = parse_text_header(header_line).ok_or_else(|| {
        malformed(
            offset,
            format!("header is not `NNN (C.P.S) DATE TIME text`: {header_line:?}"),
        )
    })?;
    let body: Vec<&str> = lines.collect();
    let rest = header.rest.trim();
    let kind = match header.code {
        0 => JobEventKind::Submitted {
            // The notes line is indented with 4 spaces, not a tab.
            notes: body
                .iter()
                .find(|l| l.starts_with("    "))
                .map(|l| l.trim().to_owned())
                .filter(|n| !n.is_empty()),
        },
        1 => JobEventKind::Executing {
            host: rest
                .strip_prefix("Job executing on host:")
                .unwrap_or(rest)
                .trim()
                .to_owned(),
            slot_name: body
                .iter()
                .find_map(|l| l.trim().strip_prefix("SlotName:"))
                .map(|s| s.trim().to_owned()),
        },
        4 => parse_text_evicted(&body),
        5 => parse_text_terminated(&body).ok_or_else(|| {
            malformed(
                offset,
                "005 event without a `Normal termination` or `Abnormal termination` line",
            )
        })?,
        6 => {
            let size = rest
                .strip_prefix("Image size of job updated:")
                .and_then(|s| parse_digits(s.trim()))
                .ok_or_else(|| {
                    malformed(offset, format!("006 event without an image size: {rest:?}"))
                })?;
            let mut memory_usage_mb = None;
            let mut resident_set_size_kb = None;
            for line in &body {
                match parse_stat_line(line) {
                    Some((n, "MemoryUsage of job (MB)")) => memory_usage_mb = Some(n),
                    Some((n, "ResidentSetSize of job (KB)")) => resident_set_size_kb = Some(n),
                    _ => {}
                }
            }
            JobEventKind::ImageSize {
                image_size_kb: size,
                memory_usage_mb,
                resident_set_size_kb,
            }
        }
        9 => JobEventKind::Aborted {
            reason: body
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("Job terminated by "))
                .map(str::to_owned),
        },
        12 => {
            let codes = body.iter().find_map(|l| parse_code_line(l));
            let reason = body
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && parse_code_line(l).is_none())
                .unwrap_or("")
                .to_owned();
            JobEventKind::Held {
                reason,
                code: codes.map(|c| c.0),
                subcode: codes.map(|c| c.1),
            }
        }
        13 => JobEventKind::Released {
            reason: first_text_line(&body).map(str::to_owned),
        },
        21 => {
            // "Error from starter on slot1_1@host:" (or "Warning from ...").
            let who = rest
                .strip_prefix("Error from ")
                .or_else(|| rest.strip_prefix("Warning from "))
                .unwrap_or(rest);
            let who = who.strip_suffix(':').unwrap_or(who);
            let (daemon, host) = who.split_once(" on ").unwrap_or((who, ""));
            let codes = body.iter().find_map(|l| parse_code_line(l));
            let message: Vec<&str> = body
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty() && parse_code_line(l).is_none())
                .collect();
            JobEventKind::RemoteError {
                daemon: daemon.trim().to_owned(),
                host: host.trim().to_owned(),
                message: message.join("\n"),
                code: codes.map(|c| c.0),
                subcode: codes.map(|c| c.1),
            }
        }
        40 => match FileTransferStage::from_text(rest) {
            Some(stage) => JobEventKind::FileTransfer {
                stage,
                host: body
                    .iter()
                    .find_map(|l| l.trim().strip_prefix("Transferring to host:"))
                    .map(|h| h.trim().to_owned()),
            },
            None => JobEventKind::Other { code: 40 },
        },
        code => JobEventKind::Other { code },
    };
    Ok(JobEvent {
        cluster: header.cluster,
        proc: header.proc,
        time: header.time,
        kind,
        offset,
    })
}

fn parse_text_evicted(body: &[&str]) -> JobEventKind {
    let mut requeued = false;
    let mut exit = None;
    let mut reason = None;
    for line in body {
        match classify_usage_line(line) {
            UsageLine::Status(t) => {
                if t.contains("Job terminated and was requeued") {
                    requeued = true;
                } else if let Some(e) = parse_termination(t) {
                    exit = Some(e);
                }
            }
            UsageLine::Text(t) => {
                reason.get_or_insert_with(|| t.to_owned());
            }
            UsageLine::Stat(..) | UsageLine::Noise => {}
        }
    }
    if requeued {
        JobEventKind::Requeued { exit, reason }
    } else {
        JobEventKind::Evicted { reason }
    }
}

fn parse_text_terminated(body: &[&str]) -> Option<JobEventKind> {
    let mut exit = None;
    let mut bytes_sent = None;
    let mut bytes_received = None;
    for line in body {
        match classify_usage_line(line) {
            UsageLine::Status(t) => {
                if let Some(e) = parse_termination(t) {
                    exit.get_or_insert(e);
                }
            }
            UsageLine::Stat(n, "Run Bytes Sent By Job") => bytes_sent = Some(n),
            UsageLine::Stat(n, "Run Bytes Received By Job") => bytes_received = Some(n),
            _ => {}
        }
    }
    Some(JobEventKind::Terminated {
        exit: exit?,
        bytes_sent,
        bytes_received,
    })
}

// ---------------------------------------------------------------- JSON format

fn parse_json_event(value: Value, offset: u64) -> Result<JobEvent, EventLogError> {
    let Value::Object(obj) = value else {
        return Err(malformed(offset, "a JSON event must be an object"));
    };
    let required = |key: &str| {
        json_u64(&obj, key).ok_or_else(|| {
            malformed(
                offset,
                format!("JSON event without a non-negative integer {key:?}"),
            )
        })
    };
    let code = u32::try_from(required("EventTypeNumber")?)
        .map_err(|_| malformed(offset, "EventTypeNumber out of range"))?;
    let cluster = required("Cluster")?;
    let proc = required("Proc")?;
    let time_text = json_str(&obj, "EventTime").unwrap_or("");
    let time = parse_json_time(time_text).ok_or_else(|| {
        malformed(
            offset,
            format!("EventTime is not `YYYY-MM-DDTHH:MM:SS[.mmm]`: {time_text:?}"),
        )
    })?;
    let string = |key: &str| json_str(&obj, key).map(str::to_owned);
    let kind = match code {
        0 => JobEventKind::Submitted {
            notes: string("LogNotes"),
        },
        1 => JobEventKind::Executing {
            host: string("ExecuteHost").unwrap_or_default(),
            slot_name: string("SlotName"),
        },
        4 => {
            if json_bool(&obj, "TerminatedAndRequeued") == Some(true) {
                JobEventKind::Requeued {
                    exit: json_exit(&obj),
                    reason: string("Reason"),
                }
            } else {
                JobEventKind::Evicted {
                    reason: string("Reason"),
                }
            }
        }
        5 => JobEventKind::Terminated {
            exit: json_exit(&obj).ok_or_else(|| {
                malformed(
                    offset,
                    "JobTerminatedEvent without ReturnValue or TerminatedBySignal",
                )
            })?,
            bytes_sent: json_u64(&obj, "SentBytes"),
            bytes_received: json_u64(&obj, "ReceivedBytes"),
        },
        6 => JobEventKind::ImageSize {
            image_size_kb: json_u64(&obj, "Size")
                .ok_or_else(|| malformed(offset, "JobImageSizeEvent without Size"))?,
            memory_usage_mb: json_u64(&obj, "MemoryUsage"),
            resident_set_size_kb: json_u64(&obj, "ResidentSetSize"),
        },
        9 => JobEventKind::Aborted {
            reason: string("Reason"),
        },
        12 => JobEventKind::Held {
            reason: string("HoldReason").unwrap_or_default(),
            code: json_i64(&obj, "HoldReasonCode"),
            subcode: json_i64(&obj, "HoldReasonSubCode"),
        },
        13 => JobEventKind::Released {
            reason: string("Reason"),
        },
        21 => JobEventKind::RemoteError {
            daemon: string("Daemon").unwrap_or_default(),
            host: string("ExecuteHost").unwrap_or_default(),
            message: string("ErrorMsg").unwrap_or_default(),
            code: json_i64(&obj, "HoldReasonCode"),
            subcode: json_i64(&obj, "HoldReasonSubCode"),
        },
        40 => match json_u64(&obj, "Type").and_then(FileTransferStage::from_json_type) {
            Some(stage) => JobEventKind::FileTransfer {
                stage,
                host: string("Host"),
            },
            None => JobEventKind::Other { code: 40 },
        },
        code => JobEventKind::Other { code },
    };
    Ok(JobEvent {
        cluster,
        proc,
        time,
        kind,
        offset,
    })
}

/// `2026-11-24T01:02:14.525`.
fn parse_json_time(text: &str) -> Option<EventTime> {
    let (date, time) = text.split_once('T')?;
    parse_header_time(date, time).filter(|t| t.year.is_some())
}

/// Exit of a terminated or requeued run: `TerminatedNormally` with
/// `ReturnValue`, or `TerminatedBySignal` (the signal number).
fn json_exit(obj: &Map<String, Value>) -> Option<JobExit> {
    match json_bool(obj, "TerminatedNormally") {
        Some(true) => json_i64(obj, "ReturnValue").map(|exit_code| JobExit::Normal { exit_code }),
        Some(false) => json_i64(obj, "TerminatedBySignal").map(|signal| JobExit::Signal { signal }),
        None => None,
    }
}

fn json_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)?.as_str()
}

fn json_bool(obj: &Map<String, Value>, key: &str) -> Option<bool> {
    obj.get(key)?.as_bool()
}

/// An integer, also accepting a float with an integral value (HTCondor
/// writes byte counts as `74.0`).
pub(crate) fn value_i64(value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    let f = value.as_f64()?;
    // The range check keeps the cast exact; `as` would saturate silently.
    (f.fract() == 0.0 && (-9.0e15..=9.0e15).contains(&f)).then_some(f as i64)
}

fn json_i64(obj: &Map<String, Value>, key: &str) -> Option<i64> {
    value_i64(obj.get(key)?)
}

fn json_u64(obj: &Map<String, Value>, key: &str) -> Option<u64> {
    let value = obj.get(key)?;
    value
        .as_u64()
        .or_else(|| u64::try_from(value_i64(value)?).ok())
}

// ------------------------------------------------------------------- follower

/// Follows a job event log file: each [`poll`](Self::poll) reads what was
/// appended since the previous one and returns the events it completes.
///
/// The file need not exist yet (HTCondor creates it when the first event is
/// written); polling a missing file returns no events. The format is detected
/// from the file's content.
#[derive(Debug)]
pub struct EventLogFollower {
    path: PathBuf,
    reader: EventLogReader,
    /// File position of the next byte to read (the reader's offset plus what
    /// it buffers).
    read_to: u64,
}

impl EventLogFollower {
    /// Follow `path` from its beginning.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::resume(path, 0)
    }

    /// Follow `path` from `offset`, a value [`offset`](Self::offset) returned
    /// earlier (for example stored by a master before it restarted).
    pub fn resume(path: impl Into<PathBuf>, offset: u64) -> Self {
        Self {
            path: path.into(),
            reader: EventLogReader::detecting().starting_at(offset),
            read_to: offset,
        }
    }

    /// The followed file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset just past the last event returned: store it to resume later
    /// with [`resume`](Self::resume) without reading any event twice.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Whether every byte the file holds now has been read (a poll reads at
    /// most a few MiB). A missing file counts as read.
    pub fn caught_up(&self) -> bool {
        std::fs::metadata(&self.path).map_or(true, |m| m.len() <= self.read_to)
    }

    /// Read what was appended since the last poll and return the events it
    /// completes. After an error, the next poll carries on past the bad event
    /// and also returns the good events read together with it.
    pub fn poll(&mut self) -> Result<Vec<JobEvent>, EventLogError> {
        let io_err = |source| EventLogError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return self.reader.feed(&[]),
            Err(err) => return Err(io_err(err)),
        };
        let len = file.metadata().map_err(io_err)?.len();
        if len < self.read_to {
            return Err(EventLogError::Truncated {
                path: self.path.clone(),
                offset: self.read_to,
                len,
            });
        }
        file.seek(SeekFrom::Start(self.read_to)).map_err(io_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_READ_PER_POLL)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        self.read_to += bytes.len() as u64;
        self.reader.feed(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBMIT: &str = "000 (013.000.000) 2026-11-24 01:00:19 Job submitted from host: <h>\n\
                          \x20   note 1\n...\n";

    #[test]
    fn detects_formats() {
        assert_eq!(EventLogFormat::detect(b"  \n").unwrap(), None);
        assert_eq!(
            EventLogFormat::detect(b"\n{").unwrap(),
            Some(EventLogFormat::Json)
        );
        assert_eq!(
            EventLogFormat::detect(b"000 (").unwrap(),
            Some(EventLogFormat::Text)
        );
        let err = EventLogFormat::detect(b" <event>").unwrap_err();
        assert!(matches!(
            err,
            EventLogError::UnknownFormat {
                offset: 1,
                byte: b'<'
            }
        ));
        assert!(err.to_string().contains("XML"), "{err}");
    }

    #[test]
    fn parses_header_times() {
        let t = parse_header_time("2026-11-24", "01:02:03").unwrap();
        assert_eq!(t.to_string(), "2026-11-24T01:02:03");
        let t = parse_header_time("11/24", "23:59:60").unwrap();
        assert_eq!(t.year, None);
        assert_eq!(t.to_string(), "--11-24T23:59:60");
        assert!(parse_header_time("2026-13-24", "01:02:03").is_none());
        assert!(parse_header_time("2026-11-24", "24:00:00").is_none());
        assert!(parse_header_time("2026-11-24", "1:00:00").is_none());
        assert!(parse_header_time("2026-11-2x", "01:00:00").is_none());
        let t = parse_json_time("2026-11-24T01:02:14.525").unwrap();
        assert_eq!(t.millisecond, Some(525));
        assert_eq!(t.to_string(), "2026-11-24T01:02:14.525");
        assert!(parse_json_time("11/24T01:02:14").is_none());
    }

    #[test]
    fn parses_termination_lines() {
        assert_eq!(
            parse_termination("(1) Normal termination (return value 3)"),
            Some(JobExit::Normal { exit_code: 3 })
        );
        assert_eq!(
            parse_termination("(0) Abnormal termination (signal 11)"),
            Some(JobExit::Signal { signal: 11 })
        );
        assert_eq!(parse_termination("(0) CPU times"), None);
        assert_eq!(
            parse_termination("(1) Normal termination (return value x)"),
            None
        );
    }

    #[test]
    fn bad_header_is_an_error_and_the_next_event_still_comes() {
        let log = format!("garbage\n...\n{SUBMIT}");
        let mut reader = EventLogReader::new(EventLogFormat::Text);
        let err = reader.feed(log.as_bytes()).unwrap_err();
        assert!(
            matches!(err, EventLogError::Malformed { offset: 0, .. }),
            "{err}"
        );
        let events = reader.feed(&[]).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].offset, 12);
        assert_eq!(
            events[0].kind,
            JobEventKind::Submitted {
                notes: Some("note 1".into())
            }
        );
    }

    #[test]
    fn events_before_an_error_are_kept() {
        let log = format!(
            "{SUBMIT}005 (013.000.000) 2026-11-24 01:00:19 Job terminated.\n\tnothing\n...\n{SUBMIT}"
        );
        let mut reader = EventLogReader::new(EventLogFormat::Text);
        let err = reader.feed(log.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("005 event without"), "{err}");
        let events = reader.feed(&[]).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events[0].offset < events[1].offset);
        assert!(reader.finish().unwrap().is_empty());
    }

    #[test]
    fn unknown_event_codes_are_other() {
        let log = "028 (013.000.000) 2026-11-24 01:00:19 Job ad information event triggered.\n\tFoo = 1\n...\n";
        let mut reader = EventLogReader::detecting();
        let events = reader.feed(log.as_bytes()).unwrap();
        assert_eq!(events[0].kind, JobEventKind::Other { code: 28 });
        assert_eq!(events[0].kind.code(), 28);
    }

    #[test]
    fn incomplete_event_is_reported_by_finish() {
        let mut reader = EventLogReader::detecting();
        assert!(reader.feed(&SUBMIT.as_bytes()[..30]).unwrap().is_empty());
        assert_eq!(reader.pending_len(), 30);
        let err = reader.finish().unwrap_err();
        assert!(matches!(
            err,
            EventLogError::Incomplete { offset: 0, len: 30 }
        ));
    }

    #[test]
    fn invalid_json_is_skipped_to_the_next_object() {
        let good = "{\n  \"Proc\": 0,\n  \"Cluster\": 7,\n  \"EventTime\": \"2026-11-24T01:02:14.525\",\n  \"EventTypeNumber\": 13\n}\n";
        let log = format!("{{\n  \"Proc\": 0,,\n}}\n{good}");
        let mut reader = EventLogReader::new(EventLogFormat::Json);
        let err = reader.feed(log.as_bytes()).unwrap_err();
        assert!(
            matches!(err, EventLogError::Malformed { offset: 0, .. }),
            "{err}"
        );
        let events = reader.feed(&[]).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].cluster, 7);
        assert_eq!(events[0].kind, JobEventKind::Released { reason: None });
        // A JSON object missing the required keys is skipped cleanly.
        let err = reader.feed(b"{\"Proc\": 1}\n").unwrap_err();
        assert!(err.to_string().contains("EventTypeNumber"), "{err}");
        assert!(reader.feed(good.as_bytes()).unwrap().len() == 1);
    }

    #[test]
    fn oversized_event_is_skipped() {
        let mut reader = EventLogReader::new(EventLogFormat::Text);
        let mut big = b"000 (001.000.000) 2026-11-24 01:00:19 x\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_EVENT_BYTES));
        let err = reader.feed(&big).unwrap_err();
        assert!(matches!(err, EventLogError::TooLarge { offset: 0, .. }));
        assert!(reader.feed(&[]).unwrap().is_empty());
        assert_eq!(reader.pending_len(), 0);
        let rest = format!("\n...\n{SUBMIT}");
        let events = reader.feed(rest.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].offset, big.len() as u64 + 5);
    }

    #[test]
    fn json_numbers_accept_integral_floats_only() {
        assert_eq!(value_i64(&serde_json::json!(74.0)), Some(74));
        assert_eq!(value_i64(&serde_json::json!(74.5)), None);
        assert_eq!(value_i64(&serde_json::json!(1e300)), None);
        assert_eq!(value_i64(&serde_json::json!("74")), None);
    }
}
