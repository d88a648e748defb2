//! `pagerctl oncall`: who is on call, until when, and who takes over, for
//! every schedule, or one schedule, service (each level of its escalation
//! policy) or user.

use clap::{ArgGroup, Args};
use pager_proto::pager::v1::{
    on_call_client::OnCallClient, who_is_on_call_request, WhoIsOnCallRequest,
};

use crate::client::Client;
use crate::output::Printer;
use crate::when::{self, parse_when, When};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("subject").args(["schedule", "service", "user"])))]
pub struct OncallArgs {
    /// One schedule: who, until when, who next.
    #[arg(long, value_name = "NAME")]
    pub schedule: Option<String>,
    /// Each level of a service's escalation policy.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The schedules a user is on call (or shadowing) in.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// When: RFC 3339 or from now (+8h, -1d) [default: now, by the server's clock].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
    pub at: Option<When>,
}

pub async fn run(client: &Client, out: &Printer, args: OncallArgs) -> anyhow::Result<()> {
    use who_is_on_call_request::Subject;
    let subject = match (args.schedule, args.service, args.user) {
        (Some(s), _, _) => Some(Subject::Schedule(s)),
        (_, Some(s), _) => Some(Subject::Service(s)),
        (_, _, Some(u)) => Some(Subject::User(u)),
        _ => None,
    };
    let req = WhoIsOnCallRequest {
        subject,
        at_ms: args.at.map_or(0, |w| w.resolve(when::now_ms())),
    };
    let r = client
        .call(&req, |ch, req| async move {
            OnCallClient::new(ch).who_is_on_call(req).await
        })
        .await?;
    out.emit(|| human::who_is_on_call(&r), || json::who_is_on_call(&r))
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::{LevelOnCall, ScheduleOnCall, UserSchedule, WhoIsOnCallResponse};

    use crate::output::{clean, kv, text, timestamp, Align, Table};

    /// `oncall`: who is on call for the schedules, the service or the user asked.
    pub fn who_is_on_call(r: &WhoIsOnCallResponse) -> String {
        if let Some(svc) = &r.service {
            let mut out = kv(&[
                ("service", text(&svc.service)),
                ("policy", text(&svc.escalation_policy)),
                ("at", timestamp(r.at_ms)),
            ]);
            out.push('\n');
            out.push_str(&levels(&svc.levels));
            return out;
        }
        if let Some(u) = &r.user {
            let mut out = kv(&[("user", text(&u.user)), ("at", timestamp(r.at_ms))]);
            out.push('\n');
            if u.schedules.is_empty() {
                out.push_str("not on call in any schedule\n");
            } else {
                out.push_str(&user_schedules(&u.schedules));
            }
            return out;
        }
        let mut out = kv(&[("at", timestamp(r.at_ms))]);
        out.push('\n');
        if r.schedules.is_empty() {
            out.push_str("no schedules\n");
        } else {
            out.push_str(&schedules(&r.schedules));
        }
        out
    }

    /// `a, b`, or `nobody`.
    fn people(users: &[String]) -> String {
        if users.is_empty() {
            "nobody".to_owned()
        } else {
            users
                .iter()
                .map(|u| clean(u))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// `a, b`, or `-` (for shadows, who are optional).
    fn list(users: &[String]) -> String {
        if users.is_empty() {
            "-".to_owned()
        } else {
            people(users)
        }
    }

    /// Who takes over at `until`; `-` when no handoff is known.
    fn next(until_ms: u64, users: &[String]) -> String {
        if until_ms == 0 {
            "-".to_owned()
        } else {
            people(users)
        }
    }

    fn schedules(ss: &[ScheduleOnCall]) -> String {
        let mut table = Table::new(&[
            ("SCHEDULE", Align::Left),
            ("ON CALL", Align::Left),
            ("SHADOWS", Align::Left),
            ("UNTIL", Align::Left),
            ("NEXT", Align::Left),
            ("TIME ZONE", Align::Left),
        ]);
        for s in ss {
            table.row(vec![
                text(&s.schedule),
                people(&s.users),
                list(&s.shadows),
                timestamp(s.until_ms),
                next(s.until_ms, &s.next_users),
                text(&s.time_zone),
            ]);
        }
        table.render()
    }

    fn levels(ls: &[LevelOnCall]) -> String {
        let mut table = Table::new(&[
            ("LEVEL", Align::Right),
            ("ON CALL", Align::Left),
            ("SHADOWS", Align::Left),
            ("UNTIL", Align::Left),
            ("NEXT", Align::Left),
        ]);
        for l in ls {
            table.row(vec![
                l.level.to_string(),
                people(&l.users),
                list(&l.shadows),
                timestamp(l.until_ms),
                next(l.until_ms, &l.next_users),
            ]);
        }
        table.render()
    }

    fn user_schedules(us: &[UserSchedule]) -> String {
        let mut table = Table::new(&[
            ("SCHEDULE", Align::Left),
            ("AS", Align::Left),
            ("UNTIL", Align::Left),
            ("NEXT", Align::Left),
        ]);
        for u in us {
            table.row(vec![
                text(&u.schedule),
                if u.shadow { "shadow" } else { "on call" }.to_owned(),
                timestamp(u.until_ms),
                next(u.until_ms, &u.next_users),
            ]);
        }
        table.render()
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::{LevelOnCall, ScheduleOnCall, UserSchedule, WhoIsOnCallResponse};
    use serde_json::{json, Value};

    pub fn schedule_on_call(s: &ScheduleOnCall) -> Value {
        json!({
            "schedule": s.schedule,
            "time_zone": s.time_zone,
            "users": s.users,
            "shadows": s.shadows,
            "until_ms": s.until_ms,
            "next_users": s.next_users,
        })
    }

    pub fn level_on_call(l: &LevelOnCall) -> Value {
        json!({
            "level": l.level,
            "users": l.users,
            "shadows": l.shadows,
            "until_ms": l.until_ms,
            "next_users": l.next_users,
        })
    }

    pub fn user_schedule(u: &UserSchedule) -> Value {
        json!({
            "schedule": u.schedule,
            "shadow": u.shadow,
            "until_ms": u.until_ms,
            "next_users": u.next_users,
        })
    }

    pub fn who_is_on_call(r: &WhoIsOnCallResponse) -> Value {
        json!({
            "at_ms": r.at_ms,
            "schedules": r.schedules.iter().map(schedule_on_call).collect::<Vec<_>>(),
            "service": r.service.as_ref().map_or(Value::Null, |s| json!({
                "service": s.service,
                "escalation_policy": s.escalation_policy,
                "levels": s.levels.iter().map(level_on_call).collect::<Vec<_>>(),
            })),
            "user": r.user.as_ref().map_or(Value::Null, |u| json!({
                "user": u.user,
                "schedules": u.schedules.iter().map(user_schedule).collect::<Vec<_>>(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use pager_proto::pager::v1::{
        LevelOnCall, ScheduleOnCall, ServiceOnCall, UserOnCall, UserSchedule, WhoIsOnCallResponse,
    };
    use serde_json::{json, Value};

    #[test]
    fn oncall() {
        let Command::Oncall(a) = parse(&["oncall"]).command else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.schedule, a.service, a.user, a.at),
            (None, None, None, None)
        );

        let Command::Oncall(a) = parse(&[
            "oncall",
            "--schedule",
            "primary",
            "--at",
            "2023-11-14T22:13:20Z",
        ])
        .command
        else {
            panic!("wrong command");
        };
        assert_eq!(a.schedule.as_deref(), Some("primary"));
        assert_eq!(a.at, Some(When::At(T0)));

        let Command::Oncall(a) = parse(&["oncall", "--service", "db", "--at", "+8h"]).command
        else {
            panic!("wrong command");
        };
        assert_eq!(a.service.as_deref(), Some("db"));
        assert_eq!(a.at, Some(When::FromNow(8 * 3_600_000)));

        // A time in the past reads as a value, not as a flag.
        let Command::Oncall(a) = parse(&["oncall", "--user", "alice", "--at", "-1d"]).command
        else {
            panic!("wrong command");
        };
        assert_eq!(a.user.as_deref(), Some("alice"));
        assert_eq!(a.at, Some(When::FromNow(-86_400_000)));

        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["oncall", "--schedule", "a", "--user", "b"]),
            ArgumentConflict
        );
        assert_eq!(parse_err(&["oncall", "--at", "noon"]), ValueValidation);
    }

    // 2030-01-07T12:00:00Z and the handoff a week after that Monday's midnight.
    const T: u64 = 1_894_017_600_000;
    const HANDOFF: u64 = 1_894_579_200_000;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn primary() -> ScheduleOnCall {
        ScheduleOnCall {
            schedule: "primary".into(),
            time_zone: "UTC".into(),
            users: names(&["alice"]),
            shadows: names(&["dave"]),
            until_ms: HANDOFF,
            next_users: names(&["bob"]),
        }
    }

    #[test]
    fn who_is_on_call_schedules() {
        let quiet = ScheduleOnCall {
            schedule: "nights".into(),
            time_zone: "Europe/Berlin".into(),
            users: vec![],
            shadows: vec![],
            until_ms: 0,
            next_users: vec![],
        };
        let r = WhoIsOnCallResponse {
            at_ms: T,
            schedules: vec![primary(), quiet],
            service: None,
            user: None,
        };
        assert_eq!(
            human::who_is_on_call(&r),
            "\
at  2030-01-07T12:00:00Z

SCHEDULE  ON CALL  SHADOWS  UNTIL                 NEXT  TIME ZONE
primary   alice    dave     2030-01-14T00:00:00Z  bob   UTC
nights    nobody   -        -                     -     Europe/Berlin
"
        );
        assert_eq!(
            json::who_is_on_call(&r),
            json!({
                "at_ms": T,
                "schedules": [
                    {"schedule": "primary", "time_zone": "UTC", "users": ["alice"],
                     "shadows": ["dave"], "until_ms": HANDOFF, "next_users": ["bob"]},
                    {"schedule": "nights", "time_zone": "Europe/Berlin", "users": [],
                     "shadows": [], "until_ms": 0, "next_users": []},
                ],
                "service": null,
                "user": null,
            })
        );
        let none = WhoIsOnCallResponse {
            at_ms: T,
            ..Default::default()
        };
        assert!(human::who_is_on_call(&none).ends_with("\nno schedules\n"));
    }

    #[test]
    fn who_is_on_call_for_a_service() {
        let r = WhoIsOnCallResponse {
            at_ms: T,
            schedules: vec![],
            service: Some(ServiceOnCall {
                service: "database".into(),
                escalation_policy: "db".into(),
                levels: vec![
                    LevelOnCall {
                        level: 1,
                        users: names(&["alice"]),
                        shadows: names(&["dave"]),
                        until_ms: HANDOFF,
                        next_users: names(&["bob"]),
                    },
                    LevelOnCall {
                        level: 2,
                        users: names(&["bob", "carol"]),
                        shadows: vec![],
                        until_ms: 0,
                        next_users: vec![],
                    },
                ],
            }),
            user: None,
        };
        assert_eq!(
            human::who_is_on_call(&r),
            "\
service  database
policy   db
at       2030-01-07T12:00:00Z

LEVEL  ON CALL     SHADOWS  UNTIL                 NEXT
    1  alice       dave     2030-01-14T00:00:00Z  bob
    2  bob, carol  -        -                     -
"
        );
        let v = json::who_is_on_call(&r);
        assert_eq!(v["service"]["escalation_policy"], "db");
        assert_eq!(
            v["service"]["levels"][1],
            json!({"level": 2, "users": ["bob", "carol"], "shadows": [], "until_ms": 0, "next_users": []})
        );
        assert_eq!(v["schedules"], json!([]));
        assert_eq!(v["user"], Value::Null);
    }

    #[test]
    fn who_is_on_call_for_a_user() {
        let mut r = WhoIsOnCallResponse {
            at_ms: T,
            schedules: vec![],
            service: None,
            user: Some(UserOnCall {
                user: "dave".into(),
                schedules: vec![UserSchedule {
                    schedule: "primary".into(),
                    shadow: true,
                    until_ms: HANDOFF,
                    next_users: names(&["bob"]),
                }],
            }),
        };
        assert_eq!(
            human::who_is_on_call(&r),
            "\
user  dave
at    2030-01-07T12:00:00Z

SCHEDULE  AS      UNTIL                 NEXT
primary   shadow  2030-01-14T00:00:00Z  bob
"
        );
        assert_eq!(
            json::who_is_on_call(&r)["user"],
            json!({"user": "dave", "schedules": [
                {"schedule": "primary", "shadow": true, "until_ms": HANDOFF, "next_users": ["bob"]}
            ]})
        );
        if let Some(u) = r.user.as_mut() {
            u.schedules.clear();
        }
        assert!(human::who_is_on_call(&r).ends_with("\nnot on call in any schedule\n"));
    }
}
