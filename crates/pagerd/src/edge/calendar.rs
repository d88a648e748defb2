//! Calendar feeds: `GET /v1/calendar/{token}.ics`, a user's or a
//! schedule's shifts (overrides included) for the next 60 days, at a secret
//! address that calendar apps poll without signing in.
//!
//! The token names the feed and its version and carries an HMAC of both
//! under a key derived from the cluster's link key: any node answers it, no
//! other cluster's does, and rotating the feed (`RotateCalendar`, which moves
//! the replicated version) turns every older address into a 404 at once.

use crate::edge::console::session::derived;
use crate::node::{now_ms, Node};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use pager_core::command::CalendarSubject;
use pager_core::ical::{self, FeedShift, FEED_DAYS};
use sha2::Sha256;
use std::sync::Arc;
use subtle::ConstantTimeEq;

const LABEL: &str = "pagerd calendar feed v1";
const DAY_MS: u64 = 86_400_000;

fn mac(link_key: &str, subject: &CalendarSubject, version: u64) -> Option<String> {
    let key = derived(link_key, LABEL)?;
    let mut m = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    m.update(subject.key().as_bytes());
    m.update(b"\0");
    m.update(version.to_string().as_bytes());
    let bytes = m.finalize().into_bytes();
    Some(bytes.iter().take(20).map(|b| format!("{b:02x}")).collect())
}

/// The feed's token at `version`: `user.alice.0.<mac>`; `None` before the
/// cluster has a link key (it never elected a leader).
pub fn token(link_key: &str, subject: &CalendarSubject, version: u64) -> Option<String> {
    let (kind, name) = match subject {
        CalendarSubject::User(u) => ("user", u),
        CalendarSubject::Schedule(s) => ("schedule", s),
    };
    Some(format!(
        "{kind}.{name}.{version}.{}",
        mac(link_key, subject, version)?
    ))
}

/// The feed a token names, if its MAC holds (the version is checked
/// against the state by the caller). Names never hold a dot's neighbour
/// ambiguity: the kind is first and the version and MAC last.
pub fn parse(link_key: &str, token: &str) -> Option<(CalendarSubject, u64)> {
    let (kind, rest) = token.split_once('.')?;
    let (rest, tag) = rest.rsplit_once('.')?;
    let (name, version) = rest.rsplit_once('.')?;
    let version: u64 = version.parse().ok()?;
    let subject = match kind {
        "user" => CalendarSubject::User(name.to_string()),
        "schedule" => CalendarSubject::Schedule(name.to_string()),
        _ => return None,
    };
    let want = mac(link_key, &subject, version)?;
    bool::from(want.as_bytes().ct_eq(tag.as_bytes())).then_some((subject, version))
}

fn gone() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "status": "error",
            "message": "token: no calendar feed has this address (it may have been rotated)"
        })),
    )
        .into_response()
}

/// `GET /v1/calendar/{token}.ics`
pub async fn feed(State(node): State<Arc<Node>>, Path(file): Path<String>) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return gone();
    };
    let now = now_ms();
    // Under the state's lock only the check and the document (shared); the
    // 60 days of shifts are worked out after it.
    let found = node.read(|s| {
        let (subject, version) = parse(s.link_key.expose(), token)?;
        (version == s.calendar_version(&subject)).then(|| (subject, s.config.clone()))
    });
    let body = found.and_then(|(subject, doc)| {
        let shifts = doc.feed_shifts(&subject, now, now + FEED_DAYS * DAY_MS)?;
        let name = match &subject {
            CalendarSubject::User(u) => format!("{u} on call (pagerd)"),
            CalendarSubject::Schedule(sc) => format!("{sc} on call (pagerd)"),
        };
        let feed: Vec<FeedShift<'_>> = shifts
            .iter()
            .map(|(schedule, shift)| FeedShift { schedule, shift })
            .collect();
        Some(ical::feed(&name, &feed, now))
    });
    match body {
        Some(body) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            body,
        )
            .into_response(),
        None => gone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_feed_version_and_cluster() {
        let alice = CalendarSubject::User("alice.smith".into());
        let t = token("cluster-key", &alice, 7).unwrap();
        assert_eq!(parse("cluster-key", &t), Some((alice.clone(), 7)));
        assert_eq!(parse("other-cluster", &t), None);
        let forged = t.replacen(".7.", ".8.", 1);
        assert_eq!(parse("cluster-key", &forged), None);
        let as_schedule = t.replacen("user.", "schedule.", 1);
        assert_eq!(parse("cluster-key", &as_schedule), None);
        assert_eq!(token("", &alice, 0), None, "no link key, no feeds");
    }
}
