//! App versions on the project server: `apps/APP/VERSION/PLATFORM/`,
//! `version.xml`, content-hashed physical file names, and the output of
//! `bin/update_versions`.
//!
//! Recorded with 7.20.5 (`app-versions/`):
//! - Version directories are named `<major>.<minor>`; the database and the
//!   client use `version_num = major*100 + minor` (1.0 is 100, 5.0 is 500).
//!   The scheduler sends the highest non-deprecated version for the host's
//!   platform (`x86_64-pc-linux-gnu` for 64-bit Linux).
//! - Without `version.xml` the directory holds only the main program. With
//!   it, each `<file>` is named by `<physical_name>`, may have a
//!   `<logical_name>` (its name in the slot), and one is `<main_program/>`.
//! - Physical names must never be reused for other content (the client and
//!   the download directory keep files by name): the lab's own files embed a
//!   hash, `rustworker_1.0_530887c17158_x86_64-pc-linux-gnu`;
//!   [`physical_name`] builds such names from a SHA-256 prefix.
//! - `bin/update_versions` (fed `y` answers) signs every file with the
//!   project's key, copies it to the top of `download/`, and prints one
//!   `Found app version directory for: APP VERSION PLATFORM` block per
//!   version directory, ending in `App version added successfully; ID=N` or
//!   `(already exists in database)` ([`UpdateVersionsReport`]). After it,
//!   touch `reread_db` in the project directory so the running feeder
//!   reloads apps and versions.
//! - A plain (non-API) version got no API version in the database; the
//!   wrapper version got `<api_version>7.20.5</api_version>`, which decides
//!   the client's shared-memory kind (see [`crate::shmem`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::hex;
use crate::xml::escape_text;

/// Platform name of 64-bit Linux.
pub const PLATFORM_X86_64_LINUX: &str = "x86_64-pc-linux-gnu";
/// Hex digits of the content hash in physical names (as in the lab).
pub const HASH_LEN: usize = 12;
/// File touched in the project directory to make the feeder reload versions.
pub const REREAD_DB_FILE: &str = "reread_db";

/// Errors of app-version operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppVersionError {
    /// A version string is not `<major>.<minor>` with minor below 100.
    #[error("invalid version {0:?}")]
    InvalidVersion(String),
    /// A name would escape its directory or cannot be a file name.
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// An app version number, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionNumber {
    /// Major part.
    pub major: u32,
    /// Minor part, below 100.
    pub minor: u32,
}

impl VersionNumber {
    /// `major.minor`.
    pub fn new(major: u32, minor: u32) -> Result<Self, AppVersionError> {
        if minor >= 100 || major > u32::MAX / 100 - 1 {
            return Err(AppVersionError::InvalidVersion(format!("{major}.{minor}")));
        }
        Ok(VersionNumber { major, minor })
    }

    /// Parses a directory name such as `5.0`.
    pub fn parse(s: &str) -> Result<Self, AppVersionError> {
        let bad = || AppVersionError::InvalidVersion(s.to_owned());
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return Err(bad());
        }
        let major = major.parse().map_err(|_| bad())?;
        let minor = minor.parse().map_err(|_| bad())?;
        VersionNumber::new(major, minor).map_err(|_| bad())
    }

    /// The database's `version_num`: `major*100 + minor`.
    pub fn version_num(self) -> u32 {
        self.major * 100 + self.minor
    }

    /// The next major version, `(major+1).0`.
    pub fn next_major(self) -> Result<Self, AppVersionError> {
        VersionNumber::new(self.major + 1, 0)
    }
}

impl std::fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first [`HASH_LEN`] hex digits of the SHA-256 of `content`.
pub fn content_hash(content: &[u8]) -> String {
    let mut h = hex::sha256_hex(content);
    h.truncate(HASH_LEN);
    h
}

/// `<stem>_<version>_<hash>_<platform>`, the lab's naming of app files.
pub fn physical_name(stem: &str, version: VersionNumber, hash: &str, platform: &str) -> String {
    format!("{stem}_{version}_{hash}_{platform}")
}

/// `apps/APP/VERSION/PLATFORM` under the project directory.
pub fn version_dir(
    project_dir: &Path,
    app: &str,
    version: VersionNumber,
    platform: &str,
) -> PathBuf {
    project_dir
        .join("apps")
        .join(app)
        .join(version.to_string())
        .join(platform)
}

