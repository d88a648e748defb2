//! Twilio's REST API (2010-04-01): create a Message (SMS) or a Call, and say precisely how a
//! failure happened, because the caller's retry decides between a missed and a duplicate page.
//!
//! Requests follow Twilio's OpenAPI description (`twilio_api_v2010.json`): form-encoded
//! parameters, HTTP basic auth with the account SID and auth token, a `201` with the created
//! resource on success and `{code, message, more_info, status}` on failure.

use std::borrow::Cow;
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

/// One account's Messages and Calls endpoints, with one pooled HTTP client.
#[derive(Debug)]
pub(crate) struct TwilioClient {
    http: reqwest::Client,
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
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Message => "message",
            Resource::Call => "call",
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

    /// Create one Call that says the page twice. Not idempotent: a retry after an in-doubt
    /// error may ring the phone twice.
    pub(crate) async fn call(&self, page: &Page) -> Result<Sent, SendError> {
        let Some(from) = &self.from else {
            return Err(SendError::permanent(
                "twilio.from is not set: a voice call needs a caller id (a messaging service cannot call)",
            ));
        };
        let twiml = twiml(&page_text(page));
        let ring_timeout = CALL_RING_TIMEOUT_SECS.to_string();
        let form: [(&str, &str); 4] = [
            ("To", &page.address),
            ("From", from),
            ("Twiml", &twiml),
            ("Timeout", &ring_timeout),
        ];
        self.create(Resource::Call, &self.calls_url, &form, page)
            .await
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
        if err.is_builder() {
            SendError::permanent(format!("build the twilio {what} request: {detail}"))
        } else if err.is_connect() {
            // Nothing was written: DNS, TCP connect or TLS handshake failed (or timed out).
            SendError::retryable(format!("connect to twilio for a {what}: {detail}"))
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

/// `AC` / `MG` / ... followed by 32 hex digits, as Twilio's spec patterns say.
pub(crate) fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34
        && sid.starts_with(prefix)
        && sid[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `+` and 2 to 15 digits, the first not 0 (E.164).
pub(crate) fn is_e164(number: &str) -> bool {
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
    let said = xml_escape_within(text, budget);
    format!("{HEAD}{said}{MIDDLE}{said}{TAIL}")
}

/// XML text content of at most `budget` UTF-16 units; characters XML cannot carry become spaces.
fn xml_escape_within(text: &str, budget: usize) -> String {
    let mut out = String::with_capacity(text.len().min(budget * 4));
    let mut used = 0;
    for c in text.chars() {
        let piece: Cow<'_, str> = match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            '\t' | '\n' | '\r' => " ".into(),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => " ".into(),
            c => {
                let mut s = String::new();
                s.push(c);
                s.into()
            }
        };
        let len = utf16_len(&piece);
        if used + len > budget {
            break;
        }
        used += len;
        out.push_str(&piece);
    }
    out
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
}
