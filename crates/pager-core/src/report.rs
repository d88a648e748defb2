//! Page review reports (the daily review of seed 000, the weekly production
//! review of seed 004): what paged, who it woke, how fast it was answered.
//!
//! Figures must outlive the 90-day retention, so each incident is rolled up
//! when it resolves into the day (UTC) it opened, per service: counters, the
//! exact time to acknowledge and to resolve in seconds (8 bytes an incident,
//! so percentiles stay exact), the noisiest alerts and the night wake-ups per
//! person. A report adds the roll-ups of its days to the incidents of those
//! days still open, so it costs what the days hold, not what the state holds.

use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A day, in milliseconds.
pub const DAY: Millis = 86_400_000;
/// Alerts (distinct summaries) counted per service and day; the rest are
/// counted under [`OTHER_ALERTS`].
pub const ALERTS_PER_DAY: usize = 200;
/// The alert key beyond [`ALERTS_PER_DAY`].
pub const OTHER_ALERTS: &str = "(other alerts)";
/// Longest report range.
pub const MAX_REPORT_DAYS: u64 = 400;
/// Longest alert key kept (a summary is cut on a character boundary).
const ALERT_KEY_BYTES: usize = 120;

/// `YYYY-MM-DD` of the UTC day `ms` is in (how reports name their days).
pub fn day_label(ms: Millis) -> String {
    crate::time::rfc3339(ms).chars().take(10).collect()
}

/// A report's time to acknowledge or resolve, in seconds, as people read it
/// (`45s`, `2m 0s`, `1h 5m`); `—` when there is none.
pub fn duration(s: Option<u32>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        Some(s) => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// `part` of `all` as a whole percentage; `—` of nothing.
pub fn share(part: u32, all: u32) -> String {
    match all {
        0 => "—".into(),
        _ => format!("{:.0}%", 100.0 * f64::from(part) / f64::from(all)),
    }
}

/// The day an instant falls in (days since the Unix epoch, UTC).
pub fn day_of(at: Millis) -> u32 {
    u32::try_from(at / DAY).unwrap_or(u32::MAX)
}

/// How one alert (a summary on a service) behaved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCount {
    /// Incidents it opened.
    pub incidents: u32,
    /// Resolved by its source or by the service's auto-resolve, not a person.
    pub auto_resolved: u32,
    /// Resolved without anyone acknowledging it.
    pub unacknowledged: u32,
    /// Snoozed at least once (seed 004: a snoozed alert is misconfigured).
    pub snoozed: u32,
}

impl AlertCount {
    fn add(&mut self, o: &AlertCount) {
        self.incidents += o.incidents;
        self.auto_resolved += o.auto_resolved;
        self.unacknowledged += o.unacknowledged;
        self.snoozed += o.snoozed;
    }
}

/// Everything one service's incidents of one day (by opening) add up to,
/// as each resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRollup {
    /// Incidents (resolved ones; open ones are counted from the state).
    pub incidents: u32,
    /// Pages to people (not shadows, not test pages).
    pub pages: u32,
    /// Of those, outside the service's support hours (or, without them,
    /// outside 09:00-17:00 Monday to Friday in the paged person's zone).
    pub off_hours_pages: u32,
    /// Incidents that reached escalation level 2 or more.
    pub escalated: u32,
    /// Incidents acknowledged after their tier's SLA.
    pub sla_breaches: u32,
    /// Incidents acknowledged.
    pub acknowledged: u32,
    /// Seconds from opening to acknowledgement, one per acknowledged incident.
    pub tta_s: Vec<u32>,
    /// Seconds from opening to resolution, one per resolved incident.
    pub ttr_s: Vec<u32>,
    /// By alert (summary).
    pub alerts: BTreeMap<String, AlertCount>,
    /// High-urgency SMS or calls between 22:00 and 07:00 in the person's zone.
    pub night_wakeups: BTreeMap<String, u32>,
}

/// What one resolved incident adds to its day.
#[derive(Debug, Clone, Default)]
pub struct Closed {
    pub(crate) summary: String,
    pub(crate) pages: u32,
    pub(crate) off_hours_pages: u32,
    pub(crate) escalated: bool,
    pub(crate) sla_breached: bool,
    pub(crate) tta_s: Option<u32>,
    pub(crate) ttr_s: Option<u32>,
    pub(crate) auto_resolved: bool,
    pub(crate) snoozed: bool,
    pub(crate) night_wakeups: Vec<String>,
}

