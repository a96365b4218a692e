//! Render the submit description of one cluster of pymw tasks.
//!
//! One `condor_submit` call per batch, one job per task: the description
//! names the executable (this very binary, transferred to the execute point),
//! and a `queue task_id,task_name,task_dir from ( ... )` list gives each job
//! its task. Each job runs
//!
//! ```text
//! EXE __pymw worker --task TASK_NAME --input INPUT_FILE --output OUTPUT_FILE
//! ```
//!
//! in its sandbox, with `initialdir` set to the task's own directory on the
//! access point: the input file is taken from there, and the output file,
//! stdout and stderr come back there.
//!
//! The rendering is a pure function ([`SubmitDescription::render`]) that
//! validates everything it writes: the submit language has no general quoting,
//! so values that could change the meaning of the file (newlines, a trailing
//! `\` that continues the line, separators inside item data) are rejected with
//! an error that says which field and why.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::eventlog::EventLogFormat;

/// One cluster of pymw tasks, ready to be rendered as a submit description.
///
/// `max_retries` is never set: the pymw master owns retries. If a pass-through
/// command sets it anyway, the event log shows each retry as
/// [`JobEventKind::Requeued`](crate::eventlog::JobEventKind::Requeued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitDescription {
    /// Absolute path of the binary to run (transferred with each job).
    ///
    /// With [`SubmitDescription::executable_per_platform`], the path of the
    /// binaries without their platform suffix.
    pub executable: PathBuf,
    /// Run a binary built for the execute machine: the executable becomes
    /// `EXECUTABLE.$$(OpSys).$$(Arch)`, which HTCondor expands from the
    /// machine's ad when the job is matched, so one cluster runs on every
    /// platform that has a binary (HTCondor's "heterogeneous submit"). Pair it
    /// with [`SubmitDescription::requirements`] that admit exactly those
    /// platforms. Default `false`.
    pub executable_per_platform: bool,
    /// Transfer the executable with each job (`transfer_executable`). Turn
    /// it off only when every execute machine sees it at the same path (a
    /// shared file system). Default `true`.
    pub transfer_executable: bool,
    /// Absolute path of the job event log all jobs of the cluster append to.
    pub event_log: PathBuf,
    /// Format of that log. The default is [`EventLogFormat::Text`]; see
    /// [`SubmitDescription::new`] for why.
    pub event_log_format: EventLogFormat,
    /// `JobBatchName` of the cluster, shown by `condor_q` (not in the log).
    pub batch_name: String,
    /// Name of the input file in each task directory; passed as `--input`.
    pub input_file: String,
    /// Name of the output file the worker writes; passed as `--output` and
    /// transferred back into the task directory.
    ///
    /// The worker must create it even when the task fails: a missing output
    /// file puts the job on hold (code 12) instead of letting it terminate,
    /// and the slot stays busy until the job lease expires. See
    /// [`SubmitDescription::output_placeholder`] for workers that crash.
    pub output_file: String,
    /// Absolute path of an empty file named like [`output_file`](Self::output_file),
    /// transferred *in* with every job: a worker that dies before it writes
    /// its output (a signal, `process::exit`) then leaves the empty file in
    /// the sandbox, so the job terminates with its exit code or signal (event
    /// 005) instead of going on hold, and an empty output means "no output".
    ///
    /// It is one shared file, not a file in each task directory: a file that
    /// already exists there, owned by another user than the job's (a master
    /// running as root), makes the shadow's `chmod` fail, and the job then
    /// loops on disconnect and reconnect until its lease runs out. Default
    /// `None`.
    pub output_placeholder: Option<PathBuf>,
    /// Name of the file the job's stdout goes to, in the task directory.
    pub stdout_file: String,
    /// Name of the file the job's stderr goes to, in the task directory.
    pub stderr_file: String,
    /// Absolute paths of more input files every job gets (beside its own
    /// input file and the executable).
    pub shared_input_files: Vec<PathBuf>,
    /// `request_cpus`, or the pool's default when `None`.
    pub request_cpus: Option<u32>,
    /// `request_memory` in MiB, or the pool's default when `None`. Pools
    /// without cgroups do not enforce it.
    pub request_memory_mib: Option<u64>,
    /// `request_disk` in MiB, or the pool's default when `None`.
    pub request_disk_mib: Option<u64>,
    /// A ClassAd expression for `requirements`, such as
    /// `(OpSys == "LINUX") && (Arch == "X86_64")` for a heterogeneous pool.
    /// When `None`, HTCondor requires the submit machine's OpSys and Arch.
    pub requirements: Option<String>,
    /// Environment variables of every job, `(NAME, VALUE)`, such as the
    /// master's settings that must also hold in the worker (see
    /// [`pymw_core::job_env::job_environment`]). Written as one `environment`
    /// command in HTCondor's "new" syntax (see [`quote_environment`]).
    /// Values are taken literally; a `$` is refused, as `condor_submit`
    /// would expand it. Default: none.
    pub environment: Vec<(String, String)>,
    /// More submit commands, written as `key = value` in this order, such as
    /// `("+AccountingGroup", "\"group_physics.alice\"")`. A value is written
    /// verbatim: quote ClassAd strings yourself. Keys that pymw sets itself
    /// are refused, except `environment` (or `env`): its variables are
    /// merged into the one `environment` command, over
    /// [`environment`](Self::environment)'s of the same name (see
    /// [`parse_environment`]).
    pub extra_commands: Vec<(String, String)>,
    /// The tasks, one job each, in proc order.
    pub tasks: Vec<SubmitTask>,
}

