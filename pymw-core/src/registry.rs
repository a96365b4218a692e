//! The registry of tasks a binary holds, filled by `#[pymw::task]` through
//! `inventory`, and the typed handle the master submits with.

use crate::wire::Failure;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

/// One registered task. Built by `#[pymw::task]`; not meant to be written by hand.
pub struct TaskEntry {
    /// The task's name: `module_path!()::function` unless renamed.
    pub name: &'static str,
    /// The function's path, `module_path!()::function`, for messages.
    pub function: &'static str,
    /// Computes the fingerprint (a hash over the name and the argument and
    /// return types). A function because `type_name` is not `const`.
    pub fingerprint: fn() -> u64,
    /// Decodes the arguments from `input`, runs the task and appends the
    /// encoded value to `output`.
    pub invoke: fn(input: &[u8], output: &mut Vec<u8>) -> Result<(), Failure>,
    /// Decides whether two replicas' values (encoded) agree, with the
    /// function named by `#[pymw::task(validate = ...)]`; `None` compares
    /// the encoded bytes (right for deterministic tasks).
    pub validate: Option<ValidateFn>,
}

/// Decides whether two replicas' encoded values agree, or says why one is
/// malformed.
pub type ValidateFn = fn(a: &[u8], b: &[u8]) -> Result<bool, String>;

impl TaskEntry {
    /// Whether two replicas of this task's value agree: the task's validator
    /// if it has one, else bitwise equality. Either value failing to decode
    /// is an error (a malformed replica), never a panic.
    pub fn replicas_agree(&self, a: &[u8], b: &[u8]) -> Result<bool, String> {
        match self.validate {
            Some(validate) => validate(a, b),
            None => Ok(a == b),
        }
    }
}

/// What `#[pymw::task]` submits to `inventory`: a reference to the task's
/// entry, which also backs its typed handle.
#[derive(Debug)]
pub struct Registration(pub &'static TaskEntry);

inventory::collect!(Registration);

impl fmt::Debug for TaskEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskEntry")
            .field("name", &self.name)
            .field(
                "fingerprint",
                &format_args!("{:016x}", (self.fingerprint)()),
            )
            .finish()
    }
}

/// A typed handle to a registered task, made by `#[pymw::task]` as
/// `function_name::task()`. `A` is the argument (a tuple for several), `R`
/// the value the master gets back: submitting other argument types or reading
/// another type does not compile.
pub struct Task<A, R> {
    entry: &'static TaskEntry,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for Task<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A, R> Copy for Task<A, R> {}

impl<A, R> fmt::Debug for Task<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Task({})", self.entry.name)
    }
}

impl<A, R> Task<A, R> {
    // Unbounded, so that a non-serializable argument is reported once, at
    // the argument (by `assert_argument`), not again at the attribute.
    #[doc(hidden)]
    pub const fn __new(entry: &'static TaskEntry) -> Self {
        Task {
            entry,
            _types: PhantomData,
        }
    }
}

impl<A: Serialize, R: DeserializeOwned> Task<A, R> {
    /// The task's registered name.
    pub fn name(&self) -> &'static str {
        self.entry.name
    }

    /// The registry entry behind this handle.
    pub fn entry(&self) -> &'static TaskEntry {
        self.entry
    }

    /// An input envelope for running this task on `args` with
    /// `BIN __pymw worker --task NAME --input FILE ...`: for tests, tools,
    /// and re-running a task by hand.
    ///
    /// # Panics
    ///
    /// If `args` cannot be encoded, with the message of
    /// [`Task::try_input_envelope`], which returns it instead.
    pub fn input_envelope(&self, args: &A) -> Vec<u8> {
        self.try_input_envelope(args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`Task::input_envelope`], or [`crate::TaskError::InvalidArgument`]
    /// when `args`' `Serialize` fails or postcard cannot write it.
    pub fn try_input_envelope(&self, args: &A) -> Result<Vec<u8>, crate::TaskError> {
        let payload = crate::wire::try_encode_payload(args).map_err(|why| {
            crate::TaskError::InvalidArgument {
                task: self.entry.name,
                message: format!(
                    "its argument (`{}`) cannot be encoded: {why}",
                    std::any::type_name::<A>()
                ),
            }
        })?;
        let mut bytes = Vec::new();
        crate::wire::encode_input(
            &crate::wire::InputBody {
                task: self.entry.name,
                fingerprint: (self.entry.fingerprint)(),
                payload: &payload,
            },
            &mut bytes,
        );
        Ok(bytes)
    }
}

