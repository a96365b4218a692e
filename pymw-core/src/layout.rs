//! The serde *layout* of a type: what its bytes look like on the wire, as a
//! canonical description that a task's fingerprint hashes.
//!
//! The layout is traced through the type's `Deserialize` implementation,
//! the way postcard decodes it (not human-readable, structs as sequences of
//! their fields, enum variants by index), so a user writes no extra derive.
//! It covers field names, order and types, enum variants (their index, name
//! and contents), sequences, maps, options, tuples, fixed-size arrays and
//! the width of every primitive. Named types are written structurally, not
//! by name: renaming a type alone keeps its layout, while any change that
//! could make old bytes decode wrongly changes it. A named type met again
//! (a recursive type, such as a tree, or one used twice) is a back-reference
//! to its first occurrence (`@N`, numbered in order of first occurrence), so
//! the description is finite and canonical. Field and variant names count
//! too (renaming a field changes the layout, though not the bytes): the
//! description errs on the side of a new identity. Fields skipped by serde
//! are not on the wire and do not count. A hand-written `Deserialize` is
//! traced as far as it reads, with values `1`, `0.0`, `false`, `'A'` and
//! empty strings.
//!
//! Some types cannot be traced: those whose `Deserialize` asks the format
//! what comes next (`deserialize_any`: `serde_json::Value`,
//! `#[serde(untagged)]` and internally tagged enums, `#[serde(flatten)]`),
//! those that reject the values the tracer offers, and two different types
//! that share a serde name within one type. [`layout_of`] reports them as a
//! [`LayoutError`], never a panic; a task's fingerprint then falls back to
//! the type's Rust name (see [`crate::registry::fingerprint`]). Types that
//! need `deserialize_any` cannot be sent with postcard at all.
//!
//! Why not a crate: `postcard-schema` needs a derive on every type, and
//! `serde-reflection` (which traces through `Deserialize`, as here) only
//! reaches the variants of an enum inside a sequence, option or map when
//! that enum is traced by itself, by its type, which generic code holding
//! only the task's argument type cannot do.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// The canonical description of a type's serde layout (see the module
/// documentation), made by [`layout_of`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout(String);