/// One task of a cluster: the item data of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitTask {
    /// The pymw task id: stored in the job ad ([`TASK_ID_ATTRIBUTE`](crate::TASK_ID_ATTRIBUTE)) and as
    /// the `submit_event_notes` of the job's `000` event.
    pub task_id: String,
    /// The registered task name, passed to the worker as `--task`.
    pub task_name: String,
    /// Absolute path of the task's directory on the access point, holding
    /// its input file and receiving its output.
    pub task_dir: PathBuf,
}

/// Why a submit description could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// There is no task to submit.
    #[error("a cluster needs at least one task")]
    NoTasks,
    /// A value cannot be written safely.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidValue {
        /// Which field, such as `task_id` or `executable`.
        field: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two tasks have the same id.
    #[error("task id {task_id:?} appears twice in one cluster")]
    DuplicateTaskId {
        /// The repeated id.
        task_id: String,
    },
    /// An environment variable cannot be passed to jobs.
    #[error("invalid environment {value:?}: {reason}")]
    InvalidEnvironment {
        /// The `environment` value, or the `NAME=VALUE` entry.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pass-through command would override one pymw controls.
    #[error(
        "extra submit command {key:?} is refused: pymw sets {controlled:?} itself; \
         use the matching SubmitDescription field instead"
    )]
    ReservedCommand {
        /// The refused key.
        key: String,
        /// The command or attribute it would override.
        controlled: &'static str,
    },
}

/// The submit command that sets [`TASK_ID_ATTRIBUTE`](crate::TASK_ID_ATTRIBUTE).
const TASK_ID_COMMAND: &str = "+PymwTaskId";

/// Submit commands and job attributes pymw sets, lowercase, with the
/// submit command each maps to. Pass-through keys are compared against these
/// after dropping a `+` or `MY.` prefix.
const RESERVED: &[(&str, &str)] = &[
    ("universe", "universe"),
    ("jobuniverse", "universe"),
    ("executable", "executable"),
    ("cmd", "executable"),
    ("transfer_executable", "transfer_executable"),
    ("transferexecutable", "transfer_executable"),
    ("arguments", "arguments"),
    ("args", "arguments"),
    ("initialdir", "initialdir"),
    ("initial_dir", "initialdir"),
    ("iwd", "initialdir"),
    ("should_transfer_files", "should_transfer_files"),
    ("shouldtransferfiles", "should_transfer_files"),
    ("when_to_transfer_output", "when_to_transfer_output"),
    ("whentotransferoutput", "when_to_transfer_output"),
    ("transfer_input_files", "transfer_input_files"),
    ("transferinput", "transfer_input_files"),
    ("transfer_output_files", "transfer_output_files"),
    ("transferoutput", "transfer_output_files"),
    ("transfer_output_remaps", "transfer_output_files"),
    ("transferoutputremaps", "transfer_output_files"),
    ("input", "input"),
    ("in", "input"),
    ("output", "output"),
    ("out", "output"),
    ("error", "error"),
    ("err", "error"),
    ("log", "log"),
    ("userlog", "log"),
    ("log_xml", "+UserLogUseXML"),
    ("userlogusexml", "+UserLogUseXML"),
    ("jobbatchname", "JobBatchName"),
    ("batch_name", "JobBatchName"),
    ("submit_event_notes", "submit_event_notes"),
    ("submiteventnotes", "submit_event_notes"),
    ("pymwtaskid", "+PymwTaskId"),
    ("request_cpus", "request_cpus"),
    ("requestcpus", "request_cpus"),
    ("request_memory", "request_memory"),
    ("requestmemory", "request_memory"),
    ("request_disk", "request_disk"),
    ("requestdisk", "request_disk"),
    ("requirements", "requirements"),
    ("kill_sig", "kill_sig"),
    ("killsig", "kill_sig"),
    ("remove_kill_sig", "kill_sig"),
    ("removekillsig", "kill_sig"),
    ("job_max_vacate_time", "job_max_vacate_time"),
    ("jobmaxvacatetime", "job_max_vacate_time"),
    ("kill_sig_timeout", "job_max_vacate_time"),
    ("killsigtimeout", "job_max_vacate_time"),
    // The submit command `environment` is merged instead (ENVIRONMENT_KEYS);
    // the job attributes behind it cannot be.
    ("environment", "environment"),
    ("env", "environment"),
    ("queue", "queue"),
];

/// Submit commands that set the job's environment: their entries are merged
/// into pymw's one `environment` command instead of replacing it.
const ENVIRONMENT_KEYS: &[&str] = &["environment", "env", "environment2"];

