//! Deliveries: one page to one contact method of one user. Created by `apply`,
//! sent only by the leader of the term that claimed them (`claim_term`), and
//! closed by a committed `Outcome`.

use crate::incident::IncidentId;
use crate::oncall::ContactKind;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// A delivery's number, from 1 in creation order; also the reply code of its page.
pub type DeliveryId = u64;

/// Attempts per delivery before a retryable failure becomes final. With the
/// backoff (1 s doubling to a 60 s cap) that is about 14 minutes of trying:
/// a provider outage of that length still delivers the page afterwards
/// (acknowledging the incident stops it earlier).
pub const MAX_ATTEMPTS: u32 = 20;

/// Where a delivery is: waiting to be sent, waiting to retry, or settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed by `claim_term`; the leader of that term must send it.
    Pending,
    /// Failed with a retryable error; a retry timer re-claims it.
    RetryWait,
    /// The provider accepted it.
    Sent,
    /// Failed for good: a permanent error, or the attempts ran out.
    Failed,
    /// The incident was acknowledged or resolved before it was sent.
    Cancelled,
}

impl DeliveryStatus {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::RetryWait => "retry_wait",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

/// What a delivery is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A page of an incident.
    #[default]
    Page,
    /// A test page the user asked for (`TestPage`).
    Test,
    /// An email inviting the user to set a console password (`Invite`).
    Invite {
        /// The console role the password will grant.
        role: crate::auth::TokenRole,
        /// The user's `sessions_version` when invited (0: no password yet):
        /// the link works only while it is unchanged, so it works once.
        version: u64,
    },
    /// A reminder that an incident's RCA is overdue (email, low urgency).
    RcaReminder {
        /// The incident whose RCA it is.
        incident: IncidentId,
        /// Whole days overdue when it was sent (0 on the due date).
        days_overdue: u32,
        /// Sent to a team admin, not the assignee.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        to_admin: bool,
    },
    /// The summary for whoever takes over a schedule (email, low urgency).
    Handoff {
        /// The schedule.
        schedule: String,
        /// Who was on call before (empty: nobody).
        outgoing: String,
        /// The outgoing shift: from when its person came on (at most a week back)
        from: Millis,
        /// to the handoff.
        to: Millis,
        /// The notes the outgoing side left.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<crate::state::HandoffNote>,
    },
    /// A shift of the user starts in an hour.
    ShiftReminder {
        /// The schedule.
        schedule: String,
        /// When the shift starts.
        starts: Millis,
    },
    /// A team's weekly page review: the report of `[from, to)` (whole UTC
    /// days), rendered when sent. Its `user` is empty: it goes to an address.
    WeeklyReport {
        /// The team.
        team: String,
        /// The first day's start.
        from: Millis,
        /// The end (exclusive).
        to: Millis,
    },
    /// The user's shifts in `[from, to)` changed with document `version`.
    ShiftsMoved {
        /// The window compared.
        from: Millis,
        /// Exclusive.
        to: Millis,
        /// The document that moved them.
        version: u64,
    },
    /// A step of an incident's Slack message (`address` is the channel).
    Chat {
        /// Post, update or thread reply.
        step: crate::chat::ChatStep,
    },
    /// A step of an incident's Jira ticket (`address` is the project key).
    Ticket {
        /// Create or move.
        step: crate::ticket::TicketStep,
    },
    /// A webhook event (`address` is the URL, `contact` the subscription).
    Webhook {
        /// The event, in `State.hook_events`.
        event: u64,
    },
}

impl Purpose {
    /// A page of an incident (the default, not serialized).
    pub fn is_page(&self) -> bool {
        *self == Purpose::Page
    }
}

