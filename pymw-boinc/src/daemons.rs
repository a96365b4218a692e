//! Server-side daemons: how `script_assimilator` and `script_validator`
//! call a program, the `config.xml` `<daemon>` entries that make a pymw
//! binary the app's assimilator and validator, and the work unit
//! `error_mask`.
//!
//! Recorded with 7.20.5 (`assimilator/`):
//! - Both daemons run each script with `system("../bin/<name> <args>")`
//!   from the project's `tmp_<host>/` directory, so the program must be in
//!   the project's `bin/` directory, and its `--script` spec is split on
//!   single spaces: words other than the known tokens are **silently
//!   dropped**. A pymw binary is therefore registered through a small shell
//!   script in `bin/` ([`PymwDaemons::shim_scripts`]) that runs
//!   `BIN __pymw boinc-assimilate "$@"` (or `boinc-validate-init`,
//!   `boinc-validate-compare`).
//! - `script_assimilator` knows only `files`, `wu_id` and `runtime`
//!   (`runtime` is the canonical result's elapsed time printed with `%f`;
//!   `files` the absolute paths of its output files in the upload
//!   hierarchy, in template order). For a work unit without canonical result
//!   the call is always `SCRIPT --error <error_mask> <wu_id>`. A script that
//!   exits nonzero makes the daemon itself exit (`handler error: Error 768;
//!   exiting` for exit 3); the job stays unassimilated until the daemon is
//!   started again (`bin/start`), which repeats the call. So an assimilate
//!   role should exit 0 whenever retrying would not help.
//! - `script_validator` tokens: `files`, `result_id`, `runtime` for the init
//!   script and additionally `files2`, `result_id2`, `runtime2` for the
//!   compare script (the plain tokens refer to the first result of the
//!   pair). Init exit 0 means the result is valid, anything else invalid
//!   (`outcome=6`, `validate_state=2`). Compare exit 0 means the two match.
//!   Each pass compares every ordered pair.
//! - The assimilator must copy what it needs before returning: the
//!   `file_deleter` removes the uploads about 2 s after assimilation.
//!
//! The token orders used here are the recorded ones:
//! `wu_id runtime files` (the recorded spec `wu_id wu_name result_id runtime
//! files` produced exactly that argv), `files result_id runtime` and
//! `files files2 result_id result_id2 runtime runtime2`.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::xml::escape_text;

/// First argument of every reserved worker role of a pymw binary.
pub const ROLE_MARKER: &str = "__pymw";
/// Exit status of a validate role for a valid result / matching pair.
pub const EXIT_VALID: i32 = 0;
/// Exit status of a validate role for an invalid result / different pair.
pub const EXIT_INVALID: i32 = 1;

/// Errors of daemon registration and argument parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// An app or script name that cannot appear in a daemon command line.
    #[error("invalid name {0:?} (use letters, digits, '_', '-', '.')")]
    InvalidName(String),
    /// The arguments a daemon passed do not have the expected form.
    #[error("bad {role} arguments: {reason}")]
    BadArgs {
        /// The role.
        role: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Writing a shim script failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The reserved roles a pymw binary plays for the BOINC server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Called by `script_assimilator` for each finished work unit.
    Assimilate,
    /// Called by `script_validator` to check one result.
    ValidateInit,
    /// Called by `script_validator` to compare two results.
    ValidateCompare,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Assimilate, Role::ValidateInit, Role::ValidateCompare];

    /// The role's argument after [`ROLE_MARKER`].
    pub const fn name(self) -> &'static str {
        match self {
            Role::Assimilate => "boinc-assimilate",
            Role::ValidateInit => "boinc-validate-init",
            Role::ValidateCompare => "boinc-validate-compare",
        }
    }

    /// The role of that name.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The tokens after the script name in the daemon's spec.
    pub const fn tokens(self) -> &'static str {
        match self {
            Role::Assimilate => "wu_id runtime files",
            Role::ValidateInit => "files result_id runtime",
            Role::ValidateCompare => "files files2 result_id result_id2 runtime runtime2",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Role::Assimilate => "assimilate",
            Role::ValidateInit => "validate_init",
            Role::ValidateCompare => "validate_compare",
        }
    }
}

