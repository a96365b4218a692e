//! The local backend of pymw: N persistent worker processes of the running
//! binary (its `__pymw serve` role), fed over pipes.
//!
//! Dispatch is pipelined: each worker has a window of requests in flight,
//! sized from the measured task time so that about 5 ms of work waits in each
//! pipe (thousands of tiny tasks, two long ones). Requests and replies travel
//! in batches, so a tiny task costs a fraction of a system call.
//!
//! A worker that dies (panic with `panic = "abort"`, `process::exit`, a
//! signal) is replaced. Because a worker answers strictly in order, the
//! request it died on is known only when it had exactly one in flight; when it
//! had several, they are all re-run one at a time ("solo"), uncharged, so the
//! culprit is found exactly and innocent tasks never use up retries.
//!
//! Everything a task starts dies with its worker. Each worker leads its own
//! process group, and the backend kills the whole group (`kill(-pgid,
//! SIGKILL)`) on cancel, timeout, shutdown and the worker's death; a master
//! killed outright makes the kernel signal its workers (`PR_SET_PDEATHSIG`),
//! and each worker then kills its own group. Why a process group, and not a
//! subreaper or a cgroup: a cgroup would also catch children that call
//! `setsid()`, but needs a delegated cgroup v2 subtree, which containers,
//! HTCondor slots and most desktops do not give a user process; a subreaper
//! (`PR_SET_CHILD_SUBREAPER`) only changes who inherits orphans, and a worker
//! or master that became one would have to reap children it did not start,
//! stealing exit statuses from tasks' and users' own `wait` calls. A process
//! that leaves the group with `setsid()` (a daemon that detaches on purpose)
//! is therefore not chased: it outlives the worker, and the backend does
//! not wait for it either (once the worker's group is dead, the backend
//! takes what is in the stderr pipe and stops waiting for the end of a pipe
//! such a process may hold).

use pymw_core::backend::{AttemptKey, Backend, BackendError, Dispatch, Event, EventSink};
use pymw_core::registry::Registry;
use pymw_core::sys;
use pymw_core::wire::{self, frame};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of the local backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LocalConfig {
    /// Worker processes. Default: the available cores.
    pub workers: usize,
    /// Most requests in flight per worker. Default 4096.
    pub max_window: usize,
    /// How much of each worker's stderr is kept for error reports. Default 8 KiB.
    pub stderr_tail_bytes: usize,
    /// Copy what workers write to stderr to the master's stderr. Default on.
    pub forward_stderr: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_window: 4096,
            stderr_tail_bytes: 8192,
            forward_stderr: true,
        }
    }
}

impl LocalConfig {
    /// Sets the number of worker processes.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets whether workers' stderr is copied to the master's stderr.
    pub fn forward_stderr(mut self, forward: bool) -> Self {
        self.forward_stderr = forward;
        self
    }
}

/// The local backend.
#[derive(Debug)]
pub struct LocalBackend {
    config: LocalConfig,
    shared: Option<Arc<Shared>>,
    supervisors: Vec<JoinHandle<()>>,
}

impl LocalBackend {
    /// A local backend with these settings; workers start with the master.
    pub fn new(config: LocalConfig) -> Self {
        LocalBackend {
            config,
            shared: None,
            supervisors: Vec::new(),
        }
    }
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend::new(LocalConfig::default())
    }
}

/// Queued work of about this many nanoseconds per worker keeps it busy
/// without piling the tail of a map onto one worker.
const TARGET_QUEUED_NS: u64 = 5_000_000;
/// How long `start` waits for the workers' first handshakes.
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// A worker that fails to start this many times in a row fails the queue.
const MAX_START_FAILURES: u32 = 3;
/// How long a starting worker may take to send its hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// After a read of less than this from a worker's stderr, its reader
/// thread pauses a millisecond before the next, so that a worker failing a
/// million tiny tasks a second (a mark each) wakes it a thousand times a
/// second, not a million. A chatty worker is read without pauses.
const STDERR_PAUSE_BELOW: usize = 32 << 10;

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    events: EventSink,
    config: LocalConfig,
    exe: PathBuf,
    /// Moving average of task wall time, nanoseconds.
    avg_task_ns: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Dispatch>,
    /// Attempts to run alone on a worker: suspects of a crash, and retries.
    solo: VecDeque<Dispatch>,
    shutdown: bool,
    workers: Vec<WorkerState>,
    /// Workers whose first start has been tried (successfully or not).
    first_starts: usize,
    /// Why no worker can ever start (the binary does not reach pymw's role
    /// dispatch): every attempt fails at once with this.
    fatal: Option<String>,
}

