//! Remote job submission: request bodies for `submit_rpc_handler.php`,
//! parsers for its replies, and `get_output.php` URLs.
//!
//! Recorded with 7.20.5 (`remote-submit/`):
//! - Requests are `POST PROJECT_URL/submit_rpc_handler.php` with
//!   `Content-Type: application/x-www-form-urlencoded` and the body
//!   `request=<url-encoded XML>` ([`form_body`]). The user needs a
//!   `user_submit` row (`submit_all=1`).
//! - **Every reply is HTTP 200**, errors included (except a 302 for
//!   `batch_files` by `batch_name`). An error is an `<error>` element with
//!   `<error_num>` (always -1) and `<error_msg>`, inside the command's
//!   element when the command was recognised, at top level otherwise
//!   ([`ServerError`]). Its message may hold raw unescaped text (the whole
//!   `create_work` stderr, or the echoed request with the authenticator,
//!   which is redacted here).
//! - Replies declare `ISO-8859-1` while the header says UTF-8, whitespace is
//!   irregular, and PHP warnings/fatal errors appear as HTML in the body.
//!   Known defects handled here: `query_completed_job` for a failed job
//!   ends in a PHP fatal error after `<error_mask>` (parsed tolerantly into
//!   a [`CompletedJob`] without canonical result), and the `abort_jobs`
//!   reply holds a non-XML line `<aborted NAME>` (parsed as text).
//! - Inline input files become `jf_<md5 of content>` on the server
//!   ([`inline_physical_name`]), byte for byte as sent (`"1"` gave one
//!   byte). Identical inline inputs of different jobs therefore share one
//!   file, and `file_deleter` deletes a shared input after the first job
//!   using it is assimilated. Inline content must be XML text; binary data
//!   has to be encoded by the caller.
//! - Job ids in replies are work unit ids; instance ids are result ids.
//!   Batch states: 0 init, 1 in progress, 2 complete (all jobs done or
//!   failed), 3 aborted, 4 retired. `fraction_done` counts only successful
//!   jobs. A retired batch no longer appears in `query_batches` but
//!   `query_batch` still answers.
//! - A submit that fails after creating the batch row leaves a batch in
//!   state 0; one that fails validation creates nothing.
//! - `abort_jobs`/`abort_batch` set `error_mask |= 16`; results already on a
//!   host are aborted at the client's next scheduler request
//!   (`exit_status` 202), but the app processes were not killed.
//! - Outputs: `get_output.php?cmd=result_file&result_name=R&file_num=N&auth_str=md5(authenticator+R)`
//!   answers `application/octet-stream`; errors are `text/html` bodies
//!   `ERROR: ...` (see [`check_get_output`]). `cmd=workunit_files` is broken
//!   in 7.20.5 (it prints the authenticator and cuts the zip short) and
//!   `cmd=workunit_file` takes the plain authenticator in the URL, so
//!   neither is offered here.

use crate::daemons::{WuErrorMask, WuErrorReason};
use crate::hex;
use crate::xml::{self, Element, escape_text, excerpt};

/// The RPC handler's path under the project URL.
pub const SUBMIT_RPC_HANDLER: &str = "submit_rpc_handler.php";
/// The output download script's path under the project URL.
pub const GET_OUTPUT: &str = "get_output.php";
/// `Content-Type` of RPC requests.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Errors of building requests and reading replies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The server answered with an `<error>`.
    #[error("{0}")]
    Server(ServerError),
    /// The reply is a PHP fatal error instead of a result.
    #[error("server-side PHP fatal error: {excerpt}")]
    PhpFatal {
        /// The start of the error text.
        excerpt: String,
    },
    /// The reply is not the expected document.
    #[error("unexpected reply to {command}: {excerpt}")]
    UnexpectedReply {
        /// The command sent.
        command: &'static str,
        /// The start of the reply.
        excerpt: String,
    },
    /// A required element is missing.
    #[error("reply to {command}: missing <{field}>")]
    MissingField {
        /// The command sent.
        command: &'static str,
        /// The element.
        field: &'static str,
    },
    /// An element holds an unusable value.
    #[error("reply to {command}: bad <{field}> {value:?}")]
    BadField {
        /// The command sent.
        command: &'static str,
        /// The element.
        field: &'static str,
        /// Its text (shortened).
        value: String,
    },
    /// `get_output.php` answered with an error text.
    #[error("get_output.php: {0}")]
    GetOutput(String),
    /// A request cannot be built from these values.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// An `<error>` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The command element it was in (`None`: top level, i.e. the request
    /// was not understood).
    pub command: Option<String>,
    /// `<error_num>` (-1 in every recorded case).
    pub num: i64,
    /// `<error_msg>`, entities resolved, authenticators redacted.
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command {
            Some(c) => write!(f, "{c}: server error {}: {}", self.num, self.message),
            None => write!(f, "server error {}: {}", self.num, self.message),
        }
    }
}