/// Recognises `BIN __pymw <role> ARGS...` and returns the role and `ARGS`.
pub fn split_role_args<S: AsRef<OsStr>>(argv: &[S]) -> Option<(Role, &[S])> {
    let marker = argv.get(1)?.as_ref();
    let role = argv.get(2)?.as_ref();
    if marker != OsStr::new(ROLE_MARKER) {
        return None;
    }
    let role = Role::from_name(role.to_str()?)?;
    Some((role, argv.get(3..).unwrap_or(&[])))
}

/// What `script_assimilator` reports for a work unit.
#[derive(Debug, Clone, PartialEq)]
pub enum AssimilateCall {
    /// The work unit has a canonical result.
    Canonical {
        /// Work unit id.
        wu_id: u64,
        /// The canonical result's elapsed seconds.
        runtime: f64,
        /// Its output files (absolute upload paths), in template order.
        files: Vec<PathBuf>,
    },
    /// The work unit failed.
    Failed {
        /// Work unit id.
        wu_id: u64,
        /// Why.
        error_mask: WuErrorMask,
    },
}

impl AssimilateCall {
    /// Parses the arguments after the role (`wu_id runtime files...` or
    /// `--error MASK wu_id`).
    pub fn parse<S: AsRef<OsStr>>(args: &[S]) -> Result<Self, DaemonError> {
        const ROLE: &str = "boinc-assimilate";
        let bad = |reason: String| DaemonError::BadArgs { role: ROLE, reason };
        let first = args.first().ok_or_else(|| bad("no arguments".into()))?;
        if first.as_ref() == OsStr::new("--error") {
            if args.len() != 3 {
                return Err(bad(format!(
                    "--error takes 2 values, got {}",
                    args.len() - 1
                )));
            }
            let mask = parse_num::<u32>(ROLE, "error_mask", &args[1])?;
            let wu_id = parse_num(ROLE, "wu_id", &args[2])?;
            return Ok(AssimilateCall::Failed {
                wu_id,
                error_mask: WuErrorMask(mask),
            });
        }
        if args.len() < 2 {
            return Err(bad("need wu_id and runtime".into()));
        }
        Ok(AssimilateCall::Canonical {
            wu_id: parse_num(ROLE, "wu_id", &args[0])?,
            runtime: parse_runtime(ROLE, &args[1])?,
            files: paths(&args[2..]),
        })
    }
}

/// What `script_validator` passes to the init script: one result.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateInitCall {
    /// The result's id.
    pub result_id: u64,
    /// Its elapsed seconds.
    pub runtime: f64,
    /// Its output files, in template order.
    pub files: Vec<PathBuf>,
}

impl ValidateInitCall {
    /// Parses the arguments after the role (`files... result_id runtime`).
    pub fn parse<S: AsRef<OsStr>>(args: &[S]) -> Result<Self, DaemonError> {
        const ROLE: &str = "boinc-validate-init";
        let n = args.len();
        if n < 2 {
            return Err(DaemonError::BadArgs {
                role: ROLE,
                reason: format!("need result_id and runtime, got {n} arguments"),
            });
        }
        Ok(ValidateInitCall {
            result_id: parse_num(ROLE, "result_id", &args[n - 2])?,
            runtime: parse_runtime(ROLE, &args[n - 1])?,
            files: paths(&args[..n - 2]),
        })
    }
}

/// What `script_validator` passes to the compare script: two results.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateCompareCall {
    /// The two results' ids.
    pub result_ids: [u64; 2],
    /// Their elapsed seconds.
    pub runtimes: [f64; 2],
    /// Their output files (the same count for both, as one template made
    /// them).
    pub files: [Vec<PathBuf>; 2],
}

