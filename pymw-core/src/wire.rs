//! The wire format: envelopes that carry a task's input to a worker and its
//! output back, as files (HTCondor, BOINC, by hand) or as frames on a pipe
//! (the local backend's `serve` role).
//!
//! # File envelopes
//!
//! ```text
//! magic    8 bytes   b"PYMW\x89in\n" (input) or b"PYMW\x89out" (output)
//! version  u16 LE    FORMAT_VERSION
//! body_len u64 LE    length of body, checked against the decode limit before anything is read
//! crc32    u32 LE    CRC-32 (IEEE) of body
//! body     postcard  InputBody or OutputBody
//! ```
//!
//! The 0x89 byte (as in PNG) makes a file that went through a text-mode
//! transfer fail the magic check instead of decoding into garbage.
//!
//! Every length is checked before it is used, and postcard only ever borrows
//! or copies from the bytes already read, so malformed or hostile bytes give a
//! [`WireError`], never a panic or a large allocation. Results can come from
//! volunteers' machines: treat them as hostile input.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Magic bytes at the start of every input envelope.
pub const INPUT_MAGIC: [u8; 8] = *b"PYMW\x89in\n";
/// Magic bytes at the start of every output envelope.
pub const OUTPUT_MAGIC: [u8; 8] = *b"PYMW\x89out";
/// Version of the envelope layout this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the fixed header in front of an envelope body.
pub const HEADER_LEN: usize = 8 + 2 + 8 + 4;
/// Default upper bound of an envelope body: 1 GiB. Override with the
/// `PYMW_MAX_MESSAGE_BYTES` environment variable.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1 << 30;
/// The largest `PYMW_MAX_MESSAGE_BYTES` accepted: 4 GiB - 1, the largest
/// frame the local backend's pipe can carry (its length is a `u32`).
pub const MAX_MESSAGE_BYTES_CEILING: u64 = u32::MAX as u64;
/// The environment variable that sets the message size limit.
pub const MAX_MESSAGE_BYTES_VAR: &str = "PYMW_MAX_MESSAGE_BYTES";

/// Parses a value of `PYMW_MAX_MESSAGE_BYTES`: a size as [`parse_size`](crate::units::parse_size)
/// reads it, at least 1 KiB and at most [`MAX_MESSAGE_BYTES_CEILING`].
pub fn parse_message_limit(text: &str) -> Result<u64, String> {
    let bytes = crate::units::parse_size(text)?;
    if bytes < 1024 {
        return Err(format!(
            "{bytes} bytes is too small to carry a task's envelope: give at least 1K"
        ));
    }
    if bytes > MAX_MESSAGE_BYTES_CEILING {
        return Err(format!(
            "{bytes} bytes is over the largest supported limit, {MAX_MESSAGE_BYTES_CEILING} bytes (4 GiB - 1): \
             the local backend's pipe frames carry a 32-bit length"
        ));
    }
    Ok(bytes)
}

/// `PYMW_MAX_MESSAGE_BYTES` as set in the environment: `Ok(None)` when
/// unset, the error (with the value) when it does not parse.
fn message_limit_from_env() -> &'static Result<u64, (String, String)> {
    static LIMIT: std::sync::OnceLock<Result<u64, (String, String)>> = std::sync::OnceLock::new();
    LIMIT.get_or_init(|| match std::env::var(MAX_MESSAGE_BYTES_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_MAX_MESSAGE_BYTES),
        Err(std::env::VarError::NotUnicode(value)) => Err((
            value.to_string_lossy().into_owned(),
            "it is not valid UTF-8".to_owned(),
        )),
        Ok(value) => parse_message_limit(&value).map_err(|reason| (value, reason)),
    })
}

/// The message size limit, or why `PYMW_MAX_MESSAGE_BYTES` is wrong (its
/// value and the reason). The master calls this at start and refuses to
/// start on an error.
pub fn checked_max_message_bytes() -> Result<u64, (String, String)> {
    message_limit_from_env().clone()
}