/// What a [`ServerError`] message means (messages recorded from 7.20.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerErrorKind {
    /// `bad authenticator`.
    BadAuthenticator,
    /// `no authenticator`.
    NoAuthenticator,
    /// `no submit access` (no `user_submit` row).
    NoSubmitAccess,
    /// `no app submit access`.
    NoAppSubmitAccess,
    /// `not owner of batch`.
    NotOwner,
    /// `no such batch`.
    NoSuchBatch,
    /// `batch not specified`.
    BatchNotSpecified,
    /// `no such job`, `no job NAME`.
    NoSuchJob,
    /// `no app named X was found`.
    UnknownApp,
    /// `wrong # of input files for job N: need A, got B`.
    WrongInputCount,
    /// `unsupported file mode: X`.
    UnsupportedFileMode,
    /// `create_work failed: ...` (duplicate name, input not staged ...).
    CreateWorkFailed,
    /// `can't parse request message: ...`.
    CantParseRequest,
    /// `bad command: X`.
    BadCommand,
    /// Anything else.
    Other,
}

impl ServerError {
    /// The meaning of the message.
    pub fn kind(&self) -> ServerErrorKind {
        let m = self.message.as_str();
        let table: [(&str, ServerErrorKind); 14] = [
            ("bad authenticator", ServerErrorKind::BadAuthenticator),
            ("no authenticator", ServerErrorKind::NoAuthenticator),
            ("no submit access", ServerErrorKind::NoSubmitAccess),
            ("no app submit access", ServerErrorKind::NoAppSubmitAccess),
            ("not owner of batch", ServerErrorKind::NotOwner),
            ("no such batch", ServerErrorKind::NoSuchBatch),
            ("batch not specified", ServerErrorKind::BatchNotSpecified),
            ("no such job", ServerErrorKind::NoSuchJob),
            ("no job ", ServerErrorKind::NoSuchJob),
            ("no app named ", ServerErrorKind::UnknownApp),
            ("wrong # of input files", ServerErrorKind::WrongInputCount),
            (
                "unsupported file mode",
                ServerErrorKind::UnsupportedFileMode,
            ),
            ("create_work failed", ServerErrorKind::CreateWorkFailed),
            (
                "can't parse request message",
                ServerErrorKind::CantParseRequest,
            ),
        ];
        if m.starts_with("bad command") {
            return ServerErrorKind::BadCommand;
        }
        table
            .iter()
            .find(|(prefix, _)| m.starts_with(prefix))
            .map_or(ServerErrorKind::Other, |&(_, k)| k)
    }
}

// ---------------------------------------------------------------- requests

/// One input file of a submitted job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputFile {
    /// The content itself, sent in the request (text only; see the module
    /// docs). Stored on the server as [`inline_physical_name`].
    Inline(String),
    /// A file already staged with `bin/stage_file`, by name.
    LocalStaged(String),
    /// An absolute path on the server, readable by the web server.
    Local(String),
    /// A file the client downloads from elsewhere.
    Remote {
        /// Where.
        url: String,
        /// Its size.
        nbytes: u64,
        /// Its MD5, lowercase hex.
        md5: String,
    },
}

/// One job of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Job {
    /// Work unit name (unique in the project); `None` lets the server name it.
    pub name: Option<String>,
    /// The app's command line (split by the client like a shell).
    pub command_line: Option<String>,
    /// Input files, one per `<file_info>` of the input template.
    pub input_files: Vec<InputFile>,
}

/// A batch to submit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// Add the jobs to this existing batch (from `create_batch`).
    pub batch_id: Option<u64>,
    /// The app's short name.
    pub app_name: String,
    /// A name for a new batch.
    pub batch_name: Option<String>,
    /// Template (under `templates/`) the handler counts input files with.
    pub workunit_template_file: Option<String>,
    /// Input template passed to `create_work` (under `templates/`).
    pub input_template_filename: Option<String>,
    /// Result template passed to `create_work` (under `templates/`).
    pub output_template_filename: Option<String>,
    /// The jobs.
    pub jobs: Vec<Job>,
}

/// Which batch a query names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRef {
    /// By id.
    Id(u64),
    /// By name.
    Name(String),
}

fn text(s: &str) -> Result<String, RemoteError> {
    if let Some(c) = s.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}'
    }) {
        return Err(RemoteError::InvalidRequest(format!(
            "character U+{:04X} cannot be sent in XML",
            u32::from(c)
        )));
    }
    // A literal CR would be normalised away by the server's XML parser.
    Ok(escape_text(s).replace('\r', "&#13;"))
}

fn open(command: &str, authenticator: &str) -> Result<String, RemoteError> {
    Ok(format!(
        "<{command}>\n<authenticator>{}</authenticator>\n",
        text(authenticator)?
    ))
}

fn line(s: &mut String, tag: &str, value: &str) -> Result<(), RemoteError> {
    s.push_str(&format!("<{tag}>{}</{tag}>\n", text(value)?));
    Ok(())
}

/// `<ping>`: checks the authenticator.
pub fn ping_request(authenticator: &str) -> Result<String, RemoteError> {
    Ok(open("ping", authenticator)? + "</ping>\n")
}

