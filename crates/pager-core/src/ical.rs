//! On-call shifts as an iCalendar feed (RFC 5545) that Google Calendar and
//! Outlook subscribe to.
//!
//! Times are written in UTC (`DTSTART:20261207T090000Z`): the shifts are
//! already instants, computed in each schedule's own zone (so a shift that
//! spans a DST change is as long as the wall clock says), and a UTC time
//! needs no VTIMEZONE that a client could read differently.
//!
//! Written here rather than with a crate: the feed is one event type, and
//! the rules that matter (CRLF, escaping, folding at 75 octets) are a few
//! lines; the Rust iCalendar writers pull in a second date library.

use crate::schedule::Shift;
use crate::time::Millis;
use std::fmt::Write as _;

/// Days of shifts a feed holds, from now.
pub const FEED_DAYS: u64 = 60;

/// One shift of one schedule, for a feed.
pub struct FeedShift<'a> {
    /// The schedule's name.
    pub schedule: &'a str,
    /// The shift, overrides applied.
    pub shift: &'a Shift,
}

/// `ms` as an iCalendar UTC date-time: `20261207T090000Z`.
pub fn utc(ms: Millis) -> String {
    let s = crate::time::rfc3339(ms); // 2026-12-07T09:00:00Z
    s.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// TEXT value escaping (RFC 5545 3.3.11).
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded at 75 octets (never inside a character), CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

/// The feed named `name` (`alice's on-call shifts`) with `shifts`, stamped `now`.
/// Each event's UID is stable for the same shift (schedule, user, start), so
/// a client updates an event instead of adding a second when the feed is
/// read again.
pub fn feed(name: &str, shifts: &[FeedShift<'_>], now: Millis) -> String {
    let mut out = String::new();
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//pagerd//on-call shifts//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ] {
        line(&mut out, l);
    }
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    line(&mut out, "REFRESH-INTERVAL;VALUE=DURATION:PT1H");
    line(&mut out, "X-PUBLISHED-TTL:PT1H");
    let stamp = utc(now);
    for s in shifts {
        let sh = s.shift;
        let from = match &sh.layer {
            Some(layer) => format!("layer {layer}"),
            None => "an override".to_string(),
        };
        line(&mut out, "BEGIN:VEVENT");
        line(
            &mut out,
            &format!(
                "UID:{}-{}-{}@pagerd",
                uid_part(s.schedule),
                uid_part(&sh.user),
                sh.start
            ),
        );
        line(&mut out, &format!("DTSTAMP:{stamp}"));
        line(&mut out, &format!("DTSTART:{}", utc(sh.start)));
        line(&mut out, &format!("DTEND:{}", utc(sh.end)));
        line(
            &mut out,
            &format!(
                "SUMMARY:{}",
                text(&format!("On call: {} ({})", s.schedule, sh.user))
            ),
        );
        line(
            &mut out,
            &format!(
                "DESCRIPTION:{}",
                text(&format!(
                    "{} is on call for schedule {} from {}.",
                    sh.user, s.schedule, from
                ))
            ),
        );
        line(&mut out, "TRANSP:TRANSPARENT");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

/// A name as part of a UID: names are `[A-Za-z0-9_.-]` already; anything
/// else is written as its code point.
fn uid_part(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c);
        } else {
            let _ = write!(out, "~{:x}", c as u32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let mut out = String::new();
        let content = format!("SUMMARY:{}", "é".repeat(60));
        line(&mut out, &content);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("{content}\r\n"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }

    #[test]
    fn instants_are_utc_basic_format() {
        assert_eq!(utc(1_796_634_930_000), "20261207T091530Z");
    }
}
