//! What a failed HTTP exchange means, the same for every client: building the pooled client,
//! checking base URLs, reading `Retry-After`, and classifying reqwest's errors by whether the
//! request can have reached the other side.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::Url;

use crate::{ConfigError, ErrorKind, OutboundError, CONNECT_TIMEOUT};

/// Answers are read up to this many bytes; a provider's answer to us is small, and a
/// subscriber's (webhooks) may be anything.
pub(crate) const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Whether repeating a request can duplicate its effect. Only a `Mutating` one is ever in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A read, or a change that lands the same however often it is made (opening a DM).
    Idempotent,
    /// Posting a message, creating an issue or a comment, delivering a webhook.
    Mutating,
}

/// One pooled client: no redirects (a redirect means a wrong URL, and following it could turn a
/// POST into a GET or carry the credentials elsewhere), a bounded connect, our user agent.
pub(crate) fn http_client(what: &'static str) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pagerd-outbound/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| ConfigError::HttpClient { what, source })
}

/// `https://…`, or plain `http://` to a loopback host (a test double); no query, fragment or
/// credentials. Returned without a trailing `/`.
pub(crate) fn check_base_url(what: &'static str, base_url: &str) -> Result<Url, ConfigError> {
    let fail = |reason| ConfigError::BaseUrl {
        what,
        url: base_url.to_owned(),
        reason,
    };
    let trimmed = base_url.trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|_| fail("not a URL"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(fail("must not carry a query, a fragment or credentials"));
    }
    if url.cannot_be_a_base() || !url.has_host() {
        return Err(fail("not an absolute URL with a host"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(fail("plain http is only allowed to a loopback host")),
        _ => Err(fail("scheme must be https")),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `base` with `segments` appended, each percent-encoded as one path segment (an issue key
/// cannot climb out of its path with `../`).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// `Retry-After` as seconds (Slack, Jira) or an HTTP date (RFC 9110 allows both).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let now = jiff::Timestamp::try_from(now).ok()?;
    let secs = at.as_second().saturating_sub(now.as_second()).max(0);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// The kind for an HTTP status that the provider's body did not explain better.
pub(crate) fn status_kind(status: u16, headers: &HeaderMap) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Auth,
        429 => ErrorKind::RateLimited {
            retry_after: retry_after(headers, SystemTime::now()),
        },
        408 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// A 5xx answer to a mutating request may come after the work was done, except a 503, which
/// says the request was not taken.
pub(crate) fn status_in_doubt(status: u16, effect: Effect) -> bool {
    effect == Effect::Mutating && (500..=599).contains(&status) && status != 503
}

/// A request that got no (complete) answer. `what` names the request (`slack chat.postMessage`),
/// `timeout` is the bound that applied. The error's URL is left out: it may carry an email
/// address or a subscriber's token in its query.
pub(crate) fn transport_error(
    err: reqwest::Error,
    what: &str,
    effect: Effect,
    timeout: Duration,
) -> OutboundError {
    let err = err.without_url();
    let detail = pager_notify::error_chain(&err);
    if err.is_builder() {
        return OutboundError::permanent(format!("build the {what} request: {detail}"));
    }
    if err.is_connect() {
        // Nothing was written: DNS, TCP connect or TLS handshake failed (or timed out).
        return OutboundError::transient(format!("connect for {what}: {detail}"));
    }
    let doubt = effect == Effect::Mutating;
    let message = if err.is_timeout() {
        format!("no answer to {what} within {timeout:?}")
    } else {
        format!("{what} failed without an answer: {detail}")
    };
    let message = if doubt {
        format!("{message}; it may have taken effect")
    } else {
        message
    };
    OutboundError::transient(message).in_doubt(doubt)
}

/// Read at most [`MAX_ANSWER_BYTES`] of an answer's body. A failure while reading is a
/// transport error (the status line came, the rest did not).
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    what: &str,
    effect: Effect,
    timeout: Duration,
) -> Result<Vec<u8>, OutboundError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_ANSWER_BYTES {
                    return Ok(body);
                }
            }
            Ok(None) => return Ok(body),
            Err(err) => return Err(transport_error(err, what, effect, timeout)),
        }
    }
}

/// `message` with every occurrence of `secret` replaced: a provider that echoes a request back
/// must not put our token into a log.
pub(crate) fn redact(message: &str, secret: &str) -> String {
    if secret.len() < 4 {
        return message.to_owned();
    }
    message.replace(secret, "[redacted]")
}

/// At most `max` characters of `text` (cut on a character boundary), `…` marking a cut.
pub(crate) fn cut_chars(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some(_) => {
            let keep: String = text.chars().take(max.saturating_sub(1)).collect();
            std::borrow::Cow::Owned(keep + "…")
        }
    }
}

/// `url` up to its query string, which may carry a token.
pub(crate) fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::UNIX_EPOCH;

    #[test]
    fn base_urls() {
        let ok = |u: &str| check_base_url("x", u).map(|u| u.to_string());
        assert_eq!(
            ok("https://slack.com/api/").unwrap(),
            "https://slack.com/api"
        );
        assert!(ok("http://127.0.0.1:9/api").is_ok());
        assert!(ok("http://[::1]:9").is_ok());
        assert!(ok("http://localhost:9").is_ok());
        assert!(ok("http://slack.com/api").is_err());
        assert!(ok("ftp://slack.com").is_err());
        assert!(ok("https://u:p@x.atlassian.net").is_err());
        assert!(ok("https://x.atlassian.net?a=b").is_err());
        assert!(ok("slack.com").is_err());
    }

    #[test]
    fn joined_segments_are_encoded() {
        let base = check_base_url("x", "https://x.atlassian.net").unwrap();
        let url = join(
            &base,
            &["rest", "api", "3", "issue", "../../admin", "comment"],
        );
        assert_eq!(
            url.as_str(),
            "https://x.atlassian.net/rest/api/3/issue/..%2F..%2Fadmin/comment"
        );
        let base = check_base_url("x", "http://127.0.0.1:1/api/").unwrap();
        assert_eq!(
            join(&base, &["chat.postMessage"]).as_str(),
            "http://127.0.0.1:1/api/chat.postMessage"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:50:07 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut_chars("abc", 3), "abc");
        assert_eq!(cut_chars("abcd", 3), "ab…");
        assert_eq!(cut_chars("🔥🔥🔥🔥", 3), "🔥🔥…");
        assert_eq!(cut_chars("", 0), "");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("bad token xoxb-123-abc here", "xoxb-123-abc"),
            "bad token [redacted] here"
        );
        assert_eq!(redact("a", ""), "a");
    }
}
