//! The leader's Jira sends: an incident's ticket, created and moved
//! ([`pager_core::ticket`]). Built from the replicated state when the send
//! starts, sent by the dispatcher under the same fence as every page, with
//! its own send permits so a slow Jira never holds up a page.
//!
//! A create carries the label `pagerd-delivery-ID`. One left in doubt (an
//! earlier leader never recorded its outcome, or the answer was lost) is
//! searched for by that label before it is sent again, and an issue found is
//! recorded as created (`reconciled`). A move is idempotent: an issue already
//! in the status asked for is left alone.

use pager_core::delivery::Purpose;
use pager_core::ticket::{TicketStage, TicketStep};
use pager_core::{ContactKind, Delivery, Incident, State};
use pager_outbound::adf::{Doc, Inline};
use pager_outbound::{JiraClient, OutboundError};
use serde_json::Value;

/// One Jira request to make.
#[derive(Debug, Clone)]
pub struct JiraJob {
    pub delivery: u64,
    pub what: JiraWhat,
}

#[derive(Debug, Clone)]
pub enum JiraWhat {
    /// `POST /rest/api/3/issue`.
    Create {
        project: String,
        issue_type: String,
        summary: String,
        description: Value,
        /// Whose Jira account to assign it to (their email), when anyone's.
        assignee_email: Option<String>,
        /// `pagerd-delivery-ID`: how it is found again.
        label: String,
    },
    /// A transition of `key` to the transition or status called `name`.
    Move {
        key: String,
        name: String,
        to: TicketStage,
    },
    /// Nothing left to send it about (why).
    Gone(String),
}

/// The label a create carries, to be found again by.
pub fn label(delivery: u64) -> String {
    format!("pagerd-delivery-{delivery}")
}

/// The Jira job of delivery `d`, if it is one.
pub fn build(state: &State, d: &Delivery, console: &str) -> Option<JiraJob> {
    if d.method != ContactKind::Jira {
        return None;
    }
    let Purpose::Ticket { step } = d.purpose else {
        return Some(gone(d, "not a ticket step".into()));
    };
    let Some(ticket) = state.tickets.get(&d.incident) else {
        return Some(gone(
            d,
            format!("incident {} has no ticket any more", d.incident),
        ));
    };
    let what = match step {
        TicketStep::Create => {
            let Some(inc) = state.incidents.get(&d.incident) else {
                return Some(gone(
                    d,
                    format!("incident {} is no longer kept", d.incident),
                ));
            };
            JiraWhat::Create {
                project: ticket.target.project.clone(),
                issue_type: ticket.target.issue_type.clone(),
                summary: format!("[pagerd #{}] {}", inc.id, inc.summary),
                description: description(inc, console),
                assignee_email: responder(state, inc).and_then(|user| email_of(state, &user)),
                label: label(d.id),
            }
        }
        TicketStep::Move { to } => JiraWhat::Move {
            key: ticket.key.clone(),
            name: ticket.target.name_of(to).to_string(),
            to,
        },
    };
    Some(JiraJob {
        delivery: d.id,
        what,
    })
}

fn gone(d: &Delivery, why: String) -> JiraJob {
    JiraJob {
        delivery: d.id,
        what: JiraWhat::Gone(why),
    }
}

/// Who the ticket is for: the RCA's assignee, else whoever acknowledged,
/// else the first user paged.
fn responder(state: &State, inc: &Incident) -> Option<String> {
    if let Some(rca) = state.rcas.get(&inc.id) {
        if !rca.assignee.is_empty() {
            return Some(rca.assignee.clone());
        }
    }
    if !inc.acknowledged_by.is_empty() {
        return Some(inc.acknowledged_by.clone());
    }
    inc.deliveries
        .iter()
        .filter_map(|id| state.deliveries.get(id))
        .find(|d| d.purpose == Purpose::Page && !d.shadow && !d.user.is_empty())
        .map(|d| d.user.clone())
}

/// The user's email: `email`, else their first email contact method.
fn email_of(state: &State, user: &str) -> Option<String> {
    let u = state.config.users.get(user)?;
    if !u.email.is_empty() {
        return Some(u.email.clone());
    }
    u.contact_methods
        .iter()
        .find(|cm| cm.kind == ContactKind::Email)
        .map(|cm| cm.address.clone())
}

/// The ticket's body: what broke, where, the runbook, and the way back.
fn description(inc: &Incident, console: &str) -> Value {
    let mut doc = Doc::new()
        .inlines([
            Inline::strong("Service: "),
            Inline::text(inc.service.clone()),
        ])
        .inlines([
            Inline::strong("Urgency: "),
            Inline::text(format!(
                "{} (severity {})",
                inc.urgency.as_str(),
                inc.severity.as_str()
            )),
        ]);
    if !inc.source.is_empty() {
        doc = doc.inlines([Inline::strong("Source: "), Inline::text(inc.source.clone())]);
    }
    if !inc.runbook_url.is_empty() {
        doc = doc.inlines([
            Inline::strong("Runbook: "),
            Inline::link(inc.runbook_url.clone(), inc.runbook_url.clone()),
        ]);
    }
    if !inc.bridge_url.is_empty() {
        doc = doc.inlines([
            Inline::strong("Bridge: "),
            Inline::link(inc.bridge_url.clone(), inc.bridge_url.clone()),
        ]);
    }
    if !inc.custom_details.is_empty() {
        let details: Vec<String> = inc
            .custom_details
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        doc = doc.heading(3, "Details").bullets(&details);
    }
    doc.link(
        &format!("Incident {} in pagerd", inc.id),
        &format!("{console}/incidents/{}", inc.id),
    )
    .into_value()
}

/// Make the request. `Ok` is the provider id to record: the issue key.
pub async fn send(client: &JiraClient, job: &JiraJob) -> Result<String, OutboundError> {
    match &job.what {
        JiraWhat::Create {
            project,
            issue_type,
            summary,
            description,
            assignee_email,
            label,
        } => {
            let assignee = match assignee_email {
                Some(email) => client.find_account_id(email).await?,
                None => None,
            };
            let created = client
                .create_issue(
                    project,
                    issue_type,
                    summary,
                    description.clone(),
                    assignee.as_deref(),
                    &["pagerd", label.as_str()],
                )
                .await?;
            Ok(created.key)
        }
        JiraWhat::Move { key, name, .. } => {
            client.transition_to(key, name).await?;
            Ok(key.clone())
        }
        JiraWhat::Gone(why) => Err(OutboundError::permanent(why.clone())),
    }
}

/// Whether `job` is looked for at Jira before it is sent again (a move is
/// simply made again).
pub fn findable(job: &JiraJob) -> bool {
    matches!(job.what, JiraWhat::Create { .. })
}

/// The issue an earlier attempt created, found by its label.
pub async fn find_sent(
    client: &JiraClient,
    job: &JiraJob,
) -> Result<Option<String>, OutboundError> {
    match &job.what {
        JiraWhat::Create { project, label, .. } => client.find_by_label(project, label).await,
        _ => Ok(None),
    }
}
