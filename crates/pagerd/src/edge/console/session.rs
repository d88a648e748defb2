//! Console sign-in and sessions.
//!
//! A session is a signed cookie, not a server-side record: every node checks
//! it with the same key, derived from the cluster's replicated link key, so a
//! user signed in on one node is signed in on all of them, and a cookie signed
//! by another cluster verifies nowhere here. What makes it revocable is the
//! replicated state, read on every request:
//!
//! - the user must still be in the on-call document and have a password
//!   (removing either signs them out at once), and
//! - the cookie names the credential's `sessions_version`: a new password or
//!   `pagerctl user sign-out` moves it, ending every older session.
//!
//! The role comes from the credential on each request, never the cookie. The
//! cookie also carries the commit index of the user's last write, which a page
//! waits for before it reads (read-your-writes on any node).
//!
//! CSRF: every form carries a token that is an HMAC of the session's random
//! nonce; the sign-in form, before there is a session, is bound to a
//! short-lived nonce cookie the same way (double submit, signed).

use super::{html, Console, Fields, Problem};
use crate::node::now_ms;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pager_core::{Millis, TokenRole};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "pagerd_session";
/// The sign-in form's nonce cookie.
const LOGIN_COOKIE: &str = "pagerd_login";
/// How long a session lasts from sign-in: a long shift, not a week.
pub const LIFETIME_MS: Millis = 12 * 3_600_000;

/// What the session cookie says, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's stable name in the on-call document.
    #[serde(rename = "u")]
    pub user: String,
    /// The credential's `sessions_version` when the session was made.
    #[serde(rename = "v")]
    pub version: u64,
    /// Expiry, Unix ms.
    #[serde(rename = "e")]
    pub expires: Millis,
    /// Random, per session: the CSRF token is derived from it.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Commit index of the user's last write through the console.
    #[serde(rename = "i")]
    pub seen: u64,
}

/// The key sessions are signed with: derived from the replicated link key, so
/// every node of the cluster has it and no other cluster does. `None` until a
/// leader has taken over (a cluster that never elected one signs nothing).
pub fn key(link_key: &str) -> Option<Vec<u8>> {
    derived(link_key, "pagerd console session v1")
}

/// A key for one use (`label`) derived from the cluster's link key: a token
/// made for one use never verifies as another.
pub fn derived(link_key: &str, label: &str) -> Option<Vec<u8>> {
    if link_key.is_empty() {
        return None;
    }
    let mut m = Hmac::<Sha256>::new_from_slice(link_key.as_bytes()).ok()?;
    m.update(label.as_bytes());
    Some(m.finalize().into_bytes().to_vec())
}

pub(super) fn tag(key: &[u8], purpose: &str, nonce: &str) -> String {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    m.update(purpose.as_bytes());
    m.update(b"\0");
    m.update(nonce.as_bytes());
    B64.encode(m.finalize().into_bytes())
}

pub(super) fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub(super) fn nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Lax always, Secure when the
/// node's public URL is https (the HTTP port itself is plain; TLS is then a
/// proxy's).
pub(super) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_s: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v =
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) fn secure(console: &Console) -> bool {
    console.node.cfg.public_url.starts_with("https://")
}

/// A signed-in user, checked against the replicated state for this request.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: TokenRole,
    claims: Claims,
    key: Vec<u8>,
    secure: bool,
}

/// Why a request carries no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signedout {
    /// No cookie: never signed in, or signed out.
    Missing,
    /// Past its 12 hours.
    Expired,
    /// Not signed by this cluster, or tampered with.
    Invalid,
    /// The password changed, an admin signed the user out, or the user is
    /// no longer in the document.
    Revoked,
}

impl Signedout {
    fn code(self) -> &'static str {
        match self {
            Signedout::Missing => "missing",
            Signedout::Expired => "expired",
            Signedout::Invalid => "invalid",
            Signedout::Revoked => "revoked",
        }
    }

    fn from_code(code: &str) -> Option<Signedout> {
        [
            Signedout::Missing,
            Signedout::Expired,
            Signedout::Invalid,
            Signedout::Revoked,
        ]
        .into_iter()
        .find(|w| w.code() == code)
    }

    pub fn text(self) -> &'static str {
        match self {
            Signedout::Missing => "Please sign in.",
            Signedout::Expired => "Your session expired. Please sign in again.",
            Signedout::Invalid => {
                "Your session cookie was not signed by this cluster. Please sign in again."
            }
            Signedout::Revoked => {
                "You were signed out (new password, an admin's sign-out, or your user left the on-call document)."
            }
        }
    }
}

