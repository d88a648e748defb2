//! `pagerctl simulate --service NAME`: the pages a trigger would send if
//! nobody answered. Nothing is sent.

use clap::Args;
use pager_proto::pager::v1::{on_call_client::OnCallClient, SimulateRequest};

use super::common::Severity;
use crate::client::Client;
use crate::output::Printer;
use crate::when::{self, parse_when, When};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The service (stable name).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// When the trigger arrives: RFC 3339 or from now [default: now].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
    pub at: Option<When>,
    /// The trigger's severity [default: critical].
    #[arg(long, value_enum)]
    pub severity: Option<Severity>,
}

pub async fn run(client: &Client, out: &Printer, args: SimulateArgs) -> anyhow::Result<()> {
    let req = SimulateRequest {
        service: args.service,
        at_ms: args.at.map_or(0, |w| w.resolve(when::now_ms())),
        severity: args
            .severity
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
    };
    let r = client
        .call(&req, |ch, req| async move {
            OnCallClient::new(ch).simulate(req).await
        })
        .await?;
    out.emit(|| human::simulation(&r), || json::simulation(&r))
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::SimulateResponse;

    use crate::output::{kv, text, timestamp, Align, Table};
    use crate::when::format_span;

    /// `simulate`: every page, offset from the trigger.
    pub fn simulation(r: &SimulateResponse) -> String {
        let mut out = kv(&[
            ("service", text(&r.service)),
            ("trigger", timestamp(r.at_ms)),
        ]);
        out.push('\n');
        if r.pages.is_empty() {
            out.push_str("nobody would be paged\n");
            return out;
        }
        let mut table = Table::new(&[
            ("OFFSET", Align::Right),
            ("AT", Align::Left),
            ("LEVEL", Align::Right),
            ("REPEAT", Align::Right),
            ("USER", Align::Left),
            ("METHOD", Align::Left),
            ("CONTACT", Align::Left),
            ("SHADOW", Align::Left),
        ]);
        for p in &r.pages {
            table.row(vec![
                format!("+{}", format_span(p.offset_ms)),
                timestamp(p.at_ms),
                p.level.to_string(),
                p.repeat.to_string(),
                text(&p.user),
                text(&p.method),
                text(&p.contact),
                if p.shadow { "yes" } else { "-" }.to_owned(),
            ]);
        }
        out.push_str(&table.render());
        out
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::{PlannedPage, SimulateResponse};
    use serde_json::{json, Value};

    pub fn planned_page(p: &PlannedPage) -> Value {
        json!({
            "at_ms": p.at_ms,
            "offset_ms": p.offset_ms,
            "user": p.user,
            "method": p.method,
            "contact": p.contact,
            "shadow": p.shadow,
            "level": p.level,
            "repeat": p.repeat,
        })
    }

    pub fn simulation(r: &SimulateResponse) -> Value {
        json!({
            "service": r.service,
            "at_ms": r.at_ms,
            "pages": r.pages.iter().map(planned_page).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use pager_proto::pager::v1::{PlannedPage, SimulateResponse};
    use serde_json::json;

    // 2030-01-07T12:00:00Z.
    const T: u64 = 1_894_017_600_000;

    #[test]
    fn simulate() {
        let Command::Simulate(a) = parse(&["simulate", "--service", "database"]).command else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.service.as_str(), a.at, a.severity),
            ("database", None, None)
        );

        let Command::Simulate(a) = parse(&[
            "simulate",
            "--service",
            "database",
            "--at",
            "+1h",
            "--severity",
            "warning",
        ])
        .command
        else {
            panic!("wrong command");
        };
        assert_eq!(a.at, Some(When::FromNow(3_600_000)));
        assert_eq!(a.severity, Some(Severity::Warning));

        use clap::error::ErrorKind::*;
        assert_eq!(parse_err(&["simulate"]), MissingRequiredArgument);
        assert_eq!(
            parse_err(&["simulate", "--service", "db", "--severity", "sev1"]),
            InvalidValue
        );
    }

    #[test]
    fn simulation_human_and_json() {
        let page = |offset_ms: u64, user: &str, method: &str, level, repeat, shadow| PlannedPage {
            at_ms: T + offset_ms,
            offset_ms,
            user: user.into(),
            method: method.into(),
            contact: method.into(),
            shadow,
            level,
            repeat,
        };
        let r = SimulateResponse {
            service: "database".into(),
            at_ms: T,
            pages: vec![
                page(0, "alice", "sms", 1, 0, false),
                page(0, "dave", "email", 1, 0, true),
                page(60_000, "alice", "voice", 1, 0, false),
                page(300_000, "bob", "sms", 2, 0, false),
                page(600_000, "alice", "sms", 1, 1, false),
            ],
        };
        assert_eq!(
            human::simulation(&r),
            "\
service  database
trigger  2030-01-07T12:00:00Z

OFFSET  AT                    LEVEL  REPEAT  USER   METHOD  CONTACT  SHADOW
   +0s  2030-01-07T12:00:00Z      1       0  alice  sms     sms      -
   +0s  2030-01-07T12:00:00Z      1       0  dave   email   email    yes
   +1m  2030-01-07T12:01:00Z      1       0  alice  voice   voice    -
   +5m  2030-01-07T12:05:00Z      2       0  bob    sms     sms      -
  +10m  2030-01-07T12:10:00Z      1       1  alice  sms     sms      -
"
        );
        let v = json::simulation(&r);
        assert_eq!(
            (v["service"].clone(), v["at_ms"].clone()),
            (json!("database"), json!(T))
        );
        assert_eq!(
            v["pages"][1],
            json!({"at_ms": T, "offset_ms": 0, "user": "dave", "method": "email",
                   "contact": "email", "shadow": true, "level": 1, "repeat": 0})
        );
        let none = SimulateResponse { pages: vec![], ..r };
        assert!(human::simulation(&none).ends_with("\nnobody would be paged\n"));
    }
}
