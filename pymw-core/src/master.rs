//! The master: submits tasks to a backend and collects their results.
//!
//! The async [`Master`] runs a driver task on the current tokio runtime; it
//! owns every task's state (attempts, retries, timeouts, status counts) and
//! talks to the backend in batches. [`crate::blocking::Master`] wraps it for
//! plain `main`s.

use crate::backend::{AttemptKey, Backend, Dispatch, Event, EventSink, Resources};
use crate::error::{Error, TaskError};
use crate::journal::{
    HeldSubmissions, Identified, Identity, InFlight, Journal, JournalFinished, JournalOutcome,
    JournalTask, JournalTurn, Recorded,
};
use crate::registry::{Task, TaskEntry};
use crate::wire::{Failure, WorkerStats};
use serde::{Serialize, de::DeserializeOwned};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Identifies a task within a master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

/// Per-task settings; unset fields take the master's defaults.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// Stop the task and fail it with [`TaskError::TimedOut`] when it has
    /// run this long (counted from when it starts running, not from submit).
    /// Zero is refused at submit ([`TaskError::InvalidOptions`]): leave it
    /// unset for no timeout.
    pub timeout: Option<Duration>,
    /// How many times a lost attempt (crashed worker, held job) is retried;
    /// at most [`MAX_RETRIES`] (a task given more is refused at submit with
    /// [`TaskError::InvalidOptions`]).
    pub max_retries: Option<u32>,
    /// What the task asks of the engine; `None` for the engine's defaults.
    /// Shared, so a map of a million tasks holds one copy.
    pub resources: Option<Arc<Resources>>,
}

impl TaskOptions {
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets the retry limit for lost attempts.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }
    /// Sets the resources.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = Some(Arc::new(resources));
        self
    }
}

/// The most retries a task may have: attempts are numbered in 8 bits of
/// its attempt keys, so a task makes at most 256 attempts.
pub const MAX_RETRIES: u32 = 255;

/// Defaults of a master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Retries of lost attempts, unless a task says otherwise. Default 3;
    /// at most [`MAX_RETRIES`] ([`Master::start_with`] refuses more).
    pub max_retries: u32,
    /// Timeout of every task, unless a task says otherwise. Default none;
    /// zero is refused at start.
    pub timeout: Option<Duration>,
    /// Progress output of `map`: a bar when stderr is a terminal, periodic
    /// lines when not. Default on, unless `PYMW_PROGRESS=0`.
    pub progress: bool,
    /// Where the run is recorded (resume, result cache); default none.
    pub journal: Option<JournalHandle>,
}

/// A shared [`Journal`] for [`MasterConfig::journal`].
#[derive(Clone)]
pub struct JournalHandle(pub Arc<dyn Journal>);

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalHandle")
    }
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            max_retries: 3,
            timeout: None,
            progress: std::env::var("PYMW_PROGRESS").map_or(true, |v| v != "0"),
            journal: None,
        }
    }
}

/// How many tasks are where. A snapshot; it may be stale by the time it is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Submitted, not yet running.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Finished with a value.
    pub done: u64,
    /// Finished without a value (failed, lost, timed out).
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// A finished task: its value bytes and statistics, or the error.
pub(crate) type RawOutcome = Result<(Vec<u8>, WorkerStats), TaskError>;

/// Results of a stream (a map or a task set), delivered in batches.
type StreamBatch = Vec<(u64, RawOutcome)>;

/// Where the driver delivers a task's outcome.
enum Sink {
    /// A [`TaskHandle`].
    One(oneshot::Sender<RawOutcome>),
    /// A [`Map`] or [`TaskSet`], registered with the driver once, so that a
    /// task carries only two integers instead of a channel handle (whose
    /// reference count would bounce between threads on every task).
    Stream { stream: u64, tag: u64 },
}

struct NewTask {
    id: TaskId,
    entry: &'static TaskEntry,
    input: Arc<[u8]>,
    /// `None`: the stream's options (or the defaults).
    options: Option<Arc<TaskOptions>>,
    sink: Sink,
    /// Position in the run's submission order (for the task's identity).
    position: u64,
}

enum Command {
    OpenStream {
        stream: u64,
        tx: mpsc::UnboundedSender<StreamBatch>,
        options: Arc<TaskOptions>,
    },
    Submit(Vec<NewTask>),
    Cancel(Vec<TaskId>),
    /// Cancels every unfinished task of the stream and forgets it.
    CloseStream(u64),
}

#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    running: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    next_position: AtomicU64,
    counters: Arc<Counters>,
    config: MasterConfig,
    capacity_hint: usize,
    backend_name: &'static str,
}

/// The async master. Cheap to clone; the backend shuts down when the last
/// clone is dropped (or [`Master::shutdown`] is called).
#[derive(Clone)]
pub struct Master {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("backend", &self.shared.backend_name)
            .field("status", &self.status())
            .finish()
    }
}

impl Master {
    /// Starts a master on `backend` with default settings, inside the
    /// current tokio runtime.
    pub fn start(backend: impl Backend) -> Result<Master, Error> {
        Master::start_with(Box::new(backend), MasterConfig::default())
    }

