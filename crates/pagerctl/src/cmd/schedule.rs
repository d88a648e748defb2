//! `pagerctl schedule show|override`: the shifts of a schedule in a time
//! range, and putting someone on call for a while (an override, added as a
//! new config version).

use clap::{Args, Subcommand};
use pager_proto::pager::v1::{
    on_call_client::OnCallClient, CreateOverrideRequest, ListShiftsRequest,
};

use crate::client::Client;
use crate::output::{rfc3339, Printer};
use crate::when::{self, parse_when, When};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// The shifts of a schedule in a time range (at most 90 days).
    Show(ScheduleShowArgs),
    /// Put someone on call for a while (a swap, travel cover): adds an
    /// override as a new config version.
    Override(OverrideArgs),
}

#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// The schedule (stable name).
    pub schedule: String,
    /// Who is on call instead.
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// Only stand in for this user when they are on call.
    #[arg(long, value_name = "USER")]
    pub replaces: Option<String>,
    /// Start: RFC 3339 or from now [default: now].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
    pub from: Option<When>,
    /// End, exclusive: RFC 3339 or from now (+8h).
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
    pub until: When,
}

#[derive(Debug, Args)]
pub struct ScheduleShowArgs {
    /// The schedule (stable name).
    pub schedule: String,
    /// Start: RFC 3339 or from now [default: now].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
    pub from: Option<When>,
    /// End, exclusive: RFC 3339 or from now [default: 7 days after --from].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
    pub to: Option<When>,
}