/// The largest envelope body (or pipe frame) this process accepts. A
/// `PYMW_MAX_MESSAGE_BYTES` that does not parse stops a master at start
/// ([`checked_max_message_bytes`]); a worker role given one says so on
/// stderr once and keeps the default.
pub fn max_message_bytes() -> u64 {
    match message_limit_from_env() {
        Ok(limit) => *limit,
        Err((value, reason)) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "pymw: {MAX_MESSAGE_BYTES_VAR}={value:?} is not a size ({reason}); \
                     using the default, {DEFAULT_MAX_MESSAGE_BYTES} bytes"
                );
            });
            DEFAULT_MAX_MESSAGE_BYTES
        }
    }
}

/// An upper bound of the size of an input envelope's body (or request
/// frame) carrying `payload_len` bytes of arguments for the task `name`.
pub fn input_body_bound(name: &str, payload_len: usize) -> u64 {
    // Three varints (name length, fingerprint, payload length) of at most
    // ten bytes each, plus the request frame's head.
    (name.len() + payload_len + 30 + frame::REQUEST_HEAD) as u64
}

/// An upper bound of the size of an output envelope's body (or reply frame)
/// carrying `value_len` bytes of value for the task `name` from `host`.
pub fn output_body_bound(name: &str, host: &str, value_len: usize) -> u64 {
    // Varints (name, fingerprint, outcome tag, value length, three stats,
    // host length, option tag), plus the reply frame's head.
    (name.len() + host.len() + value_len + 100 + frame::REPLY_HEAD) as u64
}

/// Encodes a task's arguments or value as an envelope payload (postcard).
///
/// # Panics
///
/// If `value`'s `Serialize` fails (see [`try_encode_payload`]): use this
/// only for types known to encode (plain data). The master uses
/// [`try_encode_payload`].
pub fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match try_encode_payload(value) {
        Ok(bytes) => bytes,
        Err(message) => panic!("{message}"),
    }
}

/// Encodes a value as an envelope payload (postcard), or says, in words a
/// user can act on, why postcard cannot carry it: which serde feature it
/// uses and what to use instead. A message that the value's own
/// `Serialize` gave (`S::Error::custom`) is kept.
pub fn try_encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| encode_advice(&e, value))
}

fn encode_advice<T: Serialize + ?Sized>(error: &postcard::Error, value: &T) -> String {
    use postcard::Error as E;
    match error {
        E::SerializeSeqLengthUnknown => {
            "it holds a map or sequence whose length is not known before it is written \
             (`#[serde(flatten)]`, or a `Serialize` impl that calls `serialize_seq(None)` or \
             `serialize_map(None)`, such as one serializing an iterator), which postcard cannot \
             write: nest the struct instead of flattening it, or collect into a `Vec` first"
                .to_owned()
        }
        E::SerdeSerCustom => match custom_serialize_message(value) {
            Some(message) => format!("its `Serialize` impl returned an error: {message}"),
            None => "its `Serialize` impl returned an error (it gave no message)".to_owned(),
        },
        E::CollectStrError => {
            "a `Display` impl that its `Serialize` writes with `collect_str` returned an error"
                .to_owned()
        }
        E::WontImplement | E::NotYetImplemented => format!(
            "it uses a serde feature postcard does not implement ({error}): \
             use plain `#[derive(Serialize, Deserialize)]` structs, enums and collections"
        ),
        other => format!("postcard could not encode it: {other}"),
    }
}

/// Postcard drops the message of a `Serialize` impl's custom error;
/// serializing again with serde_json (which keeps it) recovers it. Errors
/// that are serde_json's own (not the value's) are not taken for it.
fn custom_serialize_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    let error = serde_json::to_writer(std::io::sink(), value).err()?;
    if error.is_io() {
        return None;
    }
    let message = error.to_string();
    let json_own = ["key must be", "float key must be finite"];
    (!json_own.iter().any(|own| message.starts_with(own))).then_some(message)
}