#[derive(Debug, Default)]
struct WorkerState {
    in_flight: VecDeque<Dispatch>,
    /// Running a solo attempt: take nothing else until it is answered.
    solo: bool,
    /// The process is up and its writer may take work.
    alive: bool,
    /// The worker's pid, which is also its process group's id. Cleared
    /// under the lock before the process is reaped, so that nothing signals
    /// a number the kernel may have given to another process.
    pid: Option<u32>,
    /// Keys cancelled while in flight here; the worker was killed for them.
    cancelled: Vec<AttemptKey>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a supervisor thread panicked; the state is
        // still consistent (every update is a whole push or pop).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn window(&self) -> usize {
        let avg = self.avg_task_ns.load(Ordering::Relaxed).max(1);
        ((TARGET_QUEUED_NS / avg) as usize).clamp(2, self.config.max_window.max(2))
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start(&mut self, events: EventSink) -> Result<(), BackendError> {
        let exe = worker_executable().map_err(|message| BackendError {
            backend: "local",
            message,
        })?;
        let workers = self.config.workers.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                workers: (0..workers).map(|_| WorkerState::default()).collect(),
                ..State::default()
            }),
            wake: Condvar::new(),
            events,
            config: self.config.clone(),
            exe,
            // Until measured, assume tasks of 1.25 ms: a window of 4.
            avg_task_ns: AtomicU64::new(TARGET_QUEUED_NS / 4),
        });
        for index in 0..workers {
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("pymw-local-{index}"))
                .spawn(move || supervise(&shared, index))
                .map_err(|e| BackendError {
                    backend: "local",
                    message: format!("cannot start a supervisor thread: {e}"),
                })?;
            self.supervisors.push(handle);
        }
        // Wait for the first handshakes, so that work is spread over every
        // worker from the start instead of piling onto the first one up.
        let deadline = Instant::now() + STARTUP_WAIT;
        let mut state = shared.lock();
        while state.first_starts < workers && Instant::now() < deadline {
            state = shared
                .wake
                .wait_timeout(state, deadline - Instant::now())
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        let fatal = state.fatal.clone();
        drop(state);
        self.shared = Some(shared);
        if let Some(message) = fatal {
            self.shutdown();
            return Err(BackendError {
                backend: "local",
                message,
            });
        }
        tracing::debug!(workers, "local backend started");
        Ok(())
    }

    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        let Some(shared) = &self.shared else {
            return Err(BackendError {
                backend: "local",
                message: "submit before start".into(),
            });
        };
        let mut state = shared.lock();
        for dispatch in batch {
            // A retry follows a crash: run it alone so that, if it crashes
            // again, nothing else is caught with it.
            if dispatch.attempt > 0 {
                state.solo.push_back(dispatch);
            } else {
                state.queue.push_back(dispatch);
            }
        }
        drop(state);
        shared.wake.notify_all();
        Ok(())
    }

    fn cancel(&mut self, keys: &[AttemptKey]) {
        let Some(shared) = &self.shared else { return };
        let mut state = shared.lock();
        state.queue.retain(|d| !keys.contains(&d.key));
        state.solo.retain(|d| !keys.contains(&d.key));
        for worker in &mut state.workers {
            let hit: Vec<AttemptKey> = worker
                .in_flight
                .iter()
                .map(|d| d.key)
                .filter(|key| keys.contains(key))
                .collect();
            if hit.is_empty() {
                continue;
            }
            worker.cancelled.extend(hit);
            // The only way to stop a running Rust function is to stop its
            // process (and what it started); the supervisor requeues the
            // innocent in-flight rest.
            if let Some(pid) = worker.pid {
                sys::kill_group(pid);
            }
        }
    }

    fn capacity_hint(&self) -> usize {
        self.config.workers.max(1) * self.config.max_window * 2
    }

    fn shutdown(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        {
            let mut state = shared.lock();
            state.shutdown = true;
            for worker in &state.workers {
                if let Some(pid) = worker.pid {
                    sys::kill_group(pid);
                }
            }
        }
        shared.wake.notify_all();
        for handle in self.supervisors.drain(..) {
            let _ = handle.join();
        }
        tracing::debug!("local backend stopped");
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The executable to start workers from. `/proc/self/exe` names the running
/// image even after the file was rebuilt or deleted, so workers always run
/// the master's own code.
fn worker_executable() -> Result<PathBuf, String> {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe);
    }
    std::env::current_exe().map_err(|e| format!("cannot find the running executable: {e}"))
}

