//! Roll-ups of resolved incidents, and the page review report made of them;
//! see [`crate::report`].

use super::State;
use crate::delivery::{DeliveryStatus, Purpose};
use crate::incident::{Incident, IncidentStatus};
use crate::oncall::{ContactKind, Urgency};
use crate::report::{day_of, Builder, Closed, DayRollup, Report, DAY, MAX_REPORT_DAYS};
use crate::time::Millis;
use jiff::civil::Weekday;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Night, for wake-ups: from 22:00 to 07:00 on the person's wall clock.
const NIGHT_FROM_HOUR: i8 = 22;
const NIGHT_TO_HOUR: i8 = 7;
/// Working hours when a service has no support hours: 09:00-17:00, Monday to Friday.
const WORK_FROM_HOUR: i8 = 9;
const WORK_TO_HOUR: i8 = 17;

/// Who "(no team)" is in a report.
pub const NO_TEAM: &str = "(no team)";

impl State {
    /// The wall clock of `user` at `at`: (weekday, hour); UTC when the user
    /// has no zone (or an unknown one).
    fn local_clock(&self, user: &str, at: Millis) -> (Weekday, i8) {
        let tz = self
            .config
            .users
            .get(user)
            .and_then(|u| u.time_zone.as_ref())
            .and_then(|z| z.time_zone().cloned())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let ts = i64::try_from(at)
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let z = ts.to_zoned(tz);
        (z.weekday(), z.hour())
    }

    /// What `inc` adds to its day's roll-up (an open one: no time to resolve).
    fn closed(&self, inc: &Incident) -> Closed {
        let svc = self.config.services.get(&inc.service);
        let support = svc.and_then(|s| s.support_hours.as_ref());
        let mut c = Closed {
            summary: inc.summary.clone(),
            escalated: inc.tracks.iter().any(|t| t.level >= 1),
            sla_breached: inc.sla_breached,
            tta_s: inc
                .acknowledged_at
                .map(|a| secs(a.saturating_sub(inc.created_at))),
            ttr_s: inc
                .resolved_at
                .map(|r| secs(r.saturating_sub(inc.created_at))),
            auto_resolved: inc.resolved_by.starts_with("event")
                || inc.resolved_by.starts_with("pagerd")
                || inc.resolved_by.starts_with("heartbeat"),
            snoozed: inc.snoozed,
            ..Closed::default()
        };
        for d in inc.deliveries.iter().filter_map(|d| self.deliveries.get(d)) {
            // A page cancelled before it went out woke nobody (one in flight
            // when the incident resolved counts only if its outcome came first).
            let went = match d.status {
                DeliveryStatus::Cancelled | DeliveryStatus::Pending => !d.provider_id.is_empty(),
                _ => true,
            };
            if d.shadow || d.purpose != Purpose::Page || !went {
                continue;
            }
            c.pages += 1;
            let (day, hour) = self.local_clock(&d.user, d.created_at);
            let off = match support {
                Some(h) => !crate::schedule::within(&h.time_zone, &h.windows, d.created_at),
                None => {
                    matches!(day, Weekday::Saturday | Weekday::Sunday)
                        || !(WORK_FROM_HOUR..WORK_TO_HOUR).contains(&hour)
                }
            };
            c.off_hours_pages += u32::from(off);
            let night = !(NIGHT_TO_HOUR..NIGHT_FROM_HOUR).contains(&hour);
            if night && inc.urgency == Urgency::High && d.method != ContactKind::Email {
                c.night_wakeups.push(d.user.clone());
            }
        }
        c.night_wakeups.sort();
        c.night_wakeups.dedup();
        c
    }

    /// A resolved incident goes into the roll-up of the day it opened.
    pub(super) fn roll_up(&mut self, id: crate::incident::IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let c = self.closed(inc);
        let (day, service) = (day_of(inc.created_at), inc.service.clone());
        let r = self
            .rollups
            .entry(day)
            .or_default()
            .entry(service)
            .or_default();
        Arc::make_mut(r).add(&c);
    }

