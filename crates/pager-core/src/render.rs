//! The words of a page, per channel. Pure: the dispatcher sends what this says.
//!
//! - SMS: GSM-7 only (one 160-character segment costs what it should and no
//!   phone shows boxes), the key facts and the reply codes within the first
//!   160 characters where they fit, the runbook after them, never over
//!   Twilio's 1,600.
//! - Voice: what is spoken before the keypad menu.
//! - Email: text and HTML, with signed acknowledge / resolve links when the
//!   daemon has a public URL to put in them.

use crate::delivery::Delivery;
use crate::incident::Incident;
use crate::oncall::ContactKind;
use std::fmt::Write as _;

/// One SMS segment in GSM-7.
pub const SMS_SEGMENT: usize = 160;
/// Twilio's limit on a message body.
pub const SMS_MAX: usize = 1600;

/// The words of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageText {
    /// The email subject; a one-line title of the incident.
    pub subject: String,
    /// The body for the channel: the SMS text, what a call says, or the plain-text email.
    pub text: String,
}

/// One-click links for an email page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLinks {
    /// Signed URL that acknowledges the incident.
    pub acknowledge: String,
    /// Signed URL that resolves the incident.
    pub resolve: String,
}

/// Render the page for `delivery` of `incident` (email without links).
pub fn page(incident: &Incident, delivery: &Delivery) -> PageText {
    let subject = subject(incident);
    let text = match delivery.method {
        ContactKind::Sms => sms(incident, delivery),
        ContactKind::Voice => voice(incident, delivery),
        ContactKind::Email => email_text(incident, delivery, None),
        // The fallback text of a Slack message (its blocks carry the rest);
        // a Jira ticket's summary.
        ContactKind::Slack | ContactKind::Jira | ContactKind::Webhook => sms(incident, delivery),
    };
    PageText { subject, text }
}

/// The words of a test page (`TestPage`): what it is, and that nothing needs
/// doing. No reply codes and no links: it belongs to no incident.
pub fn test_page(delivery: &Delivery) -> PageText {
    let how = match delivery.method {
        ContactKind::Sms => "text message",
        ContactKind::Voice => "call",
        ContactKind::Email => "email",
        ContactKind::Slack => "Slack message",
        ContactKind::Jira => "Jira ticket",
        ContactKind::Webhook => "webhook",
    };
    let subject = format!("[pagerd] Test page for {}", delivery.user);
    let text = match delivery.method {
        ContactKind::Voice => format!(
            "This is pager d. This is a test call for {}, to the contact method {}. \
             No action is needed. Goodbye.",
            spoken(&delivery.user),
            spoken(&delivery.contact)
        ),
        _ => format!(
            "pagerd test page for {} via {} ({}). If you got this {how}, pages reach you \
             here. No action needed.",
            gsm7(&delivery.user),
            gsm7(&delivery.contact),
            delivery.method.as_str()
        ),
    };
    PageText { subject, text }
}

/// The words of an invitation to the console (`Invite`): the link that sets
/// the password, and when it stops working.
pub fn invite(delivery: &Delivery, link: &str, expires: &str) -> PageText {
    PageText {
        subject: format!("[pagerd] Set your console password, {}", delivery.user),
        text: format!(
            "You have been invited to the pagerd console as {user}.\n\n\
             Choose your password here (the link works once, until {expires}):\n{link}\n\n\
             If you did not expect this, ignore it: nothing changes until the link is used.\n",
            user = delivery.user
        ),
    }
}