impl ValidateCompareCall {
    /// Parses the arguments after the role
    /// (`files... files2... result_id result_id2 runtime runtime2`).
    pub fn parse<S: AsRef<OsStr>>(args: &[S]) -> Result<Self, DaemonError> {
        const ROLE: &str = "boinc-validate-compare";
        let n = args.len();
        if n < 4 || !(n - 4).is_multiple_of(2) {
            return Err(DaemonError::BadArgs {
                role: ROLE,
                reason: format!("need an even number of files and 4 numbers, got {n} arguments"),
            });
        }
        let half = (n - 4) / 2;
        Ok(ValidateCompareCall {
            result_ids: [
                parse_num(ROLE, "result_id", &args[n - 4])?,
                parse_num(ROLE, "result_id2", &args[n - 3])?,
            ],
            runtimes: [
                parse_runtime(ROLE, &args[n - 2])?,
                parse_runtime(ROLE, &args[n - 1])?,
            ],
            files: [paths(&args[..half]), paths(&args[half..n - 4])],
        })
    }
}

fn paths<S: AsRef<OsStr>>(args: &[S]) -> Vec<PathBuf> {
    args.iter().map(|a| PathBuf::from(a.as_ref())).collect()
}

fn parse_num<T: std::str::FromStr>(
    role: &'static str,
    what: &str,
    arg: impl AsRef<OsStr>,
) -> Result<T, DaemonError> {
    let arg = arg.as_ref();
    arg.to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DaemonError::BadArgs {
            role,
            reason: format!("{what} {arg:?} is not a number"),
        })
}

fn parse_runtime(role: &'static str, arg: impl AsRef<OsStr>) -> Result<f64, DaemonError> {
    let v: f64 = parse_num(role, "runtime", arg)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(DaemonError::BadArgs {
            role,
            reason: format!("runtime {v} out of range"),
        })
    }
}

/// Options common to the daemons of `config.xml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonOptions {
    /// `-d N` log verbosity (3 in the lab).
    pub debug_level: u8,
    /// `--sleep_interval N` seconds to sleep when idle (1 in the lab; the
    /// default of 10 makes each pipeline step up to 10 s slower).
    pub sleep_interval: Option<u32>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            debug_level: 3,
            sleep_interval: Some(1),
        }
    }
}

/// One `<daemon>` of `config.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonEntry {
    /// The command (program in the project's `bin/` and arguments; `bin/start`
    /// splits it like a shell).
    pub cmd: String,
    /// Log file name in the project's log directory.
    pub output: String,
    /// Pid file name.
    pub pid_file: String,
}

impl DaemonEntry {
    /// The element, indented as inside `<boinc><daemons>`.
    pub fn render(&self) -> String {
        format!(
            "        <daemon>\n            <cmd>{}</cmd>\n            <output>{}</output>\n            <pid_file>{}</pid_file>\n        </daemon>\n",
            escape_text(&self.cmd),
            escape_text(&self.output),
            escape_text(&self.pid_file)
        )
    }

    fn for_app(
        program: &str,
        app: &str,
        opts: &DaemonOptions,
        extra: &str,
    ) -> Result<Self, DaemonError> {
        check_name(app)?;
        let mut cmd = format!("{program} -d {} --app {app}", opts.debug_level);
        if let Some(s) = opts.sleep_interval {
            cmd.push_str(&format!(" --sleep_interval {s}"));
        }
        cmd.push_str(extra);
        Ok(DaemonEntry {
            cmd,
            output: format!("{program}_{app}.log"),
            pid_file: format!("{program}_{app}.pid"),
        })
    }