    /// Starts a master on `backend` with `config`, inside the current tokio
    /// runtime.
    pub fn start_with(
        mut backend: Box<dyn Backend>,
        config: MasterConfig,
    ) -> Result<Master, Error> {
        if !crate::worker::is_initialized() {
            return Err(Error::NotInitialized);
        }
        check_config(&config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let journal = config.journal.as_ref().map(|handle| handle.0.clone());
        let recorded = match &journal {
            Some(journal) => journal.recorded().map_err(Error::Journal)?,
            None => HashMap::new(),
        };
        let in_flight = match &journal {
            Some(journal) => journal.in_flight().map_err(Error::Journal)?,
            None => HashMap::new(),
        };
        if !recorded.is_empty() || !in_flight.is_empty() {
            tracing::info!(
                finished = recorded.len(),
                in_flight = in_flight.len(),
                "resuming a run: finished tasks are not run again, jobs in flight are followed"
            );
        }
        if let Some(journal) = &journal {
            backend.resumable(journal.run_name());
            log_stale_results(&**journal);
        }
        let (sink, events) = EventSink::channel();
        backend.start(sink)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            commands,
            next_id: AtomicU64::new(0),
            next_position: AtomicU64::new(0),
            counters: counters.clone(),
            config: config.clone(),
            capacity_hint: backend.capacity_hint(),
            backend_name: backend.name(),
        });
        let driver = Driver {
            backend,
            counters,
            config,
            tasks: HashMap::with_capacity_and_hasher(1024, IdHash),
            streams: HashMap::with_hasher(IdHash),
            dirty_streams: Vec::new(),
            deadlines: BinaryHeap::new(),
            outgoing: Vec::new(),
            running: 0,
            journal,
            recorded,
            in_flight,
            reattach: HashMap::with_hasher(IdHash),
            journal_failed: None,
            turn: JournalTurn::default(),
            held: HeldSubmissions::default(),
            turn_started: Instant::now(),
            last_fingerprint: None,
        };
        tracing::debug!(backend = shared.backend_name, "master started");
        runtime.spawn(driver.run(command_rx, events));
        Ok(Master { shared })
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.shared.backend_name
    }

    /// The master's defaults.
    pub fn config(&self) -> &MasterConfig {
        &self.shared.config
    }

    /// How many tasks are where.
    pub fn status(&self) -> StatusCounts {
        let c = &self.shared.counters;
        // Read the outcomes before `submitted`, so `queued` never goes negative.
        let done = c.done.load(Ordering::Acquire);
        let failed = c.failed.load(Ordering::Acquire);
        let cancelled = c.cancelled.load(Ordering::Acquire);
        let running = c.running.load(Ordering::Acquire);
        let submitted = c.submitted.load(Ordering::Acquire);
        StatusCounts {
            queued: submitted.saturating_sub(running + done + failed + cancelled),
            running,
            done,
            failed,
            cancelled,
        }
    }

    fn new_ids(&self, n: u64) -> u64 {
        self.shared.next_id.fetch_add(n, Ordering::Relaxed)
    }

    fn command(&self, command: Command) {
        if let Err(mpsc::error::SendError(Command::Submit(tasks))) =
            self.shared.commands.send(command)
        {
            // The driver is gone (its runtime shut down): nothing will run.
            for task in tasks {
                if let Sink::One(tx) = task.sink {
                    let _ = tx.send(Err(TaskError::MasterGone));
                }
            }
        }
    }

    fn send(&self, tasks: Vec<NewTask>) {
        if tasks.is_empty() {
            return;
        }
        let mut tasks = tasks;
        self.shared
            .counters
            .submitted
            .fetch_add(tasks.len() as u64, Ordering::Relaxed);
        let first = self
            .shared
            .next_position
            .fetch_add(tasks.len() as u64, Ordering::Relaxed);
        for (offset, task) in tasks.iter_mut().enumerate() {
            task.position = first + offset as u64;
        }
        self.command(Command::Submit(tasks));
    }

    fn open_stream(
        &self,
        options: Arc<TaskOptions>,
    ) -> (u64, mpsc::UnboundedReceiver<StreamBatch>) {
        let stream = self.new_ids(1);
        let (tx, rx) = mpsc::unbounded_channel();
        self.command(Command::OpenStream {
            stream,
            tx,
            options,
        });
        (stream, rx)
    }

    /// Submits one task; the handle resolves to its value.
    ///
    /// An argument that cannot be sent (its `Serialize` fails, postcard
    /// cannot carry its type, or it is over `PYMW_MAX_MESSAGE_BYTES`) or
    /// options that cannot be used are not sent to a worker: the handle
    /// resolves at once to [`TaskError::InvalidArgument`],
    /// [`TaskError::InputTooLarge`] or [`TaskError::InvalidOptions`].
    pub fn submit<A: Serialize + DeserializeOwned, R: DeserializeOwned>(
        &self,
        task: Task<A, R>,
        args: A,
    ) -> TaskHandle<R> {
        self.submit_with(task, args, TaskOptions::default())
    }

    /// Submits one task with its own options.
    pub fn submit_with<A: Serialize + DeserializeOwned, R: DeserializeOwned>(
        &self,
        task: Task<A, R>,
        args: A,
        options: TaskOptions,
    ) -> TaskHandle<R> {
        let (tx, rx) = oneshot::channel();
        let id = TaskId(self.new_ids(1));
        match prepare_checked(task.entry(), &args, Some(&options)) {
            Ok(input) => self.send(vec![NewTask {
                id,
                entry: task.entry(),
                input,
                options: Some(Arc::new(options)),
                sink: Sink::One(tx),
                position: 0,
            }]),
            // Refused: the handle resolves to the error at once.
            Err(refusal) => {
                let _ = tx.send(Err(refusal));
            }
        }
        TaskHandle {
            id,
            task: task.name(),
            rx,
            master: self.clone(),
            _value: PhantomData,
        }
    }

    /// Cancels tasks; their handles resolve to [`TaskError::Cancelled`].
    pub fn cancel(&self, ids: impl IntoIterator<Item = TaskId>) {
        let ids: Vec<TaskId> = ids.into_iter().collect();
        if !ids.is_empty() {
            self.command(Command::Cancel(ids));
        }
    }

    /// Runs `task` over every input, streaming: at most a window of tasks is
    /// in flight, and inputs are pulled from the iterator only as room frees
    /// up, so memory stays bounded however long the iterator is. Results come
    /// in input order; see [`Map::unordered`].
    ///
    /// An input that cannot be sent (see [`Master::submit`]) is answered with
    /// its refusal at its position; the others run.
    pub fn map<A, R, I>(&self, task: Task<A, R>, inputs: I) -> Map<A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let inputs = inputs.into_iter();
        let (lower, upper) = inputs.size_hint();
        let total = upper.filter(|&u| u == lower).map(|u| u as u64);
        Map {
            master: self.clone(),
            entry: task.entry(),
            round_trip: Some(round_trip::<A>),
            inputs,
            exhausted: false,
            options: TaskOptions::default(),
            stream: None,
            window: self.shared.capacity_hint.max(64),
            ordered: true,
            next_tag: 0,
            next_yield: 0,
            in_flight: 0,
            input_bytes: 0,
            reorder: VecDeque::new(),
            ready: VecDeque::new(),
            progress: crate::progress::Progress::new(
                task.name(),
                total,
                self.shared.config.progress,
            ),
            _types: PhantomData,
        }
    }

    /// Stops the backend and every task still in flight. Also happens when
    /// the last clone of the master is dropped.
    pub fn shutdown(self) {
        drop(self);
    }
}

