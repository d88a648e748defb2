//! Incidents in Slack: each incident of a service with a `slack_channel`
//! gets one message there, kept up to date one step at a time (see
//! [`crate::chat`]). A step is a delivery of the incident that is not among
//! its pages: acknowledging cancels pages, never the message's update.

use super::delivery::RetryRule;
use super::{Cx, State};
use crate::chat::{ChatStep, ChatThread};
use crate::command::{Response, SendResult};
use crate::delivery::{DeliveryId, Purpose};
use crate::incident::IncidentId;
use crate::oncall::{ContactKind, ContactMethod};

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
        let Some((incident, sent)) =
            self.settle_detached(cx, id, attempt, result, RetryRule::Attempts)
        else {
            return Response::Noop;
        };
        if let Some(t) = self.chat.get_mut(&incident) {
            match sent {
                Ok(provider_id) => {
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
                Err(error) => {
                    t.failed += 1;
                    t.error = error;
                }
            }
            if t.busy == Some(id) {
                t.busy = None;
            }
        }
        self.chat_next(cx, incident);
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