/// A stable 64-bit FNV-1a hash: the same on every platform and build, unlike
/// `std`'s `DefaultHasher`, so master and worker agree.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate the parts so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The fingerprint of a task: its name, argument type and value type.
pub fn fingerprint<A, R>(name: &str) -> u64 {
    stable_hash(&[
        name.as_bytes(),
        std::any::type_name::<A>().as_bytes(),
        std::any::type_name::<R>().as_bytes(),
    ])
}

/// Two tasks registered under one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "two tasks are registered as `{name}`: `{first}` and `{second}`; give one of them another name with #[pymw::task(name = \"...\")]"
)]
pub struct DuplicateTask {
    /// The name both tasks have.
    pub name: String,
    /// One function registered under it.
    pub first: String,
    /// The other.
    pub second: String,
}

/// The tasks of this binary, sorted by name, looked up by name.
#[derive(Debug)]
pub struct Registry {
    sorted: Vec<&'static TaskEntry>,
    by_name: HashMap<&'static str, usize>,
}

impl Registry {
    /// The registry of this binary, built on first use.
    ///
    /// # Panics
    ///
    /// Never: a duplicate name is reported by [`Registry::check`], which
    /// `pymw::init()` calls first.
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            Registry::from_entries(inventory::iter::<Registration>.into_iter().map(|r| r.0)).0
        })
    }

    /// Fails if two registered tasks share a name, naming it.
    pub fn check() -> Result<(), DuplicateTask> {
        match Registry::from_entries(inventory::iter::<Registration>.into_iter().map(|r| r.0)).1 {
            Some(duplicate) => Err(duplicate),
            None => Ok(()),
        }
    }

    fn from_entries(
        entries: impl Iterator<Item = &'static TaskEntry>,
    ) -> (Registry, Option<DuplicateTask>) {
        let mut sorted: Vec<&'static TaskEntry> = entries.collect();
        // By name, then function, so that the report is the same every run.
        sorted.sort_by_key(|entry| (entry.name, entry.function));
        let duplicate = sorted
            .windows(2)
            .find(|pair| pair[0].name == pair[1].name)
            .map(|pair| DuplicateTask {
                name: pair[0].name.to_owned(),
                first: pair[0].function.to_owned(),
                second: pair[1].function.to_owned(),
            });
        let by_name = sorted
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name, i))
            .collect();
        (Registry { sorted, by_name }, duplicate)
    }

    /// Every task, sorted by name.
    pub fn tasks(&self) -> &[&'static TaskEntry] {
        &self.sorted
    }

    /// The task of that name.
    pub fn get(&self, name: &str) -> Option<&'static TaskEntry> {
        self.index_of(name).map(|i| self.sorted[i])
    }

    /// The position of the task of that name in [`Registry::tasks`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Names and fingerprints of every task, sorted, as `__pymw list` prints them.
    pub fn listing(&self) -> Vec<(String, u64)> {
        self.sorted
            .iter()
            .map(|e| (e.name.to_owned(), (e.fingerprint)()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_separates_parts() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hash(&[b"x"]), stable_hash(&[b"x"]));
    }

    #[test]
    fn fingerprint_depends_on_types() {
        assert_ne!(fingerprint::<u32, u32>("t"), fingerprint::<u64, u32>("t"));
        assert_ne!(fingerprint::<u32, u32>("t"), fingerprint::<u32, u32>("u"));
    }

    static A: TaskEntry = TaskEntry {
        name: "m::a",
        function: "m::a",
        fingerprint: || 1,
        invoke: |_, _| Ok(()),
        validate: None,
    };
    static B: TaskEntry = TaskEntry {
        name: "m::b",
        function: "m::b",
        fingerprint: || 2,
        invoke: |_, _| Ok(()),
        validate: None,
    };

    #[test]
    fn duplicates_are_found_and_listing_is_sorted() {
        let (registry, duplicate) = Registry::from_entries([&B, &A].into_iter());
        assert_eq!(duplicate, None);
        assert_eq!(
            registry.listing(),
            vec![("m::a".into(), 1), ("m::b".into(), 2)]
        );
        static A2: TaskEntry = TaskEntry {
            name: "m::a",
            function: "other::f",
            fingerprint: || 3,
            invoke: |_, _| Ok(()),
            validate: None,
        };
        let (_, duplicate) = Registry::from_entries([&A, &B, &A2].into_iter());
        let duplicate = duplicate.unwrap();
        assert_eq!(
            (duplicate.first.as_str(), duplicate.second.as_str()),
            ("m::a", "other::f")
        );
        assert!(duplicate.to_string().contains("`m::a` and `other::f`"));
    }
}