/// A worker process with its pipes.
struct Spawned {
    child: Child,
    stdin: ChildStdin,
    stdout: std::process::ChildStdout,
    stderr_thread: JoinHandle<()>,
    stderr: Arc<Stderr>,
    host: String,
}

/// Why a worker did not start.
struct SpawnError {
    message: String,
    /// It can never start: retrying is pointless.
    fatal: bool,
}

/// Runs worker `index` for the backend's life: start, serve, replace.
fn supervise(shared: &Arc<Shared>, index: usize) {
    let mut start_failures = 0u32;
    let mut first = true;
    loop {
        if shared.lock().shutdown {
            return;
        }
        let spawned = spawn_worker(shared, index);
        if std::mem::take(&mut first) {
            let mut state = shared.lock();
            // Recorded with the start, so that `start` sees it.
            if let Err(SpawnError {
                message,
                fatal: true,
            }) = &spawned
            {
                state.fatal.get_or_insert_with(|| message.clone());
            }
            state.first_starts += 1;
            drop(state);
            shared.wake.notify_all();
        }
        let spawned = match spawned {
            Ok(spawned) => {
                start_failures = 0;
                spawned
            }
            Err(SpawnError {
                message,
                fatal: true,
            }) => {
                tracing::error!(worker = index, cause = %message, "a worker cannot start");
                refuse_all(shared, message);
                return;
            }
            Err(SpawnError { message: cause, .. }) => {
                start_failures += 1;
                tracing::error!(worker = index, %cause, "cannot start a worker process");
                if start_failures >= MAX_START_FAILURES {
                    fail_queue(shared, &format!("cannot start a worker process: {cause}"));
                }
                std::thread::sleep(Duration::from_millis(
                    200 * u64::from(start_failures.min(10)),
                ));
                continue;
            }
        };
        run_worker(shared, index, spawned);
    }
}

