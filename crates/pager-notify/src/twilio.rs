//! Twilio's REST API (2010-04-01): create a Message (SMS) or a Call, and say precisely how a
//! failure happened, because the caller's retry decides between a missed and a duplicate page.
//!
//! Requests follow Twilio's OpenAPI description (`twilio_api_v2010.json`): form-encoded
//! parameters, HTTP basic auth with the account SID and auth token, a `201` with the created
//! resource on success and `{code, message, more_info, status}` on failure.
//!
//! Three requests:
//! - `POST Messages.json`: one SMS.
//! - `POST Calls.json`: one call, either saying the page from inline `Twiml`, or, when the page
//!   carries a [`VoiceCall`], fetching its TwiML from our own `Url` (with a `FallbackUrl`, status
//!   callbacks for every progress event, and answering machine detection if asked).
//! - `GET Messages.json?To=…&DateSent>=…`: the reconciliation lookup behind
//!   [`Notifier::find_sms`](crate::Notifier::find_sms), which tells whether a page whose send
//!   ended in doubt went out after all.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::error::{NotifyConfigError, SendError};
use crate::settings::{Secret, TwilioSettings};
use crate::{error_chain, mask, Page, Sent};

/// Twilio's limit on a message `Body`, in characters.
pub const MAX_SMS_BODY: usize = 1600;
/// Twilio's limit on a call's `Twiml` parameter, in characters.
pub const MAX_TWIML: usize = 4000;
/// Seconds a called phone rings before Twilio gives up (Twilio's default is 60, the maximum 600).
/// Voicemail may answer first; the interactive flow will tell a person from a machine.
pub const CALL_RING_TIMEOUT_SECS: u32 = 60;

/// Twilio error codes that will not go away by sending the same request again.
pub const PERMANENT_CODES: &[i64] = &[
    20003, // authentication failed
    20404, // no such resource (wrong account SID or base URL)
    21211, // invalid 'To' phone number
    21408, // permission to send to this region not enabled
    21606, // 'From' is not a message-capable number of this account
    21610, // recipient unsubscribed (replied STOP)
    21614, // 'To' is not a mobile number
];

/// Twilio error codes that mean "try again later" whatever the HTTP status says.
pub const RETRYABLE_CODES: &[i64] = &[
    20429, // too many requests
    30001, // queue overflow
];

/// Used as the provider id when Twilio answered 2xx but its body could not be read: the
/// message or call exists, only its SID is unknown.
pub const UNKNOWN_SID: &str = "twilio-sid-unknown";

/// Twilio's maximum for a call's `Timeout` (ring time), in seconds.
pub const MAX_CALL_RING_TIMEOUT_SECS: u32 = 600;
/// The call progress events a [`VoiceCall`] subscribes its `StatusCallback` to: all of them.
pub const CALL_STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];
/// How far a message's `date_created` may lie before the `since` of a lookup and still count:
/// Twilio's clock and ours disagree by this much at most.
pub const LOOKUP_CLOCK_SKEW_MS: u64 = 60_000;
/// Messages asked for per page of a lookup (Twilio's default is 50, its maximum 1,000).
pub const LOOKUP_PAGE_SIZE: u32 = 50;
/// Pages a lookup reads at most after its first one: a bound on its cost and its time.
pub const LOOKUP_MAX_PAGES: usize = 5;

/// A call whose TwiML Twilio fetches from our own HTTP endpoint instead of taking it inline,
/// so that the responder can press keys (acknowledge, escalate) and we hear how the call went.
#[derive(Clone, PartialEq, Eq)]
pub struct VoiceCall {
    /// Absolute `http(s)` URL that answers Twilio's POST with TwiML when the call connects.
    pub url: String,
    /// Fetched instead when `url` fails (5xx, timeout, unreachable, invalid TwiML).
    pub fallback_url: Option<String>,
    /// Receives a POST for each progress event: `initiated`, `ringing`, `answered`,
    /// `completed` (the last with the final `CallStatus`, e.g. `no-answer` or `busy`).
    pub status_callback: Option<String>,
    /// Seconds to ring before giving up; 0 means Twilio's default (60), more than 600 is cut to
    /// 600.
    pub timeout_secs: u32,
    /// Ask Twilio to tell a person from an answering machine (`MachineDetection=Enable`): the
    /// TwiML request then carries `AnsweredBy` (`human`, `machine_start`, `fax`, `unknown`).
    pub machine_detection: bool,
}