/// `<submit_batch>` with the batch's jobs.
pub fn submit_batch_request(authenticator: &str, batch: &Batch) -> Result<String, RemoteError> {
    if batch.jobs.is_empty() {
        return Err(RemoteError::InvalidRequest(
            "a batch needs at least one job".into(),
        ));
    }
    let mut s = open("submit_batch", authenticator)?;
    s.push_str("<batch>\n");
    let mut field = |tag: &str, value: &str| -> Result<(), RemoteError> {
        s.push_str(&format!("  <{tag}>{}</{tag}>\n", text(value)?));
        Ok(())
    };
    if let Some(id) = batch.batch_id {
        field("batch_id", &id.to_string())?;
    }
    field("app_name", &batch.app_name)?;
    if let Some(v) = &batch.batch_name {
        field("batch_name", v)?;
    }
    if let Some(v) = &batch.workunit_template_file {
        field("workunit_template_file", v)?;
    }
    if let Some(v) = &batch.input_template_filename {
        field("input_template_filename", v)?;
    }
    if let Some(v) = &batch.output_template_filename {
        field("output_template_filename", v)?;
    }
    for job in &batch.jobs {
        s.push_str("    <job>\n");
        if let Some(name) = &job.name {
            s.push_str(&format!("      <name>{}</name>\n", text(name)?));
        }
        if let Some(cl) = &job.command_line {
            s.push_str(&format!(
                "      <command_line>{}</command_line>\n",
                text(cl)?
            ));
        }
        for f in &job.input_files {
            s.push_str("      <input_file>");
            match f {
                InputFile::Inline(content) => {
                    s.push_str(&format!(
                        "<mode>inline</mode><source>{}</source>",
                        text(content)?
                    ));
                }
                InputFile::LocalStaged(name) => {
                    s.push_str(&format!(
                        "<mode>local_staged</mode><source>{}</source>",
                        text(name)?
                    ));
                }
                InputFile::Local(path) => {
                    s.push_str(&format!(
                        "<mode>local</mode><source>{}</source>",
                        text(path)?
                    ));
                }
                InputFile::Remote { url, nbytes, md5 } => {
                    s.push_str(&format!(
                        "<mode>remote</mode><url>{}</url><nbytes>{nbytes}</nbytes><md5>{}</md5>",
                        text(url)?,
                        text(md5)?
                    ));
                }
            }
            s.push_str("</input_file>\n");
        }
        s.push_str("    </job>\n");
    }
    s.push_str("</batch>\n</submit_batch>\n");
    Ok(s)
}

/// `<query_batches>`: the user's batches (retired ones excluded).
pub fn query_batches_request(
    authenticator: &str,
    get_cpu_time: bool,
) -> Result<String, RemoteError> {
    let mut s = open("query_batches", authenticator)?;
    if get_cpu_time {
        s.push_str("<get_cpu_time>1</get_cpu_time>\n");
    }
    Ok(s + "</query_batches>\n")
}

/// `<query_batch>`: one batch, optionally with per-job details.
pub fn query_batch_request(
    authenticator: &str,
    batch: &BatchRef,
    get_cpu_time: bool,
    get_job_details: bool,
) -> Result<String, RemoteError> {
    let mut s = open("query_batch", authenticator)?;
    match batch {
        BatchRef::Id(id) => line(&mut s, "batch_id", &id.to_string())?,
        BatchRef::Name(name) => line(&mut s, "batch_name", name)?,
    }
    if get_cpu_time {
        s.push_str("<get_cpu_time>1</get_cpu_time>\n");
    }
    if get_job_details {
        s.push_str("<get_job_details>1</get_job_details>\n");
    }
    Ok(s + "</query_batch>\n")
}

/// `<query_job>`: the instances (results) of one job (work unit id).
pub fn query_job_request(authenticator: &str, job_id: u64) -> Result<String, RemoteError> {
    let mut s = open("query_job", authenticator)?;
    line(&mut s, "job_id", &job_id.to_string())?;
    Ok(s + "</query_job>\n")
}

/// `<query_completed_job>`: outcome and stderr of one job, by name.
pub fn query_completed_job_request(
    authenticator: &str,
    job_name: &str,
) -> Result<String, RemoteError> {
    let mut s = open("query_completed_job", authenticator)?;
    line(&mut s, "job_name", job_name)?;
    Ok(s + "</query_completed_job>\n")
}

/// `<abort_jobs>`: cancel jobs by name.
pub fn abort_jobs_request<S: AsRef<str>>(
    authenticator: &str,
    job_names: &[S],
) -> Result<String, RemoteError> {
    if job_names.is_empty() {
        return Err(RemoteError::InvalidRequest("no job to abort".into()));
    }
    let mut s = open("abort_jobs", authenticator)?;
    for name in job_names {
        line(&mut s, "job_name", name.as_ref())?;
    }
    Ok(s + "</abort_jobs>\n")
}

/// `<abort_batch>`: cancel every job of a batch.
pub fn abort_batch_request(authenticator: &str, batch_id: u64) -> Result<String, RemoteError> {
    let mut s = open("abort_batch", authenticator)?;
    line(&mut s, "batch_id", &batch_id.to_string())?;
    Ok(s + "</abort_batch>\n")
}

