//! The shared memory between the BOINC client and an app.
//!
//! Layout (BOINC `lib/app_ipc.h`, unchanged through 7.x): `SHARED_MEM` is
//! eight `MSG_CHANNEL`s of 1024 bytes each, in this order:
//! `process_control_request` (client to app: `<quit/>`, `<suspend/>`,
//! `<resume/>`, `<abort/>`, `<reread_app_info/>`, `<network_available/>`),
//! `process_control_reply`, `graphics_request`, `graphics_reply`,
//! `heartbeat` (client to app, every second: `<heartbeat/>` with `<wss>` and
//! `<max_wss>`), `app_status` (app to client, every second:
//! `<current_cpu_time>`, `<checkpoint_cpu_time>`, `<fraction_done>` ...),
//! `trickle_up`, `trickle_down`. The first byte of a channel is nonzero while
//! it holds an unread message; the sender writes only when it is zero (or
//! overwrites on purpose), the receiver copies the NUL-terminated text from
//! byte 1 (at most 1022 bytes, BOINC's `strlcpy(.., 1023)`) and clears the
//! flag (`lib/app_ipc.cpp`).
//!
//! Where the memory lives (BOINC `client/app_start.cpp`,
//! `api/boinc_api.cpp`, `lib/shmem.h`): for an app version whose API version
//! is at least 6 the client creates the file `boinc_mmap_file` in the slot
//! and both sides `mmap` it; `init_data.xml` then has `<shm_key>-1`.
//! Otherwise (a non-API app version, which is what the recorded `probe` was)
//! the client creates a System V segment with key `ftok(init_data.xml, slot)`
//! and passes that key as `<shm_key>` (16826673 in `slot-direct/`, and no
//! `boinc_mmap_file` in the recorded slot listings). [`SharedMem::for_slot`]
//! picks the right one from [`InitData`].
//!
//! What the recordings show about a non-API app: it was not killed after
//! 100 s without reading heartbeats or sending status, and aborts sent
//! through shared memory were not acted on (the client killed it 60 s after
//! a user abort). An app that reads `process_control_request` can honour
//! `<quit/>`/`<abort/>` promptly. On `<quit/>` the BOINC API exits 0
//! *without* writing `boinc_finish_called`, and the client restarts the task
//! later; a nonzero exit would be a computation error. None of this channel
//! traffic was recorded in the
//! fixtures: the layout and message texts come from BOINC's source and are
//! exercised here against in-memory buffers, a temporary mapped file and a
//! private System V segment.

use std::fs;
use std::io;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::slot::{InitData, SlotDir};

/// Size of one message channel.
pub const MSG_CHANNEL_SIZE: usize = 1024;
/// Longest message a channel carries (bytes 1..=1022, then NUL).
pub const MAX_MSG_LEN: usize = MSG_CHANNEL_SIZE - 2;
/// Number of channels in `SHARED_MEM`.
pub const NUM_CHANNELS: usize = 8;
/// Size of `SHARED_MEM`.
pub const SHARED_MEM_SIZE: usize = MSG_CHANNEL_SIZE * NUM_CHANNELS;
/// File name of the memory-mapped variant, in the slot directory.
pub const MMAPPED_FILE_NAME: &str = "boinc_mmap_file";

/// Errors of shared-memory operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmemError {
    /// A buffer is not the size of a channel or of `SHARED_MEM`.
    #[error("buffer of {found} bytes, need {need}")]
    BadSize {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        found: usize,
    },
    /// A message is longer than [`MAX_MSG_LEN`] or contains NUL.
    #[error("message of {0} bytes does not fit a channel (max {MAX_MSG_LEN}, no NUL)")]
    BadMessage(usize),
    /// The `shm_key` does not fit the platform's `key_t`.
    #[error("shared-memory key {0} out of range")]
    BadKey(i64),
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

