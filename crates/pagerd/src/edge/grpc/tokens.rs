//! API tokens: `Tokens` (create, revoke, list) and the check every other
//! call makes ([`Api::authorize`]).

use super::Api;
use crate::error::NodeError;
use pager_core::{Command, TokenRole};
use pager_proto::pager::v1 as pb;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};

/// Who made an authorized call: a token's name, the bootstrap token, or
/// "api" when auth is off.
pub type Caller = String;

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn role_from_str(role: &str) -> Result<TokenRole, NodeError> {
    match role {
        "responder" => Ok(TokenRole::Responder),
        "admin" => Ok(TokenRole::Admin),
        other => Err(NodeError::invalid(
            "role",
            format!("{other:?} is not responder or admin"),
        )),
    }
}

impl Api {
    /// Check the call's bearer token for `need`. With auth off, everyone is "api".
    pub(super) fn authorize<T>(&self, req: &Request<T>, need: TokenRole) -> Result<Caller, Status> {
        if !self.node.cfg.auth_enabled {
            return Ok("api".into());
        }
        let Some(secret) = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Err(Status::unauthenticated(
                "authorization: a bearer token is required (pagerctl --token or PAGERCTL_TOKEN)",
            ));
        };
        if let Some(boot) = &self.node.cfg.bootstrap_admin_token {
            if bool::from(boot.expose().as_bytes().ct_eq(secret.as_bytes())) {
                return Ok("bootstrap-admin".into());
            }
        }
        let wanted = digest(secret);
        let found = self
            .node
            .read(|s| s.token_by_digest(&wanted).map(|t| (t.name.clone(), t.role)));
        match found {
            Some((name, role)) if role.allows(need) => Ok(name),
            Some((name, role)) => Err(Status::permission_denied(format!(
                "this call needs the {} role; token {name:?} is {}",
                need.as_str(),
                role.as_str()
            ))),
            None => Err(Status::unauthenticated(
                "authorization: unknown or revoked token",
            )),
        }
    }
}

#[tonic::async_trait]
impl pb::tokens_server::Tokens for Api {
    async fn create(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Admin)?;
        let req = req.into_inner();
        let role = role_from_str(&req.role)?;
        let secret = {
            use rand::RngCore;
            let mut bytes = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("pgd_{hex}")
        };
        let commit_index = self
            .commit(Command::CreateToken {
                at: 0,
                name: req.name.clone(),
                role,
                sha256: digest(&secret),
                by,
            })
            .await?;
        Ok(Response::new(pb::CreateTokenResponse {
            name: req.name,
            role: role.as_str().into(),
            secret,
            commit_index,
        }))
    }

    async fn revoke(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Admin)?;
        let name = req.into_inner().name;
        let commit_index = self
            .commit(Command::RevokeToken { at: 0, name, by })
            .await?;
        Ok(Response::new(pb::RevokeTokenResponse { commit_index }))
    }

    async fn list(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let tokens = self.node.read(|s| {
            s.tokens
                .values()
                .map(|t| pb::TokenInfo {
                    name: t.name.clone(),
                    role: t.role.as_str().into(),
                    created_at_ms: t.created_at,
                    created_by: t.created_by.clone(),
                })
                .collect()
        });
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
