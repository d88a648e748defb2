//! Console sign-in through an OpenID Connect provider (`[auth.oidc]`): the
//! authorization code flow with PKCE (S256), a `state` and a `nonce`.
//!
//! 1. `GET /login/oidc` reads the provider's discovery document (cached for
//!    an hour), makes a state, a nonce and a code verifier, keeps them in a
//!    short-lived cookie sealed with a key derived from the cluster's link key
//!    (so the callback may land on any node), and sends the browser to the
//!    provider.
//! 2. `GET /login/oidc/callback` checks the state against the cookie,
//!    exchanges the code (with the verifier and the client secret, HTTP
//!    Basic) at the token endpoint, and checks the ID token: signed by a key
//!    of the provider's JWKS with an asymmetric algorithm, issued by the
//!    configured issuer for this client, not expired, with the nonce.
//! 3. The token names a user of the on-call document (by verified email, or
//!    by the claim `user_claim` holding the stable name): that user is signed
//!    in, with the role of their password if they have one, else responder.

use super::session;
use super::{Console, Problem};
use crate::config::OidcSettings;
use crate::node::now_ms;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use pager_core::Millis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const COOKIE: &str = "pagerd_oidc";
const LABEL: &str = "pagerd console oidc v1";
/// How long a sign-in at the provider may take.
const FLOW_TTL_MS: Millis = 10 * 60_000;
/// How long discovery and keys are kept before they are read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The provider as last read: discovery and keys.
#[derive(Clone)]
pub struct Provider {
    meta: Metadata,
    keys: jsonwebtoken::jwk::JwkSet,
    read_at: Instant,
}

/// What the browser carries to the callback, sealed.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "c")]
    verifier: String,
    #[serde(rename = "x")]
    next: String,
    #[serde(rename = "e")]
    expires: Millis,
}

fn random(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    B64.encode(b)
}

/// Why single sign-on did not work: the sign-in page with the reason.
fn failed(console: &Console, status: StatusCode, why: &str) -> Response {
    tracing::warn!(why, "console single sign-on refused");
    session::login_form(console, status, "/incidents", "", "", why)
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

async fn fetch_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let res = http()?
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("{url}: HTTP {}", res.status()));
    }
    res.json().await.map_err(|e| format!("{url}: {e}"))
}

/// The provider's discovery document and keys, read again when older than
/// an hour or when `refresh` (an ID token names a key not seen yet).
async fn provider(
    console: &Console,
    cfg: &OidcSettings,
    refresh: bool,
) -> Result<Provider, String> {
    let mut cached = console.oidc.lock().await;
    if let Some(p) = cached
        .as_ref()
        .filter(|p| !refresh && p.read_at.elapsed() < METADATA_TTL)
    {
        return Ok(p.clone());
    }
    let meta: Metadata =
        fetch_json(&format!("{}/.well-known/openid-configuration", cfg.issuer)).await?;
    if meta.issuer.trim_end_matches('/') != cfg.issuer {
        return Err(format!(
            "the provider says its issuer is {:?}, not {:?}",
            meta.issuer, cfg.issuer
        ));
    }
    let keys: jsonwebtoken::jwk::JwkSet = fetch_json(&meta.jwks_uri).await?;
    let p = Provider {
        meta,
        keys,
        read_at: Instant::now(),
    };
    *cached = Some(p.clone());
    Ok(p)
}

fn redirect_uri(console: &Console) -> String {
    format!("{}/login/oidc/callback", console.node.cfg.public_url)
}

fn flow_key(console: &Console) -> Option<Vec<u8>> {
    let link_key = console.node.read(|s| s.link_key.expose().to_string());
    session::derived(&link_key, LABEL)
}

#[derive(Deserialize, Default)]
pub struct StartQuery {
    #[serde(default)]
    next: String,
}