impl fmt::Debug for VoiceCall {
    /// URLs without their query string: it may carry a per-call token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceCall")
            .field("url", &without_query(&self.url))
            .field(
                "fallback_url",
                &self.fallback_url.as_deref().map(without_query),
            )
            .field(
                "status_callback",
                &self.status_callback.as_deref().map(without_query),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("machine_detection", &self.machine_detection)
            .finish()
    }
}

/// A message that a lookup found: the page went out (or is on its way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMessage {
    /// `SM…`, the Message SID.
    pub sid: String,
    /// Twilio's status: `queued`, `sending`, `sent`, `delivered`, `undelivered`, `failed`, ….
    pub status: String,
    /// When Twilio created the message; `None` only when Twilio's date could not be read (the
    /// message then matched the `DateSent` filter, so it was sent on or after `since`'s day).
    pub date_created_unix_ms: Option<u64>,
}

/// One account's Messages and Calls endpoints, with one pooled HTTP client.
#[derive(Debug)]
pub(crate) struct TwilioClient {
    http: reqwest::Client,
    /// The base URL as configured (no trailing `/`): Twilio's `next_page_uri` paths start at
    /// its API root, which is here.
    base: String,
    messages_url: String,
    calls_url: String,
    account_sid: String,
    auth_token: Secret,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    timeout: Duration,
}

/// The part of Twilio's Message or Call resource that we keep.
#[derive(Debug, Deserialize)]
struct Created {
    sid: Option<String>,
    status: Option<String>,
}

/// The part of Twilio's `ListMessageResponse` that a lookup reads.
#[derive(Debug, Deserialize)]
struct MessageList {
    #[serde(default)]
    messages: Vec<ListedMessage>,
    next_page_uri: Option<String>,
}

/// The part of an `api.v2010.account.message` that a lookup reads.
#[derive(Debug, Deserialize)]
struct ListedMessage {
    sid: Option<String>,
    body: Option<String>,
    status: Option<String>,
    date_created: Option<String>,
}

/// Twilio's error body, e.g. `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Resource {
    Message,
    Call,
    MessageList,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Message => "message",
            Resource::Call => "call",
            Resource::MessageList => "message list",
        }
    }
}