/// The words of an overdue-RCA reminder (`Purpose::RcaReminder`): which
/// incident, how late, and where to write it. `link` is the console's page.
pub fn rca_reminder(delivery: &Delivery, rca: &crate::rca::Rca, link: &str) -> PageText {
    let (days, to_admin) = match delivery.purpose {
        crate::delivery::Purpose::RcaReminder {
            days_overdue,
            to_admin,
            ..
        } => (days_overdue, to_admin),
        _ => (0, false),
    };
    let late = match days {
        0 => "due today".to_string(),
        1 => "1 day overdue".to_string(),
        n => format!("{n} days overdue"),
    };
    let due = rca.due.map(crate::time::rfc3339).unwrap_or_default();
    let whose = if to_admin {
        format!(
            "It is assigned to {}; you are told as an admin of team {}.",
            if rca.assignee.is_empty() {
                "nobody"
            } else {
                &rca.assignee
            },
            rca.team
        )
    } else {
        "It is assigned to you.".to_string()
    };
    PageText {
        // Not "#12": a reminder is no page of the incident, and must not read as one.
        subject: format!(
            "[pagerd] RCA {late}: incident {} on {}",
            rca.incident, rca.service
        ),
        text: format!(
            "The root cause analysis of incident #{id} on {service}, \"{title}\", was due \
             {due} and is {late}. {whose}\n\n\
             Write it (a short summary when customers were not affected) or mark the incident \
             a duplicate:\n{link}\n\n\
             This is a low-urgency reminder: it never pages. It comes daily until the RCA is done.\n",
            id = rca.incident,
            service = rca.service,
            title = rca.title,
        ),
    }
}

/// `[pagerd] #12 CRITICAL db-prod: Disk full`: the subject of a page.
pub fn subject(incident: &Incident) -> String {
    format!(
        "[pagerd] #{} {} {}: {}",
        incident.id,
        incident.severity.as_str().to_uppercase(),
        incident.service,
        incident.summary
    )
}

/// `#12 CRITICAL db-prod: Disk full. Reply 4 345 ack, 6 345 resolve, 5 345 escalate. Runbook: ...`
/// The reply code is the delivery id. The summary is shortened so that what
/// comes before the runbook fits one segment.
pub fn sms(incident: &Incident, delivery: &Delivery) -> String {
    let code = delivery.id;
    let head = format!(
        "#{} {} {}: ",
        incident.id,
        incident.severity.as_str().to_uppercase(),
        gsm7(&incident.service)
    );
    let replies = crate::reply::sms_instructions(code);
    let summary = gsm7(incident.summary.trim());
    let room = SMS_SEGMENT.saturating_sub(gsm7_len(&head) + gsm7_len(&replies) + 1);
    let mut out = head;
    out.push_str(&shorten(&summary, room.max(40)));
    if !out.ends_with('.') {
        out.push('.');
    }
    out.push_str(&replies);
    if !incident.runbook_url.is_empty() {
        let _ = write!(out, " Runbook: {}", gsm7(&incident.runbook_url));
    }
    if !incident.bridge_url.is_empty() {
        let _ = write!(out, " Bridge: {}", gsm7(&incident.bridge_url));
    }
    if !delivery.notice.is_empty() {
        let _ = write!(out, " {}", gsm7(&delivery.notice));
    }
    shorten(&out, SMS_MAX)
}

/// What a call says before its menu.
pub fn voice(incident: &Incident, delivery: &Delivery) -> String {
    let mut out = format!(
        "This is pager d. Incident {}, severity {}, on service {}. {}.",
        incident.id,
        incident.severity.as_str(),
        spoken(&incident.service),
        incident.summary.trim().trim_end_matches('.')
    );
    if !delivery.notice.is_empty() {
        let _ = write!(out, " {}", delivery.notice);
    }
    out
}

/// The keypad menu of a call (defined with the rest of the reply protocol).
pub use crate::reply::VOICE_MENU;

/// Plain-text email body.
pub fn email_text(incident: &Incident, delivery: &Delivery, links: Option<&EmailLinks>) -> String {
    let mut t = format!(
        "Incident #{id} on service {svc} is {status}.\n\nSummary:   {sum}\nSeverity:  {sev}\nUrgency:   {urg}\nSource:    {src}\nDedup key: {key}\n",
        id = incident.id,
        svc = incident.service,
        status = incident.status.as_str(),
        sum = incident.summary,
        sev = incident.severity.as_str(),
        urg = incident.urgency.as_str(),
        src = incident.source,
        key = incident.dedup_key,
    );
    if !incident.runbook_url.is_empty() {
        let _ = writeln!(t, "Runbook:   {}", incident.runbook_url);
    }
    if !incident.bridge_url.is_empty() {
        let _ = writeln!(t, "Bridge:    {}", incident.bridge_url);
    }
    if !incident.custom_details.is_empty() {
        t.push_str("\nDetails:\n");
        for (k, v) in &incident.custom_details {
            let _ = writeln!(t, "  {k}: {v}");
        }
    }
    if !delivery.notice.is_empty() {
        let _ = writeln!(t, "\n{}", delivery.notice);
    }
    if let Some(l) = links {
        let _ = write!(
            t,
            "\nAcknowledge: {}\nResolve:     {}\n",
            l.acknowledge, l.resolve
        );
    }
    let _ = write!(t, "\nOr: pagerctl incident ack {}\n", incident.id);
    t
}

