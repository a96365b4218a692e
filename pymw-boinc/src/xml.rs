//! A small, tolerant XML tree for the flat documents BOINC reads and writes,
//! and the escaping helpers used when rendering them.
//!
//! BOINC's own parsers are line and tag oriented and its PHP replies are not
//! always well-formed (see `remote`), so this reader closes unclosed elements
//! at the end of the input and ignores end tags that match nothing. It never
//! panics, and the tree it builds is proportional to the input; nesting deeper
//! than [`MAX_DEPTH`] is refused.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::Event;

/// Deepest nesting accepted; BOINC documents are at most 4 or 5 levels deep.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XmlError {
    /// The tokenizer gave up (for example on a broken tag); the text says where.
    Syntax(String),
    /// Elements nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlError::Syntax(s) => write!(f, "XML syntax error: {s}"),
            XmlError::TooDeep => write!(f, "XML nested deeper than {MAX_DEPTH} levels"),
        }
    }
}

/// One element: its name, its own text (CDATA included, entities resolved,
/// text of children excluded) and its child elements in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// The first child of that name.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child of that name.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child of that name.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Parses `input` into a synthetic root (empty name) holding the top-level
/// elements. Processing instructions, comments and the declaration are
/// skipped.
pub(crate) fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(input);
    {
        let config = reader.config_mut();
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.allow_dangling_amp = true;
        config.check_comments = false;
    }
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Syntax(format!("{e} at byte {}", reader.error_position())))?;
        match event {
            Event::Start(start) => {
                if stack.len() > MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(Element {
                    name: start.name().0.to_owned(),
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                if let Some(top) = stack.last_mut() {
                    top.children.push(Element {
                        name: start.name().0.to_owned(),
                        ..Element::default()
                    });
                }
            }
            Event::End(end) => {
                let name = end.name().0;
                // Close up to the matching open element; ignore a stray end tag.
                if let Some(pos) = stack.iter().rposition(|e| e.name == name)
                    && pos > 0
                {
                    while stack.len() > pos {
                        close_top(&mut stack);
                    }
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    match resolve_reference(&reference) {
                        Some(c) => top.text.push(c),
                        None => {
                            top.text.push('&');
                            top.text.push_str(&reference);
                            top.text.push(';');
                        }
                    }
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    while stack.len() > 1 {
        close_top(&mut stack);
    }
    Ok(stack.pop().unwrap_or_default())
}

fn close_top(stack: &mut Vec<Element>) {
    if stack.len() < 2 {
        return;
    }
    if let Some(done) = stack.pop()
        && let Some(parent) = stack.last_mut()
    {
        parent.children.push(done);
    }
}

fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    match &**reference {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => reference.resolve_char_ref().ok().flatten(),
    }
}

/// Escapes text for an XML element body: `&`, `<` and `>`.
pub(crate) fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Resolves the five predefined entities and numeric character references;
/// anything else is kept as written.
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let resolved = after.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &after[..semi];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name.strip_prefix('#').and_then(|num| {
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse::<u32>().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, semi))
        });
        match resolved {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// At most `max` characters of `s`, for error messages.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_text_cdata_and_entities() {
        let doc = parse(
            "<?xml version=\"1.0\" ?>\n<a>\n<b> x &lt;y&gt; &#65;&#x42; &bogus; </b><c/><d><![CDATA[<raw>]]></d></a>",
        )
        .unwrap();
        let a = doc.child("a").unwrap();
        assert_eq!(a.child_text("b"), Some("x <y> AB &bogus;"));
        assert!(a.child("c").is_some());
        assert_eq!(a.child_text("d"), Some("<raw>"));
    }

    #[test]
    fn tolerates_unclosed_and_stray_tags() {
        let doc = parse("<a><b>1</b></zzz><c>2").unwrap();
        let a = doc.child("a").unwrap();
        assert_eq!(a.child_text("b"), Some("1"));
        assert_eq!(a.child_text("c"), Some("2"));
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = "<a>".repeat(MAX_DEPTH + 5);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
    }

    #[test]
    fn escape_and_unescape_round_trip() {
        let s = "a < b && c > d; &#1234567;";
        assert_eq!(unescape(&escape_text(s)), s);
        assert_eq!(unescape("&#x41;&#66;&amp"), "AB&amp");
        assert_eq!(excerpt("abcdef", 3), "abc...");
    }
}
