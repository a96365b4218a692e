//! Remote mode: the master runs anywhere and submits through the project's
//! remote job submission interface ([`crate::client::RemoteClient`]).
//!
//! - Each submitted batch of attempts becomes one `submit_batch`: one job per
//!   attempt, named like project-host work units, with the command line
//!   `__pymw boinc-run --task NAME` and its input envelope inline, armored
//!   as text ([`crate::armor`]). Once the server has accepted the batch,
//!   each attempt is reported `Queued` with the job id
//!   `boinc-remote <batch id> <job name>` ([`crate::job_id`]).
//! - Every poll interval each unfinished batch is queried with job details:
//!   a job `in_progress` gives `Started`; a `done` job's canonical result is
//!   found with `query_job` and its output fetched from `get_output.php`
//!   (bounded, then decoded with the bounded decoder); an `error` job gives
//!   `Lost` with its error reasons and exit statuses (or `Finished` with the
//!   task's failure when the stderr can be had and carries one). A batch
//!   whose jobs are all over is retired.
//! - Cancelling aborts the jobs (`abort_jobs`); at shutdown the jobs still
//!   unfinished are aborted unless the master was told to leave them, or
//!   keeps a run store (below).
//!
//! # Runs that outlive their master
//!
//! When the master keeps a run store ([`RemoteSettings::run_name`]):
//!
//! - Job names start with the run's name (each master life still has its
//!   own run id: attempt keys start again in every life).
//! - At shutdown the unfinished jobs are left running, not aborted: the run
//!   store records them as in flight and the next master of the run
//!   follows them. Jobs the master cancelled were aborted when it asked.
//! - An attempt dispatched with `reattach` = `boinc-remote BATCH JOB` is
//!   followed when `query_batch` of that batch lists the job, the batch is
//!   neither retired (its files may be gone) nor aborted, and the job was
//!   not cancelled: it is reported `Queued` (same id) and then polled like
//!   this master's own jobs, under the dispatch's new key, so that a job
//!   that finished while no master was alive is fetched at the next poll.
//!   A batch of an earlier master is retired once this master has followed
//!   every job of it to its end; otherwise it is left as it is, for a later
//!   master to follow the rest.
//! - An attempt whose job cannot be followed is logged and submitted again
//!   as a new job. In each of those cases (unknown batch or job, retired or
//!   aborted batch, cancelled job) the old job cannot be running, and its
//!   result is never fetched. When `query_batch` itself fails (the server
//!   cannot be reached, say), the attempt is also submitted again: a job
//!   of an earlier master that does run to its end then costs volunteer
//!   time, but is never counted.
//!
//! Validation is the project's: the administrator runs this binary as the
//! app's validator (`min_quorum` and the other work unit parameters come
//! from the server-side templates named with `--boinc-input-template`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pymw_core::backend::{AttemptKey, Dispatch, Event, EventSink};
use pymw_core::registry::TaskEntry;
use pymw_core::wire::{self, InputBody};

use crate::client::{ClientError, RemoteClient};
use crate::job_id::JobId;
use crate::remote::{Batch, BatchRef, BatchState, InputFile, Job, JobState};
use crate::spool;

/// Settings of remote mode.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteSettings {
    /// The project's master URL.
    pub url: String,
    /// The submitting user's authenticator (account key).
    pub authenticator: String,
    /// The app's short name.
    pub app: String,
    /// Server-side input template (under the project's `templates/`).
    pub input_template: Option<String>,
    /// Server-side output template.
    pub output_template: Option<String>,
    /// How often unfinished batches are queried.
    pub poll: Duration,
    /// Leave jobs running when the master ends.
    pub leave_running: bool,
    /// Largest output downloaded, in bytes.
    pub max_output_bytes: u64,
    /// The name of the master's run store, when it keeps one: jobs then
    /// outlive the master (see the module docs).
    pub run_name: Option<String>,
}

enum Command {
    Submit(Vec<Dispatch>),
    Cancel(Vec<AttemptKey>),
}