fn check_name(name: &str) -> Result<(), AppVersionError> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\0', '\n'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(AppVersionError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The versions of `app` that have a `platform` directory, ascending.
/// Directories whose names are not versions are skipped.
pub fn existing_versions(
    project_dir: &Path,
    app: &str,
    platform: &str,
) -> Result<Vec<VersionNumber>, AppVersionError> {
    check_name(app)?;
    check_name(platform)?;
    let app_dir = project_dir.join("apps").join(app);
    let entries = match fs::read_dir(&app_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AppVersionError::Io {
                path: app_dir,
                source,
            });
        }
    };
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| AppVersionError::Io {
            path: app_dir.clone(),
            source,
        })?;
        let Some(v) = entry
            .file_name()
            .to_str()
            .and_then(|n| VersionNumber::parse(n).ok())
        else {
            continue;
        };
        if entry.path().join(platform).is_dir() {
            versions.push(v);
        }
    }
    versions.sort();
    Ok(versions)
}

/// What to do for a binary about to be deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionPlan {
    /// A version directory already holds a file of that physical name: the
    /// content is already deployed as this version.
    Existing(VersionNumber),
    /// Create this version (one major above the highest, or 1.0).
    New(VersionNumber),
}

/// Chooses the version for a file: the existing version holding
/// `physical` (searched with the version's own number in the name, see
/// [`physical_name`]) or the next major version.
pub fn plan_version(
    project_dir: &Path,
    app: &str,
    platform: &str,
    stem: &str,
    hash: &str,
) -> Result<VersionPlan, AppVersionError> {
    let versions = existing_versions(project_dir, app, platform)?;
    for &v in versions.iter().rev() {
        let name = physical_name(stem, v, hash, platform);
        if version_dir(project_dir, app, v, platform)
            .join(name)
            .is_file()
        {
            return Ok(VersionPlan::Existing(v));
        }
    }
    match versions.last() {
        Some(v) => v.next_major().map(VersionPlan::New),
        None => VersionNumber::new(1, 0).map(VersionPlan::New),
    }
}

/// One `<file>` of `version.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFile {
    /// File name in the version directory (and everywhere else).
    pub physical_name: String,
    /// Name in the slot, if not the physical name.
    pub logical_name: Option<String>,
    /// The program the client starts.
    pub main_program: bool,
    /// Served gzip-compressed: `update_versions` then puts `FILE.gz` next
    /// to the file in `download/` and announces `<gzipped_url>` and
    /// `<gzipped_nbytes>`; clients download the smaller file and unpack it.
    pub gzip: bool,
}

/// `version.xml` of an app version directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionXml {
    /// The files, main program first by convention.
    pub files: Vec<VersionFile>,
    /// The main program is BOINC's wrapper.
    pub is_wrapper: bool,
    /// `<api_version>` (not recorded in a `version.xml`; BOINC documents it
    /// and `update_versions` 7.20.5 looks for it).
    pub api_version: Option<String>,
}

impl VersionXml {
    /// The file text, in the recorded layout.
    pub fn render(&self) -> String {
        let mut s = String::from("<version>\n");
        for f in &self.files {
            s.push_str("    <file><physical_name>");
            s.push_str(&escape_text(&f.physical_name));
            s.push_str("</physical_name>");
            if let Some(l) = &f.logical_name {
                s.push_str("<logical_name>");
                s.push_str(&escape_text(l));
                s.push_str("</logical_name>");
            }
            if f.main_program {
                s.push_str("<main_program/>");
            }
            if f.gzip {
                s.push_str("<gzip/>");
            }
            s.push_str("</file>\n");
        }
        if let Some(api) = &self.api_version {
            s.push_str("    <api_version>");
            s.push_str(&escape_text(api));
            s.push_str("</api_version>\n");
        }
        if self.is_wrapper {
            s.push_str("    <is_wrapper/>\n");
        }
        s.push_str("</version>\n");
        s
    }
}

/// The job description of BOINC's wrapper (`job.xml`) for one task, in the
/// recorded layout.
pub fn wrapper_job_xml(application: &str, command_line: Option<&str>) -> String {
    let mut s = String::from("<job_desc>\n    <task>\n");
    s.push_str(&format!(
        "        <application>{}</application>\n",
        escape_text(application)
    ));
    if let Some(cl) = command_line {
        s.push_str(&format!(
            "        <command_line>{}</command_line>\n",
            escape_text(cl)
        ));
    }
    s.push_str("    </task>\n</job_desc>\n");
    s
}