/// The eight channels of `SHARED_MEM`, in memory order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// Client to app: suspend, resume, quit, abort ...
    ProcessControlRequest,
    /// App to client: unused.
    ProcessControlReply,
    /// Client to app: unused.
    GraphicsRequest,
    /// App to client: graphics URLs.
    GraphicsReply,
    /// Client to app: heartbeat every second.
    Heartbeat,
    /// App to client: CPU time and fraction done every second.
    AppStatus,
    /// App to client: trickle-up and upload notices.
    TrickleUp,
    /// Client to app: trickle-down and upload-status notices.
    TrickleDown,
}

impl Channel {
    /// Every channel, in memory order.
    pub const ALL: [Channel; NUM_CHANNELS] = [
        Channel::ProcessControlRequest,
        Channel::ProcessControlReply,
        Channel::GraphicsRequest,
        Channel::GraphicsReply,
        Channel::Heartbeat,
        Channel::AppStatus,
        Channel::TrickleUp,
        Channel::TrickleDown,
    ];

    /// Position in `SHARED_MEM`, 0 to 7.
    pub const fn index(self) -> usize {
        match self {
            Channel::ProcessControlRequest => 0,
            Channel::ProcessControlReply => 1,
            Channel::GraphicsRequest => 2,
            Channel::GraphicsReply => 3,
            Channel::Heartbeat => 4,
            Channel::AppStatus => 5,
            Channel::TrickleUp => 6,
            Channel::TrickleDown => 7,
        }
    }

    /// Byte offset in `SHARED_MEM`.
    pub const fn offset(self) -> usize {
        self.index() * MSG_CHANNEL_SIZE
    }
}

enum Mem<'a> {
    Plain(&'a mut [u8]),
    Shared(&'a [AtomicU8]),
}

/// One message channel over 1024 bytes of memory, with BOINC's semantics.
pub struct MsgChannel<'a> {
    mem: Mem<'a>,
}

impl std::fmt::Debug for MsgChannel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgChannel")
            .field("pending", &self.has_msg())
            .finish()
    }
}

impl<'a> MsgChannel<'a> {
    /// A channel over exactly [`MSG_CHANNEL_SIZE`] bytes.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, ShmemError> {
        if buf.len() != MSG_CHANNEL_SIZE {
            return Err(ShmemError::BadSize {
                need: MSG_CHANNEL_SIZE,
                found: buf.len(),
            });
        }
        Ok(MsgChannel {
            mem: Mem::Plain(buf),
        })
    }

    /// Channel `channel` of a whole `SHARED_MEM` image (at least
    /// [`SHARED_MEM_SIZE`] bytes).
    pub fn in_shared_mem(whole: &'a mut [u8], channel: Channel) -> Result<Self, ShmemError> {
        if whole.len() < SHARED_MEM_SIZE {
            return Err(ShmemError::BadSize {
                need: SHARED_MEM_SIZE,
                found: whole.len(),
            });
        }
        let start = channel.offset();
        MsgChannel::new(&mut whole[start..start + MSG_CHANNEL_SIZE])
    }

    fn load(&self, i: usize) -> u8 {
        match &self.mem {
            Mem::Plain(b) => b.get(i).copied().unwrap_or(0),
            Mem::Shared(b) => b.get(i).map_or(0, |a| a.load(Ordering::Relaxed)),
        }
    }

    fn load_flag(&self) -> u8 {
        match &self.mem {
            Mem::Plain(b) => b.first().copied().unwrap_or(0),
            Mem::Shared(b) => b.first().map_or(0, |a| a.load(Ordering::Acquire)),
        }
    }

    fn store(&mut self, i: usize, v: u8) {
        match &mut self.mem {
            Mem::Plain(b) => {
                if let Some(x) = b.get_mut(i) {
                    *x = v;
                }
            }
            Mem::Shared(b) => {
                if let Some(a) = b.get(i) {
                    a.store(v, Ordering::Relaxed);
                }
            }
        }
    }

    fn store_flag(&mut self, v: u8) {
        match &mut self.mem {
            Mem::Plain(b) => {
                if let Some(x) = b.first_mut() {
                    *x = v;
                }
            }
            Mem::Shared(b) => {
                if let Some(a) = b.first() {
                    a.store(v, Ordering::Release);
                }
            }
        }
    }

    /// Whether an unread message is waiting.
    pub fn has_msg(&self) -> bool {
        self.load_flag() != 0
    }

    /// Sends `msg` if the channel is empty; `Ok(false)` if the previous
    /// message is still unread (nothing is written then).
    pub fn send_msg(&mut self, msg: &str) -> Result<bool, ShmemError> {
        check_message(msg)?;
        if self.has_msg() {
            return Ok(false);
        }
        self.write(msg);
        Ok(true)
    }

    /// Sends `msg`, replacing any unread message.
    pub fn send_msg_overwrite(&mut self, msg: &str) -> Result<(), ShmemError> {
        check_message(msg)?;
        self.write(msg);
        Ok(())
    }

    fn write(&mut self, msg: &str) {
        for (i, b) in msg.bytes().enumerate() {
            self.store(1 + i, b);
        }
        self.store(1 + msg.len(), 0);
        self.store_flag(1);
    }

    /// The waiting message without consuming it.
    pub fn peek_msg(&self) -> Option<String> {
        if !self.has_msg() {
            return None;
        }
        let mut bytes = Vec::with_capacity(64);
        for i in 1..=MAX_MSG_LEN {
            let b = self.load(i);
            if b == 0 {
                break;
            }
            bytes.push(b);
        }
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Takes the waiting message and marks the channel empty.
    pub fn get_msg(&mut self) -> Option<String> {
        let msg = self.peek_msg()?;
        self.store_flag(0);
        Some(msg)
    }
}

