//! Outbound integrations of pagerd: the clients that tell other systems about an incident, and
//! the checks on what those systems send back.
//!
//! Each client makes exactly one attempt per call and says precisely how a failure happened, in
//! an [`OutboundError`]: whether the provider refused the credentials ([`ErrorKind::Auth`]), asked
//! us to slow down ([`ErrorKind::RateLimited`], with its `Retry-After`), will refuse the same
//! request again ([`ErrorKind::Permanent`]) or may take it later ([`ErrorKind::Transient`]), and
//! whether the request may have taken effect anyway (`in_doubt`). Retries, backoff and
//! reconciliation are the caller's decision, never made here.
//!
//! ```text
//!                ┌─ SlackClient   ─▶ chat.postMessage / chat.update / users.lookupByEmail /
//!                │                   conversations.open        (Bearer token, JSON bodies)
//! pagerd ───────▶├─ JiraClient    ─▶ /rest/api/3/issue, …/transitions, …/comment, user/search
//!                │                                             (basic auth, ADF documents)
//!                └─ WebhookClient ─▶ a subscriber's URL         (Standard Webhooks signature)
//!
//! Slack ── button press / slash command ──▶ pagerd: slack_verify::verify, then parse_*
//! ```
//!
//! Layout:
//! - [`slack`]: [`SlackClient`], and the Block Kit card of an incident ([`slack::incident_blocks`]).
//! - [`slack_verify`]: `X-Slack-Signature` computed and checked; interaction and slash-command
//!   payloads parsed into typed structs.
//! - [`jira`]: [`JiraClient`]; [`adf`]: Atlassian Document Format documents for its fields.
//! - [`webhook`]: Standard Webhooks signatures ([`webhook::sign`], [`webhook::verify`]) and
//!   [`WebhookClient`].
//! - `transport`: what a failed HTTP exchange means, shared by the three clients.
//!
//! Secrets (the bot token, the Jira API token, signing keys) never appear in an error, a log
//! line or a `Debug` output; email addresses appear masked ([`pager_notify::mask::email`]).
//! The test doubles (fake Slack, fake Jira, a webhook receiver) live in the dev-only crate
//! `pager-fakes`.

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod adf;
pub mod jira;
pub mod slack;
pub mod slack_verify;
mod transport;
pub mod webhook;

use std::fmt;
use std::time::Duration;

pub use crate::jira::JiraClient;
pub use crate::slack::SlackClient;
pub use crate::webhook::WebhookClient;
pub use pager_notify::Secret;

/// Bound on one request, from connect to the last byte of the answer, unless a client's
/// `with_timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on connecting (DNS, TCP, TLS) alone. A failure within it certainly sent nothing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of failure: what the caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The credentials were refused or lack a permission: a human must fix the configuration.
    Auth,
    /// The provider asked us to slow down; `retry_after` is its `Retry-After`, when it gave one.
    RateLimited { retry_after: Option<Duration> },
    /// The same request will fail the same way: unknown channel, invalid fields, gone
    /// subscription.
    Permanent,
    /// May work later: 5xx, network failure, timeout.
    Transient,
}

/// One request did not (certainly) succeed. Carries no secret; addresses in it are masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundError {
    pub kind: ErrorKind,
    /// The request may have reached the provider and taken effect (a timeout or connection loss
    /// after it was written, a gateway timeout, Slack's `internal_error`): a retry may duplicate
    /// it. Never set for read-only requests.
    pub in_doubt: bool,
    /// The provider's error code: Slack's `error` (`channel_not_found`), or the HTTP status as
    /// text (`"410"`) where the provider has no codes of its own.
    pub code: Option<String>,
    /// The HTTP status of the answer, when there was one.
    pub http_status: Option<u16>,
    /// What went wrong, for a human.
    pub message: String,
}

impl OutboundError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> OutboundError {
        OutboundError {
            kind,
            in_doubt: false,
            code: None,
            http_status: None,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> OutboundError {
        OutboundError::new(ErrorKind::Permanent, message)
    }

    pub fn transient(message: impl Into<String>) -> OutboundError {
        OutboundError::new(ErrorKind::Transient, message)
    }

    pub fn auth(message: impl Into<String>) -> OutboundError {
        OutboundError::new(ErrorKind::Auth, message)
    }

    /// Sending the same request again may succeed (after `retry_after`, if rate limited).
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited { .. } | ErrorKind::Transient
        )
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }

    fn with_code(mut self, code: impl Into<String>) -> OutboundError {
        self.code = Some(code.into());
        self
    }

    fn with_status(mut self, status: u16) -> OutboundError {
        self.http_status = Some(status);
        self
    }

    fn in_doubt(mut self, in_doubt: bool) -> OutboundError {
        self.in_doubt = in_doubt;
        self
    }
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut details = Vec::new();
        if let Some(status) = self.http_status {
            details.push(format!("http {status}"));
        }
        if let Some(code) = &self.code {
            details.push(code.clone());
        }
        details.push(match self.kind {
            ErrorKind::Auth => "credentials refused".to_owned(),
            ErrorKind::RateLimited {
                retry_after: Some(after),
            } => format!("rate limited, retry after {}s", after.as_secs()),
            ErrorKind::RateLimited { retry_after: None } => "rate limited".to_owned(),
            ErrorKind::Permanent => "permanent".to_owned(),
            ErrorKind::Transient => "retryable".to_owned(),
        });
        if self.in_doubt {
            details.push("may have taken effect".to_owned());
        }
        write!(f, " ({})", details.join(", "))
    }
}

impl std::error::Error for OutboundError {}

/// A client setting that cannot work; found when the client is built, before any request.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{what} base URL {url:?}: {reason}")]
    BaseUrl {
        what: &'static str,
        url: String,
        reason: &'static str,
    },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} timeout must be more than zero")]
    ZeroTimeout { what: &'static str },
    #[error("build the HTTP client for {what}")]
    HttpClient {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_follows_the_kind() {
        assert!(!OutboundError::auth("x").retryable());
        assert!(!OutboundError::permanent("x").retryable());
        assert!(OutboundError::transient("x").retryable());
        let limited = OutboundError::new(
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            },
            "slow down",
        );
        assert!(limited.retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(
            limited.with_status(429).to_string(),
            "slow down (http 429, rate limited, retry after 30s)"
        );
        let doubt = OutboundError::transient("no answer")
            .with_code("internal_error")
            .in_doubt(true);
        assert_eq!(
            doubt.to_string(),
            "no answer (internal_error, retryable, may have taken effect)"
        );
    }
}
