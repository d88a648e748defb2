//! A fake Jira Cloud site, on `127.0.0.1` and a port the OS picks, answering the REST v3
//! resources a pager uses as `jira_platform_v3.json` and Jira Cloud do:
//!
//! | request | checks | answer |
//! |---|---|---|
//! | any | basic auth `email:api_token` missing or wrong | 401 |
//! | `GET /rest/api/3/user/search?query=` | no `query` | 400; else 200, users whose email or name starts with it |
//! | `POST /rest/api/3/issue` | `project`, `issuetype` (of that project), `summary` (≤ 255 characters, one line), `description` an ADF doc without empty text nodes, `assignee.accountId` known, labels without blanks, no unknown fields | 400 with `errors: {field: message}`; else 201 `{id, key, self}` |
//! | `GET /rest/api/3/issue/{key}` | issue exists | 404; else 200 with `fields.status` |
//! | `GET /rest/api/3/issue/{key}/transitions` | issue exists | 200, the transitions from its status |
//! | `POST /rest/api/3/issue/{key}/transitions` | `transition.id` given and available | 400; else 204 |
//! | `POST /rest/api/3/issue/{key}/comment` | `body` an ADF doc | 400; else 201 |
//!
//! Errors are Jira's `{"errorMessages": [...], "errors": {...}}`. Projects, their issue types
//! and workflows ([`Workflow`]), and users are registered by the test; keys run `OPS-1`,
//! `OPS-2`, … per project. Every request is recorded ([`JiraRequest`]), and [`FakeJira::fail_next`]
//! queues [`Fault`]s for the next ones.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;

use super::slack::{accept_loop, Hangup};
use super::Board;

