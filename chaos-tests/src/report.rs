//! One line per scenario: faults injected, events accepted and lost, pages expected, missed
//! and duplicated, the worst delay of a page after its deadline, and failover p50/max.

use crate::history::History;
use crate::invariants::{Findings, Violation};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub scenario: String,
    /// Count per fault kind.
    pub faults: BTreeMap<String, usize>,
    pub events_accepted: usize,
    pub lost: usize,
    pub pages_expected: usize,
    pub missed: usize,
    pub duplicates: usize,
    pub worst_delay: Option<Duration>,
    /// Failover time of each fault that deposed a leader.
    pub failovers: Vec<Duration>,
    pub violations: Vec<Violation>,
}

impl ScenarioReport {
    pub fn new(scenario: &str, history: &History, findings: &Findings) -> ScenarioReport {
        let mut faults = BTreeMap::new();
        for f in &history.faults {
            *faults.entry(f.kind.clone()).or_insert(0) += 1;
        }
        ScenarioReport {
            scenario: scenario.into(),
            faults,
            events_accepted: findings.events.accepted,
            lost: findings.events.lost,
            pages_expected: findings.pages.expected,
            missed: findings.pages.missed,
            // Pages beyond the first of their delivery when the scenario could tell
            // (invariant 5), else pages beyond what the on-call document asked for.
            duplicates: findings
                .duplicates
                .as_ref()
                .map_or(findings.pages.duplicates.len(), |d| d.duplicates),
            worst_delay: findings.pages.worst_delay(),
            failovers: history.faults.iter().filter_map(|f| f.failover).collect(),
            violations: findings.violations(),
        }
    }

    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report line, then every violation indented under it.
    pub fn with_violations(&self) -> String {
        let mut out = self.to_string();
        for v in &self.violations {
            out.push_str(&format!("\n  {v}"));
        }
        out
    }

    /// `Ok` when no invariant broke, else an error listing every violation under the line.
    pub fn into_result(self) -> anyhow::Result<ScenarioReport> {
        if self.is_clean() {
            return Ok(self);
        }
        anyhow::bail!("{}", self.with_violations())
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults = if self.faults.is_empty() {
            "none".to_string()
        } else {
            self.faults
                .iter()
                .map(|(k, n)| format!("{k}x{n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (p50, max) = match percentiles(&self.failovers, &[50.0, 100.0]).as_slice() {
            [p50, max] => (ms(Some(*p50)), ms(Some(*max))),
            _ => ("-".to_string(), "-".to_string()),
        };
        write!(
            f,
            "scenario={} faults={faults} accepted={} lost={} pages_expected={} missed={} duplicates={} worst_delay_after_deadline={} failover_p50={p50} failover_max={max}{}",
            self.scenario,
            self.events_accepted,
            self.lost,
            self.pages_expected,
            self.missed,
            self.duplicates,
            ms(self.worst_delay),
            if self.is_clean() {
                String::new()
            } else {
                format!(" VIOLATIONS={}", self.violations.len())
            }
        )
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{}ms", d.as_millis()))
}

/// Nearest-rank percentiles of `values` (empty when there are none).
pub fn percentiles(values: &[Duration], ps: &[f64]) -> Vec<Duration> {
    if values.is_empty() {
        return Vec::new();
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    ps.iter()
        .map(|p| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(
            percentiles(&v, &[50.0, 90.0, 100.0]),
            vec![
                Duration::from_millis(5),
                Duration::from_millis(9),
                Duration::from_millis(10)
            ]
        );
        assert!(percentiles(&[], &[50.0]).is_empty());
    }

    #[test]
    fn one_line_per_scenario() {
        let r = ScenarioReport {
            scenario: "s".into(),
            faults: [("kill-leader".to_string(), 1)].into_iter().collect(),
            events_accepted: 2,
            lost: 0,
            pages_expected: 3,
            missed: 0,
            duplicates: 0,
            worst_delay: Some(Duration::from_millis(812)),
            failovers: vec![Duration::from_millis(900)],
            violations: vec![],
        };
        let line = r.to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("faults=kill-leaderx1"), "{line}");
        assert!(
            line.contains("failover_p50=900ms failover_max=900ms"),
            "{line}"
        );
    }
}