/// One page to one contact method of one user, for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery's number; also the reply code its page advertises.
    pub id: DeliveryId,
    /// The incident this delivery pages for.
    pub incident: IncidentId,
    /// The user paged (a name in the document's `users`).
    pub user: String,
    /// The name of the user's contact method it goes to.
    pub contact: String,
    /// SMS, voice or email.
    pub method: ContactKind,
    /// The phone number or email address it goes to, copied when it was created.
    pub address: String,
    /// A copy for a shadow (in training), not a responder.
    #[serde(default)]
    pub shadow: bool,
    /// A page of an incident, a test page, or an invitation; the last two
    /// belong to no incident (`incident` is 0) and no outcome touches an
    /// incident or the user's escalation.
    #[serde(default, skip_serializing_if = "Purpose::is_page")]
    pub purpose: Purpose,
    /// 1 for the first send; raised by each retry.
    pub attempt: u32,
    /// Raft term of the log entry that created or last re-claimed it.
    pub claim_term: u64,
    /// How many times a new leader re-claimed it with no outcome recorded:
    /// each may have duplicated a page that was in flight.
    pub reclaims: u32,
    /// Pending, waiting to retry, sent, failed or cancelled.
    pub status: DeliveryStatus,
    /// When the current claim was made (creation, retry or re-claim): a
    /// reconciliation looks for the page at the provider from here on.
    #[serde(default)]
    pub claimed_at: Millis,
    /// The page may be out already: an earlier leader claimed it and never
    /// recorded an outcome, or the last attempt's request may have reached the
    /// provider. The leader reconciles with the provider before re-sending an
    /// SMS in doubt.
    #[serde(default)]
    pub in_doubt: bool,
    /// Voice: the provider's last call status (`ringing`, `completed`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub call_status: String,
    /// Voice: a key was pressed; only then does a call count as reached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reached: bool,
    /// Told to the user with this page (e.g. another of their contact methods
    /// is unreachable).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notice: String,
    /// The provider's id for the message or call; empty until it is sent.
    pub provider_id: String,
    /// The last failure, as `code: message`; empty when none.
    pub error: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: Millis,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_at: Millis,
}

impl Delivery {
    /// A new delivery `id` for `user`'s contact method `cm`, pending, first
    /// attempt, claimed by `term` at `at`: a page of `incident` unless the
    /// caller says otherwise (`purpose`, `shadow`, `notice`).
    pub fn claimed(
        id: DeliveryId,
        incident: IncidentId,
        user: &str,
        cm: &crate::oncall::ContactMethod,
        term: u64,
        at: Millis,
    ) -> Delivery {
        Delivery {
            id,
            incident,
            user: user.to_string(),
            contact: cm.name.clone(),
            method: cm.kind,
            address: cm.address.clone(),
            shadow: false,
            purpose: Purpose::Page,
            attempt: 1,
            claim_term: term,
            reclaims: 0,
            status: DeliveryStatus::Pending,
            claimed_at: at,
            in_doubt: false,
            call_status: String::new(),
            reached: false,
            notice: String::new(),
            provider_id: String::new(),
            error: String::new(),
            created_at: at,
            updated_at: at,
        }
    }
}

/// What a responder asked for from their phone (SMS reply code or keypress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneAction {
    /// Acknowledge the incident of the page.
    Acknowledge,
    /// Resolve the incident of the page.
    Resolve,
    /// Page the next level of the primary escalation now.
    Escalate,
}

/// A contact method that cannot be reached (the recipient replied STOP, the
/// provider said the number is invalid, ...). Keyed by [`contact_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    /// The kind of contact method: SMS, voice or email.
    pub method: ContactKind,
    /// Its phone number or email address.
    pub address: String,
    /// Why: the recipient's STOP, or the provider's error message.
    pub reason: String,
    /// The provider's error code, when it said so.
    pub code: Option<i64>,
    /// When it was marked unreachable, in milliseconds since the Unix epoch.
    pub since: Millis,
}

/// `sms:+15551234567`: the key of a contact method's health.
pub fn contact_key(method: ContactKind, address: &str) -> String {
    format!("{}:{address}", method.as_str())
}

/// Twilio error codes that say the number itself cannot take this method.
pub const UNREACHABLE_CODES: &[i64] = &[
    21211, // invalid 'To' number
    21610, // recipient unsubscribed (replied STOP)
    21614, // not a mobile number
];

/// `+1*******4567` / `a****@example.com`: an address as it may appear in a
/// timeline (the same shape as the daemon's log masking).
pub fn mask_address(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    if let Some(at) = address.rfind('@') {
        let first = chars.first().filter(|c| **c != '@').map(|c| c.to_string());
        return format!("{}****{}", first.unwrap_or_default(), &address[at..]);
    }
    let n = chars.len();
    let (head, tail) = if n >= 10 { (2, 4) } else { (0, 0) };
    let mut out: String = chars[..head].iter().collect();
    out.push_str("*******");
    out.extend(&chars[n - tail..]);
    out
}
