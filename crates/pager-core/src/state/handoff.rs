//! Shift handoffs: when a schedule's on-call changes hands, the incoming
//! person gets a summary by email (what is still open, what paged the
//! outgoing shift, the notes the outgoing person left, overrides coming up);
//! an hour before a shift starts, a reminder (unless the user opted out);
//! and when a document change or an override moves someone's shifts, they
//! are told.
//!
//! Timers as data like escalations: each schedule holds at most one
//! `ShiftChange` timer (its next handoff) and one `ShiftReminder`, planned
//! again whenever the document changes and after each fires. The emails are
//! deliveries of no incident, rendered when sent.

use super::{rejected_invalid, Cx, State};
use crate::command::{Rejection, Response};
use crate::delivery::Purpose;
use crate::time::Millis;
use crate::timer::{Timer, TimerKey};
use serde::{Deserialize, Serialize};

/// How far ahead the next handoff is looked for.
const PLAN_AHEAD: Millis = 28 * 86_400_000;
/// The reminder comes this long before a shift starts.
pub const REMIND_BEFORE: Millis = 3_600_000;
/// The shifts compared when the document changes, from now.
pub const MOVED_WINDOW: Millis = 14 * 86_400_000;
/// Notes one schedule may hold until its next handoff.
pub const MAX_HANDOFF_NOTES: usize = 20;

/// A note for the next on-call of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffNote {
    /// When it was left.
    pub at: Millis,
    /// Who left it.
    pub by: String,
    /// What it says.
    pub text: String,
}

/// One schedule's handoff plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The next handoff instant and its timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<(Millis, TimerKey)>,
    /// The reminder before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<TimerKey>,
    /// Notes for the next on-call, cleared when the handoff goes out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<HandoffNote>,
}

impl State {
    /// Who of `schedule` is on call at `at` (the first responder).
    fn on_call(&self, schedule: &str, at: Millis) -> Option<String> {
        self.config
            .schedules
            .get(schedule)?
            .on_call_at(at)
            .users
            .into_iter()
            .next()
    }

    /// The next instant after `now` when `schedule`'s on-call person changes.
    fn next_change(&self, schedule: &str, now: Millis) -> Option<Millis> {
        let s = self.config.schedules.get(schedule)?;
        let mut t = now;
        let current = self.on_call(schedule, now);
        // `until` is the next instant the answer changes (users or shadows);
        // walk until the responder changes.
        for _ in 0..64 {
            let until = s.on_call_at(t).until?;
            if until > now + PLAN_AHEAD {
                return None;
            }
            if self.on_call(schedule, until) != current {
                return Some(until);
            }
            t = until;
        }
        None
    }

    /// Plan every schedule's next handoff and reminder from `now`, replacing
    /// the old timers (the document changed or a handoff fired).
    pub(super) fn plan_handoffs(&mut self, now: Millis) {
        let schedules: Vec<String> = self
            .config
            .schedules
            .iter()
            .filter(|(_, s)| s.hands_off())
            .map(|(n, _)| n.clone())
            .collect();
        let gone: Vec<String> = self
            .handoffs
            .keys()
            .filter(|s| !self.config.schedules.get(*s).is_some_and(|s| s.hands_off()))
            .cloned()
            .collect();
        for s in gone {
            if let Some(h) = self.handoffs.remove(&s) {
                self.drop_handoff_timers(&h);
            }
        }
        for s in schedules {
            self.plan_handoff(&s, now);
        }
    }

    fn drop_handoff_timers(&mut self, h: &Handoff) {
        if let Some((_, key)) = h.next {
            self.timers.remove(&key);
        }
        if let Some(key) = h.reminder {
            self.timers.remove(&key);
        }
    }

    fn plan_handoff(&mut self, schedule: &str, now: Millis) {
        let old = self.handoffs.get(schedule).cloned().unwrap_or_default();
        self.drop_handoff_timers(&old);
        let next = self.next_change(schedule, now);
        let mut h = Handoff {
            notes: old.notes,
            ..Handoff::default()
        };
        if let Some(at) = next {
            let key = self.timers.insert(
                at,
                Timer::ShiftChange {
                    schedule: schedule.to_string(),
                },
            );
            h.next = Some((at, key));
            let remind_at = at.saturating_sub(REMIND_BEFORE);
            if remind_at > now {
                h.reminder = Some(self.timers.insert(
                    remind_at,
                    Timer::ShiftReminder {
                        schedule: schedule.to_string(),
                    },
                ));
            }
        }
        if h == Handoff::default() {
            self.handoffs.remove(schedule);
        } else {
            self.handoffs.insert(schedule.to_string(), h);
        }
    }

