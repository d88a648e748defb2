//! `pagerctl config get`: print the live on-call document.

use clap::Subcommand;
use pager_proto::pager::v1::{config_client::ConfigClient, GetConfigRequest};

use crate::client::Client;
use crate::output::Printer;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the live document (TOML).
    Get,
}

pub async fn run(client: &Client, out: &Printer, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Get => {
            let r = client
                .call(&GetConfigRequest {}, |ch, req| async move {
                    ConfigClient::new(ch).get(req).await
                })
                .await?;
            out.emit(|| human::config(&r), || json::config(&r))
        }
    }
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::GetConfigResponse;

    /// The document itself (printed raw, so it can be saved and re-applied),
    /// under a TOML comment naming its version.
    pub fn config(r: &GetConfigResponse) -> String {
        format!("# version {}\n{}", r.version, r.document)
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::GetConfigResponse;
    use serde_json::{json, Value};

    pub fn config(r: &GetConfigResponse) -> Value {
        json!({ "version": r.version, "document": r.document })
    }
}
