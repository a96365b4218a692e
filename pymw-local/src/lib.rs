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
}

#[derive(Debug, Default)]
struct WorkerState {
    in_flight: VecDeque<Dispatch>,
    /// Running a solo attempt: take nothing else until it is answered.
    solo: bool,
    /// The process is up and its writer may take work.
    alive: bool,
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
        drop(state);
        tracing::debug!(workers, "local backend started");
        self.shared = Some(shared);
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
            // process; the supervisor requeues the innocent in-flight rest.
            if let Some(pid) = worker.pid {
                kill(pid);
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
                    kill(pid);
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

fn kill(pid: u32) {
    // SAFETY: kill(2) with a pid of a child we started and have not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
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
    tail: Arc<Mutex<Tail>>,
    host: String,
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
            shared.lock().first_starts += 1;
            shared.wake.notify_all();
        }
        let spawned = match spawned {
            Ok(spawned) => {
                start_failures = 0;
                spawned
            }
            Err(cause) => {
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

/// Ends every queued attempt as lost, so that nothing waits forever on
/// workers that cannot start; the master retries or fails them.
fn fail_queue(shared: &Shared, cause: &str) {
    let mut state = shared.lock();
    let state = &mut *state;
    let lost: Vec<Dispatch> = state.queue.drain(..).chain(state.solo.drain(..)).collect();
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

fn spawn_worker(shared: &Shared, index: usize) -> Result<Spawned, String> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(&shared.exe);
    command
        .args([pymw_core::worker::ROLE_ARG, "serve"])
        .env("PYMW_WORKER_INDEX", index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C in the terminal reaches the master
        // only, which then stops the workers itself.
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it asks the kernel to kill the
    // worker when the thread that started it (its supervisor) ends, so a
    // master killed by SIGKILL leaves no worker behind.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", shared.exe.display()))?;
    let stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tail = Arc::new(Mutex::new(Tail::new(shared.config.stderr_tail_bytes)));
    let stderr_thread = {
        let tail = tail.clone();
        let forward = shared.config.forward_stderr;
        std::thread::Builder::new()
            .name(format!("pymw-local-{index}-stderr"))
            .spawn(move || copy_stderr(stderr, &tail, forward))
            .map_err(|e| format!("cannot start a thread: {e}"))?
    };
    let hello = match read_hello(&mut stdout) {
        Ok(hello) => hello,
        Err(e) => {
            let _ = child.kill();
            let status = child.wait().map(sys::describe_exit).unwrap_or_default();
            let _ = stderr_thread.join();
            let tail = tail.lock().map(|t| t.text()).unwrap_or_default();
            return Err(format!(
                "no handshake from the worker ({e}); it ended with {status}; stderr: {tail}"
            ));
        }
    };
    let ours = Registry::global().listing();
    if hello.format_version != wire::FORMAT_VERSION || hello.tasks != ours {
        let _ = child.kill();
        let _ = child.wait();
        return Err(
            "the worker executable holds other tasks than the master: it was rebuilt while the master ran".into(),
        );
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
        tail,
        host: hello.host,
    })
}

fn read_hello(stdout: &mut impl Read) -> Result<frame::Hello, String> {
    let mut head = [0u8; 12];
    stdout
        .read_exact(&mut head)
        .map_err(|e| format!("reading the hello: {e}"))?;
    if head[..8] != frame::HELLO_MAGIC {
        return Err(
            "the worker did not answer with a pymw hello: does main call pymw::init() first?"
                .into(),
        );
    }
    let len = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
    if len > 16 << 20 {
        return Err(format!("hello of {len} bytes is too large"));
    }
    let mut body = vec![0u8; len];
    stdout
        .read_exact(&mut body)
        .map_err(|e| format!("reading the hello: {e}"))?;
    frame::decode_hello(&body).map_err(|e| e.to_string())
}

/// Serves one worker process until it ends, then settles its in-flight work.
fn run_worker(shared: &Arc<Shared>, index: usize, spawned: Spawned) {
    let Spawned {
        mut child,
        stdin,
        mut stdout,
        stderr_thread,
        tail,
        host,
    } = spawned;
    let started = Instant::now();
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("pymw-local-{index}-writer"))
            .spawn(move || feed_worker(&shared, index, stdin))
            .expect("cannot start a writer thread")
    };
    let answered = read_replies(shared, index, &mut stdout, &tail, &host);
    // The worker is gone (or spoke garbage): make sure it is dead.
    {
        let mut state = shared.lock();
        state.workers[index].alive = false;
    }
    shared.wake.notify_all();
    let _ = child.kill();
    let status = child.wait();
    let _ = stderr_thread.join();
    let _ = writer.join();
    let stderr_tail = tail.lock().map(|t| t.text()).unwrap_or_default();
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
    worker.pid = None;
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
    tail: &Mutex<Tail>,
    host: &str,
) -> Result<(), String> {
    let limit = wire::max_message_bytes();
    let mut input = frame::FrameReader::new(1 << 18);
    let mut replies = Vec::new();
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
            replies.push((reply.key, outcome, stats));
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
            for (key, outcome, stats) in replies.drain(..) {
                match worker.in_flight.front() {
                    Some(front) if front.key == key => {
                        worker.in_flight.pop_front();
                    }
                    _ => return Err(format!("reply for attempt {key} out of order")),
                }
                total_ns += stats.wall_ns;
                let stderr_tail = if outcome.is_err() {
                    settled_tail(tail)
                } else {
                    String::new()
                };
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

/// The last bytes a worker wrote to stderr.
#[derive(Debug)]
struct Tail {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Bytes seen in all, to tell when the stream has gone quiet.
    total: u64,
}

/// The tail after the worker's stderr has gone quiet for a moment: a failing
/// task's last words (a panic message) travel on another pipe than its reply
/// and may arrive just after it. Failures are rare; waiting a few
/// milliseconds for them costs nothing on the hot path.
fn settled_tail(tail: &Mutex<Tail>) -> String {
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut seen = tail.lock().map(|t| t.total).unwrap_or(0);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(15) {
        std::thread::sleep(Duration::from_millis(2));
        let now = tail.lock().map(|t| t.total).unwrap_or(0);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    tail.lock().map(|t| t.text()).unwrap_or_default()
}

impl Tail {
    fn new(capacity: usize) -> Self {
        Tail {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
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

fn copy_stderr(mut stderr: impl Read, tail: &Mutex<Tail>, forward: bool) {
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut tail) = tail.lock() {
                    tail.push(&buf[..n]);
                }
                if forward {
                    let _ = std::io::stderr().write_all(&buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