impl TwilioClient {
    pub(crate) fn new(settings: &TwilioSettings) -> Result<TwilioClient, NotifyConfigError> {
        if !is_sid(&settings.account_sid, "AC") {
            return Err(NotifyConfigError::TwilioAccountSid {
                len: settings.account_sid.chars().count(),
            });
        }
        if settings.auth_token.expose().is_empty() {
            return Err(NotifyConfigError::TwilioAuthToken);
        }
        let from = settings.from.clone().filter(|f| !f.trim().is_empty());
        let messaging_service_sid = settings
            .messaging_service_sid
            .clone()
            .filter(|s| !s.trim().is_empty());
        if let Some(sid) = &messaging_service_sid {
            if !is_sid(sid, "MG") {
                return Err(NotifyConfigError::TwilioMessagingServiceSid);
            }
        }
        if from.is_none() && messaging_service_sid.is_none() {
            return Err(NotifyConfigError::TwilioNoSender);
        }
        if settings.timeout.is_zero() {
            return Err(NotifyConfigError::ZeroTimeout { what: "twilio" });
        }
        let base = check_base_url(&settings.base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout((settings.timeout / 2).min(TwilioSettings::MAX_CONNECT_TIMEOUT))
            .timeout(settings.timeout)
            // Twilio's API does not redirect; a redirect means a wrong base URL, and following
            // it could turn the POST into a GET or carry the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pagerd-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotifyConfigError::HttpClient)?;
        let account = format!("{base}/2010-04-01/Accounts/{}", settings.account_sid);
        Ok(TwilioClient {
            http,
            base: base.clone(),
            messages_url: format!("{account}/Messages.json"),
            calls_url: format!("{account}/Calls.json"),
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            from,
            messaging_service_sid,
            timeout: settings.timeout,
        })
    }

    /// Create one Message. Not idempotent: Twilio has no idempotency key for it, so a retry
    /// after an in-doubt error may deliver the SMS twice.
    pub(crate) async fn send_sms(&self, page: &Page) -> Result<Sent, SendError> {
        let text = page_text(page);
        let body = sms_body(&text);
        let mut form: Vec<(&str, &str)> = vec![("To", &page.address)];
        if let Some(from) = &self.from {
            form.push(("From", from));
        }
        if let Some(sid) = &self.messaging_service_sid {
            form.push(("MessagingServiceSid", sid));
        }
        form.push(("Body", &body));
        self.create(Resource::Message, &self.messages_url, &form, page)
            .await
    }

    /// Create one Call: with `page.voice`, one that fetches its TwiML from our URL; without,
    /// one that says the page twice. Not idempotent: a retry after an in-doubt error may ring
    /// the phone twice.
    pub(crate) async fn call(&self, page: &Page) -> Result<Sent, SendError> {
        let Some(from) = &self.from else {
            return Err(SendError::permanent(
                "twilio.from is not set: a voice call needs a caller id (a messaging service cannot call)",
            ));
        };
        let Some(voice) = &page.voice else {
            let twiml = twiml(&page_text(page));
            let ring_timeout = CALL_RING_TIMEOUT_SECS.to_string();
            let form: [(&str, &str); 4] = [
                ("To", &page.address),
                ("From", from),
                ("Twiml", &twiml),
                ("Timeout", &ring_timeout),
            ];
            return self
                .create(Resource::Call, &self.calls_url, &form, page)
                .await;
        };
        check_webhook_url("voice.url", &voice.url)?;
        if let Some(url) = &voice.fallback_url {
            check_webhook_url("voice.fallback_url", url)?;
        }
        if let Some(url) = &voice.status_callback {
            check_webhook_url("voice.status_callback", url)?;
        }
        let ring_timeout = match voice.timeout_secs {
            0 => CALL_RING_TIMEOUT_SECS,
            secs => secs.min(MAX_CALL_RING_TIMEOUT_SECS),
        }
        .to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("To", &page.address),
            ("From", from),
            ("Url", &voice.url),
            ("Method", "POST"),
        ];
        if let Some(url) = &voice.fallback_url {
            form.extend([("FallbackUrl", url.as_str()), ("FallbackMethod", "POST")]);
        }
        if let Some(url) = &voice.status_callback {
            form.extend([
                ("StatusCallback", url.as_str()),
                ("StatusCallbackMethod", "POST"),
            ]);
            // An array parameter: one `StatusCallbackEvent` pair per event (the spec's form
            // encoding, `style: form, explode: true`).
            form.extend(CALL_STATUS_EVENTS.map(|event| ("StatusCallbackEvent", event)));
        }
        form.push(("Timeout", &ring_timeout));
        if voice.machine_detection {
            form.push(("MachineDetection", "Enable"));
        }
        self.create(Resource::Call, &self.calls_url, &form, page)
            .await
    }

