//! The worker side of the BOINC app protocol, without the BOINC library.
//!
//! What the recordings (`slot-direct/`, `slot-copy/`) show about a non-API app
//! started by the client 7.20.5:
//!
//! - It is started with `execv("../../projects/<host>_<path>/<physical name>")`
//!   (`argv[0]` is that relative path), followed by the workunit's
//!   `<command_line>` split like a shell would (`"two words"` is one argument).
//!   Its working directory is the slot, `<client dir>/slots/<n>`.
//! - The environment is the client's own plus
//!   `LD_LIBRARY_PATH=../../projects/<project>:.:../..`; no BOINC variables.
//!   The job's facts are only in `init_data.xml` ([`InitData`]).
//! - stdin and stdout are `/dev/null`; stderr is `slots/<n>/stderr.txt`
//!   (appended to across restarts) and ends up in `result.stderr_out`.
//! - It runs at nice 19 with `SCHED_IDLE`.
//! - Without `<copy_file/>` every logical name (`in`, `out`, the main
//!   program) is a small regular file holding one line
//!   `<soft_link>../../projects/<project>/<physical name></soft_link>`; it is
//!   not a symbolic link. For an output the target does not exist yet: the
//!   app creates it by opening the resolved path for writing and leaves the
//!   link file alone.
//! - With `<copy_file/>` an input is a real copy in the slot, and an output
//!   has no slot entry at all: the app must create `out` itself in the slot,
//!   and the client moves it to the project directory after the exit. If it
//!   does not, the result fails with `Output file ... absent` even after a
//!   clean exit.
//! - Exit 0 is a success only if the app wrote `boinc_finish_called`
//!   ([`write_finish_called`]) first.
//!
//! [`SlotDir::resolve`] follows BOINC's `boinc_resolve_filename`: the first
//! line of the slot entry is read (at most 511 bytes) and, if it holds
//! `<soft_link>X</soft_link>`, `X` (relative to the slot) is the file to
//! open; otherwise the slot entry itself is. Like BOINC, a copied input whose
//! first line happens to contain `<soft_link>` would be taken for a link.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::xml;

/// Name of the file the client writes into the slot before starting the app.
pub const INIT_DATA_FILE: &str = "init_data.xml";
/// Name of the file whose presence makes an exit 0 a success.
pub const FINISH_CALLED_FILE: &str = "boinc_finish_called";
/// Content of [`FINISH_CALLED_FILE`], as the BOINC API writes it.
pub const FINISH_CALLED_CONTENT: &[u8] = b"0\n";
/// Name of the app's stderr file in the slot.
pub const STDERR_FILE: &str = "stderr.txt";

/// The most of a slot entry read to look for `<soft_link>` (BOINC: 512-byte
/// `fgets`).
const SOFT_LINK_READ_MAX: u64 = 511;
/// The largest `init_data.xml` read (the recorded one is 5.8 KB; project
/// preferences can make it larger).
const INIT_DATA_MAX: u64 = 4 * 1024 * 1024;

/// Errors of slot-directory operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// The logical name is empty, `.`/`..`, or holds `/` or NUL.
    #[error("invalid logical file name {0:?}")]
    InvalidLogicalName(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `init_data.xml` is larger than this crate reads.
    #[error("{path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// `init_data.xml` is not a readable `<app_init_data>` document.
    #[error("init_data.xml: {0}")]
    InitData(String),
    /// A required element of `init_data.xml` is missing or empty.
    #[error("init_data.xml: missing <{0}>")]
    MissingField(&'static str),
    /// An element of `init_data.xml` holds an unusable value.
    #[error("init_data.xml: bad <{field}> value {value:?}")]
    InvalidField {
        /// The element.
        field: &'static str,
        /// The text found (shortened).
        value: String,
    },
}

/// How a logical name is present in the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A soft-link file; the target (as written, relative to the slot) is in
    /// [`Resolved::link_target`].
    SoftLink,
    /// A real file (`<copy_file/>` input, or a symbolic link).
    Plain,
    /// Nothing of that name: a `<copy_file/>` output the app must create.
    Absent,
}

