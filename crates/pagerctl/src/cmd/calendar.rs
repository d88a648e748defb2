//! `pagerctl calendar url --user U | --schedule S [--rotate]`: the secret
//! address of an iCalendar feed of shifts (60 days, overrides included) to
//! subscribe to in Google Calendar or Outlook. `--rotate` makes a new one and
//! the old address stops working.

use clap::{ArgGroup, Args, Subcommand};
use pager_proto::pager::v1::{on_call_client::OnCallClient, CalendarUrlRequest};

use crate::client::Client;
use crate::output::Printer;

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Print the feed's address (keep it secret: anyone with it sees the shifts).
    Url(UrlArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("whose").required(true).args(["user", "schedule"])))]
pub struct UrlArgs {
    /// One user's shifts on every schedule.
    #[arg(long)]
    pub user: Option<String>,
    /// Every shift of one schedule.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Make a new address; the old one stops working.
    #[arg(long)]
    pub rotate: bool,
}

pub async fn run(client: &Client, out: &Printer, cmd: CalendarCommand) -> anyhow::Result<()> {
    let CalendarCommand::Url(a) = cmd;
    let req = CalendarUrlRequest {
        user: a.user.unwrap_or_default(),
        schedule: a.schedule.unwrap_or_default(),
        rotate: a.rotate,
    };
    let r = client
        .call(&req, |ch, req| async move {
            OnCallClient::new(ch).calendar_url(req).await
        })
        .await?;
    out.emit(
        || format!("{}\n", r.url),
        || serde_json::json!({"url": r.url, "rotated": a.rotate, "commit_index": r.commit_index}),
    )
}

#[cfg(test)]
mod tests {
    use crate::cli::testing::{parse, parse_err};
    use crate::cli::Command;

    #[test]
    fn a_user_or_a_schedule_is_required_not_both() {
        match parse(&["calendar", "url", "--user", "alice", "--rotate"]).command {
            Command::Calendar(super::CalendarCommand::Url(a)) => {
                assert_eq!(a.user.as_deref(), Some("alice"));
                assert!(a.rotate);
            }
            other => panic!("{other:?}"),
        }
        use clap::error::ErrorKind::*;
        assert_eq!(parse_err(&["calendar", "url"]), MissingRequiredArgument);
        assert_eq!(
            parse_err(&["calendar", "url", "--user", "a", "--schedule", "s"]),
            ArgumentConflict
        );
    }
}