    /// The newest message to `to` (from our sender, if one is configured) whose body contains
    /// `needle` and which Twilio created at or after `since_unix_ms` less
    /// [`LOOKUP_CLOCK_SKEW_MS`]. Read-only and idempotent.
    ///
    /// Twilio lists newest first. The first page is read without a date filter, because
    /// `DateSent` matches `date_sent`, which a message still `queued` lacks; if it has no match
    /// and more pages exist, the list filtered by `DateSent>=<day of since>` is read, following
    /// `next_page_uri` for at most [`LOOKUP_MAX_PAGES`] pages; a match beyond them is not found
    /// (`None`: a resend may duplicate the page rather than miss it).
    pub(crate) async fn find_sms(
        &self,
        to: &str,
        since_unix_ms: u64,
        needle: &str,
    ) -> Result<Option<FoundMessage>, SendError> {
        if needle.is_empty() {
            return Err(SendError::permanent(
                "an empty needle would match any message",
            ));
        }
        let earliest_ms = since_unix_ms.saturating_sub(LOOKUP_CLOCK_SKEW_MS);
        let day = utc_day(earliest_ms)?;
        let page_size = LOOKUP_PAGE_SIZE.to_string();
        let mut query: Vec<(&str, &str)> = vec![("To", to)];
        if let Some(from) = &self.from {
            query.push(("From", from));
        }

        let mut unfiltered = query.clone();
        unfiltered.push(("PageSize", &page_size));
        let first = self
            .list_messages(&self.messages_url, &unfiltered, to)
            .await?;
        let found = newest_match(&first.messages, needle, earliest_ms, false);
        if found.is_some() || first.next_page_uri.is_none() || reaches_before(&first, earliest_ms) {
            return Ok(found);
        }

        let mut filtered = query;
        filtered.extend([("DateSent>", day.as_str()), ("PageSize", &page_size)]);
        let mut page = self
            .list_messages(&self.messages_url, &filtered, to)
            .await?;
        let mut read = 1;
        loop {
            if let Some(found) = newest_match(&page.messages, needle, earliest_ms, true) {
                return Ok(Some(found));
            }
            let Some(next) = page.next_page_uri.as_deref() else {
                return Ok(None);
            };
            if reaches_before(&page, earliest_ms) {
                // Newest first: later pages hold only older messages.
                return Ok(None);
            }
            if read >= LOOKUP_MAX_PAGES {
                // Hundreds of messages to one responder in a day: not what a pager sends.
                tracing::warn!(
                    pages = read,
                    "twilio message lookup stopped at its page bound without a match"
                );
                return Ok(None);
            }
            let Some(url) = self.next_page_url(next) else {
                tracing::warn!("twilio's next_page_uri is not a page of this account's messages");
                return Ok(None);
            };
            page = self.list_messages(&url, &[], to).await?;
            read += 1;
        }
    }

    /// `next_page_uri` as a URL on our base, if it is a page of this account's messages (the
    /// credentials go with it, so it must not lead anywhere else).
    fn next_page_url(&self, next_page_uri: &str) -> Option<String> {
        let path = self.messages_url.strip_prefix(&self.base)?;
        let rest = next_page_uri.strip_prefix(path)?;
        (rest.is_empty() || rest.starts_with('?')).then(|| format!("{}{next_page_uri}", self.base))
    }

