//! Sends to integrations (Slack, Jira) rather than through the notifier:
//! one shape for the dispatcher, whichever provider it is.
//!
//! Each has its own send permits ([`INTEGRATION_PERMITS`]), apart from the
//! pages': a provider that hangs for its whole timeout holds only its own,
//! and no SMS or call waits behind it.

use crate::config::{NodeConfig, WebhookSettings};
use crate::leader::jira::{self, JiraJob};
use crate::leader::slack::{self, SlackJob};
use crate::leader::webhook::{self, WebhookJob};
use pager_core::SendResult;
use pager_outbound::{ErrorKind, JiraClient, OutboundError, SlackClient, WebhookClient};
use std::sync::Arc;
use std::time::Duration;
use tracing::error;

/// Integration requests in flight at once, per leader (all providers).
pub const INTEGRATION_PERMITS: usize = 16;
/// Longest a rate-limited send waits, for the provider's `Retry-After`,
/// before its outcome is recorded (and `apply`'s backoff retries it).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One request to an integration.
#[derive(Debug, Clone)]
pub enum Outbound {
    Slack(SlackJob),
    Jira(JiraJob),
    /// A webhook event; `Err` (why) when its event is gone.
    Webhook(Result<WebhookJob, String>),
}

/// The integrations' clients, built from the node config; `None`: that
/// provider's deliveries fail ("not configured").
#[derive(Clone)]
pub struct Clients {
    pub slack: Option<SlackClient>,
    pub jira: Option<JiraClient>,
    pub webhooks: Option<WebhookClient>,
    pub webhook_settings: Arc<WebhookSettings>,
}

impl Clients {
    pub fn from_config(cfg: &NodeConfig) -> Clients {
        let slack = cfg.slack.as_ref().and_then(|s| {
            SlackClient::new(&s.base_url, s.bot_token.clone())
                .and_then(|c| c.with_timeout(s.timeout))
                .map_err(|e| error!(cause = %e, "slack client not built: Slack messages will fail"))
                .ok()
        });
        let jira = cfg.jira.as_ref().and_then(|j| {
            JiraClient::new(&j.base_url, &j.email, j.api_token.clone())
                .and_then(|c| c.with_timeout(j.timeout))
                .map_err(|e| error!(cause = %e, "jira client not built: Jira tickets will fail"))
                .ok()
        });
        let webhooks = WebhookClient::new()
            .and_then(|c| c.with_timeout(cfg.webhooks.timeout))
            .map_err(|e| error!(cause = %e, "webhook client not built: webhooks will fail"))
            .ok();
        Clients {
            slack,
            jira,
            webhooks,
            webhook_settings: Arc::new(cfg.webhooks.clone()),
        }
    }
}

impl Outbound {
    /// The provider's name, as in logs and errors.
    pub fn provider(&self) -> &'static str {
        match self {
            Outbound::Slack(_) => "slack",
            Outbound::Jira(_) => "jira",
            Outbound::Webhook(_) => "webhook",
        }
    }

    /// Whether an earlier attempt left in doubt can be looked for before
    /// this one is sent again.
    pub fn findable(&self) -> bool {
        match self {
            Outbound::Slack(job) => slack::findable(job),
            Outbound::Jira(job) => jira::findable(job),
            // Sent again; the receiver drops a repeated webhook-id.
            Outbound::Webhook(_) => false,
        }
    }

    /// What an earlier attempt got out (its provider id), if anything.
    pub async fn find_sent(
        &self,
        clients: &Clients,
        claimed_at: u64,
    ) -> Result<Option<String>, OutboundError> {
        match self {
            Outbound::Slack(job) => {
                slack::find_sent(configured(&clients.slack, "slack")?, job, claimed_at).await
            }
            Outbound::Jira(job) => jira::find_sent(configured(&clients.jira, "jira")?, job).await,
            Outbound::Webhook(_) => Ok(None),
        }
    }

    /// Make the request; `Ok` is the provider id to record.
    pub async fn send(&self, clients: &Clients) -> Result<String, OutboundError> {
        match self {
            Outbound::Slack(job) => slack::send(configured(&clients.slack, "slack")?, job).await,
            Outbound::Jira(job) => jira::send(configured(&clients.jira, "jira")?, job).await,
            Outbound::Webhook(Err(why)) => Err(OutboundError::permanent(why.clone())),
            Outbound::Webhook(Ok(job)) => {
                let client = configured(&clients.webhooks, "webhooks")?;
                webhook::send(client, &clients.webhook_settings, job).await
            }
        }
    }
}

fn configured<'a, C>(client: &'a Option<C>, section: &str) -> Result<&'a C, OutboundError> {
    client.as_ref().ok_or_else(|| {
        OutboundError::permanent(format!(
            "no [{section}] section in this node's configuration"
        ))
    })
}

/// The class of a provider error, as on the incident and in metrics.
pub fn class(err: &OutboundError) -> &'static str {
    match err.kind {
        ErrorKind::Auth => "auth",
        ErrorKind::RateLimited { .. } => "rate_limited",
        ErrorKind::Permanent => "permanent",
        ErrorKind::Transient => "transient",
    }
}

/// What a failed request means to `apply`, and how long the provider asked
/// us to wait before the next (waited by the sender, so the retry honours it).
pub fn failure(provider: &str, err: &OutboundError) -> (SendResult, Option<Duration>) {
    let wait = match err.kind {
        ErrorKind::RateLimited { retry_after } => Some(
            retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER),
        ),
        _ => None,
    };
    let result = SendResult::Failed {
        retryable: err.retryable(),
        in_doubt: err.in_doubt,
        code: None,
        message: format!(
            "{provider} ({}): {}",
            class(err).replace('_', " "),
            err.message
        ),
    };
    (result, wait)
}
