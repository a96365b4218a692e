//! The few database reads and writes pymw needs on the project host, through
//! the `mysql` command-line client (installed with the MariaDB/MySQL server
//! a BOINC project needs; no client library is linked).
//!
//! - A failed work unit reaches `script_assimilator` only as
//!   `--error <mask> <wu id>` (recorded in `assimilator/`): its name, and
//!   the failed results' exit status and `stderr_out`, are only in the
//!   database.
//! - Cancelling work units is two updates, as BOINC's own `cancel_jobs`
//!   does them: unsent results become "over / didn't need", and the work
//!   unit gets `error_mask |= 16` with `transition_time` now, so that the
//!   transitioner ends it and the assimilator is called with `--error 16`.
//! - A restarted master asks what became of the work units an earlier
//!   master left ([`Db::workunits`]): whether the project still knows them,
//!   whether they were cancelled, and whether they were assimilated
//!   (`assimilate_state` 2, as in the recorded `exit-behaviour/*/db-rows.txt`).
//!
//! Credentials come from `config.xml` and reach `mysql` through a private
//! option file (mode 600, deleted after the call), never on its command
//! line. Queries go on stdin. Free text (names, `stderr_out`) is selected as
//! `HEX(...)`, so that `mysql --batch` escaping never matters.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::project_config::ProjectConfig;
use crate::spool::ResultRecord;

/// The default client program.
pub const DEFAULT_MYSQL: &str = "mysql";
/// Environment variable naming the client program for the daemon roles.
pub const MYSQL_ENV: &str = "PYMW_BOINC_MYSQL";

/// Errors of database access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// `config.xml` has no `<db_name>`.
    #[error("config.xml has no <db_name>")]
    NoDatabase,
    /// The client could not be started or its option file written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The client failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// Its stderr, shortened.
        stderr: String,
    },
    /// The client's output is not what the query returns.
    #[error("unexpected database reply: {0}")]
    Reply(String),
}

/// Access to the project database through the `mysql` client.
#[derive(Debug, Clone)]
pub struct Db {
    program: PathBuf,
    database: String,
    user: Option<String>,
    password: Option<String>,
    host: Option<String>,
}

impl Db {
    /// The project's database, reached with `program` (`mysql`).
    pub fn new(config: &ProjectConfig, program: &Path) -> Result<Self, DbError> {
        Ok(Db {
            program: program.to_owned(),
            database: config.db_name.clone().ok_or(DbError::NoDatabase)?,
            user: config.db_user.clone(),
            password: config.db_passwd.clone(),
            host: config.db_host.clone(),
        })
    }

