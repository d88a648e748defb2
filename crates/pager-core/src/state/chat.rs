//! Incidents in Slack: each incident of a service with a `slack_channel`
//! gets one message there, kept up to date one step at a time (see
//! [`crate::chat`]). A step is a delivery of the incident that is not among
//! its pages: acknowledging cancels pages, never the message's update.

use super::{Cx, State};
use crate::chat::{ChatStep, ChatThread};
use crate::command::{Effect, Response, SendResult};
use crate::delivery::{DeliveryId, DeliveryStatus, Purpose, MAX_ATTEMPTS};
use crate::incident::IncidentId;
use crate::oncall::{ContactKind, ContactMethod};
use crate::timer::Timer;
use std::sync::Arc;

impl State {
    /// A new incident: its post, when its service (or team) has a channel.
    pub(super) fn chat_open(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let Some(channel) = self.config.slack_channel_of(&inc.service) else {
            return;
        };
        let channel = channel.to_string();
        // The post shows the incident as it is: its first entries need no reply.
        let replied = inc.timeline.len() as u32;
        self.chat.insert(
            id,
            ChatThread {
                channel,
                replied,
                ..ChatThread::default()
            },
        );
        self.chat_queue(cx, id, ChatStep::Post);
    }

    /// After an entry is applied: the incidents it changed that have a
    /// message get their next step, or, with one in flight, are marked stale.
    pub(super) fn chat_changed(&mut self, cx: &mut Cx) {
        if self.chat.is_empty() {
            return;
        }
        let changed: Vec<IncidentId> = self
            .incidents
            .just_changed()
            .iter()
            .copied()
            .filter(|id| self.chat.contains_key(id))
            .collect();
        for id in changed {
            let Some(t) = self.chat.get_mut(&id) else {
                continue;
            };
            // A step queued by this very entry renders what it did.
            if t.busy.is_none() || cx.meta.index > t.busy_since {
                t.stale = true;
            }
            self.chat_next(cx, id);
        }
    }

    /// The next step of the incident's message, unless one is in flight or
    /// the post never got out: the update first, then the thread's replies.
    fn chat_next(&mut self, cx: &mut Cx, id: IncidentId) {
        let entries = self.incidents.get(&id).map(|i| i.timeline.len() as u32);
        let Some(t) = self.chat.get(&id) else {
            return;
        };
        if t.busy.is_some() || t.ts.is_empty() {
            return;
        }
        let step = match entries {
            _ if t.stale => ChatStep::Update,
            Some(n) if n > t.replied => ChatStep::Reply {
                from: t.replied,
                to: n,
            },
            _ => return,
        };
        self.chat_queue(cx, id, step);
    }

    fn chat_queue(&mut self, cx: &mut Cx, id: IncidentId, step: ChatStep) {
        let Some(channel) = self.chat.get(&id).map(|t| t.channel.clone()) else {
            return;
        };
        let cm = ContactMethod {
            name: "slack".into(),
            kind: ContactKind::Slack,
            address: channel,
        };
        let delivery = self.queue_detached(cx, id, "", Purpose::Chat { step }, &cm);
        if let Some(t) = self.chat.get_mut(&id) {
            t.busy = Some(delivery);
            t.busy_since = cx.meta.index;
            match step {
                ChatStep::Post | ChatStep::Update => t.stale = false,
                ChatStep::Reply { to, .. } => t.replied = to,
            }
        }
    }

    /// The outcome of a step: settle it, then the next one. A step that
    /// failed for good is recorded on the thread and the message moves on
    /// (an update shows everything anyway).
    pub(super) fn chat_outcome(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        attempt: u32,
        step: ChatStep,
        result: &SendResult,
    ) -> Response {
        let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) else {
            return Response::Noop;
        };
        if d.status != DeliveryStatus::Pending {
            return Response::Noop; // settled already (a duplicate outcome after a re-claim)
        }
        let incident = d.incident;
        d.updated_at = cx.at;
        self.pending.remove(&id);
        let done = match result {
            SendResult::Sent {
                provider_id,
                reconciled,
            } => {
                d.status = DeliveryStatus::Sent;
                d.provider_id = provider_id.clone();
                d.in_doubt = false;
                self.stats.deliveries_sent += 1;
                if *reconciled {
                    self.stats.deliveries_reconciled += 1;
                }
                cx.effects.push(Effect::DeliverySent { delivery: id });
                if let Some(t) = self.chat.get_mut(&incident) {
                    t.sent += 1;
                    t.error.clear();
                    if step == ChatStep::Post {
                        let (channel, ts) = provider_id
                            .split_once('/')
                            .unwrap_or(("", provider_id.as_str()));
                        if !channel.is_empty() {
                            t.channel = channel.to_string();
                        }
                        t.ts = ts.to_string();
                    }
                }
                true
            }
            SendResult::Failed {
                retryable,
                in_doubt,
                code,
                message,
            } => {
                if *in_doubt {
                    self.stats.deliveries_in_doubt += 1;
                }
                d.in_doubt = *in_doubt || (d.in_doubt && *retryable);
                d.error = match code {
                    Some(c) => format!("{c}: {message}"),
                    None => message.clone(),
                };
                if *retryable && attempt < MAX_ATTEMPTS {
                    d.status = DeliveryStatus::RetryWait;
                    let when = cx.at + super::delivery::backoff(id, attempt);
                    // Owned by no incident: a compaction of the incident must not
                    // drop the retry of its message's last step.
                    self.set_timer(
                        0,
                        when,
                        Timer::Retry {
                            incident: 0,
                            delivery: id,
                        },
                    );
                    cx.effects.push(Effect::DeliveryFailed {
                        delivery: id,
                        retry_at: Some(when),
                    });
                    false
                } else {
                    d.status = DeliveryStatus::Failed;
                    self.stats.deliveries_failed += 1;
                    let error = d.error.clone();
                    cx.effects.push(Effect::DeliveryFailed {
                        delivery: id,
                        retry_at: None,
                    });
                    if let Some(t) = self.chat.get_mut(&incident) {
                        t.failed += 1;
                        t.error = error;
                    }
                    true
                }
            }
        };
        if done {
            if let Some(t) = self.chat.get_mut(&incident) {
                if t.busy == Some(id) {
                    t.busy = None;
                }
            }
            self.chat_next(cx, incident);
        }
        Response::Noop
    }

    /// After a compaction: forget the threads of incidents forgotten, unless
    /// a step is still in flight.
    pub(super) fn forget_chats(&mut self) {
        let incidents = &self.incidents;
        self.chat
            .retain(|id, t| incidents.contains_key(id) || t.busy.is_some());
    }
}
