//! Notification channels of pagerd: the code that makes a phone buzz.
//!
//! The daemon's dispatcher hands each planned delivery to [`Notifier::send`] as a [`Page`] and
//! turns the answer into a replicated outcome: [`Sent`] with the provider's id, or a
//! [`SendError`] that says whether a retry may work (`retryable`) and whether the page may be out
//! already (`in_doubt`). Retries, backoff and falling through to the next contact method are
//! decided by the caller, never here: this crate makes exactly one attempt per call.
//!
//! ```text
//! Page ──▶ Notifier::send ──┬─ Sms   ─▶ Twilio Messages.json ─┐
//!                           ├─ Voice ─▶ Twilio Calls.json    ─┼─▶ Sent{provider_id} | SendError
//!                           ├─ Email ─▶ SMTP relay (lettre)  ─┤
//!                           └─ no provider for the method ─▶ console line (if enabled)
//! ```
//!
//! A voice page with [`Page::voice`] set becomes an interactive call: Twilio fetches TwiML from
//! the daemon's own HTTP endpoints (built with [`twiml::Twiml`]), posts the keys pressed and the
//! call's progress there, and signs every such request ([`signature::verify`] checks it). After
//! an in-doubt SMS, [`Notifier::find_sms`] asks Twilio whether the message exists after all.
//!
//! Layout:
//! - [`settings`]: [`NotifySettings`] and its parts, [`Secret`] (redacted in `Debug`).
//! - [`error`]: [`SendError`] and [`NotifyConfigError`].
//! - [`twilio`]: the REST client (reqwest + rustls, not the `twilio` crate): create messages and
//!   calls ([`VoiceCall`]), list messages ([`FoundMessage`]), error codes.
//! - [`twiml`]: the TwiML builder for our webhook answers, XML-escaped.
//! - [`signature`]: `X-Twilio-Signature`, computed and verified (HMAC-SHA1, token rotation).
//! - `smtp`: lettre's async transport, one connection per page.
//! - `console`: the stdout channel.
//! - [`mask`]: phone numbers and addresses as they may appear in logs.
//!
//! The test doubles (fake Twilio, a recording SMTP server) live in the dev-only crate
//! `pager-fakes`, which builds on this one.

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod console;
pub mod error;
pub mod mask;
pub mod settings;
pub mod signature;
mod smtp;
pub mod twilio;
pub mod twiml;

use std::fmt;
use std::sync::Arc;

pub use crate::error::{NotifyConfigError, SendError};
pub use crate::settings::{NotifySettings, Secret, SmtpSettings, SmtpTls, TwilioSettings};
pub use crate::twilio::{FoundMessage, VoiceCall};

use crate::smtp::SmtpClient;
use crate::twilio::TwilioClient;

/// How a page reaches its responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Sms,
    Voice,
    Email,
    /// Sent by pagerd's Slack client (pager-outbound), not by this crate: only the console
    /// channel takes it here.
    Slack,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Voice => "voice",
            Method::Email => "email",
            Method::Slack => "slack",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification to one address. `Debug` masks the address.
#[derive(Clone, PartialEq, Eq)]
pub struct Page {
    /// The replicated delivery this attempt belongs to; shows up in logs and console ids.
    pub delivery_id: u64,
    pub method: Method,
    /// E.164 phone number (`+15551234567`) for SMS and voice, email address for email.
    pub address: String,
    /// Email subject; also what is said or texted when `text` is empty.
    pub subject: String,
    pub text: String,
    /// Email only: sent as `multipart/alternative` with `text` as the plain part.
    pub html: Option<String>,
    /// Voice only: fetch the call's TwiML from our endpoint instead of saying `text`.
    pub voice: Option<VoiceCall>,
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("delivery_id", &self.delivery_id)
            .field("method", &self.method)
            .field("address", &mask::address(&self.address))
            .field("subject", &self.subject)
            .field("text", &self.text)
            .field("html", &self.html.as_ref().map(|_| "…"))
            .field("voice", &self.voice)
            .finish()
    }
}

/// The provider took the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Twilio's Message or Call SID, the email's Message-ID, or `console-<delivery_id>`.
    pub provider_id: String,
}

/// Sends pages through the configured channels. Cheap to clone: clones share one HTTP client
/// and one SMTP transport.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Channels>,
}

/// The channels, fixed at construction; read-only afterwards, so no lock.
struct Channels {
    twilio: Option<TwilioClient>,
    smtp: Option<SmtpClient>,
    console: bool,
}