    /// A handoff is due: the summary to whoever takes over, then the next plan.
    pub(super) fn shift_change(&mut self, cx: &mut Cx, schedule: &str, key: TimerKey) {
        let Some(h) = self.handoffs.get(schedule) else {
            return;
        };
        if h.next.map(|(_, k)| k) != Some(key) {
            return; // replaced by a later plan
        }
        let incoming = self.on_call(schedule, key.at);
        let outgoing = self.on_call(schedule, key.at.saturating_sub(1));
        if let Some(user) = incoming.filter(|u| Some(u) != outgoing.as_ref()) {
            // The outgoing shift: from when its person came on, at most a week back.
            let from = self.shift_start(schedule, key.at.saturating_sub(1));
            if let Some(cm) = self.email_of(&user) {
                // The notes go with this summary (kept for the next one otherwise).
                let notes = self
                    .handoffs
                    .get_mut(schedule)
                    .map(|h| std::mem::take(&mut h.notes))
                    .unwrap_or_default();
                let purpose = Purpose::Handoff {
                    schedule: schedule.to_string(),
                    outgoing: outgoing.clone().unwrap_or_default(),
                    from,
                    to: key.at,
                    notes,
                };
                self.queue_standalone(cx, &user, purpose, &cm);
            }
        }
        if let Some(h) = self.handoffs.get_mut(schedule) {
            h.next = None;
        }
        self.plan_handoff(schedule, key.at);
    }

    /// When the person on call at `at` came on (at most 7 days back).
    fn shift_start(&self, schedule: &str, at: Millis) -> Millis {
        let floor = at.saturating_sub(7 * 86_400_000);
        let Some(s) = self.config.schedules.get(schedule) else {
            return floor;
        };
        s.shifts(floor, at + 1)
            .into_iter()
            .rev()
            .find(|sh| sh.start <= at && at < sh.end)
            .map(|sh| {
                // Consecutive shifts of the same person (layer and override) are one.
                let mut start = sh.start;
                for prev in s.shifts(floor, sh.start).into_iter().rev() {
                    if prev.user == sh.user && prev.end == start {
                        start = prev.start;
                    } else {
                        break;
                    }
                }
                start
            })
            .unwrap_or(floor)
    }

    /// A shift starts in an hour: remind its person, unless they opted out.
    pub(super) fn shift_reminder(&mut self, cx: &mut Cx, schedule: &str, key: TimerKey) {
        let Some(h) = self.handoffs.get(schedule) else {
            return;
        };
        if h.reminder != Some(key) {
            return;
        }
        let starts = h.next.map(|(at, _)| at).unwrap_or(key.at + REMIND_BEFORE);
        if let Some(h) = self.handoffs.get_mut(schedule) {
            h.reminder = None;
        }
        let Some(user) = self.on_call(schedule, starts) else {
            return;
        };
        let wants = self
            .config
            .users
            .get(&user)
            .is_some_and(|u| u.shift_reminders != Some(false));
        if !wants || self.on_call(schedule, starts.saturating_sub(1)).as_ref() == Some(&user) {
            return;
        }
        if let Some(cm) = self.email_of(&user) {
            let purpose = Purpose::ShiftReminder {
                schedule: schedule.to_string(),
                starts,
            };
            self.queue_standalone(cx, &user, purpose, &cm);
        }
    }

    /// Everyone's shifts in the window, by user: (schedule, start, end).
    fn shifts_by_user(
        &self,
        doc: &crate::oncall::OnCallDoc,
        from: Millis,
        to: Millis,
    ) -> std::collections::BTreeMap<String, Vec<(String, Millis, Millis)>> {
        let mut out: std::collections::BTreeMap<String, Vec<(String, Millis, Millis)>> =
            Default::default();
        for (name, s) in doc.schedules.iter().filter(|(_, s)| s.hands_off()) {
            for sh in s.shifts(from, to) {
                out.entry(sh.user.clone())
                    .or_default()
                    .push((name.clone(), sh.start, sh.end));
            }
        }
        for v in out.values_mut() {
            v.sort();
            // A layer's shift and an override's back to back are one stretch here.
            let mut merged: Vec<(String, Millis, Millis)> = Vec::with_capacity(v.len());
            for (s, a, b) in v.drain(..) {
                match merged.last_mut() {
                    Some(last) if last.0 == s && last.2 == a => last.2 = b,
                    _ => merged.push((s, a, b)),
                }
            }
            *v = merged;
        }
        out
    }