/// Refuses a master configuration that cannot work.
fn check_config(config: &MasterConfig) -> Result<(), Error> {
    if let Err((value, reason)) = crate::wire::checked_max_message_bytes() {
        return Err(Error::InvalidEnv {
            variable: crate::wire::MAX_MESSAGE_BYTES_VAR,
            value,
            reason: format!("{reason}; or unset it for the default, 1G"),
        });
    }
    if config.max_retries > MAX_RETRIES {
        return Err(Error::InvalidConfig(format!(
            "max_retries = {} is over the most a task may have, {MAX_RETRIES}",
            config.max_retries
        )));
    }
    if config.timeout == Some(Duration::ZERO) {
        return Err(Error::InvalidConfig(
            "a task timeout of zero would stop every task at once: leave it unset for no timeout"
                .into(),
        ));
    }
    Ok(())
}

/// Why a task's own options cannot be used.
fn check_options(options: &TaskOptions) -> Result<(), String> {
    if options.timeout == Some(Duration::ZERO) {
        return Err("a timeout of zero would stop the task at once: \
                    leave `TaskOptions::timeout` unset for no timeout"
            .into());
    }
    match options.max_retries {
        Some(retries) if retries > MAX_RETRIES => Err(format!(
            "max_retries({retries}) is over the most a task may have, {MAX_RETRIES}"
        )),
        _ => Ok(()),
    }
}

/// Checks that an argument's encoding decodes back as the task's argument
/// type, as a worker will decode it.
type RoundTrip = fn(&[u8]) -> Result<(), String>;

fn round_trip<A: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<(), String> {
    crate::wire::check_round_trip::<A>(bytes)
}

/// The tasks whose first input decoded back in the master: each task's
/// argument type is checked once per process, at its first submit (a map
/// checks its own first input, without this lock on its path).
fn checked_tasks() -> &'static std::sync::Mutex<std::collections::HashSet<&'static str>> {
    static CHECKED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    CHECKED.get_or_init(Default::default)
}

/// [`prepare_input`], checking that the input decodes back if no input of
/// the task has been checked yet in this process.
fn prepare_checked<A: Serialize + DeserializeOwned>(
    entry: &'static TaskEntry,
    args: &A,
    options: Option<&TaskOptions>,
) -> Result<Arc<[u8]>, TaskError> {
    let task = entry.name;
    let first = !checked_tasks()
        .lock()
        .is_ok_and(|checked| checked.contains(task));
    let check: Option<RoundTrip> = first.then_some(round_trip::<A>);
    let input = prepare_input(entry, args, check, options)?;
    if first && let Ok(mut checked) = checked_tasks().lock() {
        checked.insert(task);
    }
    Ok(input)
}

/// Encodes a task's argument for the wire, or refuses it: a `Serialize`
/// that fails, a type postcard cannot carry (when `round_trip` is given:
/// a task's first input), an input over the size limit, or options that
/// cannot be used.
fn prepare_input<A: Serialize>(
    entry: &'static TaskEntry,
    args: &A,
    round_trip: Option<RoundTrip>,
    options: Option<&TaskOptions>,
) -> Result<Arc<[u8]>, TaskError> {
    let task = entry.name;
    if let Some(options) = options {
        check_options(options).map_err(|message| TaskError::InvalidOptions { task, message })?;
    }
    let invalid = |why: String| TaskError::InvalidArgument {
        task,
        message: format!(
            "its argument (`{}`) cannot be sent to a worker: {why}",
            std::any::type_name::<A>()
        ),
    };
    let bytes = crate::wire::try_encode_payload(args).map_err(invalid)?;
    let limit = crate::wire::max_message_bytes();
    let size = crate::wire::input_body_bound(task, bytes.len());
    if size > limit {
        return Err(TaskError::InputTooLarge { task, size, limit });
    }
    if let Some(round_trip) = round_trip {
        round_trip(&bytes).map_err(invalid)?;
    }
    Ok(Arc::from(bytes))
}

fn decode_value<R: DeserializeOwned>(
    task: &'static str,
    outcome: RawOutcome,
) -> Result<R, TaskError> {
    let (bytes, stats) = outcome?;
    postcard::from_bytes(&bytes).map_err(|e| TaskError::Failed {
        task,
        failure: Failure::Decode {
            message: format!(
                "the worker's value does not decode as `{}`: {}",
                std::any::type_name::<R>(),
                crate::wire::value_decode_advice(&e)
            ),
        },
        host: stats.host,
        stderr_tail: String::new(),
    })
}

/// A submitted task. Await it for the value. Dropping it does not cancel the
/// task (call [`TaskHandle::cancel`] for that).
pub struct TaskHandle<R> {
    id: TaskId,
    task: &'static str,
    rx: oneshot::Receiver<RawOutcome>,
    master: Master,
    _value: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .field("task", &self.task)
            .finish()
    }
}

impl<R> TaskHandle<R> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Cancels the task; awaiting the handle gives [`TaskError::Cancelled`]
    /// unless it had already finished.
    pub fn cancel(&self) {
        self.master.cancel([self.id]);
    }
}

impl<R: DeserializeOwned> Future for TaskHandle<R> {
    type Output = Result<R, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.task;
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(outcome) => decode_value(task, outcome),
                Err(_) => Err(TaskError::MasterGone),
            })
    }
}

/// Tasks of one value type whose results are taken as they finish, like
/// PyMW's `get_result()` without an argument (and tokio's `JoinSet`).
/// Dropping the set cancels its unfinished tasks.
pub struct TaskSet<R> {
    master: Master,
    stream: u64,
    rx: mpsc::UnboundedReceiver<StreamBatch>,
    arrived: VecDeque<(u64, RawOutcome)>,
    names: HashMap<u64, &'static str>,
    _value: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for TaskSet<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSet")
            .field("pending", &self.names.len())
            .finish()
    }
}

impl<R: DeserializeOwned> TaskSet<R> {
    /// An empty set on `master`.
    pub fn new(master: &Master) -> Self {
        let (stream, rx) = master.open_stream(Arc::new(TaskOptions::default()));
        TaskSet {
            master: master.clone(),
            stream,
            rx,
            arrived: VecDeque::new(),
            names: HashMap::new(),
            _value: PhantomData,
        }
    }

    /// Submits a task into the set. An argument or options that cannot be
    /// sent come back from [`TaskSet::next_finished`] as the refusal (see
    /// [`Master::submit`]).
    pub fn submit<A: Serialize + DeserializeOwned>(&mut self, task: Task<A, R>, args: A) -> TaskId {
        self.push(task, args, None)
    }

    /// Submits a task into the set with its own options.
    pub fn submit_with<A: Serialize + DeserializeOwned>(
        &mut self,
        task: Task<A, R>,
        args: A,
        options: TaskOptions,
    ) -> TaskId {
        self.push(task, args, Some(Arc::new(options)))
    }

