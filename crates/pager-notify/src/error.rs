//! The two ways this crate fails: a setting that cannot work, and a page that did not go out.

use std::fmt;

/// A page was not (known to be) handed to the provider. The caller records it as an outcome;
/// whether and when to retry or fall through to the next contact method is its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Sending the same page again may succeed (rate limit, 5xx, network, timeout).
    pub retryable: bool,
    /// The request may have reached the provider (timeout or connection loss after it was
    /// written, gateway timeout): the page may be out, and a retry may duplicate it.
    pub in_doubt: bool,
    /// The HTTP status of the provider's answer, when there was one.
    pub http_status: Option<u16>,
    /// Twilio's error code (e.g. 21211), or the SMTP reply code (e.g. 550).
    pub code: Option<i64>,
    /// What went wrong, phone numbers and addresses masked.
    pub message: String,
}

impl SendError {
    /// Will fail the same way again: bad address, unsubscribed recipient, wrong credentials.
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            retryable: false,
            in_doubt: false,
            http_status: None,
            code: None,
            message: message.into(),
        }
    }

    /// Certainly not sent, and may work later.
    pub fn retryable(message: impl Into<String>) -> SendError {
        SendError {
            retryable: true,
            ..SendError::permanent(message)
        }
    }

    /// Perhaps sent: retrying may work and may duplicate the page.
    pub fn in_doubt(message: impl Into<String>) -> SendError {
        SendError {
            retryable: true,
            in_doubt: true,
            ..SendError::permanent(message)
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut details = Vec::new();
        if let Some(status) = self.http_status {
            details.push(format!("http {status}"));
        }
        if let Some(code) = self.code {
            details.push(format!("code {code}"));
        }
        details.push(
            if self.retryable {
                "retryable"
            } else {
                "permanent"
            }
            .to_owned(),
        );
        if self.in_doubt {
            details.push("may have been sent".to_owned());
        }
        write!(f, " ({})", details.join(", "))
    }
}

impl std::error::Error for SendError {}

/// A setting that cannot work; the daemon refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    #[error("no notification channel: configure twilio, smtp or console")]
    NoChannel,
    #[error("twilio.account_sid must be `AC` and 32 hex digits, got {len} characters")]
    TwilioAccountSid { len: usize },
    #[error("twilio.auth_token is empty")]
    TwilioAuthToken,
    #[error("twilio needs a sender: set twilio.from or twilio.messaging_service_sid")]
    TwilioNoSender,
    #[error("twilio.messaging_service_sid must be `MG` and 32 hex digits")]
    TwilioMessagingServiceSid,
    #[error("twilio.base_url {url:?}: {reason}")]
    TwilioBaseUrl { url: String, reason: &'static str },
    #[error("{what} timeout must be more than zero")]
    ZeroTimeout { what: &'static str },
    #[error("build the HTTP client for twilio")]
    HttpClient(#[source] reqwest::Error),
    #[error("smtp.from {from:?} is not an email address")]
    SmtpFrom {
        from: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("smtp.host is empty")]
    SmtpHost,
    #[error("smtp.username and smtp.password go together: set both or neither")]
    SmtpCredentials,
    #[error("set up TLS for smtp host {host:?}")]
    SmtpTls {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}