/// `<retire_batch>`: let the server delete the batch's files.
pub fn retire_batch_request(authenticator: &str, batch_id: u64) -> Result<String, RemoteError> {
    let mut s = open("retire_batch", authenticator)?;
    line(&mut s, "batch_id", &batch_id.to_string())?;
    Ok(s + "</retire_batch>\n")
}

/// `<create_batch>`: an empty batch to submit jobs into later.
pub fn create_batch_request(
    authenticator: &str,
    app_name: &str,
    batch_name: &str,
    expire_time: u64,
) -> Result<String, RemoteError> {
    let mut s = open("create_batch", authenticator)?;
    line(&mut s, "app_name", app_name)?;
    line(&mut s, "batch_name", batch_name)?;
    line(&mut s, "expire_time", &expire_time.to_string())?;
    Ok(s + "</create_batch>\n")
}

/// The POST body: `request=` and the XML, form-encoded.
pub fn form_body(request_xml: &str) -> String {
    format!("request={}", form_encode(request_xml))
}

/// `application/x-www-form-urlencoded` encoding as the recorded client did
/// it: letters, digits and `-_.~` as is, space as `+`, every other byte as
/// `%XX`.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The URL of the RPC handler.
pub fn submit_rpc_url(project_url: &str) -> String {
    format!("{}{SUBMIT_RPC_HANDLER}", with_slash(project_url))
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

/// `get_output.php`'s `auth_str`: lowercase hex `md5(authenticator + name)`
/// (`name` is the result name, or the batch id in decimal).
pub fn auth_str(authenticator: &str, name: &str) -> String {
    hex::md5_hex(&[authenticator.as_bytes(), name.as_bytes()])
}

/// URL of output file `file_num` (0-based, template order) of a result.
pub fn result_file_url(
    project_url: &str,
    authenticator: &str,
    result_name: &str,
    file_num: u32,
) -> String {
    format!(
        "{}{GET_OUTPUT}?cmd=result_file&result_name={}&file_num={file_num}&auth_str={}",
        with_slash(project_url),
        form_encode(result_name),
        auth_str(authenticator, result_name)
    )
}

/// URL of a zip of the canonical outputs of a batch (members named by
/// physical name, failed jobs skipped). Only `batch_id` works in 7.20.5.
pub fn batch_files_url(project_url: &str, authenticator: &str, batch_id: u64) -> String {
    let id = batch_id.to_string();
    format!(
        "{}{GET_OUTPUT}?cmd=batch_files&batch_id={id}&auth_str={}",
        with_slash(project_url),
        auth_str(authenticator, &id)
    )
}

/// The server-side physical name of an inline input: `jf_<md5 of content>`.
pub fn inline_physical_name(content: &[u8]) -> String {
    format!("jf_{}", hex::md5_hex(&[content]))
}

/// Checks a `get_output.php` reply: the body is the file when the content
/// type is `application/octet-stream`; otherwise it is an error text such as
/// `ERROR: bad authenticator` (HTTP 200 and `text/html`).
pub fn check_get_output(content_type: Option<&str>, body: &[u8]) -> Result<(), RemoteError> {
    let is_file = content_type.is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/octet-stream")
    });
    if is_file {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&body[..body.len().min(1000)]).into_owned();
    let message = head.strip_prefix("ERROR: ").unwrap_or(&head);
    Err(RemoteError::GetOutput(excerpt(message, 300)))
}

// ----------------------------------------------------------------- replies