impl Layout {
    /// The description as text, e.g. `#0=struct{1:x:u32,1:y:seq(f64)}`
    /// (names are prefixed by their length in bytes).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the serde layout of a type could not be traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError {
    type_name: &'static str,
    reason: String,
    self_describing: bool,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the serde layout of `{}` cannot be traced: {}",
            self.type_name, self.reason
        )?;
        if self.self_describing {
            f.write_str(
                "; such a type (like `serde_json::Value`, `#[serde(untagged)]` or internally tagged enums, `#[serde(flatten)]`) needs a self-describing format and cannot be sent with postcard: send a plain struct or enum, or its JSON text as a `String`",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LayoutError {}

impl LayoutError {
    /// The Rust name of the type that could not be traced.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// What the tracer ran into, e.g. `it needs deserialize_any`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether the type needs a self-describing format: its `Deserialize`
    /// asks the format what comes next (`deserialize_any`,
    /// `deserialize_ignored_any`, or an identifier outside an enum), which
    /// postcard cannot answer, so postcard cannot carry it. `false` for
    /// the other errors (two types sharing a serde name, a `Deserialize`
    /// that rejects the traced values, nesting too deep): postcard may well
    /// carry those types; only their layout is unknown.
    pub fn needs_self_describing_format(&self) -> bool {
        self.self_describing
    }
}

/// How many times one trace goes over the type to reach every enum variant.
const MAX_PASSES: usize = 10_000;
/// How deep types may nest (named ones, options, sequences, tuples, maps):
/// deeper is an error, not a stack overflow.
const MAX_DEPTH: usize = 256;

/// Traces the serde layout of `T`.
///
/// Deterministic: the same type gives the same [`Layout`] in every build
/// and on every platform.
pub fn layout_of<T: DeserializeOwned>() -> Result<Layout, LayoutError> {
    let mut tracer = Tracer::default();
    let error = |reason: String, self_describing: bool| LayoutError {
        type_name: std::any::type_name::<T>(),
        reason,
        self_describing,
    };
    let mut root = Node::Unknown;
    let mut done = false;
    for _ in 0..MAX_PASSES {
        tracer.unfinished = 0;
        let mut node = Node::Unknown;
        if let Err(e) = T::deserialize(De {
            t: &mut tracer,
            out: &mut node,
        }) {
            return Err(error(e.0, tracer.self_describing));
        }
        root = node;
        if tracer.unfinished == 0 {
            done = true;
            break;
        }
    }
    if !done {
        return Err(error(
            format!("its enums were not all traced after {MAX_PASSES} passes"),
            false,
        ));
    }
    for (name, container) in &tracer.containers {
        if let Container::Enum(e) = container
            && let Some(i) = e.traced.iter().position(Option::is_none)
        {
            return Err(error(
                format!(
                    "the variant `{}` of `{name}` could not be reached",
                    e.variants[i]
                ),
                false,
            ));
        }
    }
    let mut writer = Writer {
        containers: &tracer.containers,
        numbers: HashMap::new(),
        out: String::new(),
    };
    writer.node(&root);
    Ok(Layout(writer.out))
}

/// What the tracer learned of a part of a type.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Not reached.
    Unknown,
    Primitive(&'static str),
    Option(Box<Node>),
    Seq(Box<Node>),
    Map(Box<Node>, Box<Node>),
    Tuple(Vec<Node>),
    /// A named type (struct or enum), described in [`Tracer::containers`].
    Named(&'static str),
}

type Fields = Vec<(&'static str, Node)>;

#[derive(Debug, Clone, PartialEq)]
enum Container {
    UnitStruct,
    Newtype(Node),
    TupleStruct(Vec<Node>),
    Struct(Fields),
    Enum(Enum),
}

#[derive(Debug, Clone, PartialEq)]
struct Enum {
    variants: &'static [&'static str],
    traced: Vec<Option<Variant>>,
    /// Whether the variant's last trace met an enum not traced completely.
    open: Vec<bool>,
    /// Whether the variant's trace met no recursion (a way out of one).
    closed: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
enum Variant {
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Fields),
}

/// A part traced twice must be the same (else two types share a name);
/// an unknown part takes what the other trace found.
fn unify(old: &mut Node, new: Node) -> Result<(), String> {
    match (&mut *old, new) {
        (_, Node::Unknown) => Ok(()),
        (Node::Unknown, new) => {
            *old = new;
            Ok(())
        }
        (Node::Option(a), Node::Option(b)) | (Node::Seq(a), Node::Seq(b)) => unify(a, *b),
        (Node::Map(k, v), Node::Map(k2, v2)) => {
            unify(k, *k2)?;
            unify(v, *v2)
        }
        (Node::Tuple(a), Node::Tuple(b)) if a.len() == b.len() => unify_all(a, b),
        (old, new) if *old == new => Ok(()),
        (old, new) => Err(format!(
            "one part traced as {old:?} and as {new:?}: two types share a serde name"
        )),
    }
}

fn unify_all(old: &mut [Node], new: Vec<Node>) -> Result<(), String> {
    if old.len() != new.len() {
        return Err("two types with one serde name have different lengths".into());
    }
    old.iter_mut().zip(new).try_for_each(|(o, n)| unify(o, n))
}

fn unify_fields(old: &mut Fields, new: Fields) -> Result<(), String> {
    if old.len() != new.len() || old.iter().zip(&new).any(|((a, _), (b, _))| a != b) {
        return Err("two types with one serde name have different fields".into());
    }
    old.iter_mut()
        .zip(new)
        .try_for_each(|((_, o), (_, n))| unify(o, n))
}

fn unify_variant(old: &mut Variant, new: Variant) -> Result<(), String> {
    match (old, new) {
        (Variant::Unit, Variant::Unit) => Ok(()),
        (Variant::Newtype(a), Variant::Newtype(b)) => unify(a, b),
        (Variant::Tuple(a), Variant::Tuple(b)) => unify_all(a, b),
        (Variant::Struct(a), Variant::Struct(b)) => unify_fields(a, b),
        _ => Err("a variant traced two ways: two enums share a serde name".into()),
    }
}

fn unify_container(old: &mut Container, new: Container) -> Result<(), String> {
    match (old, new) {
        (Container::UnitStruct, Container::UnitStruct) => Ok(()),
        (Container::Newtype(a), Container::Newtype(b)) => unify(a, b),
        (Container::TupleStruct(a), Container::TupleStruct(b)) => unify_all(a, b),
        (Container::Struct(a), Container::Struct(b)) => unify_fields(a, b),
        _ => Err("two types share a serde name".into()),
    }
}

#[derive(Debug, Default)]
struct Tracer {
    containers: HashMap<&'static str, Container>,
    /// The named types being traced, outermost first.
    stack: Vec<&'static str>,
    /// Inside how many recursive occurrences: there, nothing is recorded,
    /// sequences are empty and options `None`, so that the value ends.
    cutting: usize,
    /// How many recursive occurrences were met (ever).
    cuts: usize,
    /// How many enum visits of this pass left variants untraced.
    unfinished: usize,
    /// How deep the value being traced is now.
    depth: usize,
    /// Whether the type asked what comes next (`deserialize_any`).
    self_describing: bool,
}

impl Tracer {
    /// Enters the named type `name`; whether it is a recursive occurrence.
    fn enter(&mut self, name: &'static str) -> Result<bool, Error> {
        self.descend()?;
        let recursive = self.stack.contains(&name);
        self.stack.push(name);
        if recursive {
            self.cutting += 1;
            self.cuts += 1;
        }
        Ok(recursive)
    }

    fn leave(&mut self, recursive: bool) {
        self.ascend();
        self.stack.pop();
        if recursive {
            self.cutting -= 1;
        }
    }

    fn descend(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error(format!(
                "it nests more than {MAX_DEPTH} deep (at `{}`)",
                self.stack.last().unwrap_or(&"?")
            )));
        }
        Ok(())
    }

    fn ascend(&mut self) {
        self.depth -= 1;
    }

    fn record(&mut self, name: &'static str, container: Container) -> Result<(), Error> {
        if self.cutting > 0 {
            return Ok(());
        }
        match self.containers.get_mut(name) {
            Some(old) => {
                unify_container(old, container).map_err(|e| Error(format!("at `{name}`: {e}")))
            }
            None => {
                self.containers.insert(name, container);
                Ok(())
            }
        }
    }
}

/// A tracing error (a message).
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(format!("its Deserialize rejected the traced value: {msg}"))
    }
}