/// Records that no worker can start, and from then on ends every attempt
/// as lost at once with `cause`, until shutdown.
fn refuse_all(shared: &Shared, cause: String) {
    {
        let mut state = shared.lock();
        state.fatal.get_or_insert(cause.clone());
    }
    shared.wake.notify_all();
    loop {
        fail_queue(shared, &cause);
        let state = shared.lock();
        if state.shutdown {
            return;
        }
        if state.queue.is_empty() && state.solo.is_empty() {
            drop(
                shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
        }
    }
}

/// Ends every queued attempt as lost, so that nothing waits forever on
/// workers that cannot start; the master retries or fails them.
fn fail_queue(shared: &Shared, cause: &str) {
    let mut state = shared.lock();
    let state = &mut *state;
    let lost: Vec<Dispatch> = state.queue.drain(..).chain(state.solo.drain(..)).collect();
    if lost.is_empty() {
        return;
    }
    shared.events.send(
        lost.iter()
            .map(|d| Event::Lost {
                key: d.key,
                cause: cause.to_owned(),
                stderr_tail: String::new(),
            })
            .collect(),
    );
}

fn spawn_worker(shared: &Shared, index: usize) -> Result<Spawned, SpawnError> {
    use std::os::unix::process::CommandExt;
    let retry = |message: String| SpawnError {
        message,
        fatal: false,
    };
    let mut command = Command::new(&shared.exe);
    command
        .args([pymw_core::worker::ROLE_ARG, "serve"])
        .env("PYMW_WORKER_INDEX", index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C in the terminal reaches the master
        // only, which then stops the workers itself; and the backend can
        // kill the worker with everything its tasks started.
        .process_group(0);
    let death_signal = sys::master_death_signal();
    // SAFETY: prctl is async-signal-safe; it asks the kernel to signal the
    // worker when the thread that started it (its supervisor) ends, so a
    // master killed by SIGKILL leaves no worker behind. The worker kills
    // its own process group on that signal (`kill_group_on_master_death`);
    // until it has installed the handler, the signal's default action ends
    // it alone.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| retry(format!("cannot run {}: {e}", shared.exe.display())))?;
    let stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let stderr_pipe = child.stderr.take().expect("piped");
    let stderr = Arc::new(
        Stderr::new(
            stderr_pipe,
            shared.config.stderr_tail_bytes,
            shared.config.forward_stderr,
        )
        .map_err(|e| retry(format!("cannot set up the worker's stderr: {e}")))?,
    );
    let stderr_thread = {
        let stderr = stderr.clone();
        std::thread::Builder::new()
            .name(format!("pymw-local-{index}-stderr"))
            .spawn(move || stderr.follow())
            .map_err(|e| retry(format!("cannot start a thread: {e}")))?
    };
    let hello = match read_hello(&mut stdout) {
        Ok(hello) => hello,
        Err(e) => {
            sys::kill_group(child.id());
            let status = child.wait();
            let tail = stderr.text_after_death(stderr_thread);
            return Err(handshake_failure(&e, status.ok(), &tail));
        }
    };
    let ours = Registry::global().listing();
    if hello.format_version != wire::FORMAT_VERSION || hello.tasks != ours {
        sys::kill_group(child.id());
        let _ = child.wait();
        return Err(retry(
            "the worker executable holds other tasks than the master: it was rebuilt while the master ran".into(),
        ));
    }
    {
        let mut state = shared.lock();
        let worker = &mut state.workers[index];
        worker.pid = Some(child.id());
        worker.alive = true;
    }
    tracing::debug!(worker = index, pid = child.id(), "worker started");
    Ok(Spawned {
        child,
        stdin,
        stdout,
        stderr_thread,
        stderr,
        host: hello.host,
    })
}

/// The error of a worker that sent no hello. A worker that never reached
/// pymw's role dispatch (its stderr names the role argument, as an argument
/// parser's complaint does; or it exited by itself without a word of
/// pymw's) ran the user's code before `pymw::init()`: that is a bug in
/// `main`, the same for every worker, so it is fatal rather than retried.
/// A worker killed by a signal while starting (the OOM killer) is retried.
fn handshake_failure(
    error: &HelloError,
    status: Option<std::process::ExitStatus>,
    tail: &str,
) -> SpawnError {
    // pymw's own messages before a hello start so (a bad PYMW_TASK_STACK,
    // duplicate task names).
    let reached_pymw = tail
        .lines()
        .any(|line| line.starts_with("pymw:") || line.starts_with("pymw serve:"));
    let names_role = tail.contains(pymw_core::worker::ROLE_ARG);
    let exited_by_itself = matches!(error, HelloError::Closed(_) | HelloError::NotPymw)
        && status.is_some_and(|s| s.code().is_some());
    let status = status.map_or_else(|| "an unknown status".to_owned(), sys::describe_exit);
    if !reached_pymw && (names_role || exited_by_itself) {
        let tail = tail.trim_end();
        return SpawnError {
            message: format!(
                "the worker process (this program run as `{} serve`) ended with {status} before pymw \
                 took its role: pymw::init() (or #[pymw::main]) must be the first call in main, \
                 before parsing arguments or anything else; the worker said: {}",
                pymw_core::worker::ROLE_ARG,
                if tail.is_empty() { "nothing" } else { tail }
            ),
            fatal: true,
        };
    }
    SpawnError {
        message: format!(
            "no handshake from the worker ({error}); it ended with {status}; stderr: {tail}"
        ),
        fatal: false,
    }
}

/// Why a worker's hello did not arrive.
#[derive(Debug)]
enum HelloError {
    /// Its stdout closed or failed first.
    Closed(String),
    /// It wrote something that is not a pymw hello.
    NotPymw,
    /// It said nothing within [`HANDSHAKE_TIMEOUT`].
    Timeout,
    /// The hello is malformed.
    Bad(String),
}

impl std::fmt::Display for HelloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloError::Closed(e) => write!(f, "reading the hello: {e}"),
            HelloError::NotPymw => f.write_str(
                "the worker did not answer with a pymw hello: does main call pymw::init() first?",
            ),
            HelloError::Timeout => write!(f, "no hello within {HANDSHAKE_TIMEOUT:?}"),
            HelloError::Bad(e) => f.write_str(e),
        }
    }
}

fn read_hello(stdout: &mut std::process::ChildStdout) -> Result<frame::Hello, HelloError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut head = [0u8; 12];
    read_exact_by(stdout, &mut head, deadline)?;
    if head[..8] != frame::HELLO_MAGIC {
        return Err(HelloError::NotPymw);
    }
    let len = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
    if len > 16 << 20 {
        return Err(HelloError::Bad(format!(
            "hello of {len} bytes is too large"
        )));
    }
    let mut body = vec![0u8; len];
    read_exact_by(stdout, &mut body, deadline)?;
    frame::decode_hello(&body).map_err(|e| HelloError::Bad(e.to_string()))
}

