//! Console sign-in credentials: `Users` (set and clear a password, list who
//! can sign in). The password is hashed here, on the node that received it,
//! and only the hash is proposed.

use super::tokens::role_from_str;
use super::Api;
use crate::edge::password;
use crate::error::NodeError;
use pager_core::{Command, TokenRole};
use pager_proto::pager::v1 as pb;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl pb::users_server::Users for Api {
    async fn set_password(
        &self,
        req: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Admin)?;
        let pb::SetPasswordRequest {
            user,
            password,
            role,
        } = req.into_inner();
        let role = if role.is_empty() {
            TokenRole::Responder
        } else {
            role_from_str(&role)?
        };
        password::check(&password).map_err(|why| NodeError::invalid("password", why))?;
        // Whether the user is in the document is apply's to say (NOT_FOUND).
        let phc = tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| Status::internal(format!("hashing task: {e}")))?
            .map_err(Status::internal)?;
        let commit_index = self
            .commit(Command::SetPassword {
                at: 0,
                user,
                role,
                phc,
                by,
            })
            .await?;
        Ok(Response::new(pb::SetPasswordResponse { commit_index }))
    }

    async fn clear_password(
        &self,
        req: Request<pb::ClearPasswordRequest>,
    ) -> Result<Response<pb::ClearPasswordResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Admin)?;
        let user = req.into_inner().user;
        let commit_index = self
            .commit(Command::ClearPassword { at: 0, user, by })
            .await?;
        Ok(Response::new(pb::ClearPasswordResponse { commit_index }))
    }

    async fn invite(
        &self,
        req: Request<pb::InviteRequest>,
    ) -> Result<Response<pb::InviteResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Admin)?;
        let pb::InviteRequest { user, role } = req.into_inner();
        let role = if role.is_empty() {
            TokenRole::Responder
        } else {
            role_from_str(&role)?
        };
        let w = self
            .node
            .write(Command::Invite {
                at: 0,
                user,
                role,
                by,
            })
            .await?;
        match w.response {
            pager_core::Response::Queued { delivery } => Ok(Response::new(pb::InviteResponse {
                delivery_id: delivery,
                commit_index: w.index,
            })),
            pager_core::Response::Rejected(r) => Err(NodeError::Rejected(r).into()),
            other => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    async fn sign_out(
        &self,
        req: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Admin)?;
        let user = req.into_inner().user;
        let commit_index = self
            .commit(Command::RevokeSessions { at: 0, user, by })
            .await?;
        Ok(Response::new(pb::SignOutResponse { commit_index }))
    }

    async fn list_credentials(
        &self,
        req: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let credentials = self.node.read(|s| {
            s.credentials
                .values()
                .map(|c| pb::CredentialInfo {
                    user: c.user.clone(),
                    role: c.role.as_str().into(),
                    set_at_ms: c.set_at,
                    set_by: c.set_by.clone(),
                })
                .collect()
        });
        Ok(Response::new(pb::ListCredentialsResponse { credentials }))
    }
}
