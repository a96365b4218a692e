//! The master: submits tasks to a backend and collects their results.
//!
//! The async [`Master`] runs a driver task on the current tokio runtime; it
//! owns every task's state (attempts, retries, timeouts, status counts) and
//! talks to the backend in batches. [`crate::blocking::Master`] wraps it for
//! plain `main`s.

use crate::backend::{AttemptKey, Backend, Dispatch, Event, EventSink, Resources};
use crate::error::{Error, TaskError};
use crate::registry::{Task, TaskEntry};
use crate::wire::{Failure, WorkerStats};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::cmp::Reverse;
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
    pub timeout: Option<Duration>,
    /// How many times a lost attempt (crashed worker, held job) is retried.
    pub max_retries: Option<u32>,
    /// What the task asks of the engine (shared, so a map of a million
    /// tasks holds one copy).
    pub resources: Arc<Resources>,
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
        self.resources = Arc::new(resources);
        self
    }
}

/// Defaults of a master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Retries of lost attempts, unless a task says otherwise. Default 3.
    pub max_retries: u32,
    /// Timeout of every task, unless a task says otherwise. Default none.
    pub timeout: Option<Duration>,
    /// Progress output of `map`: a bar when stderr is a terminal, periodic
    /// lines when not. Default on, unless `PYMW_PROGRESS=0`.
    pub progress: bool,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            max_retries: 3,
            timeout: None,
            progress: std::env::var("PYMW_PROGRESS").map_or(true, |v| v != "0"),
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

/// Where the driver delivers a task's outcome.
enum Sink {
    One(oneshot::Sender<RawOutcome>),
    Stream {
        tx: mpsc::UnboundedSender<(u64, RawOutcome)>,
        tag: u64,
    },
}

impl Sink {
    fn deliver(self, outcome: RawOutcome) {
        // A receiver that is gone no longer wants the result.
        match self {
            Sink::One(tx) => drop(tx.send(outcome)),
            Sink::Stream { tx, tag } => drop(tx.send((tag, outcome))),
        }
    }
}

struct NewTask {
    id: TaskId,
    entry: &'static TaskEntry,
    input: Arc<[u8]>,
    options: Arc<TaskOptions>,
    sink: Sink,
}

enum Command {
    Submit(Vec<NewTask>),
    Cancel(Vec<TaskId>),
}