    /// The document changed (`before` was the old one): tell each user whose
    /// shifts in the next two weeks moved, then plan the handoffs again.
    pub(super) fn document_changed(
        &mut self,
        cx: &mut Cx,
        before: &crate::oncall::OnCallDoc,
        first: bool,
    ) {
        if !first {
            let (from, to) = (cx.at, cx.at + MOVED_WINDOW);
            let old = self.shifts_by_user(before, from, to);
            let new = self.shifts_by_user(&self.config, from, to);
            let mut users: Vec<&String> = old.keys().chain(new.keys()).collect();
            users.sort();
            users.dedup();
            let moved: Vec<String> = users
                .into_iter()
                .filter(|u| old.get(*u) != new.get(*u))
                .filter(|u| self.config.users.contains_key(*u))
                .cloned()
                .collect();
            for user in moved {
                if let Some(cm) = self.email_of(&user) {
                    let purpose = Purpose::ShiftsMoved {
                        from,
                        to,
                        version: self.config_version,
                    };
                    self.queue_standalone(cx, &user, purpose, &cm);
                }
            }
        }
        self.plan_handoffs(cx.at);
        self.plan_weekly_reports(cx.at);
    }

    /// `HandoffNote`: a note for `schedule`'s next on-call.
    pub(super) fn handoff_note(
        &mut self,
        cx: &Cx,
        schedule: &str,
        text: &str,
        by: &str,
    ) -> Response {
        if !self.config.schedules.contains_key(schedule) {
            return Response::Rejected(Rejection::NotFound {
                field: "schedule".into(),
                what: format!("schedule {schedule:?}"),
            });
        }
        let text = text.trim();
        if text.is_empty() {
            return rejected_invalid("text", "the note is empty");
        }
        if text.len() > super::MAX_NOTE_BYTES {
            return rejected_invalid(
                "text",
                format!("longer than {} bytes", super::MAX_NOTE_BYTES),
            );
        }
        let h = self.handoffs.entry(schedule.to_string()).or_default();
        if h.notes.len() >= MAX_HANDOFF_NOTES {
            return rejected_invalid(
                "text",
                format!("{MAX_HANDOFF_NOTES} notes are waiting for this handoff already"),
            );
        }
        h.notes.push(HandoffNote {
            at: cx.at,
            by: by.to_string(),
            text: text.to_string(),
        });
        Response::Noop
    }

    /// The user's shifts in `[from, to)` by start: (schedule, start, end).
    pub fn user_shifts(
        &self,
        user: &str,
        from: Millis,
        to: Millis,
    ) -> Vec<(String, Millis, Millis)> {
        self.shifts_by_user(&self.config, from, to)
            .remove(user)
            .unwrap_or_default()
    }

    pub(super) fn check_handoffs(&self) -> Result<(), String> {
        for (name, h) in &self.handoffs {
            if let Some((at, key)) = h.next {
                match self.timers.get(&key) {
                    Some(Timer::ShiftChange { schedule }) if schedule == name && key.at == at => {}
                    other => return Err(format!("handoff of {name} names {key:?}: {other:?}")),
                }
            }
            if let Some(key) = h.reminder {
                match self.timers.get(&key) {
                    Some(Timer::ShiftReminder { schedule }) if schedule == name => {}
                    other => return Err(format!("reminder of {name} names {key:?}: {other:?}")),
                }
            }
        }
        for (key, t) in self.timers.iter() {
            let (name, mine) = match t {
                Timer::ShiftChange { schedule } => (
                    schedule,
                    self.handoffs
                        .get(schedule)
                        .and_then(|h| h.next)
                        .map(|n| n.1),
                ),
                Timer::ShiftReminder { schedule } => (
                    schedule,
                    self.handoffs.get(schedule).and_then(|h| h.reminder),
                ),
                _ => continue,
            };
            if mine != Some(*key) {
                return Err(format!("timer {key:?} of {name} is not its plan's"));
            }
        }
        Ok(())
    }
}

/// Incidents listed in a handoff summary, per kind.
const LISTED: usize = 20;