/// Copies `source` into the version directory `dir` (see [`version_dir`];
/// created if needed) as `physical`, mode 755 if `executable`. The copy is
/// written under a temporary name and renamed. An existing file of that
/// name is left alone (names are content-hashed, so it holds the same
/// content).
pub fn install_file(
    dir: &Path,
    source: &Path,
    physical: &str,
    executable: bool,
) -> Result<PathBuf, AppVersionError> {
    check_name(physical)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let target = dir.join(physical);
    if !target.exists() {
        let partial = dir.join(format!(".{physical}.part"));
        fs::copy(source, &partial).map_err(io_err(source))?;
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))
                .map_err(io_err(&partial))?;
        }
        fs::rename(&partial, &target).map_err(io_err(&target))?;
    }
    Ok(target)
}

/// Writes `version.xml` into the version directory `dir`.
pub fn write_version_xml(dir: &Path, version_xml: &VersionXml) -> Result<PathBuf, AppVersionError> {
    let path = dir.join("version.xml");
    fs::write(&path, version_xml.render()).map_err(io_err(&path))?;
    Ok(path)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AppVersionError + use<> {
    let path = path.to_owned();
    move |source| AppVersionError::Io { path, source }
}

/// What `update_versions` did with one version directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionOutcome {
    /// Added to the database with this `app_version` id.
    Added {
        /// The new row's id.
        id: u64,
    },
    /// Already in the database; nothing done.
    AlreadyExists,
    /// Neither line was printed (for example the answer was not `y`, or an
    /// error); the block's text is kept.
    Unknown(String),
}

/// One `Found app version directory for:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundVersion {
    /// App name.
    pub app: String,
    /// Version as written (`5.0`).
    pub version: String,
    /// Platform.
    pub platform: String,
    /// Plan class, if the line had one.
    pub plan_class: Option<String>,
    /// What happened.
    pub outcome: VersionOutcome,
}

/// The parsed output (stdout and stderr together) of `bin/update_versions`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateVersionsReport {
    /// Every version directory found, in output order.
    pub versions: Vec<FoundVersion>,
    /// The code-signing notice (private key on the server) was printed.
    pub signing_notice: bool,
}

impl UpdateVersionsReport {
    /// Parses the output.
    pub fn parse(output: &str) -> Self {
        const FOUND: &str = "Found app version directory for:";
        let mut report = UpdateVersionsReport {
            signing_notice: output.contains("You have not provided a signature file"),
            ..UpdateVersionsReport::default()
        };
        let mut starts: Vec<(usize, usize)> = Vec::new();
        let mut offset = 0;
        while let Some(pos) = output[offset..].find(FOUND) {
            let at = offset + pos;
            starts.push((at, at + FOUND.len()));
            offset = at + FOUND.len();
        }
        for (i, &(_, after)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(output.len(), |&(next, _)| next);
            let block = &output[after..end];
            let (head, body) = block.split_once('\n').unwrap_or((block, ""));
            let mut words = head.split_whitespace();
            let (Some(app), Some(version), Some(platform)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let outcome = if body.contains("(already exists in database)") {
                VersionOutcome::AlreadyExists
            } else if let Some(id) = body
                .split_once("App version added successfully; ID=")
                .and_then(|(_, rest)| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
            {
                VersionOutcome::Added { id }
            } else {
                VersionOutcome::Unknown(crate::xml::excerpt(body, 2000))
            };
            report.versions.push(FoundVersion {
                app: app.to_owned(),
                version: version.to_owned(),
                platform: platform.to_owned(),
                plan_class: words.next().map(str::to_owned),
                outcome,
            });
        }
        report
    }

    /// The outcome for one app version, if it was listed.
    pub fn outcome(&self, app: &str, version: &str, platform: &str) -> Option<&VersionOutcome> {
        self.versions
            .iter()
            .find(|v| v.app == app && v.version == version && v.platform == platform)
            .map(|v| &v.outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        let v = VersionNumber::parse("5.0").unwrap();
        assert_eq!(v.version_num(), 500);
        assert_eq!(v.to_string(), "5.0");
        assert_eq!(VersionNumber::parse("1.5").unwrap().version_num(), 105);
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "a.b",
            "1.100",
            "1.0.0",
            "-1.0",
            "99999999999.0",
        ] {
            assert!(VersionNumber::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(v.next_major().unwrap(), VersionNumber::new(6, 0).unwrap());
    }

    #[test]
    fn names() {
        let v = VersionNumber::new(1, 0).unwrap();
        assert_eq!(
            physical_name("rustworker", v, "530887c17158", PLATFORM_X86_64_LINUX),
            "rustworker_1.0_530887c17158_x86_64-pc-linux-gnu"
        );
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01");
        assert!(check_name("../x").is_err());
        assert!(check_name("a b").is_err());
    }
}
