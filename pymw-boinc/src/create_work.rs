//! `bin/create_work`: the command line for `--stdin` batches, the job lines
//! fed on its stdin, and the meaning of its output; also where staged input
//! files live (the download hierarchy).
//!
//! Recorded with 7.20.5 (`create-work/`), run from the project directory:
//! - `bin/create_work --appname APP [--wu_template T --result_template R]
//!   --stdin` reads one job per line: per-job options followed by the job's
//!   input file names, e.g.
//!   `--wu_name cw_012439_s0 --command_line "--tag cw-stdin --job 0" cw_012439_in`.
//!   Options on the command line apply to all lines. Lines are split like
//!   BOINC's `parse_command_line`: whitespace separates, a token starting
//!   with `"` or `'` runs to the next same quote, there is no escaping.
//! - Success prints nothing and exits 0. Failure exits 1 with the reason on
//!   stderr (sometimes a stray line on stdout), usually several lines ending
//!   with `create_work: ...` or `create_work() failed: N`; there is no
//!   machine-readable error code.
//! - A `--stdin` batch is all-or-nothing: one bad line (missing input,
//!   duplicate name) and no job of the batch is created.
//! - Work unit names must be unique; a reused name fails with the database's
//!   `Duplicate entry` error.
//! - The job's `--command_line` is split again by the client when it starts
//!   the app (`"two words"` arrives as one argument):
//!   [`command_line_from_args`] quotes arguments so they survive that.
//! - `bin/stage_file --copy FILE` puts an input at `download/<dir>/<name>`
//!   with a companion `<name>.md5` holding `<md5 hex> <size>\n`;
//!   [`download_subdir`] computes `<dir>` as `bin/dir_hier_path` does.
//!   Staged files are immutable: same name with different content is refused.

use crate::hex;
use crate::xml::excerpt;

/// Path of the program, relative to the project directory.
pub const CREATE_WORK: &str = "bin/create_work";
/// Fan-out of the download/upload hierarchy in the lab (`<uldl_dir_fanout>`).
pub const DEFAULT_FANOUT: u32 = 1024;
/// Most bytes of create_work's output kept in an error.
const OUTPUT_KEEP: usize = 4000;

/// Errors of building job lines or of a failed `create_work` run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateWorkError {
    /// A value cannot be written on a `create_work` line (newline, NUL,
    /// or both kinds of quote together with whitespace).
    #[error("{what} {value:?} cannot be passed to create_work")]
    Unquotable {
        /// Which value.
        what: &'static str,
        /// The value (shortened).
        value: String,
    },
    /// A job has no input file, or an empty name was given.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// The work unit name is already in the database.
    #[error("work unit name {name:?} already exists")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An input file was not staged (create_work looked for it here).
    #[error("input file not staged: {path}")]
    MissingInput {
        /// Path in the download hierarchy.
        path: String,
    },
    /// `--appname` names no app.
    #[error("create_work: app not found")]
    UnknownApp,
    /// More input files than the template has `<file_info>`s.
    #[error("{given} input files given, but the template has {expected}")]
    WrongInputCount {
        /// Names given.
        given: u32,
        /// `<file_info>`s in the template.
        expected: u32,
    },
    /// Fewer input files than the template needs.
    #[error("too few input files; need at least {need}")]
    TooFewInputs {
        /// Names needed.
        need: u32,
    },
    /// The input template is missing or has no `<workunit>`.
    #[error("bad workunit template: {0}")]
    BadTemplate(String),
    /// Any other failure.
    #[error("create_work failed (exit {exit_code:?}): {message}")]
    Failed {
        /// Exit code (`None`: killed by a signal).
        exit_code: Option<i32>,
        /// The last line of stderr (or stdout).
        message: String,
        /// stderr, shortened.
        stderr: String,
    },
}