fn check_message(msg: &str) -> Result<(), ShmemError> {
    if msg.len() > MAX_MSG_LEN || msg.contains('\0') {
        return Err(ShmemError::BadMessage(msg.len()));
    }
    Ok(())
}

/// A request the client sends on [`Channel::ProcessControlRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControlRequest {
    /// Stop computing until `<resume/>` (the app keeps its state).
    Suspend,
    /// Continue after a suspend.
    Resume,
    /// Exit now; the task will be restarted later (checkpoint first if cheap).
    Quit,
    /// The task was aborted: exit now; the result is discarded.
    Abort,
    /// `init_data.xml` changed (preferences): read it again.
    RereadAppInfo,
    /// The network is available again (after the app asked for it).
    NetworkAvailable,
}

impl ControlRequest {
    /// Every request, in the order the BOINC API checks them.
    pub const ALL: [ControlRequest; 6] = [
        ControlRequest::Suspend,
        ControlRequest::Resume,
        ControlRequest::Quit,
        ControlRequest::Abort,
        ControlRequest::RereadAppInfo,
        ControlRequest::NetworkAvailable,
    ];

    /// The message text, e.g. `<quit/>`.
    pub const fn as_xml(self) -> &'static str {
        match self {
            ControlRequest::Suspend => "<suspend/>",
            ControlRequest::Resume => "<resume/>",
            ControlRequest::Quit => "<quit/>",
            ControlRequest::Abort => "<abort/>",
            ControlRequest::RereadAppInfo => "<reread_app_info/>",
            ControlRequest::NetworkAvailable => "<network_available/>",
        }
    }

    /// Every request a message contains (the API matches each tag anywhere
    /// in the message, so one message may carry several).
    pub fn decode(msg: &str) -> Vec<ControlRequest> {
        ControlRequest::ALL
            .into_iter()
            .filter(|r| msg.contains(r.as_xml()))
            .collect()
    }
}

/// A message on [`Channel::Heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Heartbeat {
    /// `<heartbeat/>` was present.
    pub heartbeat: bool,
    /// The app's working-set size as the client measured it.
    pub wss: Option<f64>,
    /// The most working-set size the app may use.
    pub max_wss: Option<f64>,
    /// `<network_suspended/>` was present.
    pub network_suspended: bool,
}

impl Heartbeat {
    /// Parses a heartbeat message.
    pub fn decode(msg: &str) -> Self {
        Heartbeat {
            heartbeat: msg.contains("<heartbeat/>"),
            wss: tag_f64(msg, "wss"),
            max_wss: tag_f64(msg, "max_wss"),
            network_suspended: msg.contains("<network_suspended/>"),
        }
    }