/// The remote engine: a thread running a small tokio runtime of its own, so
/// that the backend works from any caller, async or not.
#[derive(Debug)]
pub(crate) struct RemoteEngine {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A configuration error of the server that no retry can get past
    /// ([`config_error`]): every later submit fails with it.
    broken: Arc<Mutex<Option<String>>>,
}

/// The fix for a reply of `submit_batch` that says the server is set up in
/// a way no retry gets past, `None` for other failures.
///
/// - `can't write to file PATH`: `submit_rpc_handler.php` (run by the web
///   server's user) cannot write the inline inputs into the project's
///   `download/` hierarchy.
pub(crate) fn config_error(message: &str) -> Option<String> {
    message.contains("can't write to file").then(|| {
        format!(
            "the BOINC server is misconfigured: its web server cannot write the inputs into the project's \
             download/ directory ({message}). The project administrator must make download/ and its \
             subdirectories group-writable and setgid for a group the web server's user is in \
             (chmod -R g+ws download; usermod -aG PROJECT_GROUP www-data) and run Apache and the project's \
             daemons with umask 002; see the README, \"For a remote submitter\""
        )
    })
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Submit(b) => write!(f, "Submit({} attempts)", b.len()),
            Command::Cancel(k) => write!(f, "Cancel({k:?})"),
        }
    }
}

struct Tracked {
    key: AttemptKey,
    task: &'static TaskEntry,
    batch: u64,
    started: bool,
    /// Failed attempts to download the output of the done job.
    fetch_failures: u32,
}

impl Tracked {
    /// A job of batch `batch` just taken on, not yet seen running.
    fn new(key: AttemptKey, task: &'static TaskEntry, batch: u64) -> Tracked {
        Tracked {
            key,
            task,
            batch,
            started: false,
            fetch_failures: 0,
        }
    }
}

/// Failed downloads of a done job's output after which it is lost.
const MAX_FETCH_FAILURES: u32 = 10;

struct Engine {
    broken: Arc<Mutex<Option<String>>>,
    client: RemoteClient,
    settings: RemoteSettings,
    events: EventSink,
    run: String,
    batches_sent: u64,
    /// Unfinished jobs by name.
    jobs: HashMap<String, Tracked>,
    /// Unfinished batches: id and the number of their unfinished jobs.
    batches: BTreeMap<u64, usize>,
    /// Jobs of earlier masters followed, by the key of the attempt that
    /// follows them.
    followed: HashMap<AttemptKey, String>,
    /// Batches of earlier masters with followed jobs: their number of jobs,
    /// and how many of them this master followed to their end.
    earlier_batches: HashMap<u64, (usize, usize)>,
}

impl RemoteEngine {
    /// Starts the engine's thread, which checks the URL and the
    /// authenticator (a ping) before this returns.
    ///
    /// Nothing here blocks on a runtime in the caller's thread: the engine's
    /// runtime lives only on its own thread, and the caller waits for the
    /// ping's answer on a plain channel. So the backend starts alike from
    /// plain code and from async code (the async master inside
    /// `#[tokio::main]`), where a `block_on` would panic.
    pub(crate) fn start(settings: RemoteSettings, events: EventSink) -> Result<Self, String> {
        let client =
            RemoteClient::new(&settings.url, &settings.authenticator).map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let run = spool::new_run_id_for(settings.run_name.as_deref());
        let broken = Arc::new(Mutex::new(None));
        let engine_broken = broken.clone();
        let thread = std::thread::Builder::new()
            .name("pymw-boinc-remote".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start a tokio runtime: {e}")));
                        return;
                    }
                };
                // Check the URL and the authenticator before accepting work.
                if let Err(e) = runtime.block_on(client.ping()) {
                    let _ = ready_tx.send(Err(format!(
                        "{} did not accept the authenticator: {e}",
                        settings.url
                    )));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                let mut engine = Engine {
                    broken: engine_broken,
                    client,
                    settings,
                    events,
                    run,
                    batches_sent: 0,
                    jobs: HashMap::new(),
                    batches: BTreeMap::new(),
                    followed: HashMap::new(),
                    earlier_batches: HashMap::new(),
                };
                runtime.block_on(engine.run(rx));
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let ready = ready_rx
            .recv()
            .unwrap_or_else(|_| Err("the remote-submission thread stopped at start".to_owned()));
        if let Err(e) = ready {
            let _ = thread.join();
            return Err(e);
        }
        Ok(RemoteEngine {
            tx: Some(tx),
            thread: Some(thread),
            broken,
        })
    }

