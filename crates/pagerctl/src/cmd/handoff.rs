//! `pagerctl handoff note SCHEDULE TEXT`: a note for a schedule's next
//! on-call, sent with the handoff summary they get when the shift changes.

use clap::Subcommand;
use pager_proto::pager::v1::{on_call_client::OnCallClient, AddHandoffNoteRequest};

use crate::client::Client;
use crate::cmd::incident::ActorArgs;
use crate::output::Printer;

#[derive(Debug, Subcommand)]
pub enum HandoffCommand {
    /// Leave a note for the next on-call of a schedule.
    Note {
        schedule: String,
        /// What they should know (quote it).
        text: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

pub async fn run(client: &Client, out: &Printer, cmd: HandoffCommand) -> anyhow::Result<()> {
    let HandoffCommand::Note {
        schedule,
        text,
        actor,
    } = cmd;
    let req = AddHandoffNoteRequest {
        schedule: schedule.clone(),
        text,
        by: actor.resolve(),
    };
    let r = client
        .call(&req, |ch, req| async move {
            OnCallClient::new(ch).add_handoff_note(req).await
        })
        .await?;
    out.emit(
        || format!("note left for the next on-call of {schedule}\n"),
        || serde_json::json!({"schedule": schedule, "commit_index": r.commit_index}),
    )
}