    /// The message as the 7.x client formats it.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if self.heartbeat {
            s.push_str("<heartbeat/>");
        }
        if let Some(w) = self.wss {
            s.push_str(&format!("<wss>{}</wss>", c_exp(w)));
        }
        if let Some(w) = self.max_wss {
            s.push_str(&format!("<max_wss>{}</max_wss>", c_exp(w)));
        }
        if self.network_suspended {
            s.push_str("<network_suspended/>");
        }
        s
    }
}

/// A status message on [`Channel::AppStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AppStatus {
    /// CPU seconds of the task so far, earlier runs included.
    pub current_cpu_time: f64,
    /// CPU seconds at the last checkpoint.
    pub checkpoint_cpu_time: f64,
    /// Fraction done, 0 to 1, already scaled to this program's share (see
    /// [`AppStatus::scale_fraction`]); `None` to leave it out.
    pub fraction_done: Option<f64>,
    /// The app wants the network.
    pub want_network: bool,
    /// Bytes the app sent over the network.
    pub bytes_sent: f64,
    /// Bytes the app received.
    pub bytes_received: f64,
}

impl AppStatus {
    /// Maps the app's own fraction done into the share
    /// `fraction_done_start..fraction_done_end` of `init_data.xml`, as the
    /// API does, clamped to 0..=1.
    pub fn scale_fraction(fraction: f64, init: &InitData) -> f64 {
        let f = if fraction.is_finite() { fraction } else { 0.0 };
        let start = init.fraction_done_start;
        let scaled = start + f.clamp(0.0, 1.0) * (init.fraction_done_end - start);
        if scaled.is_finite() {
            scaled.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The message exactly as the BOINC API's `update_app_progress` writes
    /// it (C `%e` numbers, one element per line).
    pub fn encode(&self) -> String {
        let mut s = format!(
            "<current_cpu_time>{}</current_cpu_time>\n<checkpoint_cpu_time>{}</checkpoint_cpu_time>\n",
            c_exp(self.current_cpu_time),
            c_exp(self.checkpoint_cpu_time)
        );
        if self.want_network {
            s.push_str("<want_network>1</want_network>\n");
        }
        if let Some(f) = self.fraction_done.filter(|f| *f >= 0.0) {
            s.push_str(&format!("<fraction_done>{}</fraction_done>\n", c_exp(f)));
        }
        if self.bytes_sent != 0.0 {
            s.push_str(&format!(
                "<bytes_sent>{:.6}</bytes_sent>\n",
                finite(self.bytes_sent)
            ));
        }
        if self.bytes_received != 0.0 {
            s.push_str(&format!(
                "<bytes_received>{:.6}</bytes_received>\n",
                finite(self.bytes_received)
            ));
        }
        s
    }

    /// Parses a status message (missing numbers are 0).
    pub fn decode(msg: &str) -> Self {
        AppStatus {
            current_cpu_time: tag_f64(msg, "current_cpu_time").unwrap_or(0.0),
            checkpoint_cpu_time: tag_f64(msg, "checkpoint_cpu_time").unwrap_or(0.0),
            fraction_done: tag_f64(msg, "fraction_done"),
            want_network: tag_f64(msg, "want_network").is_some_and(|v| v != 0.0),
            bytes_sent: tag_f64(msg, "bytes_sent").unwrap_or(0.0),
            bytes_received: tag_f64(msg, "bytes_received").unwrap_or(0.0),
        }
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// C's `%e`: six decimals and a signed exponent of at least two digits.
pub(crate) fn c_exp(x: f64) -> String {
    let s = format!("{:.6e}", finite(x));
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
        }
        None => s,
    }
}

/// The finite number in `<tag>...</tag>`, if any.
fn tag_f64(msg: &str, tag: &str) -> Option<f64> {
    let open = format!("<{tag}>");
    let start = msg.find(&open)? + open.len();
    let rest = &msg[start..];
    let end = rest.find('<').unwrap_or(rest.len());
    rest[..end]
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mmap,
    SysV,
}

/// An attached `SHARED_MEM` (a mapped `boinc_mmap_file` or a System V
/// segment). Detached on drop.
#[derive(Debug)]
pub struct SharedMem {
    ptr: NonNull<u8>,
    len: usize,
    kind: Kind,
}

// SAFETY: the memory is only accessed through `AtomicU8`s, which may be
// shared between threads; the mapping lives as long as the value.
unsafe impl Send for SharedMem {}
// SAFETY: as above; `&SharedMem` hands out only atomic views.
unsafe impl Sync for SharedMem {}

impl SharedMem {
    /// Finds the client's shared memory for this slot: the System V segment
    /// named by `<shm_key>`, else `boinc_mmap_file` if the slot has one.
    /// `Ok(None)` when there is neither (no client, or a standalone run).
    pub fn for_slot(slot: &SlotDir, init: &InitData) -> Result<Option<Self>, ShmemError> {
        if let Some(key) = init.shm_key.filter(|_| init.uses_sysv_shmem()) {
            return SharedMem::attach_sysv(key).map(Some);
        }
        let path = slot.path().join(MMAPPED_FILE_NAME);
        if path.is_file() {
            return SharedMem::map_file(&path).map(Some);
        }
        Ok(None)
    }

    /// Maps an existing `boinc_mmap_file` (at least [`SHARED_MEM_SIZE`]
    /// bytes) read-write and shared.
    pub fn map_file(path: &Path) -> Result<Self, ShmemError> {
        let os = |what: &str, source| ShmemError::Os {
            what: format!("{what} {}", path.display()),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| os("open", e))?;
        let size = file.metadata().map_err(|e| os("stat", e))?.len();
        if size < SHARED_MEM_SIZE as u64 {
            return Err(ShmemError::BadSize {
                need: SHARED_MEM_SIZE,
                found: usize::try_from(size).unwrap_or(usize::MAX),
            });
        }
        use std::os::fd::AsRawFd as _;
        // SAFETY: mapping a regular file we opened read-write; the length is
        // within the file; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SHARED_MEM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os("mmap", io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| os("mmap", io::Error::other("null mapping")))?;
        Ok(SharedMem {
            ptr,
            len: SHARED_MEM_SIZE,
            kind: Kind::Mmap,
        })
    }

    /// Creates (or truncates to zeros) a `boinc_mmap_file` of
    /// [`SHARED_MEM_SIZE`] bytes and maps it, as the client does for an API
    /// app. For tests and for running a worker outside a client.
    pub fn create_file(path: &Path) -> Result<Self, ShmemError> {
        fs::write(path, vec![0u8; SHARED_MEM_SIZE]).map_err(|source| ShmemError::Os {
            what: format!("create {}", path.display()),
            source,
        })?;
        SharedMem::map_file(path)
    }

    /// Attaches the existing System V segment with that key (at least
    /// [`SHARED_MEM_SIZE`] bytes).
    pub fn attach_sysv(key: i64) -> Result<Self, ShmemError> {
        let key = libc::key_t::try_from(key).map_err(|_| ShmemError::BadKey(key))?;
        // SAFETY: plain system call; the result is checked.
        let id = unsafe { libc::shmget(key, 0, 0) };
        if id < 0 {
            return Err(ShmemError::Os {
                what: format!("shmget key {key}"),
                source: io::Error::last_os_error(),
            });
        }
        SharedMem::attach_sysv_id(id)
    }

    /// Attaches the System V segment with that id (at least
    /// [`SHARED_MEM_SIZE`] bytes).
    pub fn attach_sysv_id(id: i32) -> Result<Self, ShmemError> {
        let os = |what: &str| ShmemError::Os {
            what: format!("{what} id {id}"),
            source: io::Error::last_os_error(),
        };
        // SAFETY: `shmid_ds` is plain data; zeroed is a valid value.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT writes into `ds`, which we own.
        if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
            return Err(os("shmctl"));
        }
        if ds.shm_segsz < SHARED_MEM_SIZE {
            return Err(ShmemError::BadSize {
                need: SHARED_MEM_SIZE,
                found: ds.shm_segsz,
            });
        }
        // SAFETY: attach at an address the kernel chooses; checked below.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if ptr as isize == -1 {
            return Err(os("shmat"));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| os("shmat"))?;
        Ok(SharedMem {
            ptr,
            len: SHARED_MEM_SIZE,
            kind: Kind::SysV,
        })
    }