/// HTML email body (the same facts as [`email_text`]).
pub fn email_html(incident: &Incident, delivery: &Delivery, links: Option<&EmailLinks>) -> String {
    let mut h = String::with_capacity(2048);
    let _ = write!(
        h,
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\
         <h2>#{id} {sev} &middot; {svc}</h2><p style=\"font-size:1.2em\">{sum}</p><table>",
        id = incident.id,
        sev = html(&incident.severity.as_str().to_uppercase()),
        svc = html(&incident.service),
        sum = html(&incident.summary),
    );
    let rows = [
        ("Status", incident.status.as_str()),
        ("Urgency", incident.urgency.as_str()),
        ("Source", incident.source.as_str()),
        ("Dedup key", incident.dedup_key.as_str()),
    ];
    for (k, v) in rows {
        let _ = write!(
            h,
            "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
            html(v)
        );
    }
    for (k, v) in &incident.custom_details {
        let _ = write!(
            h,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html(k),
            html(v)
        );
    }
    h.push_str("</table>");
    if !incident.runbook_url.is_empty() {
        let _ = write!(
            h,
            "<p>Runbook: <a href=\"{u}\">{u}</a></p>",
            u = html(&incident.runbook_url)
        );
    }
    if !incident.bridge_url.is_empty() {
        let _ = write!(
            h,
            "<p>Bridge: <a href=\"{u}\">{u}</a></p>",
            u = html(&incident.bridge_url)
        );
    }
    if !delivery.notice.is_empty() {
        let _ = write!(h, "<p><strong>{}</strong></p>", html(&delivery.notice));
    }
    if let Some(l) = links {
        let _ = write!(
            h,
            "<p><a href=\"{a}\" style=\"padding:8px 16px;background:#2b6cb0;color:#fff;text-decoration:none\">Acknowledge</a> \
             <a href=\"{r}\" style=\"padding:8px 16px;background:#2f855a;color:#fff;text-decoration:none\">Resolve</a></p>",
            a = html(&l.acknowledge),
            r = html(&l.resolve)
        );
    }
    let _ = write!(
        h,
        "<p style=\"color:#666\">Or: <code>pagerctl incident ack {}</code></p></body></html>",
        incident.id
    );
    h
}

/// Escape text for HTML element content and attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Service names read better spoken with spaces: `db-prod` → `db prod`.
fn spoken(s: &str) -> String {
    s.replace(['-', '_'], " ")
}

/// Non-ASCII characters of the GSM 03.38 basic set.
const GSM7_EXTRA: &str = "£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉÄÖÑÜ§¿äöñüà¡¤";

/// Map `s` into the GSM-7 basic set: typographic quotes and dashes to ASCII,
/// characters of the extension table (which cost two) to near equivalents,
/// anything else to `?`. Control characters become spaces.
pub fn gsm7(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '`' | '\u{00b4}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2013}' | '\u{2014}' | '~' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '[' | '{' => out.push('('),
            ']' | '}' => out.push(')'),
            '|' | '\\' => out.push('/'),
            '^' => out.push('\''),
            '\u{20ac}' => out.push_str("EUR"),
            c if c.is_control() => out.push(' '),
            c if c.is_ascii() || GSM7_EXTRA.contains(c) => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// Length in GSM-7 characters of text that [`gsm7`] produced.
pub fn gsm7_len(s: &str) -> usize {
    s.chars().count()
}

/// At most `max` characters, ending in `...` when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.truncate(out.trim_end().len());
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_maps_what_phones_cannot_show() {
        assert_eq!(
            gsm7("disk “full” – 90% … {x} naïve café"),
            "disk \"full\" - 90% ... (x) na?ve café"
        );
        assert_eq!(gsm7("a\nb"), "a b");
    }

    #[test]
    fn shorten_cuts_on_chars_with_an_ellipsis() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abc...");
        assert_eq!(shorten("éééééééé", 5), "éé...");
    }
}