impl SubmitDescription {
    /// A description with pymw's defaults: text event log, files
    /// `input.bin`, `output.bin`, `stdout.txt`, `stderr.txt`, one CPU, the
    /// pool's default memory and disk, no extra commands, no tasks yet.
    ///
    /// Why the text event log by default: the reader handles both formats
    /// equally (both are tested against recorded logs), but text is what every
    /// HTCondor version writes without being asked, what `condor_wait` and
    /// people can read, and it needs no job attribute. JSON is only reachable
    /// through `+UserLogUseXML = 2`, a job attribute that older schedds treat
    /// as a plain boolean (and would then write XML, which nothing here
    /// reads); the config knob `DEFAULT_USERLOG_FORMAT_OPTIONS = JSON` had no
    /// effect on 23.9.6. Choose [`EventLogFormat::Json`] for a pool known to
    /// support it.
    pub fn new(
        executable: impl Into<PathBuf>,
        event_log: impl Into<PathBuf>,
        batch_name: impl Into<String>,
    ) -> Self {
        Self {
            executable: executable.into(),
            executable_per_platform: false,
            transfer_executable: true,
            event_log: event_log.into(),
            event_log_format: EventLogFormat::Text,
            batch_name: batch_name.into(),
            input_file: "input.bin".to_owned(),
            output_file: "output.bin".to_owned(),
            output_placeholder: None,
            stdout_file: "stdout.txt".to_owned(),
            stderr_file: "stderr.txt".to_owned(),
            shared_input_files: Vec::new(),
            request_cpus: Some(1),
            request_memory_mib: None,
            request_disk_mib: None,
            requirements: None,
            environment: Vec::new(),
            extra_commands: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Render the submit description, to be written to a file (or piped to
    /// `condor_submit -terse -`).
    pub fn render(&self) -> Result<String, SubmitError> {
        if self.tasks.is_empty() {
            return Err(SubmitError::NoTasks);
        }
        let executable = absolute_path("executable", &self.executable)?;
        let event_log = absolute_path("event_log", &self.event_log)?;
        let batch_name = token("batch_name", &self.batch_name)?;
        let input = file_name("input_file", &self.input_file)?;
        let output = file_name("output_file", &self.output_file)?;
        let stdout = file_name("stdout_file", &self.stdout_file)?;
        let stderr = file_name("stderr_file", &self.stderr_file)?;
        let mut inputs = vec![input.to_owned()];
        if let Some(placeholder) = &self.output_placeholder {
            let path = absolute_path("output_placeholder", placeholder)?;
            if placeholder.file_name().and_then(|n| n.to_str()) != Some(output) {
                return Err(invalid(
                    "output_placeholder",
                    path,
                    "must be a file named like output_file (it arrives under its own name)",
                ));
            }
            inputs.push(path.to_owned());
        }
        for path in &self.shared_input_files {
            inputs.push(absolute_path("shared_input_files", path)?.to_owned());
        }
        let requirements = match &self.requirements {
            Some(r) => Some(line_value("requirements", r)?),
            None => None,
        };
        let mut environment = Vec::with_capacity(self.environment.len());
        for (name, value) in &self.environment {
            environment_entry(name, value)?;
            if value.contains('$') {
                return Err(SubmitError::InvalidEnvironment {
                    value: format!("{name}={value}"),
                    reason:
                        "a value pymw passes must not contain $ (condor_submit would expand it)"
                            .into(),
                });
            }
            set_variable(&mut environment, name, value);
        }
        let mut extra = Vec::with_capacity(self.extra_commands.len());
        for (key, value) in &self.extra_commands {
            if ENVIRONMENT_KEYS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(key.trim()))
            {
                for (name, value) in parse_environment(value)? {
                    if name.starts_with("PYMW_") {
                        return Err(SubmitError::InvalidEnvironment {
                            value: format!("{name}={value}"),
                            reason: "PYMW_ variables are the master's settings: set them in the master's \
                                     environment, and pymw passes them to every job"
                                .into(),
                        });
                    }
                    set_variable(&mut environment, &name, &value);
                }
            } else {
                extra.push(extra_command(key, value)?);
            }
        }
        let rows = self.item_rows()?;

        let arguments = quote_arguments(&[
            "__pymw",
            "worker",
            "--task",
            "$(task_name)",
            "--input",
            input,
            "--output",
            output,
        ]);
        let executable = if self.executable_per_platform {
            format!("{executable}.$$(OpSys).$$(Arch)")
        } else {
            executable.to_owned()
        };
        let mut commands: Vec<(&str, String)> = vec![
            ("universe", "vanilla".to_owned()),
            ("executable", executable),
            (
                "transfer_executable",
                if self.transfer_executable {
                    "True"
                } else {
                    "False"
                }
                .to_owned(),
            ),
            ("arguments", arguments),
            ("initialdir", "$(task_dir)".to_owned()),
            ("should_transfer_files", "YES".to_owned()),
            ("when_to_transfer_output", "ON_EXIT".to_owned()),
            ("transfer_input_files", inputs.join(", ")),
            // Always explicit: without it HTCondor scans the sandbox, and 50
            // tiny jobs took 7.8-12.3 s instead of 1.8-4.8 s.
            ("transfer_output_files", output.to_owned()),
            ("output", stdout.to_owned()),
            ("error", stderr.to_owned()),
            ("log", event_log.to_owned()),
            // A removed job (a timeout, a cancel, a master that ends) leaves
            // at once: with the default SIGTERM, a job that ignores it kept
            // its slot until it ended or the machine's vacate time ran out
            // (MachineMaxVacateTime, 10 minutes by default). Either command
            // alone was enough on 23.9.6; pymw's workers need no grace.
            ("kill_sig", "SIGKILL".to_owned()),
            ("job_max_vacate_time", "0".to_owned()),
        ];
        if !environment.is_empty() {
            commands.push(("environment", quote_environment(&environment)));
        }
        if self.event_log_format == EventLogFormat::Json {
            // 1 = XML, 2 = JSON; the only switch that worked on 23.9.6.
            commands.push(("+UserLogUseXML", "2".to_owned()));
        }
        commands.push(("JobBatchName", batch_name.to_owned()));
        commands.push((TASK_ID_COMMAND, "\"$(task_id)\"".to_owned()));
        commands.push(("submit_event_notes", "$(task_id)".to_owned()));
        if let Some(cpus) = self.request_cpus {
            commands.push(("request_cpus", cpus.to_string()));
        }
        if let Some(mib) = self.request_memory_mib {
            commands.push(("request_memory", format!("{mib}M")));
        }
        if let Some(mib) = self.request_disk_mib {
            commands.push(("request_disk", format!("{mib}M")));
        }
        if let Some(requirements) = requirements {
            commands.push(("requirements", requirements.to_owned()));
        }

        let mut text = format!(
            "# pymw: cluster {batch_name:?} of {} task(s). Generated; do not edit.\n",
            self.tasks.len()
        );
        for (key, value) in commands.iter().map(|(k, v)| (*k, v.as_str())).chain(extra) {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{key:<23} = {value}");
        }
        text.push_str("queue task_id,task_name,task_dir from (\n");
        for row in rows {
            let _ = writeln!(text, "  {row}");
        }
        text.push_str(")\n");
        Ok(text)
    }

    fn item_rows(&self) -> Result<Vec<String>, SubmitError> {
        let mut seen = HashSet::new();
        self.tasks
            .iter()
            .map(|task| {
                let id = token("task_id", &task.task_id)?;
                let name = token("task_name", &task.task_name)?;
                let dir = absolute_path("task_dir", &task.task_dir)?;
                if !seen.insert(id) {
                    return Err(SubmitError::DuplicateTaskId {
                        task_id: id.to_owned(),
                    });
                }
                Ok(format!("{id}, {name}, {dir}"))
            })
            .collect()
    }
}

/// Quote program arguments in the submit language's "new syntax": the whole
/// list in double quotes, `"` doubled, an argument with spaces, tabs or
/// single quotes wrapped in single quotes with `'` doubled.
pub fn quote_arguments(args: &[&str]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            let arg = arg.replace('"', "\"\"");
            if arg.is_empty() || arg.contains([' ', '\t', '\'']) {
                format!("'{}'", arg.replace('\'', "''"))
            } else {
                arg
            }
        })
        .collect();
    format!("\"{}\"", quoted.join(" "))
}