#[derive(Default)]
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
    counters: Counters,
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
    pub fn start_with(mut backend: Box<dyn Backend>, config: MasterConfig) -> Result<Master, Error> {
        if !crate::worker::is_initialized() {
            return Err(Error::NotInitialized);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (sink, events) = EventSink::channel();
        backend.start(sink)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            commands,
            next_id: AtomicU64::new(0),
            counters: Counters::default(),
            config,
            capacity_hint: backend.capacity_hint(),
            backend_name: backend.name(),
        });
        let driver = Driver {
            backend,
            shared: Arc::downgrade(&shared),
            tasks: HashMap::with_capacity_and_hasher(1024, Default::default()),
            deadlines: BinaryHeap::new(),
            outgoing: Vec::new(),
            running: 0,
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
        let submitted = c.submitted.load(Ordering::Relaxed);
        let running = c.running.load(Ordering::Relaxed);
        let done = c.done.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        let cancelled = c.cancelled.load(Ordering::Relaxed);
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

    fn send(&self, tasks: Vec<NewTask>) {
        if tasks.is_empty() {
            return;
        }
        self.shared
            .counters
            .submitted
            .fetch_add(tasks.len() as u64, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(Command::Submit(tasks))) =
            self.shared.commands.send(Command::Submit(tasks))
        {
            for task in tasks {
                task.sink.deliver(Err(TaskError::MasterGone));
            }
        }
    }

    /// Submits one task; the handle resolves to its value.
    pub fn submit<A: Serialize, R: DeserializeOwned>(&self, task: Task<A, R>, args: A) -> TaskHandle<R> {
        self.submit_with(task, args, TaskOptions::default())
    }

    /// Submits one task with its own options.
    pub fn submit_with<A: Serialize, R: DeserializeOwned>(
        &self,
        task: Task<A, R>,
        args: A,
        options: TaskOptions,
    ) -> TaskHandle<R> {
        let (tx, rx) = oneshot::channel();
        let id = TaskId(self.new_ids(1));
        self.send(vec![NewTask {
            id,
            entry: task.entry(),
            input: encode_args(&args),
            options: Arc::new(options),
            sink: Sink::One(tx),
        }]);
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
            let _ = self.shared.commands.send(Command::Cancel(ids));
        }
    }

    /// Runs `task` over every input, streaming: at most a window of tasks is
    /// in flight, and inputs are pulled from the iterator only as room frees
    /// up, so memory stays bounded however long the iterator is. Results come
    /// in input order; see [`Map::unordered`].
    pub fn map<A, R, I>(&self, task: Task<A, R>, inputs: I) -> Map<A, R, I::IntoIter>
    where
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let inputs = inputs.into_iter();
        let (lower, upper) = inputs.size_hint();
        let total = upper.filter(|&u| u == lower).map(|u| u as u64);
        let (tx, rx) = mpsc::unbounded_channel();
        Map {
            master: self.clone(),
            entry: task.entry(),
            inputs,
            exhausted: false,
            options: Arc::new(TaskOptions::default()),
            window: self.shared.capacity_hint.max(64),
            ordered: true,
            tx,
            rx,
            next_tag: 0,
            next_yield: 0,
            reorder: VecDeque::new(),
            ready: VecDeque::new(),
            in_flight: HashMap::with_hasher(Default::default()),
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

fn encode_args<A: Serialize>(args: &A) -> Arc<[u8]> {
    Arc::from(crate::wire::encode_payload(args))
}

fn decode_value<R: DeserializeOwned>(task: &'static str, outcome: RawOutcome) -> Result<R, TaskError> {
    let (bytes, stats) = outcome?;
    postcard::from_bytes(&bytes).map_err(|e| TaskError::Failed {
        task,
        failure: Failure::Decode {
            message: format!(
                "the worker's value does not decode as {}: {e}",
                std::any::type_name::<R>()
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
        Pin::new(&mut self.rx).poll(cx).map(|outcome| match outcome {
            Ok(outcome) => decode_value(task, outcome),
            Err(_) => Err(TaskError::MasterGone),
        })
    }
}

/// Tasks of one value type whose results are taken as they finish, like
/// PyMW's `get_result()` without an argument (and tokio's `JoinSet`).
pub struct TaskSet<R> {
    master: Master,
    tx: mpsc::UnboundedSender<(u64, RawOutcome)>,
    rx: mpsc::UnboundedReceiver<(u64, RawOutcome)>,
    names: HashMap<u64, &'static str>,
    _value: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for TaskSet<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSet").field("pending", &self.names.len()).finish()
    }
}

impl<R: DeserializeOwned> TaskSet<R> {
    /// An empty set on `master`.
    pub fn new(master: &Master) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        TaskSet {
            master: master.clone(),
            tx,
            rx,
            names: HashMap::new(),
            _value: PhantomData,
        }
    }

    /// Submits a task into the set.
    pub fn submit<A: Serialize>(&mut self, task: Task<A, R>, args: A) -> TaskId {
        self.submit_with(task, args, TaskOptions::default())
    }

    /// Submits a task into the set with its own options.
    pub fn submit_with<A: Serialize>(&mut self, task: Task<A, R>, args: A, options: TaskOptions) -> TaskId {
        let id = TaskId(self.master.new_ids(1));
        self.names.insert(id.0, task.name());
        self.master.send(vec![NewTask {
            id,
            entry: task.entry(),
            input: encode_args(&args),
            options: Arc::new(options),
            sink: Sink::Stream {
                tx: self.tx.clone(),
                tag: id.0,
            },
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
        if self.names.is_empty() {
            return None;
        }
        let (tag, outcome) = self.rx.recv().await?;
        let name = self.names.remove(&tag).unwrap_or("?");
        Some((TaskId(tag), decode_value(name, outcome)))
    }

    /// Cancels every task of the set that has not finished.
    pub fn cancel_all(&self) {
        self.master.cancel(self.names.keys().map(|&k| TaskId(k)));
    }
}

/// A streaming map of a task over inputs; see [`Master::map`]. Call
/// [`Map::next`] for the results. Dropping it cancels what is still in flight.
pub struct Map<A, R, I> {
    master: Master,
    entry: &'static TaskEntry,
    inputs: I,
    exhausted: bool,
    options: Arc<TaskOptions>,
    window: usize,
    ordered: bool,
    tx: mpsc::UnboundedSender<(u64, RawOutcome)>,
    rx: mpsc::UnboundedReceiver<(u64, RawOutcome)>,
    next_tag: u64,
    next_yield: u64,
    /// Ordered mode: outcomes of positions `next_yield..next_tag`, `None`
    /// while running. Unordered mode: finished outcomes with their positions.
    reorder: VecDeque<Option<RawOutcome>>,
    ready: VecDeque<(u64, RawOutcome)>,
    in_flight: HashMap<u64, TaskId, IdHash>,
    progress: crate::progress::Progress,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R, I> std::fmt::Debug for Map<A, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("task", &self.entry.name)
            .field("submitted", &self.next_tag)
            .field("in_flight", &self.in_flight.len())
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
        self.options = Arc::new(options);
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
            if self.in_flight.is_empty() && self.exhausted {
                self.progress.finish();
                return None;
            }
            // Holding `tx` ourselves, the channel cannot close.
            let (tag, outcome) = self.rx.recv().await?;
            self.accept(tag, outcome);
        }
    }

    /// Returns a result that is ready without waiting, after taking in
    /// whatever has arrived and topping the window up.
    pub(crate) fn take_ready(&mut self) -> Option<(u64, Result<R, TaskError>)> {
        while let Ok((tag, outcome)) = self.rx.try_recv() {
            self.accept(tag, outcome);
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
        let mut batch = Vec::new();
        loop {
            let room = if self.ordered {
                // The reorder buffer stays within the window too.
                (self.next_yield + self.window as u64).saturating_sub(self.next_tag)
            } else {
                self.window.saturating_sub(self.in_flight.len()) as u64
            };
            if room == 0 {
                break;
            }
            let Some(args) = self.inputs.next() else {
                self.exhausted = true;
                break;
            };
            let tag = self.next_tag;
            self.next_tag += 1;
            let id = TaskId(self.master.new_ids(1));
            self.in_flight.insert(tag, id);
            if self.ordered {
                self.reorder.push_back(None);
            }
            batch.push(NewTask {
                id,
                entry: self.entry,
                input: encode_args(&args),
                options: self.options.clone(),
                sink: Sink::Stream {
                    tx: self.tx.clone(),
                    tag,
                },
            });
            if batch.len() >= 4096 {
                self.master.send(std::mem::take(&mut batch));
            }
        }
        self.master.send(batch);
        self.progress.set_in_flight(self.in_flight.len() as u64);
    }

    fn accept(&mut self, tag: u64, outcome: RawOutcome) {
        if self.in_flight.remove(&tag).is_none() {
            return;
        }
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

impl<A, R, I> Drop for Map<A, R, I> {
    fn drop(&mut self) {
        self.master.cancel(self.in_flight.values().copied());
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

fn attempt_key(id: TaskId, attempt: u32) -> AttemptKey {
    (id.0 << ATTEMPT_BITS) | u64::from(attempt & 0xff)
}

fn task_of(key: AttemptKey) -> TaskId {
    TaskId(key >> ATTEMPT_BITS)
}

struct TaskState {
    entry: &'static TaskEntry,
    input: Arc<[u8]>,
    options: Arc<TaskOptions>,
    sink: Sink,
    /// Attempts made so far, counting the current one.
    attempt: u32,
    running: bool,
}

impl TaskState {
    fn key(&self, id: TaskId) -> AttemptKey {
        attempt_key(id, self.attempt - 1)
    }
}

struct Driver {
    backend: Box<dyn Backend>,
    shared: std::sync::Weak<Shared>,
    tasks: HashMap<TaskId, TaskState, IdHash>,
    deadlines: BinaryHeap<Reverse<(Instant, AttemptKey)>>,
    outgoing: Vec<Dispatch>,
    running: u64,
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
        // Every master handle is gone: stop the engine.
        tracing::debug!("master dropped: shutting the backend down");
        for (_, state) in self.tasks.drain() {
            state.sink.deliver(Err(TaskError::MasterGone));
        }
    }

    fn counters(&self) -> Option<Arc<Shared>> {
        self.shared.upgrade()
    }

    /// Counts running tasks in the shared counters right away, so that a
    /// result is never delivered before the counts that include it.
    fn add_running(&mut self, delta: i64) {
        self.running = self.running.wrapping_add_signed(delta);
        if let Some(shared) = self.counters() {
            shared.counters.running.store(self.running, Ordering::Relaxed);
        }
    }

    fn max_retries(&self, options: &TaskOptions) -> u32 {
        options.max_retries.unwrap_or_else(|| {
            self.counters().map_or(3, |s| s.config.max_retries)
        })
    }

    fn timeout(&self, options: &TaskOptions) -> Option<Duration> {
        options
            .timeout
            .or_else(|| self.counters().and_then(|s| s.config.timeout))
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Submit(tasks) => {
                self.tasks.reserve(tasks.len());
                for task in tasks {
                    let state = TaskState {
                        entry: task.entry,
                        input: task.input,
                        options: task.options,
                        sink: task.sink,
                        attempt: 0,
                        running: false,
                    };
                    self.tasks.insert(task.id, state);
                    self.dispatch(task.id);
                }
            }
            Command::Cancel(ids) => {
                let mut keys = Vec::new();
                for id in ids {
                    if let Some(state) = self.tasks.remove(&id) {
                        keys.push(state.key(id));
                        let task = state.entry.name;
                        self.finish(state, Err(TaskError::Cancelled { task }), Outcome::Cancelled);
                    }
                }
                self.outgoing.retain(|d| !keys.contains(&d.key));
                if !keys.is_empty() {
                    self.backend.cancel(&keys);
                }
            }
        }
    }

    /// Queues the next attempt of a task for the backend.
    fn dispatch(&mut self, id: TaskId) {
        let Some(state) = self.tasks.get_mut(&id) else {
            return;
        };
        state.attempt += 1;
        state.running = false;
        self.outgoing.push(Dispatch {
            key: attempt_key(id, state.attempt - 1),
            task: state.entry,
            input: state.input.clone(),
            attempt: state.attempt - 1,
            resources: state.options.resources.clone(),
        });
    }

    fn flush(&mut self) {
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
                    self.finish(
                        state,
                        Err(TaskError::Backend {
                            task,
                            message: error.message.clone(),
                        }),
                        Outcome::Failed,
                    );
                }
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
                Event::Started { key } => {
                    let Some(state) = self.current(key) else { continue };
                    if !state.running {
                        state.running = true;
                        let options = state.options.clone();
                        self.add_running(1);
                        if let Some(timeout) = self.timeout(&options) {
                            self.deadlines.push(Reverse((Instant::now() + timeout, key)));
                        }
                    }
                }
                Event::Finished {
                    key,
                    outcome,
                    stats,
                    stderr_tail,
                } => {
                    if self.current(key).is_none() {
                        continue;
                    }
                    let state = self.take(key);
                    let result = match outcome {
                        Ok(value) => Ok((value, stats)),
                        Err(failure) => Err(TaskError::Failed {
                            task: state.entry.name,
                            failure,
                            host: stats.host,
                            stderr_tail,
                        }),
                    };
                    let kind = if result.is_ok() { Outcome::Done } else { Outcome::Failed };
                    self.finish(state, result, kind);
                }
                Event::Lost {
                    key,
                    cause,
                    stderr_tail,
                } => {
                    let Some(state) = self.current(key) else { continue };
                    let options = state.options.clone();
                    let attempts = state.attempt;
                    let name = state.entry.name;
                    if attempts > self.max_retries(&options) {
                        let state = self.take(key);
                        let task = state.entry.name;
                        self.finish(
                            state,
                            Err(TaskError::WorkerLost {
                                task,
                                cause,
                                attempts,
                                stderr_tail,
                            }),
                            Outcome::Failed,
                        );
                    } else {
                        tracing::info!(task = name, attempt = attempts, %cause, "attempt lost, retrying");
                        self.stop_running(key);
                        self.dispatch(task_of(key));
                    }
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

    fn stop_running(&mut self, key: AttemptKey) {
        if let Some(state) = self.current(key) {
            if std::mem::replace(&mut state.running, false) {
                self.add_running(-1);
            }
        }
    }

    /// Removes the task of the current attempt `key` from the table.
    fn take(&mut self, key: AttemptKey) -> TaskState {
        self.stop_running(key);
        self.tasks.remove(&task_of(key)).expect("checked by current()")
    }

    fn finish(&mut self, state: TaskState, result: RawOutcome, kind: Outcome) {
        if state.running {
            self.add_running(-1);
        }
        if let Some(shared) = self.counters() {
            let counter = match kind {
                Outcome::Done => &shared.counters.done,
                Outcome::Failed => &shared.counters.failed,
                Outcome::Cancelled => &shared.counters.cancelled,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        state.sink.deliver(result);
    }

    fn expire_deadlines(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(Reverse((at, key))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self.current(key).is_some_and(|s| s.running) {
                expired.push(key);
            }
        }
        if expired.is_empty() {
            return;
        }
        self.backend.cancel(&expired);
        for key in expired {
            let state = self.take(key);
            let after = self.timeout(&state.options).unwrap_or_default();
            let task = state.entry.name;
            self.finish(state, Err(TaskError::TimedOut { task, after }), Outcome::Failed);
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
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