/// Deserializes one value, recording its layout in `out`.
struct De<'a> {
    t: &'a mut Tracer,
    out: &'a mut Node,
}

/// The fields of a struct or tuple, or one element of a sequence.
struct Elements<'a> {
    t: &'a mut Tracer,
    left: usize,
    nodes: Vec<Node>,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut node = Node::Unknown;
        let value = seed.deserialize(De {
            t: self.t,
            out: &mut node,
        })?;
        self.nodes.push(node);
        Ok(Some(value))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// One entry of a map.
struct Entries<'a> {
    t: &'a mut Tracer,
    left: bool,
    key: Node,
    value: Node,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if !self.left {
            return Ok(None);
        }
        self.left = false;
        seed.deserialize(De {
            t: self.t,
            out: &mut self.key,
        })
        .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(De {
            t: self.t,
            out: &mut self.value,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(usize::from(self.left))
    }
}

/// The variant chosen for an enum.
struct Choice<'a> {
    t: &'a mut Tracer,
    index: u32,
    out: &'a mut Option<Variant>,
}

impl<'de, 'a> EnumAccess<'de> for Choice<'a> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let index: de::value::U32Deserializer<Error> = self.index.into_deserializer();
        Ok((seed.deserialize(index)?, self))
    }
}

impl<'de> VariantAccess<'de> for Choice<'_> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        *self.out = Some(Variant::Unit);
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let mut node = Node::Unknown;
        let value = seed.deserialize(De {
            t: self.t,
            out: &mut node,
        })?;
        *self.out = Some(Variant::Newtype(node));
        Ok(value)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let mut elements = Elements {
            t: self.t,
            left: len,
            nodes: Vec::new(),
        };
        let value = visitor.visit_seq(&mut elements)?;
        *self.out = Some(Variant::Tuple(elements.nodes));
        Ok(value)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut elements = Elements {
            t: self.t,
            left: fields.len(),
            nodes: Vec::new(),
        };
        let value = visitor.visit_seq(&mut elements)?;
        *self.out = Some(Variant::Struct(
            fields.iter().copied().zip(elements.nodes).collect(),
        ));
        Ok(value)
    }
}