/// Checks that `bytes`, encoded from a `T`, decode back as a `T` using
/// every byte, as a worker will decode them; on failure says, in words a
/// user can act on, which serde feature stands in the way and what to use
/// instead. The master runs it on a task's first input, so that types
/// postcard cannot carry are refused at submit rather than failing on a
/// worker.
pub fn check_round_trip<T: serde::de::DeserializeOwned + Serialize>(
    bytes: &[u8],
) -> Result<(), String> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| decode_advice(&e))?;
    // Not the bytes (a HashMap's order may differ), their count: a field
    // that `skip_serializing_if` left out shifts what follows.
    let again = postcard::to_stdvec(&value).map(|v| v.len()).ok();
    if !rest.is_empty() || again != Some(bytes.len()) {
        return Err(decode_advice(&postcard::Error::DeserializeBadEncoding));
    }
    Ok(())
}

/// Why bytes a worker wrote do not decode as the task's value type, with
/// the advice [`check_round_trip`] gives.
pub fn value_decode_advice(error: &postcard::Error) -> String {
    decode_advice(error)
}

fn decode_advice(error: &postcard::Error) -> String {
    use postcard::Error as E;
    match error {
        E::WontImplement | E::NotYetImplemented => "it uses a serde feature that needs a \
             self-describing format, which postcard (no type tags, no field names) is not: \
             `#[serde(untagged)]`, an internally tagged enum (`#[serde(tag = \"...\")]`), \
             `#[serde(flatten)]`, `#[serde(other)]`, or a self-describing value such as \
             `serde_json::Value` (anything that calls `deserialize_any`, `deserialize_identifier` \
             or `deserialize_ignored_any`). Use an externally tagged enum (serde's default), a \
             nested struct instead of `flatten`, or carry such a value as a `String` (e.g. JSON text)"
            .to_owned(),
        E::SerdeDeCustom => "its `Deserialize` impl rejects the bytes its own `Serialize` writes \
             (postcard keeps no message): make the two impls agree"
            .to_owned(),
        other => format!(
            "it does not read back what its `Serialize` writes ({other}): most often \
             `#[serde(skip_serializing_if = \"...\")]`, which in a format without field names \
             shifts every field after the skipped one (remove it: a `None` costs one byte), \
             or `Serialize` and `Deserialize` impls that disagree"
        ),
    }
}

/// Decodes a payload written by [`encode_payload`]; bounded by the bytes given.
pub fn decode_payload<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, WireError> {
    postcard::from_bytes(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

/// The body of an input envelope: which task to run, for which build, with
/// which arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputBody<'a> {
    /// The task's registered name.
    pub task: &'a str,
    /// The task's fingerprint in the build that wrote the input.
    pub fingerprint: u64,
    /// The task's arguments, postcard-encoded.
    pub payload: &'a [u8],
}

/// The body of an output envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputBody<'a> {
    /// The task's registered name, as the worker saw it.
    pub task: &'a str,
    /// The fingerprint of the task in the worker's build.
    pub fingerprint: u64,
    /// The task's return value, postcard-encoded, or why there is none.
    #[serde(borrow)]
    pub outcome: Outcome<'a>,
    /// What running the task cost on the worker.
    pub stats: WorkerStats,
}

/// What came of running a task: its encoded value or a structured failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome<'a> {
    /// The task returned; this is its value, postcard-encoded.
    Ok(&'a [u8]),
    /// The task did not produce a value.
    Failed(Failure),
}