    fn push<A: Serialize + DeserializeOwned>(
        &mut self,
        task: Task<A, R>,
        args: A,
        options: Option<Arc<TaskOptions>>,
    ) -> TaskId {
        let id = TaskId(self.master.new_ids(1));
        self.names.insert(id.0, task.name());
        let input = match prepare_checked(task.entry(), &args, options.as_deref()) {
            Ok(input) => input,
            Err(refusal) => {
                self.arrived.push_back((id.0, Err(refusal)));
                return id;
            }
        };
        self.master.send(vec![NewTask {
            id,
            entry: task.entry(),
            input,
            options,
            sink: Sink::Stream {
                stream: self.stream,
                tag: id.0,
            },
            position: 0,
        }]);
        id
    }

    /// How many tasks of the set have not been taken yet.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether every task of the set has been taken.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The next task to finish, with its id; `None` when the set is empty.
    pub async fn next_finished(&mut self) -> Option<(TaskId, Result<R, TaskError>)> {
        loop {
            if let Some((tag, outcome)) = self.arrived.pop_front() {
                let Some(name) = self.names.remove(&tag) else {
                    continue;
                };
                return Some((TaskId(tag), decode_value(name, outcome)));
            }
            if self.names.is_empty() {
                return None;
            }
            let batch = self.rx.recv().await?;
            self.arrived.extend(batch);
        }
    }

    /// Cancels every task of the set that has not finished.
    pub fn cancel_all(&self) {
        self.master.cancel(self.names.keys().map(|&k| TaskId(k)));
    }
}

impl<R> Drop for TaskSet<R> {
    fn drop(&mut self) {
        self.master.command(Command::CloseStream(self.stream));
    }
}

/// The input bytes a map keeps in flight at most (256 MiB), whatever the
/// window in tasks.
const MAP_IN_FLIGHT_BYTES: u64 = 256 << 20;
/// A map keeps at least this many tasks in flight, however large its inputs.
const MIN_MAP_WINDOW: u64 = 16;

/// A streaming map of a task over inputs; see [`Master::map`]. Call
/// [`Map::next`] for the results. Dropping it cancels what is still in flight.
pub struct Map<A, R, I> {
    master: Master,
    entry: &'static TaskEntry,
    /// Until an input of the map has passed it: the check that inputs
    /// decode back as the task's argument type.
    round_trip: Option<RoundTrip>,
    inputs: I,
    exhausted: bool,
    options: TaskOptions,
    /// Opened with the first submission, once the options are final.
    stream: Option<(u64, mpsc::UnboundedReceiver<StreamBatch>)>,
    window: usize,
    ordered: bool,
    next_tag: u64,
    next_yield: u64,
    in_flight: usize,
    /// Bytes of every input submitted so far, for the average input size.
    input_bytes: u64,
    /// Ordered mode: outcomes of positions `next_yield..next_tag`, `None`
    /// while running.
    reorder: VecDeque<Option<RawOutcome>>,
    /// Unordered mode: finished outcomes with their positions.
    ready: VecDeque<(u64, RawOutcome)>,
    progress: crate::progress::Progress,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R, I> std::fmt::Debug for Map<A, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("task", &self.entry.name)
            .field("submitted", &self.next_tag)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<A, R, I> Map<A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    /// Results as tasks finish instead of in input order; use
    /// [`Map::next_indexed`] to learn each result's input position.
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// At most `window` tasks in flight (default: what the backend suggests).
    pub fn window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// Options for every task of the map.
    pub fn options(mut self, options: TaskOptions) -> Self {
        self.options = options;
        self
    }

    /// Turns progress output on or off for this map.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress.set_enabled(on);
        self
    }

    /// The next result (in input order unless [`Map::unordered`]); `None`
    /// when every input has been answered.
    pub async fn next(&mut self) -> Option<Result<R, TaskError>> {
        self.next_indexed().await.map(|(_, result)| result)
    }

    /// The next result with the position of its input.
    pub async fn next_indexed(&mut self) -> Option<(u64, Result<R, TaskError>)> {
        loop {
            if let Some(item) = self.take_ready() {
                return Some(item);
            }
            if self.in_flight == 0 && self.exhausted {
                self.progress.finish();
                return None;
            }
            let (_, rx) = self.stream.as_mut()?;
            let batch = rx.recv().await?;
            self.accept(batch);
        }
    }

    /// Returns a result that is ready without waiting, after taking in
    /// whatever has arrived and topping the window up.
    pub(crate) fn take_ready(&mut self) -> Option<(u64, Result<R, TaskError>)> {
        while let Some(batch) = self.stream.as_mut().and_then(|(_, rx)| rx.try_recv().ok()) {
            self.accept(batch);
        }
        self.top_up();
        let name = self.entry.name;
        if self.ordered {
            if matches!(self.reorder.front(), Some(Some(_))) {
                let outcome = self.reorder.pop_front().flatten()?;
                let index = self.next_yield;
                self.next_yield += 1;
                return Some((index, decode_value(name, outcome)));
            }
            None
        } else {
            let (tag, outcome) = self.ready.pop_front()?;
            self.next_yield += 1;
            Some((tag, decode_value(name, outcome)))
        }
    }

    fn top_up(&mut self) {
        if self.exhausted {
            return;
        }
        // Large inputs shrink the window, so that what is in flight stays
        // within MAP_IN_FLIGHT_BYTES whatever the inputs weigh.
        let window = match self.input_bytes.checked_div(self.next_tag) {
            Some(average) if average > 0 => self
                .window
                .min((MAP_IN_FLIGHT_BYTES / average).max(MIN_MAP_WINDOW) as usize),
            _ => self.window,
        };
        let room = if self.ordered {
            // The reorder buffer stays within the window too.
            (self.next_yield + window as u64).saturating_sub(self.next_tag) as usize
        } else {
            window.saturating_sub(self.in_flight)
        };
        if room == 0 {
            return;
        }
        let stream = match &self.stream {
            Some((stream, _)) => *stream,
            None => {
                let opened = self.master.open_stream(Arc::new(self.options.clone()));
                let stream = opened.0;
                self.stream = Some(opened);
                stream
            }
        };
        let mut batch = Vec::with_capacity(room.min(4096));
        let first_id = self.master.new_ids(room as u64);
        for offset in 0..room as u64 {
            let Some(args) = self.inputs.next() else {
                self.exhausted = true;
                break;
            };
            let tag = self.next_tag;
            self.next_tag += 1;
            let input = match prepare_input(self.entry, &args, self.round_trip, Some(&self.options))
            {
                Ok(input) => {
                    self.round_trip = None;
                    input
                }
                Err(refusal) => {
                    // Answered here, at its position; nothing is sent.
                    self.progress.record(false);
                    if self.ordered {
                        self.reorder.push_back(Some(Err(refusal)));
                    } else {
                        self.ready.push_back((tag, Err(refusal)));
                    }
                    continue;
                }
            };
            if self.ordered {
                self.reorder.push_back(None);
            }
            self.input_bytes += input.len() as u64;
            batch.push(NewTask {
                id: TaskId(first_id + offset),
                entry: self.entry,
                input,
                options: None,
                sink: Sink::Stream { stream, tag },
                position: 0,
            });
            let pending = (self.in_flight + batch.len()) as u64;
            if pending >= MIN_MAP_WINDOW
                && pending * (self.input_bytes / self.next_tag) > MAP_IN_FLIGHT_BYTES
            {
                break;
            }
            if batch.len() >= 4096 {
                self.in_flight += batch.len();
                self.master.send(std::mem::take(&mut batch));
            }
        }
        self.in_flight += batch.len();
        self.master.send(batch);
        self.progress.set_in_flight(self.in_flight as u64);
    }

    fn accept(&mut self, batch: StreamBatch) {
        for (tag, outcome) in batch {
            self.in_flight -= 1;
            self.progress.record(outcome.is_ok());
            if self.ordered {
                if let Some(slot) = self.reorder.get_mut((tag - self.next_yield) as usize) {
                    *slot = Some(outcome);
                }
            } else {
                self.ready.push_back((tag, outcome));
            }
        }
    }
}