/// `read_exact` that gives up at `deadline`.
fn read_exact_by(
    stdout: &mut std::process::ChildStdout,
    mut buf: &mut [u8],
    deadline: Instant,
) -> Result<(), HelloError> {
    use std::os::fd::AsRawFd;
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HelloError::Timeout);
        }
        let mut poll = libc::pollfd {
            fd: stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: poll on one descriptor we own, described by `poll`.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(HelloError::Closed(error.to_string()));
        }
        if ready == 0 {
            continue;
        }
        match stdout.read(buf) {
            Ok(0) => {
                return Err(HelloError::Closed(
                    "the worker closed its stdout without a hello".into(),
                ));
            }
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(HelloError::Closed(e.to_string())),
        }
    }
    Ok(())
}

/// Serves one worker process until it ends, then settles its in-flight work.
fn run_worker(shared: &Arc<Shared>, index: usize, spawned: Spawned) {
    let Spawned {
        mut child,
        stdin,
        mut stdout,
        stderr_thread,
        stderr,
        host,
    } = spawned;
    let started = Instant::now();
    let pid = child.id();
    // Notices the worker's death even while a process its task forked (and
    // that kept the reply pipe) lives, and kills the group, which closes
    // the pipe and ends `read_replies`.
    let watcher = std::thread::Builder::new()
        .name(format!("pymw-local-{index}-watch"))
        .spawn(move || {
            if sys::wait_exited_unreaped(pid).is_ok() {
                sys::kill_group(pid);
            }
        })
        .expect("cannot start a watcher thread");
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("pymw-local-{index}-writer"))
            .spawn(move || feed_worker(&shared, index, stdin))
            .expect("cannot start a writer thread")
    };
    let answered = read_replies(shared, index, &mut stdout, &stderr, &host);
    // The worker is gone (or spoke garbage): make sure it is dead, with
    // everything its tasks started. It is not reaped yet, so its pid still
    // names its group.
    sys::kill_group(pid);
    let _ = watcher.join();
    {
        let mut state = shared.lock();
        let worker = &mut state.workers[index];
        worker.alive = false;
        worker.pid = None;
    }
    shared.wake.notify_all();
    let status = child.wait();
    let _ = writer.join();
    let stderr_tail = stderr.text_after_death(stderr_thread);
    let cause = match (&answered, status) {
        (Err(protocol), _) => format!("worker protocol error: {protocol}"),
        (Ok(()), Ok(status)) => format!("worker process ended with {}", sys::describe_exit(status)),
        (Ok(()), Err(e)) => format!("worker process lost: {e}"),
    };
    let mut state = shared.lock();
    let shutdown = state.shutdown;
    let worker = &mut state.workers[index];
    let in_flight: Vec<Dispatch> = worker.in_flight.drain(..).collect();
    let cancelled = std::mem::take(&mut worker.cancelled);
    worker.solo = false;
    if shutdown {
        return;
    }
    let mut events = Vec::new();
    let in_flight: Vec<Dispatch> = in_flight
        .into_iter()
        .filter(|d| !cancelled.contains(&d.key))
        .collect();
    if !cancelled.is_empty() {
        // We killed it to cancel a task: the others did nothing wrong.
        for dispatch in in_flight.into_iter().rev() {
            events.push(requeued(
                &dispatch,
                "its worker was stopped to cancel another task",
            ));
            state.queue.push_front(dispatch);
        }
    } else if in_flight.len() == 1 {
        tracing::warn!(worker = index, %cause, "worker died running a task");
        let dispatch = &in_flight[0];
        events.push(Event::Lost {
            key: dispatch.key,
            cause: cause.clone(),
            stderr_tail,
        });
    } else if !in_flight.is_empty() {
        tracing::warn!(
            worker = index,
            %cause,
            in_flight = in_flight.len(),
            "worker died with several tasks in flight: re-running them one at a time"
        );
        for dispatch in in_flight {
            events.push(requeued(&dispatch, "its worker died; re-running it alone"));
            state.solo.push_back(dispatch);
        }
    } else {
        tracing::warn!(worker = index, %cause, lived = ?started.elapsed(), "idle worker died");
    }
    drop(state);
    shared.wake.notify_all();
    shared.events.send(events);
}

fn requeued(dispatch: &Dispatch, reason: &str) -> Event {
    Event::Requeued {
        key: dispatch.key,
        reason: reason.to_owned(),
    }
}