/// Where to open a logical file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The path to open (the slot entry, or the soft link's target joined to
    /// the slot directory). It may not exist yet (outputs).
    pub path: PathBuf,
    /// How the name is present in the slot.
    pub kind: EntryKind,
    /// The soft link's target as written in the link file.
    pub link_target: Option<String>,
}

/// A slot directory: the working directory the client starts the app in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDir {
    dir: PathBuf,
}

impl SlotDir {
    /// The slot at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SlotDir { dir: dir.into() }
    }

    /// The current working directory, which is the slot for an app the
    /// client started.
    pub fn current() -> io::Result<Self> {
        Ok(SlotDir::new(std::env::current_dir()?))
    }

    /// The slot directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Resolves a logical file name (input or output) to the path to open.
    pub fn resolve(&self, logical: &str) -> Result<Resolved, SlotError> {
        check_logical_name(logical)?;
        let entry = self.dir.join(logical);
        let meta = match fs::symlink_metadata(&entry) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Resolved {
                    path: entry,
                    kind: EntryKind::Absent,
                    link_target: None,
                });
            }
            Err(source) => {
                return Err(SlotError::Io {
                    path: entry,
                    source,
                });
            }
        };
        if meta.file_type().is_symlink() || !meta.is_file() {
            return Ok(Resolved {
                path: entry,
                kind: EntryKind::Plain,
                link_target: None,
            });
        }
        let mut head = Vec::new();
        fs::File::open(&entry)
            .and_then(|f| f.take(SOFT_LINK_READ_MAX).read_to_end(&mut head))
            .map_err(|source| SlotError::Io {
                path: entry.clone(),
                source,
            })?;
        match parse_soft_link(&head) {
            Some(target) => Ok(Resolved {
                path: self.dir.join(target),
                kind: EntryKind::SoftLink,
                link_target: Some(target.to_owned()),
            }),
            None => Ok(Resolved {
                path: entry,
                kind: EntryKind::Plain,
                link_target: None,
            }),
        }
    }

    /// Reads and parses the slot's `init_data.xml`.
    pub fn init_data(&self) -> Result<InitData, SlotError> {
        let path = self.dir.join(INIT_DATA_FILE);
        let text = read_bounded(&path, INIT_DATA_MAX)?;
        InitData::parse(&text)
    }

    /// Writes `boinc_finish_called` (see [`write_finish_called`]).
    pub fn write_finish_called(&self) -> Result<(), SlotError> {
        write_finish_called(&self.dir)
    }
}

/// Writes `boinc_finish_called` with content `0\n` into `slot_dir` and syncs
/// it. Call it after the outputs are written and closed, right before
/// exiting 0; never before a failure exit.
pub fn write_finish_called(slot_dir: &Path) -> Result<(), SlotError> {
    let path = slot_dir.join(FINISH_CALLED_FILE);
    let result = fs::File::create(&path).and_then(|mut f| {
        f.write_all(FINISH_CALLED_CONTENT)?;
        f.sync_all()
    });
    result.map_err(|source| SlotError::Io { path, source })
}

/// The target of a soft-link file's first line, or `None` if it is not one.
pub fn parse_soft_link(content: &[u8]) -> Option<&str> {
    let line = content.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = std::str::from_utf8(line).ok()?;
    let start = line.find("<soft_link>")? + "<soft_link>".len();
    let len = line[start..].find("</soft_link>")?;
    let target = line[start..start + len].trim();
    (!target.is_empty() && !target.contains('\0')).then_some(target)
}

fn check_logical_name(name: &str) -> Result<(), SlotError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(SlotError::InvalidLogicalName(name.to_owned()));
    }
    Ok(())
}