/// The account the fake accepts, for tests.
pub const TEST_EMAIL: &str = "pagerd-bot@example.com";
pub const TEST_API_TOKEN: &str = "fake-jira-api-token-0123456789";
/// Jira's limit on a summary.
pub const MAX_SUMMARY: usize = 255;

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: secs`; nothing is done.
    RateLimited { retry_after_secs: u64 },
    /// This status with an `errorMessages` body; nothing is done.
    Status(u16),
    /// Handle the request (create, transition, comment), then never answer.
    Hang,
    /// Handle the request, then close the connection without an answer.
    DropAfterAccept,
}

/// One transition of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowTransition {
    pub id: String,
    pub name: String,
    /// The statuses it leaves from; empty for a global transition (from any other status).
    pub from: Vec<String>,
    pub to: String,
}

/// The statuses an issue goes through, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// The status of a new issue.
    pub initial: String,
    pub transitions: Vec<WorkflowTransition>,
}

impl Workflow {
    pub fn new(initial: &str) -> Workflow {
        Workflow {
            initial: initial.to_owned(),
            transitions: Vec::new(),
        }
    }

    /// Add transition `id` called `name` from `from` (empty: from anywhere) to `to`.
    pub fn transition(mut self, id: &str, name: &str, from: &[&str], to: &str) -> Workflow {
        self.transitions.push(WorkflowTransition {
            id: id.to_owned(),
            name: name.to_owned(),
            from: from.iter().map(|s| (*s).to_owned()).collect(),
            to: to.to_owned(),
        });
        self
    }

    /// An incident's ticket: `To Do` → `Mitigated` → `RCA Completed`, and `Duplicate` from
    /// anywhere. Transition names differ from status names where a real workflow's would.
    pub fn incident() -> Workflow {
        Workflow::new("To Do")
            .transition("11", "Mitigate", &["To Do"], "Mitigated")
            .transition("21", "Complete RCA", &["Mitigated"], "RCA Completed")
            .transition("31", "Duplicate", &[], "Duplicate")
    }

    fn available(&self, status: &str) -> Vec<&WorkflowTransition> {
        self.transitions
            .iter()
            .filter(|t| {
                if t.from.is_empty() {
                    t.to != status
                } else {
                    t.from.iter().any(|f| f == status)
                }
            })
            .collect()
    }
}

/// A comment on an issue.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraComment {
    pub id: String,
    /// The ADF document.
    pub body: Value,
}

/// An issue as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraIssue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    pub description: Option<Value>,
    pub assignee: Option<String>,
    pub labels: Vec<String>,
    pub status: String,
    /// Names of the transitions done, in order.
    pub transitions: Vec<String>,
    pub comments: Vec<JiraComment>,
}

/// One request, as received, and its answer's status (`None`: no answer).
#[derive(Debug, Clone, PartialEq)]
pub struct JiraRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub status: Option<u16>,
}

#[derive(Debug, Clone)]
struct Project {
    issue_types: Vec<String>,
    workflow: Workflow,
    next_number: u64,
}

#[derive(Debug, Clone)]
struct User {
    email: String,
    account_id: String,
    display_name: String,
}

/// The fake server; see the module documentation.
#[derive(Debug)]
pub struct FakeJira {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    /// `Basic …` as the client must send it.
    authorization: String,
    origin: String,
    board: Board<Records>,
}

#[derive(Debug, Default)]
struct Records {
    projects: HashMap<String, Project>,
    users: Vec<User>,
    hide_emails: bool,
    issues: Vec<JiraIssue>,
    requests: Vec<JiraRequest>,
    faults: VecDeque<Fault>,
    /// Faults for one method and path, taken before `faults`.
    targeted: Vec<(String, String, Fault)>,
    next_id: u64,
}

/// A status and a JSON body (`None`: no content).
type Answer = (u16, Option<Value>);

impl FakeJira {
    /// Start serving, accepting basic auth `email:api_token`.
    ///
    /// # Panics
    /// If no loopback port can be bound. Use [`FakeJira::try_start`] to handle that.
    pub async fn start(email: &str, api_token: &str) -> FakeJira {
        match FakeJira::try_start(email, api_token).await {
            Ok(fake) => fake,
            Err(err) => panic!("fake jira: cannot listen on 127.0.0.1: {err}"),
        }
    }

    pub async fn try_start(email: &str, api_token: &str) -> std::io::Result<FakeJira> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{email}:{api_token}"));
        let shared = Arc::new(Shared {
            authorization: format!("Basic {credentials}"),
            origin: format!("http://{addr}"),
            board: Board::new(Records {
                next_id: 10_000,
                ..Records::default()
            }),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(accept_loop(listener, router));
        Ok(FakeJira {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`, the site (Jira's is `https://your-domain.atlassian.net`).
    pub fn base_url(&self) -> String {
        self.shared.origin.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A project `key` with these issue types and [`Workflow::incident`].
    pub fn add_project(&self, key: &str, issue_types: &[&str]) {
        self.shared.board.update(|r| {
            r.projects.insert(
                key.to_owned(),
                Project {
                    issue_types: issue_types.iter().map(|s| (*s).to_owned()).collect(),
                    workflow: Workflow::incident(),
                    next_number: 1,
                },
            );
        });
    }

    /// Issues of `project_key` follow `workflow` from now on (existing ones keep their status).
    pub fn set_workflow(&self, project_key: &str, workflow: Workflow) {
        self.shared.board.update(|r| {
            if let Some(project) = r.projects.get_mut(project_key) {
                project.workflow = workflow;
            }
        });
    }

    /// A person user search finds by email (or name) prefix.
    pub fn add_user(&self, email: &str, account_id: &str, display_name: &str) {
        self.shared.board.update(|r| {
            r.users.push(User {
                email: email.to_owned(),
                account_id: account_id.to_owned(),
                display_name: display_name.to_owned(),
            });
        });
    }

    /// Answer user searches without `emailAddress`, as for people whose privacy settings hide
    /// it.
    pub fn hide_emails(&self, hide: bool) {
        self.shared.board.update(|r| r.hide_emails = hide);
    }

    /// Every issue, oldest first.
    pub fn issues(&self) -> Vec<JiraIssue> {
        self.shared.board.lock().issues.clone()
    }

    pub fn issue(&self, key: &str) -> Option<JiraIssue> {
        self.shared
            .board
            .lock()
            .issues
            .iter()
            .find(|i| i.key == key)
            .cloned()
    }

    /// Every request, oldest first.
    pub fn requests(&self) -> Vec<JiraRequest> {
        self.shared.board.lock().requests.clone()
    }

    /// The next `n` requests get `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.shared
            .board
            .update(|r| r.faults.extend(std::iter::repeat(fault).take(n)));
    }

    /// The next `n` requests of `method` to `path` (`/rest/api/3/issue`) get `fault`;
    /// other requests are answered as usual.
    pub fn fail_next_on(&self, method: &str, path: &str, n: usize, fault: Fault) {
        self.shared.board.update(|r| {
            r.targeted
                .extend(std::iter::repeat((method.to_owned(), path.to_owned(), fault)).take(n))
        });
    }

    pub fn clear_faults(&self) {
        self.shared.board.update(|r| {
            r.faults.clear();
            r.targeted.clear();
        });
    }

    /// Wait until at least `n` issues exist; returns them.
    pub async fn wait_for_issues(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<JiraIssue>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| (r.issues.len() >= n).then(|| r.issues.clone()))
            .await
    }

    /// Wait until issue `key` is in `status`; returns it.
    pub async fn wait_for_status(
        &self,
        key: &str,
        status: &str,
        timeout: Duration,
    ) -> Result<JiraIssue, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                r.issues
                    .iter()
                    .find(|i| i.key == key && i.status == status)
                    .cloned()
            })
            .await
    }

    /// Wait until issue `key` has at least `n` comments; returns them.
    pub async fn wait_for_comments(
        &self,
        key: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<JiraComment>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                r.issues
                    .iter()
                    .find(|i| i.key == key && i.comments.len() >= n)
                    .map(|i| i.comments.clone())
            })
            .await
    }

    /// Wait until at least `n` requests were received; returns them.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<JiraRequest>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                (r.requests.len() >= n).then(|| r.requests.clone())
            })
            .await
    }

    /// Stop serving and close every connection.
    pub async fn shutdown(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(hangup): Extension<Hangup>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let json_body = (!body.is_empty())
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten();
    let mut request = JiraRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        body: json_body.clone(),
        status: None,
    };
    let fault = shared.board.update(|r| {
        let aimed = r
            .targeted
            .iter()
            .position(|(m, p, _)| *m == request.method && *p == request.path);
        match aimed {
            Some(i) => Some(r.targeted.remove(i).2),
            None => r.faults.pop_front(),
        }
    });
    match &fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            request.status = Some(429);
            shared.board.update(|r| r.requests.push(request));
            let mut response = error_response(429, &["Rate limit exceeded."], Map::new());
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Some(Fault::Status(status)) => {
            request.status = Some(*status);
            shared.board.update(|r| r.requests.push(request));
            return error_response(*status, &["The service is unavailable."], Map::new());
        }
        _ => {}
    }

    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == shared.authorization);
    let (status, answer) = if !authorized {
        (
            401,
            Some(error_body(
                &["You are not authenticated. Authentication required to perform this operation."],
                Map::new(),
            )),
        )
    } else if !body.is_empty() && json_body.is_none() {
        (
            400,
            Some(error_body(
                &["Unexpected character in the request body: not JSON."],
                Map::new(),
            )),
        )
    } else {
        let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        let origin = shared.origin.clone();
        shared
            .board
            .update(|r| r.route(&origin, &method, &segments, &query, json_body.as_ref()))
    };
    request.status = match fault {
        Some(Fault::Hang | Fault::DropAfterAccept) => None,
        _ => Some(status),
    };
    shared.board.update(|r| r.requests.push(request));
    match fault {
        Some(Fault::Hang) => std::future::pending::<Response>().await,
        Some(Fault::DropAfterAccept) => hangup.now().await,
        _ => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match answer {
                Some(body) => (code, Json(body)).into_response(),
                None => code.into_response(),
            }
        }
    }
}

