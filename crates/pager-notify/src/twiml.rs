//! TwiML, the XML that tells Twilio what to do on a call or how to answer an SMS: a small builder
//! whose every text and attribute is XML-escaped, so a page's text cannot inject a verb.
//!
//! ```
//! use pager_notify::twiml::Twiml;
//!
//! let xml = Twiml::new()
//!     .gather(1, "https://pagerd.example/voice/ack?d=7", 10, &["Press 1 to acknowledge."])
//!     .say("No key pressed. Goodbye.")
//!     .hangup()
//!     .build();
//! assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Gather"#));
//! assert_eq!(Twiml::empty(), r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
//! ```
//!
//! Verbs: `<Say>` (optionally with a `voice`), `<Gather>` (keypad input, `method="POST"`, with
//! `<Say>` prompts inside), `<Message>` (an SMS reply), `<Redirect>`, `<Hangup/>`, `<Pause/>`.

use std::borrow::Cow;

/// What every document starts with.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// A `<Response>` under construction. Verbs are executed by Twilio in the order they are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Twiml {
    /// The verbs so far, already escaped.
    verbs: String,
}

impl Twiml {
    pub fn new() -> Twiml {
        Twiml::default()
    }

    /// `<?xml …?><Response/>`: do nothing (an SMS webhook that sends no reply, a call that hangs
    /// up).
    pub fn empty() -> String {
        Twiml::new().build()
    }

    /// `<Say>text</Say>` in Twilio's default voice.
    pub fn say(mut self, text: &str) -> Twiml {
        push_say(&mut self.verbs, text, None);
        self
    }

    /// `<Say voice="…">text</Say>`, e.g. `voice = "Polly.Joanna"` or `"alice"`.
    pub fn say_with_voice(mut self, text: &str, voice: &str) -> Twiml {
        push_say(&mut self.verbs, text, Some(voice));
        self
    }

    /// `<Gather numDigits action method="POST" timeout>` with a `<Say>` per prompt inside: Twilio
    /// speaks the prompts, and POSTs `Digits` to `action_url` once `num_digits` keys are pressed.
    /// Without input within `timeout_secs` it goes on with the next verb.
    pub fn gather(
        mut self,
        num_digits: u32,
        action_url: &str,
        timeout_secs: u32,
        says: &[&str],
    ) -> Twiml {
        self.verbs.push_str(&format!(
            r#"<Gather numDigits="{num_digits}" action="{}" method="POST" timeout="{timeout_secs}">"#,
            escape(action_url)
        ));
        for text in says {
            push_say(&mut self.verbs, text, None);
        }
        self.verbs.push_str("</Gather>");
        self
    }

    /// `<Message>text</Message>`: the SMS reply to an incoming message.
    pub fn message(mut self, text: &str) -> Twiml {
        self.verbs.push_str("<Message>");
        self.verbs.push_str(&escape(text));
        self.verbs.push_str("</Message>");
        self
    }