/// Quote environment variables in the submit language's "new syntax": the
/// whole list in double quotes, entries `NAME=VALUE` separated by spaces, a
/// value with spaces, tabs or single quotes wrapped in single quotes with `'`
/// doubled, and every `"` doubled.
pub fn quote_environment(entries: &[(String, String)]) -> String {
    let quoted: Vec<String> = entries
        .iter()
        .map(|(name, value)| {
            let value = if value.contains([' ', '\t', '\'']) {
                format!("'{}'", value.replace('\'', "''"))
            } else {
                value.clone()
            };
            format!("{name}={value}").replace('"', "\"\"")
        })
        .collect();
    format!("\"{}\"", quoted.join(" "))
}

/// The variables of an `environment` submit command's value, as
/// `condor_submit` reads them.
///
/// The "new" syntax is the whole value in double quotes (`""` for a `"`),
/// entries separated by spaces or tabs, single quotes around anything with
/// spaces (`''` for a `'`): `"A=x B='y z'"`. Without the double quotes it
/// is the "old" syntax, entries separated by `;`, in which spaces are part of
/// the values: `A=x B=y` would set `A` to `x B=y`. Such a value (whitespace
/// in an old-syntax entry) is refused as almost certainly not meant; write
/// the new syntax. `$(...)` macros are kept for `condor_submit` to expand.
pub fn parse_environment(value: &str) -> Result<Vec<(String, String)>, SubmitError> {
    let bad = |reason: &str| SubmitError::InvalidEnvironment {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let text = value.trim();
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad("must not contain newlines or control characters"));
    }
    let mut entries = Vec::new();
    let mut add = |entry: &str| -> Result<(), SubmitError> {
        let Some((name, value)) = entry.split_once('=') else {
            return Err(SubmitError::InvalidEnvironment {
                value: entry.to_owned(),
                reason: "an entry is NAME=VALUE".into(),
            });
        };
        environment_entry(name, value)?;
        entries.push((name.to_owned(), value.to_owned()));
        Ok(())
    };
    let Some(quoted) = text.strip_prefix('"') else {
        for entry in text.split(';').filter(|e| !e.is_empty()) {
            if entry.contains([' ', '\t']) {
                return Err(bad(
                    "without double quotes this is HTCondor's old syntax, in which spaces belong to the value \
                     and only ; separates variables: write the new syntax, in double quotes, such as \
                     environment=\"A=x B='y z'\"",
                ));
            }
            add(entry)?;
        }
        return Ok(entries);
    };
    let Some(inner) = quoted.strip_suffix('"') else {
        return Err(bad("the new syntax ends with a double quote"));
    };
    // Undo the doubled double quotes; a single one would end the value early.
    let mut unquoted = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' && chars.next_if_eq(&'"').is_none() {
            return Err(bad(
                "a double quote inside the value must be doubled (\"\")",
            ));
        }
        unquoted.push(c);
    }
    // Split on whitespace outside single quotes; '' inside them is a '.
    let mut entry = String::new();
    let mut in_entry = false;
    let mut chars = unquoted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_entry = true;
                loop {
                    match chars.next() {
                        Some('\'') if chars.next_if_eq(&'\'').is_some() => entry.push('\''),
                        Some('\'') => break,
                        Some(c) => entry.push(c),
                        None => return Err(bad("a single quote is not closed")),
                    }
                }
            }
            ' ' | '\t' => {
                if std::mem::take(&mut in_entry) {
                    add(&std::mem::take(&mut entry))?;
                }
            }
            c => {
                in_entry = true;
                entry.push(c);
            }
        }
    }
    if in_entry {
        add(&entry)?;
    }
    Ok(entries)
}