impl Session {
    /// The session the request's cookie carries, checked: signature, expiry,
    /// and the user's credential as it is now.
    pub fn check(console: &Console, headers: &HeaderMap) -> Result<Session, Signedout> {
        let token = cookie(headers, COOKIE).ok_or(Signedout::Missing)?;
        let link_key = console.node.read(|s| s.link_key.expose().to_string());
        let key = key(&link_key).ok_or(Signedout::Invalid)?;
        let claims: Claims =
            crate::edge::links::open(&key, token).map_err(|_| Signedout::Invalid)?;
        if claims.expires <= now_ms() {
            return Err(Signedout::Expired);
        }
        let sso = console.node.cfg.oidc.is_some();
        let role = console.node.read(|s| {
            if !s.config.users.contains_key(&claims.user)
                || s.sessions_version(&claims.user) != claims.version
            {
                return None;
            }
            match s.credentials.get(&claims.user) {
                Some(c) => Some(c.role),
                // Signed in through the identity provider, without a password.
                None if sso => Some(TokenRole::Responder),
                None => None,
            }
        });
        let role = role.ok_or(Signedout::Revoked)?;
        Ok(Session {
            user: claims.user.clone(),
            role,
            claims,
            key,
            secure: secure(console),
        })
    }

    pub fn is_admin(&self) -> bool {
        self.role.allows(TokenRole::Admin)
    }

    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> String {
        tag(&self.key, "csrf", &self.claims.nonce)
    }

    /// Refuse a form without this session's CSRF token (a forged form from
    /// another site, or one from before the user signed in again).
    pub fn check_csrf(&self, fields: &Fields) -> Result<(), Problem> {
        if same(fields.get("csrf"), &self.csrf()) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not issued by your current session (it is stale, or came from \
                 another site). Nothing was changed. Reload the page and try again.",
            ))
        }
    }

    /// Commit index of the user's last console write: pages wait for it.
    pub fn seen(&self) -> u64 {
        self.claims.seen
    }

    /// The cookie that remembers a write at `index`.
    pub fn after_write(&self, index: u64) -> HeaderValue {
        let claims = Claims {
            seen: self.claims.seen.max(index),
            ..self.claims.clone()
        };
        let left_s = claims.expires.saturating_sub(now_ms()) / 1000;
        match crate::edge::links::seal(&self.key, &claims) {
            Ok(token) => set_cookie(COOKIE, &token, "/", left_s, self.secure),
            Err(_) => HeaderValue::from_static(""),
        }
    }

    /// The answer to a form whose write landed at `index`: back to `to`
    /// (303), the cookie remembering the write.
    pub fn redirect_after(&self, index: u64, to: &str) -> Response {
        let mut res = Redirect::to(to).into_response();
        res.headers_mut()
            .insert(header::SET_COOKIE, self.after_write(index));
        res
    }

    /// The cookie that ends this session in this browser.
    pub fn cleared(&self) -> HeaderValue {
        set_cookie(COOKIE, "", "/", 0, self.secure)
    }

    /// Only admins past this point.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Admins only",
                format!(
                    "This needs the admin role; {} signs in as a responder.",
                    self.user
                ),
            ))
        }
    }
}

#[axum::async_trait]
impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    /// A page asked for without a session sends the browser to sign in (and
    /// back afterwards); a form posted without one is refused with 401.
    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        match Session::check(console, &parts.headers) {
            Ok(s) => Ok(s),
            Err(why) if parts.method == Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let to = format!(
                    "/login?why={}&next={}",
                    why.code(),
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&to).into_response())
            }
            Err(why) => Err(
                Problem::new(StatusCode::UNAUTHORIZED, "Signed out", why.text()).into_response(),
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    /// The single sign-on button's words; empty without `[auth.oidc]`.
    sso: String,
    csrf: String,
    next: String,
    user: String,
    notice: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    why: String,
}

/// Where to go after signing in: a path of this console, never another site.
pub(super) fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next.to_string()
    } else {
        "/incidents".to_string()
    }
}

/// The sign-in form, with a fresh nonce cookie its CSRF token is bound to.
pub(super) fn login_form(
    console: &Console,
    status: StatusCode,
    next: &str,
    user: &str,
    notice: &str,
    error: &str,
) -> Response {
    let link_key = console.node.read(|s| s.link_key.expose().to_string());
    let Some(key) = key(&link_key) else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready",
            "This cluster has not elected its first leader yet, so nobody can sign in. \
             Try again in a few seconds.",
        )
        .into_response();
    };
    let n = nonce();
    let page = LoginPage {
        sso: console
            .node
            .cfg
            .oidc
            .as_ref()
            .map(|o| o.label.clone())
            .unwrap_or_default(),
        csrf: tag(&key, "login", &n),
        next: safe_next(next),
        user: user.to_string(),
        notice: notice.to_string(),
        error: error.to_string(),
    };
    let mut res = (status, html(&page)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &n, "/login", 3600, secure(console)),
    );
    res
}

