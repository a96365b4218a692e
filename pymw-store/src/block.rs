//! Task blocks: many finished tasks in one row.
//!
//! A run of tiny tasks finishes hundreds of thousands of tasks a second; one
//! SQLite row per task costs about a microsecond of the writer's time, as much
//! as the master spends on the task itself. So tasks that finished with a
//! small value on their first attempt, many in the same commit, are packed
//! into one `task_blocks` row: a postcard-encoded `Vec<BlockTask>` (see
//! `SCHEMA.md`), about 60 bytes and 0.1 µs per task. Everything else
//! (failures, retries, running tasks, large values, slow runs) is a row.

use serde::{Deserialize, Serialize, Serializer};

/// Tasks in one commit that make it a block rather than rows.
pub(crate) const BLOCK_MIN: usize = 64;

/// Most tasks in one block: about 60 KiB, so that SQLite's copy of the blob
/// stays below the size at which glibc's `free` consolidates its heap (64
/// KiB), which would cost more than encoding the tasks.
pub(crate) const BLOCK_MAX: usize = 900;

/// Largest value kept in a block (larger ones are rows).
pub(crate) const BLOCK_VALUE_MAX: usize = 1024;

/// One task of a block: finished with a value on attempt 0. Times are
/// nanoseconds relative to the block's `base_ns` (signed: zigzag varints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockTask<'a> {
    pub(crate) identity: [u8; 16],
    pub(crate) kind: u32,
    pub(crate) position: u64,
    pub(crate) input_hash: [u8; 16],
    pub(crate) submitted: i64,
    pub(crate) started: i64,
    pub(crate) finished: i64,
    pub(crate) wall_ns: u64,
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) peak_rss_kib: u64,
    #[serde(borrow)]
    pub(crate) host: &'a str,
    #[serde(borrow)]
    pub(crate) job_id: Option<&'a str>,
    pub(crate) cached: bool,
    #[serde(borrow, serialize_with = "as_bytes")]
    pub(crate) value: &'a [u8],
}

fn as_bytes<S: Serializer>(value: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(value)
}

/// Encodes a block's tasks.
#[cfg(test)]
fn encode(tasks: &[BlockTask<'_>]) -> Vec<u8> {
    postcard::to_extend(tasks, Vec::new()).expect("writing to a Vec cannot fail")
}

/// Decodes a block's tasks, borrowing strings and values from `data`.
pub(crate) fn decode(data: &[u8]) -> Result<Vec<BlockTask<'_>>, postcard::Error> {
    postcard::from_bytes(data)
}

/// Room for the varint count at the start of a block's bytes.
const COUNT_ROOM: usize = 10;

/// A block being filled, one encoded task at a time (the writer encodes each
/// task when it finishes, so it keeps no per-task state until the commit).
/// Its buffer is reused from commit to commit.
#[derive(Debug)]
pub(crate) struct Builder {
    /// `COUNT_ROOM` bytes for the count, then the encoded tasks.
    data: Vec<u8>,
    pub(crate) count: usize,
    pub(crate) base_ns: u64,
    pub(crate) first_finished_ns: u64,
    pub(crate) last_finished_ns: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            data: vec![0; COUNT_ROOM],
            count: 0,
            base_ns: 0,
            first_finished_ns: 0,
            last_finished_ns: 0,
        }
    }
}

impl Builder {
    /// Adds a task; `submitted`, `started` and `finished` are absolute and
    /// stored relative to the block's base.
    pub(crate) fn push(
        &mut self,
        task: &mut BlockTask<'_>,
        submitted: u64,
        started: u64,
        finished: u64,
    ) {
        if self.count == 0 {
            self.base_ns = submitted;
            self.first_finished_ns = finished;
            self.last_finished_ns = finished;
        }
        self.first_finished_ns = self.first_finished_ns.min(finished);
        self.last_finished_ns = self.last_finished_ns.max(finished);
        let base = self.base_ns as i64;
        task.submitted = submitted as i64 - base;
        task.started = started as i64 - base;
        task.finished = finished as i64 - base;
        self.data = postcard::to_extend(task, std::mem::take(&mut self.data))
            .expect("writing to a Vec cannot fail");
        self.count += 1;
    }

    /// The block's bytes: the count, then the tasks (= a postcard
    /// `Vec<BlockTask>`). Writes the count into the room kept for it.
    pub(crate) fn bytes(&mut self) -> &[u8] {
        let mut count = [0u8; COUNT_ROOM];
        let used = postcard::to_slice(&self.count, &mut count)
            .expect("a varint fits 10 bytes")
            .len();
        let start = COUNT_ROOM - used;
        self.data[start..COUNT_ROOM].copy_from_slice(&count[..used]);
        &self.data[start..]
    }

    /// Empties it, keeping its buffer.
    pub(crate) fn clear(&mut self) {
        self.data.truncate(COUNT_ROOM);
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_matches_vec_encoding() {
        let mut builder = Builder::default();
        let mut task = BlockTask {
            identity: [1; 16],
            kind: 1,
            position: 7,
            input_hash: [2; 16],
            submitted: 0,
            started: 0,
            finished: 0,
            wall_ns: 10,
            cpu_ns: None,
            peak_rss_kib: 3000,
            host: "",
            job_id: None,
            cached: false,
            value: &[1, 2, 3],
        };
        builder.push(&mut task.clone(), 1000, 1010, 1020);
        builder.push(&mut task, 900, 1100, 1200);
        let bytes = builder.bytes().to_vec();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(
            (
                decoded[1].submitted,
                decoded[1].started,
                decoded[1].finished
            ),
            (-100, 100, 200)
        );
        assert_eq!(
            (builder.first_finished_ns, builder.last_finished_ns),
            (1020, 1200)
        );
        task.submitted = -100;
        task.started = 100;
        task.finished = 200;
        assert_eq!(decoded[1], task);
        builder.clear();
        assert_eq!(decode(builder.bytes()).unwrap(), vec![]);
    }

    #[test]
    fn round_trip() {
        let tasks = vec![
            BlockTask {
                identity: [1; 16],
                kind: 1,
                position: 7,
                input_hash: [2; 16],
                submitted: 0,
                started: 10,
                finished: 20,
                wall_ns: 10,
                cpu_ns: None,
                peak_rss_kib: 3000,
                host: "",
                job_id: None,
                cached: false,
                value: &[1, 2, 3],
            },
            BlockTask {
                identity: [3; 16],
                kind: 2,
                position: 8,
                input_hash: [4; 16],
                submitted: -5,
                started: 15,
                finished: 25,
                wall_ns: 10,
                cpu_ns: Some(9),
                peak_rss_kib: 3000,
                host: "node1",
                job_id: Some("12.0"),
                cached: true,
                value: &[],
            },
        ];
        let bytes = encode(&tasks);
        assert_eq!(decode(&bytes).unwrap(), tasks);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