impl De<'_> {
    fn primitive(self, name: &'static str) {
        *self.out = Node::Primitive(name);
    }

    fn elements<'de, V: Visitor<'de>>(
        t: &mut Tracer,
        len: usize,
        visitor: V,
    ) -> Result<(V::Value, Vec<Node>), Error> {
        let mut elements = Elements {
            t,
            left: len,
            nodes: Vec::new(),
        };
        let value = visitor.visit_seq(&mut elements)?;
        Ok((value, elements.nodes))
    }

    /// Which variant of `name` to trace now.
    fn choose(
        t: &mut Tracer,
        name: &'static str,
        variants: &'static [&'static str],
    ) -> Result<u32, Error> {
        let recording = t.cutting == 0;
        let entry = t.containers.entry(name).or_insert_with(|| {
            Container::Enum(Enum {
                variants,
                traced: vec![None; variants.len()],
                open: vec![false; variants.len()],
                closed: vec![false; variants.len()],
            })
        });
        let Container::Enum(e) = entry else {
            return Err(Error(format!("two types share the serde name `{name}`")));
        };
        if e.variants != variants {
            return Err(Error(format!("two enums share the serde name `{name}`")));
        }
        let index = if recording {
            // The next variant not traced yet; else one that leads to an
            // enum not traced completely; else the first.
            e.traced
                .iter()
                .position(Option::is_none)
                .or_else(|| e.open.iter().position(|&open| open))
                .unwrap_or(0)
        } else {
            // Inside a recursion: a variant known to end it, else (not
            // known yet) one further down the list at each level.
            let level = t.stack.iter().filter(|&&n| n == name).count();
            e.closed
                .iter()
                .zip(&e.traced)
                .position(|(&closed, traced)| closed && traced.is_some())
                .unwrap_or(level % variants.len())
        };
        Ok(index as u32)
    }
}