/// Why a task produced no value. Carried inside output envelopes and frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Failure {
    /// The task returned `Err(e)`; this is `e.to_string()`.
    TaskError {
        /// The error's message.
        message: String,
    },
    /// The task panicked.
    Panic {
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
    },
    /// The worker could not decode the task's input (or the master the output).
    Decode {
        /// What was wrong.
        message: String,
    },
    /// The input was made by a different build or a newer format.
    VersionSkew {
        /// What differs, and how to fix it.
        message: String,
    },
    /// The worker's binary holds no task of that name.
    UnknownTask {
        /// The name asked for.
        name: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TaskError { message } => write!(f, "task returned an error: {message}"),
            Failure::Panic {
                message,
                location: Some(location),
            } => write!(f, "task panicked at {location}: {message}"),
            Failure::Panic {
                message,
                location: None,
            } => write!(f, "task panicked: {message}"),
            Failure::Decode { message } => write!(f, "could not decode: {message}"),
            Failure::VersionSkew { message } => write!(f, "version skew: {message}"),
            Failure::UnknownTask { name } => write!(
                f,
                "the worker binary has no task named `{name}` (`BIN __pymw list` shows its tasks): ship the binary the master was built from"
            ),
        }
    }
}

/// What running one task cost on the worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Wall-clock time of the task, in nanoseconds.
    pub wall_ns: u64,
    /// CPU time (user + system), in nanoseconds, when it was measured. The
    /// `serve` role measures it only for tasks longer than 100 µs, because the
    /// two system calls would cost more than a tiny task.
    pub cpu_ns: Option<u64>,
    /// Peak resident set size of the worker process, in KiB.
    pub peak_rss_kib: u64,
    /// Host name of the worker's machine (empty on pipe frames: the master
    /// learns it once, at the handshake).
    pub host: String,
}

/// Why bytes could not be decoded as an envelope or frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the header or the declared body length.
    #[error("truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes the header says there should be.
        expected: u64,
        /// Bytes there are.
        found: u64,
    },
    /// The magic bytes are wrong: this is not a pymw envelope of that kind.
    #[error("not a pymw {kind} envelope (bad magic bytes)")]
    BadMagic {
        /// "input" or "output".
        kind: &'static str,
    },
    /// The envelope was written by a newer format version.
    #[error(
        "envelope format version {found} is newer than this build's {supported}: rebuild the binary with the newer pymw"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A length field is larger than the configured limit.
    #[error(
        "declared length {declared} exceeds the limit of {limit} bytes (raise PYMW_MAX_MESSAGE_BYTES if this is intended)"
    )]
    TooLarge {
        /// The declared length.
        declared: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The body's checksum does not match: the bytes were corrupted.
    #[error(
        "checksum mismatch: the bytes were corrupted (crc32 {expected:08x} declared, {found:08x} computed)"
    )]
    Checksum {
        /// The declared checksum.
        expected: u32,
        /// The computed checksum.
        found: u32,
    },
    /// Bytes after the declared body.
    #[error("{0} unexpected bytes after the envelope")]
    TrailingBytes(u64),
    /// The body is not valid postcard for the expected structure.
    #[error("malformed body: {0}")]
    Malformed(String),
}

fn encode_envelope<T: Serialize>(magic: [u8; 8], body: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    let body_start = out.len();
    let taken = std::mem::take(out);
    // Serializing plain data into a Vec cannot fail.
    *out = postcard::to_extend(body, taken).expect("postcard into Vec is infallible");
    let body_len = (out.len() - body_start) as u64;
    let crc = crc32fast::hash(&out[body_start..]);
    out[start + 10..start + 18].copy_from_slice(&body_len.to_le_bytes());
    out[start + 18..start + 22].copy_from_slice(&crc.to_le_bytes());
}

