//! Heartbeat monitors: a ping resets the monitor's timer; a missed one
//! opens an incident, and the next ping resolves it.

use super::{Cx, State};
use crate::command::{Rejection, Response};
use crate::event::Event;
use crate::incident::IncidentId;
use crate::time::Millis;
use crate::timer::{Timer, TimerKey};
use serde::{Deserialize, Serialize};

/// A heartbeat monitor's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatState {
    /// When the last ping arrived, in milliseconds since the Unix epoch.
    pub last_seen: Millis,
    /// The pending `HeartbeatMissed` timer.
    pub timer: Option<TimerKey>,
    /// The incident a missed ping opened, until a ping resolves it.
    pub incident: Option<IncidentId>,
}

impl State {
    pub(super) fn heartbeat(&mut self, cx: &mut Cx, key: &str) -> Response {
        let Some((name, hb)) = self.config.heartbeats.iter().find(|(_, h)| h.key == key) else {
            return Response::Rejected(Rejection::NotFound {
                field: "key".into(),
                what: "heartbeat key".into(),
            });
        };
        let (name, interval) = (name.clone(), hb.interval);
        let st = self.heartbeats.entry(name.clone()).or_default();
        st.last_seen = cx.at;
        let (old, open) = (st.timer.take(), st.incident.take());
        if let Some(k) = old {
            self.timers.remove(&k);
        }
        let key = self.timers.insert(
            cx.at + interval.millis(),
            Timer::HeartbeatMissed { name: name.clone() },
        );
        if let Some(st) = self.heartbeats.get_mut(&name) {
            st.timer = Some(key);
        }
        if let Some(id) = open {
            self.resolve(cx, id, &format!("heartbeat {name}"));
            return Response::Incident { id };
        }
        Response::Noop
    }

    pub(super) fn heartbeat_missed(&mut self, cx: &mut Cx, name: &str) {
        let Some(hb) = self.config.heartbeats.get(name).cloned() else {
            return;
        };
        let Some(key) = self
            .config
            .services
            .get(&hb.service)
            .and_then(|s| s.integration_keys.first())
            .cloned()
        else {
            return;
        };
        if let Some(st) = self.heartbeats.get_mut(name) {
            st.timer = None;
        }
        let summary = if hb.summary.is_empty() {
            format!("heartbeat {name} missed: no ping for {}", hb.interval)
        } else {
            hb.summary.clone()
        };
        let event = Event {
            routing_key: key,
            dedup_key: format!("heartbeat:{name}"),
            summary,
            source: "pagerd".into(),
            ..Default::default()
        };
        if let Response::Event {
            incident: Some(id), ..
        } = self.ingest(cx, &event)
        {
            if let Some(st) = self.heartbeats.get_mut(name) {
                st.incident = Some(id);
            }
        }
    }
}
