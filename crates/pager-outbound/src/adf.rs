//! Atlassian Document Format: the JSON documents Jira takes for `description` and comments.
//!
//! ```json
//! {"type": "doc", "version": 1, "content": [
//!   {"type": "paragraph", "content": [{"type": "text", "text": "db1 disk full"}]}]}
//! ```
//!
//! ADF is JSON, so nothing is escaped: text goes into `text` nodes as it is. What Jira does
//! refuse is an empty `text` node, and a list without items: [`Doc`] leaves those out. A line
//! break inside a paragraph's text becomes a `hardBreak` node; other control characters are
//! dropped.

use serde_json::{json, Value};

/// A piece of a paragraph or a list item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Strong(String),
    /// `text` linking to `href`; with an empty `text`, the link shows its `href`.
    Link {
        text: String,
        href: String,
    },
}

impl Inline {
    pub fn text(text: impl Into<String>) -> Inline {
        Inline::Text(text.into())
    }

    pub fn strong(text: impl Into<String>) -> Inline {
        Inline::Strong(text.into())
    }

    pub fn link(text: impl Into<String>, href: impl Into<String>) -> Inline {
        Inline::Link {
            text: text.into(),
            href: href.into(),
        }
    }

    /// The ADF nodes: text split at line breaks into `text` and `hardBreak` nodes, never an
    /// empty `text`.
    fn nodes(&self) -> Vec<Value> {
        let (text, marks) = match self {
            Inline::Text(text) => (text.as_str(), None),
            Inline::Strong(text) => (text.as_str(), Some(json!([{ "type": "strong" }]))),
            Inline::Link { text, href } if href.trim().is_empty() => (text.as_str(), None),
            Inline::Link { text, href } => {
                let shown = if text.trim().is_empty() { href } else { text };
                let marks = json!([{ "type": "link", "attrs": { "href": href.trim() } }]);
                (shown.as_str(), Some(marks))
            }
        };
        let mut nodes = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                nodes.push(json!({ "type": "hardBreak" }));
            }
            let line: String = line
                .chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect();
            if line.is_empty() {
                continue;
            }
            let mut node = json!({ "type": "text", "text": line });
            if let (Some(marks), Some(node)) = (&marks, node.as_object_mut()) {
                node.insert("marks".to_owned(), marks.clone());
            }
            nodes.push(node);
        }
        // No break at the edges, nor two in a row where an empty line was.
        while nodes.first().is_some_and(is_break) {
            nodes.remove(0);
        }
        while nodes.last().is_some_and(is_break) {
            nodes.pop();
        }
        nodes.dedup_by(|a, b| is_break(a) && is_break(b));
        nodes
    }
}

fn is_break(node: &Value) -> bool {
    node["type"] == "hardBreak"
}

/// An ADF document under construction: blocks in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    content: Vec<Value>,
}

impl Doc {
    pub fn new() -> Doc {
        Doc::default()
    }

    /// A paragraph of plain text (left out if it has no text).
    pub fn paragraph(self, text: &str) -> Doc {
        self.inlines([Inline::text(text)])
    }

    /// A paragraph of several pieces (left out if none has text).
    pub fn inlines(mut self, inlines: impl IntoIterator<Item = Inline>) -> Doc {
        if let Some(paragraph) = paragraph(inlines) {
            self.content.push(paragraph);
        }
        self
    }

    /// A paragraph that is one link.
    pub fn link(self, text: &str, href: &str) -> Doc {
        self.inlines([Inline::link(text, href)])
    }

    /// A heading of `level` 1 to 6 (clamped).
    pub fn heading(mut self, level: u8, text: &str) -> Doc {
        let nodes = Inline::text(text).nodes();
        if !nodes.is_empty() {
            self.content.push(json!({
                "type": "heading",
                "attrs": { "level": level.clamp(1, 6) },
                "content": nodes,
            }));
        }
        self
    }

    /// A bullet list, one item per entry (a runbook's steps); items without text are left
    /// out, and so is a list without items.
    pub fn bullet_list<I, L>(mut self, items: I) -> Doc
    where
        I: IntoIterator<Item = L>,
        L: IntoIterator<Item = Inline>,
    {
        let items: Vec<Value> = items
            .into_iter()
            .filter_map(paragraph)
            .map(|p| json!({ "type": "listItem", "content": [p] }))
            .collect();
        if !items.is_empty() {
            self.content
                .push(json!({ "type": "bulletList", "content": items }));
        }
        self
    }

    /// A bullet list of plain-text items.
    pub fn bullets<S: AsRef<str>>(self, items: &[S]) -> Doc {
        self.bullet_list(items.iter().map(|s| [Inline::text(s.as_ref())]))
    }

    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// `{"type": "doc", "version": 1, "content": [...]}`.
    pub fn into_value(self) -> Value {
        json!({ "type": "doc", "version": 1, "content": self.content })
    }
}

impl From<Doc> for Value {
    fn from(doc: Doc) -> Value {
        doc.into_value()
    }
}

fn paragraph(inlines: impl IntoIterator<Item = Inline>) -> Option<Value> {
    let mut nodes: Vec<Value> = Vec::new();
    for inline in inlines {
        let more = inline.nodes();
        if !more.is_empty() && nodes.last().is_some_and(is_break) && is_break(&more[0]) {
            nodes.pop();
        }
        nodes.extend(more);
    }
    nodes
        .iter()
        .any(|n| n["type"] == "text")
        .then(|| json!({ "type": "paragraph", "content": nodes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_with_every_kind_of_block() {
        let doc = Doc::new()
            .heading(9, "db1")
            .paragraph("disk \"full\" <now>\n\nsince 10:00")
            .inlines([
                Inline::strong("Incident: "),
                Inline::link("inc-42", "https://pagerd.example/i/42"),
            ])
            .bullets(&["check df", "", "rotate logs"])
            .into_value();
        assert_eq!(
            doc,
            json!({"type": "doc", "version": 1, "content": [
                {"type": "heading", "attrs": {"level": 6}, "content": [{"type": "text", "text": "db1"}]},
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "disk \"full\" <now>"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "since 10:00"},
                ]},
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "Incident: ", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": "inc-42", "marks": [{"type": "link", "attrs": {"href": "https://pagerd.example/i/42"}}]},
                ]},
                {"type": "bulletList", "content": [
                    {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "check df"}]}]},
                    {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "rotate logs"}]}]},
                ]},
            ]})
        );
    }

    #[test]
    fn never_an_empty_text_node() {
        let doc = Doc::new()
            .paragraph("")
            .paragraph("\n\n")
            .paragraph("\u{0}\u{7}")
            .heading(1, "")
            .bullets::<&str>(&[])
            .bullets(&["", "\n"])
            .link("", "");
        assert!(doc.is_empty(), "{doc:?}");
        let link = Doc::new().link("", "https://x.example").into_value();
        assert_eq!(
            link["content"][0]["content"][0]["text"],
            "https://x.example"
        );
        let edge = Doc::new().paragraph("\nx\n").into_value();
        assert_eq!(
            edge["content"][0]["content"],
            json!([{"type": "text", "text": "x"}])
        );
    }
}