/// Checks the header of an envelope of the given kind and returns its body.
fn open_envelope<'a>(
    bytes: &'a [u8],
    magic: [u8; 8],
    kind: &'static str,
    limit: u64,
) -> Result<&'a [u8], WireError> {
    if bytes.len() < HEADER_LEN {
        if !magic.starts_with(&bytes[..bytes.len().min(8)]) {
            return Err(WireError::BadMagic { kind });
        }
        return Err(WireError::Truncated {
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    if bytes[..8] != magic {
        return Err(WireError::BadMagic { kind });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version > FORMAT_VERSION || version == 0 {
        return Err(WireError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let body_len = u64::from_le_bytes(bytes[10..18].try_into().expect("8 bytes"));
    if body_len > limit {
        return Err(WireError::TooLarge {
            declared: body_len,
            limit,
        });
    }
    let crc = u32::from_le_bytes(bytes[18..22].try_into().expect("4 bytes"));
    let rest = &bytes[HEADER_LEN..];
    if (rest.len() as u64) < body_len {
        return Err(WireError::Truncated {
            expected: HEADER_LEN as u64 + body_len,
            found: bytes.len() as u64,
        });
    }
    if (rest.len() as u64) > body_len {
        return Err(WireError::TrailingBytes(rest.len() as u64 - body_len));
    }
    let found = crc32fast::hash(rest);
    if found != crc {
        return Err(WireError::Checksum {
            expected: crc,
            found,
        });
    }
    Ok(rest)
}

fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, WireError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len() as u64));
    }
    Ok(value)
}

/// Appends an input envelope to `out`.
pub fn encode_input(body: &InputBody<'_>, out: &mut Vec<u8>) {
    encode_envelope(INPUT_MAGIC, body, out);
}

/// Decodes an input envelope, with the process's size limit.
pub fn decode_input(bytes: &[u8]) -> Result<InputBody<'_>, WireError> {
    decode_input_with_limit(bytes, max_message_bytes())
}

/// Decodes an input envelope whose body may be at most `limit` bytes.
pub fn decode_input_with_limit(bytes: &[u8], limit: u64) -> Result<InputBody<'_>, WireError> {
    decode_body(open_envelope(bytes, INPUT_MAGIC, "input", limit)?)
}

/// Appends an output envelope to `out`.
pub fn encode_output(body: &OutputBody<'_>, out: &mut Vec<u8>) {
    encode_envelope(OUTPUT_MAGIC, body, out);
}

/// Decodes an output envelope, with the process's size limit.
pub fn decode_output(bytes: &[u8]) -> Result<OutputBody<'_>, WireError> {
    decode_output_with_limit(bytes, max_message_bytes())
}

/// Decodes an output envelope whose body may be at most `limit` bytes.
pub fn decode_output_with_limit(bytes: &[u8], limit: u64) -> Result<OutputBody<'_>, WireError> {
    decode_body(open_envelope(bytes, OUTPUT_MAGIC, "output", limit)?)
}

/// Reads a whole envelope file, refusing files larger than the size limit
/// before reading them (so a huge or hostile file never becomes a huge
/// allocation).
pub fn read_envelope_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let limit = max_message_bytes() + HEADER_LEN as u64;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "file is {len} bytes, over the limit of {limit} (raise PYMW_MAX_MESSAGE_BYTES if this is intended)"
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Frames of the `serve` role's pipe protocol.
///
/// The pipe is a private channel between a master and a child process it
/// started from its own executable, so frames carry no magic or checksum of
/// their own (the handshake checks format version and fingerprints once);
/// lengths are still checked, because a worker that crashed mid-write leaves a
/// torn frame.
///
/// ```text
/// hello   (worker → master, once)  b"PYMWSRV1" | u32 len | postcard Hello
/// request (master → worker)        u32 len | u64 key | u32 task index | payload
/// reply   (worker → master)        u32 len | u64 key | u8 status | u64 wall_ns
///                                  | u64 cpu_ns (u64::MAX = not measured)
///                                  | u64 peak_rss_kib | body
/// ```
///
/// `len` counts the bytes after itself. A reply's body is the postcard value
/// when status is [`frame::STATUS_OK`], else a postcard [`Failure`].
pub mod frame {
    use super::{Failure, WireError, WorkerStats};
    use serde::{Deserialize, Serialize};

