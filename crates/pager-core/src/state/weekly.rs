//! Weekly page review emails: each team with a `weekly_report` gets, on its
//! day and time in its zone, the report of the seven whole days (UTC) before
//! that day, sent to its list of addresses.
//!
//! A timer as data per team, planned whenever the document changes and after
//! each report; the emails are deliveries of no incident and no user (they go
//! to addresses), claimed and re-claimed like pages, rendered when sent from
//! the day roll-ups, which outlive compaction.

use super::{Cx, State};
use crate::delivery::{Delivery, Purpose};
use crate::oncall::{ContactKind, ContactMethod, WeeklyReport};
use crate::render::PageText;
use crate::report::{day_label, day_of, duration, share, Report, DAY};
use crate::time::Millis;
use crate::timer::{Timer, TimerKey};
use jiff::ToSpan as _;

/// Days one weekly report covers.
pub const WEEKLY_DAYS: Millis = 7;
/// Rows of each table in the email.
const ROWS: usize = 5;

/// The first instant after `now` that is `w.day` at `w.at` on the wall clock
/// of `w.time_zone` (a time a DST change skips moves later, a repeated one
/// takes its first pass); `None` for a zone the build does not know.
pub fn next_weekly(w: &WeeklyReport, now: Millis) -> Option<Millis> {
    let tz = w.time_zone.time_zone()?;
    let now_ts = jiff::Timestamp::from_millisecond(i64::try_from(now).ok()?).ok()?;
    let today = now_ts.to_zoned(tz.clone()).date();
    for d in 0..=7i64 {
        let date = today.checked_add(d.days()).ok()?;
        if date.weekday().to_monday_zero_offset() != w.day.index() as i8 {
            continue;
        }
        let at = date
            .to_datetime(w.at)
            .to_zoned(tz.clone())
            .ok()?
            .timestamp()
            .as_millisecond();
        match u64::try_from(at) {
            Ok(at) if at > now => return Some(at),
            _ => {}
        }
    }
    None
}