impl<A, R, I> Drop for Map<A, R, I> {
    fn drop(&mut self) {
        if let Some((stream, _)) = &self.stream {
            self.master.command(Command::CloseStream(*stream));
        }
    }
}

/// A hasher for keys that are already well-spread integers (task ids,
/// attempt keys): far cheaper than SipHash on the per-task path.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`IdHash`].
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Multiply to spread sequential ids over the high bits hashbrown uses.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Attempt keys pack the task id and the attempt number, so one map finds a
/// task from any event and events about old attempts are recognised.
const ATTEMPT_BITS: u32 = 8;

// Every attempt number fits: a task makes at most MAX_RETRIES + 1 attempts,
// numbered from 0.
const _: () = assert!(MAX_RETRIES < 1 << ATTEMPT_BITS);

fn attempt_key(id: TaskId, attempt: u32) -> AttemptKey {
    debug_assert!(attempt <= MAX_RETRIES, "attempt {attempt} over the bound");
    (id.0 << ATTEMPT_BITS) | u64::from(attempt.min(MAX_RETRIES))
}

fn task_of(key: AttemptKey) -> TaskId {
    TaskId(key >> ATTEMPT_BITS)
}

#[cfg(test)]
mod attempt_key_tests {
    use super::*;

    /// Every attempt a task may make has its own key, up to the bound, and
    /// the key gives the task back.
    #[test]
    fn attempts_up_to_the_bound_never_collide() {
        let id = TaskId(12_345);
        let keys: std::collections::HashSet<AttemptKey> =
            (0..=MAX_RETRIES).map(|a| attempt_key(id, a)).collect();
        assert_eq!(keys.len(), MAX_RETRIES as usize + 1);
        assert!(keys.iter().all(|&k| task_of(k) == id));
        assert!(!keys.contains(&attempt_key(TaskId(12_346), 0)));
    }
}

struct TaskState {
    entry: &'static TaskEntry,
    input: Arc<[u8]>,
    /// `None`: the stream's options.
    options: Option<Arc<TaskOptions>>,
    sink: Sink,
    /// Attempts made so far, counting the current one.
    attempt: u32,
    running: bool,
    /// When the current run times out: its latest start plus the timeout.
    /// A deadline of an earlier start (before a requeue) is stale.
    deadline: Option<Instant>,
    /// Its identity in the journal, when the run is journaled.
    identity: Option<Identity>,
}

impl TaskState {
    fn key(&self, id: TaskId) -> AttemptKey {
        attempt_key(id, self.attempt - 1)
    }
}

/// What the journal makes of a new task.
enum Admission {
    /// Run it; it is recorded under this identity.
    Run(Identity),
    /// Answer it without running: its recorded outcome, or `None` when the
    /// journal has failed.
    Answer(Option<Recorded>),
}

/// A map or task set, as the driver sees it.
struct StreamState {
    tx: mpsc::UnboundedSender<StreamBatch>,
    options: Arc<TaskOptions>,
    /// Outcomes not yet sent: one channel message per driver turn.
    buffer: StreamBatch,
}