/// `GET /login/oidc`: off to the provider.
pub async fn start(State(console): State<Console>, Query(q): Query<StartQuery>) -> Response {
    let Some(cfg) = console.node.cfg.oidc.clone() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "Not configured",
            "Single sign-on is not set up on this cluster ([auth.oidc]).",
        )
        .into_response();
    };
    let p = match provider(&console, &cfg, false).await {
        Ok(p) => p,
        Err(e) => {
            return failed(
                &console,
                StatusCode::BAD_GATEWAY,
                &format!("The identity provider could not be reached: {e}"),
            )
        }
    };
    let Some(key) = flow_key(&console) else {
        return failed(
            &console,
            StatusCode::SERVICE_UNAVAILABLE,
            "This cluster has not elected its first leader yet.",
        );
    };
    let flow = Flow {
        state: random(18),
        nonce: random(18),
        verifier: random(32),
        next: session::safe_next(&q.next),
        expires: now_ms() + FLOW_TTL_MS,
    };
    let challenge = B64.encode(Sha256::digest(flow.verifier.as_bytes()));
    let Ok(sealed) = crate::edge::links::seal(&key, &flow) else {
        return failed(
            &console,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The sign-in could not be prepared.",
        );
    };
    let mut url = match url::Url::parse(&p.meta.authorization_endpoint) {
        Ok(u) => u,
        Err(e) => {
            return failed(
                &console,
                StatusCode::BAD_GATEWAY,
                &format!("The provider's authorization endpoint is not a URL: {e}"),
            )
        }
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", &redirect_uri(&console))
        .append_pair("scope", &cfg.scopes)
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            COOKIE,
            &sealed,
            "/login/oidc",
            FLOW_TTL_MS / 1000,
            session::secure(&console),
        ),
    );
    res
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

/// Exchange the code for the ID token (client_secret_basic, or a public
/// client's `client_id` in the form).
async fn exchange(
    console: &Console,
    cfg: &OidcSettings,
    p: &Provider,
    code: &str,
    verifier: &str,
) -> Result<String, String> {
    let redirect = redirect_uri(console);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier),
    ];
    let mut req = http()?.post(&p.meta.token_endpoint);
    match &cfg.client_secret {
        Some(secret) => {
            // RFC 6749 2.3.1: both parts form-urlencoded, then Basic.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&cfg.client_id), Some(enc(secret.expose())));
        }
        None => form.push(("client_id", cfg.client_id.as_str())),
    }
    let res = req
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("token endpoint: {e}"))?;
    let status = res.status();
    if !status.is_success() {
        // RFC 6749 5.2: {"error": ..., "error_description": ...}
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        return Err(format!(
            "the token endpoint answered {status}: {} {}",
            body["error"].as_str().unwrap_or("?"),
            body["error_description"].as_str().unwrap_or("")
        ));
    }
    let answer: TokenAnswer = res
        .json()
        .await
        .map_err(|e| format!("token endpoint: {e}"))?;
    Ok(answer.id_token)
}