    /// Magic bytes that open a `serve` worker's stdout.
    pub const HELLO_MAGIC: [u8; 8] = *b"PYMWSRV1";
    /// Bytes of a request frame before its payload (after the length).
    pub const REQUEST_HEAD: usize = 8 + 4;
    /// Bytes of a reply frame before its body (after the length).
    pub const REPLY_HEAD: usize = 8 + 1 + 8 + 8 + 8;
    /// Reply status: the body is the task's value.
    pub const STATUS_OK: u8 = 0;
    /// Reply status: the body is a [`Failure`].
    pub const STATUS_FAILED: u8 = 1;

    /// What a `serve` worker says first: who it is and which tasks it holds.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Hello {
        /// The envelope format version of the worker's build.
        pub format_version: u16,
        /// The worker's process id.
        pub pid: u32,
        /// The worker's host name.
        pub host: String,
        /// Every task the worker holds, sorted by name, with fingerprints.
        /// Requests name tasks by their index in this list.
        pub tasks: Vec<(String, u64)>,
    }

    /// Appends a request frame to `out`.
    pub fn push_request(out: &mut Vec<u8>, key: u64, task_index: u32, payload: &[u8]) {
        let len = (REQUEST_HEAD + payload.len()) as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&task_index.to_le_bytes());
        out.extend_from_slice(payload);
    }

    /// A decoded request frame, borrowing its payload.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Request<'a> {
        /// The master's key for this attempt, echoed in the reply.
        pub key: u64,
        /// Index of the task in the worker's [`Hello::tasks`].
        pub task_index: u32,
        /// The task's arguments, postcard-encoded.
        pub payload: &'a [u8],
    }

    /// A decoded reply frame, borrowing its body.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Reply<'a> {
        /// The key of the request this answers.
        pub key: u64,
        /// [`STATUS_OK`] or [`STATUS_FAILED`].
        pub status: u8,
        /// Wall time of the task in nanoseconds.
        pub wall_ns: u64,
        /// CPU time of the task in nanoseconds, if measured.
        pub cpu_ns: Option<u64>,
        /// Peak RSS of the worker so far, KiB.
        pub peak_rss_kib: u64,
        /// Value or failure bytes.
        pub body: &'a [u8],
    }

    impl Reply<'_> {
        /// The statistics carried by this reply (the host is known from the hello).
        pub fn stats(&self, host: &str) -> WorkerStats {
            WorkerStats {
                wall_ns: self.wall_ns,
                cpu_ns: self.cpu_ns,
                peak_rss_kib: self.peak_rss_kib,
                host: host.to_owned(),
            }
        }

        /// The value bytes, or the decoded failure.
        pub fn outcome(&self) -> Result<&[u8], Failure> {
            match self.status {
                STATUS_OK => Ok(self.body),
                STATUS_FAILED => {
                    Err(
                        postcard::from_bytes(self.body).unwrap_or_else(|e| Failure::Decode {
                            message: format!("malformed failure in reply: {e}"),
                        }),
                    )
                }
                other => Err(Failure::Decode {
                    message: format!("unknown reply status {other}"),
                }),
            }
        }
    }

    /// Starts a reply frame in `out` and returns where its length goes;
    /// the caller appends the body and then calls [`finish_reply`].
    pub fn begin_reply(
        out: &mut Vec<u8>,
        key: u64,
        status: u8,
        wall_ns: u64,
        cpu_ns: Option<u64>,
        peak_rss_kib: u64,
    ) -> usize {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&key.to_le_bytes());
        out.push(status);
        out.extend_from_slice(&wall_ns.to_le_bytes());
        out.extend_from_slice(&cpu_ns.unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(&peak_rss_kib.to_le_bytes());
        at
    }

    /// Writes the length of the reply begun at `at`.
    pub fn finish_reply(out: &mut [u8], at: usize) {
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// If `buf` starts with a whole frame, returns its length prefix and the
    /// frame's bytes after it; `Ok(None)` means more bytes are needed.
    pub fn split_frame(
        buf: &[u8],
        limit: u64,
        min: usize,
    ) -> Result<Option<(&[u8], usize)>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len as u64 > limit {
            return Err(WireError::TooLarge {
                declared: len as u64,
                limit,
            });
        }
        if len < min {
            return Err(WireError::Malformed(format!(
                "frame of {len} bytes is shorter than its {min}-byte head"
            )));
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some((&buf[4..4 + len], 4 + len)))
    }

    /// A read buffer for a stream of frames. Bytes are read in large chunks
    /// after what is kept; consumed frames are dropped by moving the rest to
    /// the front; and spare capacity is zeroed once, when it is allocated,
    /// not on every read (zeroing it per read cost a quarter of the time of
    /// megabyte payloads).
    #[derive(Debug)]
    pub struct FrameReader {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    }

    impl FrameReader {
        /// An empty buffer of `capacity` bytes.
        pub fn new(capacity: usize) -> Self {
            FrameReader {
                buf: vec![0; capacity.max(64)],
                start: 0,
                end: 0,
            }
        }

        /// The bytes read and not yet consumed.
        pub fn data(&self) -> &[u8] {
            &self.buf[self.start..self.end]
        }

        /// Drops `n` bytes from the front of [`FrameReader::data`].
        pub fn consume(&mut self, n: usize) {
            self.start = (self.start + n).min(self.end);
        }

        /// Reads once from `source`, after making room for at least the rest
        /// of the frame that [`FrameReader::data`] starts with. Returns the
        /// bytes read: 0 at the end of the stream.
        pub fn fill(&mut self, source: &mut impl std::io::Read) -> std::io::Result<usize> {
            let data = self.end - self.start;
            let frame = if data >= 4 {
                4 + u32::from_le_bytes(
                    self.buf[self.start..self.start + 4]
                        .try_into()
                        .expect("4 bytes"),
                ) as usize
            } else {
                0
            };
            let wanted = frame.max(data + 1);
            if self.start > 0
                && (self.buf.len() - self.end < 4096 || self.buf.len() - self.start < wanted)
            {
                self.buf.copy_within(self.start..self.end, 0);
                self.start = 0;
                self.end = data;
            }
            if self.buf.len() - self.start < wanted {
                // Grow to the frame's size; the caller has already checked it
                // against the limit with `split_frame`.
                self.buf.resize(wanted.next_power_of_two(), 0);
            }
            loop {
                match source.read(&mut self.buf[self.end..]) {
                    Ok(n) => {
                        self.end += n;
                        return Ok(n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Decodes the bytes of a request frame (after its length).
    pub fn parse_request(frame: &[u8]) -> Request<'_> {
        Request {
            key: u64::from_le_bytes(frame[0..8].try_into().expect("checked by split_frame")),
            task_index: u32::from_le_bytes(frame[8..12].try_into().expect("checked")),
            payload: &frame[REQUEST_HEAD..],
        }
    }

    /// Decodes the bytes of a reply frame (after its length).
    pub fn parse_reply(frame: &[u8]) -> Reply<'_> {
        let u64_at = |i: usize| u64::from_le_bytes(frame[i..i + 8].try_into().expect("checked"));
        let cpu = u64_at(17);
        Reply {
            key: u64_at(0),
            status: frame[8],
            wall_ns: u64_at(9),
            cpu_ns: (cpu != u64::MAX).then_some(cpu),
            peak_rss_kib: u64_at(25),
            body: &frame[REPLY_HEAD..],
        }
    }

    /// Encodes the hello a worker writes first.
    pub fn encode_hello(hello: &Hello) -> Vec<u8> {
        let body = postcard::to_stdvec(hello).expect("postcard into Vec is infallible");
        let mut out = Vec::with_capacity(12 + body.len());
        out.extend_from_slice(&HELLO_MAGIC);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a hello; `bytes` is everything after the magic and length.
    pub fn decode_hello(bytes: &[u8]) -> Result<Hello, WireError> {
        postcard::from_bytes(bytes).map_err(|e| WireError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_output(outcome: Outcome<'_>) -> OutputBody<'_> {
        OutputBody {
            task: "demo::square",
            fingerprint: 42,
            outcome,
            stats: WorkerStats {
                wall_ns: 5,
                cpu_ns: Some(4),
                peak_rss_kib: 1000,
                host: "h".into(),
            },
        }
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_message_limit("2G"), Ok(2 << 30));
        assert!(parse_message_limit("4G").unwrap_err().contains("4 GiB - 1"));
        assert!(parse_message_limit("10").unwrap_err().contains("too small"));
    }

    #[test]
    fn encode_failures_say_why() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no serializing on Sundays"))
            }
        }
        let message = try_encode_payload(&Fails).unwrap_err();
        assert!(message.contains("no serializing on Sundays"), "{message}");
        assert_eq!(try_encode_payload(&7u8), Ok(vec![7]));
        // A map with non-string keys is not taken for a custom error.
        let pairs: std::collections::BTreeMap<(u8, u8), Fails> = [((1, 2), Fails)].into();
        let message = try_encode_payload(&pairs).unwrap_err();
        assert!(message.contains("returned an error"), "{message}");
    }

    #[test]
    fn round_trip_check_accepts_plain_data() {
        let map: std::collections::HashMap<u32, String> =
            (0..50).map(|i| (i, i.to_string())).collect();
        let bytes = encode_payload(&map);
        assert_eq!(
            check_round_trip::<std::collections::HashMap<u32, String>>(&bytes),
            Ok(())
        );
        let message = check_round_trip::<(u32, u32)>(&[1]).unwrap_err();
        assert!(message.contains("does not read back"), "{message}");
    }

    #[test]
    fn input_round_trip_and_corruption() {
        let body = InputBody {
            task: "demo::square",
            fingerprint: 7,
            payload: &[1, 2, 3],
        };
        let mut bytes = Vec::new();
        encode_input(&body, &mut bytes);
        assert_eq!(decode_input(&bytes).unwrap(), body);
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode_input(&flipped),
            Err(WireError::Checksum { .. })
        ));
        assert!(matches!(
            decode_input(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            decode_output(&bytes),
            Err(WireError::BadMagic { .. })
        ));
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut bytes = Vec::new();
        encode_input(
            &InputBody {
                task: "t",
                fingerprint: 0,
                payload: &[],
            },
            &mut bytes,
        );
        bytes[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_input(&bytes),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn newer_version_is_version_skew() {
        let mut bytes = Vec::new();
        encode_output(&sample_output(Outcome::Ok(&[9])), &mut bytes);
        bytes[8] = 9;
        assert!(matches!(
            decode_output(&bytes),
            Err(WireError::UnsupportedVersion { found: 9, .. })
        ));
    }

    #[test]
    fn output_round_trip_with_failure() {
        let body = sample_output(Outcome::Failed(Failure::Panic {
            message: "boom".into(),
            location: Some("src/main.rs:3:5".into()),
        }));
        let mut bytes = Vec::new();
        encode_output(&body, &mut bytes);
        assert_eq!(decode_output(&bytes).unwrap(), body);
    }

    #[test]
    fn reply_frame_round_trip() {
        let mut buf = Vec::new();
        let at = frame::begin_reply(&mut buf, 11, frame::STATUS_OK, 3, None, 77);
        buf.extend_from_slice(b"xyz");
        frame::finish_reply(&mut buf, at);
        let (bytes, used) = frame::split_frame(&buf, 1 << 20, frame::REPLY_HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(used, buf.len());
        let reply = frame::parse_reply(bytes);
        assert_eq!(reply.key, 11);
        assert_eq!(reply.cpu_ns, None);
        assert_eq!(reply.peak_rss_kib, 77);
        assert_eq!(reply.outcome(), Ok(&b"xyz"[..]));
        assert_eq!(
            frame::split_frame(&buf[..buf.len() - 1], 1 << 20, frame::REPLY_HEAD),
            Ok(None)
        );
    }
}