impl State {
    /// The words of a handoff, shift reminder or shifts-moved email, read
    /// from the state when it is sent; `None` for other deliveries.
    pub fn shift_email(&self, d: &crate::delivery::Delivery) -> Option<crate::render::PageText> {
        use crate::time::rfc3339;
        match &d.purpose {
            Purpose::Handoff {
                schedule,
                outgoing,
                from,
                to,
                notes,
            } => {
                let mut text = format!(
                    "You are on call for {schedule} from {}{}.\n",
                    rfc3339(*to),
                    if outgoing.is_empty() {
                        String::new()
                    } else {
                        format!(", taking over from {outgoing}")
                    }
                );
                // Open incidents of the services whose policies page this schedule.
                let services: Vec<&String> = self
                    .config
                    .services
                    .iter()
                    .filter(|(_, s)| {
                        self.config
                            .escalation_policies
                            .get(&s.escalation_policy)
                            .is_some_and(|p| {
                                p.levels.iter().any(|l| {
                                    l.targets.iter().any(|t| {
                                        matches!(t, crate::oncall::Target::Schedule(n) if n == schedule)
                                    })
                                })
                            })
                    })
                    .map(|(n, _)| n)
                    .collect();
                let mut open: Vec<&crate::incident::Incident> = self
                    .open_by_key
                    .iter()
                    .filter(|(s, _)| services.contains(s))
                    .flat_map(|(_, keys)| keys.values())
                    .filter_map(|id| self.incidents.get(id).map(|i| &**i))
                    .filter(|i| i.is_open())
                    .collect();
                open.sort_by_key(|i| i.id);
                open.dedup_by_key(|i| i.id);
                text.push_str(&format!("\nStill open ({}):\n", open.len()));
                if open.is_empty() {
                    text.push_str("  nothing\n");
                }
                for i in open.iter().take(LISTED) {
                    text.push_str(&format!(
                        "  #{} {} {}: {}\n",
                        i.id,
                        i.status.as_str(),
                        i.service,
                        i.summary
                    ));
                }
                if !outgoing.is_empty() {
                    let mut paged: Vec<(Millis, u64)> = self
                        .deliveries
                        .values()
                        .rev()
                        .take_while(|x| x.created_at >= *from)
                        .filter(|x| {
                            x.user == *outgoing && x.purpose.is_page() && x.created_at < *to
                        })
                        .map(|x| (x.created_at, x.incident))
                        .collect();
                    paged.sort();
                    paged.dedup_by_key(|p| p.1);
                    text.push_str(&format!(
                        "\nPages to {outgoing} during the shift ({} incident(s), since {}):\n",
                        paged.len(),
                        rfc3339(*from)
                    ));
                    if paged.is_empty() {
                        text.push_str("  none\n");
                    }
                    for (at, id) in paged.iter().take(LISTED) {
                        let what = self
                            .incidents
                            .get(id)
                            .map(|i| format!("{} {}: {}", i.status.as_str(), i.service, i.summary))
                            .unwrap_or_else(|| "(no longer kept)".into());
                        text.push_str(&format!("  {} #{id} {what}\n", rfc3339(*at)));
                    }
                }
                if !notes.is_empty() {
                    text.push_str("\nNotes left for you:\n");
                    for n in notes {
                        text.push_str(&format!("  {} ({}): {}\n", n.by, rfc3339(n.at), n.text));
                    }
                }
                let coming: Vec<&crate::schedule::Override> = self
                    .config
                    .schedules
                    .get(schedule)
                    .map(|s| {
                        s.overrides
                            .iter()
                            .filter(|o| o.end > *to && o.start < *to + 7 * 86_400_000)
                            .collect()
                    })
                    .unwrap_or_default();
                if !coming.is_empty() {
                    text.push_str("\nOverrides in the next 7 days:\n");
                    for o in coming {
                        text.push_str(&format!(
                            "  {} from {} to {}{}\n",
                            o.user,
                            rfc3339(o.start),
                            rfc3339(o.end),
                            o.replaces
                                .as_ref()
                                .map(|r| format!(" (for {r})"))
                                .unwrap_or_default()
                        ));
                    }
                }
                Some(crate::render::PageText {
                    subject: format!("[pagerd] Handoff: you are on call for {schedule}"),
                    text,
                })
            }
            Purpose::ShiftReminder { schedule, starts } => Some(crate::render::PageText {
                subject: format!("[pagerd] Your {schedule} shift starts in an hour"),
                text: format!(
                    "Your on-call shift for {schedule} starts at {}.\n\n\
                     (Turn these reminders off with shift_reminders = false under your user in \
                     the on-call document.)\n",
                    rfc3339(*starts)
                ),
            }),
            Purpose::ShiftsMoved { from, to, version } => {
                let mut text = format!(
                    "Version {version} of the on-call document changed your shifts. From {} to {} \
                     you are now on call:\n",
                    rfc3339(*from),
                    rfc3339(*to)
                );
                let shifts = self.user_shifts(&d.user, *from, *to);
                if shifts.is_empty() {
                    text.push_str("  never\n");
                }
                for (s, a, b) in shifts {
                    text.push_str(&format!("  {s}: {} to {}\n", rfc3339(a), rfc3339(b)));
                }
                Some(crate::render::PageText {
                    subject: "[pagerd] Your on-call shifts changed".into(),
                    text,
                })
            }
            _ => None,
        }
    }
}