    fn atomics(&self) -> &[AtomicU8] {
        // SAFETY: `ptr` is valid for `len` bytes for the life of `self`;
        // `AtomicU8` has the size and alignment of `u8`; the memory is only
        // ever accessed atomically from this process.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU8>(), self.len) }
    }

    /// A handle on one channel.
    pub fn channel(&self, channel: Channel) -> MsgChannel<'_> {
        let start = channel.offset();
        MsgChannel {
            mem: Mem::Shared(&self.atomics()[start..start + MSG_CHANNEL_SIZE]),
        }
    }

    /// Takes the pending control requests, if any.
    pub fn poll_control(&self) -> Vec<ControlRequest> {
        self.channel(Channel::ProcessControlRequest)
            .get_msg()
            .map(|m| ControlRequest::decode(&m))
            .unwrap_or_default()
    }

    /// Takes the pending heartbeat, if any.
    pub fn poll_heartbeat(&self) -> Option<Heartbeat> {
        self.channel(Channel::Heartbeat)
            .get_msg()
            .map(|m| Heartbeat::decode(&m))
    }

    /// Sends a status report unless the previous one is still unread
    /// (`Ok(false)`, as in the API: the next report will carry fresher
    /// numbers).
    pub fn send_status(&self, status: &AppStatus) -> Result<bool, ShmemError> {
        self.channel(Channel::AppStatus).send_msg(&status.encode())
    }

    /// A copy of the whole memory.
    pub fn snapshot(&self) -> Vec<u8> {
        self.atomics()
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        match self.kind {
            Kind::Mmap => {
                // SAFETY: unmapping exactly what `map_file` mapped.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
            Kind::SysV => {
                // SAFETY: detaching exactly what `shmat` attached.
                unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_send_if_empty_receive_and_clear() {
        let mut buf = vec![0u8; MSG_CHANNEL_SIZE];
        let mut ch = MsgChannel::new(&mut buf).unwrap();
        assert!(!ch.has_msg());
        assert_eq!(ch.get_msg(), None);
        assert!(ch.send_msg("<quit/>").unwrap());
        assert!(ch.has_msg());
        assert!(!ch.send_msg("<suspend/>").unwrap(), "full channel refuses");
        assert_eq!(ch.peek_msg().as_deref(), Some("<quit/>"));
        assert_eq!(ch.get_msg().as_deref(), Some("<quit/>"));
        assert!(!ch.has_msg());
        assert!(ch.send_msg("<resume/>").unwrap());
        ch.send_msg_overwrite("<abort/>").unwrap();
        assert_eq!(ch.get_msg().as_deref(), Some("<abort/>"));
        assert_eq!(buf[0], 0);
        assert_eq!(&buf[1..9], b"<abort/>");
        assert_eq!(buf[9], 0);
    }

    #[test]
    fn channel_limits() {
        let mut small = vec![0u8; 10];
        assert!(matches!(
            MsgChannel::new(&mut small),
            Err(ShmemError::BadSize { .. })
        ));
        let mut buf = vec![0u8; MSG_CHANNEL_SIZE];
        let mut ch = MsgChannel::new(&mut buf).unwrap();
        let max = "x".repeat(MAX_MSG_LEN);
        assert!(ch.send_msg(&max).unwrap());
        assert_eq!(ch.get_msg().unwrap().len(), MAX_MSG_LEN);
        assert!(matches!(
            ch.send_msg(&"x".repeat(MAX_MSG_LEN + 1)),
            Err(ShmemError::BadMessage(_))
        ));
        assert!(ch.send_msg("a\0b").is_err());
        // A hostile writer: flag set, no NUL anywhere, invalid UTF-8.
        buf.fill(0xff);
        let mut ch = MsgChannel::new(&mut buf).unwrap();
        let got = ch.get_msg().unwrap();
        assert_eq!(got.chars().count(), MAX_MSG_LEN);
        assert!(!ch.has_msg());
    }

    #[test]
    fn channels_of_a_whole_image() {
        let mut whole = vec![0u8; SHARED_MEM_SIZE];
        MsgChannel::in_shared_mem(&mut whole, Channel::AppStatus)
            .unwrap()
            .send_msg("x")
            .unwrap();
        assert_eq!(whole[5 * 1024], 1);
        assert_eq!(whole[5 * 1024 + 1], b'x');
        assert_eq!(Channel::TrickleDown.offset(), 7 * 1024);
        assert!(MsgChannel::in_shared_mem(&mut whole[..100], Channel::Heartbeat).is_err());
    }

    #[test]
    fn control_requests() {
        assert_eq!(
            ControlRequest::decode("<quit/>"),
            vec![ControlRequest::Quit]
        );
        assert_eq!(
            ControlRequest::decode("<abort/>"),
            vec![ControlRequest::Abort]
        );
        assert_eq!(
            ControlRequest::decode("<suspend/>\n<resume/>"),
            vec![ControlRequest::Suspend, ControlRequest::Resume]
        );
        assert!(ControlRequest::decode("garbage").is_empty());
        for r in ControlRequest::ALL {
            assert_eq!(ControlRequest::decode(r.as_xml()), vec![r]);
        }
    }

    #[test]
    fn heartbeat_round_trip() {
        let hb = Heartbeat {
            heartbeat: true,
            wss: Some(1234.0),
            max_wss: Some(2.5e9),
            network_suspended: false,
        };
        assert_eq!(
            hb.encode(),
            "<heartbeat/><wss>1.234000e+03</wss><max_wss>2.500000e+09</max_wss>"
        );
        assert_eq!(Heartbeat::decode(&hb.encode()), hb);
        assert_eq!(
            Heartbeat::decode("<heartbeat/>\n"),
            Heartbeat {
                heartbeat: true,
                ..Heartbeat::default()
            }
        );
    }

    #[test]
    fn app_status_format() {
        let st = AppStatus {
            current_cpu_time: 12.5,
            checkpoint_cpu_time: 0.0,
            fraction_done: Some(0.25),
            ..AppStatus::default()
        };
        assert_eq!(
            st.encode(),
            "<current_cpu_time>1.250000e+01</current_cpu_time>\n\
             <checkpoint_cpu_time>0.000000e+00</checkpoint_cpu_time>\n\
             <fraction_done>2.500000e-01</fraction_done>\n"
        );
        assert_eq!(AppStatus::decode(&st.encode()), st);
        assert_eq!(c_exp(-1.5e-7), "-1.500000e-07");
        assert_eq!(c_exp(f64::NAN), "0.000000e+00");
        assert_eq!(c_exp(1e100), "1.000000e+100");
        let garbage = AppStatus::decode("<fraction_done>nan</fraction_done><current_cpu_time>x");
        assert_eq!(garbage.fraction_done, None);
        assert_eq!(garbage.current_cpu_time, 0.0);
    }

    #[test]
    fn sysv_segment_round_trip() {
        // A private segment stands in for the one the client creates.
        // SAFETY: plain system calls on a segment this test owns.
        let id =
            unsafe { libc::shmget(libc::IPC_PRIVATE, SHARED_MEM_SIZE, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", io::Error::last_os_error());
        let client = SharedMem::attach_sysv_id(id);
        let app = SharedMem::attach_sysv_id(id);
        // SAFETY: marks the segment for removal once both detach.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        let (client, app) = (client.unwrap(), app.unwrap());
        assert!(
            client
                .channel(Channel::ProcessControlRequest)
                .send_msg("<suspend/>")
                .unwrap()
        );
        assert_eq!(app.poll_control(), vec![ControlRequest::Suspend]);
        assert!(app.poll_control().is_empty());
        assert!(app.send_status(&AppStatus::default()).unwrap());
        assert!(!app.send_status(&AppStatus::default()).unwrap());
        let got = client.channel(Channel::AppStatus).get_msg().unwrap();
        assert!(got.starts_with("<current_cpu_time>0.000000e+00</current_cpu_time>\n"));
    }
}