    async fn list_messages(
        &self,
        url: &str,
        query: &[(&str, &str)],
        to: &str,
    ) -> Result<MessageList, SendError> {
        let resource = Resource::MessageList;
        let mut request = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()));
        if !query.is_empty() {
            request = request.query(query);
        }
        let response = match request.send().await {
            Ok(response) => response,
            // The URL carries the phone number in its query: keep it out of the message.
            Err(err) => {
                return Err(read_only(
                    self.transport_error(&err.without_url(), resource),
                ))
            }
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => {
                return Err(read_only(
                    self.transport_error(&err.without_url(), resource),
                ))
            }
        };
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_default();
            return Err(read_only(classify(status, error, resource, to)));
        }
        serde_json::from_slice::<MessageList>(&body).map_err(|err| SendError {
            http_status: Some(status.as_u16()),
            ..SendError::retryable(format!("twilio's message list is unreadable: {err}"))
        })
    }

    async fn create(
        &self,
        resource: Resource,
        url: &str,
        form: &[(&str, &str)],
        page: &Page,
    ) -> Result<Sent, SendError> {
        let request = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(form);
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return Err(self.transport_error(&err, resource)),
        };
        let status = response.status();
        // The status line decides; the body only adds detail. Reading it can still fail (the
        // total timeout, a reset), which must not turn a created message into a failure.
        let body = response.bytes().await;
        if status.is_success() {
            let created = body
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Created>(&bytes).ok());
            return match created {
                Some(Created {
                    sid: Some(sid),
                    status: twilio_status,
                }) => {
                    tracing::debug!(
                        resource = resource.name(),
                        sid = %sid,
                        twilio_status = twilio_status.as_deref().unwrap_or(""),
                        "twilio accepted"
                    );
                    Ok(Sent { provider_id: sid })
                }
                _ => {
                    tracing::warn!(
                        resource = resource.name(),
                        http_status = status.as_u16(),
                        "twilio accepted the request but its answer has no readable sid"
                    );
                    Ok(Sent {
                        provider_id: UNKNOWN_SID.to_owned(),
                    })
                }
            };
        }
        let error = body
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ErrorBody>(&bytes).ok())
            .unwrap_or_default();
        Err(classify(status, error, resource, &page.address))
    }

    fn transport_error(&self, err: &reqwest::Error, resource: Resource) -> SendError {
        let what = resource.name();
        let detail = error_chain(err);
        let creates = !matches!(resource, Resource::MessageList);
        if err.is_builder() {
            SendError::permanent(format!("build the twilio {what} request: {detail}"))
        } else if err.is_connect() {
            // Nothing was written: DNS, TCP connect or TLS handshake failed (or timed out).
            SendError::retryable(format!("connect to twilio for a {what}: {detail}"))
        } else if !creates && err.is_timeout() {
            SendError::retryable(format!(
                "no answer from twilio within {:?} for a {what}",
                self.timeout
            ))
        } else if !creates {
            SendError::retryable(format!("twilio {what} request failed: {detail}"))
        } else if err.is_timeout() {
            SendError::in_doubt(format!(
                "no answer from twilio within {:?} for a {what}: it may have been created",
                self.timeout
            ))
        } else {
            SendError::in_doubt(format!(
                "twilio {what} request failed after it was sent, it may have been created: {detail}"
            ))
        }
    }
}

/// Turn Twilio's non-2xx answer into a [`SendError`]; `to` is masked in Twilio's message.
fn classify(status: StatusCode, error: ErrorBody, resource: Resource, to: &str) -> SendError {
    let http = status.as_u16();
    let (retryable, in_doubt) = match (http, error.code) {
        (_, Some(code)) if PERMANENT_CODES.contains(&code) => (false, false),
        (_, Some(code)) if RETRYABLE_CODES.contains(&code) => (true, false),
        (429, _) => (true, false),
        // A gateway gave up waiting for Twilio's backend, which may have finished the job.
        (502 | 504, _) => (true, true),
        (500..=599, _) => (true, false),
        (408, _) => (true, false),
        (300..=499, _) => (false, false),
        _ => (true, false),
    };
    let message = match error.message {
        Some(message) if !to.is_empty() => message.replace(to, &mask::phone(to)),
        Some(message) => message,
        None => format!("twilio refused the {}: HTTP {status}", resource.name()),
    };
    SendError {
        retryable,
        in_doubt,
        http_status: Some(http),
        code: error.code,
        message,
    }
}

/// A lookup changes nothing at Twilio: no failure of it leaves anything in doubt.
fn read_only(err: SendError) -> SendError {
    SendError {
        in_doubt: false,
        ..err
    }
}

/// The newest of `messages` (listed newest first) whose body contains `needle`, created at or
/// after `earliest_ms`.
/// A message whose `date_created` cannot be read counts only when `date_filtered` (the list was
/// filtered by `DateSent`, so it is recent enough), and below any dated one.
fn newest_match(
    messages: &[ListedMessage],
    needle: &str,
    earliest_ms: u64,
    date_filtered: bool,
) -> Option<FoundMessage> {
    messages
        .iter()
        .filter(|m| m.body.as_deref().is_some_and(|b| b.contains(needle)))
        .filter_map(|m| {
            let sid = m.sid.clone()?;
            let created = m.date_created.as_deref().and_then(parse_rfc2822_ms);
            let recent = match created {
                Some(ms) => ms >= earliest_ms,
                None => date_filtered,
            };
            recent.then(|| FoundMessage {
                sid,
                status: m.status.clone().unwrap_or_default(),
                date_created_unix_ms: created,
            })
        })
        // Twilio lists newest first and its dates have whole seconds: on a tie, the earlier in
        // the list is the newer.
        .fold(None, |best: Option<FoundMessage>, found| match best {
            Some(best) if best.date_created_unix_ms >= found.date_created_unix_ms => Some(best),
            _ => Some(found),
        })
}