    /// The page review report of the whole UTC days from `from`'s to before
    /// `to` (a partial day counts whole); see [`State::report_input`].
    pub fn report(
        &self,
        from: Millis,
        to: Millis,
        team: &str,
        service: &str,
        now: Millis,
    ) -> Result<Report, (&'static str, String)> {
        self.report_input(from, to, team, service, now)
            .map(ReportInput::finish)
    }

    /// What a report reads from the state, for one team or service or all, as
    /// of `now` (for overdue RCAs; open incidents count, without a time to
    /// resolve): the days' roll-ups shared, not merged, so a caller holding
    /// the state's read lock lets go before the merge ([`ReportInput::finish`]).
    /// Refused, naming the field, for a range that ends before it starts or is
    /// longer than [`MAX_REPORT_DAYS`], or an unknown team.
    pub fn report_input(
        &self,
        from: Millis,
        to: Millis,
        team: &str,
        service: &str,
        now: Millis,
    ) -> Result<ReportInput, (&'static str, String)> {
        if to <= from {
            return Err(("to", "the range ends before it starts".into()));
        }
        let (first, last) = (day_of(from), day_of(to.saturating_sub(1)));
        if u64::from(last - first) >= MAX_REPORT_DAYS {
            return Err((
                "from",
                format!("at most {MAX_REPORT_DAYS} days in one report"),
            ));
        }
        if !team.is_empty() && !self.config.teams.contains_key(team) {
            return Err(("team", format!("unknown team {team:?}")));
        }
        let teams: BTreeMap<String, String> = self
            .config
            .services
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.team.clone()?)))
            .collect();
        let team_of = |s: &str| teams.get(s).map_or(NO_TEAM, String::as_str);
        let wanted = |s: &str| {
            (service.is_empty() || s == service) && (team.is_empty() || team_of(s) == team)
        };
        let mut parts = Vec::new();
        for (_, services) in self.rollups.range(first..=last) {
            for (s, r) in services.iter().filter(|(s, _)| wanted(s)) {
                parts.push((s.clone(), r.clone()));
            }
        }
        // Open incidents are few (an index by service and key holds them).
        let (start, end) = (Millis::from(first) * DAY, (Millis::from(last) + 1) * DAY);
        let mut open = Vec::new();
        for ids in self.open_by_key.values() {
            for id in ids.values() {
                if let Some(i) = self.incidents.get(id) {
                    if i.status != IncidentStatus::Resolved
                        && (start..end).contains(&i.created_at)
                        && wanted(&i.service)
                    {
                        open.push(i.id);
                    }
                }
            }
        }
        open.sort_unstable();
        open.dedup();
        let open_count = open.len() as u32;
        for id in &open {
            if let Some(i) = self.incidents.get(id) {
                let mut r = DayRollup::default();
                r.add(&self.closed(i));
                parts.push((i.service.clone(), Arc::new(r)));
            }
        }
        let (mut open_rcas, mut overdue_rcas) = (0, 0);
        for r in self.rcas.values() {
            if (service.is_empty() || r.service == service)
                && (team.is_empty() || r.team == team)
                && !r.status.is_done()
            {
                open_rcas += 1;
                overdue_rcas += u32::from(r.overdue(now));
            }
        }
        Ok(ReportInput {
            start,
            end,
            teams,
            parts,
            open: open_count,
            open_rcas,
            overdue_rcas,
        })
    }
}

/// A report's figures as read from the state, before the merge.
pub struct ReportInput {
    start: Millis,
    end: Millis,
    /// Service to team, for services with one.
    teams: BTreeMap<String, String>,
    parts: Vec<(String, Arc<DayRollup>)>,
    open: u32,
    open_rcas: u32,
    overdue_rcas: u32,
}

impl ReportInput {
    /// Merge the days (the exact percentiles sort every time to acknowledge
    /// and resolve of the range: run it off the async runtime for long ranges).
    pub fn finish(self) -> Report {
        let mut b = Builder::new();
        for (s, r) in &self.parts {
            b.add_rollup(s, r);
        }
        b.open = self.open;
        let teams = self.teams;
        let mut report = b.finish(self.start, self.end, |s| {
            teams.get(s).cloned().unwrap_or_else(|| NO_TEAM.to_string())
        });
        report.open_rcas = self.open_rcas;
        report.overdue_rcas = self.overdue_rcas;
        report
    }
}

fn secs(ms: Millis) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}
