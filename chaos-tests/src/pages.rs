//! What the providers received: every SMS and call at the fake Twilio and every mail at the
//! SMTP server, as one list of [`ObservedPage`]s. The incident a page belongs to is read from
//! its text, which `pager-core`'s renderer starts with `[pagerd] #<incident>` (SMS body, mail
//! subject) or `Incident <incident>.` (voice). The delivery it carries out is read from what
//! pagerd puts in each page for its own use: an SMS's reply code (`Reply 4 <delivery> ack`),
//! a mail's Message-ID (`<pagerd.<delivery>.<random>@...>`), a call's TwiML URL
//! (`/twilio/voice/<delivery>?a=...`). The node that sent it is read off the TCP source the
//! provider recorded, when the node reached the provider through its own gate
//! ([`crate::proxy`]).

use crate::proxy;
use pager_fakes::smtp::SmtpServer;
use pager_fakes::twilio::{FakeTwilio, RecordedMessage};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageChannel {
    Sms,
    Voice,
    Email,
}

impl PageChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            PageChannel::Sms => "sms",
            PageChannel::Voice => "voice",
            PageChannel::Email => "email",
        }
    }
}

/// One page a provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPage {
    pub channel: PageChannel,
    /// Phone number or email address.
    pub to: String,
    /// `None` when the text names no incident (not a page of pagerd's).
    pub incident: Option<u64>,
    /// When the provider accepted it (the fake's clock: this process's).
    pub received_at: SystemTime,
    /// When the sender began the request: the same as `received_at` for Twilio (one HTTP
    /// request); for email the session's `EHLO` (pagerd opens one SMTP session per mail, which
    /// takes several round trips, and a sender paused in the middle finishes it when resumed).
    pub sent_at: SystemTime,
    /// The delivery it carries out; `None` when the page does not say.
    pub delivery: Option<u64>,
    /// The node that sent it; `None` when it did not come through a node's gate.
    pub sender: Option<u64>,
}

/// Every page received so far, oldest first.
pub fn observed(twilio: Option<&FakeTwilio>, smtp: Option<&SmtpServer>) -> Vec<ObservedPage> {
    let mut pages = Vec::new();
    if let Some(t) = twilio {
        pages.extend(t.messages().into_iter().map(|m| ObservedPage {
            channel: PageChannel::Sms,
            incident: incident_in(&m.body),
            delivery: number_after(&m.body, "Reply 4 "),
            sender: m.remote.and_then(|a| proxy::node_of(a.ip())),
            to: m.to,
            received_at: m.received_at,
            sent_at: m.received_at,
        }));
        pages.extend(t.calls().into_iter().map(|c| {
            ObservedPage {
                channel: PageChannel::Voice,
                incident: c.twiml.as_deref().and_then(incident_in),
                delivery: c
                    .url
                    .as_deref()
                    .and_then(|u| number_after(u, "/twilio/voice/")),
                sender: c.remote.and_then(|a| proxy::node_of(a.ip())),
                to: c.to,
                received_at: c.received_at,
                sent_at: c.received_at,
            }
        }));
    }
    if let Some(s) = smtp {
        for m in s.mails() {
            let incident = m.header("Subject").as_deref().and_then(incident_in);
            let delivery = m
                .header("Message-ID")
                .as_deref()
                .and_then(|id| number_after(id, "<pagerd."));
            for to in &m.to {
                pages.push(ObservedPage {
                    channel: PageChannel::Email,
                    to: to.clone(),
                    incident,
                    received_at: m.received_at,
                    sent_at: m.started_at,
                    delivery,
                    sender: m.client_ip.and_then(proxy::node_of),
                });
            }
        }
    }
    pages.sort_by_key(|p| p.received_at);
    pages
}

/// Wait for the first SMS to `to` about `incident` (woken by each message the fake records).
pub async fn wait_for_sms(
    twilio: &FakeTwilio,
    incident: u64,
    to: &str,
    timeout: Duration,
) -> anyhow::Result<RecordedMessage> {
    let deadline = Instant::now() + timeout;
    loop {
        let messages = twilio.messages();
        if let Some(m) = messages
            .iter()
            .find(|m| m.to == to && incident_in(&m.body) == Some(incident))
        {
            return Ok(m.clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!("no SMS to {to} about incident {incident} within {timeout:?}");
        }
        // Returns at the next message, or when `left` ran out.
        let _ = twilio.wait_for_messages(messages.len() + 1, left).await;
    }
}

/// The number right after the first `marker` in `text`.
pub fn number_after(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The incident id in a page's text: the number an SMS starts with (`#12 CRITICAL ...`), or
/// the number after `[pagerd] #` or `Incident `.
pub fn incident_in(text: &str) -> Option<u64> {
    let number = |rest: &str| -> Option<u64> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    if let Some(id) = text.strip_prefix('#').and_then(number) {
        return Some(id);
    }
    ["[pagerd] #", "Incident "]
        .iter()
        .find_map(|marker| number(&text[text.find(marker)? + marker.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_are_read_from_each_channel_text() {
        assert_eq!(
            incident_in("[pagerd] #42 CRITICAL database: disk full. Ack: pagerctl incident ack 42"),
            Some(42)
        );
        assert_eq!(
            incident_in("<Say>pagerd alert. Incident 7. Service db.</Say>"),
            Some(7)
        );
        assert_eq!(
            incident_in("#12 CRITICAL db-prod: Disk full. Reply 4 345 ack, 6 345 resolve."),
            Some(12)
        );
        assert_eq!(
            incident_in("This is pager d. Incident 9, severity critical"),
            Some(9)
        );
        assert_eq!(incident_in("hello"), None);
        assert_eq!(incident_in("#x"), None);
        assert_eq!(incident_in("[pagerd] #x"), None);
    }

    #[test]
    fn delivery_ids_are_read_from_what_pagerd_puts_in_each_page() {
        let sms = "#12 CRITICAL db-prod: Disk full. Reply 4 345 ack, 6 345 resolve.";
        assert_eq!(number_after(sms, "Reply 4 "), Some(345));
        assert_eq!(
            number_after("<pagerd.77.0a1b2c@pagerd.test>", "<pagerd."),
            Some(77)
        );
        assert_eq!(
            number_after("http://127.0.0.1:9/twilio/voice/5?a=2", "/twilio/voice/"),
            Some(5)
        );
        assert_eq!(number_after("no code", "Reply 4 "), None);
    }
}
