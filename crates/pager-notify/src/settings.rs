//! Typed settings for the notification channels, handed over by the daemon's config loader.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Which channels the [`Notifier`](crate::Notifier) may use. A `None` channel is not configured.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// SMS and voice calls through Twilio's REST API.
    pub twilio: Option<TwilioSettings>,
    /// Email through an SMTP relay.
    pub smtp: Option<SmtpSettings>,
    /// Print the pages a missing channel would have sent, one line each, on stdout.
    pub console: bool,
}

/// Twilio account and sender. One of `from` or `messaging_service_sid` is required; voice calls
/// need `from` (Twilio's Calls resource has no messaging service).
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    /// [`TwilioSettings::DEFAULT_BASE_URL`], a regional endpoint
    /// ([`TwilioSettings::regional_base_url`]), or a fake's `http://127.0.0.1:port` in tests.
    /// Plain `http` is refused for anything but a loopback host: the auth token rides in it.
    pub base_url: String,
    /// `AC` followed by 32 hex digits.
    pub account_sid: String,
    pub auth_token: Secret,
    /// Sender: a Twilio number in E.164, a short code or an alphanumeric sender id.
    pub from: Option<String>,
    /// `MG` followed by 32 hex digits; Twilio picks the sender from the service's pool.
    pub messaging_service_sid: Option<String>,
    /// Bound on one request, from connect to the last byte of the answer. Connecting alone is
    /// bounded by half of it, at most [`TwilioSettings::MAX_CONNECT_TIMEOUT`].
    pub timeout: Duration,
}

impl TwilioSettings {
    /// Twilio's global endpoint (US1).
    pub const DEFAULT_BASE_URL: &'static str = "https://api.twilio.com";
    /// Cap on the connect phase of a request.
    pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// `https://api.{edge}.{region}.twilio.com`, e.g. `("dublin", "ie1")`. Regional processing
    /// needs credentials created in that region.
    pub fn regional_base_url(edge: &str, region: &str) -> String {
        format!("https://api.{edge}.{region}.twilio.com")
    }
}

/// An SMTP relay and the sender address of every page.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Credentials are sent only when both `username` and `password` are set.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `pagerd@example.com` or `Pager <pagerd@example.com>`.
    pub from: String,
    /// Bound on one whole send: connect, TLS, every SMTP command and the data.
    pub timeout: Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (port 25 inside a trusted network, or a test server).
    None,
    /// Plain connect, then `STARTTLS`, which is required to succeed (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A credential. `Debug` and `Display` print `[redacted]`, so it cannot leak through a log line
/// or a `{:?}` of the settings; read it with [`Secret::expose`] at the one place that sends it.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}