    /// A `script_assimilator` entry running `script_spec` (a script name in
    /// the project's `bin/` followed by tokens).
    pub fn script_assimilator(
        app: &str,
        script_spec: &str,
        opts: &DaemonOptions,
    ) -> Result<Self, DaemonError> {
        check_spec(script_spec)?;
        DaemonEntry::for_app(
            "script_assimilator",
            app,
            opts,
            &format!(" --script \"{script_spec}\""),
        )
    }

    /// A `script_validator` entry with an init and/or a compare script spec.
    pub fn script_validator(
        app: &str,
        init_spec: Option<&str>,
        compare_spec: Option<&str>,
        opts: &DaemonOptions,
    ) -> Result<Self, DaemonError> {
        let mut extra = String::new();
        if let Some(s) = init_spec {
            check_spec(s)?;
            extra.push_str(&format!(" --init_script \"{s}\""));
        }
        if let Some(s) = compare_spec {
            check_spec(s)?;
            extra.push_str(&format!(" --compare_script \"{s}\""));
        }
        if extra.is_empty() {
            return Err(DaemonError::InvalidName(
                "script_validator needs an init or a compare script".into(),
            ));
        }
        DaemonEntry::for_app("script_validator", app, opts, &extra)
    }
}

fn check_name(name: &str) -> Result<(), DaemonError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(DaemonError::InvalidName(name.to_owned()))
    }
}

fn check_spec(spec: &str) -> Result<(), DaemonError> {
    let mut words = spec.split(' ');
    let script = words.next().unwrap_or("");
    check_name(script)?;
    for w in words {
        check_name(w)?;
    }
    Ok(())
}

/// Registration of a pymw binary as one app's assimilator and validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PymwDaemons {
    /// The app's short name.
    pub app: String,
    /// Absolute path of the pymw binary on the server.
    pub binary: PathBuf,
    /// Daemon options.
    pub options: DaemonOptions,
}

impl PymwDaemons {
    /// Registration of `binary` for `app` with the lab's options.
    pub fn new(app: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        PymwDaemons {
            app: app.into(),
            binary: binary.into(),
            options: DaemonOptions::default(),
        }
    }

    /// Name of the shim script for a role in the project's `bin/`:
    /// `pymw_<app>_assimilate`, `pymw_<app>_validate_init`,
    /// `pymw_<app>_validate_compare`.
    pub fn shim_name(&self, role: Role) -> String {
        format!("pymw_{}_{}", self.app, role.suffix())
    }

    /// The shim scripts, `(file name, content)`, each running
    /// `exec 'BINARY' __pymw <role> "$@"`.
    pub fn shim_scripts(&self) -> Result<Vec<(String, String)>, DaemonError> {
        check_name(&self.app)?;
        let bin = self
            .binary
            .to_str()
            .ok_or_else(|| DaemonError::InvalidName(self.binary.display().to_string()))?;
        if !self.binary.is_absolute() || bin.contains(['\n', '\0']) {
            return Err(DaemonError::InvalidName(bin.to_owned()));
        }
        let quoted = format!("'{}'", bin.replace('\'', r"'\''"));
        Ok(Role::ALL
            .into_iter()
            .map(|role| {
                let content = format!(
                    "#!/bin/sh\n# pymw BOINC {} for app {}; generated by pymw, do not edit.\nexec {quoted} {ROLE_MARKER} {} \"$@\"\n",
                    role.name(),
                    self.app,
                    role.name()
                );
                (self.shim_name(role), content)
            })
            .collect())
    }