    pub(crate) fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), String> {
        if let Some(e) = self
            .broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(e);
        }
        match &self.tx {
            Some(tx) => tx
                .send(Command::Submit(batch))
                .map_err(|_| "the remote-submission thread stopped".to_owned()),
            None => Err("the backend was shut down".to_owned()),
        }
    }

    pub(crate) fn cancel(&mut self, keys: &[AttemptKey]) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Command::Cancel(keys.to_vec()));
        }
    }

    pub(crate) fn shutdown(&mut self) {
        // Closing the channel ends the engine's loop, which then aborts what
        // is unfinished (unless told to leave it).
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Engine {
    async fn run(&mut self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(self.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Submit(batch)) => self.submit(batch).await,
                    Some(Command::Cancel(keys)) => self.cancel(&keys).await,
                    None => break,
                },
                _ = tick.tick() => self.poll().await,
            }
        }
        if let Some(run) = &self.settings.run_name
            && !self.jobs.is_empty()
        {
            tracing::info!(
                run = %run,
                "{} BOINC jobs left for the next master of the run",
                self.jobs.len()
            );
        } else if !self.settings.leave_running && !self.jobs.is_empty() {
            let names: Vec<String> = self.jobs.keys().cloned().collect();
            match tokio::time::timeout(Duration::from_secs(30), self.client.abort_jobs(&names))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!("cannot abort {} unfinished BOINC jobs: {e}", names.len())
                }
                Err(_) => {
                    tracing::warn!("aborting {} unfinished BOINC jobs timed out", names.len())
                }
            }
            for name in names {
                if let Some(t) = self.jobs.remove(&name) {
                    self.job_over(t.batch);
                }
            }
        }
        // Batches with every job over (cancelled ones included, which no
        // poll saw end) are retired, so that the server may delete their
        // files and the assimilator releases what it held for them.
        let over: Vec<u64> = self
            .batches
            .iter()
            .filter(|&(id, &n)| {
                n == 0
                    && self
                        .earlier_batches
                        .get(id)
                        .is_none_or(|&(njobs, ended)| ended >= njobs)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in over {
            match tokio::time::timeout(Duration::from_secs(30), self.client.retire_batch(id)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(batch = id, "retire_batch failed: {e}"),
                Err(_) => tracing::warn!(batch = id, "retire_batch timed out"),
            }
        }
    }

    async fn submit(&mut self, batch: Vec<Dispatch>) {
        let (earlier, mut batch): (Vec<Dispatch>, Vec<Dispatch>) =
            batch.into_iter().partition(|d| d.reattach.is_some());
        if !earlier.is_empty() {
            batch.extend(self.follow_earlier(earlier).await);
        }
        if batch.is_empty() {
            return;
        }
        self.batches_sent += 1;
        let batch_name = format!("pymw_{}_{}", self.run, self.batches_sent);
        let mut jobs = Vec::with_capacity(batch.len());
        let mut bad = Vec::new();
        for d in &batch {
            let name = spool::wu_name(&self.run, d.key);
            let mut envelope = Vec::with_capacity(d.input.len() + 64);
            wire::encode_input(
                &InputBody {
                    task: d.task.name,
                    fingerprint: (d.task.fingerprint)(),
                    payload: &d.input,
                },
                &mut envelope,
            );
            match crate::create_work::command_line_from_args(&crate::app::RunArgs::command_line(
                d.task.name,
            )) {
                Ok(command_line) => jobs.push(Job {
                    input_files: vec![InputFile::Inline(crate::armor::armor(&name, &envelope))],
                    name: Some(name),
                    command_line: Some(command_line),
                }),
                Err(e) => bad.push(lost(d.key, format!("BOINC job not submitted: {e}"))),
            }
        }
        let request = Batch {
            app_name: self.settings.app.clone(),
            batch_name: Some(batch_name.clone()),
            input_template_filename: self.settings.input_template.clone(),
            workunit_template_file: self.settings.input_template.clone(),
            output_template_filename: self.settings.output_template.clone(),
            jobs,
            ..Batch::default()
        };
        let submitted = if request.jobs.is_empty() {
            Err(None)
        } else {
            self.client.submit_batch(&request).await.map_err(Some)
        };
        let mut events = bad;
        match submitted {
            Ok(batch_id) => {
                tracing::debug!(batch_id, jobs = request.jobs.len(), "BOINC batch submitted");
                let submitted: std::collections::HashSet<&str> = request
                    .jobs
                    .iter()
                    .filter_map(|j| j.name.as_deref())
                    .collect();
                let mut count = 0;
                for d in &batch {
                    let name = spool::wu_name(&self.run, d.key);
                    if submitted.contains(name.as_str()) {
                        let job_id = JobId::Remote {
                            batch: batch_id,
                            job: name.clone(),
                        };
                        events.push(Event::Queued {
                            key: d.key,
                            job_id: job_id.to_string(),
                        });
                        self.jobs
                            .insert(name, Tracked::new(d.key, d.task, batch_id));
                        count += 1;
                    }
                }
                *self.batches.entry(batch_id).or_default() += count;
            }
            Err(None) => {}
            Err(Some(e)) => {
                let mut cause = format!(
                    "submit_batch of {} jobs to {} failed: {e}",
                    request.jobs.len(),
                    self.settings.url
                );
                if let Some(fix) = config_error(&e.to_string()) {
                    tracing::error!("{fix}");
                    cause = fix.clone();
                    *self.broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(fix);
                }
                for d in &batch {
                    let name = spool::wu_name(&self.run, d.key);
                    if request
                        .jobs
                        .iter()
                        .any(|j| j.name.as_deref() == Some(name.as_str()))
                    {
                        events.push(lost(d.key, cause.clone()));
                    }
                }
            }
        }
        self.events.send(events);
    }

    async fn cancel(&mut self, keys: &[AttemptKey]) {
        let mut names = Vec::new();
        for &key in keys {
            let name = self
                .followed
                .remove(&key)
                .unwrap_or_else(|| spool::wu_name(&self.run, key));
            if let Some(t) = self.jobs.remove(&name) {
                self.job_over(t.batch);
                names.push(name);
            }
        }
        if names.is_empty() {
            return;
        }
        if let Err(e) = self.client.abort_jobs(&names).await {
            tracing::warn!("cannot abort {} BOINC jobs: {e}", names.len());
        }
    }

    /// Counts one job of `batch` as over.
    fn job_over(&mut self, batch: u64) {
        if let Some(n) = self.batches.get_mut(&batch) {
            *n = n.saturating_sub(1);
        }
        if let Some((_, ended)) = self.earlier_batches.get_mut(&batch) {
            *ended += 1;
        }
    }

    /// Forgets a job that is over.
    fn forget(&mut self, name: &str, batch: u64) {
        if let Some(t) = self.jobs.remove(name) {
            self.followed.remove(&t.key);
        }
        self.job_over(batch);
    }

    /// Sorts dispatches that carry the job id of an earlier master: those
    /// whose job can be followed are reported `Queued` and tracked; the
    /// others are returned, to be submitted as new jobs (see the module
    /// docs).
    async fn follow_earlier(&mut self, dispatches: Vec<Dispatch>) -> Vec<Dispatch> {
        let mut fresh = Vec::new();
        let mut by_batch: BTreeMap<u64, Vec<(Dispatch, String, String)>> = BTreeMap::new();
        for d in dispatches {
            let id = d.reattach.clone().unwrap_or_default();
            match JobId::parse(&id) {
                Some(JobId::Remote { batch, job }) => {
                    by_batch.entry(batch).or_default().push((d, job, id))
                }
                Some(_) => {
                    not_followed(&id, "it is not a job of remote submission");
                    fresh.push(d);
                }
                None => {
                    not_followed(&id, "it is not a BOINC job id");
                    fresh.push(d);
                }
            }
        }
        let mut events = Vec::new();
        for (batch_id, list) in by_batch {
            let status = match self.client.query_batch(&BatchRef::Id(batch_id), true).await {
                Ok(status) => status,
                Err(e) => {
                    let why = format!("query_batch of batch {batch_id} failed: {e}");
                    for (d, _, id) in list {
                        not_followed(&id, &why);
                        fresh.push(d);
                    }
                    continue;
                }
            };
            let batch_over = match status.state {
                BatchState::Retired => Some("its batch was retired"),
                BatchState::Aborted => Some("its batch was aborted"),
                _ => None,
            };
            for (d, job, id) in list {
                let found = status.jobs.iter().find(|j| j.name == job);
                let why = match (batch_over, found) {
                    (Some(why), _) => Some(why),
                    (None, None) => Some("its batch does not list it"),
                    (None, Some(j))
                        if j.status == Some(JobState::Error)
                            && j.errors.iter().any(|e| e == "cancelled") =>
                    {
                        Some("it was cancelled")
                    }
                    (None, Some(_)) if self.jobs.contains_key(&job) => {
                        Some("another attempt follows it already")
                    }
                    (None, Some(_)) => None,
                };
                if let Some(why) = why {
                    not_followed(&id, why);
                    fresh.push(d);
                    continue;
                }
                tracing::debug!(job = %id, key = d.key, "following a BOINC job of an earlier master");
                events.push(Event::Queued {
                    key: d.key,
                    job_id: id,
                });
                self.followed.insert(d.key, job.clone());
                self.jobs.insert(job, Tracked::new(d.key, d.task, batch_id));
                *self.batches.entry(batch_id).or_default() += 1;
                let njobs = status.jobs.len().max(status.njobs as usize);
                self.earlier_batches.entry(batch_id).or_insert((njobs, 0));
            }
        }
        self.events.send(events);
        fresh
    }

    async fn poll(&mut self) {
        let ids: Vec<u64> = self.batches.keys().copied().collect();
        for id in ids {
            let status = match self.client.query_batch(&BatchRef::Id(id), true).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(batch = id, "query_batch failed: {e}");
                    continue;
                }
            };
            let mut events = Vec::new();
            for job in &status.jobs {
                let Some(tracked) = self.jobs.get_mut(&job.name) else {
                    continue;
                };
                match &job.status {
                    Some(JobState::InProgress) if !tracked.started => {
                        tracked.started = true;
                        events.push(Event::Started { key: tracked.key });
                    }
                    Some(JobState::Done) => {
                        let (key, task) = (tracked.key, tracked.task);
                        match self.fetch_output(job.id, job.canonical_instance_id).await {
                            Ok(bytes) => {
                                events.push(crate::events::output_event(key, task, &bytes))
                            }
                            Err(e) => {
                                let Some(tracked) = self.jobs.get_mut(&job.name) else {
                                    continue;
                                };
                                tracked.fetch_failures += 1;
                                if tracked.fetch_failures < MAX_FETCH_FAILURES {
                                    tracing::warn!(job = %job.name, "cannot fetch the output yet: {e}");
                                    continue;
                                }
                                events.push(lost(
                                    key,
                                    format!(
                                        "BOINC job {} is done but its output cannot be downloaded: {e}",
                                        job.name
                                    ),
                                ));
                            }
                        }
                        self.forget(&job.name, id);
                    }
                    Some(JobState::Error) => {
                        let key = tracked.key;
                        let stderr = match self.client.query_completed_job(&job.name).await {
                            Ok(done) if done.stderr_out.is_some() => done.stderr_out,
                            _ => self.failed_stderr(job.id).await,
                        };
                        events.push(crate::events::remote_failure_event(
                            key,
                            &job.name,
                            &job.errors,
                            &job.exit_statuses,
                            stderr.as_deref(),
                        ));
                        self.forget(&job.name, id);
                    }
                    _ => {}
                }
            }
            if !self.events.send(events) {
                return;
            }
            if self.batches.get(&id) == Some(&0) {
                self.batches.remove(&id);
                // A batch of an earlier master may hold jobs that a later
                // dispatch (or master) follows: retired only when this
                // master followed every job of it to its end.
                let all_ours = self
                    .earlier_batches
                    .get(&id)
                    .is_none_or(|&(njobs, ended)| ended >= njobs);
                if !all_ours {
                    tracing::debug!(batch = id, "batch of an earlier master left unretired");
                } else if let Err(e) = self.client.retire_batch(id).await {
                    tracing::warn!(batch = id, "retire_batch failed: {e}");
                }
            }
        }
    }

    /// The stderr of the last failed result of job `job_id`, from the
    /// project's task page, where `query_completed_job` cannot give it
    /// (see [`RemoteClient::result_page_stderr`]).
    async fn failed_stderr(&self, job_id: u64) -> Option<String> {
        let instances = match self.client.query_job(job_id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(job_id, "query_job failed: {e}");
                return None;
            }
        };
        let failed = instances
            .iter()
            .rev()
            .find(|i| i.state.to_ascii_lowercase().contains("error"))?;
        match self.client.result_page_stderr(failed.id).await {
            Ok(stderr) => stderr,
            Err(e) => {
                tracing::debug!(result = failed.id, "cannot read the task page: {e}");
                None
            }
        }
    }

    /// The canonical output of a done job.
    async fn fetch_output(
        &self,
        job_id: u64,
        canonical: Option<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let canonical = canonical.ok_or(ClientError::Remote(
            crate::remote::RemoteError::MissingField {
                command: "query_batch",
                field: "canonical_instance_id",
            },
        ))?;
        let instances = self.client.query_job(job_id).await?;
        let instance = instances
            .iter()
            .find(|i| i.id == canonical)
            .ok_or(ClientError::Remote(
                crate::remote::RemoteError::MissingField {
                    command: "query_job",
                    field: "instance",
                },
            ))?;
        let limit = self
            .settings
            .max_output_bytes
            .min(wire::max_message_bytes() + wire::HEADER_LEN as u64);
        self.client.result_file(&instance.name, 0, limit).await
    }
}

fn not_followed(id: &str, why: &str) {
    tracing::info!(
        job = %id,
        "not following a BOINC job of an earlier master ({why}): running the attempt as a new one"
    );
}

fn lost(key: AttemptKey, cause: String) -> Event {
    Event::Lost {
        key,
        cause,
        stderr_tail: String::new(),
    }
}

#[cfg(test)]
mod config_error_tests {
    use super::config_error;

    /// The reply of the live 7.20.5 server (`submit_rpc_handler.php`) when
    /// `download/` is not writable by the web server's user.
    #[test]
    fn cannot_write_is_a_configuration_error_with_its_fix() {
        let reply =
            "can't write to file /var/cache/pymw-testbed/boinc/projects/pymw/download/1f/jf_0123";
        let fix = config_error(reply).expect("a configuration error");
        assert!(fix.contains("download/"), "{fix}");
        assert!(fix.contains("umask 002"), "{fix}");
        assert!(fix.contains(reply), "{fix}");
        assert_eq!(config_error("no such batch"), None);
        assert_eq!(config_error("bad authenticator"), None);
    }
}
