//! [`Schedule::validate`]: every problem in a schedule, each at the path of
//! the field at fault.

use super::civil::format_instant;
use super::{Day, Schedule};
use crate::oncall::{Problem, MAX_NAME_LEN};
use std::collections::BTreeSet;

/// Bounds that keep one query within its time budget.
pub const MAX_LAYERS: usize = 32;
/// Most users in one layer.
pub const MAX_USERS_PER_LAYER: usize = 256;
/// Most restrictions on one layer.
pub const MAX_RESTRICTIONS_PER_LAYER: usize = 32;
/// Most overrides on one schedule.
pub const MAX_OVERRIDES: usize = 1024;
/// Years a layer's wall-clock times may name.
const YEARS: std::ops::RangeInclusive<i16> = 1970..=9000;

impl Schedule {
    /// Every problem in this schedule, which the document names at `path`
    /// (`schedules.triage`); `users` says whether a user name exists. Empty
    /// means the schedule may be applied.
    pub fn validate(&self, path: &str, users: &dyn Fn(&str) -> bool) -> Vec<Problem> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let user = |problems: &mut Vec<(String, String)>, path: String, name: &str| {
            if !users(name) {
                problems.push((path, format!("unknown user {name:?}")));
            }
        };

        let zone = &self.time_zone;
        if zone.time_zone().is_none() {
            problems.push((
                format!("{path}.time_zone"),
                format!(
                    "unknown time zone {:?}: use an IANA name such as \"America/New_York\" or \"UTC\"",
                    zone.name()
                ),
            ));
        }
        if self.layers.is_empty() {
            problems.push((
                format!("{path}.layers"),
                "a schedule needs at least one layer".into(),
            ));
        }
        if self.layers.len() > MAX_LAYERS {
            problems.push((
                format!("{path}.layers"),
                format!("at most {MAX_LAYERS} layers"),
            ));
        }
        if self.overrides.len() > MAX_OVERRIDES {
            problems.push((
                format!("{path}.overrides"),
                format!("at most {MAX_OVERRIDES} overrides; remove past ones"),
            ));
        }

        let mut names = BTreeSet::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let p = format!("{path}.layers[{i}]");
            if layer.name.is_empty() || layer.name.len() > MAX_NAME_LEN {
                problems.push((
                    format!("{p}.name"),
                    format!("a layer needs a name of 1 to {MAX_NAME_LEN} characters"),
                ));
            } else if !names.insert(layer.name.as_str()) {
                problems.push((
                    format!("{p}.name"),
                    format!("duplicate layer name {:?}", layer.name),
                ));
            }
            if !YEARS.contains(&layer.start.year()) {
                problems.push((
                    format!("{p}.start"),
                    format!("the year must be from {} to {}", YEARS.start(), YEARS.end()),
                ));
            }
            if let Some(end) = layer.end {
                if end <= layer.start {
                    problems.push((format!("{p}.end"), "must be after start".into()));
                } else if !YEARS.contains(&end.year()) {
                    problems.push((
                        format!("{p}.end"),
                        format!("the year must be from {} to {}", YEARS.start(), YEARS.end()),
                    ));
                }
            }
            if layer.rotation.step().is_none() {
                problems.push((
                    format!("{p}.rotation"),
                    format!(
                        "days must be 1 to {}, a custom span {} to {}",
                        super::Rotation::MAX_DAYS,
                        super::Rotation::MIN_CUSTOM,
                        super::Rotation::MAX_CUSTOM
                    ),
                ));
            }
            if layer.handoff.is_some() && !layer.rotation.is_civil() {
                problems.push((
                    format!("{p}.handoff"),
                    "handoff applies to daily, weekly and { days = N } rotations; \
                     hourly and custom turns are counted from start"
                        .into(),
                ));
            }
            if layer.users.is_empty() {
                problems.push((
                    format!("{p}.users"),
                    "a layer needs at least one user".into(),
                ));
            }
            if layer.users.len() > MAX_USERS_PER_LAYER {
                problems.push((
                    format!("{p}.users"),
                    format!("at most {MAX_USERS_PER_LAYER} users"),
                ));
            }
            for (j, u) in layer.users.iter().enumerate() {
                user(&mut problems, format!("{p}.users[{j}]"), u);
            }
            let mut shadows = BTreeSet::new();
            for (j, s) in layer.shadows.iter().enumerate() {
                user(&mut problems, format!("{p}.shadows[{j}]"), s);
                if !shadows.insert(s.as_str()) {
                    problems.push((
                        format!("{p}.shadows[{j}]"),
                        format!("duplicate shadow {s:?}"),
                    ));
                }
            }
            if layer.restrictions.len() > MAX_RESTRICTIONS_PER_LAYER {
                problems.push((
                    format!("{p}.restrictions"),
                    format!("at most {MAX_RESTRICTIONS_PER_LAYER} restrictions"),
                ));
            }
            for (k, r) in layer.restrictions.iter().enumerate() {
                let mut days = BTreeSet::<Day>::new();
                for (m, d) in r.days.iter().enumerate() {
                    if !days.insert(*d) {
                        problems.push((
                            format!("{p}.restrictions[{k}].days[{m}]"),
                            format!("duplicate day {:?}", format!("{d:?}").to_lowercase()),
                        ));
                    }
                }
            }
        }

        for (i, o) in self.overrides.iter().enumerate() {
            let p = format!("{path}.overrides[{i}]");
            user(&mut problems, format!("{p}.user"), &o.user);
            if let Some(r) = &o.replaces {
                user(&mut problems, format!("{p}.replaces"), r);
                if *r == o.user {
                    problems.push((
                        format!("{p}.replaces"),
                        "an override cannot replace its own user".into(),
                    ));
                }
            }
            if o.end <= o.start {
                problems.push((format!("{p}.end"), "must be after start".into()));
            }
            for (field, at) in [("start", o.start), ("end", o.end)] {
                if format_instant(at).is_none() {
                    problems.push((
                        format!("{p}.{field}"),
                        "must be before the year 10000".into(),
                    ));
                }
            }
        }

        let mut out: Vec<Problem> = problems
            .into_iter()
            .map(|(path, message)| Problem { path, message })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        out.dedup();
        out
    }
}