    /// Writes the shim scripts into `<project>/bin/` with mode 755.
    pub fn install_shims(&self, project_dir: &Path) -> Result<Vec<PathBuf>, DaemonError> {
        use std::os::unix::fs::PermissionsExt as _;
        let bin_dir = project_dir.join("bin");
        let mut written = Vec::new();
        for (name, content) in self.shim_scripts()? {
            let path = bin_dir.join(name);
            let result = fs::write(&path, content)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)));
            result.map_err(|source| DaemonError::Io {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }

    /// The `script_assimilator` entry calling the assimilate shim.
    pub fn assimilator_entry(&self) -> Result<DaemonEntry, DaemonError> {
        let spec = format!(
            "{} {}",
            self.shim_name(Role::Assimilate),
            Role::Assimilate.tokens()
        );
        DaemonEntry::script_assimilator(&self.app, &spec, &self.options)
    }

    /// The `script_validator` entry calling the two validate shims.
    pub fn validator_entry(&self) -> Result<DaemonEntry, DaemonError> {
        let init = format!(
            "{} {}",
            self.shim_name(Role::ValidateInit),
            Role::ValidateInit.tokens()
        );
        let compare = format!(
            "{} {}",
            self.shim_name(Role::ValidateCompare),
            Role::ValidateCompare.tokens()
        );
        DaemonEntry::script_validator(&self.app, Some(&init), Some(&compare), &self.options)
    }
}

/// A reason bit of `workunit.error_mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WuErrorReason {
    /// 1: a result could not be sent (no app version for any host ...).
    CouldntSendResult,
    /// 2: `max_error_results` reached.
    TooManyErrorResults,
    /// 4: `max_success_results` reached without agreement.
    TooManySuccessResults,
    /// 8: `max_total_results` reached.
    TooManyTotalResults,
    /// 16: cancelled (`abort_jobs`, `abort_batch`, `cancel_jobs`).
    Cancelled,
    /// 32: no canonical result.
    NoCanonicalResult,
}

impl WuErrorReason {
    /// Every reason, by bit.
    pub const ALL: [WuErrorReason; 6] = [
        WuErrorReason::CouldntSendResult,
        WuErrorReason::TooManyErrorResults,
        WuErrorReason::TooManySuccessResults,
        WuErrorReason::TooManyTotalResults,
        WuErrorReason::Cancelled,
        WuErrorReason::NoCanonicalResult,
    ];

    /// The bit in `error_mask`.
    pub const fn bit(self) -> u32 {
        match self {
            WuErrorReason::CouldntSendResult => 1,
            WuErrorReason::TooManyErrorResults => 2,
            WuErrorReason::TooManySuccessResults => 4,
            WuErrorReason::TooManyTotalResults => 8,
            WuErrorReason::Cancelled => 16,
            WuErrorReason::NoCanonicalResult => 32,
        }
    }

    /// The name `submit_rpc_handler.php` uses in a job's `<error>` element
    /// (recorded: `too_many_error_results`, `too_many_total_results`,
    /// `cancelled`).
    pub const fn name(self) -> &'static str {
        match self {
            WuErrorReason::CouldntSendResult => "couldnt_send_result",
            WuErrorReason::TooManyErrorResults => "too_many_error_results",
            WuErrorReason::TooManySuccessResults => "too_many_success_results",
            WuErrorReason::TooManyTotalResults => "too_many_total_results",
            WuErrorReason::Cancelled => "cancelled",
            WuErrorReason::NoCanonicalResult => "no_canonical_result",
        }
    }

    /// The reason of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        WuErrorReason::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// `workunit.error_mask`: why a work unit failed (0: it did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WuErrorMask(pub u32);

impl WuErrorMask {
    /// The known reasons set in the mask, by bit.
    pub fn reasons(self) -> Vec<WuErrorReason> {
        WuErrorReason::ALL
            .into_iter()
            .filter(|r| self.0 & r.bit() != 0)
            .collect()
    }

    /// Bits set that no known reason covers.
    pub fn unknown_bits(self) -> u32 {
        self.0 & !WuErrorReason::ALL.iter().fold(0, |m, r| m | r.bit())
    }

    /// Whether a reason is set.
    pub fn contains(self, reason: WuErrorReason) -> bool {
        self.0 & reason.bit() != 0
    }