pub async fn run(client: &Client, out: &Printer, cmd: ScheduleCommand) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::Override(args) => {
            let now = when::now_ms();
            let req = CreateOverrideRequest {
                schedule: args.schedule.clone(),
                user: args.user.clone(),
                replaces: args.replaces.unwrap_or_default(),
                start_ms: args.from.map_or(now, |w| w.resolve(now)),
                end_ms: args.until.resolve(now),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    OnCallClient::new(ch).create_override(req).await
                })
                .await?;
            out.emit(
                || {
                    format!(
                        "{} is on call on {} until {} (config version {})\n",
                        args.user,
                        args.schedule,
                        rfc3339(req.end_ms),
                        r.config_version
                    )
                },
                || serde_json::json!({"config_version": r.config_version, "commit_index": r.commit_index}),
            )
        }
        ScheduleCommand::Show(args) => {
            let now = when::now_ms();
            let req = ListShiftsRequest {
                schedule: args.schedule,
                from_ms: args.from.map_or(0, |w| w.resolve(now)),
                to_ms: args.to.map_or(0, |w| w.resolve(now)),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    OnCallClient::new(ch).list_shifts(req).await
                })
                .await?;
            out.emit(|| human::shifts(&r), || json::shifts(&r))
        }
    }
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::ListShiftsResponse;

    use crate::output::{clean, kv, text, timestamp, Align, Table};
    use crate::when::format_span;

    /// `schedule show`: the shifts, one row each.
    pub fn shifts(r: &ListShiftsResponse) -> String {
        let mut out = kv(&[
            (
                "schedule",
                format!("{} ({})", text(&r.schedule), text(&r.time_zone)),
            ),
            ("from", timestamp(r.from_ms)),
            ("to", timestamp(r.to_ms)),
        ]);
        out.push('\n');
        if r.shifts.is_empty() {
            out.push_str("nobody on call in this range\n");
            return out;
        }
        let mut table = Table::new(&[
            ("START", Align::Left),
            ("END", Align::Left),
            ("LENGTH", Align::Right),
            ("USER", Align::Left),
            ("LAYER", Align::Left),
        ]);
        for s in &r.shifts {
            table.row(vec![
                timestamp(s.start_ms),
                timestamp(s.end_ms),
                format_span(s.end_ms.saturating_sub(s.start_ms)),
                text(&s.user),
                if s.layer.is_empty() {
                    "(override)".to_owned()
                } else {
                    clean(&s.layer)
                },
            ]);
        }
        out.push_str(&table.render());
        out
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::{ListShiftsResponse, Shift};
    use serde_json::{json, Value};

    pub fn shift(s: &Shift) -> Value {
        json!({
            "user": s.user,
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "layer": s.layer,
        })
    }

    pub fn shifts(r: &ListShiftsResponse) -> Value {
        json!({
            "schedule": r.schedule,
            "time_zone": r.time_zone,
            "from_ms": r.from_ms,
            "to_ms": r.to_ms,
            "shifts": r.shifts.iter().map(shift).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use pager_proto::pager::v1::{ListShiftsResponse, Shift};
    use serde_json::json;

    #[test]
    fn schedule_show() {
        let cli = parse(&[
            "schedule",
            "show",
            "primary",
            "--from",
            "2023-11-14T22:13:20Z",
            "--to",
            "+14d",
        ]);
        let Command::Schedule(ScheduleCommand::Show(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.schedule, "primary");
        assert_eq!(a.from, Some(When::At(T0)));
        assert_eq!(a.to, Some(When::FromNow(14 * 86_400_000)));

        let Command::Schedule(ScheduleCommand::Show(a)) =
            parse(&["schedule", "show", "primary"]).command
        else {
            panic!("wrong command");
        };
        assert_eq!((a.from, a.to), (None, None));

        use clap::error::ErrorKind::*;
        assert_eq!(parse_err(&["schedule", "show"]), MissingRequiredArgument);
        assert_eq!(
            parse_err(&["schedule", "show", "primary", "--to", "soon"]),
            ValueValidation
        );
    }

    // 2030-01-07T12:00:00Z and the handoff a week after that Monday's midnight.
    const T: u64 = 1_894_017_600_000;
    const HANDOFF: u64 = 1_894_579_200_000;

    #[test]
    fn shifts_human_and_json() {
        let shift = |user: &str, start_ms, end_ms, layer: &str| Shift {
            user: user.into(),
            start_ms,
            end_ms,
            layer: layer.into(),
        };
        let r = ListShiftsResponse {
            schedule: "primary".into(),
            time_zone: "UTC".into(),
            from_ms: T,
            to_ms: T + 14 * 86_400_000,
            shifts: vec![
                shift("alice", T, HANDOFF, "weekly"),
                shift("erin", HANDOFF, HANDOFF + 5_400_000, ""),
                shift("bob", HANDOFF + 5_400_000, T + 14 * 86_400_000, "weekly"),
            ],
        };
        assert_eq!(
            human::shifts(&r),
            "\
schedule  primary (UTC)
from      2030-01-07T12:00:00Z
to        2030-01-21T12:00:00Z

START                 END                     LENGTH  USER   LAYER
2030-01-07T12:00:00Z  2030-01-14T00:00:00Z     6d12h  alice  weekly
2030-01-14T00:00:00Z  2030-01-14T01:30:00Z     1h30m  erin   (override)
2030-01-14T01:30:00Z  2030-01-21T12:00:00Z  7d10h30m  bob    weekly
"
        );
        assert_eq!(
            json::shifts(&r),
            json!({
                "schedule": "primary",
                "time_zone": "UTC",
                "from_ms": T,
                "to_ms": T + 14 * 86_400_000,
                "shifts": [
                    {"user": "alice", "start_ms": T, "end_ms": HANDOFF, "layer": "weekly"},
                    {"user": "erin", "start_ms": HANDOFF, "end_ms": HANDOFF + 5_400_000, "layer": ""},
                    {"user": "bob", "start_ms": HANDOFF + 5_400_000, "end_ms": T + 14 * 86_400_000, "layer": "weekly"},
                ],
            })
        );
        let empty = ListShiftsResponse {
            shifts: vec![],
            ..r
        };
        assert!(human::shifts(&empty).ends_with("\nnobody on call in this range\n"));
    }
}
