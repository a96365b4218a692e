//! The parts of a project's `config.xml` pymw uses (recorded:
//! `lab-config/project-config.xml`).

use std::path::{Path, PathBuf};

use crate::create_work::DEFAULT_FANOUT;
use crate::xml;

/// The largest `config.xml` read.
const CONFIG_MAX: u64 = 4 * 1024 * 1024;

/// Errors reading `config.xml`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a `<boinc><config>` document.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A project's `config.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProjectConfig {
    /// The project directory (where `config.xml` is).
    pub project_dir: PathBuf,
    /// `<download_dir>` (default `<project>/download`).
    pub download_dir: PathBuf,
    /// `<upload_dir>` (default `<project>/upload`).
    pub upload_dir: PathBuf,
    /// `<uldl_dir_fanout>` (default 1024).
    pub fanout: u32,
    /// `<host>`: the server's host name (its `tmp_<host>` and `log_<host>`).
    pub host: Option<String>,
    /// `<master_url>`.
    pub master_url: Option<String>,
    /// `<db_name>`.
    pub db_name: Option<String>,
    /// `<db_user>`.
    pub db_user: Option<String>,
    /// `<db_passwd>`.
    pub db_passwd: Option<String>,
    /// `<db_host>`.
    pub db_host: Option<String>,
    /// The `<cmd>` of every `<daemons><daemon>`.
    pub daemon_cmds: Vec<String>,
}

impl ProjectConfig {
    /// Reads `<project_dir>/config.xml`.
    pub fn load(project_dir: &Path) -> Result<Self, ConfigError> {
        use std::io::Read as _;
        let path = project_dir.join("config.xml");
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(CONFIG_MAX).read_to_end(&mut bytes))
            .map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
        ProjectConfig::parse(project_dir, &String::from_utf8_lossy(&bytes))
            .map_err(|message| ConfigError::Invalid { path, message })
    }

    /// Parses the text of `config.xml` of the project at `project_dir`.
    pub fn parse(project_dir: &Path, text: &str) -> Result<Self, String> {
        let doc = xml::parse(text).map_err(|e| e.to_string())?;
        let boinc = doc.child("boinc").ok_or("no <boinc> element")?;
        let config = boinc.child("config").ok_or("no <config> element")?;
        let text = |name: &str| {
            config
                .child_text(name)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let fanout = match text("uldl_dir_fanout") {
            None => DEFAULT_FANOUT,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|&f| f > 0)
                .ok_or_else(|| format!("bad <uldl_dir_fanout> {s:?}"))?,
        };
        let daemon_cmds = boinc
            .child("daemons")
            .map(|d| {
                d.children_named("daemon")
                    .filter_map(|d| d.child_text("cmd"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(ProjectConfig {
            project_dir: project_dir.to_owned(),
            download_dir: text("download_dir")
                .map_or_else(|| project_dir.join("download"), PathBuf::from),
            upload_dir: text("upload_dir")
                .map_or_else(|| project_dir.join("upload"), PathBuf::from),
            fanout,
            host: text("host"),
            master_url: text("master_url"),
            db_name: text("db_name"),
            db_user: text("db_user"),
            db_passwd: config.child("db_passwd").map(|e| e.text.clone()),
            db_host: text("db_host"),
            daemon_cmds,
        })
    }

    /// Where `stage_file` puts a file of that name: `download/<dir>/<name>`.
    pub fn download_path(&self, name: &str) -> PathBuf {
        self.download_dir
            .join(crate::create_work::download_subdir(name, self.fanout))
            .join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_bad() {
        let c = ProjectConfig::parse(Path::new("/p"), "<boinc><config></config></boinc>").unwrap();
        assert_eq!(c.download_dir, Path::new("/p/download"));
        assert_eq!(c.fanout, 1024);
        assert!(ProjectConfig::parse(Path::new("/p"), "<x/>").is_err());
        assert!(
            ProjectConfig::parse(
                Path::new("/p"),
                "<boinc><config><uldl_dir_fanout>0</uldl_dir_fanout></config></boinc>"
            )
            .is_err()
        );
    }
}
