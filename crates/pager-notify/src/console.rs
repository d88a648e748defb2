//! The console channel: one line per page on stdout, addresses masked. The embedded default of
//! a node without providers, and a fallback for a method whose provider is not configured.

use std::io::Write;

use crate::error::SendError;
use crate::{mask, Method, Page, Sent};

/// Print the page. Idempotent only in effect: a retry prints the line again.
pub(crate) fn send(page: &Page) -> Result<Sent, SendError> {
    let line = line(page);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|err| SendError::permanent(format!("write the page to stdout: {err}")))?;
    Ok(Sent {
        provider_id: format!("console-{}", page.delivery_id),
    })
}

/// `[page] sms to +1*******4567: <text>`; email puts the subject before the text.
pub(crate) fn line(page: &Page) -> String {
    let to = mask::address(&page.address);
    let kind = page.method.as_str();
    match page.method {
        Method::Email => format!(
            "[page] {kind} to {to}: {}: {}",
            one_line(&page.subject),
            one_line(&page.text)
        ),
        Method::Sms | Method::Voice | Method::Slack => {
            format!("[page] {kind} to {to}: {}", one_line(&page.text))
        }
    }
}

/// Line breaks become ` | ` and other control characters spaces, so a page stays one line.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => out.push_str(" | "),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(method: Method, address: &str) -> Page {
        Page {
            delivery_id: 7,
            method,
            address: address.into(),
            subject: "Disk full".into(),
            text: "db1: disk full\r\nrunbook: https://wiki/disk\u{7}".into(),
            html: None,
            voice: None,
        }
    }

    #[test]
    fn lines_are_masked_and_single() {
        assert_eq!(
            line(&page(Method::Sms, "+15551234567")),
            "[page] sms to +1*******4567: db1: disk full | runbook: https://wiki/disk "
        );
        assert_eq!(
            line(&page(Method::Voice, "+15551234567")),
            "[page] voice to +1*******4567: db1: disk full | runbook: https://wiki/disk "
        );
        assert_eq!(
            line(&page(Method::Email, "alice@example.com")),
            "[page] email to a****@example.com: Disk full: db1: disk full | runbook: https://wiki/disk "
        );
    }
}