    /// The client program named by `$PYMW_BOINC_MYSQL`, else `mysql`.
    pub fn program_from_env() -> PathBuf {
        std::env::var_os(MYSQL_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MYSQL))
    }

    /// Runs `sql` and returns the rows, tab-separated columns unescaped.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, DbError> {
        let options = OptionFile::write(self)?;
        let program = self.program.display().to_string();
        let io = |what: &str| {
            let what = format!("{what} {program}");
            move |source| DbError::Io { what, source }
        };
        let mut child = Command::new(&self.program)
            .arg(format!("--defaults-extra-file={}", options.path.display()))
            .args(["--batch", "--skip-column-names"])
            .arg(&self.database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("cannot start"))?;
        let mut stdin = child.stdin.take();
        let sql = sql.to_owned();
        let writer = std::thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                let _ = stdin.write_all(sql.as_bytes());
            }
        });
        let output = child.wait_with_output().map_err(io("cannot run"))?;
        let _ = writer.join();
        drop(options);
        if !output.status.success() {
            return Err(DbError::Failed {
                program,
                status: output.status.to_string(),
                stderr: crate::xml::excerpt(&String::from_utf8_lossy(&output.stderr), 2000),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(unescape_batch).collect())
            .collect())
    }

    /// The name of work unit `wu_id` and its results (in id order).
    pub fn failed_workunit(&self, wu_id: u64) -> Result<(String, Vec<ResultRecord>), DbError> {
        let rows = self.query(&failed_workunit_query(wu_id))?;
        parse_failed_workunit(&rows)
    }

    /// The work units of these names that the project knows, by name (see
    /// the module docs).
    pub fn workunits(
        &self,
        wu_names: &[String],
    ) -> Result<std::collections::HashMap<String, WorkunitState>, DbError> {
        let Some(sql) = workunits_query(wu_names) else {
            return Ok(std::collections::HashMap::new());
        };
        let rows = self.query(&sql)?;
        Ok(parse_workunits(&rows)?
            .into_iter()
            .map(|w| (w.name.clone(), w))
            .collect())
    }

    /// Cancels the work units of these names (see the module docs).
    pub fn cancel(&self, wu_names: &[String]) -> Result<(), DbError> {
        match cancel_query(wu_names) {
            Some(sql) => self.query(&sql).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The query for [`Db::failed_workunit`].
pub fn failed_workunit_query(wu_id: u64) -> String {
    format!(
        "SELECT HEX(w.name), r.id, HEX(r.name), r.outcome, r.client_state, r.exit_status, \
         r.validate_state, HEX(r.stderr_out) FROM workunit w LEFT JOIN result r ON r.workunitid = w.id \
         WHERE w.id = {wu_id} ORDER BY r.id;\n"
    )
}

/// Reads the rows of [`failed_workunit_query`].
pub fn parse_failed_workunit(rows: &[Vec<String>]) -> Result<(String, Vec<ResultRecord>), DbError> {
    let bad = |why: &str| DbError::Reply(why.to_owned());
    let first = rows.first().ok_or_else(|| bad("no such work unit"))?;
    let name = unhex(first.first().ok_or_else(|| bad("empty row"))?)?;
    let mut results = Vec::new();
    for row in rows {
        if row.len() != 8 {
            return Err(bad(&format!("{} columns, expected 8", row.len())));
        }
        if row[1] == "NULL" {
            continue;
        }
        let int = |i: usize| -> Result<i64, DbError> {
            row[i]
                .parse()
                .map_err(|_| bad(&format!("column {i} is not a number: {:?}", row[i])))
        };
        results.push(ResultRecord {
            id: int(1)?.try_into().map_err(|_| bad("negative result id"))?,
            name: unhex(&row[2])?,
            outcome: int(3)?,
            client_state: int(4)?,
            exit_status: int(5)?,
            validate_state: int(6)?,
            stderr_out: if row[7] == "NULL" {
                String::new()
            } else {
                unhex(&row[7])?
            },
        });
    }
    Ok((name, results))
}

/// `assimilate_state` of a work unit whose assimilator has run.
pub const ASSIMILATE_DONE: i64 = 2;

/// A work unit as [`Db::workunits`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkunitState {
    /// Work unit id.
    pub id: u64,
    /// Work unit name.
    pub name: String,
    /// `assimilate_state` (0 not yet, 1 ready, 2 done: [`ASSIMILATE_DONE`]).
    pub assimilate_state: i64,
    /// `error_mask`.
    pub error_mask: crate::WuErrorMask,
}

impl WorkunitState {
    /// Whether the assimilator has run for it: its output or failure
    /// record was delivered (or dropped, when no run directory was there).
    pub fn assimilated(&self) -> bool {
        self.assimilate_state == ASSIMILATE_DONE
    }
}

/// The query for [`Db::workunits`]; `None` for no names. Names are checked
/// as for [`cancel_query`].
pub fn workunits_query(wu_names: &[String]) -> Option<String> {
    let list = name_list(wu_names)?;
    Some(format!(
        "SELECT HEX(name), id, assimilate_state, error_mask FROM workunit WHERE name IN ({list});\n"
    ))
}

/// Reads the rows of [`workunits_query`].
pub fn parse_workunits(rows: &[Vec<String>]) -> Result<Vec<WorkunitState>, DbError> {
    let bad = |why: String| DbError::Reply(why);
    rows.iter()
        .map(|row| {
            if row.len() != 4 {
                return Err(bad(format!("{} columns, expected 4", row.len())));
            }
            let int = |i: usize| -> Result<i64, DbError> {
                row[i]
                    .parse()
                    .map_err(|_| bad(format!("column {i} is not a number: {:?}", row[i])))
            };
            Ok(WorkunitState {
                name: unhex(&row[0])?,
                id: int(1)?
                    .try_into()
                    .map_err(|_| bad("negative work unit id".into()))?,
                assimilate_state: int(2)?,
                error_mask: crate::WuErrorMask(
                    int(3)?
                        .try_into()
                        .map_err(|_| bad(format!("error_mask {:?}", row[3])))?,
                ),
            })
        })
        .collect()
}

/// `'a','b'` for the plain names among these (see
/// [`crate::job_id::is_plain_name`]); `None` when there are none.
fn name_list(wu_names: &[String]) -> Option<String> {
    let names: Vec<String> = wu_names
        .iter()
        .filter(|n| crate::job_id::is_plain_name(n))
        .map(|n| format!("'{n}'"))
        .collect();
    (!names.is_empty()).then(|| names.join(","))
}

/// The updates for [`Db::cancel`]; `None` for no names. Names are checked to
/// be plain work unit names (letters, digits, `_`, `-`, `.`).
pub fn cancel_query(wu_names: &[String]) -> Option<String> {
    let list = name_list(wu_names)?;
    Some(format!(
        "UPDATE result r JOIN workunit w ON r.workunitid = w.id SET r.server_state = 5, r.outcome = 5 \
         WHERE r.server_state = 2 AND w.name IN ({list});\n\
         UPDATE workunit SET error_mask = error_mask | 16, transition_time = UNIX_TIMESTAMP() \
         WHERE name IN ({list});\n"
    ))
}

fn unhex(s: &str) -> Result<String, DbError> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(DbError::Reply(format!("odd hex length {}", bytes.len())));
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let out: Option<Vec<u8>> = bytes
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect();
    out.map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| DbError::Reply("not hex".to_owned()))
}

