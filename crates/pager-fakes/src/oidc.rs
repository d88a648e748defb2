//! A fake OpenID Connect provider on loopback, for the console's single
//! sign-on: discovery, the authorization endpoint (it approves at once, as
//! the user the test chose), the token endpoint and the JWKS, behaving as
//! the specifications say (OpenID Connect Core 1.0, RFC 6749 and PKCE,
//! RFC 7636):
//!
//! - `/authorize` needs `response_type=code`, the registered `client_id` and
//!   `redirect_uri`, a scope with `openid` and an S256 `code_challenge`; a
//!   bad client or redirect URI is a 400 page (never a redirect), anything
//!   else wrong is a redirect with `error=invalid_request` and the `state`.
//! - `/token` takes `grant_type=authorization_code`, the code (once, within
//!   a minute), the same `redirect_uri`, the `code_verifier` whose SHA-256 is
//!   the challenge, and the client's secret by `client_secret_basic` or
//!   `client_secret_post`; errors are RFC 6749 JSON (`invalid_client` 401,
//!   `invalid_grant` 400). The ID token is an ES256 JWS with `iss`, `sub`,
//!   `aud`, `exp`, `iat`, `nonce`, `email`, `email_verified` and
//!   `preferred_username`.

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const CLIENT_ID: &str = "pagerd-console";
pub const CLIENT_SECRET: &str = "fake-oidc-client-secret";
const KID: &str = "fake-key-1";

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub preferred_username: String,
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    identity: Identity,
    issued: Instant,
}

struct Shared {
    issuer: String,
    redirect_uri: Mutex<String>,
    signed_in: Mutex<Option<Identity>>,
    grants: Mutex<HashMap<String, Grant>>,
    key: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
    /// Requests to each endpoint, for tests to check.
    hits: Mutex<HashMap<&'static str, u32>>,
}

pub struct FakeOidc {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl FakeOidc {
    /// Listen on 127.0.0.1 with a fresh P-256 signing key.
    pub async fn start() -> std::io::Result<FakeOidc> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let pair = rcgen::KeyPair::generate().map_err(std::io::Error::other)?;
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
            .map_err(std::io::Error::other)?;
        // Uncompressed point: 0x04 || x || y.
        let raw = pair.public_key_raw();
        let (x, y) = (&raw[1..33], &raw[33..65]);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
            "x": B64.encode(x), "y": B64.encode(y),
        });
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            redirect_uri: Mutex::new(String::new()),
            signed_in: Mutex::new(None),
            grants: Mutex::new(HashMap::new()),
            key,
            jwk,
            hits: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeOidc { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The one redirect URI registered for [`CLIENT_ID`].
    pub fn register_redirect_uri(&self, uri: &str) {
        *lock(&self.shared.redirect_uri) = uri.to_string();
    }

    /// Who the next authorizations approve as (`None`: the user is not
    /// signed in at the provider and denies: `error=access_denied`).
    pub fn sign_in_as(&self, who: Option<Identity>) {
        *lock(&self.shared.signed_in) = who;
    }

    /// Requests served by an endpoint (`authorize`, `token`, `jwks`, `discovery`).
    pub fn hits(&self, endpoint: &str) -> u32 {
        lock(&self.shared.hits).get(endpoint).copied().unwrap_or(0)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn hit(s: &Shared, endpoint: &'static str) {
    *lock(&s.hits).entry(endpoint).or_default() += 1;
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    hit(&s, "discovery");
    let i = &s.issuer;
    Json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "profile"],
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    hit(&s, "jwks");
    Json(serde_json::json!({ "keys": [s.jwk] }))
}

fn redirect_error(uri: &str, error: &str, state: &str) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response(),
    };
    url.query_pairs_mut()
        .append_pair("error", error)
        .append_pair("state", state);
    Redirect::to(url.as_str()).into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    hit(&s, "authorize");
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let registered = lock(&s.redirect_uri).clone();
    // Never redirect to a URI that is not registered for the client.
    if get("client_id") != CLIENT_ID || get("redirect_uri") != registered || registered.is_empty() {
        return (StatusCode::BAD_REQUEST, "unknown client_id or redirect_uri").into_response();
    }
    let state = get("state");
    if get("response_type") != "code"
        || !get("scope").split(' ').any(|s| s == "openid")
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
    {
        return redirect_error(&registered, "invalid_request", state);
    }
    let Some(identity) = lock(&s.signed_in).clone() else {
        return redirect_error(&registered, "access_denied", state);
    };
    let code = B64.encode(Sha256::digest(format!(
        "{state}{}{:?}",
        get("nonce"),
        Instant::now()
    )));
    lock(&s.grants).insert(
        code.clone(),
        Grant {
            redirect_uri: registered.clone(),
            challenge: get("code_challenge").to_string(),
            nonce: get("nonce").to_string(),
            identity,
            issued: Instant::now(),
        },
    );
    let mut url = match url::Url::parse(&registered) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response(),
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Redirect::to(url.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response()
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    nonce: &'a str,
    email: &'a str,
    email_verified: bool,
    preferred_username: &'a str,
}

/// The client's credentials: HTTP Basic (`client_secret_basic`) or the form.
fn client(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Some((unescape(id), unescape(secret)));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    hit(&s, "token");
    match client(&headers, &form) {
        Some((id, secret)) if id == CLIENT_ID && secret == CLIENT_SECRET => {}
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code only",
        );
    }
    // A code works once, whatever happens next.
    let Some(grant) = lock(&s.grants).remove(get("code")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if grant.issued.elapsed() > Duration::from_secs(60) || grant.redirect_uri != get("redirect_uri")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "expired code or other redirect_uri",
        );
    }
    if B64.encode(Sha256::digest(get("code_verifier").as_bytes())) != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier does not match",
        );
    }
    let now = now_s();
    let claims = IdClaims {
        iss: &s.issuer,
        sub: &grant.identity.sub,
        aud: CLIENT_ID,
        exp: now + 300,
        iat: now,
        nonce: &grant.nonce,
        email: &grant.identity.email,
        email_verified: grant.identity.email_verified,
        preferred_username: &grant.identity.preferred_username,
    };
    let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    head.kid = Some(KID.into());
    let Ok(id_token) = jsonwebtoken::encode(&head, &claims, &s.key) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        );
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "access_token": B64.encode(Sha256::digest(id_token.as_bytes())),
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
        })),
    )
        .into_response()
}
