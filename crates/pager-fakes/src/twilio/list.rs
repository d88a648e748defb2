//! `GET Messages.json`: the account's messages, outbound and inbound, newest first, filtered
//! and paged as Twilio's `ListMessage` operation says.
//!
//! Filters (all optional, combined with AND): `To`, `From`, and on the UTC day of `date_sent`
//! (a message without one, i.e. still `queued`, matches none of them): `DateSent` (that day),
//! `DateSent<` (on or before), `DateSent>` (on or after). A date is `YYYY-MM-DD`, or anything
//! that starts with one, `MM/DD/YYYY…`, or RFC 2822; another value is `400` with code 20001.
//!
//! Paging: `PageSize` (default 50, held within 1..=1000), `Page` (0-based) and `PageToken`:
//! `PA<sid>` starts after that message, `PB<sid>` ends before it, so pages stay put while
//! new messages arrive. The envelope has the spec's `messages`, `page`, `page_size`, `start`,
//! `end`, `uri`, `first_page_uri`, `next_page_uri` and `previous_page_uri`.

use std::time::SystemTime;

use axum::http::StatusCode;
use jiff::civil::Date;
use serde_json::json;

use super::{form, Checked, RecordedMessage, Shared, Submission};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The filters that a request names, echoed in the paging URIs in Twilio's order.
const FILTERS: [&str; 5] = ["To", "From", "DateSent", "DateSent<", "DateSent>"];

impl Shared {
    pub(super) fn list_messages(&self, request: &Submission) -> Checked {
        let bad = |message: String| Err((400, 20001, message));
        let mut filters: Vec<(&str, &str)> = Vec::new();
        for name in FILTERS {
            if let Some(value) = request.param(name) {
                filters.push((name, value));
            }
        }
        let mut days: Vec<(&str, Date)> = Vec::new();
        for &(name, value) in &filters {
            if name.starts_with("DateSent") {
                match parse_day(value) {
                    Some(day) => days.push((name, day)),
                    None => return bad(format!("Invalid {name} value: {value}")),
                }
            }
        }
        let page_size = match request.param("PageSize").map(str::parse::<i64>) {
            None => DEFAULT_PAGE_SIZE,
            Some(Ok(n)) => usize::try_from(n.max(1)).map_or(1, |n| n.min(MAX_PAGE_SIZE)),
            Some(Err(_)) => return bad("Invalid PageSize value".to_owned()),
        };
        let page = match request.param("Page").map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => return bad("Invalid Page value".to_owned()),
        };

        let mut matching: Vec<RecordedMessage> = {
            let records = self.board.lock();
            records
                .messages
                .iter()
                .chain(&records.inbound)
                .filter(|m| matches(m, &filters, &days))
                .cloned()
                .collect()
        };
        // Newest first; among equal times, the later created first.
        matching.reverse();
        matching.sort_by_key(|m| std::cmp::Reverse(m.received_at));

        let position = |sid: &str| matching.iter().position(|m| m.sid == sid);
        let start = match request.param("PageToken") {
            Some(token) => match (token.strip_prefix("PA"), token.strip_prefix("PB")) {
                (Some(after), _) => match position(after) {
                    Some(i) => i + 1,
                    None => return bad(format!("Invalid PageToken {token}")),
                },
                (_, Some(before)) => match position(before) {
                    Some(i) => i.saturating_sub(page_size),
                    None => return bad(format!("Invalid PageToken {token}")),
                },
                _ => return bad(format!("Invalid PageToken {token}")),
            },
            None => page.saturating_mul(page_size),
        }
        .min(matching.len());
        let end = (start + page_size).min(matching.len());
        let items = &matching[start..end];

        let path = &request.path;
        let uri = |page: usize, token: Option<String>| {
            let mut query: Vec<(&str, String)> =
                filters.iter().map(|&(k, v)| (k, v.to_owned())).collect();
            query.push(("PageSize", page_size.to_string()));
            query.push(("Page", page.to_string()));
            if let Some(token) = token {
                query.push(("PageToken", token));
            }
            format!("{path}?{}", form::encode(&query))
        };
        let next_page_uri = match items.last() {
            Some(last) if end < matching.len() => {
                Some(uri(page + 1, Some(format!("PA{}", last.sid))))
            }
            _ => None,
        };
        let previous_page_uri = match items.first() {
            Some(first) if page > 0 && start > 0 => {
                Some(uri(page - 1, Some(format!("PB{}", first.sid))))
            }
            _ => None,
        };
        let this_token = request.param("PageToken").map(str::to_owned);
        let body = json!({
            "end": if items.is_empty() { start } else { end - 1 },
            "first_page_uri": uri(0, None),
            "messages": items.iter().map(|m| self.message_resource(m)).collect::<Vec<_>>(),
            "next_page_uri": next_page_uri,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": previous_page_uri,
            "start": start,
            "uri": uri(page, this_token),
        });
        Ok((StatusCode::OK, body))
    }
}

fn matches(message: &RecordedMessage, filters: &[(&str, &str)], days: &[(&str, Date)]) -> bool {
    for &(name, value) in filters {
        let ok = match name {
            "To" => message.to == value,
            "From" => message.from.as_deref() == Some(value),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    if days.is_empty() {
        return true;
    }
    let Some(sent) = message.date_sent.and_then(utc_day) else {
        return false;
    };
    days.iter().all(|&(name, day)| match name {
        "DateSent" => sent == day,
        "DateSent<" => sent <= day,
        "DateSent>" => sent >= day,
        _ => true,
    })
}

fn utc_day(time: SystemTime) -> Option<Date> {
    let at = jiff::Timestamp::try_from(time).ok()?;
    Some(at.to_zoned(jiff::tz::TimeZone::UTC).date())
}

/// `2008-01-02`, `2019-06-11 22:05:25.000`, `06/11/2019 22:05:25 MST`, or RFC 2822
/// (`Wed, 19 Jun 2019 22:04:00 -0000`): the spec's examples of what `DateSent` takes.
fn parse_day(value: &str) -> Option<Date> {
    let value = value.trim();
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<i16>().ok());
    if let Some(ymd) = value
        .get(..10)
        .filter(|s| s.as_bytes().get(4) == Some(&b'-'))
    {
        let mut parts = ymd.split('-');
        let (y, m, d) = (
            number(parts.next()),
            number(parts.next()),
            number(parts.next()),
        );
        return Date::new(y?, i8::try_from(m?).ok()?, i8::try_from(d?).ok()?).ok();
    }
    if let Some(mdy) = value
        .get(..10)
        .filter(|s| s.as_bytes().get(2) == Some(&b'/'))
    {
        let mut parts = mdy.split('/');
        let (m, d, y) = (
            number(parts.next()),
            number(parts.next()),
            number(parts.next()),
        );
        return Date::new(y?, i8::try_from(m?).ok()?, i8::try_from(d?).ok()?).ok();
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some(at.to_zoned(jiff::tz::TimeZone::UTC).date())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_date_formats() {
        let day = Date::new(2019, 6, 11).ok();
        assert_eq!(parse_day("2019-06-11"), day);
        assert_eq!(parse_day("2019-06-11 22:05:25.000"), day);
        assert_eq!(parse_day("06/11/2019 22:05:25 MST"), day);
        assert_eq!(
            parse_day("Wed, 19 Jun 2019 22:04:00 -0000"),
            Date::new(2019, 6, 19).ok()
        );
        assert_eq!(parse_day("2019-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
        assert_eq!(parse_day(""), None);
    }
}