struct Driver {
    backend: Box<dyn Backend>,
    counters: Arc<Counters>,
    config: MasterConfig,
    tasks: HashMap<TaskId, TaskState, IdHash>,
    streams: HashMap<u64, StreamState, IdHash>,
    dirty_streams: Vec<u64>,
    deadlines: BinaryHeap<Reverse<(Instant, AttemptKey)>>,
    outgoing: Vec<Dispatch>,
    running: u64,
    journal: Option<Arc<dyn Journal>>,
    /// What earlier lives of the run finished, by identity.
    recorded: HashMap<Identity, Recorded>,
    /// Jobs earlier lives of the run left in an engine, by identity.
    in_flight: HashMap<Identity, InFlight>,
    /// The job of an earlier life that a task's next attempt follows.
    reattach: HashMap<TaskId, String, IdHash>,
    /// Why the journal can no longer record: every task fails with it.
    journal_failed: Option<String>,
    /// This turn's records.
    turn: JournalTurn,
    /// Submissions held back for a moment (see [`HeldSubmissions`]).
    held: HeldSubmissions,
    /// When the current turn began: the time submissions are held from.
    turn_started: Instant,
    /// The fingerprint of the task seen last (computing one hashes type names).
    last_fingerprint: Option<(&'static TaskEntry, u64)>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Vec<Event>>,
    ) {
        loop {
            let next_deadline = self.deadlines.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        self.handle_command(command);
                        while let Ok(command) = commands.try_recv() {
                            self.handle_command(command);
                        }
                    }
                    None => break,
                },
                Some(batch) = events.recv() => {
                    self.handle_events(batch);
                    while let Ok(batch) = events.try_recv() {
                        self.handle_events(batch);
                    }
                }
                () = sleep_until(next_deadline), if next_deadline.is_some() => {
                    self.expire_deadlines();
                }
            }
            self.flush();
        }
        // Every master handle is gone; Drop stops the engine.
        tracing::debug!("master dropped: shutting the backend down");
    }

    /// The task's own options and its stream's, for the settings below.
    fn options_of<'a>(
        &'a self,
        state: &'a TaskState,
    ) -> (Option<&'a TaskOptions>, Option<&'a TaskOptions>) {
        let stream_options = match &state.sink {
            Sink::Stream { stream, .. } => self.streams.get(stream).map(|s| &*s.options),
            Sink::One(_) => None,
        };
        (state.options.as_deref(), stream_options)
    }

    /// The task's retry limit: its own, its stream's, or the master's.
    fn max_retries_of(&self, state: &TaskState) -> u32 {
        let (own, stream) = self.options_of(state);
        own.and_then(|o| o.max_retries)
            .or_else(|| stream.and_then(|o| o.max_retries))
            .unwrap_or(self.config.max_retries)
            .min(MAX_RETRIES)
    }

    /// The task's timeout: its own, its stream's, or the master's.
    fn timeout_of(&self, state: &TaskState) -> Option<Duration> {
        let (own, stream) = self.options_of(state);
        own.and_then(|o| o.timeout)
            .or_else(|| stream.and_then(|o| o.timeout))
            .or(self.config.timeout)
    }

    /// What the task asks of the engine: its own resources or its stream's.
    fn resources_of(&self, state: &TaskState) -> Option<Arc<Resources>> {
        let (own, stream) = self.options_of(state);
        own.and_then(|o| o.resources.clone())
            .or_else(|| stream.and_then(|o| o.resources.clone()))
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::OpenStream {
                stream,
                tx,
                options,
            } => {
                self.streams.insert(
                    stream,
                    StreamState {
                        tx,
                        options,
                        buffer: Vec::new(),
                    },
                );
            }
            Command::Submit(tasks) => {
                self.tasks.reserve(tasks.len());
                self.outgoing.reserve(tasks.len());
                for task in tasks {
                    let identity = match self.journal.clone() {
                        Some(journal) => match self.admit(&*journal, &task) {
                            Admission::Run(identity) => Some(identity),
                            Admission::Answer(recorded) => {
                                self.answer_from_journal(task, recorded);
                                continue;
                            }
                        },
                        None => None,
                    };
                    // A job an earlier life left in the engine: its attempt
                    // goes on under the same number, followed, not resubmitted.
                    let earlier = match identity {
                        Some(identity) if !self.in_flight.is_empty() => {
                            self.in_flight.remove(&identity)
                        }
                        _ => None,
                    };
                    let state = TaskState {
                        entry: task.entry,
                        input: task.input,
                        options: task.options,
                        sink: task.sink,
                        attempt: earlier.as_ref().map_or(0, |e| e.attempt),
                        running: false,
                        deadline: None,
                        identity,
                    };
                    self.tasks.insert(task.id, state);
                    if let Some(earlier) = earlier {
                        self.reattach.insert(task.id, earlier.job_id);
                    }
                    self.dispatch(task.id);
                }
            }
            Command::Cancel(ids) => self.cancel(ids),
            Command::CloseStream(stream) => {
                let ids: Vec<TaskId> = self
                    .tasks
                    .iter()
                    .filter(
                        |(_, s)| matches!(s.sink, Sink::Stream { stream: of, .. } if of == stream),
                    )
                    .map(|(id, _)| *id)
                    .collect();
                self.cancel(ids);
                self.flush_streams();
                self.streams.remove(&stream);
            }
        }
    }

    fn fingerprint(&mut self, entry: &'static TaskEntry) -> u64 {
        match self.last_fingerprint {
            Some((last, fingerprint)) if std::ptr::eq(last, entry) => fingerprint,
            _ => {
                let fingerprint = (entry.fingerprint)();
                self.last_fingerprint = Some((entry, fingerprint));
                fingerprint
            }
        }
    }

    /// Records a new task in the journal, or finds its outcome there
    /// (finished in an earlier life, or in the result cache).
    fn admit(&mut self, journal: &dyn Journal, task: &NewTask) -> Admission {
        if self.journal_failed.is_some() {
            return Admission::Answer(None);
        }
        let fingerprint = self.fingerprint(task.entry);
        let Identified {
            identity,
            input_hash,
        } = journal.identify(fingerprint, &task.input, task.position);
        if !self.recorded.is_empty()
            && let Some(recorded) = self.recorded.remove(&identity)
        {
            return Admission::Answer(Some(recorded));
        }
        let submission = JournalTask {
            identity,
            task: task.entry.name,
            fingerprint,
            position: task.position,
            input_hash,
        };
        if let Some(value) = journal.cached(fingerprint, &input_hash) {
            // Answered from the cross-run cache: recorded as such, not run.
            self.turn.finished.push(JournalFinished {
                identity,
                attempt: 0,
                outcome: JournalOutcome::Cached(value.clone()),
                stats: WorkerStats::default(),
                stderr_tail: String::new(),
                submission: Some(submission),
            });
            return Admission::Answer(Some(Recorded::Value(value)));
        }
        // Held back for a moment: a task that ends meanwhile is recorded in
        // one piece (most tiny tasks).
        if let Some(submission) = self.held.hold(task.id.0, submission, self.turn_started) {
            self.turn.submitted.push(submission);
        }
        Admission::Run(identity)
    }

    /// Answers a task without running it: with its outcome from an earlier
    /// life of the run or the result cache, or (`None`) with the journal's
    /// failure.
    fn answer_from_journal(&mut self, task: NewTask, recorded: Option<Recorded>) {
        let name = task.entry.name;
        let Some(recorded) = recorded else {
            let message = self.journal_failed.clone().unwrap_or_default();
            self.deliver(
                task.sink,
                Err(TaskError::NotRecorded {
                    task: name,
                    message,
                }),
                Outcome::Failed,
            );
            return;
        };
        match recorded {
            Recorded::Value(value) => self.deliver(
                task.sink,
                Ok((value, WorkerStats::default())),
                Outcome::Done,
            ),
            Recorded::Failed {
                failure,
                host,
                stderr_tail,
            } => {
                let error = TaskError::Failed {
                    task: name,
                    failure,
                    host,
                    stderr_tail,
                };
                self.deliver(task.sink, Err(error), Outcome::Failed);
            }
        }
    }

    fn cancel(&mut self, ids: Vec<TaskId>) {
        let mut keys = Vec::new();
        for id in ids {
            if let Some(state) = self.tasks.remove(&id) {
                keys.push(state.key(id));
                let task = state.entry.name;
                self.finish(
                    id,
                    state,
                    Err(TaskError::Cancelled { task }),
                    Outcome::Cancelled,
                );
            }
        }
        if keys.is_empty() {
            return;
        }
        let cancelled: std::collections::HashSet<AttemptKey> = keys.iter().copied().collect();
        self.outgoing.retain(|d| !cancelled.contains(&d.key));
        self.backend.cancel(&keys);
    }

    /// Queues the next attempt of a task for the backend.
    fn dispatch(&mut self, id: TaskId) {
        let Some(state) = self.tasks.get(&id) else {
            return;
        };
        let resources = self.resources_of(state);
        let state = self.tasks.get_mut(&id).expect("just found");
        state.attempt += 1;
        state.running = false;
        self.outgoing.push(Dispatch {
            key: attempt_key(id, state.attempt - 1),
            task: state.entry,
            input: state.input.clone(),
            attempt: state.attempt - 1,
            resources,
            reattach: self.reattach.remove(&id),
        });
    }

    fn flush(&mut self) {
        self.flush_journal();
        self.flush_streams();
        if self.outgoing.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outgoing);
        let keys: Vec<AttemptKey> = batch.iter().map(|d| d.key).collect();
        if let Err(error) = self.backend.submit(batch) {
            tracing::warn!(%error, "backend refused a batch");
            for key in keys {
                if let Some(state) = self.tasks.remove(&task_of(key)) {
                    let task = state.entry.name;
                    let message = error.message.clone();
                    self.finish(
                        task_of(key),
                        state,
                        Err(TaskError::Backend { task, message }),
                        Outcome::Failed,
                    );
                }
            }
            self.flush_streams();
        }
    }

    /// Hands the journal this turn's records, and stops the run if it can no
    /// longer record: running work whose results cannot be kept would lose
    /// them on the next restart.
    fn flush_journal(&mut self) {
        let Some(journal) = self.journal.clone() else {
            return;
        };
        let now = Instant::now();
        self.turn_started = now;
        self.held.release_old(now, &mut self.turn.submitted);
        if !self.turn.is_empty() {
            journal.record(&mut self.turn);
        }
        if self.journal_failed.is_none()
            && let Some(message) = journal.error()
        {
            tracing::error!(%message, "the run store cannot record: failing the tasks in flight");
            self.journal_failed = Some(message.clone());
            let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
            let keys: Vec<AttemptKey> = ids
                .iter()
                .filter_map(|id| self.tasks.get(id).map(|s| s.key(*id)))
                .collect();
            self.backend.cancel(&keys);
            self.outgoing.clear();
            for id in ids {
                if let Some(mut state) = self.tasks.remove(&id) {
                    state.identity = None;
                    let task = state.entry.name;
                    let message = message.clone();
                    self.finish(
                        id,
                        state,
                        Err(TaskError::NotRecorded { task, message }),
                        Outcome::Failed,
                    );
                }
            }
        }
    }

    fn flush_streams(&mut self) {
        for stream in self.dirty_streams.drain(..) {
            if let Some(state) = self.streams.get_mut(&stream)
                && !state.buffer.is_empty()
            {
                // A receiver that is gone no longer wants the results.
                let _ = state.tx.send(std::mem::take(&mut state.buffer));
            }
        }
    }

    /// The state of the task whose current attempt is `key`; `None` for
    /// stale events (an old attempt, a cancelled task).
    fn current(&mut self, key: AttemptKey) -> Option<&mut TaskState> {
        let id = task_of(key);
        self.tasks.get_mut(&id).filter(|s| s.key(id) == key)
    }

    fn handle_events(&mut self, batch: Vec<Event>) {
        for event in batch {
            match event {
                Event::Queued { key, job_id } => {
                    if let Some(state) = self.current(key)
                        && let Some(identity) = state.identity
                    {
                        let attempt = state.attempt - 1;
                        self.release_submission(task_of(key));
                        self.turn.queued.push((identity, attempt, job_id));
                    }
                }
                Event::Started { key } => {
                    let Some(state) = self.current(key) else {
                        continue;
                    };
                    if state.running {
                        continue;
                    }
                    state.running = true;
                    if let Some(identity) = state.identity {
                        let attempt = state.attempt - 1;
                        self.release_submission(task_of(key));
                        self.turn.started.push((identity, attempt));
                    }
                    let state = self.tasks.get(&task_of(key)).expect("just found");
                    let timeout = self.timeout_of(state);
                    self.add_running(1);
                    // A timeout past any clock (`Duration::MAX`) is none.
                    if let Some(at) = timeout.and_then(|t| Instant::now().checked_add(t)) {
                        self.tasks
                            .get_mut(&task_of(key))
                            .expect("just found")
                            .deadline = Some(at);
                        self.deadlines.push(Reverse((at, key)));
                    }
                }
                Event::Finished {
                    key,
                    outcome,
                    stats,
                    stderr_tail,
                } => {
                    let Some(state) = self.take(key) else {
                        continue;
                    };
                    let result = match outcome {
                        Ok(value) => Ok((value, stats)),
                        Err(failure) => Err(TaskError::Failed {
                            task: state.entry.name,
                            failure,
                            host: stats.host,
                            stderr_tail,
                        }),
                    };
                    let kind = if result.is_ok() {
                        Outcome::Done
                    } else {
                        Outcome::Failed
                    };
                    self.finish(task_of(key), state, result, kind);
                }
                Event::Lost {
                    key,
                    cause,
                    stderr_tail,
                } => {
                    if self.current(key).is_none() {
                        continue;
                    }
                    let state = &self.tasks[&task_of(key)];
                    let attempts = state.attempt;
                    let name = state.entry.name;
                    if attempts > self.max_retries_of(state) {
                        let state = self.take(key).expect("current");
                        self.finish(
                            task_of(key),
                            state,
                            Err(TaskError::WorkerLost {
                                task: name,
                                cause,
                                attempts,
                                stderr_tail,
                            }),
                            Outcome::Failed,
                        );
                    } else {
                        tracing::info!(task = name, attempt = attempts, %cause, "attempt lost, retrying");
                        if let Some(identity) = state.identity {
                            let submission = self.held.take(task_of(key).0);
                            self.turn.finished.push(JournalFinished {
                                submission,
                                identity,
                                attempt: attempts - 1,
                                outcome: JournalOutcome::Lost {
                                    cause,
                                    retried: true,
                                },
                                stats: WorkerStats::default(),
                                stderr_tail,
                            });
                        }
                        self.stop_running(key);
                        self.dispatch(task_of(key));
                    }
                }
                Event::Failed { key, message } => {
                    let Some(state) = self.take(key) else {
                        continue;
                    };
                    let task = state.entry.name;
                    self.finish(
                        task_of(key),
                        state,
                        Err(TaskError::Backend { task, message }),
                        Outcome::Failed,
                    );
                }
                Event::Requeued { key, reason } => {
                    if self.current(key).is_some() {
                        tracing::debug!(key, %reason, "attempt requeued by the engine");
                        self.stop_running(key);
                    }
                }
                Event::Held { key, reason } => {
                    if let Some(state) = self.current(key) {
                        tracing::warn!(task = state.entry.name, %reason, "attempt held");
                    }
                }
            }
        }
    }

    /// Counts running tasks in the shared counters right away, so that a
    /// result is never delivered before the counts that include it.
    fn add_running(&mut self, delta: i64) {
        self.running = self.running.wrapping_add_signed(delta);
        self.counters.running.store(self.running, Ordering::Release);
    }

    fn stop_running(&mut self, key: AttemptKey) {
        if let Some(state) = self.current(key)
            && std::mem::replace(&mut state.running, false)
        {
            self.add_running(-1);
        }
    }

    /// Removes the task of the current attempt `key` from the table.
    fn take(&mut self, key: AttemptKey) -> Option<TaskState> {
        self.current(key)?;
        self.tasks.remove(&task_of(key))
    }

    fn finish(&mut self, id: TaskId, state: TaskState, result: RawOutcome, kind: Outcome) {
        if state.running {
            self.add_running(-1);
        }
        if let Some(identity) = state.identity {
            let submission = self.held.take(id.0);
            self.record_end(
                identity,
                state.attempt.saturating_sub(1),
                &result,
                submission,
            );
        }
        self.deliver(state.sink, result, kind);
    }

    /// Records how an attempt of a journaled task ended.
    fn record_end(
        &mut self,
        identity: Identity,
        attempt: u32,
        result: &RawOutcome,
        submission: Option<JournalTask>,
    ) {
        let (outcome, stats, stderr_tail) = match result {
            Ok((value, stats)) => (
                JournalOutcome::Value(value.clone()),
                stats.clone(),
                String::new(),
            ),
            Err(TaskError::Failed {
                failure,
                stderr_tail,
                host,
                ..
            }) => (
                JournalOutcome::Failed(failure.clone()),
                WorkerStats {
                    host: host.clone(),
                    ..WorkerStats::default()
                },
                stderr_tail.clone(),
            ),
            Err(TaskError::WorkerLost {
                cause, stderr_tail, ..
            }) => (
                JournalOutcome::Lost {
                    cause: cause.clone(),
                    retried: false,
                },
                WorkerStats::default(),
                stderr_tail.clone(),
            ),
            Err(TaskError::TimedOut { after, .. }) => (
                JournalOutcome::TimedOut { after: *after },
                WorkerStats::default(),
                String::new(),
            ),
            Err(TaskError::Cancelled { .. }) => (
                JournalOutcome::Cancelled,
                WorkerStats::default(),
                String::new(),
            ),
            Err(TaskError::Backend { message, .. }) => (
                JournalOutcome::Backend {
                    message: message.clone(),
                },
                WorkerStats::default(),
                String::new(),
            ),
            Err(_) => return,
        };
        self.turn.finished.push(JournalFinished {
            identity,
            attempt,
            outcome,
            stats,
            stderr_tail,
            submission,
        });
    }

    /// Records the held submission of task `id` now: a record about one of
    /// its attempts follows.
    fn release_submission(&mut self, id: TaskId) {
        if let Some(submission) = self.held.take(id.0) {
            self.turn.submitted.push(submission);
        }
    }

    /// Counts an outcome and hands it to whoever waits for it.
    fn deliver(&mut self, sink: Sink, result: RawOutcome, kind: Outcome) {
        let counter = match kind {
            Outcome::Done => &self.counters.done,
            Outcome::Failed => &self.counters.failed,
            Outcome::Cancelled => &self.counters.cancelled,
        };
        counter.fetch_add(1, Ordering::Release);
        match sink {
            Sink::One(tx) => {
                let _ = tx.send(result);
            }
            Sink::Stream { stream, tag } => {
                if let Some(entry) = self.streams.get_mut(&stream) {
                    if entry.buffer.is_empty() {
                        self.dirty_streams.push(stream);
                    }
                    entry.buffer.push((tag, result));
                }
            }
        }
    }

    fn expire_deadlines(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(Reverse((at, key))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self
                .current(key)
                .is_some_and(|s| s.running && s.deadline == Some(at))
            {
                expired.push(key);
            }
        }
        if expired.is_empty() {
            return;
        }
        self.backend.cancel(&expired);
        for key in expired {
            let Some(state) = self.tasks.get(&task_of(key)) else {
                continue;
            };
            let after = self.timeout_of(state).unwrap_or_default();
            let state = self.take(key).expect("current");
            let task = state.entry.name;
            self.finish(
                task_of(key),
                state,
                Err(TaskError::TimedOut { task, after }),
                Outcome::Failed,
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Done,
    Failed,
    Cancelled,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Also runs when the runtime is dropped with the driver still in it.
        self.backend.shutdown();
        self.held.release_all(&mut self.turn.submitted);
        self.flush_journal();
        // Whoever still waits hears that the master is gone: handles, and
        // maps and task sets, which would otherwise end as if done.
        for (_, state) in self.tasks.drain() {
            match state.sink {
                Sink::One(tx) => {
                    let _ = tx.send(Err(TaskError::MasterGone));
                }
                Sink::Stream { stream, tag } => {
                    if let Some(entry) = self.streams.get_mut(&stream) {
                        entry.buffer.push((tag, Err(TaskError::MasterGone)));
                    }
                }
            }
        }
        for entry in self.streams.values_mut() {
            if !entry.buffer.is_empty() {
                let _ = entry.tx.send(std::mem::take(&mut entry.buffer));
            }
        }
        if let Some(journal) = &self.journal
            && let Err(message) = journal.close()
        {
            tracing::error!(%message, "the run store could not write everything");
            eprintln!("pymw: the run store could not write everything: {message}");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Says which finished results of earlier lives of the run are not reused
/// because their task changed (another build): those tasks run again.
fn log_stale_results(journal: &dyn Journal) {
    let tasks = crate::registry::Registry::global().listing();
    match journal.stale_results(&tasks) {
        Ok(stale) => {
            for s in stale {
                tracing::warn!(
                    task = s.task,
                    results = s.results,
                    "{} results of task {} from an earlier build were not reused: the task changed (its types or code), so it runs again",
                    s.results,
                    s.task
                );
            }
        }
        Err(message) => tracing::debug!(%message, "could not count results of earlier builds"),
    }
}