impl CreateWorkError {
    /// Whether `create_work` would refuse the same jobs again: a rejected
    /// option or template, an unknown app, a job line it cannot take, or
    /// any exit with an error code. Not: a duplicate name (the next attempt
    /// has a new one), an input not staged, or `create_work` killed by a
    /// signal, which another try may get past.
    pub fn is_deterministic(&self) -> bool {
        match self {
            CreateWorkError::Unquotable { .. }
            | CreateWorkError::InvalidJob(_)
            | CreateWorkError::UnknownApp
            | CreateWorkError::WrongInputCount { .. }
            | CreateWorkError::TooFewInputs { .. }
            | CreateWorkError::BadTemplate(_) => true,
            CreateWorkError::DuplicateName { .. } | CreateWorkError::MissingInput { .. } => false,
            CreateWorkError::Failed { exit_code, .. } => exit_code.is_some(),
        }
    }

    /// The whole reason: the error, and for [`CreateWorkError::Failed`]
    /// all of `create_work`'s stderr kept, not only its last line.
    pub fn reason(&self) -> String {
        match self {
            CreateWorkError::Failed { stderr, .. } if !stderr.trim().is_empty() => {
                let mut text = self.to_string();
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.len() > 1 {
                    text.push_str("; its stderr:\n");
                    text.push_str(&lines.join("\n"));
                }
                text
            }
            _ => self.to_string(),
        }
    }
}

/// The `create_work` invocation shared by every job of a `--stdin` batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateWorkCommand {
    /// The app's short name.
    pub appname: String,
    /// Input template, relative to the project (default `templates/APP_in`).
    pub wu_template: Option<String>,
    /// Result template, relative to the project (default `templates/APP_out`).
    pub result_template: Option<String>,
    /// Batch id to put the jobs in.
    pub batch: Option<u64>,
}

impl CreateWorkCommand {
    /// A command for `appname` with the app's default templates.
    pub fn new(appname: impl Into<String>) -> Self {
        CreateWorkCommand {
            appname: appname.into(),
            wu_template: None,
            result_template: None,
            batch: None,
        }
    }

    /// The arguments after [`CREATE_WORK`], ending with `--stdin`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--appname".to_owned(), self.appname.clone()];
        if let Some(t) = &self.wu_template {
            args.extend(["--wu_template".to_owned(), t.clone()]);
        }
        if let Some(t) = &self.result_template {
            args.extend(["--result_template".to_owned(), t.clone()]);
        }
        if let Some(b) = self.batch {
            args.extend(["--batch".to_owned(), b.to_string()]);
        }
        args.push("--stdin".to_owned());
        args
    }
}

/// One job of a `--stdin` batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLine {
    /// Work unit name (unique in the project; letters, digits, `_`, `-`,
    /// `.`).
    pub wu_name: String,
    /// The app's command line, already quoted for the client's split (see
    /// [`command_line_from_args`]); `None` for none.
    pub command_line: Option<String>,
    /// Staged input file names, one per `<file_info>` of the template
    /// (same characters as `wu_name`).
    pub input_files: Vec<String>,
}

impl JobLine {
    /// The stdin line, without the newline.
    pub fn render(&self) -> Result<String, CreateWorkError> {
        check_name("wu_name", &self.wu_name)?;
        if self.input_files.is_empty() {
            return Err(CreateWorkError::InvalidJob(format!(
                "job {} has no input file",
                self.wu_name
            )));
        }
        let mut line = format!("--wu_name {}", self.wu_name);
        if let Some(cl) = &self.command_line {
            line.push_str(" --command_line ");
            line.push_str(&quote_token("command_line", cl)?);
        }
        for f in &self.input_files {
            check_name("input file name", f)?;
            line.push(' ');
            line.push_str(f);
        }
        Ok(line)
    }
}

/// Work unit and staged file names: letters, digits, `_`, `-`, `.`, not
/// starting with `-` or `.` (they become file names in the download
/// hierarchy and tokens on the job line).
fn check_name(what: &str, name: &str) -> Result<(), CreateWorkError> {
    let ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CreateWorkError::InvalidJob(format!(
            "{what} {:?} (use letters, digits, '_', '-', '.')",
            excerpt(name, 80)
        )))
    }
}

