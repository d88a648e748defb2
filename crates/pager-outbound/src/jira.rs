//! Jira Cloud's REST API v3, as an incident's ticket: create it, assign it to the responder,
//! move it through its workflow, comment on it.
//!
//! Requests follow Atlassian's OpenAPI description (`jira_platform_v3.json`, kept in
//! `tests/spec/jira/`): basic auth with an account's email and API token, JSON bodies, rich
//! text in Atlassian Document Format ([`crate::adf`]).
//!
//! | call | request |
//! |---|---|
//! | [`JiraClient::find_account_id`] | `GET /rest/api/3/user/search?query=EMAIL` |
//! | [`JiraClient::create_issue`] | `POST /rest/api/3/issue` → `201 {id, key, self}` |
//! | [`JiraClient::transitions`] | `GET /rest/api/3/issue/{key}/transitions` |
//! | [`JiraClient::transition_to`] | that, then `POST …/transitions {"transition": {"id"}}` → `204` |
//! | [`JiraClient::find_by_label`] | `POST /rest/api/3/search {"jql": "project = … AND labels = …"}` |
//! | [`JiraClient::status`] | `GET /rest/api/3/issue/{key}?fields=status` |
//! | [`JiraClient::add_comment`] | `POST /rest/api/3/issue/{key}/comment {"body": ADF}` → `201` |
//!
//! Failures are `{"errorMessages": [...], "errors": {"field": "message"}}` with 400 (invalid,
//! [`ErrorKind::Permanent`](crate::ErrorKind::Permanent)), 401/403 ([`ErrorKind::Auth`](crate::ErrorKind::Auth)), 404 (no such issue, permanent),
//! 429 with `Retry-After` ([`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited)) and 5xx ([`ErrorKind::Transient`](crate::ErrorKind::Transient)).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::transport::{self, Effect};
use crate::{ConfigError, OutboundError, Secret, DEFAULT_TIMEOUT};

/// Jira's limit on an issue summary, in characters.
pub const MAX_SUMMARY: usize = 255;
/// Jira's limit on a label, in characters.
pub const MAX_LABEL: usize = 255;
/// Users a search asks for: more than one person answering to one email is rare.
pub const USER_SEARCH_MAX_RESULTS: u32 = 10;

/// An issue Jira created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Numeric id, `10000`.
    pub id: String,
    /// `OPS-1`.
    pub key: String,
    /// The issue's REST URL (`self` in Jira's answer).
    pub self_: String,
}

/// A workflow transition available from an issue's current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: String,
    /// `Mitigate`, `Done`, ….
    pub name: String,
    /// The status it leads to, `Mitigated`.
    pub to_status: Option<String>,
}

/// One site's REST API as one account, with one pooled HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    /// The site, `https://your-domain.atlassian.net`.
    base: Url,
    email: String,
    token: Secret,
    timeout: Duration,
}

impl fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraClient")
            .field("base", &self.base.as_str())
            .field("email", &pager_notify::mask::email(&self.email))
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Jira's `ErrorCollection`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorCollection {
    #[serde(default)]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBean {
    account_id: Option<String>,
    account_type: Option<String>,
    email_address: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct TransitionsBean {
    #[serde(default)]
    transitions: Vec<TransitionBean>,
}

#[derive(Debug, Deserialize)]
struct TransitionBean {
    id: Option<String>,
    #[serde(default)]
    name: String,
    to: Option<StatusBean>,
}

#[derive(Debug, Deserialize)]
struct StatusBean {
    name: Option<String>,
}