fn redact_authenticators(s: &str) -> String {
    const OPEN: &str = "<authenticator>";
    const CLOSE: &str = "</authenticator>";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find(OPEN) {
        out.push_str(&rest[..p + OPEN.len()]);
        rest = &rest[p + OPEN.len()..];
        match rest.find(CLOSE) {
            Some(q) => {
                out.push_str("***");
                rest = &rest[q..];
            }
            None => {
                out.push_str("***");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

/// The name of the first element of a reply, skipping the declaration and
/// PHP's HTML (`<br />`, `<b>`).
fn first_element_name(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(p) = rest.find('<') {
        rest = &rest[p + 1..];
        if rest.starts_with(['?', '!', '/']) {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if !name.is_empty() && name != "br" && name != "b" {
            return Some(name);
        }
    }
    None
}

/// Finds an `<error><error_num>..</error_num><error_msg>..</error_msg>`
/// block anywhere in a reply (a job's `<error>reason</error>` is not one).
fn find_server_error(text: &str) -> Option<ServerError> {
    let mut from = 0;
    while let Some(p) = text[from..].find("<error>") {
        let at = from + p;
        let after = &text[at + "<error>".len()..];
        if after.trim_start().starts_with("<error_num>") {
            let num = between(after, "<error_num>", "</error_num>")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(-1);
            let message = after.find("<error_msg>").map(|s| {
                let body = &after[s + "<error_msg>".len()..];
                let end = body.rfind("</error_msg>").unwrap_or(body.len());
                xml::unescape(body[..end].trim()).into_owned()
            });
            let command = first_element_name(text)
                .filter(|&n| n != "error")
                .map(str::to_owned);
            return Some(ServerError {
                command,
                num,
                message: excerpt(&redact_authenticators(&message.unwrap_or_default()), 8000),
            });
        }
        from = at + "<error>".len();
    }
    None
}

fn is_php_fatal(text: &str) -> bool {
    text.contains("<b>Fatal error</b>") || text.contains("PHP Fatal error")
}

fn php_excerpt(text: &str) -> String {
    let start = text.find("Fatal error").unwrap_or(0);
    let plain: String = text[start..]
        .replace("<br />", "")
        .replace("<b>", "")
        .replace("</b>", "");
    excerpt(&redact_authenticators(&plain), 300)
}

/// Common checks, then the command's element.
fn reply(body: &[u8], command: &'static str) -> Result<Element, RemoteError> {
    let text = String::from_utf8_lossy(body);
    if let Some(e) = find_server_error(&text) {
        return Err(RemoteError::Server(e));
    }
    if is_php_fatal(&text) {
        return Err(RemoteError::PhpFatal {
            excerpt: php_excerpt(&text),
        });
    }
    let unexpected = || RemoteError::UnexpectedReply {
        command,
        excerpt: excerpt(&redact_authenticators(&text), 200),
    };
    let mut doc = xml::parse(&text).map_err(|_| unexpected())?;
    let pos = doc
        .children
        .iter()
        .position(|c| c.name == command)
        .ok_or_else(unexpected)?;
    Ok(doc.children.swap_remove(pos))
}

struct Fields<'a> {
    el: &'a Element,
    command: &'static str,
}

impl Fields<'_> {
    fn text(&self, field: &'static str) -> Option<&str> {
        self.el.child_text(field)
    }

    fn req_str(&self, field: &'static str) -> Result<String, RemoteError> {
        self.text(field)
            .map(str::to_owned)
            .ok_or(RemoteError::MissingField {
                command: self.command,
                field,
            })
    }

    fn bad(&self, field: &'static str, value: &str) -> RemoteError {
        RemoteError::BadField {
            command: self.command,
            field,
            value: excerpt(value, 80),
        }
    }

    fn opt<T: std::str::FromStr>(&self, field: &'static str) -> Result<Option<T>, RemoteError> {
        match self.text(field) {
            None | Some("") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| self.bad(field, s)),
        }
    }

    fn req<T: std::str::FromStr>(&self, field: &'static str) -> Result<T, RemoteError> {
        self.opt(field)?.ok_or(RemoteError::MissingField {
            command: self.command,
            field,
        })
    }

    fn opt_f64(&self, field: &'static str) -> Result<Option<f64>, RemoteError> {
        match self.opt::<f64>(field)? {
            Some(v) if !v.is_finite() => Err(self.bad(field, &v.to_string())),
            v => Ok(v),
        }
    }

    fn f64_or_zero(&self, field: &'static str) -> Result<f64, RemoteError> {
        Ok(self.opt_f64(field)?.unwrap_or(0.0))
    }
}

/// `<batch>` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchState {
    /// 0: created, no job submitted yet (or a submit failed half-way).
    Init,
    /// 1: jobs in progress.
    InProgress,
    /// 2: every job done or failed.
    Complete,
    /// 3: aborted.
    Aborted,
    /// 4: retired (files may be deleted).
    Retired,
    /// Any other number.
    Unknown(i64),
}

impl BatchState {
    /// The state of that number.
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => BatchState::Init,
            1 => BatchState::InProgress,
            2 => BatchState::Complete,
            3 => BatchState::Aborted,
            4 => BatchState::Retired,
            n => BatchState::Unknown(n),
        }
    }
}

/// A job's `<status>` in `query_batch` with details.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// `queued`: no instance sent yet.
    Queued,
    /// `in_progress`.
    InProgress,
    /// `done`: has a canonical result.
    Done,
    /// `error`: failed (see the job's errors).
    Error,
    /// Anything else, as written.
    Other(String),
}

impl JobState {
    fn parse(s: &str) -> Self {
        match s {
            "queued" => JobState::Queued,
            "in_progress" => JobState::InProgress,
            "done" => JobState::Done,
            "error" => JobState::Error,
            other => JobState::Other(other.to_owned()),
        }
    }
}

/// A job in a `query_batch` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// Job (work unit) id.
    pub id: u64,
    /// Job name.
    pub name: String,
    /// Canonical instance (result) id, if any.
    pub canonical_instance_id: Option<u64>,
    /// CPU time (only with `get_cpu_time` and details, for done jobs).
    pub cpu_time: Option<f64>,
    /// Status (only with `get_job_details`).
    pub status: Option<JobState>,
    /// `<error>` reasons as written (`too_many_error_results`, `cancelled`).
    pub errors: Vec<String>,
    /// `<exit_status>` of each failed instance.
    pub exit_statuses: Vec<i64>,
}

impl JobStatus {
    /// The errors as an `error_mask` (unknown names are left out).
    pub fn error_mask(&self) -> WuErrorMask {
        WuErrorMask::from_reasons(
            self.errors
                .iter()
                .filter_map(|e| WuErrorReason::from_name(e)),
        )
    }
}

