//! The leader's Slack sends: an incident's message in its channel (post,
//! update, thread reply: [`pager_core::chat`]) and pages to a user's direct
//! messages. Built from the replicated state when the send starts, sent by
//! the dispatcher under the same fence as every page.
//!
//! A post or reply left in doubt (an earlier leader never recorded its
//! outcome, or the answer was lost) carries a marker block with its delivery
//! id: before it is sent again, the channel's history (the thread's, for a
//! reply) is searched for that marker, and a message found is recorded as
//! sent (`reconciled`) instead of posted twice. An update is idempotent and
//! simply sent again.

use pager_core::chat::ChatStep;
use pager_core::delivery::Purpose;
use pager_core::{ContactKind, Delivery, Incident, IncidentStatus, State};
use pager_outbound::slack::{self, IncidentCard, Posted};
use pager_outbound::{OutboundError, SlackClient};
use serde_json::{json, Value};

/// How far before its claim a post in doubt is looked for (clocks differ).
const LOOK_BACK_MS: u64 = 60_000;

/// One Slack request to make, and what it shows.
#[derive(Debug, Clone)]
pub struct SlackJob {
    pub delivery: u64,
    pub what: SlackWhat,
    /// Notification and fallback text.
    pub text: String,
    /// Block Kit blocks, the marker included.
    pub blocks: Value,
}

#[derive(Debug, Clone)]
pub enum SlackWhat {
    /// A step of the incident's message in `channel`.
    Chat {
        step: ChatStep,
        channel: String,
        /// The message's ts (empty for the post).
        ts: String,
    },
    /// A page to a user's DM: `to` is their Slack email or member id.
    Direct { to: String },
    /// Nothing left to send it about (why).
    Gone(String),
}

/// The Slack job of delivery `d`, if it is one. One that can no longer be
/// built (its incident was forgotten) fails for good when sent.
pub fn build(state: &State, d: &Delivery, console: &str, text: &str) -> Option<SlackJob> {
    if d.method != ContactKind::Slack {
        return None;
    }
    let incident = state.incidents.get(&d.incident);
    let marked = |blocks: Value, label: &str| slack::marker_block(blocks, d.id, label);
    let job = match &d.purpose {
        Purpose::Chat { step } => {
            let Some(inc) = incident else {
                return Some(SlackJob {
                    delivery: d.id,
                    what: SlackWhat::Gone(format!("incident {} is no longer kept", d.incident)),
                    text: String::new(),
                    blocks: Value::Null,
                });
            };
            let thread = state.chat.get(&d.incident);
            let channel = thread.map_or(d.address.clone(), |t| t.channel.clone());
            let ts = thread.map(|t| t.ts.clone()).unwrap_or_default();
            let label = format!("pagerd · incident {}", inc.id);
            let (text, blocks) = match step {
                ChatStep::Post | ChatStep::Update => {
                    let card = card(inc, console);
                    (slack::incident_text(&card), slack::incident_blocks(&card))
                }
                ChatStep::Reply { from, to } => reply(inc, *from as usize, *to as usize),
            };
            SlackJob {
                delivery: d.id,
                what: SlackWhat::Chat {
                    step: *step,
                    channel,
                    ts,
                },
                text,
                blocks: marked(blocks, &label),
            }
        }
        Purpose::Page => {
            let Some(inc) = incident else {
                return Some(SlackJob {
                    delivery: d.id,
                    what: SlackWhat::Gone(format!("incident {} is no longer kept", d.incident)),
                    text: String::new(),
                    blocks: Value::Null,
                });
            };
            let card = card(inc, console);
            SlackJob {
                delivery: d.id,
                what: SlackWhat::Direct {
                    to: d.address.clone(),
                },
                text: text.to_string(),
                blocks: marked(slack::incident_blocks(&card), "pagerd page"),
            }
        }
        // A test page (or any message of no incident): its words only.
        _ => SlackJob {
            delivery: d.id,
            what: SlackWhat::Direct {
                to: d.address.clone(),
            },
            text: text.to_string(),
            blocks: marked(
                json!([{ "type": "section", "text": { "type": "plain_text", "text": slack::escape_within(text, 2_900) } }]),
                "pagerd",
            ),
        },
    };
    Some(job)
}

fn card(inc: &Incident, console: &str) -> IncidentCard {
    let status = match (inc.status, inc.merged_into) {
        (IncidentStatus::Resolved, Some(into)) => format!("merged into {into}"),
        (status, _) => status.as_str().to_string(),
    };
    let assignee = match inc.status {
        IncidentStatus::Triggered => None,
        _ if !inc.acknowledged_by.is_empty() => Some(inc.acknowledged_by.clone()),
        _ => None,
    };
    IncidentCard {
        id: inc.id.to_string(),
        title: inc.summary.clone(),
        service: inc.service.clone(),
        status,
        urgency: inc.urgency.as_str().to_string(),
        assignee,
        link: format!("{console}/incidents/{}", inc.id),
        bridge_url: (!inc.bridge_url.is_empty()).then(|| inc.bridge_url.clone()),
    }
}