/// Which channel a page goes to.
enum Route<'a> {
    Twilio(&'a TwilioClient),
    Smtp(&'a SmtpClient),
    Console,
}

impl Notifier {
    /// Check the settings and build the clients. Opens no connection.
    pub fn new(settings: NotifySettings) -> Result<Notifier, NotifyConfigError> {
        if settings.twilio.is_none() && settings.smtp.is_none() && !settings.console {
            return Err(NotifyConfigError::NoChannel);
        }
        let twilio = settings
            .twilio
            .as_ref()
            .map(TwilioClient::new)
            .transpose()?;
        let smtp = settings.smtp.as_ref().map(SmtpClient::new).transpose()?;
        Ok(Notifier {
            inner: Arc::new(Channels {
                twilio,
                smtp,
                console: settings.console,
            }),
        })
    }

    /// Whether some channel is configured for `method` (the console counts).
    pub fn can_send(&self, method: Method) -> bool {
        self.route(method).is_some()
    }

    /// Make one attempt to deliver `page`. Not idempotent: the providers have no idempotency
    /// key, so a retry may duplicate the page unless the caller reconciles (`in_doubt` says
    /// when that can happen).
    #[tracing::instrument(
        name = "page",
        skip_all,
        fields(
            delivery = page.delivery_id,
            method = page.method.as_str(),
            to = %mask::address(&page.address),
        )
    )]
    pub async fn send(&self, page: &Page) -> Result<Sent, SendError> {
        let Some(route) = self.route(page.method) else {
            return Err(SendError::permanent(format!(
                "no {} channel configured",
                match page.method {
                    Method::Sms => "SMS",
                    Method::Voice => "voice",
                    Method::Email => "email",
                    Method::Slack => "Slack",
                }
            )));
        };
        let (channel, result) = match route {
            Route::Twilio(twilio) => {
                let result = match check_phone(page) {
                    Err(err) => Err(err),
                    Ok(()) if page.method == Method::Voice => twilio.call(page).await,
                    Ok(()) => twilio.send_sms(page).await,
                };
                ("twilio", result)
            }
            Route::Smtp(smtp) => ("smtp", smtp.send(page).await),
            Route::Console => ("console", console::send(page)),
        };
        // DEBUG only: the dispatcher, which handles the outcome, logs it at INFO / WARN.
        match &result {
            Ok(sent) => tracing::debug!(channel, provider_id = %sent.provider_id, "page sent"),
            Err(err) => tracing::debug!(
                channel,
                retryable = err.retryable,
                in_doubt = err.in_doubt,
                http_status = err.http_status,
                code = err.code,
                error = %err.message,
                "page not sent"
            ),
        }
        result
    }

    /// Whether Twilio holds a message to `to` whose body contains `needle`, created at or after
    /// `since_unix_ms` (less a minute of clock skew): the newest such message, or `None`. For
    /// reconciling an SMS whose send ended in doubt; the needle should be unique to the page
    /// (e.g. its delivery id as the text carries it). Read-only, idempotent, reads a bounded
    /// number of pages. Errors are classified as for [`Notifier::send`], never `in_doubt`;
    /// without a Twilio channel it is a permanent error (the caller decides what that means).
    #[tracing::instrument(name = "find_sms", skip_all, fields(to = %mask::phone(to)))]
    pub async fn find_sms(
        &self,
        to: &str,
        since_unix_ms: u64,
        needle: &str,
    ) -> Result<Option<FoundMessage>, SendError> {
        let Some(twilio) = &self.inner.twilio else {
            return Err(SendError::permanent(
                "no twilio channel configured: cannot look up sent SMS",
            ));
        };
        let result = twilio.find_sms(to, since_unix_ms, needle).await;
        match &result {
            Ok(found) => tracing::debug!(
                found = found.as_ref().map(|f| f.sid.as_str()),
                "twilio message lookup"
            ),
            Err(err) => tracing::debug!(error = %err, "twilio message lookup failed"),
        }
        result
    }

    fn route(&self, method: Method) -> Option<Route<'_>> {
        let channels = &*self.inner;
        let provider = match method {
            Method::Sms | Method::Voice => channels.twilio.as_ref().map(Route::Twilio),
            Method::Email => channels.smtp.as_ref().map(Route::Smtp),
            Method::Slack => None,
        };
        provider.or(channels.console.then_some(Route::Console))
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("twilio", &self.inner.twilio.is_some())
            .field("smtp", &self.inner.smtp.is_some())
            .field("console", &self.inner.console)
            .finish()
    }
}

/// Refuse locally what Twilio would refuse with 21211, without a round trip.
fn check_phone(page: &Page) -> Result<(), SendError> {
    if twilio::is_e164(&page.address) {
        Ok(())
    } else {
        Err(SendError::permanent(format!(
            "{} is not an E.164 phone number (+ and country code, digits only)",
            mask::address(&page.address)
        )))
    }
}

/// `len` hex digits, fresh on every call. Not cryptographic: for ids that must not repeat.
pub fn random_hex(len: usize) -> String {
    use std::collections::hash_map::RandomState;
    use std::fmt::Write as _;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        // Each RandomState has fresh SipHash keys (seeded from the OS once per thread).
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let _ = write!(out, "{:016x}", hasher.finish());
    }
    out.truncate(len);
    out
}

/// `err: cause: cause`, skipping causes the text already contains.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_is_hex_and_fresh() {
        let a = random_hex(32);
        let b = random_hex(32);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn page_debug_masks_the_address() {
        let page = Page {
            delivery_id: 1,
            method: Method::Sms,
            address: "+15551234567".into(),
            subject: String::new(),
            text: "x".into(),
            html: None,
            voice: None,
        };
        let debug = format!("{page:?}");
        assert!(debug.contains("+1*******4567"), "{debug}");
        assert!(!debug.contains("5551234567"), "{debug}");
    }
}