impl State {
    /// Plan every team's next weekly report from `now`, replacing the old
    /// timers (the document changed).
    pub(super) fn plan_weekly_reports(&mut self, now: Millis) {
        let planned: Vec<String> = self.weekly_reports.keys().cloned().collect();
        for team in planned {
            if let Some(key) = self.weekly_reports.remove(&team) {
                self.timers.remove(&key);
            }
        }
        let teams: Vec<String> = self
            .config
            .teams
            .iter()
            .filter(|(_, t)| t.weekly_report.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for team in teams {
            self.plan_weekly_report(&team, now);
        }
    }

    fn plan_weekly_report(&mut self, team: &str, now: Millis) {
        let Some(at) = self
            .config
            .teams
            .get(team)
            .and_then(|t| t.weekly_report.as_ref())
            .and_then(|w| next_weekly(w, now))
        else {
            return;
        };
        let key = self.timers.insert(
            at,
            Timer::WeeklyReport {
                team: team.to_string(),
            },
        );
        self.weekly_reports.insert(team.to_string(), key);
    }

    /// A team's weekly report is due: one email per address, then the next
    /// week's plan (from the apply's instant, so a cluster that was down for
    /// weeks sends one report, not one per missed week).
    pub(super) fn weekly_report_due(&mut self, cx: &mut Cx, team: &str, key: TimerKey) {
        if self.weekly_reports.get(team) != Some(&key) {
            return; // replaced by a later plan
        }
        self.weekly_reports.remove(team);
        let to = Millis::from(day_of(key.at)) * DAY;
        let from = to.saturating_sub(WEEKLY_DAYS * DAY);
        let addresses = self
            .config
            .teams
            .get(team)
            .and_then(|t| t.weekly_report.as_ref())
            .map(|w| w.to.clone())
            .unwrap_or_default();
        for address in addresses {
            let cm = ContactMethod {
                name: "weekly-report".into(),
                kind: ContactKind::Email,
                address,
            };
            let purpose = Purpose::WeeklyReport {
                team: team.to_string(),
                from,
                to,
            };
            self.queue_standalone(cx, "", purpose, &cm);
        }
        self.plan_weekly_report(team, cx.at.max(key.at));
    }

    pub(super) fn check_weekly_reports(&self) -> Result<(), String> {
        for (team, key) in &self.weekly_reports {
            match self.timers.get(key) {
                Some(Timer::WeeklyReport { team: t }) if t == team => {}
                other => return Err(format!("weekly report of {team} names {key:?}: {other:?}")),
            }
        }
        for (key, t) in self.timers.iter() {
            if let Timer::WeeklyReport { team } = t {
                if self.weekly_reports.get(team) != Some(key) {
                    return Err(format!("timer {key:?} of {team} is not its plan's"));
                }
            }
        }
        Ok(())
    }

    /// The words of a weekly report email, read from the roll-ups when it is
    /// sent (`now`: for the RCAs overdue); `None` for other deliveries.
    /// With the console's address (`public`), it links to the same report there.
    pub fn weekly_email(&self, d: &Delivery, now: Millis, public: &str) -> Option<PageText> {
        let Purpose::WeeklyReport { team, from, to } = &d.purpose else {
            return None;
        };
        let link = match public.trim_end_matches('/') {
            "" => String::new(),
            base => format!(
                "{base}/reports?from={}&to={}&team={team}",
                day_label(*from),
                day_label(to.saturating_sub(1))
            ),
        };
        let text = match self.report(*from, *to, team, "", now) {
            Ok(r) => weekly_text(team, &r, &link),
            // The team left the document since: say so rather than send nothing.
            Err((_, why)) => format!("No report for team {team}: {why}.\n"),
        };
        Some(PageText {
            subject: format!(
                "[pagerd] Weekly page review of {team}, {} to {}",
                day_label(*from),
                day_label(to.saturating_sub(1))
            ),
            text,
        })
    }
}

/// The plain-text body: headline figures, then the tables a review goes
/// through (services, the noisiest alerts, who was woken at night).
fn weekly_text(team: &str, r: &Report, link: &str) -> String {
    let mut t = format!(
        "Page review of team {team}, {} to {} (UTC days).\n\n",
        day_label(r.from),
        day_label(r.to.saturating_sub(1))
    );
    t.push_str(&format!(
        "Incidents: {} ({} still open)\nPages: {}, of which off hours: {} ({})\n\
         Escalated to level 2 or more: {}\nSLA breaches: {}\n\
         Time to acknowledge: p50 {}, p90 {}\nTime to resolve: p50 {}, p90 {}\n\
         RCAs not done: {} ({} overdue)\n",
        r.incidents,
        r.open,
        r.pages,
        r.off_hours_pages,
        share(r.off_hours_pages, r.pages),
        r.escalated,
        r.sla_breaches,
        duration(r.mtta_p50_s),
        duration(r.mtta_p90_s),
        duration(r.mttr_p50_s),
        duration(r.mttr_p90_s),
        r.open_rcas,
        r.overdue_rcas,
    ));
    if !r.by_service.is_empty() {
        t.push_str("\nBy service:\n");
        for c in r.by_service.iter().take(ROWS) {
            t.push_str(&format!(
                "  {}: {} incident(s), {} page(s)\n",
                c.name, c.incidents, c.pages
            ));
        }
    }
    if !r.noisiest.is_empty() {
        t.push_str("\nNoisiest alerts:\n");
        for a in r.noisiest.iter().take(ROWS) {
            let c = &a.counts;
            t.push_str(&format!(
                "  {} / {}: {} incident(s), {} auto-resolved, {} resolved unacknowledged, {} snoozed\n",
                a.service, a.alert, c.incidents, c.auto_resolved, c.unacknowledged, c.snoozed
            ));
        }
    }
    if !r.night_wakeups.is_empty() {
        t.push_str("\nWoken at night:\n");
        for c in r.night_wakeups.iter().take(ROWS) {
            t.push_str(&format!("  {}: {} time(s)\n", c.name, c.incidents));
        }
    }
    if !link.is_empty() {
        t.push_str(&format!("\nThe whole report: {link}\n"));
    }
    t
}