fn read_bounded(path: &Path, max: u64) -> Result<String, SlotError> {
    let io_err = |source| SlotError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(io_err)?;
    if bytes.len() as u64 > max {
        return Err(SlotError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The parts of `init_data.xml` (`<app_init_data>`) a worker uses.
///
/// Unknown elements are ignored, and so is `<authenticator>` (the user's
/// account key, which a worker has no use for). Numbers absent from the file
/// are 0 unless noted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InitData {
    /// Client version `(major, minor, release)`, e.g. `(7, 20, 5)`.
    pub client_version: (u32, u32, u32),
    /// App version number (`major*100 + minor`: 300 for 3.0).
    pub app_version: u32,
    /// The app's short name.
    pub app_name: String,
    /// Workunit name (required).
    pub wu_name: String,
    /// Result (task) name, `<wu name>_<replica>` (required).
    pub result_name: String,
    /// Absolute project directory on the client.
    pub project_dir: PathBuf,
    /// Absolute client data directory.
    pub boinc_dir: Option<PathBuf>,
    /// Slot number (required).
    pub slot: u32,
    /// System V shared-memory key for the app's [`crate::shmem`] segment;
    /// `None` or -1 means the memory-mapped file `boinc_mmap_file` is used.
    pub shm_key: Option<i64>,
    /// The client's process id.
    pub client_pid: Option<u32>,
    /// Host id, user id and team id on the project.
    pub hostid: u64,
    /// See [`InitData::hostid`].
    pub userid: u64,
    /// See [`InitData::hostid`].
    pub teamid: u64,
    /// CPU time of earlier runs of this task.
    pub wu_cpu_time: f64,
    /// Elapsed time of earlier runs of this task.
    pub starting_elapsed_time: f64,
    /// Recommended seconds between checkpoints (300 when absent).
    pub checkpoint_period: f64,
    /// Start of this program's share of the fraction done (0 when absent).
    pub fraction_done_start: f64,
    /// End of this program's share of the fraction done (1 when absent).
    pub fraction_done_end: f64,
    /// Number of CPUs the task may use (1 when absent).
    pub ncpus: f64,
    /// Estimated floating-point operations of the job.
    pub rsc_fpops_est: f64,
    /// Bound on floating-point operations; the client aborts beyond it.
    pub rsc_fpops_bound: f64,
    /// Bound on working-set size in bytes.
    pub rsc_memory_bound: f64,
    /// Bound on disk use in bytes.
    pub rsc_disk_bound: f64,
    /// Unix time by which the result is due.
    pub computation_deadline: f64,
    /// Physical name of the app version's main program.
    pub app_file: Option<String>,
}

impl InitData {
    /// Parses the text of `init_data.xml`.
    pub fn parse(text: &str) -> Result<Self, SlotError> {
        let doc = xml::parse(text).map_err(|e| SlotError::InitData(e.to_string()))?;
        let root = doc
            .child("app_init_data")
            .ok_or_else(|| SlotError::InitData("no <app_init_data> element".into()))?;
        let text = |name: &'static str| root.child_text(name).filter(|s| !s.is_empty());
        let required = |name: &'static str| {
            text(name)
                .map(str::to_owned)
                .ok_or(SlotError::MissingField(name))
        };
        let float = |name: &'static str, default: f64| -> Result<f64, SlotError> {
            match text(name) {
                None => Ok(default),
                Some(s) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| invalid(name, s)),
            }
        };
        fn int<T: std::str::FromStr>(
            name: &'static str,
            s: Option<&str>,
        ) -> Result<Option<T>, SlotError> {
            match s {
                None => Ok(None),
                Some(s) => s.parse::<T>().map(Some).map_err(|_| invalid(name, s)),
            }
        }
        let slot = int::<u32>("slot", text("slot"))?.ok_or(SlotError::MissingField("slot"))?;
        Ok(InitData {
            client_version: (
                int("major_version", text("major_version"))?.unwrap_or(0),
                int("minor_version", text("minor_version"))?.unwrap_or(0),
                int("release", text("release"))?.unwrap_or(0),
            ),
            app_version: int("app_version", text("app_version"))?.unwrap_or(0),
            app_name: required("app_name")?,
            wu_name: required("wu_name")?,
            result_name: required("result_name")?,
            project_dir: PathBuf::from(required("project_dir")?),
            boinc_dir: text("boinc_dir").map(PathBuf::from),
            slot,
            shm_key: int("shm_key", text("shm_key"))?,
            client_pid: int("client_pid", text("client_pid"))?,
            hostid: int("hostid", text("hostid"))?.unwrap_or(0),
            userid: int("userid", text("userid"))?.unwrap_or(0),
            teamid: int("teamid", text("teamid"))?.unwrap_or(0),
            wu_cpu_time: float("wu_cpu_time", 0.0)?,
            starting_elapsed_time: float("starting_elapsed_time", 0.0)?,
            checkpoint_period: float("checkpoint_period", 300.0)?,
            fraction_done_start: float("fraction_done_start", 0.0)?,
            fraction_done_end: float("fraction_done_end", 1.0)?,
            ncpus: float("ncpus", 1.0)?,
            rsc_fpops_est: float("rsc_fpops_est", 0.0)?,
            rsc_fpops_bound: float("rsc_fpops_bound", 0.0)?,
            rsc_memory_bound: float("rsc_memory_bound", 0.0)?,
            rsc_disk_bound: float("rsc_disk_bound", 0.0)?,
            computation_deadline: float("computation_deadline", 0.0)?,
            app_file: text("app_file").map(str::to_owned),
        })
    }

    /// Whether the client set up System V shared memory (a non-API app
    /// version: `shm_key` present and not -1) rather than `boinc_mmap_file`.
    pub fn uses_sysv_shmem(&self) -> bool {
        matches!(self.shm_key, Some(k) if k != -1)
    }
}