    /// `<Redirect method="POST">url</Redirect>`: fetch the rest of the call from `url`.
    pub fn redirect(mut self, url: &str) -> Twiml {
        self.verbs.push_str(r#"<Redirect method="POST">"#);
        self.verbs.push_str(&escape(url));
        self.verbs.push_str("</Redirect>");
        self
    }

    /// `<Hangup/>`.
    pub fn hangup(mut self) -> Twiml {
        self.verbs.push_str("<Hangup/>");
        self
    }

    /// `<Pause length="secs"/>`.
    pub fn pause(mut self, secs: u32) -> Twiml {
        self.verbs.push_str(&format!(r#"<Pause length="{secs}"/>"#));
        self
    }

    /// The whole document: the XML declaration and one `<Response>`.
    pub fn build(&self) -> String {
        if self.verbs.is_empty() {
            format!("{XML_DECLARATION}<Response/>")
        } else {
            format!("{XML_DECLARATION}<Response>{}</Response>", self.verbs)
        }
    }
}

fn push_say(out: &mut String, text: &str, voice: Option<&str>) {
    match voice {
        Some(voice) => out.push_str(&format!(r#"<Say voice="{}">"#, escape(voice))),
        None => out.push_str("<Say>"),
    }
    out.push_str(&escape(text));
    out.push_str("</Say>");
}

/// `text` as XML character data or attribute value: `&`, `<`, `>`, `"` and `'` escaped, and
/// the characters XML 1.0 cannot carry (control characters but tab and line breaks, U+FFFE,
/// U+FFFF) replaced by a space.
pub fn escape(text: &str) -> Cow<'_, str> {
    let clean = |c: char| !matches!(c, '&' | '<' | '>' | '"' | '\'') && !is_forbidden(c);
    if text.chars().all(clean) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        out.push_str(&escape_char(c, false));
    }
    Cow::Owned(out)
}

/// XML text of at most `budget` UTF-16 units, escaped as [`escape`] does, with tabs and line
/// breaks as spaces (for text that is spoken, where they mean nothing). Never cuts an escape.
pub(crate) fn escape_within(text: &str, budget: usize) -> String {
    let mut out = String::with_capacity(text.len().min(budget * 4));
    let mut used = 0;
    for c in text.chars() {
        let piece = escape_char(c, true);
        let len: usize = piece.chars().map(char::len_utf16).sum();
        if used + len > budget {
            break;
        }
        used += len;
        out.push_str(&piece);
    }
    out
}

fn escape_char(c: char, flatten_whitespace: bool) -> Cow<'static, str> {
    match c {
        '&' => "&amp;".into(),
        '<' => "&lt;".into(),
        '>' => "&gt;".into(),
        '"' => "&quot;".into(),
        '\'' => "&apos;".into(),
        '\t' | '\n' | '\r' if flatten_whitespace => " ".into(),
        c if is_forbidden(c) => " ".into(),
        c => c.to_string().into(),
    }
}

/// Not allowed in an XML 1.0 document, even escaped.
fn is_forbidden(c: char) -> bool {
    ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn empty_response() {
        assert_eq!(Twiml::empty(), format!("{HEAD}<Response/>"));
        assert_eq!(Twiml::new().build(), Twiml::empty());
    }

    #[test]
    fn every_verb() {
        let xml = Twiml::new()
            .say("Hello")
            .say_with_voice("Hi", "Polly.Joanna")
            .pause(2)
            .gather(1, "/voice/ack?d=1&t=2", 7, &["Press 1.", "Or 2."])
            .redirect("https://x.example/next?a=1&b=2")
            .message("ok")
            .hangup()
            .build();
        assert_eq!(
            xml,
            format!(
                "{HEAD}<Response><Say>Hello</Say><Say voice=\"Polly.Joanna\">Hi</Say>\
                 <Pause length=\"2\"/><Gather numDigits=\"1\" action=\"/voice/ack?d=1&amp;t=2\" \
                 method=\"POST\" timeout=\"7\"><Say>Press 1.</Say><Say>Or 2.</Say></Gather>\
                 <Redirect method=\"POST\">https://x.example/next?a=1&amp;b=2</Redirect>\
                 <Message>ok</Message><Hangup/></Response>"
            )
        );
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let xml = Twiml::new()
            .say(r#"db1 < 5% & "rising" 'fast' > x</Say><Hangup/>"#)
            .say_with_voice("v", r#"a"b"#)
            .message("a\u{7}b\tc\nd")
            .build();
        assert_eq!(
            xml,
            format!(
                "{HEAD}<Response><Say>db1 &lt; 5% &amp; &quot;rising&quot; &apos;fast&apos; \
                 &gt; x&lt;/Say&gt;&lt;Hangup/&gt;</Say><Say voice=\"a&quot;b\">v</Say>\
                 <Message>a b\tc\nd</Message></Response>"
            )
        );
    }

    #[test]
    fn escape_borrows_clean_text() {
        assert!(matches!(escape("plain text\n"), Cow::Borrowed(_)));
        assert!(matches!(escape("a&b"), Cow::Owned(_)));
        assert_eq!(escape("\u{FFFE}'"), " &apos;");
    }

    #[test]
    fn escape_within_never_cuts_an_entity() {
        assert_eq!(escape_within("ab&c", 3), "ab");
        assert_eq!(escape_within("ab&c", 7), "ab&amp;");
        assert_eq!(escape_within("a\nb", 10), "a b");
        assert_eq!(escape_within("🔥🔥", 3), "🔥");
    }
}