/// Checks one variable: a name without `=`, whitespace or quotes, and a
/// value on one line.
fn environment_entry(name: &str, value: &str) -> Result<(), SubmitError> {
    let bad = |reason: &str| SubmitError::InvalidEnvironment {
        value: format!("{name}={value}"),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(bad("the variable's name is empty"));
    }
    if name.contains(['=', '"', '\'']) || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "a variable's name must not contain =, quotes, whitespace or control characters",
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad(
            "a value must not contain newlines or control characters",
        ));
    }
    Ok(())
}

/// Sets `name` in `environment`: in place when it is there already.
fn set_variable(environment: &mut Vec<(String, String)>, name: &str, value: &str) {
    match environment.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value.to_owned(),
        None => environment.push((name.to_owned(), value.to_owned())),
    }
}

fn invalid(field: &str, value: &str, reason: &'static str) -> SubmitError {
    SubmitError::InvalidValue {
        field: field.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

/// Characters that would split, quote, expand or comment item data and
/// file lists in the submit language.
const SPECIAL: &[char] = &[',', '"', '\'', '\\', '$', '#', '(', ')'];

/// Checks a value that will be written as item data or a bare word (a task
/// name, a run name): the same rules as [`SubmitTask`]'s fields.
pub(crate) fn check_item(field: &str, value: &str) -> Result<(), SubmitError> {
    token(field, value).map(drop)
}

/// A value used as item data, in a file list or as a bare word: no
/// whitespace, no control characters, no separators or quotes.
fn token<'a>(field: &str, value: &'a str) -> Result<&'a str, SubmitError> {
    if value.is_empty() {
        return Err(invalid(field, value, "must not be empty"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            value,
            "must not contain whitespace, newlines or control characters",
        ));
    }
    if value.contains(SPECIAL) {
        return Err(invalid(
            field,
            value,
            "must not contain any of , \" ' \\ $ # ( ) (they have a meaning in submit files)",
        ));
    }
    Ok(value)
}

fn file_name<'a>(field: &str, value: &'a str) -> Result<&'a str, SubmitError> {
    let value = token(field, value)?;
    if value.contains('/') || value == "." || value == ".." {
        return Err(invalid(
            field,
            value,
            "must be a plain file name, not a path",
        ));
    }
    Ok(value)
}

fn absolute_path<'a>(field: &str, path: &'a Path) -> Result<&'a str, SubmitError> {
    let Some(text) = path.to_str() else {
        return Err(invalid(
            field,
            &path.to_string_lossy(),
            "must be valid UTF-8",
        ));
    };
    if !path.is_absolute() {
        return Err(invalid(
            field,
            text,
            "must be an absolute path (relative paths would depend on initialdir)",
        ));
    }
    token(field, text)
}

/// A value that must stay on one line: no newline or other control character
/// (tabs are fine) and no trailing `\`, which would continue the line.
fn line_value<'a>(field: &str, value: &'a str) -> Result<&'a str, SubmitError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, value, "must not be empty"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(
            field,
            value,
            "must not contain newlines or control characters",
        ));
    }
    if value.ends_with('\\') {
        return Err(invalid(
            field,
            value,
            "must not end with \\ (it would continue onto the next line)",
        ));
    }
    Ok(value)
}