/// A batch in a `query_batch` or `query_batches` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStatus {
    /// Batch id.
    pub id: u64,
    /// Batch name.
    pub name: String,
    /// App name.
    pub app_name: String,
    /// State.
    pub state: BatchState,
    /// Number of jobs.
    pub njobs: u64,
    /// Failed jobs.
    pub nerror_jobs: u64,
    /// Fraction of jobs done successfully.
    pub fraction_done: f64,
    /// Unix times: creation, expiry (0: none), completion (0: not yet).
    pub create_time: f64,
    /// See [`BatchStatus::create_time`].
    pub expire_time: f64,
    /// See [`BatchStatus::create_time`].
    pub completion_time: f64,
    /// Estimated completion (0: none).
    pub est_completion_time: f64,
    /// Credit estimate.
    pub credit_estimate: f64,
    /// Credit of canonical results.
    pub credit_canonical: f64,
    /// Total CPU time (with `get_cpu_time`).
    pub total_cpu_time: Option<f64>,
    /// Jobs (`query_batch` only; with details, status and errors too).
    pub jobs: Vec<JobStatus>,
}

fn parse_batch(el: &Element, command: &'static str) -> Result<BatchStatus, RemoteError> {
    let f = Fields { el, command };
    let mut jobs = Vec::new();
    for j in el.children_named("job") {
        let jf = Fields { el: j, command };
        jobs.push(JobStatus {
            id: jf.req("id")?,
            name: jf.req_str("name")?,
            canonical_instance_id: jf.opt::<u64>("canonical_instance_id")?.filter(|&i| i != 0),
            cpu_time: jf.opt_f64("cpu_time")?,
            status: jf.text("status").map(JobState::parse),
            errors: j
                .children_named("error")
                .map(|e| e.text.trim().to_owned())
                .collect(),
            exit_statuses: j
                .children_named("exit_status")
                .map(|e| {
                    e.text
                        .trim()
                        .parse()
                        .map_err(|_| jf.bad("exit_status", &e.text))
                })
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(BatchStatus {
        id: f.req("id")?,
        name: f.text("name").unwrap_or_default().to_owned(),
        app_name: f.text("app_name").unwrap_or_default().to_owned(),
        state: BatchState::from_code(f.req("state")?),
        njobs: f.opt("njobs")?.unwrap_or(0),
        nerror_jobs: f.opt("nerror_jobs")?.unwrap_or(0),
        fraction_done: f.f64_or_zero("fraction_done")?,
        create_time: f.f64_or_zero("create_time")?,
        expire_time: f.f64_or_zero("expire_time")?,
        completion_time: f.f64_or_zero("completion_time")?,
        est_completion_time: f.f64_or_zero("est_completion_time")?,
        credit_estimate: f.f64_or_zero("credit_estimate")?,
        credit_canonical: f.f64_or_zero("credit_canonical")?,
        total_cpu_time: f.opt_f64("total_cpu_time")?,
        jobs,
    })
}

/// Parses a `submit_batch` (or `create_batch`) reply: the batch id.
pub fn parse_submit_batch(body: &[u8]) -> Result<u64, RemoteError> {
    parse_batch_id(body, "submit_batch")
}

/// Parses a `create_batch` reply: the batch id.
pub fn parse_create_batch(body: &[u8]) -> Result<u64, RemoteError> {
    parse_batch_id(body, "create_batch")
}

fn parse_batch_id(body: &[u8], command: &'static str) -> Result<u64, RemoteError> {
    let el = reply(body, command)?;
    Fields { el: &el, command }.req("batch_id")
}

/// Parses a `query_batch` reply.
pub fn parse_query_batch(body: &[u8]) -> Result<BatchStatus, RemoteError> {
    let el = reply(body, "query_batch")?;
    parse_batch(&el, "query_batch")
}

/// Parses a `query_batches` reply.
pub fn parse_query_batches(body: &[u8]) -> Result<Vec<BatchStatus>, RemoteError> {
    let el = reply(body, "query_batches")?;
    el.children_named("batch")
        .map(|b| parse_batch(b, "query_batches"))
        .collect()
}

/// One instance (result) of a job, from `query_job`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInstance {
    /// Result name (`<job name>_<replica>`).
    pub name: String,
    /// Result id.
    pub id: u64,
    /// State as the server words it (`Completed and validated`,
    /// `In progress`, `Error while computing` ...).
    pub state: String,
    /// Sizes of the uploaded output files, in template order.
    pub outfile_sizes: Vec<u64>,
}

/// The stderr shown by the project's public task page `result.php`: the
/// `<pre>` after the "Stderr output" heading, with PHP's `htmlspecialchars`
/// (`ENT_QUOTES`) undone. `None` without that section.
pub fn parse_result_page_stderr(html: &str) -> Option<String> {
    let section = &html[html.find("Stderr output")?..];
    let start = section.find("<pre>")? + "<pre>".len();
    let end = section[start..].find("</pre>")? + start;
    Some(
        section[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#039;", "'")
            .replace("&amp;", "&"),
    )
}

/// Parses a `query_job` reply.
pub fn parse_query_job(body: &[u8]) -> Result<Vec<JobInstance>, RemoteError> {
    const CMD: &str = "query_job";
    let el = reply(body, CMD)?;
    el.children_named("instance")
        .map(|i| {
            let f = Fields {
                el: i,
                command: CMD,
            };
            Ok(JobInstance {
                name: f.req_str("name")?,
                id: f.req("id")?,
                state: f.text("state").unwrap_or_default().to_owned(),
                outfile_sizes: i
                    .children_named("outfile")
                    .map(|o| {
                        Fields {
                            el: o,
                            command: CMD,
                        }
                        .req("size")
                    })
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// A finished job, from `query_completed_job`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedJob {
    /// Why the job failed (empty for success).
    pub error_mask: WuErrorMask,
    /// The canonical result's id, if any.
    pub canonical_resultid: Option<u64>,
    /// The canonical result's exit status.
    pub exit_status: Option<i64>,
    /// Its elapsed seconds.
    pub elapsed_time: Option<f64>,
    /// Its CPU seconds.
    pub cpu_time: Option<f64>,
    /// Its `stderr_out` (see [`parse_stderr_out`]).
    pub stderr_out: Option<String>,
    /// The reply was cut short by the server's PHP fatal error (the 7.20.5
    /// defect for jobs without canonical result); only `error_mask` is known.
    pub truncated_by_server: bool,
}

/// Parses a `query_completed_job` reply, tolerating the 7.20.5 defect for
/// failed jobs (see [`CompletedJob::truncated_by_server`]).
pub fn parse_query_completed_job(body: &[u8]) -> Result<CompletedJob, RemoteError> {
    const CMD: &str = "query_completed_job";
    let text = String::from_utf8_lossy(body);
    if is_php_fatal(&text) && find_server_error(&text).is_none() {
        let mask = between(&text, "<error_mask>", "</error_mask>")
            .and_then(|m| m.trim().parse::<u32>().ok());
        return match mask {
            Some(m) if m != 0 && text.contains("<completed_job>") => {
                tracing::debug!(
                    error_mask = m,
                    "query_completed_job: server fatal error after <error_mask> (known 7.20.5 defect)"
                );
                Ok(CompletedJob {
                    error_mask: WuErrorMask(m),
                    canonical_resultid: None,
                    exit_status: None,
                    elapsed_time: None,
                    cpu_time: None,
                    stderr_out: None,
                    truncated_by_server: true,
                })
            }
            _ => Err(RemoteError::PhpFatal {
                excerpt: php_excerpt(&text),
            }),
        };
    }
    let el = reply(body, CMD)?;
    let job = el.child("completed_job").ok_or(RemoteError::MissingField {
        command: CMD,
        field: "completed_job",
    })?;
    let f = Fields {
        el: job,
        command: CMD,
    };
    Ok(CompletedJob {
        error_mask: WuErrorMask(f.req("error_mask")?),
        canonical_resultid: f.opt::<u64>("canonical_resultid")?.filter(|&i| i != 0),
        exit_status: f.opt("exit_status")?,
        elapsed_time: f.opt_f64("elapsed_time")?,
        cpu_time: f.opt_f64("cpu_time")?,
        // The handler HTML-escapes stderr inside CDATA.
        stderr_out: job
            .child("stderr_out")
            .map(|s| xml::unescape(s.text.trim()).into_owned()),
        truncated_by_server: false,
    })
}

/// Parses an `abort_jobs` reply (not well-formed XML in 7.20.5: one
/// `<aborted NAME>` line per job): the names reported aborted.
pub fn parse_abort_jobs(body: &[u8]) -> Result<Vec<String>, RemoteError> {
    const CMD: &str = "abort_jobs";
    let text = String::from_utf8_lossy(body);
    if let Some(e) = find_server_error(&text) {
        return Err(RemoteError::Server(e));
    }
    if is_php_fatal(&text) {
        return Err(RemoteError::PhpFatal {
            excerpt: php_excerpt(&text),
        });
    }
    let ok = first_element_name(&text) == Some(CMD)
        && between(&text, "<success>", "</success>").is_some_and(|s| s.trim() == "1");
    if !ok {
        return Err(RemoteError::UnexpectedReply {
            command: CMD,
            excerpt: excerpt(&text, 200),
        });
    }
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<aborted ")?.strip_suffix('>'))
        .map(|n| n.trim().to_owned())
        .collect())
}

/// Parses a reply that only says `<success>1</success>` (`ping`,
/// `abort_batch`, `retire_batch`, `set_expire_time`); `command` is the
/// command sent.
pub fn parse_success(body: &[u8], command: &'static str) -> Result<(), RemoteError> {
    let el = reply(body, command)?;
    match el.child_text("success") {
        Some("1") => Ok(()),
        _ => Err(RemoteError::MissingField {
            command,
            field: "success",
        }),
    }
}

/// The parts of a result's `stderr_out` as the client 7.20.5 wraps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StderrOut {
    /// `<core_client_version>`.
    pub core_client_version: Option<String>,
    /// The client's `<message>` (for example `process exited with code 3
    /// (0x3, -253)`), trimmed.
    pub message: Option<String>,
    /// The app's stderr: the last 63 KB (64512 bytes) of `stderr.txt`, of
    /// all runs of the task.
    pub stderr_txt: Option<String>,
}

/// Splits a `stderr_out` (from the database or [`CompletedJob`]).
pub fn parse_stderr_out(s: &str) -> StderrOut {
    let stderr_txt = s.find("<stderr_txt>").and_then(|start| {
        let body = &s[start + "<stderr_txt>".len()..];
        let end = body.rfind("</stderr_txt>")?;
        let body = &body[..end];
        let body = body.strip_prefix('\n').unwrap_or(body);
        Some(body.strip_suffix('\n').unwrap_or(body).to_owned())
    });
    StderrOut {
        core_client_version: between(s, "<core_client_version>", "</core_client_version>")
            .map(|v| v.trim().to_owned()),
        message: between(s, "<message>", "</message>").map(|m| m.trim().to_owned()),
        stderr_txt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(form_encode("<a b>/:~-_.\n"), "%3Ca+b%3E%2F%3A~-_.%0A");
        assert_eq!(form_encode("é"), "%C3%A9");
    }

    #[test]
    fn request_text_is_checked() {
        let job = Job {
            input_files: vec![InputFile::Inline("a\0b".into())],
            ..Job::default()
        };
        let batch = Batch {
            app_name: "a".into(),
            jobs: vec![job],
            ..Batch::default()
        };
        assert!(submit_batch_request("x", &batch).is_err());
        let batch = Batch {
            jobs: vec![Job {
                input_files: vec![InputFile::Inline("x<&\r\n".into())],
                ..Job::default()
            }],
            ..batch
        };
        let xml = submit_batch_request("x", &batch).unwrap();
        assert!(xml.contains("<source>x&lt;&amp;&#13;\n</source>"));
        assert!(submit_batch_request("x", &Batch::default()).is_err());
        assert!(abort_jobs_request::<&str>("x", &[]).is_err());
    }

    #[test]
    fn garbage_replies_do_not_panic() {
        for body in [
            &b""[..],
            b"\xff\xfe",
            b"<",
            b"<error>",
            b"<error><error_num>",
            b"<error><error_num>x</error_num><error_msg>",
            b"<query_batch><id>1</id>",
            b"<query_batch><job><id>x",
            b"<b>Fatal error</b>",
            b"<query_completed_job><completed_job><error_mask>2</error_mask><b>Fatal error</b>",
        ] {
            let _ = parse_query_batch(body);
            let _ = parse_query_batches(body);
            let _ = parse_query_job(body);
            let _ = parse_query_completed_job(body);
            let _ = parse_abort_jobs(body);
            let _ = parse_submit_batch(body);
            let _ = parse_success(body, "ping");
            let _ = check_get_output(None, body);
        }
        assert!(matches!(
            parse_query_completed_job(
                b"<query_completed_job><completed_job><error_mask>2</error_mask><b>Fatal error</b>"
            ),
            Ok(CompletedJob {
                truncated_by_server: true,
                ..
            })
        ));
        let err = parse_query_batch(b"<error><error_num>-1</error_num><error_msg>x <authenticator>secret</authenticator></error_msg></error>").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            submit_rpc_url("http://h/p"),
            "http://h/p/submit_rpc_handler.php"
        );
        assert_eq!(
            inline_physical_name(b"1"),
            "jf_c4ca4238a0b923820dcc509a6f75849b"
        );
    }
}

#[cfg(test)]
mod result_page_tests {
    /// The end of `result.php?resultid=24` of the live 7.20.5 testbed: a
    /// pymw task that returned an error (exit 1).
    const PAGE: &str = "<tr><td class=\"fieldname\">Validate state</td><td class=\"fieldvalue\">Invalid</td></tr>\n\
        </table>\n    <h3>Stderr output</h3> <pre>\n&lt;core_client_version&gt;7.20.5&lt;/core_client_version&gt;\n\
        &lt;![CDATA[\n&lt;message&gt;\nprocess exited with code 1 (0x1, -255)&lt;/message&gt;\n&lt;stderr_txt&gt;\n\
        pymw worker: task returned an error: division by zero\n\
        pymw-boinc-failure: ABBkaXZpc2lvbiBieSB6ZXJv\n\n&lt;/stderr_txt&gt;\n]]&gt;\n</pre>\n</div>";

    #[test]
    fn stderr_of_the_task_page() {
        let stderr = super::parse_result_page_stderr(PAGE).expect("a stderr section");
        assert!(
            stderr.starts_with("\n<core_client_version>7.20.5</core_client_version>\n<![CDATA[")
        );
        assert!(
            stderr
                .contains("<stderr_txt>\npymw worker: task returned an error: division by zero\n")
        );
        assert!(stderr.contains("pymw-boinc-failure: ABBkaXZpc2lvbiBieSB6ZXJv\n"));
        assert_eq!(
            super::parse_result_page_stderr("<html>No such task</html>"),
            None
        );
    }
}