impl DayRollup {
    pub(crate) fn add(&mut self, c: &Closed) {
        self.incidents += 1;
        self.pages += c.pages;
        self.off_hours_pages += c.off_hours_pages;
        self.escalated += u32::from(c.escalated);
        self.sla_breaches += u32::from(c.sla_breached);
        if let Some(t) = c.tta_s {
            self.acknowledged += 1;
            self.tta_s.push(t);
        }
        if let Some(t) = c.ttr_s {
            self.ttr_s.push(t);
        }
        let key = alert_key(&c.summary);
        let key = if self.alerts.contains_key(&key) || self.alerts.len() < ALERTS_PER_DAY {
            key
        } else {
            OTHER_ALERTS.to_string()
        };
        let a = self.alerts.entry(key).or_default();
        a.add(&AlertCount {
            incidents: 1,
            auto_resolved: u32::from(c.auto_resolved),
            unacknowledged: u32::from(c.tta_s.is_none()),
            snoozed: u32::from(c.snoozed),
        });
        for u in &c.night_wakeups {
            *self.night_wakeups.entry(u.clone()).or_default() += 1;
        }
    }

    fn merge(&mut self, o: &DayRollup) {
        self.incidents += o.incidents;
        self.pages += o.pages;
        self.off_hours_pages += o.off_hours_pages;
        self.escalated += o.escalated;
        self.sla_breaches += o.sla_breaches;
        self.acknowledged += o.acknowledged;
        self.tta_s.extend_from_slice(&o.tta_s);
        self.ttr_s.extend_from_slice(&o.ttr_s);
        for (k, a) in &o.alerts {
            self.alerts.entry(k.clone()).or_default().add(a);
        }
        for (u, n) in &o.night_wakeups {
            *self.night_wakeups.entry(u.clone()).or_default() += n;
        }
    }
}

/// An alert's key: its summary, cut to 120 bytes on a character boundary.
pub fn alert_key(summary: &str) -> String {
    let s = summary.trim();
    if s.len() <= ALERT_KEY_BYTES {
        return s.to_string();
    }
    let mut end = ALERT_KEY_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The nearest-rank percentile `p` (0-100) of `values`, which it sorts;
/// `None` when empty.
pub fn percentile(values: &mut [u32], p: u32) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    let rank = ((u64::from(p) * values.len() as u64).div_ceil(100)).max(1) as usize;
    let (_, v, _) = values.select_nth_unstable(rank - 1);
    Some(*v)
}

/// One row of a "by" table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The team, service, alert or user.
    pub name: String,
    /// Incidents (or, for people, wake-ups).
    pub incidents: u32,
    /// Pages sent.
    pub pages: u32,
}

/// One of the noisiest alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    /// The service it fires on.
    pub service: String,
    /// Its summary.
    pub alert: String,
    /// How it behaved.
    pub counts: AlertCount,
}

/// A page review report over `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Whole days (UTC): the first instant.
    pub from: Millis,
    /// The end (exclusive).
    pub to: Millis,
    /// Incidents opened in the range.
    pub incidents: u32,
    /// Of which still open.
    pub open: u32,
    /// Pages to people.
    pub pages: u32,
    /// Pages outside support or working hours.
    pub off_hours_pages: u32,
    /// Incidents that reached level 2 or more.
    pub escalated: u32,
    /// SLA breaches.
    pub sla_breaches: u32,
    /// Time to acknowledge, seconds.
    pub mtta_p50_s: Option<u32>,
    /// Time to acknowledge, seconds.
    pub mtta_p90_s: Option<u32>,
    /// Time to resolve, seconds.
    pub mttr_p50_s: Option<u32>,
    /// Time to resolve, seconds.
    pub mttr_p90_s: Option<u32>,
    /// By team (services without one under "(no team)"), most incidents first.
    pub by_team: Vec<Count>,
    /// By service, most incidents first.
    pub by_service: Vec<Count>,
    /// The alerts that opened the most incidents (at most 10).
    pub noisiest: Vec<AlertRow>,
    /// People woken at night, most first.
    pub night_wakeups: Vec<Count>,
    /// RCAs not done now (of the report's team or service).
    pub open_rcas: u32,
    /// Of which overdue.
    pub overdue_rcas: u32,
}