/// The whole stdin of a `--stdin` run: one line per job, each ending in a
/// newline.
pub fn render_stdin(jobs: &[JobLine]) -> Result<String, CreateWorkError> {
    let mut s = String::new();
    for job in jobs {
        s.push_str(&job.render()?);
        s.push('\n');
    }
    Ok(s)
}

/// Quotes one token for BOINC's `parse_command_line` (which has no
/// escapes): bare if it has no whitespace and does not start with a quote,
/// else in `"..."`, else in `'...'`.
pub fn quote_token(what: &'static str, value: &str) -> Result<String, CreateWorkError> {
    let unquotable = || CreateWorkError::Unquotable {
        what,
        value: excerpt(value, 80),
    };
    if value.contains(['\n', '\r', '\0']) {
        return Err(unquotable());
    }
    let needs_quotes =
        value.is_empty() || value.contains(char::is_whitespace) || value.starts_with(['"', '\'']);
    if needs_quotes && value.ends_with('\\') {
        // Newer BOINC versions do not end a quoted token at a quote that
        // follows a backslash.
        return Err(unquotable());
    }
    if !needs_quotes {
        Ok(value.to_owned())
    } else if !value.contains('"') {
        Ok(format!("\"{value}\""))
    } else if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else {
        Err(unquotable())
    }
}

/// A command line the client splits back into exactly `args` (each quoted
/// with [`quote_token`], joined by spaces). To fit on a `--stdin` job line
/// the result must not contain both `"` and `'` (arguments with whitespace
/// get `"` quotes, so avoid `'` in arguments then).
pub fn command_line_from_args<S: AsRef<str>>(args: &[S]) -> Result<String, CreateWorkError> {
    let quoted: Result<Vec<String>, _> = args
        .iter()
        .map(|a| quote_token("argument", a.as_ref()))
        .collect();
    Ok(quoted?.join(" "))
}

/// Splits a line as BOINC's `parse_command_line` does (whitespace, `"..."`
/// and `'...'` tokens, no escapes). This is how `create_work --stdin` reads
/// a job line and how the client splits a job's command line.
pub fn split_command_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut token = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
                token.push(d);
            }
        } else {
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                token.push(d);
                chars.next();
            }
        }
        out.push(token);
    }
    out
}

/// Interprets a finished `create_work` run.
pub fn check_output(
    exit_code: Option<i32>,
    stdout: &str,
    stderr: &str,
) -> Result<(), CreateWorkError> {
    if exit_code == Some(0) {
        return Ok(());
    }
    for line in stderr.lines() {
        if let Some((_, rest)) = line.split_once("Duplicate entry '")
            && let Some((name, _)) = rest.split_once('\'')
        {
            return Err(CreateWorkError::DuplicateName {
                name: name.to_owned(),
            });
        }
        if let Some(path) = line.strip_prefix("md5_file: can't open ") {
            return Err(CreateWorkError::MissingInput {
                path: path.trim().to_owned(),
            });
        }
        if line.trim() == "create_work: app not found" {
            return Err(CreateWorkError::UnknownApp);
        }
        if let Some(rest) = line.strip_prefix("process_input_template: ") {
            if let Some((given, expected)) = rest
                .split_once(" input files given, but template has ")
                .and_then(|(g, e)| Some((g.trim().parse().ok()?, e.trim().parse().ok()?)))
            {
                return Err(CreateWorkError::WrongInputCount { given, expected });
            }
            if rest.starts_with("bad WU template") {
                return Err(CreateWorkError::BadTemplate(rest.trim().to_owned()));
            }
        }
        if let Some(need) = line
            .strip_prefix("Too few var input files given; need at least ")
            .and_then(|n| n.trim().parse().ok())
        {
            return Err(CreateWorkError::TooFewInputs { need });
        }
    }
    let last = |s: &str| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| excerpt(l, 300))
    };
    Err(CreateWorkError::Failed {
        exit_code,
        message: last(stderr)
            .or_else(|| last(stdout))
            .unwrap_or_else(|| "no output".to_owned()),
        stderr: excerpt(stderr, OUTPUT_KEEP),
    })
}