impl Records {
    fn route(
        &mut self,
        origin: &str,
        method: &Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Answer {
        let null = Value::Null;
        let body = body.unwrap_or(&null);
        match (method.as_str(), segments) {
            ("GET", ["rest", "api", "3", "user", "search"]) => self.search_users(origin, query),
            ("POST", ["rest", "api", "3", "issue"]) => self.create_issue(origin, body),
            ("POST", ["rest", "api", "3", "search"]) => self.search_issues(origin, body),
            ("GET", ["rest", "api", "3", "issue", key]) => self.get_issue(origin, key),
            ("GET", ["rest", "api", "3", "issue", key, "transitions"]) => {
                self.get_transitions(origin, key)
            }
            ("POST", ["rest", "api", "3", "issue", key, "transitions"]) => {
                self.do_transition(key, body)
            }
            ("POST", ["rest", "api", "3", "issue", key, "comment"]) => {
                self.add_comment(origin, key, body)
            }
            (_, ["rest", "api", "3", "user", "search"] | ["rest", "api", "3", "issue", ..]) => {
                (405, Some(error_body(&["Method not allowed."], Map::new())))
            }
            _ => (
                404,
                Some(error_body(&["No resource found at this path."], Map::new())),
            ),
        }
    }

    fn search_users(&self, origin: &str, query: &[(String, String)]) -> Answer {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_lowercase())
        };
        let Some(wanted) = get("query").filter(|q| !q.is_empty()) else {
            return (
                400,
                Some(error_body(
                    &["One of 'accountId', 'query' or 'property' is required."],
                    Map::new(),
                )),
            );
        };
        let max = get("maxResults")
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(50);
        let found: Vec<Value> = self
            .users
            .iter()
            .filter(|u| {
                u.email.to_lowercase().starts_with(&wanted)
                    || u.display_name
                        .to_lowercase()
                        .split_whitespace()
                        .any(|w| w.starts_with(&wanted))
            })
            .take(max)
            .map(|u| {
                let mut user = json!({
                    "self": format!("{origin}/rest/api/3/user?accountId={}", u.account_id),
                    "accountId": u.account_id,
                    "accountType": "atlassian",
                    "displayName": u.display_name,
                    "active": true,
                    "timeZone": "Europe/London",
                    "locale": "en_GB",
                });
                if !self.hide_emails {
                    if let Some(user) = user.as_object_mut() {
                        user.insert("emailAddress".to_owned(), Value::from(u.email.clone()));
                    }
                }
                user
            })
            .collect();
        (200, Some(Value::Array(found)))
    }

    /// `POST /rest/api/3/search`: JQL limited to clauses `project = KEY` and
    /// `labels = NAME` joined by `AND` (values bare or double-quoted); any
    /// other query is refused as Jira refuses a malformed one.
    fn search_issues(&self, origin: &str, body: &Value) -> Answer {
        let Some(jql) = body.get("jql").and_then(Value::as_str) else {
            return (
                400,
                Some(error_body(
                    &["The JQL query is required: `jql`."],
                    Map::new(),
                )),
            );
        };
        let mut project = None;
        let mut labels = Vec::new();
        for clause in jql.split(" AND ") {
            let Some((field, value)) = clause.split_once('=') else {
                return bad_jql(jql);
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() || value.contains(char::is_whitespace) {
                return bad_jql(jql);
            }
            match field.trim() {
                "project" => {
                    if !self.projects.contains_key(value) {
                        return (
                            400,
                            Some(error_body(
                                &[&format!(
                                    "The value '{value}' does not exist for the field 'project'."
                                )],
                                Map::new(),
                            )),
                        );
                    }
                    project = Some(value.to_owned());
                }
                "labels" => labels.push(value.to_owned()),
                _ => return bad_jql(jql),
            }
        }
        let start = body.get("startAt").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = body
            .get("maxResults")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .min(100) as usize;
        let found: Vec<&JiraIssue> = self
            .issues
            .iter()
            .filter(|i| project.as_ref().map_or(true, |p| *p == i.project))
            .filter(|i| labels.iter().all(|l| i.labels.contains(l)))
            .collect();
        let issues: Vec<Value> = found
            .iter()
            .skip(start)
            .take(max)
            .map(|i| {
                json!({
                    "id": i.id,
                    "key": i.key,
                    "self": format!("{origin}/rest/api/3/issue/{}", i.id),
                    "fields": {
                        "summary": i.summary,
                        "status": { "name": i.status, "id": status_id(&i.status) },
                    },
                })
            })
            .collect();
        (
            200,
            Some(json!({
                "expand": "schema,names",
                "startAt": start,
                "maxResults": max,
                "total": found.len(),
                "issues": issues,
            })),
        )
    }

    fn create_issue(&mut self, origin: &str, body: &Value) -> Answer {
        let Some(fields) = body.get("fields").and_then(Value::as_object) else {
            return (
                400,
                Some(error_body(
                    &["Issue fields are required: `fields`."],
                    Map::new(),
                )),
            );
        };
        let mut errors = Map::new();
        let mut fail = |field: &str, message: String| {
            errors.insert(field.to_owned(), Value::from(message));
        };
        for name in fields.keys() {
            if !matches!(
                name.as_str(),
                "project"
                    | "issuetype"
                    | "summary"
                    | "description"
                    | "assignee"
                    | "labels"
                    | "priority"
            ) {
                fail(
                    name,
                    format!("Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."),
                );
            }
        }
        let project_key = fields
            .get("project")
            .and_then(|p| p.get("key").or_else(|| p.get("id")))
            .and_then(Value::as_str)
            .filter(|k| self.projects.contains_key(*k))
            .map(str::to_owned);
        if project_key.is_none() {
            fail("project", "Specify a valid project ID or key".to_owned());
        }
        let issue_type = fields
            .get("issuetype")
            .and_then(|t| t.get("name").or_else(|| t.get("id")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (&issue_type, &project_key) {
            (None, _) => fail("issuetype", "Specify an issue type".to_owned()),
            (Some(name), Some(project))
                if !self.projects[project].issue_types.iter().any(|t| t == name) =>
            {
                fail("issuetype", "Specify a valid issue type".to_owned());
            }
            _ => {}
        }
        let summary = fields.get("summary").and_then(Value::as_str).unwrap_or("");
        if summary.trim().is_empty() {
            fail(
                "summary",
                "You must specify a summary of the issue.".to_owned(),
            );
        } else if summary.chars().count() > MAX_SUMMARY {
            fail(
                "summary",
                "Summary must be less than 255 characters.".to_owned(),
            );
        } else if summary.contains(['\n', '\r']) {
            fail(
                "summary",
                "The summary is invalid because it contains newline characters.".to_owned(),
            );
        }
        let description = fields.get("description").filter(|d| !d.is_null());
        if let Some(description) = description {
            if let Err(problem) = check_adf(description) {
                fail(
                    "description",
                    format!("Operation value must be an Atlassian Document (see the Atlassian Document Format): {problem}"),
                );
            }
        }
        let assignee = match fields.get("assignee") {
            None | Some(Value::Null) => None,
            Some(a) => match a.get("accountId").and_then(Value::as_str) {
                Some(id) if self.users.iter().any(|u| u.account_id == id) => Some(id.to_owned()),
                _ => {
                    fail(
                        "assignee",
                        "Specified user does not exist or you do not have required permissions"
                            .to_owned(),
                    );
                    None
                }
            },
        };
        let mut labels = Vec::new();
        match fields.get("labels") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(label) if label.contains(char::is_whitespace) => fail(
                            "labels",
                            format!("The label '{label}' contains spaces which is invalid."),
                        ),
                        Some(label) if !label.is_empty() => labels.push(label.to_owned()),
                        _ => fail("labels", "Labels must be non-empty strings.".to_owned()),
                    }
                }
            }
            Some(_) => fail("labels", "Labels must be an array of strings.".to_owned()),
        }
        let (Some(project_key), Some(issue_type), true) =
            (project_key, issue_type, errors.is_empty())
        else {
            return (400, Some(error_body(&[], errors)));
        };
        let Some(project) = self.projects.get_mut(&project_key) else {
            return (400, Some(error_body(&[], errors)));
        };
        let key = format!("{project_key}-{}", project.next_number);
        project.next_number += 1;
        let status = project.workflow.initial.clone();
        let id = self.next_id();
        self.issues.push(JiraIssue {
            id: id.clone(),
            key: key.clone(),
            project: project_key,
            issue_type,
            summary: summary.to_owned(),
            description: description.cloned(),
            assignee,
            labels,
            status,
            transitions: Vec::new(),
            comments: Vec::new(),
        });
        (
            201,
            Some(
                json!({ "id": id, "key": key, "self": format!("{origin}/rest/api/3/issue/{id}") }),
            ),
        )
    }

    fn get_issue(&self, origin: &str, key: &str) -> Answer {
        let Some(issue) = self.find(key) else {
            return not_found();
        };
        (
            200,
            Some(json!({
                "id": issue.id,
                "key": issue.key,
                "self": format!("{origin}/rest/api/3/issue/{}", issue.id),
                "fields": {
                    "summary": issue.summary,
                    "status": { "name": issue.status, "id": status_id(&issue.status) },
                    "issuetype": { "name": issue.issue_type },
                    "project": { "key": issue.project },
                    "assignee": issue.assignee.as_ref().map(|a| json!({ "accountId": a })),
                    "labels": issue.labels,
                },
            })),
        )
    }

    fn get_transitions(&self, origin: &str, key: &str) -> Answer {
        let Some(issue) = self.find(key) else {
            return not_found();
        };
        let Some(project) = self.projects.get(&issue.project) else {
            return not_found();
        };
        let transitions: Vec<Value> = project
            .workflow
            .available(&issue.status)
            .into_iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "name": t.name,
                    "to": {
                        "self": format!("{origin}/rest/api/3/status/{}", status_id(&t.to)),
                        "name": t.to,
                        "id": status_id(&t.to),
                    },
                    "hasScreen": false,
                    "isGlobal": t.from.is_empty(),
                    "isInitial": false,
                    "isAvailable": true,
                    "isConditional": false,
                })
            })
            .collect();
        (
            200,
            Some(json!({ "expand": "transitions", "transitions": transitions })),
        )
    }

    fn do_transition(&mut self, key: &str, body: &Value) -> Answer {
        let Some(index) = self.position(key) else {
            return not_found();
        };
        let Some(id) = body["transition"]["id"].as_str().map(str::to_owned) else {
            return (
                400,
                Some(error_body(
                    &["Can not transition an issue without a 'transition' id."],
                    Map::new(),
                )),
            );
        };
        let issue = &self.issues[index];
        let chosen = self.projects.get(&issue.project).and_then(|p| {
            p.workflow
                .available(&issue.status)
                .into_iter()
                .find(|t| t.id == id)
                .cloned()
        });
        let Some(transition) = chosen else {
            return (
                400,
                Some(error_body(
                    &[&format!(
                        "Transition id '{id}' is not valid for this issue."
                    )],
                    Map::new(),
                )),
            );
        };
        let issue = &mut self.issues[index];
        issue.status = transition.to;
        issue.transitions.push(transition.name);
        (204, None)
    }

    fn add_comment(&mut self, origin: &str, key: &str, body: &Value) -> Answer {
        let Some(index) = self.position(key) else {
            return not_found();
        };
        let Some(document) = body.get("body") else {
            let mut errors = Map::new();
            errors.insert(
                "comment".to_owned(),
                Value::from("Comment body can not be empty!"),
            );
            return (400, Some(error_body(&[], errors)));
        };
        if let Err(problem) = check_adf(document) {
            let mut errors = Map::new();
            errors.insert(
                "comment".to_owned(),
                Value::from(format!(
                    "Comment body is not a valid Atlassian Document: {problem}"
                )),
            );
            return (400, Some(error_body(&[], errors)));
        }
        let id = self.next_id();
        let issue = &mut self.issues[index];
        issue.comments.push(JiraComment {
            id: id.clone(),
            body: document.clone(),
        });
        (
            201,
            Some(json!({
                "self": format!("{origin}/rest/api/3/issue/{}/comment/{id}", issue.id),
                "id": id,
                "body": document,
                "created": "2024-01-01T00:00:00.000+0000",
                "updated": "2024-01-01T00:00:00.000+0000",
                "jsdPublic": true,
            })),
        )
    }

    fn find(&self, key: &str) -> Option<&JiraIssue> {
        self.position(key).map(|i| &self.issues[i])
    }

    fn position(&self, key_or_id: &str) -> Option<usize> {
        self.issues
            .iter()
            .position(|i| i.key == key_or_id || i.id == key_or_id)
    }

    fn next_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }
}