/// Timeline entries `from..to` as one thread reply, a line each.
fn reply(inc: &Incident, from: usize, to: usize) -> (String, Value) {
    let to = to.min(inc.timeline.len());
    let lines: Vec<String> = inc.timeline[from.min(to)..to]
        .iter()
        .map(|e| {
            let at = jiff::Timestamp::from_millisecond(e.at as i64)
                .map(|t| t.strftime("%H:%M:%S UTC").to_string())
                .unwrap_or_default();
            if e.by.is_empty() {
                format!("{at} {}", e.what)
            } else {
                format!("{at} {}: {}", e.by, e.what)
            }
        })
        .collect();
    let text = lines.join("\n");
    let blocks = json!([{
        "type": "section",
        "text": { "type": "mrkdwn", "text": slack::escape_within(&text, 2_900) },
    }]);
    (slack::escape_within(&text, 3_000), blocks)
}

/// Make the request. `Ok` is the provider id to record: `channel/ts`.
pub async fn send(client: &SlackClient, job: &SlackJob) -> Result<String, OutboundError> {
    let posted = match &job.what {
        SlackWhat::Chat {
            step: ChatStep::Post,
            channel,
            ..
        } => {
            client
                .post_message(channel, &job.text, job.blocks.clone(), None)
                .await?
        }
        SlackWhat::Chat {
            step: ChatStep::Update,
            channel,
            ts,
        } => {
            client
                .update(channel, ts, &job.text, job.blocks.clone())
                .await?
        }
        SlackWhat::Chat {
            step: ChatStep::Reply { .. },
            channel,
            ts,
        } => {
            client
                .post_message(channel, &job.text, job.blocks.clone(), Some(ts))
                .await?
        }
        SlackWhat::Direct { to } => {
            let dm = direct_channel(client, to).await?;
            client
                .post_message(&dm, &job.text, job.blocks.clone(), None)
                .await?
        }
        SlackWhat::Gone(why) => return Err(OutboundError::permanent(why.clone())),
    };
    Ok(provider_id(&posted))
}

/// The message an earlier attempt got out, found by its marker; `None` when
/// it is not there (or cannot be looked for: an update is simply sent again).
pub async fn find_sent(
    client: &SlackClient,
    job: &SlackJob,
    claimed_at: u64,
) -> Result<Option<String>, OutboundError> {
    let since = claimed_at.saturating_sub(LOOK_BACK_MS);
    let oldest = format!("{}.{:06}", since / 1_000, (since % 1_000) * 1_000);
    let marker = slack::marker_id(job.delivery);
    let found = match &job.what {
        SlackWhat::Chat {
            step: ChatStep::Post,
            channel,
            ..
        } => client.find_marked(channel, None, &oldest, &marker).await?,
        SlackWhat::Chat {
            step: ChatStep::Reply { .. },
            channel,
            ts,
        } => {
            client
                .find_marked(channel, Some(ts), &oldest, &marker)
                .await?
        }
        SlackWhat::Chat {
            step: ChatStep::Update,
            ..
        }
        | SlackWhat::Gone(_) => None,
        SlackWhat::Direct { to } => {
            let dm = direct_channel(client, to).await?;
            client.find_marked(&dm, None, &oldest, &marker).await?
        }
    };
    Ok(found.as_ref().map(provider_id))
}

/// Whether `job` can be looked for at Slack before it is sent again.
pub fn findable(job: &SlackJob) -> bool {
    !matches!(
        job.what,
        SlackWhat::Chat {
            step: ChatStep::Update,
            ..
        } | SlackWhat::Gone(_)
    )
}

fn provider_id(posted: &Posted) -> String {
    format!("{}/{}", posted.channel, posted.ts)
}

/// The bot's DM conversation with `to` (an email is looked up first).
async fn direct_channel(client: &SlackClient, to: &str) -> Result<String, OutboundError> {
    let user = if to.contains('@') {
        match client.lookup_by_email(to).await? {
            Some(u) if !u.deleted => u.id,
            Some(_) => {
                return Err(OutboundError::permanent(
                    "the Slack account of this address is deactivated",
                ))
            }
            None => {
                return Err(OutboundError::permanent(
                    "no Slack member has this email address",
                ))
            }
        }
    } else {
        to.to_string()
    };
    client.open_dm(&user).await
}
