//! A tolerant reader of the TwiML verbs the fake plays: enough XML to find `<Say>` texts,
//! `<Gather>` with its `action`, `numDigits` and prompts, `<Redirect>` and `<Hangup/>` inside a
//! `<Response>`. Not a validator: unknown verbs are skipped, as are comments and the XML
//! declaration.

/// One verb of a `<Response>`, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verb {
    Say(String),
    Gather {
        /// `None`: Twilio posts the digits to the URL of the document itself.
        action: Option<String>,
        /// `None`: until `#` or the timeout, which the fake reads as "all of the script's".
        num_digits: Option<usize>,
        method: Option<String>,
        /// The `<Say>` prompts inside.
        says: Vec<String>,
    },
    Redirect {
        url: String,
        method: Option<String>,
    },
    Hangup,
    /// Anything else (`<Pause>`, `<Play>`, `<Dial>`, …): does nothing in the fake.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open {
        name: String,
        attrs: Vec<(String, String)>,
        empty: bool,
    },
    Close(String),
    Text(String),
}

/// The verbs of the document's `<Response>`, or `None` if it has none (not TwiML).
pub(crate) fn verbs(document: &str) -> Option<Vec<Verb>> {
    let tokens = tokenize(document);
    let mut iter = tokens.into_iter();
    loop {
        match iter.next()? {
            Token::Open { name, empty, .. } if name == "Response" => {
                if empty {
                    return Some(Vec::new());
                }
                break;
            }
            _ => continue,
        }
    }
    let mut verbs = Vec::new();
    while let Some(token) = iter.next() {
        match token {
            Token::Close(name) if name == "Response" => break,
            Token::Open { name, attrs, empty } => {
                let attr = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                let verb = match name.as_str() {
                    "Say" => Verb::Say(if empty {
                        String::new()
                    } else {
                        text_until(&mut iter, "Say")
                    }),
                    "Gather" => Verb::Gather {
                        action: attr("action"),
                        num_digits: attr("numDigits").and_then(|n| n.trim().parse().ok()),
                        method: attr("method"),
                        says: if empty {
                            Vec::new()
                        } else {
                            says_until(&mut iter, "Gather")
                        },
                    },
                    "Redirect" => Verb::Redirect {
                        url: if empty {
                            String::new()
                        } else {
                            text_until(&mut iter, "Redirect").trim().to_owned()
                        },
                        method: attr("method"),
                    },
                    "Hangup" => {
                        if !empty {
                            skip_until(&mut iter, "Hangup");
                        }
                        Verb::Hangup
                    }
                    _ => {
                        if !empty {
                            skip_until(&mut iter, &name);
                        }
                        Verb::Other(name)
                    }
                };
                verbs.push(verb);
            }
            Token::Close(_) | Token::Text(_) => {}
        }
    }
    Some(verbs)
}

/// The text up to `</name>`, nested markup dropped.
fn text_until(iter: &mut impl Iterator<Item = Token>, name: &str) -> String {
    let mut text = String::new();
    for token in iter.by_ref() {
        match token {
            Token::Close(n) if n == name => break,
            Token::Text(t) => text.push_str(&t),
            _ => {}
        }
    }
    text
}

/// The texts of the `<Say>`s up to `</name>`.
fn says_until(iter: &mut impl Iterator<Item = Token>, name: &str) -> Vec<String> {
    let mut says = Vec::new();
    while let Some(token) = iter.next() {
        match token {
            Token::Close(n) if n == name => break,
            Token::Open { name: n, empty, .. } if n == "Say" => {
                says.push(if empty {
                    String::new()
                } else {
                    text_until(iter, "Say")
                });
            }
            _ => {}
        }
    }
    says
}

fn skip_until(iter: &mut impl Iterator<Item = Token>, name: &str) {
    let mut depth = 0usize;
    for token in iter.by_ref() {
        match token {
            Token::Open {
                name: n,
                empty: false,
                ..
            } if n == name => depth += 1,
            Token::Close(n) if n == name => {
                if depth == 0 {
                    return;
                }
                depth -= 1;
            }
            _ => {}
        }
    }
}