fn invalid(field: &'static str, value: &str) -> SlotError {
    SlotError::InvalidField {
        field,
        value: xml::excerpt(value, 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_link_parsing() {
        assert_eq!(
            parse_soft_link(b"<soft_link>../../projects/p/x</soft_link>\n"),
            Some("../../projects/p/x")
        );
        assert_eq!(parse_soft_link(b"1 2 3 slot test\n"), None);
        assert_eq!(parse_soft_link(b"<soft_link></soft_link>"), None);
        assert_eq!(parse_soft_link(b"\n<soft_link>x</soft_link>"), None);
        assert_eq!(parse_soft_link(&[0xff, 0xfe]), None);
    }

    #[test]
    fn logical_names_are_checked() {
        let slot = SlotDir::new("/nonexistent");
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(matches!(
                slot.resolve(bad),
                Err(SlotError::InvalidLogicalName(_))
            ));
        }
    }

    #[test]
    fn init_data_errors() {
        assert!(matches!(
            InitData::parse("<other/>"),
            Err(SlotError::InitData(_))
        ));
        assert!(matches!(
            InitData::parse("<app_init_data><slot>0</slot></app_init_data>"),
            Err(SlotError::MissingField(_))
        ));
        let bad = "<app_init_data><slot>x</slot></app_init_data>";
        assert!(matches!(
            InitData::parse(bad),
            Err(SlotError::InvalidField { field: "slot", .. })
        ));
        let nan = "<app_init_data><slot>0</slot><app_name>a</app_name><wu_name>w</wu_name>\
                   <result_name>r</result_name><project_dir>/p</project_dir>\
                   <rsc_fpops_est>nan</rsc_fpops_est></app_init_data>";
        assert!(matches!(
            InitData::parse(nan),
            Err(SlotError::InvalidField {
                field: "rsc_fpops_est",
                ..
            })
        ));
    }
}