/// The subdirectory of `download/` (or `upload/`) holding `name`:
/// lowercase hex of (the 28 bits of `md5(name)` after its first hex digit)
/// modulo `fanout`, as BOINC's `dir_hier_path` computes it.
pub fn download_subdir(name: &str, fanout: u32) -> String {
    let md5 = hex::md5_hex(&[name.as_bytes()]);
    let n = u32::from_str_radix(&md5[1..8], 16).unwrap_or(0);
    format!("{:x}", n % fanout.max(1))
}

/// Content of the `<name>.md5` companion `stage_file` writes next to a
/// staged file: `<md5 hex> <size>\n`.
pub fn md5_companion(content: &[u8]) -> String {
    format!("{} {}\n", hex::md5_hex(&[content]), content.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_will_not_change_are_told_apart() {
        // Recorded: `create_work` given `--max_error_results 0`.
        let e = check_output(
            Some(255),
            "",
            "2026-12-04 17:00:00 [pymw] create_work: no max_error_results given\nerror -191\n",
        )
        .unwrap_err();
        assert!(e.is_deterministic());
        let reason = e.reason();
        assert!(reason.contains("no max_error_results given"), "{reason}");
        assert!(reason.contains("error -191"), "{reason}");
        assert!(CreateWorkError::UnknownApp.is_deterministic());
        let killed = check_output(None, "", "").unwrap_err();
        assert!(!killed.is_deterministic());
        let missing =
            check_output(Some(1), "", "md5_file: can't open /p/download/1/x\n").unwrap_err();
        assert!(!missing.is_deterministic());
    }

    #[test]
    fn quoting_round_trips_through_the_split() {
        let args = ["--tag", "two words", "x=1", "", "say \"hi\" now", "'q"];
        let line = command_line_from_args(&args).unwrap();
        assert_eq!(split_command_line(&line), args);
        // Both quote kinds in one command line cannot go on a job line.
        let job = JobLine {
            wu_name: "w".into(),
            command_line: Some(line),
            input_files: vec!["w_in".into()],
        };
        assert!(matches!(
            job.render(),
            Err(CreateWorkError::Unquotable { .. })
        ));
        let line = command_line_from_args(&["--tag", "two words", "x=1"]).unwrap();
        let job = JobLine {
            wu_name: "w".into(),
            command_line: Some(line.clone()),
            input_files: vec!["w_in".into()],
        };
        let rendered = job.render().unwrap();
        let split = split_command_line(&rendered);
        assert_eq!(split, ["--wu_name", "w", "--command_line", &line, "w_in"]);
        assert!(quote_token("x", "a\"b' c").is_err());
        assert!(quote_token("x", "a\nb").is_err());
        assert!(quote_token("x", "a b\\").is_err());
        assert_eq!(quote_token("x", "a\\b").unwrap(), "a\\b");
    }

    #[test]
    fn invalid_jobs() {
        let job = JobLine {
            wu_name: "w".into(),
            command_line: None,
            input_files: vec![],
        };
        assert!(matches!(job.render(), Err(CreateWorkError::InvalidJob(_))));
        let job = JobLine {
            input_files: vec!["--evil".into()],
            ..job
        };
        assert!(job.render().is_err());
        let job = JobLine {
            wu_name: "a b".into(),
            input_files: vec!["x".into()],
            ..job
        };
        assert!(job.render().is_err());
    }

    #[test]
    fn unknown_failure_keeps_last_line() {
        let err = check_output(Some(1), "", "something\ncreate_work: odd thing\n\n").unwrap_err();
        assert!(matches!(
            err,
            CreateWorkError::Failed { ref message, exit_code: Some(1), .. } if message == "create_work: odd thing"
        ));
        assert!(check_output(None, "", "").is_err());
    }
}