pub async fn login_page(
    State(console): State<Console>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    if Session::check(&console, &headers).is_ok() {
        return Redirect::to(&safe_next(&q.next)).into_response();
    }
    let notice = Signedout::from_code(&q.why)
        .filter(|w| *w != Signedout::Missing)
        .map(Signedout::text)
        .unwrap_or("");
    login_form(&console, StatusCode::OK, &q.next, "", notice, "")
}

/// A new session for `user` as of the state now, sealed: the cookie value.
pub(super) fn start(console: &Console, user: &str) -> Option<String> {
    let (link_key, version, seen) = console.node.read(|s| {
        (
            s.link_key.expose().to_string(),
            s.sessions_version(user),
            s.last_applied.index,
        )
    });
    let claims = Claims {
        user: user.to_string(),
        version,
        expires: now_ms() + LIFETIME_MS,
        nonce: nonce(),
        seen,
    };
    crate::edge::links::seal(&key(&link_key)?, &claims).ok()
}

/// The response that signs the browser in and sends it on to `next`.
pub(super) fn signed_in(console: &Console, token: &str, next: &str) -> Response {
    let mut res = Redirect::to(&safe_next(next)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, token, "/", LIFETIME_MS / 1000, secure(console)),
    );
    res
}

/// A hash to check against when the user has no password, so a wrong user
/// name takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| crate::edge::password::hash("pagerd decoy password").unwrap_or_default())
}

pub async fn login(
    State(console): State<Console>,
    addr: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    fields: Fields,
) -> Response {
    let user = fields.get("user").trim().to_string();
    let next = fields.get("next").to_string();
    let link_key = console.node.read(|s| s.link_key.expose().to_string());
    let signed = match (key(&link_key), cookie(&headers, LOGIN_COOKIE)) {
        (Some(key), Some(n)) => same(fields.get("csrf"), &tag(&key, "login", n)),
        _ => false,
    };
    if !signed {
        return login_form(
            &console,
            StatusCode::FORBIDDEN,
            &next,
            &user,
            "",
            "The sign-in form expired or did not come from this console. Please try again.",
        );
    }
    let now = std::time::Instant::now();
    let address = addr
        .map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_default();
    let limited = console
        .by_address
        .take(&address, now)
        .and_then(|()| console.by_user.take(&user.to_lowercase(), now));
    if let Err(wait) = limited {
        let secs = wait.as_secs().max(1);
        let mut res = login_form(
            &console,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &user,
            "",
            &format!("Too many sign-in attempts. Wait {secs} s and try again."),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let found = console.node.read(|s| {
        s.credentials
            .get(&user)
            .filter(|_| s.config.users.contains_key(&user))
            .map(|c| (c.phc.clone(), c.sessions_version))
    });
    let password = fields.get("password").to_string();
    let (phc, version) = match &found {
        Some((phc, v)) => (phc.clone(), Some(*v)),
        None => (decoy().to_string(), None),
    };
    let ok = tokio::task::spawn_blocking(move || crate::edge::password::verify(&phc, &password))
        .await
        .unwrap_or(false);
    if version.is_none() || !ok {
        // A name that is not a user is not logged: it may be a password typed
        // in the wrong field.
        let known = found.is_some();
        tracing::info!(user = %if known { user.as_str() } else { "(unknown)" }, "console sign-in refused");
        return login_form(
            &console,
            StatusCode::UNAUTHORIZED,
            &next,
            &user,
            "",
            "Wrong user name or password.",
        );
    }
    let Some(token) = start(&console, &user) else {
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            "The session could not be signed.",
        )
        .into_response();
    };
    tracing::info!(user = %user, "console sign-in");
    let mut res = signed_in(&console, &token, &next);
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", 0, secure(&console)),
    );
    res
}

/// Sign out of this browser: the cookie goes. (Every session of a user ends
/// with `pagerctl user sign-out USER`.)
pub async fn logout(session: Session, fields: Fields) -> Response {
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, session.cleared());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_to_this_console_only() {
        assert_eq!(safe_next("/incidents/4?x=1"), "/incidents/4?x=1");
        assert_eq!(safe_next("//evil.example/"), "/incidents");
        assert_eq!(safe_next("/\\evil.example"), "/incidents");
        assert_eq!(safe_next("https://evil.example/"), "/incidents");
        assert_eq!(safe_next(""), "/incidents");
    }

    #[test]
    fn the_session_key_is_the_clusters_own() {
        assert_eq!(key(""), None);
        let a = key("cluster-a").unwrap();
        assert_ne!(a, key("cluster-b").unwrap());
        assert_eq!(a, key("cluster-a").unwrap());
        // A CSRF token depends on the session's nonce and the key.
        assert_ne!(tag(&a, "csrf", "n1"), tag(&a, "csrf", "n2"));
        assert_ne!(tag(&a, "csrf", "n1"), tag(&a, "login", "n1"));
        assert!(!same("", ""));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; pagerd_session=tok.sig"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("tok.sig"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
