//! `pagerctl user set-password|invite|clear-password|sign-out|list`: who can sign in to the
//! web console (admin only). The password is read from standard input (its
//! first line, so it can be piped from a password manager and never sits in
//! the shell's history), sent once over the API and hashed by the node.

use anyhow::{bail, Context};
use clap::Subcommand;
use pager_proto::pager::v1::{
    users_client::UsersClient, ClearPasswordRequest, InviteRequest, ListCredentialsRequest,
    SetPasswordRequest, SignOutRequest,
};
use std::io::BufRead;

use crate::client::Client;
use crate::output::{rfc3339, Printer};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Set a user's console password, read from standard input (first line).
    SetPassword {
        /// The user's name in the on-call document.
        user: String,
        #[arg(long, value_parser = ["responder", "admin"], default_value = "responder")]
        role: String,
    },
    /// Remove a user's console password: they can no longer sign in.
    ClearPassword { user: String },
    /// Email a user a link to choose their console password (works once, 72 h).
    Invite {
        user: String,
        #[arg(long, value_parser = ["responder", "admin"], default_value = "responder")]
        role: String,
    },
    /// End every console session of a user (a lost phone); the password stays.
    SignOut { user: String },
    /// List the users who can sign in, with their role.
    List,
}

/// The first line of `input` without its line ending; an empty input is an error.
fn read_password(input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    let mut input = input;
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input (e.g. `pass show pagerd/alice | pagerctl user set-password alice`)");
    }
    Ok(password)
}

pub async fn run(client: &Client, out: &Printer, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::SetPassword { user, role } => {
            let password = read_password(std::io::stdin().lock())?;
            let r = client
                .call(
                    &SetPasswordRequest {
                        user: user.clone(),
                        password,
                        role: role.clone(),
                    },
                    |ch, req| async move { UsersClient::new(ch).set_password(req).await },
                )
                .await?;
            out.emit(
                || format!("password set for {user} ({role})\n"),
                || serde_json::json!({"user": user, "role": role, "commit_index": r.commit_index}),
            )
        }
        UserCommand::ClearPassword { user } => {
            let r = client
                .call(
                    &ClearPasswordRequest { user: user.clone() },
                    |ch, req| async move { UsersClient::new(ch).clear_password(req).await },
                )
                .await?;
            out.emit(
                || format!("password cleared for {user}\n"),
                || serde_json::json!({"user": user, "cleared": true, "commit_index": r.commit_index}),
            )
        }
        UserCommand::Invite { user, role } => {
            let r = client
                .call(
                    &InviteRequest {
                        user: user.clone(),
                        role: role.clone(),
                    },
                    |ch, req| async move { UsersClient::new(ch).invite(req).await },
                )
                .await?;
            out.emit(
                || format!("invitation to {user} ({role}) on its way (delivery {})\n", r.delivery_id),
                || serde_json::json!({"user": user, "role": role, "delivery_id": r.delivery_id, "commit_index": r.commit_index}),
            )
        }
        UserCommand::SignOut { user } => {
            let r = client
                .call(
                    &SignOutRequest { user: user.clone() },
                    |ch, req| async move { UsersClient::new(ch).sign_out(req).await },
                )
                .await?;
            out.emit(
                || format!("every console session of {user} ended\n"),
                || serde_json::json!({"user": user, "signed_out": true, "commit_index": r.commit_index}),
            )
        }
        UserCommand::List => {
            let r = client
                .call(&ListCredentialsRequest {}, |ch, req| async move {
                    UsersClient::new(ch).list_credentials(req).await
                })
                .await?;
            out.emit(
                || {
                    if r.credentials.is_empty() {
                        return "nobody can sign in yet: pagerctl user set-password USER\n"
                            .to_string();
                    }
                    r.credentials
                        .iter()
                        .map(|c| {
                            format!(
                                "{}  {}  set {} by {}\n",
                                c.user,
                                c.role,
                                rfc3339(c.set_at_ms),
                                c.set_by
                            )
                        })
                        .collect()
                },
                || {
                    serde_json::json!({"users": r.credentials.iter().map(|c| serde_json::json!({
                        "user": c.user, "role": c.role, "set_at_ms": c.set_at_ms, "set_by": c.set_by,
                    })).collect::<Vec<_>>()})
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_ending() {
        assert_eq!(
            read_password(&b"s3cret pass\r\nsecond"[..]).unwrap(),
            "s3cret pass"
        );
        assert_eq!(read_password(&b" spaced  \n"[..]).unwrap(), " spaced  ");
        assert!(read_password(&b""[..]).is_err());
        assert!(read_password(&b"\n"[..]).is_err());
    }
}