/// A stable numeric id for a status name.
fn status_id(name: &str) -> String {
    let sum: u32 = name.bytes().map(u32::from).sum();
    (10_000 + sum).to_string()
}

fn not_found() -> Answer {
    (
        404,
        Some(error_body(
            &["Issue does not exist or you do not have permission to see it."],
            Map::new(),
        )),
    )
}

fn error_body(messages: &[&str], errors: Map<String, Value>) -> Value {
    json!({ "errorMessages": messages, "errors": errors })
}

fn error_response(status: u16, messages: &[&str], errors: Map<String, Value>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(error_body(messages, errors))).into_response()
}

/// Block nodes of ADF, which may stand at the top of a document.
const BLOCK_NODES: &[&str] = &[
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "codeBlock",
    "blockquote",
    "rule",
    "panel",
    "table",
    "mediaSingle",
];
/// Inline nodes, inside paragraphs and headings.
const INLINE_NODES: &[&str] = &[
    "text",
    "hardBreak",
    "mention",
    "emoji",
    "inlineCard",
    "date",
    "status",
];
const MARKS: &[&str] = &[
    "strong",
    "em",
    "code",
    "strike",
    "underline",
    "link",
    "textColor",
    "subsup",
];

/// Whether `doc` is an ADF document Jira takes: `{"type": "doc", "version": 1, "content":
/// [...]}` with block nodes at the top, inline nodes in paragraphs and headings, list items in
/// lists, and no `text` node without text. The problem and where, if not.
pub fn check_adf(doc: &Value) -> Result<(), String> {
    if doc.get("type").and_then(Value::as_str) != Some("doc") {
        return Err("the root must have type \"doc\"".to_owned());
    }
    if doc.get("version").and_then(Value::as_u64) != Some(1) {
        return Err("the root must have version 1".to_owned());
    }
    let Some(content) = doc.get("content").and_then(Value::as_array) else {
        return Err("the root must have a content array".to_owned());
    };
    for (i, node) in content.iter().enumerate() {
        check_node(node, BLOCK_NODES, &format!("/content/{i}"))?;
    }
    Ok(())
}

