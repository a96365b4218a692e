//! A blocking facade over the async master, for plain `main`s: it owns a
//! small tokio runtime and blocks on it.

use crate::backend::Backend;
use crate::error::{Error, TaskError};
use crate::master::{self, MasterConfig, StatusCounts, TaskId, TaskOptions};
use crate::registry::Task;
use serde::{Serialize, de::DeserializeOwned};

/// The blocking master. Dropping it stops the backend and its workers.
#[derive(Debug)]
pub struct Master {
    // Field order matters: the async master is dropped before the runtime
    // that drives it.
    inner: master::Master,
    runtime: tokio::runtime::Runtime,
}

impl Master {
    /// Starts a master on `backend` with default settings.
    pub fn start(backend: impl Backend) -> Result<Master, Error> {
        Master::start_with(Box::new(backend), MasterConfig::default())
    }

    /// Starts a master on `backend` with `config`.
    ///
    /// Refused with [`Error::InsideRuntime`] inside a tokio runtime (in
    /// async code, use the async [`master::Master`]).
    pub fn start_with(backend: Box<dyn Backend>, config: MasterConfig) -> Result<Master, Error> {
        if !crate::worker::is_initialized() {
            return Err(Error::NotInitialized);
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pymw-master")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let inner = {
            let _guard = runtime.enter();
            master::Master::start_with(backend, config)?
        };
        Ok(Master { inner, runtime })
    }

    /// The async master inside, for code that mixes both.
    pub fn as_async(&self) -> &master::Master {
        &self.inner
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    /// How many tasks are where.
    pub fn status(&self) -> StatusCounts {
        self.inner.status()
    }

    /// Submits one task.
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
        TaskHandle {
            inner: self.inner.submit_with(task, args, options),
            runtime: self.runtime.handle().clone(),
        }
    }

    /// Runs `task` over `inputs`, streaming, results in input order; see
    /// [`master::Master::map`].
    pub fn map<A, R, I>(&self, task: Task<A, R>, inputs: I) -> Map<A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        Map {
            inner: self.inner.map(task, inputs),
            runtime: self.runtime.handle().clone(),
        }
    }

    /// An empty set of tasks whose results are taken as they finish.
    pub fn task_set<R: DeserializeOwned>(&self) -> TaskSet<R> {
        TaskSet {
            inner: master::TaskSet::new(&self.inner),
            runtime: self.runtime.handle().clone(),
        }
    }

    /// Cancels tasks.
    pub fn cancel(&self, ids: impl IntoIterator<Item = TaskId>) {
        self.inner.cancel(ids);
    }
}

/// A submitted task; [`TaskHandle::wait`] blocks for its value.
#[derive(Debug)]
pub struct TaskHandle<R> {
    inner: master::TaskHandle<R>,
    runtime: tokio::runtime::Handle,
}

impl<R: DeserializeOwned> TaskHandle<R> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.inner.id()
    }

    /// Cancels the task.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Blocks until the task finishes.
    pub fn wait(self) -> Result<R, TaskError> {
        self.runtime.block_on(self.inner)
    }
}

/// A blocking [`master::TaskSet`].
#[derive(Debug)]
pub struct TaskSet<R> {
    inner: master::TaskSet<R>,
    runtime: tokio::runtime::Handle,
}

impl<R: DeserializeOwned> TaskSet<R> {
    /// Submits a task into the set.
    pub fn submit<A: Serialize + DeserializeOwned>(&mut self, task: Task<A, R>, args: A) -> TaskId {
        self.inner.submit(task, args)
    }

    /// Submits a task into the set with its own options.
    pub fn submit_with<A: Serialize + DeserializeOwned>(
        &mut self,
        task: Task<A, R>,
        args: A,
        options: TaskOptions,
    ) -> TaskId {
        self.inner.submit_with(task, args, options)
    }

    /// How many results have not been taken yet.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether every result has been taken.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Blocks for the next task to finish; `None` when the set is empty.
    pub fn next_finished(&mut self) -> Option<(TaskId, Result<R, TaskError>)> {
        self.runtime.block_on(self.inner.next_finished())
    }

    /// Cancels every task of the set that has not finished.
    pub fn cancel_all(&self) {
        self.inner.cancel_all();
    }
}

/// A blocking streaming map: an iterator of results.
#[derive(Debug)]
pub struct Map<A, R, I> {
    inner: master::Map<A, R, I>,
    runtime: tokio::runtime::Handle,
}

impl<A, R, I> Map<A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    /// Results as tasks finish; see [`master::Map::unordered`].
    pub fn unordered(self) -> Self {
        Map {
            inner: self.inner.unordered(),
            runtime: self.runtime,
        }
    }

    /// At most `window` tasks in flight.
    pub fn window(self, window: usize) -> Self {
        Map {
            inner: self.inner.window(window),
            runtime: self.runtime,
        }
    }

    /// Options for every task of the map.
    pub fn options(self, options: TaskOptions) -> Self {
        Map {
            inner: self.inner.options(options),
            runtime: self.runtime,
        }
    }

    /// Turns progress output on or off.
    pub fn progress(self, on: bool) -> Self {
        Map {
            inner: self.inner.progress(on),
            runtime: self.runtime,
        }
    }

    /// Blocks for the next result with its input's position.
    pub fn next_indexed(&mut self) -> Option<(u64, Result<R, TaskError>)> {
        // Most results are already waiting: skip the runtime when they are.
        if let Some(item) = self.inner.take_ready() {
            return Some(item);
        }
        self.runtime.block_on(self.inner.next_indexed())
    }

    /// Collects every value, or the first error.
    pub fn collect_values(self) -> Result<Vec<R>, TaskError> {
        self.collect()
    }
}

impl<A, R, I> Iterator for Map<A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_indexed().map(|(_, result)| result)
    }
}
