//! The registry of tasks a binary holds, filled by `#[pymw::task]` through
//! `inventory`, and the typed handle the master submits with.

use crate::layout::{LayoutError, layout_of};
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
    /// The task's fingerprint (see [`fingerprint`]): computed on first use,
    /// then kept.
    pub fingerprint: fn() -> u64,
    /// Whether the serde layouts of the argument and value types could be
    /// traced (see [`TaskEntry::layout_error`]).
    pub layout: fn() -> Result<(), &'static LayoutError>,
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
    /// Why the serde layout of the task's argument or value type could not
    /// be traced, if it could not: such a type (one that needs
    /// `deserialize_any`, such as `serde_json::Value` or an untagged enum)
    /// cannot be sent with postcard, and the task's fingerprint falls back to
    /// the type's Rust name. `None` for every task that can be sent.
    pub fn layout_error(&self) -> Option<&'static LayoutError> {
        (self.layout)().err()
    }

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

/// The fingerprint of a task: a hash over its name, its code identity and
/// the serde layouts of its argument type `A` and value type `R` (see
/// [`crate::layout`]), so that a worker built from other code refuses its
/// inputs, and a resumed run or the result cache never hands back a value
/// of other code. `code` is what `#[pymw::task]` makes of the function:
/// `tokens:` and a hash of the function as written (doc comments left out),
/// or `version:` and the `version = "..."` the user gave.
///
/// A type whose layout cannot be traced counts by its Rust name
/// (`std::any::type_name`) instead, marked as such; the error is kept in
/// [`Fingerprint::layout`].
pub fn fingerprint<A: DeserializeOwned, R: DeserializeOwned>(
    name: &str,
    code: &str,
) -> Fingerprint {
    let argument = layout_of::<A>();
    let value = layout_of::<R>();
    let part = |layout: &Result<crate::layout::Layout, LayoutError>, type_name: &str| match layout {
        Ok(layout) => format!("layout:{layout}"),
        Err(_) => format!("untraced:{type_name}"),
    };
    let hash = stable_hash(&[
        b"pymw-fingerprint-2",
        name.as_bytes(),
        code.as_bytes(),
        part(&argument, std::any::type_name::<A>()).as_bytes(),
        part(&value, std::any::type_name::<R>()).as_bytes(),
    ]);
    Fingerprint {
        value: hash,
        layout_error: argument.err().or(value.err()),
    }
}

/// A task's fingerprint, and why its types' layouts could not be traced if
/// they could not (the argument's error first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    value: u64,
    layout_error: Option<LayoutError>,
}

impl Fingerprint {
    /// The fingerprint.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// `Err` with why a layout could not be traced.
    pub fn layout(&self) -> Result<(), &LayoutError> {
        self.layout_error.as_ref().map_or(Ok(()), Err)
    }
}

/// Where `#[pymw::task]` keeps a task's [`Fingerprint`] (a `static`), so
/// that it is computed once per process.
#[derive(Debug)]
pub struct FingerprintCell(OnceLock<Fingerprint>);