fn tokenize(document: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = document;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            push_text(&mut tokens, rest);
            break;
        };
        push_text(&mut tokens, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            tokens.push(Token::Text(after[..end].to_owned()));
            rest = after.get(end + 3..).unwrap_or("");
            continue;
        }
        if rest.starts_with("<?") || rest.starts_with("<!") {
            rest = rest.find('>').map_or("", |end| &rest[end + 1..]);
            continue;
        }
        let Some(end) = tag_end(rest) else {
            break;
        };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            tokens.push(Token::Close(name.trim().to_owned()));
            continue;
        }
        let (tag, empty) = match tag.strip_suffix('/') {
            Some(tag) => (tag, true),
            None => (tag, false),
        };
        let name_end = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
        tokens.push(Token::Open {
            name: tag[..name_end].to_owned(),
            attrs: attributes(&tag[name_end..]),
            empty,
        });
    }
    tokens
}

/// The index of the `>` that ends the tag at the start of `s`, skipping quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn push_text(tokens: &mut Vec<Token>, text: &str) {
    if !text.is_empty() {
        tokens.push(Token::Text(unescape(text)));
    }
}

fn attributes(mut s: &str) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    loop {
        s = s.trim_start();
        let Some(eq) = s.find('=') else {
            return attrs;
        };
        let name = s[..eq].trim().to_owned();
        let value = s[eq + 1..].trim_start();
        let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            return attrs;
        };
        let value = &value[1..];
        let Some(end) = value.find(quote) else {
            return attrs;
        };
        attrs.push((name, unescape(&value[..end])));
        s = &value[end + 1..];
    }
}

/// The five predefined entities and numeric character references; anything else stays.
pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pager_notify::twiml::Twiml;

    #[test]
    fn reads_what_the_builder_writes() {
        let xml = Twiml::new()
            .say("Disk full on db1 & db2 <now>")
            .pause(1)
            .gather(1, "/ack?d=1&t=x", 5, &["Press 1.", "Or 2."])
            .say("Bye")
            .redirect("https://h/next?a=1&b=2")
            .hangup()
            .build();
        assert_eq!(
            verbs(&xml),
            Some(vec![
                Verb::Say("Disk full on db1 & db2 <now>".into()),
                Verb::Other("Pause".into()),
                Verb::Gather {
                    action: Some("/ack?d=1&t=x".into()),
                    num_digits: Some(1),
                    method: Some("POST".into()),
                    says: vec!["Press 1.".into(), "Or 2.".into()],
                },
                Verb::Say("Bye".into()),
                Verb::Redirect {
                    url: "https://h/next?a=1&b=2".into(),
                    method: Some("POST".into()),
                },
                Verb::Hangup,
            ])
        );
    }

    #[test]
    fn tolerates_whitespace_comments_and_odd_quoting() {
        let xml = "<?xml version='1.0'?>\n<!-- hi -->\n<Response>\n  <Say voice='alice'>a &#65;&#x42; &bogus; & c</Say>\n  \
                   <Gather action='x>y' numDigits=' 2 '/>\n  <Play>u</Play><Dial><Number>1</Number></Dial>\n</Response>";
        assert_eq!(
            verbs(xml),
            Some(vec![
                Verb::Say("a AB &bogus; & c".into()),
                Verb::Gather {
                    action: Some("x>y".into()),
                    num_digits: Some(2),
                    method: None,
                    says: vec![],
                },
                Verb::Other("Play".into()),
                Verb::Other("Dial".into()),
            ])
        );
        assert_eq!(verbs("<Response/>"), Some(vec![]));
        assert_eq!(verbs("<html>500</html>"), None);
        assert_eq!(verbs("Internal Server Error"), None);
    }
}