    /// The mask of these reasons.
    pub fn from_reasons(reasons: impl IntoIterator<Item = WuErrorReason>) -> Self {
        WuErrorMask(reasons.into_iter().fold(0, |m, r| m | r.bit()))
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for WuErrorMask {
    /// `0x<hex> (name, name)`, e.g. `0xa (too_many_error_results, too_many_total_results)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)?;
        let names: Vec<&str> = self
            .reasons()
            .into_iter()
            .map(WuErrorReason::name)
            .collect();
        if !names.is_empty() {
            write!(f, " ({})", names.join(", "))?;
        }
        Ok(())
    }
}

/// Parses one line of `sample_assimilator`'s `sample_results/errors` file:
/// `<wu_name>: 0x<error_mask in hex>`.
pub fn parse_sample_errors_line(line: &str) -> Option<(String, WuErrorMask)> {
    let (name, mask) = line.trim_end().rsplit_once(": 0x")?;
    let mask = u32::from_str_radix(mask, 16).ok()?;
    (!name.is_empty()).then(|| (name.to_owned(), WuErrorMask(mask)))
}

/// The arguments as `OsString`s (helper for callers holding `String`s).
pub fn os_args<S: AsRef<str>>(args: &[S]) -> Vec<OsString> {
    args.iter().map(|a| OsString::from(a.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let m = WuErrorMask(10);
        assert_eq!(
            m.reasons(),
            [
                WuErrorReason::TooManyErrorResults,
                WuErrorReason::TooManyTotalResults
            ]
        );
        assert_eq!(
            m.to_string(),
            "0xa (too_many_error_results, too_many_total_results)"
        );
        assert_eq!(WuErrorMask(64 | 16).unknown_bits(), 64);
        assert!(WuErrorMask(16).contains(WuErrorReason::Cancelled));
        assert_eq!(
            WuErrorMask::from_reasons(WuErrorMask(12).reasons()),
            WuErrorMask(12)
        );
        for r in WuErrorReason::ALL {
            assert_eq!(WuErrorReason::from_name(r.name()), Some(r));
        }
    }

    #[test]
    fn bad_args() {
        let none: [&str; 0] = [];
        assert!(AssimilateCall::parse(&none).is_err());
        assert!(AssimilateCall::parse(&["--error", "10"]).is_err());
        assert!(AssimilateCall::parse(&["x", "0.0"]).is_err());
        assert!(AssimilateCall::parse(&["1", "-1"]).is_err());
        assert!(AssimilateCall::parse(&["1", "inf"]).is_err());
        assert!(ValidateInitCall::parse(&["1"]).is_err());
        assert!(ValidateCompareCall::parse(&["a", "1", "2", "0", "0"]).is_err());
        let c = ValidateCompareCall::parse(&["1", "2", "0", "0"]).unwrap();
        assert!(c.files[0].is_empty() && c.files[1].is_empty());
    }

    #[test]
    fn role_dispatch() {
        let argv = ["/bin/x", "__pymw", "boinc-validate-init", "/f", "3", "0.5"];
        let (role, rest) = split_role_args(&argv).unwrap();
        assert_eq!(role, Role::ValidateInit);
        assert_eq!(rest, &argv[3..]);
        assert!(split_role_args(&["/bin/x", "__pymw"]).is_none());
        assert!(split_role_args(&["/bin/x", "list", "boinc-assimilate"]).is_none());
        assert!(split_role_args(&["/bin/x", "__pymw", "nope"]).is_none());
    }

    #[test]
    fn names_are_checked() {
        assert!(DaemonEntry::script_assimilator("a b", "s", &DaemonOptions::default()).is_err());
        assert!(
            DaemonEntry::script_assimilator("a", "s\"; rm", &DaemonOptions::default()).is_err()
        );
        assert!(DaemonEntry::script_validator("a", None, None, &DaemonOptions::default()).is_err());
        assert!(
            PymwDaemons::new("app", "relative/bin")
                .shim_scripts()
                .is_err()
        );
    }
}