/// The ID token's claims, checked (see the module's docs).
async fn verify(
    console: &Console,
    cfg: &OidcSettings,
    p: Provider,
    id_token: &str,
    nonce: &str,
) -> Result<HashMap<String, serde_json::Value>, String> {
    use jsonwebtoken::Algorithm;
    let head = jsonwebtoken::decode_header(id_token).map_err(|e| format!("ID token: {e}"))?;
    let asymmetric = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !asymmetric.contains(&head.alg) {
        return Err(format!(
            "ID token: algorithm {:?} is not accepted",
            head.alg
        ));
    }
    let find = |p: &Provider| match &head.kid {
        Some(kid) => p.keys.find(kid).cloned(),
        None => p.keys.keys.first().cloned(),
    };
    let jwk = match find(&p) {
        Some(k) => k,
        // Keys rotate: read them again once.
        None => find(&provider(console, cfg, true).await?)
            .ok_or_else(|| "ID token: signed with a key the provider does not list".to_string())?,
    };
    let key =
        jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| format!("ID token key: {e}"))?;
    let mut v = jsonwebtoken::Validation::new(head.alg);
    v.set_issuer(&[p.meta.issuer.as_str(), cfg.issuer.as_str()]);
    v.set_audience(&[cfg.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 60;
    let data = jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(id_token, &key, &v)
        .map_err(|e| format!("ID token: {e}"))?;
    if data.claims.get("nonce").and_then(|n| n.as_str()) != Some(nonce) {
        return Err("ID token: the nonce is not this sign-in's".into());
    }
    Ok(data.claims)
}

/// The user of the document the claims name.
fn user_of(
    console: &Console,
    cfg: &OidcSettings,
    claims: &HashMap<String, serde_json::Value>,
) -> Result<String, String> {
    let value = claims
        .get(&cfg.user_claim)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("the ID token has no {:?} claim", cfg.user_claim))?;
    if cfg.user_claim == "email" {
        if claims.get("email_verified").and_then(|v| v.as_bool()) == Some(false) {
            return Err("the identity provider has not verified this email address".into());
        }
        let matches: Vec<String> = console.node.read(|s| {
            s.config
                .users
                .iter()
                .filter(|(_, u)| {
                    u.email.eq_ignore_ascii_case(value)
                        || u.contact_methods.iter().any(|c| {
                            c.kind == pager_core::ContactKind::Email
                                && c.address.eq_ignore_ascii_case(value)
                        })
                })
                .map(|(name, _)| name.clone())
                .collect()
        });
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!(
                "no user of the on-call document has the email {}",
                pager_notify::mask::email(value)
            )),
            _ => Err("more than one user of the on-call document has this email".into()),
        }
    } else if console.node.read(|s| s.config.users.contains_key(value)) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "no user of the on-call document is called {value:?}"
        ))
    }
}

/// `GET /login/oidc/callback?code&state` (or `?error&state`).
pub async fn callback(
    State(console): State<Console>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(cfg) = console.node.cfg.oidc.clone() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "Not configured",
            "Single sign-on is not set up on this cluster.",
        )
        .into_response();
    };
    let flow: Option<Flow> = flow_key(&console).and_then(|key| {
        session::cookie(&headers, COOKIE).and_then(|c| crate::edge::links::open(&key, c).ok())
    });
    let Some(flow) = flow.filter(|f| f.expires > now_ms()) else {
        return failed(
            &console,
            StatusCode::BAD_REQUEST,
            "The sign-in took too long or did not start here. Please try again.",
        );
    };
    if !session::same(
        q.get("state").map(String::as_str).unwrap_or(""),
        &flow.state,
    ) {
        return failed(&console, StatusCode::BAD_REQUEST, "The answer from the identity provider is not for this sign-in (state). Please try again.");
    }
    if let Some(error) = q.get("error") {
        return failed(
            &console,
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider refused: {error}."),
        );
    }
    let Some(code) = q.get("code") else {
        return failed(
            &console,
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code.",
        );
    };
    let signed = async {
        let p = provider(&console, &cfg, false).await?;
        let id_token = exchange(&console, &cfg, &p, code, &flow.verifier).await?;
        let claims = verify(&console, &cfg, p, &id_token, &flow.nonce).await?;
        user_of(&console, &cfg, &claims)
    };
    let user = match signed.await {
        Ok(u) => u,
        Err(e) => {
            return failed(
                &console,
                StatusCode::FORBIDDEN,
                &format!("Single sign-on failed: {e}."),
            )
        }
    };
    let Some(token) = session::start(&console, &user) else {
        return failed(
            &console,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The session could not be signed.",
        );
    };
    tracing::info!(user = %user, "console sign-in (single sign-on)");
    let mut res = session::signed_in(&console, &token, &flow.next);
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(COOKIE, "", "/login/oidc", 0, session::secure(&console)),
    );
    res
}