/// Alerts listed in a report.
pub const NOISIEST: usize = 10;

/// Builds a report from roll-ups (per service) and the figures of open
/// incidents, rolled up the same way but without a time to resolve.
pub(crate) struct Builder {
    pub(crate) by_service: BTreeMap<String, DayRollup>,
    pub(crate) open: u32,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            by_service: BTreeMap::new(),
            open: 0,
        }
    }

    pub(crate) fn add_rollup(&mut self, service: &str, r: &DayRollup) {
        self.by_service
            .entry(service.to_string())
            .or_default()
            .merge(r);
    }

    pub(crate) fn finish(
        self,
        from: Millis,
        to: Millis,
        team_of: impl Fn(&str) -> String,
    ) -> Report {
        let mut all = DayRollup::default();
        let mut teams: BTreeMap<String, Count> = BTreeMap::new();
        let mut services = Vec::new();
        let mut alerts: Vec<AlertRow> = Vec::new();
        for (service, r) in &self.by_service {
            all.merge(r);
            let team = team_of(service);
            let t = teams.entry(team.clone()).or_insert_with(|| Count {
                name: team,
                ..Count::default()
            });
            t.incidents += r.incidents;
            t.pages += r.pages;
            services.push(Count {
                name: service.clone(),
                incidents: r.incidents,
                pages: r.pages,
            });
            alerts.extend(r.alerts.iter().map(|(k, a)| AlertRow {
                service: service.clone(),
                alert: k.clone(),
                counts: *a,
            }));
        }
        let most = |v: &mut Vec<Count>| {
            v.sort_by(|a, b| (b.incidents, b.pages, &a.name).cmp(&(a.incidents, a.pages, &b.name)))
        };
        let mut by_team: Vec<Count> = teams.into_values().collect();
        most(&mut by_team);
        most(&mut services);
        alerts.sort_by(|a, b| {
            (b.counts.incidents, &a.service, &a.alert).cmp(&(
                a.counts.incidents,
                &b.service,
                &b.alert,
            ))
        });
        alerts.truncate(NOISIEST);
        let mut night: Vec<Count> = all
            .night_wakeups
            .iter()
            .map(|(u, n)| Count {
                name: u.clone(),
                incidents: *n,
                pages: *n,
            })
            .collect();
        most(&mut night);
        Report {
            from,
            to,
            incidents: all.incidents,
            open: self.open,
            pages: all.pages,
            off_hours_pages: all.off_hours_pages,
            escalated: all.escalated,
            sla_breaches: all.sla_breaches,
            mtta_p50_s: percentile(&mut all.tta_s, 50),
            mtta_p90_s: percentile(&mut all.tta_s, 90),
            mttr_p50_s: percentile(&mut all.ttr_s, 50),
            mttr_p90_s: percentile(&mut all.ttr_s, 90),
            by_team,
            by_service: services,
            noisiest: alerts,
            night_wakeups: night,
            open_rcas: 0,
            overdue_rcas: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_match_hand_computed_ones() {
        let mut v = vec![30, 10, 50, 20, 40];
        assert_eq!(percentile(&mut v, 50), Some(30));
        assert_eq!(percentile(&mut v, 90), Some(50));
        let mut ten: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&mut ten, 50), Some(5));
        assert_eq!(percentile(&mut ten, 90), Some(9));
        assert_eq!(percentile(&mut [7], 90), Some(7));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn alerts_beyond_the_daily_cap_are_counted_together() {
        let mut r = DayRollup::default();
        for i in 0..ALERTS_PER_DAY + 5 {
            r.add(&Closed {
                summary: format!("disk full on host{i}"),
                ..Closed::default()
            });
        }
        assert_eq!(r.alerts.len(), ALERTS_PER_DAY + 1);
        assert_eq!(r.alerts[OTHER_ALERTS].incidents, 5);
        assert_eq!(r.incidents as usize, ALERTS_PER_DAY + 5);
    }

    #[test]
    fn alert_keys_are_cut_on_a_character_boundary() {
        let k = alert_key(&"é".repeat(100));
        assert!(k.len() <= 120 && k.chars().all(|c| c == 'é'));
    }
}