impl FingerprintCell {
    /// An empty cell.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        FingerprintCell(OnceLock::new())
    }

    /// The fingerprint, computed by [`fingerprint`] on first use.
    pub fn get<A: DeserializeOwned, R: DeserializeOwned>(
        &'static self,
        name: &str,
        code: &str,
    ) -> &'static Fingerprint {
        self.0.get_or_init(|| fingerprint::<A, R>(name, code))
    }
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

    fn fp<A: DeserializeOwned, R: DeserializeOwned>() -> u64 {
        fingerprint::<A, R>("t", "tokens:0").value()
    }

    #[test]
    fn fingerprint_depends_on_name_code_and_types() {
        assert_ne!(fp::<u32, u32>(), fp::<u64, u32>());
        assert_ne!(fp::<u32, u32>(), fp::<u32, u64>());
        assert_ne!(
            fingerprint::<u32, u32>("t", "tokens:0"),
            fingerprint::<u32, u32>("u", "tokens:0")
        );
        assert_ne!(
            fingerprint::<u32, u32>("t", "tokens:0"),
            fingerprint::<u32, u32>("t", "tokens:1")
        );
        assert_ne!(
            fingerprint::<u32, u32>("t", "tokens:0"),
            fingerprint::<u32, u32>("t", "version:1")
        );
        assert_eq!(fp::<u32, u32>(), fp::<u32, u32>());
    }

    // The same type, as a user edits it: each version is in its own module
    // under the same name.
    #[allow(dead_code, unreachable_pub)]
    mod base {
        #[derive(serde::Deserialize)]
        pub struct Point {
            pub x: u32,
            pub y: u32,
        }
        #[derive(serde::Deserialize)]
        pub enum Shape {
            Dot(Point),
            Line { from: Point, to: Point },
        }
    }
    #[allow(dead_code, unreachable_pub)]
    mod field_added {
        #[derive(serde::Deserialize)]
        pub struct Point {
            pub x: u32,
            pub y: u32,
            pub z: u32,
        }
    }
    #[allow(dead_code, unreachable_pub)]
    mod fields_reordered {
        #[derive(serde::Deserialize)]
        pub struct Point {
            pub y: u32,
            pub x: u32,
        }
    }
    #[allow(dead_code, unreachable_pub)]
    mod field_widened {
        #[derive(serde::Deserialize)]
        pub struct Point {
            pub x: u64,
            pub y: u32,
        }
    }
    #[allow(dead_code, unreachable_pub)]
    mod variant_added {
        #[derive(serde::Deserialize)]
        pub enum Shape {
            Dot(super::base::Point),
            Line {
                from: super::base::Point,
                to: super::base::Point,
            },
            Circle(super::base::Point, f64),
        }
    }
    #[allow(dead_code, unreachable_pub)]
    mod renamed {
        // `Point` renamed `Position`, `Shape` renamed `Figure`: the same
        // bytes.
        #[derive(serde::Deserialize)]
        pub struct Position {
            pub x: u32,
            pub y: u32,
        }
        #[derive(serde::Deserialize)]
        pub enum Figure {
            Dot(Position),
            Line { from: Position, to: Position },
        }
    }

    #[test]
    fn fingerprint_changes_with_the_layout() {
        let point = fp::<base::Point, ()>();
        assert_ne!(point, fp::<field_added::Point, ()>(), "a field added");
        assert_ne!(
            point,
            fp::<fields_reordered::Point, ()>(),
            "fields reordered"
        );
        assert_ne!(point, fp::<field_widened::Point, ()>(), "u32 to u64");
        assert_ne!(
            fp::<(), base::Shape>(),
            fp::<(), variant_added::Shape>(),
            "a variant added"
        );
        assert_ne!(fp::<base::Point, ()>(), fp::<(), base::Point>());
    }

    #[test]
    fn renaming_a_type_alone_keeps_the_fingerprint() {
        assert_eq!(fp::<base::Point, ()>(), fp::<renamed::Position, ()>());
        assert_eq!(
            fp::<Vec<base::Shape>, ()>(),
            fp::<Vec<renamed::Figure>, ()>()
        );
    }

    #[test]
    fn recursive_types_have_a_fingerprint() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Tree {
            value: u32,
            children: Vec<Tree>,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        enum List {
            Cons(u32, Box<List>),
            Nil,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        enum Expr {
            Add(Box<Expr>, Box<Expr>),
            Neg(Box<Expr>),
            Lit(i64),
            Let {
                name: String,
                value: Box<Expr>,
                body: Option<Box<Expr>>,
            },
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Chain {
            next: Option<Box<Chain>>,
        }
        for (layout, expected) in [
            (
                layout_of::<Tree>(),
                "#0=struct{5:value:u32,8:children:seq(@0)}",
            ),
            (
                layout_of::<List>(),
                "#0=enum{0=4:Cons:tuple(u32,@0),1=3:Nil:unit}",
            ),
            (
                layout_of::<Expr>(),
                "#0=enum{0=3:Add:tuple(2*@0),1=3:Neg:newtype(@0),2=3:Lit:newtype(i64),3=3:Let:struct{4:name:str,5:value:@0,4:body:option(@0)}}",
            ),
            (layout_of::<Chain>(), "#0=struct{4:next:option(@0)}"),
        ] {
            assert_eq!(layout.unwrap().as_str(), expected);
        }
        assert_ne!(fp::<Tree, ()>(), fp::<List, ()>());
    }

    #[test]
    fn an_untraceable_type_falls_back_to_its_name_and_says_why() {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Loose {
            N(u32),
            S(String),
        }
        let traced = fingerprint::<u32, Loose>("t", "tokens:0");
        let error = traced.layout().unwrap_err();
        assert!(error.type_name().ends_with("Loose"), "{error}");
        assert_eq!(traced, fingerprint::<u32, Loose>("t", "tokens:0"));
        assert_ne!(traced.value(), fp::<u32, u32>());
        assert!(fingerprint::<u32, u32>("t", "tokens:0").layout().is_ok());
    }

    static CELL: FingerprintCell = FingerprintCell::new();

    #[test]
    fn the_cell_computes_once() {
        let first = CELL.get::<u8, u8>("t", "tokens:0");
        let again = CELL.get::<u8, u8>("t", "tokens:0");
        assert!(std::ptr::eq(first, again));
        assert_eq!(first.value(), fp::<u8, u8>());
    }

    static A: TaskEntry = TaskEntry {
        name: "m::a",
        function: "m::a",
        fingerprint: || 1,
        layout: || Ok(()),
        invoke: |_, _| Ok(()),
        validate: None,
    };
    static B: TaskEntry = TaskEntry {
        name: "m::b",
        function: "m::b",
        fingerprint: || 2,
        layout: || Ok(()),
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
            layout: || Ok(()),
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
