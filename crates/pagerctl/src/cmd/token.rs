//! `pagerctl token create|revoke|list`: API tokens (admin only). The secret
//! of a new token is printed once.

use clap::Subcommand;
use pager_proto::pager::v1::{
    tokens_client::TokensClient, CreateTokenRequest, ListTokensRequest, RevokeTokenRequest,
};

use crate::client::Client;
use crate::output::Printer;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// Unique name, e.g. alice-laptop or grafana.
        name: String,
        #[arg(long, value_parser = ["responder", "admin"], default_value = "responder")]
        role: String,
    },
    /// Revoke a token by name.
    Revoke { name: String },
    /// List tokens (names and roles, never secrets).
    List,
}

pub async fn run(client: &Client, out: &Printer, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { name, role } => {
            let r = client
                .call(&CreateTokenRequest { name, role }, |ch, req| async move {
                    TokensClient::new(ch).create(req).await
                })
                .await?;
            out.emit(
                || {
                    format!(
                        "token   {}\nrole    {}\nsecret  {}\n(the secret is shown once: store it now)\n",
                        r.name, r.role, r.secret
                    )
                },
                || serde_json::json!({"name": r.name, "role": r.role, "secret": r.secret, "commit_index": r.commit_index}),
            )
        }
        TokenCommand::Revoke { name } => {
            let r = client
                .call(
                    &RevokeTokenRequest { name: name.clone() },
                    |ch, req| async move { TokensClient::new(ch).revoke(req).await },
                )
                .await?;
            out.emit(
                || format!("revoked {name}\n"),
                || serde_json::json!({"revoked": name, "commit_index": r.commit_index}),
            )
        }
        TokenCommand::List => {
            let r = client
                .call(&ListTokensRequest {}, |ch, req| async move {
                    TokensClient::new(ch).list(req).await
                })
                .await?;
            out.emit(
                || {
                    if r.tokens.is_empty() {
                        return "no tokens\n".to_string();
                    }
                    r.tokens
                        .iter()
                        .map(|t| format!("{}  {}  created by {}\n", t.name, t.role, t.created_by))
                        .collect()
                },
                || {
                    serde_json::json!({"tokens": r.tokens.iter().map(|t| serde_json::json!({
                        "name": t.name, "role": t.role, "created_at_ms": t.created_at_ms, "created_by": t.created_by,
                    })).collect::<Vec<_>>()})
                },
            )
        }
    }
}