/// Takes work for worker `index` from the queue and writes it to its stdin.
fn feed_worker(shared: &Shared, index: usize, mut stdin: ChildStdin) {
    let mut buf = Vec::with_capacity(1 << 16);
    let mut last_task: Option<(&'static pymw_core::registry::TaskEntry, u32)> = None;
    loop {
        let (batch, first_started) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown || !state.workers[index].alive {
                    return;
                }
                let window = shared.window();
                let worker = &state.workers[index];
                if !worker.solo {
                    if worker.in_flight.is_empty() && !state.solo.is_empty() {
                        let dispatch = state.solo.pop_front().expect("not empty");
                        state.workers[index].solo = true;
                        break (vec![dispatch], true);
                    }
                    let room = window.saturating_sub(worker.in_flight.len());
                    // An idle worker gets work before a busy one queues more.
                    let others_idle = state
                        .workers
                        .iter()
                        .enumerate()
                        .filter(|(i, w)| {
                            *i != index && w.alive && !w.solo && w.in_flight.is_empty()
                        })
                        .count();
                    let busy = !worker.in_flight.is_empty();
                    if room > 0 && !state.queue.is_empty() && !(busy && others_idle > 0) {
                        // A fair share, so that a short queue is spread.
                        let share = state.queue.len().div_ceil(others_idle + 1);
                        let take = room.min(share);
                        let batch: Vec<Dispatch> = state.queue.drain(..take).collect();
                        break (batch, !busy);
                    }
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        buf.clear();
        for dispatch in &batch {
            // Maps send one task many times: look its index up once per run.
            let index = match last_task {
                Some((entry, index)) if std::ptr::eq(entry, dispatch.task) => index,
                _ => {
                    let index = Registry::global()
                        .index_of(dispatch.task.name)
                        .expect("a registered task") as u32;
                    last_task = Some((dispatch.task, index));
                    index
                }
            };
            frame::push_request(&mut buf, dispatch.key, index, &dispatch.input);
        }
        let first_key = batch[0].key;
        {
            let mut state = shared.lock();
            state.workers[index].in_flight.extend(batch);
        }
        if first_started {
            shared.events.send(vec![Event::Started { key: first_key }]);
        }
        if stdin.write_all(&buf).is_err() {
            // The worker died; its supervisor settles what is in flight.
            return;
        }
    }
}

/// Reads replies from worker `index` until its stdout closes.
fn read_replies(
    shared: &Shared,
    index: usize,
    stdout: &mut impl Read,
    stderr: &Stderr,
    host: &str,
) -> Result<(), String> {
    let limit = wire::max_message_bytes();
    let mut input = frame::FrameReader::new(1 << 18);
    let mut replies = Vec::new();
    // Replies read so far: the sequence numbers of the worker's failure marks.
    let mut seq: u64 = 0;
    loop {
        match input.fill(stdout) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading replies: {e}")),
        }
        while let Some((bytes, used)) =
            frame::split_frame(input.data(), limit, frame::REPLY_HEAD).map_err(|e| e.to_string())?
        {
            let reply = frame::parse_reply(bytes);
            let outcome = reply.outcome().map(<[u8]>::to_vec);
            // The host is only reported with failures: a string per tiny
            // result would cost more than the task.
            let stats = reply.stats(if outcome.is_err() { host } else { "" });
            // A failure's stderr tail, complete up to its mark. The worker
            // wrote the mark before the reply, so this does not wait for
            // the worker, only (rarely) for the stderr thread; and it is
            // taken before the backend's lock, so no other worker waits.
            let stderr_tail = if outcome.is_err() {
                stderr.tail_at_mark(seq)
            } else {
                String::new()
            };
            seq += 1;
            replies.push((reply.key, outcome, stats, stderr_tail));
            input.consume(used);
        }
        if replies.is_empty() {
            continue;
        }
        let mut events = Vec::with_capacity(replies.len() + 1);
        let mut total_ns = 0u64;
        let count = replies.len() as u64;
        {
            let mut state = shared.lock();
            let worker = &mut state.workers[index];
            for (key, outcome, stats, stderr_tail) in replies.drain(..) {
                match worker.in_flight.front() {
                    Some(front) if front.key == key => {
                        worker.in_flight.pop_front();
                    }
                    _ => return Err(format!("reply for attempt {key} out of order")),
                }
                total_ns += stats.wall_ns;
                events.push(Event::Finished {
                    key,
                    outcome,
                    stats,
                    stderr_tail,
                });
            }
            if worker.in_flight.is_empty() {
                worker.solo = false;
            } else if let Some(head) = worker.in_flight.front() {
                events.push(Event::Started { key: head.key });
            }
        }
        shared.wake.notify_all();
        let avg = shared.avg_task_ns.load(Ordering::Relaxed);
        let batch_avg = total_ns / count;
        shared
            .avg_task_ns
            .store(avg - avg / 4 + batch_avg / 4, Ordering::Relaxed);
        if !shared.events.send(events) {
            return Ok(());
        }
    }
}

/// A worker's stderr as the backend keeps it: the tail, and the tail as it
/// was at each failure mark not yet claimed by its reply.
///
/// The pipe is read without blocking and only under the lock, by the
/// stderr thread (which waits for data with `poll`) and by the reply reader
/// when it needs a mark: the mark is in the pipe before its reply, so the
/// reader takes it itself, at once, instead of waiting for the thread.
#[derive(Debug)]
struct Stderr {
    pipe: std::fs::File,
    forward: bool,
    state: Mutex<StderrState>,
}

#[derive(Debug)]
struct StderrState {
    tail: Tail,
    splitter: MarkSplitter,
    /// `(reply sequence number, tail at its mark)`, oldest first.
    marks: VecDeque<(u64, String)>,
    /// The pipe has reached its end (or failed): nothing more will come.
    closed: bool,
}

impl Stderr {
    fn new(
        pipe: std::process::ChildStderr,
        capacity: usize,
        forward: bool,
    ) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        let pipe = std::fs::File::from(std::os::fd::OwnedFd::from(pipe));
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fd = pipe.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Stderr {
            pipe,
            forward,
            state: Mutex::new(StderrState {
                tail: Tail::new(capacity),
                splitter: MarkSplitter::default(),
                marks: VecDeque::new(),
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, StderrState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads what the pipe holds now; returns the bytes read.
    fn drain(&self, state: &mut StderrState) -> usize {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        while !state.closed {
            match (&self.pipe).read(&mut buf) {
                Ok(0) => {
                    // The end: bytes held back as a possible mark are text.
                    let held = std::mem::take(&mut state.splitter.held);
                    self.push_text(state, &held);
                    state.closed = true;
                }
                Ok(n) => {
                    total += n;
                    let StderrState {
                        tail,
                        splitter,
                        marks,
                        ..
                    } = state;
                    let mut out = self.forward.then(|| std::io::stderr().lock());
                    splitter.feed(&buf[..n], |piece| match piece {
                        Piece::Text(text) => {
                            tail.push(text);
                            if let Some(out) = &mut out {
                                let _ = out.write_all(text);
                            }
                        }
                        Piece::Mark(seq) => marks.push_back((seq, tail.text())),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => state.closed = true,
            }
        }
        total
    }

    fn push_text(&self, state: &mut StderrState, text: &[u8]) {
        state.tail.push(text);
        if self.forward {
            let _ = std::io::stderr().write_all(text);
        }
    }

    /// The stderr thread: reads the pipe as data comes, until its end.
    fn follow(&self) {
        use std::os::fd::AsRawFd;
        loop {
            let mut poll = libc::pollfd {
                fd: self.pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one descriptor we own, described by `poll`.
            let ready = unsafe { libc::poll(&mut poll, 1, -1) };
            if ready < 0
                && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                return;
            }
            let mut state = self.lock();
            let read = self.drain(&mut state);
            if state.closed {
                return;
            }
            drop(state);
            if read < STDERR_PAUSE_BELOW {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// The tail once the worker and its process group are dead: everything
    /// they wrote is in the pipe, so what it holds now is the rest; a
    /// process that left the group may keep the pipe open, and its output
    /// is not waited for (the stderr thread goes on reading it, detached).
    fn text_after_death(&self, thread: JoinHandle<()>) -> String {
        let mut state = self.lock();
        self.drain(&mut state);
        let text = state.tail.text();
        let closed = state.closed;
        drop(state);
        if closed || thread.is_finished() {
            let _ = thread.join();
        }
        text
    }

    /// The tail as it was when the worker marked failed reply `seq`. The
    /// worker writes the mark before the reply, so it is in the pipe by now
    /// (or already read): this never waits.
    fn tail_at_mark(&self, seq: u64) -> String {
        let mut state = self.lock();
        let mut drained = false;
        loop {
            while state.marks.front().is_some_and(|(s, _)| *s < seq) {
                state.marks.pop_front();
            }
            if state.marks.front().is_some_and(|(s, _)| *s == seq) {
                return state.marks.pop_front().expect("front").1;
            }
            if drained || state.closed {
                // No mark (the task closed the worker's copy of stderr):
                // the tail as it is.
                return state.tail.text();
            }
            self.drain(&mut state);
            drained = true;
        }
    }
}

/// The last bytes a worker wrote to stderr.
#[derive(Debug)]
struct Tail {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl Tail {
    fn new(capacity: usize) -> Self {
        Tail {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(a.len() + b.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// What a piece of a worker's stderr holds: text, and failure marks.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a [u8]),
    Mark(u64),
}

/// Splits worker stderr into text and failure marks. A mark may arrive
/// split over two reads: bytes that may begin one are held back until the
/// next read.
#[derive(Debug, Default)]
struct MarkSplitter {
    held: Vec<u8>,
}

impl MarkSplitter {
    /// Feeds `data`; calls `each` with the pieces in order.
    fn feed(&mut self, data: &[u8], mut each: impl FnMut(Piece<'_>)) {
        use pymw_core::worker::{FAILURE_MARK_LEN, FAILURE_MARK_MAGIC};
        let joined;
        let data = if self.held.is_empty() {
            data
        } else {
            self.held.extend_from_slice(data);
            joined = std::mem::take(&mut self.held);
            &joined[..]
        };
        let mut at = 0;
        let mut search = 0;
        while let Some(offset) = data[search..].iter().position(|&b| b == 0) {
            let start = search + offset;
            let rest = &data[start..];
            let whole = rest.len() >= FAILURE_MARK_LEN;
            let prefix = rest.len().min(FAILURE_MARK_MAGIC.len());
            if rest[..prefix] != FAILURE_MARK_MAGIC[..prefix] {
                search = start + 1;
                continue;
            }
            if !whole {
                // Maybe the start of a mark: hold it back.
                if start > at {
                    each(Piece::Text(&data[at..start]));
                }
                self.held = rest.to_vec();
                return;
            }
            if start > at {
                each(Piece::Text(&data[at..start]));
            }
            let seq = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
            each(Piece::Mark(seq));
            at = start + FAILURE_MARK_LEN;
            search = at;
        }
        if data.len() > at {
            each(Piece::Text(&data[at..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(splitter: &mut MarkSplitter, data: &[u8]) -> Vec<String> {
        let mut pieces = Vec::new();
        splitter.feed(data, |piece| {
            pieces.push(match piece {
                Piece::Text(text) => String::from_utf8_lossy(text).into_owned(),
                Piece::Mark(seq) => format!("<{seq}>"),
            })
        });
        pieces
    }

    #[test]
    fn marks_are_found_across_reads() {
        use pymw_core::worker::failure_mark;
        let mut all = b"one\0two".to_vec();
        all.extend_from_slice(&failure_mark(7));
        all.extend_from_slice(b"three");
        all.extend_from_slice(&failure_mark(8));
        // Every way of cutting the stream in two gives the same pieces.
        for cut in 0..=all.len() {
            let mut splitter = MarkSplitter::default();
            let mut pieces = split(&mut splitter, &all[..cut]);
            pieces.extend(split(&mut splitter, &all[cut..]));
            let text: String = pieces.concat();
            assert_eq!(text, "one\0two<7>three<8>", "cut at {cut}");
        }
    }

    #[test]
    fn a_worker_that_never_reached_pymw_names_the_fix() {
        use std::os::unix::process::ExitStatusExt;
        let exit = |code: i32| Some(std::process::ExitStatus::from_raw(code << 8));
        let closed = || HelloError::Closed("eof".into());
        let clap = "error: unexpected argument '__pymw' found\n\nUsage: app\n";
        let late = handshake_failure(&closed(), exit(2), clap);
        assert!(late.fatal);
        assert!(late.message.contains("pymw::init()") && late.message.contains("first"));
        assert!(late.message.contains("unexpected argument '__pymw'"));
        // A main that exits before init, silently.
        assert!(handshake_failure(&closed(), exit(0), "").fatal);
        // pymw's own complaint: pymw was reached.
        let own = handshake_failure(
            &closed(),
            exit(1),
            "pymw serve: PYMW_TASK_STACK=\"x\": bad\n",
        );
        assert!(!own.fatal && own.message.contains("PYMW_TASK_STACK"));
        // Killed while starting: retried.
        let killed = handshake_failure(&closed(), Some(std::process::ExitStatus::from_raw(9)), "");
        assert!(!killed.fatal);
        assert!(!handshake_failure(&HelloError::Timeout, None, "").fatal);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Tail::new(5);
        tail.push(b"abc");
        tail.push(b"defg");
        assert_eq!(tail.text(), "cdefg");
        tail.push(b"0123456789");
        assert_eq!(tail.text(), "56789");
    }
}