/// The page's oldest message (Twilio lists newest first) was created before
/// `earliest_ms`: no later page can hold a match.
fn reaches_before(page: &MessageList, earliest_ms: u64) -> bool {
    page.messages
        .last()
        .and_then(|m| m.date_created.as_deref())
        .and_then(parse_rfc2822_ms)
        .is_some_and(|oldest| oldest < earliest_ms)
}

/// Twilio's `Fri, 24 May 2019 17:44:46 +0000` as milliseconds since the epoch.
pub(crate) fn parse_rfc2822_ms(date: &str) -> Option<u64> {
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(date)
        .ok()?;
    u64::try_from(at.as_millisecond()).ok()
}

/// `YYYY-MM-DD`, the UTC day of `unix_ms`, as Twilio's `DateSent` filters take it.
fn utc_day(unix_ms: u64) -> Result<String, SendError> {
    i64::try_from(unix_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|at| at.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .ok_or_else(|| SendError::permanent(format!("{unix_ms} ms is not a date")))
}

/// Our own webhook URLs are absolute http(s) URLs: refuse locally what Twilio would refuse.
fn check_webhook_url(what: &str, url: &str) -> Result<(), SendError> {
    match Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(SendError::permanent(format!(
            "{what} {:?} is not an absolute http(s) URL",
            without_query(url)
        ))),
    }
}