macro_rules! primitives {
    ($($method:ident => $visit:ident($value:expr), $name:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.primitive($name);
                visitor.$visit($value)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        self.t.self_describing = true;
        Err(Error(
            "it needs deserialize_any (it asks the format what comes next)".into(),
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        self.t.self_describing = true;
        Err(Error("it needs deserialize_ignored_any".into()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        self.t.self_describing = true;
        Err(Error(
            "it needs deserialize_identifier outside an enum".into(),
        ))
    }

    primitives! {
        deserialize_bool => visit_bool(false), "bool";
        deserialize_i8 => visit_i8(1), "i8";
        deserialize_i16 => visit_i16(1), "i16";
        deserialize_i32 => visit_i32(1), "i32";
        deserialize_i64 => visit_i64(1), "i64";
        deserialize_i128 => visit_i128(1), "i128";
        deserialize_u8 => visit_u8(1), "u8";
        deserialize_u16 => visit_u16(1), "u16";
        deserialize_u32 => visit_u32(1), "u32";
        deserialize_u64 => visit_u64(1), "u64";
        deserialize_u128 => visit_u128(1), "u128";
        deserialize_f32 => visit_f32(0.0), "f32";
        deserialize_f64 => visit_f64(0.0), "f64";
        deserialize_char => visit_char('A'), "char";
        deserialize_str => visit_string(String::new()), "str";
        deserialize_string => visit_string(String::new()), "str";
        deserialize_bytes => visit_byte_buf(Vec::new()), "bytes";
        deserialize_byte_buf => visit_byte_buf(Vec::new()), "bytes";
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.primitive("unit");
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.t.cutting > 0 {
            *self.out = Node::Option(Box::new(Node::Unknown));
            return visitor.visit_none();
        }
        self.t.descend()?;
        let mut inner = Node::Unknown;
        let value = visitor.visit_some(De {
            t: self.t,
            out: &mut inner,
        })?;
        self.t.ascend();
        *self.out = Node::Option(Box::new(inner));
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = usize::from(self.t.cutting == 0);
        self.t.descend()?;
        let (value, nodes) = De::elements(self.t, len, visitor)?;
        self.t.ascend();
        *self.out = Node::Seq(Box::new(nodes.into_iter().next().unwrap_or(Node::Unknown)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.t.descend()?;
        let (value, nodes) = De::elements(self.t, len, visitor)?;
        self.t.ascend();
        *self.out = Node::Tuple(nodes);
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let left = self.t.cutting == 0;
        let mut entries = Entries {
            t: self.t,
            left,
            key: Node::Unknown,
            value: Node::Unknown,
        };
        entries.t.descend()?;
        let value = visitor.visit_map(&mut entries)?;
        entries.t.ascend();
        *self.out = Node::Map(Box::new(entries.key), Box::new(entries.value));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        *self.out = Node::Named(name);
        self.t.record(name, Container::UnitStruct)?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        *self.out = Node::Named(name);
        let recursive = self.t.enter(name)?;
        let mut inner = Node::Unknown;
        let value = visitor.visit_newtype_struct(De {
            t: self.t,
            out: &mut inner,
        })?;
        self.t.record(name, Container::Newtype(inner))?;
        self.t.leave(recursive);
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        *self.out = Node::Named(name);
        let recursive = self.t.enter(name)?;
        let (value, nodes) = De::elements(self.t, len, visitor)?;
        self.t.record(name, Container::TupleStruct(nodes))?;
        self.t.leave(recursive);
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        *self.out = Node::Named(name);
        let recursive = self.t.enter(name)?;
        let (value, nodes) = De::elements(self.t, fields.len(), visitor)?;
        let fields = fields.iter().copied().zip(nodes).collect();
        self.t.record(name, Container::Struct(fields))?;
        self.t.leave(recursive);
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        *self.out = Node::Named(name);
        if variants.is_empty() {
            return Err(Error(format!("the enum `{name}` has no variants")));
        }
        let recursive = self.t.enter(name)?;
        let index = De::choose(self.t, name, variants)?;
        let recording = self.t.cutting == 0;
        let (unfinished, cuts) = (self.t.unfinished, self.t.cuts);
        let mut variant = None;
        let value = visitor.visit_enum(Choice {
            t: self.t,
            index,
            out: &mut variant,
        })?;
        if recording {
            let t = &mut *self.t;
            let Some(Container::Enum(e)) = t.containers.get_mut(name) else {
                unreachable!("recorded by `choose`");
            };
            let i = index as usize;
            let variant = variant.ok_or_else(|| {
                Error(format!(
                    "the enum `{name}` did not read its variant's contents"
                ))
            })?;
            match &mut e.traced[i] {
                Some(old) => unify_variant(old, variant)
                    .map_err(|err| Error(format!("at `{name}`: {err}")))?,
                slot => *slot = Some(variant),
            }
            e.open[i] = t.unfinished > unfinished;
            e.closed[i] = t.cuts == cuts;
            if e.traced.iter().any(Option::is_none) {
                t.unfinished += 1;
            }
        }
        self.t.leave(recursive);
        Ok(value)
    }
}

/// Writes a traced layout canonically: named types inlined at their first
/// occurrence and numbered, back-references after.
struct Writer<'a> {
    containers: &'a HashMap<&'static str, Container>,
    numbers: HashMap<&'static str, usize>,
    out: String,
}

impl Writer<'_> {
    fn name(&mut self, name: &str) {
        let _ = write!(self.out, "{}:{name}", name.len());
    }

    /// Elements of a tuple: a run of equal ones as `N*element`, so that a
    /// large array stays short.
    fn list(&mut self, nodes: &[Node]) {
        let mut rest = nodes;
        let mut first = true;
        while let Some(node) = rest.first() {
            let run = rest.iter().take_while(|n| *n == node).count();
            if !first {
                self.out.push(',');
            }
            first = false;
            if run > 1 {
                let _ = write!(self.out, "{run}*");
            }
            self.node(node);
            rest = &rest[run..];
        }
    }

    fn fields(&mut self, fields: &Fields) {
        self.out.push('{');
        for (i, (name, node)) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.name(name);
            self.out.push(':');
            self.node(node);
        }
        self.out.push('}');
    }

    fn wrapped(&mut self, label: &str, nodes: &[&Node]) {
        self.out.push_str(label);
        self.out.push('(');
        for (i, node) in nodes.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.node(node);
        }
        self.out.push(')');
    }

    fn node(&mut self, node: &Node) {
        match node {
            Node::Unknown => self.out.push('?'),
            Node::Primitive(name) => self.out.push_str(name),
            Node::Option(inner) => self.wrapped("option", &[inner]),
            Node::Seq(inner) => self.wrapped("seq", &[inner]),
            Node::Map(key, value) => self.wrapped("map", &[key, value]),
            Node::Tuple(nodes) => {
                self.out.push_str("tuple(");
                self.list(nodes);
                self.out.push(')');
            }
            Node::Named(name) => self.named(name),
        }
    }

    fn named(&mut self, name: &'static str) {
        if let Some(number) = self.numbers.get(name) {
            let _ = write!(self.out, "@{number}");
            return;
        }
        let number = self.numbers.len();
        self.numbers.insert(name, number);
        let _ = write!(self.out, "#{number}=");
        let Some(container) = self.containers.get(name) else {
            self.out.push('?');
            return;
        };
        match container {
            Container::UnitStruct => self.out.push_str("unit_struct"),
            Container::Newtype(inner) => self.wrapped("newtype", &[inner]),
            Container::TupleStruct(nodes) => {
                self.out.push_str("tuple_struct(");
                self.list(nodes);
                self.out.push(')');
            }
            Container::Struct(fields) => {
                self.out.push_str("struct");
                self.fields(fields);
            }
            Container::Enum(e) => {
                self.out.push_str("enum{");
                for (i, (variant, traced)) in e.variants.iter().zip(&e.traced).enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let _ = write!(self.out, "{i}=");
                    self.name(variant);
                    self.out.push(':');
                    match traced {
                        None => self.out.push('?'),
                        Some(Variant::Unit) => self.out.push_str("unit"),
                        Some(Variant::Newtype(inner)) => self.wrapped("newtype", &[inner]),
                        Some(Variant::Tuple(nodes)) => {
                            self.out.push_str("tuple(");
                            self.list(nodes);
                            self.out.push(')');
                        }
                        Some(Variant::Struct(fields)) => {
                            self.out.push_str("struct");
                            self.fields(fields);
                        }
                    }
                }
                self.out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn layout<T: DeserializeOwned>() -> String {
        layout_of::<T>().unwrap().0
    }

    #[test]
    fn primitives_and_collections() {
        assert_eq!(layout::<u32>(), "u32");
        assert_eq!(layout::<(u8, String)>(), "tuple(u8,str)");
        assert_eq!(layout::<(u8, u8, u16, u8)>(), "tuple(2*u8,u16,u8)");
        assert_eq!(layout::<Vec<Option<i64>>>(), "seq(option(i64))");
        assert_eq!(
            layout::<std::collections::BTreeMap<String, [f32; 3]>>(),
            "map(str,tuple(3*f32))"
        );
        assert_ne!(layout::<u32>(), layout::<u64>());
    }

    #[allow(dead_code, unreachable_pub)]
    mod v1 {
        use serde::Deserialize;
        #[derive(Deserialize)]
        pub struct Point {
            pub x: u32,
            pub y: u32,
        }
    }

    #[test]
    fn a_struct_is_written_by_structure() {
        assert_eq!(layout::<v1::Point>(), "#0=struct{1:x:u32,1:y:u32}");
    }

    #[test]
    fn nested_enums_are_traced_completely() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum Inner {
            A,
            B(u8),
            C { c: String },
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum Outer {
            First,
            Second(Option<Inner>),
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            outer: Vec<Outer>,
        }
        assert_eq!(
            layout::<Holder>(),
            "#0=struct{5:outer:seq(#1=enum{0=5:First:unit,1=6:Second:newtype(option(#2=enum{0=1:A:unit,1=1:B:newtype(u8),2=1:C:struct{1:c:str}}))})}"
        );
    }

    #[test]
    fn std_types_and_serde_attributes_are_traced() {
        use std::collections::{BTreeSet, HashMap, VecDeque};
        use std::num::NonZeroU32;
        use std::time::{Duration, SystemTime};
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Unit;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Meters(f64);
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Pair(u8, i16);
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Attributes {
            #[serde(rename = "kind")]
            r#type: String,
            #[serde(skip)]
            cache: Vec<u8>,
            #[serde(default)]
            count: u32,
        }
        assert_eq!(
            layout::<(Unit, Meters, Pair)>(),
            "tuple(#0=unit_struct,#1=newtype(f64),#2=tuple_struct(u8,i16))"
        );
        assert_eq!(layout::<Attributes>(), "#0=struct{4:kind:str,5:count:u32}");
        assert_eq!(
            layout::<(Duration, Option<NonZeroU32>)>(),
            "tuple(#0=struct{4:secs:u64,5:nanos:u32},option(u32))"
        );
        for traced in [
            layout_of::<SystemTime>().map(|_| ()),
            layout_of::<HashMap<u64, VecDeque<char>>>().map(|_| ()),
            layout_of::<BTreeSet<Box<str>>>().map(|_| ()),
            layout_of::<std::path::PathBuf>().map(|_| ()),
            layout_of::<std::net::IpAddr>().map(|_| ()),
            layout_of::<Box<[u8]>>().map(|_| ()),
            layout_of::<(char, bool, i128, u128, f32)>().map(|_| ()),
            layout_of::<std::ops::Range<u32>>().map(|_| ()),
            layout_of::<Result<u8, String>>().map(|_| ()),
        ] {
            traced.unwrap();
        }
    }

    #[test]
    fn endless_nesting_is_an_error_not_a_stack_overflow() {
        // A hand-written Deserialize that nests without end, through no
        // named type.
        struct Endless;
        impl<'de> serde::Deserialize<'de> for Endless {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Option::<Vec<Endless>>::deserialize(d).map(|_| Endless)
            }
        }
        let error = layout_of::<Endless>().unwrap_err();
        assert!(error.reason().contains("nests more than"), "{error}");
        assert!(!error.needs_self_describing_format(), "{error}");
    }

    #[test]
    fn two_types_with_one_serde_name_are_an_error() {
        mod a {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub(super) struct Same {
                pub(super) x: u8,
            }
        }
        mod b {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub(super) struct Same {
                pub(super) y: String,
            }
        }
        let error = layout_of::<(a::Same, b::Same)>().unwrap_err();
        assert!(error.reason().contains("Same"), "{error}");
        assert!(!error.needs_self_describing_format(), "{error}");
    }

    #[test]
    fn untraceable_types_are_errors_not_panics() {
        #[derive(Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Either {
            A(u32),
            B(String),
        }
        #[derive(Deserialize)]
        #[serde(tag = "kind")]
        #[allow(dead_code)]
        enum Tagged {
            A { a: u32 },
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Flattened {
            #[serde(flatten)]
            inner: std::collections::HashMap<String, u32>,
        }
        for error in [
            layout_of::<serde_json::Value>().unwrap_err(),
            layout_of::<Vec<Tagged>>().unwrap_err(),
            layout_of::<Flattened>().unwrap_err(),
        ] {
            assert!(error.needs_self_describing_format(), "{error}");
        }
        let error = layout_of::<Either>().unwrap_err();
        assert!(error.type_name().ends_with("Either"), "{error}");
        assert!(error.reason().contains("deserialize_any"), "{error}");
        assert!(error.needs_self_describing_format(), "{error}");
        assert!(error.to_string().contains("cannot be traced"), "{error}");
    }
}