impl JiraClient {
    /// A client for the site at `base_url`, authenticating as `email` with an API token.
    /// Opens no connection.
    pub fn new(
        base_url: &str,
        email: &str,
        api_token: impl Into<Secret>,
    ) -> Result<JiraClient, ConfigError> {
        let token = api_token.into();
        if email.trim().is_empty() {
            return Err(ConfigError::Empty { what: "jira email" });
        }
        if token.expose().trim().is_empty() {
            return Err(ConfigError::Empty {
                what: "jira api token",
            });
        }
        Ok(JiraClient {
            http: transport::http_client("jira")?,
            base: transport::check_base_url("jira", base_url)?,
            email: email.trim().to_owned(),
            token,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Bound each request to `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<JiraClient, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout { what: "jira" });
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The `accountId` of the active person whose email is `email`: the one whose
    /// `emailAddress` matches, or, when privacy settings hide addresses, the only person the
    /// search finds. `None` when there is none, or several and none matches. Read-only.
    #[tracing::instrument(
        name = "jira_find_user",
        skip_all,
        fields(email = %pager_notify::mask::email(email))
    )]
    pub async fn find_account_id(&self, email: &str) -> Result<Option<String>, OutboundError> {
        let max = USER_SEARCH_MAX_RESULTS.to_string();
        let body = self
            .send(
                Method::GET,
                &["user", "search"],
                &[("query", email), ("maxResults", &max)],
                None,
                Effect::Idempotent,
                "jira user search",
            )
            .await
            .map_err(|err| mask_email(err, email))?;
        let users: Vec<UserBean> = serde_json::from_slice(&body).map_err(|err| {
            OutboundError::transient(format!("jira user search answer is unreadable: {err}"))
        })?;
        let people: Vec<&UserBean> = users
            .iter()
            .filter(|u| u.account_id.as_deref().is_some_and(|id| !id.is_empty()))
            .filter(|u| u.active != Some(false))
            .filter(|u| u.account_type.as_deref().map_or(true, |t| t == "atlassian"))
            .collect();
        let exact = people.iter().find(|u| {
            u.email_address
                .as_deref()
                .is_some_and(|a| a.trim().eq_ignore_ascii_case(email.trim()))
        });
        let found = match (exact, people.as_slice()) {
            (Some(user), _) => user.account_id.clone(),
            (None, [only]) if only.email_address.is_none() => only.account_id.clone(),
            (None, _) => None,
        };
        tracing::debug!(
            candidates = people.len(),
            found = found.is_some(),
            "jira user search"
        );
        Ok(found)
    }

    /// Create an issue of `issue_type` (its name, `Incident`) in `project_key`. `summary` loses
    /// its line breaks and is cut to [`MAX_SUMMARY`]; `description_adf` is an ADF document
    /// ([`crate::adf::Doc`]) or `Value::Null`; labels lose their blanks (Jira refuses them).
    /// Not idempotent: a retry after an in-doubt error may create a second issue.
    #[tracing::instrument(name = "jira_create", skip_all, fields(project = project_key))]
    pub async fn create_issue<S: AsRef<str>>(
        &self,
        project_key: &str,
        issue_type: &str,
        summary: &str,
        description_adf: Value,
        assignee_account_id: Option<&str>,
        labels: &[S],
    ) -> Result<Created, OutboundError> {
        let mut fields = Map::new();
        fields.insert("project".into(), json!({ "key": project_key }));
        fields.insert("issuetype".into(), json!({ "name": issue_type }));
        fields.insert("summary".into(), Value::from(clean_summary(summary)));
        if !description_adf.is_null() {
            fields.insert("description".into(), description_adf);
        }
        if let Some(account_id) = assignee_account_id {
            fields.insert("assignee".into(), json!({ "accountId": account_id }));
        }
        let labels: Vec<String> = labels
            .iter()
            .filter_map(|l| clean_label(l.as_ref()))
            .collect();
        if !labels.is_empty() {
            fields.insert("labels".into(), Value::from(labels));
        }
        let body = json!({ "fields": fields });
        let answer = self
            .send(
                Method::POST,
                &["issue"],
                &[],
                Some(&body),
                Effect::Mutating,
                "jira create issue",
            )
            .await?;
        let created: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        match (created["id"].as_str(), created["key"].as_str()) {
            (Some(id), Some(key)) => {
                tracing::debug!(key, "jira issue created");
                Ok(Created {
                    id: id.to_owned(),
                    key: key.to_owned(),
                    self_: created["self"].as_str().unwrap_or_default().to_owned(),
                })
            }
            // Jira said 201: the issue exists, only its key is unknown.
            _ => Err(OutboundError::transient(
                "jira created the issue but its answer has no readable key",
            )
            .in_doubt(true)),
        }
    }

    /// The key of an issue of `project_key` carrying `label`, if any (the
    /// oldest). Read-only: how a create whose answer was lost is found again
    /// before it is sent twice.
    #[tracing::instrument(name = "jira_find_labelled", skip_all, fields(project = project_key))]
    pub async fn find_by_label(
        &self,
        project_key: &str,
        label: &str,
    ) -> Result<Option<String>, OutboundError> {
        let Some(label) = clean_label(label) else {
            return Err(OutboundError::permanent("jira search: empty label"));
        };
        let body = json!({
            "jql": format!("project = \"{project_key}\" AND labels = \"{label}\""),
            "startAt": 0,
            "maxResults": 1,
            "fields": ["summary"],
        });
        let answer = self
            .send(
                Method::POST,
                &["search"],
                &[],
                Some(&body),
                Effect::Idempotent,
                "jira search",
            )
            .await?;
        let found: Value = serde_json::from_slice(&answer).map_err(|err| {
            OutboundError::transient(format!("jira search answer is unreadable: {err}"))
        })?;
        Ok(found["issues"]
            .as_array()
            .and_then(|issues| issues.first())
            .and_then(|i| i["key"].as_str())
            .map(str::to_owned))
    }

    /// The transitions available from `issue_key`'s current status. Read-only.
    #[tracing::instrument(name = "jira_transitions", skip_all, fields(issue = issue_key))]
    pub async fn transitions(&self, issue_key: &str) -> Result<Vec<Transition>, OutboundError> {
        check_issue_key(issue_key)?;
        let body = self
            .send(
                Method::GET,
                &["issue", issue_key, "transitions"],
                &[],
                None,
                Effect::Idempotent,
                "jira transitions",
            )
            .await?;
        let bean: TransitionsBean = serde_json::from_slice(&body).map_err(|err| {
            OutboundError::transient(format!("jira transitions answer is unreadable: {err}"))
        })?;
        Ok(bean
            .transitions
            .into_iter()
            .filter_map(|t| {
                Some(Transition {
                    id: t.id?,
                    name: t.name,
                    to_status: t.to.and_then(|s| s.name),
                })
            })
            .collect())
    }

    /// The name of `issue_key`'s status (`To Do`). Read-only.
    pub async fn status(&self, issue_key: &str) -> Result<String, OutboundError> {
        check_issue_key(issue_key)?;
        let body = self
            .send(
                Method::GET,
                &["issue", issue_key],
                &[("fields", "status")],
                None,
                Effect::Idempotent,
                "jira issue status",
            )
            .await?;
        let issue: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        issue["fields"]["status"]["name"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| OutboundError::transient("jira issue answer has no status name"))
    }

    /// Move `issue_key` by the transition called `name` (compared without case), or else the
    /// one leading to a status called `name`. Safe to retry: when no such transition exists
    /// and the issue is already in status `name`, there is nothing to do. Otherwise no match
    /// is a permanent error that names the transitions available.
    #[tracing::instrument(name = "jira_transition", skip_all, fields(issue = issue_key, to = name))]
    pub async fn transition_to(&self, issue_key: &str, name: &str) -> Result<(), OutboundError> {
        let wanted = name.trim().to_lowercase();
        let transitions = self.transitions(issue_key).await?;
        let chosen = transitions
            .iter()
            .find(|t| t.name.trim().to_lowercase() == wanted)
            .or_else(|| {
                transitions.iter().find(|t| {
                    t.to_status
                        .as_deref()
                        .is_some_and(|s| s.trim().to_lowercase() == wanted)
                })
            });
        let Some(transition) = chosen else {
            let status = self.status(issue_key).await?;
            if status.trim().to_lowercase() == wanted {
                tracing::debug!(status, "jira issue already in the status asked for");
                return Ok(());
            }
            let available: Vec<String> = transitions
                .iter()
                .map(|t| match &t.to_status {
                    Some(to) if *to != t.name => format!("{:?} (to {to:?})", t.name),
                    _ => format!("{:?}", t.name),
                })
                .collect();
            return Err(OutboundError::permanent(format!(
                "jira issue {issue_key} (status {status:?}) has no transition {name:?}; available: {}",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            )));
        };
        let body = json!({ "transition": { "id": transition.id } });
        self.send(
            Method::POST,
            &["issue", issue_key, "transitions"],
            &[],
            Some(&body),
            Effect::Mutating,
            "jira transition",
        )
        .await?;
        tracing::debug!(transition = %transition.name, "jira issue transitioned");
        Ok(())
    }

    /// Add a comment (an ADF document) to `issue_key`; returns the comment's id. Not
    /// idempotent.
    #[tracing::instrument(name = "jira_comment", skip_all, fields(issue = issue_key))]
    pub async fn add_comment(&self, issue_key: &str, adf: Value) -> Result<String, OutboundError> {
        check_issue_key(issue_key)?;
        let body = json!({ "body": adf });
        let answer = self
            .send(
                Method::POST,
                &["issue", issue_key, "comment"],
                &[],
                Some(&body),
                Effect::Mutating,
                "jira comment",
            )
            .await?;
        let comment: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        Ok(comment["id"].as_str().unwrap_or_default().to_owned())
    }

    /// One request under `/rest/api/3/`; the body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        effect: Effect,
        what: &str,
    ) -> Result<Vec<u8>, OutboundError> {
        let mut segments = vec!["rest", "api", "3"];
        segments.extend_from_slice(path);
        let url = transport::join(&self.base, &segments);
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.email, Some(self.token.expose()))
            .header(ACCEPT, "application/json")
            .timeout(self.timeout);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|err| {
                OutboundError::permanent(format!("encode the {what} body: {err}"))
            })?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport::transport_error(err, what, effect, self.timeout))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let answer = transport::read_body(response, what, effect, self.timeout).await?;
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let errors = serde_json::from_slice::<ErrorCollection>(&answer).unwrap_or_default();
        let mut parts = errors.error_messages;
        parts.extend(errors.errors.iter().map(|(field, message)| match message {
            Value::String(message) => format!("{field}: {message}"),
            other => format!("{field}: {other}"),
        }));
        let mut message = format!("{what}: HTTP {status}");
        if !parts.is_empty() {
            message = format!("{message}: {}", parts.join("; "));
        }
        let message = transport::redact(&message, self.token.expose());
        let kind = transport::status_kind(status, &headers);
        Err(OutboundError::new(kind, message)
            .with_code(status.to_string())
            .with_status(status)
            .in_doubt(transport::status_in_doubt(status, effect)))
    }
}

/// One line of at most [`MAX_SUMMARY`] characters; never empty (Jira requires a summary).
fn clean_summary(summary: &str) -> String {
    let line = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = if line.is_empty() {
        "pagerd incident".to_owned()
    } else {
        line
    };
    transport::cut_chars(&line, MAX_SUMMARY).into_owned()
}

/// Blanks become `-` (Jira refuses labels with spaces); empty labels are dropped.
fn clean_label(label: &str) -> Option<String> {
    let label = label.split_whitespace().collect::<Vec<_>>().join("-");
    (!label.is_empty()).then(|| label.chars().take(MAX_LABEL).collect())
}

/// An issue key (`OPS-1`) or id (`10000`): letters, digits, `-` and `_`, refused locally
/// otherwise (it goes into a path).
fn check_issue_key(key: &str) -> Result<(), OutboundError> {
    let ok = !key.is_empty()
        && key.len() <= 255
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(OutboundError::permanent(format!(
            "{:?} is not a jira issue key or id",
            transport::cut_chars(key, 40)
        )))
    }
}

fn mask_email(mut err: OutboundError, email: &str) -> OutboundError {
    if !email.is_empty() {
        err.message = err
            .message
            .replace(email, &pager_notify::mask::email(email));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_labels() {
        assert_eq!(clean_summary("db1\ndisk  full\r\n"), "db1 disk full");
        assert_eq!(clean_summary(" \n"), "pagerd incident");
        let long = clean_summary(&"é".repeat(300));
        assert_eq!(long.chars().count(), MAX_SUMMARY);
        assert!(long.ends_with('…'));
        assert_eq!(clean_label("sev 1"), Some("sev-1".into()));
        assert_eq!(clean_label("  "), None);
    }

    #[test]
    fn issue_keys() {
        assert!(check_issue_key("OPS-1").is_ok());
        assert!(check_issue_key("10000").is_ok());
        assert!(check_issue_key("").is_err());
        assert!(check_issue_key("../admin").is_err());
        assert!(check_issue_key("OPS 1").is_err());
    }

    #[test]
    fn debug_hides_the_token_and_masks_the_email() {
        let client = JiraClient::new(
            "https://x.atlassian.net",
            "bot@example.com",
            "jira-token-123",
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("jira-token-123"), "{debug}");
        assert!(!debug.contains("bot@example.com"), "{debug}");
    }
}