fn check_node(node: &Value, allowed: &[&str], at: &str) -> Result<(), String> {
    let Some(kind) = node.get("type").and_then(Value::as_str) else {
        return Err(format!("a node without type at {at}"));
    };
    if !allowed.contains(&kind) {
        return Err(format!("a {kind:?} node is not allowed at {at}"));
    }
    let children = node.get("content");
    let check_children = |allowed: &[&str], at_least_one: bool| -> Result<(), String> {
        let items = match children {
            None if !at_least_one => return Ok(()),
            Some(Value::Array(items)) => items,
            _ => return Err(format!("{kind} at {at} needs a content array")),
        };
        if at_least_one && items.is_empty() {
            return Err(format!("{kind} at {at} needs at least one child"));
        }
        for (i, child) in items.iter().enumerate() {
            check_node(child, allowed, &format!("{at}/content/{i}"))?;
        }
        Ok(())
    };
    match kind {
        "text" => {
            match node.get("text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => {}
                _ => return Err(format!("an empty text node at {at}")),
            }
            if children.is_some() {
                return Err(format!("a text node with content at {at}"));
            }
            if let Some(marks) = node.get("marks") {
                let Some(marks) = marks.as_array() else {
                    return Err(format!("marks must be an array at {at}"));
                };
                for mark in marks {
                    let kind = mark.get("type").and_then(Value::as_str).unwrap_or("");
                    if !MARKS.contains(&kind) {
                        return Err(format!("an unknown mark {kind:?} at {at}"));
                    }
                    if kind == "link" && mark["attrs"]["href"].as_str().is_none() {
                        return Err(format!("a link without href at {at}"));
                    }
                }
            }
            Ok(())
        }
        "paragraph" => check_children(INLINE_NODES, false),
        "heading" => {
            if !node["attrs"]["level"]
                .as_u64()
                .is_some_and(|l| (1..=6).contains(&l))
            {
                return Err(format!("a heading needs attrs.level 1 to 6 at {at}"));
            }
            check_children(INLINE_NODES, false)
        }
        "bulletList" | "orderedList" => check_children(&["listItem"], true),
        "listItem" => check_children(
            &["paragraph", "bulletList", "orderedList", "codeBlock"],
            true,
        ),
        "blockquote" => check_children(
            &["paragraph", "bulletList", "orderedList", "codeBlock"],
            true,
        ),
        "codeBlock" => check_children(&["text"], false),
        _ => Ok(()),
    }
}