/// Undoes `mysql --batch` escaping (`\t`, `\n`, `\\`, `\0`).
fn unescape_batch(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A private `[client]` option file, deleted on drop.
struct OptionFile {
    path: PathBuf,
}

impl OptionFile {
    fn write(db: &Db) -> Result<Self, DbError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "pymw-boinc-db-{}-{}.cnf",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut text = String::from("[client]\n");
        for (key, value) in [
            ("user", &db.user),
            ("password", &db.password),
            ("host", &db.host),
        ] {
            if let Some(v) = value {
                text.push_str(&format!("{key}={}\n", quote(v)));
            }
        }
        let _ = std::fs::remove_file(&path);
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        result.map_err(|source| DbError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })?;
        Ok(OptionFile { path })
    }
}

impl Drop for OptionFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_unescape_and_hex() {
        assert_eq!(unescape_batch(r"a\tb\nc\\d"), "a\tb\nc\\d");
        assert_eq!(unhex("41420a").unwrap(), "AB\n");
        assert!(unhex("4").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn cancel_query_keeps_only_plain_names() {
        assert_eq!(cancel_query(&["x'; drop".into()]), None);
        let q = cancel_query(&["pymw_r1_a".into(), "pymw_r1_b".into()]).unwrap();
        assert!(q.contains("w.name IN ('pymw_r1_a','pymw_r1_b')"), "{q}");
        assert!(q.contains("error_mask = error_mask | 16"));
    }

    #[test]
    fn workunit_rows() {
        assert_eq!(workunits_query(&["a b".into()]), None);
        let q = workunits_query(&["pymw_r1_a".into(), "pymw_r1_b".into()]).unwrap();
        assert_eq!(
            q,
            "SELECT HEX(name), id, assimilate_state, error_mask FROM workunit \
             WHERE name IN ('pymw_r1_a','pymw_r1_b');\n"
        );
        let rows = vec![
            vec!["6162".into(), "39".into(), "2".into(), "8".into()],
            vec!["6364".into(), "40".into(), "0".into(), "0".into()],
        ];
        let states = parse_workunits(&rows).unwrap();
        assert_eq!(states[0].name, "ab");
        assert!(states[0].assimilated() && !states[1].assimilated());
        assert_eq!((states[0].id, states[0].error_mask.0), (39, 8));
        assert!(
            parse_workunits(&[vec!["6162".into(), "x".into(), "0".into(), "0".into()]]).is_err()
        );
        assert!(parse_workunits(&[vec!["6162".into()]]).is_err());
    }

    #[test]
    fn failed_workunit_rows() {
        let rows = vec![vec![
            "6162".to_owned(),
            "51".to_owned(),
            "61625f30".to_owned(),
            "3".to_owned(),
            "3".to_owned(),
            "101".to_owned(),
            "2".to_owned(),
            "NULL".to_owned(),
        ]];
        let (name, results) = parse_failed_workunit(&rows).unwrap();
        assert_eq!(name, "ab");
        assert_eq!(results[0].name, "ab_0");
        assert_eq!(results[0].exit_status, 101);
        let none = vec![vec![
            "6162".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
        ]];
        assert!(parse_failed_workunit(&none).unwrap().1.is_empty());
        assert!(parse_failed_workunit(&[]).is_err());
    }
}