/// `url` up to its query string, which may carry a token.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// `AC` / `MG` / ... followed by 32 hex digits, as Twilio's spec patterns say.
pub(crate) fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34
        && sid.starts_with(prefix)
        && sid[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `+` and 2 to 15 digits, the first not 0 (E.164).
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn check_base_url(base_url: &str) -> Result<String, NotifyConfigError> {
    let fail = |reason| NotifyConfigError::TwilioBaseUrl {
        url: base_url.to_owned(),
        reason,
    };
    let url = Url::parse(base_url).map_err(|_| fail("not a URL"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(fail("must not carry a query, a fragment or credentials"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(fail("plain http is only allowed to a loopback host")),
        _ => return Err(fail("scheme must be https")),
    }
    Ok(base_url.trim_end_matches('/').to_owned())
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What to say or text: the page text, else its subject, never nothing (an empty body is a
/// permanent Twilio error, i.e. a missed page).
fn page_text(page: &Page) -> Cow<'_, str> {
    if !page.text.trim().is_empty() {
        Cow::Borrowed(&page.text)
    } else if !page.subject.trim().is_empty() {
        Cow::Borrowed(&page.subject)
    } else {
        Cow::Owned(format!("pagerd page {}", page.delivery_id))
    }
}

/// At most [`MAX_SMS_BODY`] characters, ending in `…` when cut. Characters are counted in UTF-16
/// units, as an emoji counts double against Twilio's limit.
pub(crate) fn sms_body(text: &str) -> Cow<'_, str> {
    if utf16_len(text) <= MAX_SMS_BODY {
        return Cow::Borrowed(text);
    }
    let mut body = String::with_capacity(MAX_SMS_BODY * 2);
    let mut used = 0;
    for c in text.chars() {
        if used + c.len_utf16() > MAX_SMS_BODY - 1 {
            break;
        }
        used += c.len_utf16();
        body.push(c);
    }
    body.push('…');
    Cow::Owned(body)
}

/// `<Response><Say>text</Say><Pause length="1"/><Say>text</Say></Response>`, XML-escaped and cut
/// so that the whole fits in [`MAX_TWIML`] characters.
pub(crate) fn twiml(text: &str) -> String {
    const HEAD: &str = "<Response><Say>";
    const MIDDLE: &str = "</Say><Pause length=\"1\"/><Say>";
    const TAIL: &str = "</Say></Response>";
    let budget = (MAX_TWIML - HEAD.len() - MIDDLE.len() - TAIL.len()) / 2;
    let said = crate::twiml::escape_within(text, budget);
    format!("{HEAD}{said}{MIDDLE}{said}{TAIL}")
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: Option<i64>) -> ErrorBody {
        ErrorBody {
            code,
            message: Some("The 'To' number +15551234567 is not a valid phone number.".into()),
        }
    }

    #[test]
    fn classification_follows_status_and_code() {
        let cases: &[(u16, Option<i64>, bool, bool)] = &[
            (429, Some(20429), true, false),
            (429, None, true, false),
            (400, Some(20429), true, false),
            (500, Some(20500), true, false),
            (503, None, true, false),
            (502, None, true, true),
            (504, None, true, true),
            (400, Some(30001), true, false),
            (400, Some(21211), false, false),
            (400, Some(21614), false, false),
            (400, Some(21610), false, false),
            (400, Some(21408), false, false),
            (401, Some(20003), false, false),
            (400, Some(21606), false, false),
            (404, Some(20404), false, false),
            (400, Some(21604), false, false),
            (301, None, false, false),
        ];
        for &(http, code, retryable, in_doubt) in cases {
            let status = StatusCode::from_u16(http).unwrap();
            let err = classify(status, body(code), Resource::Message, "+15551234567");
            assert_eq!(
                (err.retryable, err.in_doubt, err.http_status, err.code),
                (retryable, in_doubt, Some(http), code),
                "http {http} code {code:?}"
            );
        }
    }

    #[test]
    fn error_messages_mask_the_number() {
        let err = classify(
            StatusCode::BAD_REQUEST,
            body(Some(21211)),
            Resource::Message,
            "+15551234567",
        );
        assert_eq!(
            err.message,
            "The 'To' number +1*******4567 is not a valid phone number."
        );
        let err = classify(
            StatusCode::BAD_GATEWAY,
            ErrorBody::default(),
            Resource::Call,
            "+15551234567",
        );
        assert_eq!(err.message, "twilio refused the call: HTTP 502 Bad Gateway");
    }

    #[test]
    fn sms_body_is_cut_at_1600_utf16_units() {
        let short = "x".repeat(MAX_SMS_BODY);
        assert!(matches!(sms_body(&short), Cow::Borrowed(_)));
        let long = "x".repeat(MAX_SMS_BODY + 1);
        let cut = sms_body(&long);
        assert_eq!(utf16_len(&cut), MAX_SMS_BODY);
        assert!(cut.ends_with('…'));
        let emoji = "🔥".repeat(MAX_SMS_BODY);
        let cut = sms_body(&emoji);
        assert!(utf16_len(&cut) <= MAX_SMS_BODY);
        assert!(cut.ends_with("🔥…"));
    }

    #[test]
    fn twiml_escapes_and_fits() {
        let t = twiml("db1 < 5% & \"rising\"\u{7}");
        assert_eq!(
            t,
            "<Response><Say>db1 &lt; 5% &amp; &quot;rising&quot; </Say><Pause length=\"1\"/>\
             <Say>db1 &lt; 5% &amp; &quot;rising&quot; </Say></Response>"
        );
        let long = twiml(&"&".repeat(5000));
        assert!(utf16_len(&long) <= MAX_TWIML);
        assert!(long.ends_with("&amp;</Say></Response>"));
    }

    #[test]
    fn sids_and_numbers() {
        assert!(is_sid("AC0123456789abcdef0123456789ABCDEF", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789ABCDEG", "AC"));
        assert!(!is_sid("MG0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC0123", "AC"));
        assert!(is_e164("+15551234567"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+0551234567"));
        assert!(!is_e164("+1555123456789012"));
        assert!(!is_e164("+1 555 123"));
    }

    #[test]
    fn base_urls() {
        assert!(check_base_url("https://api.twilio.com").is_ok());
        assert_eq!(
            check_base_url("https://api.dublin.ie1.twilio.com/").unwrap(),
            "https://api.dublin.ie1.twilio.com"
        );
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://localhost:8080").is_ok());
        assert!(check_base_url("http://[::1]:8080").is_ok());
        assert!(check_base_url("http://api.twilio.com").is_err());
        assert!(check_base_url("ftp://api.twilio.com").is_err());
        assert!(check_base_url("https://user:pw@api.twilio.com").is_err());
        assert!(check_base_url("api.twilio.com").is_err());
    }

    #[test]
    fn voice_call_debug_hides_query_strings() {
        let voice = VoiceCall {
            url: "https://pagerd.example/voice?d=1&t=secret".into(),
            fallback_url: Some("https://b.example/voice#t=secret".into()),
            status_callback: Some("https://pagerd.example/status?t=secret".into()),
            timeout_secs: 30,
            machine_detection: true,
        };
        let debug = format!("{voice:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("https://pagerd.example/voice"), "{debug}");
    }

    #[test]
    fn dates_for_lookups() {
        assert_eq!(
            parse_rfc2822_ms("Fri, 24 May 2019 17:44:46 +0000"),
            Some(1_558_719_886_000)
        );
        assert_eq!(
            parse_rfc2822_ms("Fri, 24 May 2019 19:44:46 +0200"),
            Some(1_558_719_886_000)
        );
        assert_eq!(parse_rfc2822_ms("2019-05-24T17:44:46Z"), None);
        assert_eq!(
            utc_day(1_558_719_886_000).ok().as_deref(),
            Some("2019-05-24")
        );
        assert_eq!(utc_day(0).ok().as_deref(), Some("1970-01-01"));
        assert!(utc_day(u64::MAX).is_err());
    }

    fn listed(sid: &str, body: &str, date: Option<&str>) -> ListedMessage {
        ListedMessage {
            sid: Some(sid.into()),
            body: Some(body.into()),
            status: Some("sent".into()),
            date_created: date.map(str::to_owned),
        }
    }

    #[test]
    fn the_newest_recent_match_is_chosen() {
        let at = |s: u32| format!("Fri, 24 May 2019 17:44:{s:02} +0000");
        let t0 = 1_558_719_840_000; // 17:44:00
        let messages = [
            listed("SM5", "other", Some(&at(50))),
            listed("SM4", "page [d1]", Some(&at(40))),
            listed("SM3", "page [d1] again", Some(&at(40))),
            listed("SM2", "page [d1]", Some(&at(10))),
            listed("SM1", "page [d1]", None),
        ];
        let found = newest_match(&messages, "[d1]", t0, false).expect("found");
        assert_eq!(found.sid, "SM4", "on a tie, the first listed is the newer");
        assert_eq!(found.date_created_unix_ms, Some(t0 + 40_000));
        // Too old, or undated outside a DateSent-filtered list.
        assert_eq!(
            newest_match(&messages[3..], "[d1]", t0 + 20_000, false),
            None
        );
        let undated = newest_match(&messages[3..], "[d1]", t0 + 20_000, true).expect("found");
        assert_eq!(
            (undated.sid.as_str(), undated.date_created_unix_ms),
            ("SM1", None)
        );
        assert_eq!(newest_match(&messages, "[d9]", 0, true), None);
    }

    #[test]
    fn next_pages_stay_on_this_accounts_messages() {
        let settings = TwilioSettings {
            base_url: "https://api.twilio.com".into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: Secret::new("t"),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            timeout: Duration::from_secs(5),
        };
        let client = TwilioClient::new(&settings).expect("valid");
        let path = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
        assert_eq!(
            client.next_page_url(&format!("{path}?Page=1&PageToken=PASM1")),
            Some(format!(
                "https://api.twilio.com{path}?Page=1&PageToken=PASM1"
            ))
        );
        assert_eq!(client.next_page_url("https://evil.example/steal"), None);
        assert_eq!(
            client.next_page_url(
                "/2010-04-01/Accounts/AC99999999999999999999999999999999/Messages.json"
            ),
            None
        );
        assert_eq!(client.next_page_url(&format!("{path}.evil")), None);
    }
}