fn bad_jql(jql: &str) -> Answer {
    (
        400,
        Some(error_body(
            &[&format!(
                "Error in the JQL Query: this test server understands only `project = KEY` and \
                 `labels = NAME` joined by AND, not {jql:?}."
            )],
            Map::new(),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_checks() {
        let ok = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "x", "marks": [{"type": "link", "attrs": {"href": "https://x"}}]}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [{"type": "paragraph", "content": []}]}]},
            {"type": "paragraph"},
        ]});
        assert_eq!(check_adf(&ok), Ok(()));
        let cases = [
            (json!("text"), "the root must have type \"doc\""),
            (
                json!({"type": "doc", "version": 2, "content": []}),
                "the root must have version 1",
            ),
            (
                json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}),
                "an empty text node at /content/0/content/0",
            ),
            (
                json!({"type": "doc", "version": 1, "content": [{"type": "text", "text": "x"}]}),
                "a \"text\" node is not allowed at /content/0",
            ),
            (
                json!({"type": "doc", "version": 1, "content": [{"type": "bulletList", "content": []}]}),
                "bulletList at /content/0 needs at least one child",
            ),
        ];
        for (doc, problem) in cases {
            assert_eq!(check_adf(&doc), Err(problem.to_owned()));
        }
    }

    #[test]
    fn the_incident_workflow() {
        let workflow = Workflow::incident();
        let names = |status: &str| -> Vec<String> {
            workflow
                .available(status)
                .into_iter()
                .map(|t| t.name.clone())
                .collect()
        };
        assert_eq!(names("To Do"), ["Mitigate", "Duplicate"]);
        assert_eq!(names("Mitigated"), ["Complete RCA", "Duplicate"]);
        assert_eq!(names("RCA Completed"), ["Duplicate"]);
        assert!(names("Duplicate").is_empty());
    }
}