fn extra_command<'a>(key: &'a str, value: &'a str) -> Result<(&'a str, &'a str), SubmitError> {
    let field = format!("extra submit command {key:?}");
    let name = key
        .strip_prefix('+')
        .or_else(|| {
            key.get(..3)
                .filter(|p| p.eq_ignore_ascii_case("MY."))
                .map(|_| &key[3..])
        })
        .unwrap_or(key);
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !valid {
        return Err(invalid(
            &field,
            key,
            "a key is a submit command or +Attribute: letters, digits, _ and . only",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(&(_, controlled)) = RESERVED.iter().find(|(k, _)| *k == lower) {
        return Err(SubmitError::ReservedCommand {
            key: key.to_owned(),
            controlled,
        });
    }
    Ok((key, line_value(&field, value)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TASK_ID_ATTRIBUTE;

    fn description() -> SubmitDescription {
        let mut d =
            SubmitDescription::new("/srv/run/bin/sim", "/srv/run/events.log", "pymw-run1-b0");
        d.tasks = vec![
            SubmitTask {
                task_id: "17".into(),
                task_name: "sim::simulate".into(),
                task_dir: "/srv/run/tasks/17".into(),
            },
            SubmitTask {
                task_id: "18".into(),
                task_name: "sim::simulate".into(),
                task_dir: "/srv/run/tasks/18".into(),
            },
        ];
        d
    }

    #[test]
    fn renders_the_defaults() {
        let expected = r#"# pymw: cluster "pymw-run1-b0" of 2 task(s). Generated; do not edit.
universe                = vanilla
executable              = /srv/run/bin/sim
transfer_executable     = True
arguments               = "__pymw worker --task $(task_name) --input input.bin --output output.bin"
initialdir              = $(task_dir)
should_transfer_files   = YES
when_to_transfer_output = ON_EXIT
transfer_input_files    = input.bin
transfer_output_files   = output.bin
output                  = stdout.txt
error                   = stderr.txt
log                     = /srv/run/events.log
kill_sig                = SIGKILL
job_max_vacate_time     = 0
JobBatchName            = pymw-run1-b0
+PymwTaskId             = "$(task_id)"
submit_event_notes      = $(task_id)
request_cpus            = 1
queue task_id,task_name,task_dir from (
  17, sim::simulate, /srv/run/tasks/17
  18, sim::simulate, /srv/run/tasks/18
)
"#;
        assert_eq!(description().render().unwrap(), expected);
    }

    #[test]
    fn renders_every_option() {
        let mut d = description();
        d.tasks.truncate(1);
        d.event_log_format = EventLogFormat::Json;
        d.request_cpus = Some(2);
        d.executable_per_platform = true;
        d.transfer_executable = false;
        d.output_placeholder = Some("/srv/run/empty/output.bin".into());
        d.request_memory_mib = Some(64);
        d.request_disk_mib = Some(10);
        d.requirements = Some(r#"(OpSys == "LINUX") && (Arch == "X86_64")"#.into());
        d.shared_input_files = vec!["/srv/run/common.dat".into()];
        d.environment = vec![
            ("PYMW_MAX_MESSAGE_BYTES".into(), "4096".into()),
            ("RUST_LOG".into(), "info,sim=debug x".into()),
        ];
        d.extra_commands = vec![
            ("+AccountingGroup".into(), "\"group_physics.alice\"".into()),
            ("periodic_hold".into(), "MemoryUsage > RequestMemory".into()),
            ("MY.Site".into(), "\"x\"".into()),
        ];
        let expected = r#"# pymw: cluster "pymw-run1-b0" of 1 task(s). Generated; do not edit.
universe                = vanilla
executable              = /srv/run/bin/sim.$$(OpSys).$$(Arch)
transfer_executable     = False
arguments               = "__pymw worker --task $(task_name) --input input.bin --output output.bin"
initialdir              = $(task_dir)
should_transfer_files   = YES
when_to_transfer_output = ON_EXIT
transfer_input_files    = input.bin, /srv/run/empty/output.bin, /srv/run/common.dat
transfer_output_files   = output.bin
output                  = stdout.txt
error                   = stderr.txt
log                     = /srv/run/events.log
kill_sig                = SIGKILL
job_max_vacate_time     = 0
environment             = "PYMW_MAX_MESSAGE_BYTES=4096 RUST_LOG='info,sim=debug x'"
+UserLogUseXML          = 2
JobBatchName            = pymw-run1-b0
+PymwTaskId             = "$(task_id)"
submit_event_notes      = $(task_id)
request_cpus            = 2
request_memory          = 64M
request_disk            = 10M
requirements            = (OpSys == "LINUX") && (Arch == "X86_64")
+AccountingGroup        = "group_physics.alice"
periodic_hold           = MemoryUsage > RequestMemory
MY.Site                 = "x"
queue task_id,task_name,task_dir from (
  17, sim::simulate, /srv/run/tasks/17
)
"#;
        assert_eq!(d.render().unwrap(), expected);
    }

    #[test]
    fn task_id_command_sets_the_shared_attribute() {
        assert_eq!(TASK_ID_COMMAND, format!("+{TASK_ID_ATTRIBUTE}"));
        let lower = TASK_ID_ATTRIBUTE.to_ascii_lowercase();
        assert!(RESERVED.iter().any(|(k, _)| *k == lower));
    }

    #[test]
    fn quotes_arguments_like_the_manual() {
        // condor_submit manual, "arguments", new syntax.
        assert_eq!(
            quote_arguments(&["3", "simple", "arguments"]),
            r#""3 simple arguments""#
        );
        assert_eq!(
            quote_arguments(&["one", "two with spaces", "3"]),
            r#""one 'two with spaces' 3""#
        );
        assert_eq!(
            quote_arguments(&["one", "\"two\"", "spacey 'quoted' argument"]),
            r#""one ""two"" 'spacey ''quoted'' argument'""#
        );
        assert_eq!(quote_arguments(&["", "it's"]), r#""'' 'it''s'""#);
    }

    fn err(d: &SubmitDescription) -> String {
        d.render().unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_item_data() {
        for (bad, what) in [
            ("a b", "whitespace"),
            ("a,b", ", \""),
            ("a\nb", "newlines"),
            ("", "empty"),
            ("$(x)", "$"),
            ("a\"b", "\""),
            ("#x", "#"),
        ] {
            let mut d = description();
            d.tasks[0].task_id = bad.into();
            let msg = err(&d);
            assert!(
                msg.starts_with(&format!("invalid task_id {bad:?}")),
                "{msg}"
            );
            assert!(msg.contains(what), "{bad:?}: {msg}");
            let mut d = description();
            d.tasks[1].task_name = bad.into();
            assert!(err(&d).starts_with("invalid task_name"), "{bad:?}");
        }
        let mut d = description();
        d.tasks[1].task_dir = "/srv/run/my tasks/18".into();
        assert!(err(&d).contains("whitespace"));
        d.tasks[1].task_dir = "tasks/18".into();
        assert!(err(&d).contains("must be an absolute path"));
        let mut d = description();
        d.tasks[1].task_id = "17".into();
        assert_eq!(err(&d), "task id \"17\" appears twice in one cluster");
        d.tasks.clear();
        assert_eq!(d.render().unwrap_err(), SubmitError::NoTasks);
    }

    #[test]
    fn rejects_bad_fields() {
        let mut d = description();
        d.executable = "sim".into();
        assert!(err(&d).starts_with("invalid executable \"sim\": must be an absolute path"));
        let mut d = description();
        d.event_log = "/srv/run/a,b.log".into();
        assert!(err(&d).starts_with("invalid event_log"));
        let mut d = description();
        d.output_file = "out/put.bin".into();
        assert!(err(&d).contains("plain file name"));
        let mut d = description();
        d.output_placeholder = Some("/srv/run/empty/other.bin".into());
        assert!(err(&d).contains("named like output_file"));
        d.output_placeholder = Some("empty/output.bin".into());
        assert!(err(&d).contains("must be an absolute path"));
        let mut d = description();
        d.batch_name = "run 1".into();
        assert!(err(&d).starts_with("invalid batch_name"));
        let mut d = description();
        d.requirements = Some("OpSys == \"LINUX\" &&\nqueue 100".into());
        assert!(err(&d).contains("newlines"));
        d.requirements = Some("OpSys == \"LINUX\" \\".into());
        assert!(err(&d).contains("continue onto the next line"));
    }

    #[test]
    fn rejects_extra_commands_that_override_pymw() {
        for key in [
            "arguments",
            "Executable",
            "+PymwTaskId",
            "MY.PymwTaskId",
            "my.jobbatchname",
            "batch_name",
            "+UserLogUseXML",
            "log",
            "transfer_output_files",
            "TransferOutput",
            "Iwd",
            "initialdir",
            "queue",
            "+Requirements",
            "request_memory",
            "kill_sig",
            "KillSig",
            "+KillSig",
            "remove_kill_sig",
            "job_max_vacate_time",
            "+JobMaxVacateTime",
            "kill_sig_timeout",
            "+Environment",
            "MY.Env",
        ] {
            let mut d = description();
            d.extra_commands = vec![(key.into(), "1".into())];
            let e = d.render().unwrap_err();
            assert!(
                matches!(e, SubmitError::ReservedCommand { .. }),
                "{key}: {e}"
            );
            assert!(e.to_string().contains("pymw sets"), "{e}");
        }
        for (key, value, what) in [
            ("+Foo", "1\nqueue", "newlines"),
            ("+Foo", "x \\", "continue"),
            ("+Foo", " ", "empty"),
            ("Foo Bar", "1", "letters, digits"),
            ("+", "1", "letters, digits"),
            ("#x", "1", "letters, digits"),
            ("include :", "x", "letters, digits"),
        ] {
            let mut d = description();
            d.extra_commands = vec![(key.into(), value.into())];
            let msg = err(&d);
            assert!(msg.contains(what), "{key:?} = {value:?}: {msg}");
            assert!(msg.contains("extra submit command"), "{msg}");
        }
        let mut d = description();
        d.extra_commands = vec![("max_retries".into(), "2".into())];
        assert!(
            d.render()
                .unwrap()
                .contains("\nmax_retries             = 2\n")
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The `environment` line of a rendered description.
    fn environment_line(d: &SubmitDescription) -> Option<String> {
        d.render()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("environment             = "))
            .map(str::to_owned)
    }

    #[test]
    fn quotes_the_environment_like_the_manual() {
        // condor_submit manual, "environment", new syntax: this value gives
        // one=1, two="2", three=spacey 'quoted' value.
        let manual = vars(&[
            ("one", "1"),
            ("two", "\"2\""),
            ("three", "spacey 'quoted' value"),
        ]);
        assert_eq!(
            quote_environment(&manual),
            r#""one=1 two=""2"" three='spacey ''quoted'' value'""#
        );
        assert_eq!(
            parse_environment(r#""one=1 two=""2"" three='spacey ''quoted'' value'""#).unwrap(),
            manual
        );
        // Every value comes back as it went in.
        let odd = vars(&[
            ("A", "x y"),
            ("B", "it's"),
            ("C", "\"q\""),
            ("D", ""),
            ("E", "a\"b 'c'"),
            ("F", "tab\there"),
            ("G", "a=b;c"),
        ]);
        assert_eq!(parse_environment(&quote_environment(&odd)).unwrap(), odd);
        assert_eq!(quote_environment(&[]), "\"\"");
    }

    #[test]
    fn parses_both_environment_syntaxes() {
        assert_eq!(
            parse_environment(r#""A=x B=y""#).unwrap(),
            vars(&[("A", "x"), ("B", "y")])
        );
        assert_eq!(
            parse_environment("\"  A=x\t 'B=y z'  C='' \"").unwrap(),
            vars(&[("A", "x"), ("B", "y z"), ("C", "")])
        );
        assert_eq!(
            parse_environment(r#""JOB=$(Cluster).$(Process)""#).unwrap(),
            vars(&[("JOB", "$(Cluster).$(Process)")])
        );
        // The old syntax, without spaces: ; separates.
        assert_eq!(
            parse_environment("A=1;B=2;").unwrap(),
            vars(&[("A", "1"), ("B", "2")])
        );
        for (bad, why) in [
            // The reported case: HTCondor would set A to "x B=y".
            ("A=x B=y", "old syntax"),
            ("A=1; B=2", "old syntax"),
            (r#""A=x"#, "ends with a double quote"),
            (r#""A=x" "B=y""#, "must be doubled"),
            (r#""A='x y""#, "not closed"),
            (r#""A""#, "NAME=VALUE"),
            (r#""=x""#, "name is empty"),
            ("\"A=x\nqueue\"", "newlines"),
        ] {
            let e = parse_environment(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn user_environment_merges_into_one_line() {
        let mut d = description();
        d.environment = vars(&[("PYMW_MAX_MESSAGE_BYTES", "4096"), ("RUST_LOG", "warn")]);
        d.extra_commands = vec![
            ("environment".into(), r#""A=x B=y""#.into()),
            ("+Foo".into(), "1".into()),
            ("Env".into(), r#""RUST_LOG=debug C='1 2'""#.into()),
        ];
        let text = d.render().unwrap();
        assert_eq!(
            text.matches("\nenvironment").count(),
            1,
            "one environment command:\n{text}"
        );
        assert!(!text.contains("\nEnv "), "{text}");
        assert_eq!(
            environment_line(&d).unwrap(),
            r#""PYMW_MAX_MESSAGE_BYTES=4096 RUST_LOG=debug A=x B=y C='1 2'""#
        );
        assert!(text.contains("\n+Foo                    = 1\n"), "{text}");
        // Without variables there is no environment command.
        assert_eq!(environment_line(&description()), None);
    }

    #[test]
    fn environment_that_would_break_the_master_is_refused() {
        let mut d = description();
        d.extra_commands = vec![("environment".into(), r#""PYMW_MAX_MESSAGE_BYTES=1""#.into())];
        assert!(err(&d).contains("master's settings"), "{}", err(&d));
        for (name, value, why) in [
            ("RUST_LOG", "$(HOME)", "must not contain $"),
            ("A B", "1", "name must not"),
            ("A=B", "1", "name must not"),
            ("", "1", "name is empty"),
            ("A", "1\n2", "newlines"),
        ] {
            let mut d = description();
            d.environment = vars(&[(name, value)]);
            assert!(err(&d).contains(why), "{name:?}={value:?}: {}", err(&d));
        }
    }

    #[test]
    fn removal_kills_at_once() {
        let text = description().render().unwrap();
        assert!(
            text.contains("\nkill_sig                = SIGKILL\n"),
            "{text}"
        );
        assert!(text.contains("\njob_max_vacate_time     = 0\n"), "{text}");
    }
}
