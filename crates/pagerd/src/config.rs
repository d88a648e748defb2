//! Node configuration: built-in defaults → TOML file (`--config`; a named file
//! that is missing is an error) → `PAGERD_*` environment (`__` for nesting).
//! Raw config is validated into [`NodeConfig`]; each crate gets its own typed
//! section. Secrets come as a value or a `_file`, never both, and never reach
//! logs (`Secret`'s Debug redacts).

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use pager_notify::{NotifySettings, Secret, SmtpSettings, SmtpTls, TwilioSettings};
use pager_raft::RaftTimings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub node_id: u64,
    pub region: String,
    pub data_dir: PathBuf,
    pub listen: RawListen,
    /// Addresses other nodes and clients use to reach this one (default: listen).
    #[serde(default)]
    pub advertise: RawAdvertise,
    pub cluster: RawCluster,
    pub raft: RaftTimings,
    #[serde(default)]
    pub twilio: Option<RawTwilio>,
    #[serde(default)]
    pub smtp: Option<RawSmtp>,
    /// Slack: incident messages in channels, direct messages, buttons and slash commands.
    #[serde(default)]
    pub slack: Option<RawSlack>,
    /// Jira: a ticket for each high-urgency incident of a service with `jira`.
    #[serde(default)]
    pub jira: Option<RawJira>,
    /// Webhooks: the signing secret of each subscription of the on-call document.
    #[serde(default)]
    pub webhooks: Option<RawWebhooks>,
    pub console: RawConsole,
    pub dispatch: RawDispatch,
    #[serde(default)]
    pub auth: RawAuth,
    /// TLS on the client port (the public gRPC API). Absent: plaintext.
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub monitor: RawMonitor,
    #[serde(default)]
    pub retention: RawRetention,
    pub log: RawLog,
}

/// How long resolved incidents are kept in the replicated state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Incidents resolved longer ago than this are forgotten, with their
    /// deliveries (0: kept forever; memory and snapshots then grow without
    /// bound). Default 90 days.
    #[serde(default = "default_keep_resolved")]
    pub keep_resolved_secs: u64,
    /// How often the leader looks for incidents to forget.
    #[serde(default = "default_retention_check")]
    pub check_every_secs: u64,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            keep_resolved_secs: default_keep_resolved(),
            check_every_secs: default_retention_check(),
        }
    }
}

fn default_keep_resolved() -> u64 {
    90 * 24 * 3600
}

fn default_retention_check() -> u64 {
    3600
}

/// Watching the pager itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    /// Dead man's switch: while it holds a quorum, the leader requests this
    /// URL (GET) every `deadman_interval_secs`; an outside service (e.g.
    /// healthchecks.io, Cronitor, a PagerDuty heartbeat) alerts when the pings
    /// stop. The URL usually carries a token: it is never logged.
    pub deadman_url: Option<String>,
    pub deadman_url_file: Option<PathBuf>,
    #[serde(default = "default_deadman_interval")]
    pub deadman_interval_secs: u64,
    /// A node cut off from a quorum for this long notifies `admins` itself,
    /// through its own channels (0: never).
    #[serde(default = "default_isolation_after")]
    pub isolation_alert_after_secs: u64,
    /// At most one such notification per node in this long.
    #[serde(default = "default_isolation_every")]
    pub isolation_alert_every_secs: u64,
    /// Who hears about the pager's own trouble: `{ type = "sms" | "voice" |
    /// "email", address = "..." }`.
    #[serde(default)]
    pub admins: Vec<RawAdmin>,
}

impl Default for RawMonitor {
    fn default() -> Self {
        RawMonitor {
            deadman_url: None,
            deadman_url_file: None,
            deadman_interval_secs: default_deadman_interval(),
            isolation_alert_after_secs: default_isolation_after(),
            isolation_alert_every_secs: default_isolation_every(),
            admins: Vec::new(),
        }
    }
}

fn default_deadman_interval() -> u64 {
    60
}

fn default_isolation_after() -> u64 {
    120
}

fn default_isolation_every() -> u64 {
    3600
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

/// Validated [`RawMonitor`].
#[derive(Debug, Clone, Default)]
pub struct MonitorSettings {
    pub deadman_url: Option<Secret>,
    pub deadman_interval: Duration,
    /// Zero: isolation is never notified.
    pub isolation_alert_after: Duration,
    pub isolation_alert_every: Duration,
    pub admins: Vec<(pager_notify::Method, String)>,
}

/// `[tls]`: the client port's certificate. Both files are re-read every
/// `reload_interval_ms` and on SIGHUP; a changed, valid pair is used by new
/// connections, a bad one is logged and the previous pair kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain, leaf first, with SANs for the names clients dial.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// How often the files are checked for a change; 0: only on SIGHUP.
    #[serde(default = "default_tls_reload_interval_ms")]
    pub reload_interval_ms: u64,
}

/// `[cluster.tls]`: mutual TLS on the peer port with a cluster CA. The node
/// serves `cert_file` and presents it when it dials a peer; either way the
/// other side's certificate must be signed by `ca_file`. Reloaded as `[tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterTls {
    /// PEM certificate(s) of the cluster CA.
    pub ca_file: Option<PathBuf>,
    /// This node's PEM certificate chain, signed by the cluster CA, with a SAN
    /// for the host of its peer address (an IP SAN for `10.0.0.1:8701`), and
    /// usable for both server and client authentication.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub key_file: Option<PathBuf>,
    /// How often the files are checked for a change; 0: only on SIGHUP.
    #[serde(default = "default_tls_reload_interval_ms")]
    pub reload_interval_ms: u64,
}

fn default_tls_reload_interval_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Require `authorization: Bearer <token>` on the gRPC API (Events
    /// excepted: an integration key is its own credential).
    #[serde(default)]
    pub enabled: bool,
    /// An admin token accepted by this node without being in the replicated
    /// state: create the real tokens with it, then keep it secret or drop it.
    pub bootstrap_admin_token: Option<String>,
    pub bootstrap_admin_token_file: Option<PathBuf>,
    /// Console sign-in with an OpenID Connect provider.
    #[serde(default)]
    pub oidc: Option<RawOidc>,
}

/// `[auth.oidc]`: console sign-in through an identity provider
/// (authorization code flow with PKCE). A user signs in as the user of the
/// on-call document the ID token names: by `email` (matched against users'
/// `email` or email contact methods) or by a claim holding the stable name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// The provider's issuer URL (its discovery document is
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// The ID-token claim that names the user: `email` (the default), or
    /// another claim (`preferred_username`, `sub`) holding the stable name.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// The sign-in button's words (default "Sign in with single sign-on").
    #[serde(default)]
    pub label: Option<String>,
    /// Scopes asked for (default "openid email profile").
    #[serde(default)]
    pub scopes: Option<String>,
}

/// `[auth.oidc]`, checked.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub user_claim: String,
    pub label: String,
    pub scopes: String,
}

impl RawOidc {
    fn validate(self) -> Result<OidcSettings, ConfigError> {
        let issuer = base_url("auth.oidc.issuer", &self.issuer)?;
        if self.client_id.trim().is_empty() {
            return Err(invalid("auth.oidc.client_id", "required"));
        }
        let client_secret = secret(
            "auth.oidc.client_secret",
            self.client_secret,
            self.client_secret_file,
        )?;
        Ok(OidcSettings {
            issuer,
            client_id: self.client_id,
            client_secret,
            user_claim: self.user_claim.unwrap_or_else(|| "email".into()),
            label: self
                .label
                .unwrap_or_else(|| "Sign in with single sign-on".into()),
            scopes: self.scopes.unwrap_or_else(|| "openid email profile".into()),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// Public gRPC API (alert sources, pagerctl).
    pub client: String,
    /// Raft and write forwarding between nodes; peers only.
    pub peer: String,
    /// HTTP: health, readiness, metrics.
    pub http: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdvertise {
    pub client: Option<String>,
    pub peer: Option<String>,
    /// The public base URL of this node's HTTP port as Twilio and browsers
    /// reach it (`https://pagerd-us-east.example.com`); it goes into call
    /// URLs, status callbacks and email links, and webhook signatures are
    /// checked against it. Default: `http://` + `listen.http`.
    pub http: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// On first start (empty log), initialise the cluster with `members`
    /// (or this node alone when `members` is empty).
    pub bootstrap: bool,
    #[serde(default)]
    pub members: Vec<RawMember>,
    /// Shared secret every node sends on, and demands of, the peer port
    /// (the same on every member). Unset: the peer port trusts its network.
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Regions the leader should be in when a voter there is healthy (e.g.
    /// the region nearest the Twilio edge in use). A leader elsewhere hands
    /// leadership to a caught-up voter in the first such region; empty: no
    /// preference.
    #[serde(default)]
    pub preferred_regions: Vec<String>,
    /// Mutual TLS between peers (in addition to `secret`). Absent: plaintext.
    #[serde(default)]
    pub tls: Option<RawClusterTls>,
    /// Bind outgoing peer connections (Raft and write forwarding) to this
    /// local IP address, for multi-homed hosts and firewalls keyed on peer
    /// source addresses. Unset: the OS picks the source by its routes.
    #[serde(default)]
    pub peer_source_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    pub id: u64,
    pub peer: String,
    pub client: String,
    #[serde(default)]
    pub region: String,
    /// The member's public HTTP base URL (its `advertise.http`): a call's
    /// `FallbackUrl` points at another member.
    #[serde(default)]
    pub http: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTwilio {
    #[serde(default = "default_twilio_url")]
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Option<String>,
    pub auth_token_file: Option<PathBuf>,
    /// The token being rotated out: webhooks signed with it are accepted too.
    pub previous_auth_token: Option<String>,
    pub previous_auth_token_file: Option<PathBuf>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    #[serde(default = "default_provider_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlack {
    /// The Web API root (`https://slack.com/api`); a test points it at its fake.
    #[serde(default = "default_slack_url")]
    pub base_url: String,
    /// The app's bot token (`xoxb-…`): scopes `chat:write`, `users:read.email`,
    /// `channels:history`, `groups:history`, `im:history`, `im:write`.
    pub bot_token: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    /// The app's signing secret: requests from Slack (buttons, slash commands) are checked
    /// with it.
    pub signing_secret: Option<String>,
    pub signing_secret_file: Option<PathBuf>,
    #[serde(default = "default_provider_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[slack]`, checked.
#[derive(Clone)]
pub struct SlackSettings {
    pub base_url: String,
    pub bot_token: Secret,
    pub signing_secret: Secret,
    pub timeout: Duration,
}

impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RawSlack {
    fn validate(self) -> Result<SlackSettings, ConfigError> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(invalid("slack.base_url", "must be an http(s) URL"));
        }
        let bot_token = secret("slack.bot_token", self.bot_token, self.bot_token_file)?
            .filter(|t| !t.expose().trim().is_empty())
            .ok_or_else(|| invalid("slack.bot_token", "required (or slack.bot_token_file)"))?;
        let signing_secret = secret(
            "slack.signing_secret",
            self.signing_secret,
            self.signing_secret_file,
        )?
        .filter(|t| !t.expose().trim().is_empty())
        .ok_or_else(|| {
            invalid(
                "slack.signing_secret",
                "required (or slack.signing_secret_file)",
            )
        })?;
        if self.timeout_ms == 0 {
            return Err(invalid("slack.timeout_ms", "must be more than 0"));
        }
        Ok(SlackSettings {
            base_url: self.base_url,
            bot_token,
            signing_secret,
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJira {
    /// The site, `https://your-domain.atlassian.net`.
    pub base_url: String,
    /// The account pagerd acts as (basic auth with its API token).
    pub email: String,
    pub api_token: Option<String>,
    pub api_token_file: Option<PathBuf>,
    #[serde(default = "default_provider_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[jira]`, checked.
#[derive(Clone)]
pub struct JiraSettings {
    pub base_url: String,
    pub email: String,
    pub api_token: Secret,
    pub timeout: Duration,
}

impl std::fmt::Debug for JiraSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraSettings")
            .field("base_url", &self.base_url)
            .field("email", &pager_notify::mask::email(&self.email))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RawJira {
    fn validate(self) -> Result<JiraSettings, ConfigError> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(invalid("jira.base_url", "must be an http(s) URL"));
        }
        if !self.email.contains('@') {
            return Err(invalid(
                "jira.email",
                "must be the email address of the account pagerd acts as",
            ));
        }
        let api_token = secret("jira.api_token", self.api_token, self.api_token_file)?
            .filter(|t| !t.expose().trim().is_empty())
            .ok_or_else(|| invalid("jira.api_token", "required (or jira.api_token_file)"))?;
        if self.timeout_ms == 0 {
            return Err(invalid("jira.timeout_ms", "must be more than 0"));
        }
        Ok(JiraSettings {
            base_url: self.base_url.trim_end_matches('/').to_string(),
            email: self.email,
            api_token,
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    /// Signing secret (`whsec_` and base64) by subscription name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Or the file holding it, by subscription name.
    #[serde(default)]
    pub secret_files: BTreeMap<String, PathBuf>,
    #[serde(default = "default_provider_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for RawWebhooks {
    fn default() -> Self {
        RawWebhooks {
            secrets: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            timeout_ms: default_provider_timeout_ms(),
        }
    }
}

/// `[webhooks]`, checked.
#[derive(Clone)]
pub struct WebhookSettings {
    pub secrets: BTreeMap<String, pager_outbound::webhook::WebhookSecret>,
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("subscriptions", &self.secrets.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RawWebhooks {
    fn validate(self) -> Result<WebhookSettings, ConfigError> {
        let mut secrets = BTreeMap::new();
        let names: std::collections::BTreeSet<&String> = self
            .secrets
            .keys()
            .chain(self.secret_files.keys())
            .collect();
        for name in names {
            let key = format!("webhooks.secrets.{name}");
            let value = secret(
                &key,
                self.secrets.get(name).cloned(),
                self.secret_files.get(name).cloned(),
            )?
            .ok_or_else(|| invalid(&key, "required"))?;
            let parsed = pager_outbound::webhook::WebhookSecret::parse(value.expose())
                .map_err(|e| invalid(&key, e.to_string()))?;
            secrets.insert(name.clone(), parsed);
        }
        if self.timeout_ms == 0 {
            return Err(invalid("webhooks.timeout_ms", "must be more than 0"));
        }
        Ok(WebhookSettings {
            secrets,
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

fn default_slack_url() -> String {
    "https://slack.com/api".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// "none", "starttls" or "tls".
    #[serde(default = "default_smtp_tls")]
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    #[serde(default = "default_provider_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    /// Print pages to stdout for channels with no provider configured.
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDispatch {
    /// Sends in flight at once from the leader.
    pub concurrency: usize,
    /// A client write that cannot commit within this bound fails with Unavailable.
    pub write_timeout_ms: u64,
    /// Account-wide voice calls started per second (Twilio's default CPS is 1).
    #[serde(default = "default_calls_per_second")]
    pub calls_per_second: f64,
    /// Account-wide SMS per second; 0: no pacing (Twilio queues messages).
    #[serde(default)]
    pub messages_per_second: f64,
    /// Per recipient (one phone number or address): at most `recipient_burst`
    /// pages per `recipient_window_ms`; more wait for the window.
    #[serde(default = "default_recipient_burst")]
    pub recipient_burst: u32,
    #[serde(default = "default_recipient_window_ms")]
    pub recipient_window_ms: u64,
    /// The per-recipient throttle never delays a high-urgency page longer.
    #[serde(default = "default_high_urgency_max_delay_ms")]
    pub high_urgency_max_delay_ms: u64,
    /// Before re-sending a delivery an earlier leader left in doubt, wait
    /// this long (its request may still be reaching Twilio), then look for it.
    #[serde(default = "default_reconcile_grace_ms")]
    pub reconcile_grace_ms: u64,
    /// Seconds a called phone rings before the call counts as unanswered.
    #[serde(default = "default_call_timeout_secs")]
    pub call_timeout_secs: u32,
    /// Ask Twilio to tell people from voicemail (a machine never counts as reached).
    #[serde(default = "default_true")]
    pub machine_detection: bool,
    /// Email acknowledge / resolve links expire after this long.
    #[serde(default = "default_link_ttl_hours")]
    pub link_ttl_hours: u64,
    /// Events a second each node takes per integration key (0: no limit);
    /// more get RESOURCE_EXHAUSTED / HTTP 429 with Retry-After.
    #[serde(default = "default_events_per_second_per_key")]
    pub events_per_second_per_key: f64,
    /// Events a key may send at once above the rate.
    #[serde(default = "default_events_burst_per_key")]
    pub events_burst_per_key: u32,
}

fn default_events_per_second_per_key() -> f64 {
    200.0
}
fn default_events_burst_per_key() -> u32 {
    1000
}

fn default_calls_per_second() -> f64 {
    1.0
}
fn default_recipient_burst() -> u32 {
    10
}
fn default_recipient_window_ms() -> u64 {
    60_000
}
fn default_high_urgency_max_delay_ms() -> u64 {
    5_000
}
fn default_reconcile_grace_ms() -> u64 {
    1_000
}
fn default_call_timeout_secs() -> u32 {
    30
}
fn default_true() -> bool {
    true
}
fn default_link_ttl_hours() -> u64 {
    24
}

/// How the leader paces and reconciles sends.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub calls_per_second: f64,
    pub messages_per_second: f64,
    pub recipient_burst: u32,
    pub recipient_window: Duration,
    pub high_urgency_max_delay: Duration,
    pub reconcile_grace: Duration,
    pub call_timeout_secs: u32,
    pub machine_detection: bool,
    pub link_ttl: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// "text" or "json".
    pub format: String,
    /// tracing-subscriber filter, e.g. "info,openraft=warn".
    pub filter: String,
}

fn default_twilio_url() -> String {
    "https://api.twilio.com".into()
}
fn default_provider_timeout_ms() -> u64 {
    10_000
}
fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> String {
    "starttls".into()
}

impl Default for RawConfig {
    /// The embedded default: a single-node cluster under `./data` that prints pages.
    fn default() -> Self {
        RawConfig {
            node_id: 1,
            region: "local".into(),
            data_dir: PathBuf::from("./data"),
            listen: RawListen {
                client: "127.0.0.1:8700".into(),
                peer: "127.0.0.1:8701".into(),
                http: "127.0.0.1:8702".into(),
            },
            advertise: RawAdvertise::default(),
            cluster: RawCluster {
                bootstrap: true,
                members: vec![],
                secret: None,
                secret_file: None,
                preferred_regions: vec![],
                tls: None,
                peer_source_ip: None,
            },
            raft: RaftTimings::default(),
            twilio: None,
            smtp: None,
            slack: None,
            jira: None,
            webhooks: None,
            console: RawConsole { enabled: true },
            auth: RawAuth::default(),
            tls: None,
            monitor: RawMonitor::default(),
            retention: RawRetention::default(),
            dispatch: RawDispatch {
                concurrency: 64,
                write_timeout_ms: 5_000,
                calls_per_second: default_calls_per_second(),
                messages_per_second: 0.0,
                recipient_burst: default_recipient_burst(),
                recipient_window_ms: default_recipient_window_ms(),
                high_urgency_max_delay_ms: default_high_urgency_max_delay_ms(),
                reconcile_grace_ms: default_reconcile_grace_ms(),
                call_timeout_secs: default_call_timeout_secs(),
                machine_detection: true,
                link_ttl_hours: default_link_ttl_hours(),
                events_per_second_per_key: default_events_per_second_per_key(),
                events_burst_per_key: default_events_burst_per_key(),
            },
            log: RawLog {
                format: "text".into(),
                filter: "info,openraft=warn".into(),
            },
        }
    }
}

/// A rule the configuration broke, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("{key}: cannot read secret file {path}: {cause}")]
    SecretFile {
        key: String,
        path: PathBuf,
        cause: std::io::Error,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl RawMonitor {
    fn validate(self) -> Result<MonitorSettings, ConfigError> {
        let deadman_url = secret(
            "monitor.deadman_url",
            self.deadman_url,
            self.deadman_url_file,
        )?;
        if let Some(u) = &deadman_url {
            let u = u.expose();
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.contains(' ') {
                // The value may hold a token: name the key, not the value.
                return Err(invalid("monitor.deadman_url", "not an http(s) URL"));
            }
        }
        if deadman_url.is_some() && self.deadman_interval_secs == 0 {
            return Err(invalid("monitor.deadman_interval_secs", "at least 1"));
        }
        let mut admins = Vec::new();
        for (i, a) in self.admins.into_iter().enumerate() {
            let key = format!("monitor.admins[{i}]");
            let method = match a.kind.as_str() {
                "sms" => pager_notify::Method::Sms,
                "voice" => pager_notify::Method::Voice,
                "email" => pager_notify::Method::Email,
                other => {
                    return Err(invalid(
                        &format!("{key}.type"),
                        format!("{other:?}: use sms, voice or email"),
                    ))
                }
            };
            let ok = match method {
                pager_notify::Method::Email => a
                    .address
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.')),
                _ => {
                    let digits = a.address.strip_prefix('+').unwrap_or("");
                    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
                }
            };
            if !ok {
                return Err(invalid(
                    &format!("{key}.address"),
                    "an E.164 number (+15551234567) for sms and voice, an email address for email",
                ));
            }
            admins.push((method, a.address));
        }
        Ok(MonitorSettings {
            deadman_url,
            deadman_interval: Duration::from_secs(self.deadman_interval_secs),
            isolation_alert_after: Duration::from_secs(self.isolation_alert_after_secs),
            isolation_alert_every: Duration::from_secs(self.isolation_alert_every_secs.max(1)),
            admins,
        })
    }
}

/// Validated TLS files (`validate` loaded them once) and how often to look
/// for new ones.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub files: pager_tls::TlsFiles,
    /// Zero: reload only on SIGHUP.
    pub reload_interval: Duration,
}

/// Validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: u64,
    pub region: String,
    pub data_dir: PathBuf,
    pub client_listen: SocketAddr,
    pub peer_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub client_advertise: String,
    pub peer_advertise: String,
    pub bootstrap: bool,
    pub members: Vec<RawMember>,
    pub raft: openraft::Config,
    pub rpc_timeout: Duration,
    pub notify: NotifySettings,
    /// Auth tokens that may sign Twilio webhooks: current, then previous.
    pub twilio_webhook_tokens: Vec<Secret>,
    /// `[slack]`; `None`: no Slack.
    pub slack: Option<SlackSettings>,
    /// `[jira]`; `None`: no Jira.
    pub jira: Option<JiraSettings>,
    /// `[webhooks]`; the default: no secrets (every webhook event fails).
    pub webhooks: WebhookSettings,
    /// This node's public HTTP base URL (no trailing slash).
    pub public_url: String,
    pub dispatch: DispatchSettings,
    pub events_per_second_per_key: f64,
    pub events_burst_per_key: u32,
    /// Bearer tokens required on the gRPC API.
    pub auth_enabled: bool,
    pub bootstrap_admin_token: Option<Secret>,
    /// Console sign-in through an OpenID Connect provider (`[auth.oidc]`).
    pub oidc: Option<OidcSettings>,
    /// Shared secret of the peer port.
    pub cluster_secret: Option<Secret>,
    /// Regions the leader should be in, most preferred first.
    pub preferred_regions: Vec<String>,
    /// TLS on the client port (`[tls]`); `None`: plaintext.
    pub client_tls: Option<TlsSettings>,
    /// Mutual TLS on the peer port and to peers (`[cluster.tls]`); `None`: plaintext.
    pub peer_tls: Option<TlsSettings>,
    /// Local address outgoing peer connections leave from; `None`: the OS chooses.
    pub peer_source_ip: Option<IpAddr>,
    pub dispatch_concurrency: usize,
    pub write_timeout: Duration,
    pub monitor: MonitorSettings,
    /// Forget incidents resolved longer ago than this; `None`: keep forever.
    pub keep_resolved: Option<Duration>,
    pub retention_check: Duration,
    pub log: RawLog,
}

impl NodeConfig {
    /// What the membership records about this node.
    pub fn peer_node(&self) -> pager_raft::PeerNode {
        pager_raft::PeerNode {
            peer_addr: self.peer_advertise.clone(),
            client_addr: self.client_advertise.clone(),
            region: self.region.clone(),
            http_url: self.public_url.clone(),
        }
    }
}

/// Load the layers: defaults, then `file` (must exist when named), then the environment.
pub fn load(file: Option<&Path>) -> Result<NodeConfig, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    let raw: RawConfig = env_layer(fig)
        .extract_lossy()
        .map_err(|e| ConfigError::Parse(figment_error(e)))?;
    raw.validate()
}

/// Variables read by other means, not config keys.
const NOT_KEYS: [&str; 2] = ["PAGERD_CONFIG", "PAGERD_LOG"];

/// `PAGERD_A__B=v` sets key `a.b` to the *string* `v`. figment's `Env` would
/// parse `+15550001111` as a number and lose the phone number's `+`;
/// `extract_lossy` turns strings into numbers and booleans only where a field
/// wants one.
fn env_layer(mut fig: Figment) -> Figment {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PAGERD_") && !NOT_KEYS.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (k, v) in vars {
        let key = k["PAGERD_".len()..].to_ascii_lowercase().replace("__", ".");
        fig = fig.merge(Serialized::default(&key, v));
    }
    fig
}

fn figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("{key}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An `http(s)://host[:port][/path]` base URL, returned without a trailing slash.
fn base_url(key: &str, s: &str) -> Result<String, ConfigError> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| invalid(key, format!("{s:?} is not an http(s) URL")))?;
    if rest.is_empty() || rest.starts_with('/') || s.contains(['?', '#', ' ']) {
        return Err(invalid(
            key,
            format!("{s:?} needs a host and no query or fragment"),
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// A `host:port` other nodes and clients dial: an IP address or a DNS name
/// (Kubernetes pod names, compose service names), and a numeric port.
pub fn check_host_port(s: &str) -> Result<(), String> {
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{s:?}: port {port:?} is not a number up to 65535"))?;
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if name_ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?}: {host:?} is neither an IP address nor a DNS name"
        ))
    }
}

fn host_port(key: &str, s: &str) -> Result<(), ConfigError> {
    check_host_port(s).map_err(|reason| invalid(key, reason))
}

/// `cluster.peer_source_ip`: an IP address of this host (one a socket can be
/// bound to), so a typo fails here rather than as unreachable peers.
fn source_ip(s: &str) -> Result<IpAddr, ConfigError> {
    const KEY: &str = "cluster.peer_source_ip";
    let ip: IpAddr = s
        .trim()
        .parse()
        .map_err(|_| invalid(KEY, format!("{s:?} is not an IP address")))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(invalid(
            KEY,
            format!("{ip} cannot be the source of a connection"),
        ));
    }
    std::net::TcpListener::bind((ip, 0))
        .map_err(|e| invalid(KEY, format!("{ip} is not an address of this host ({e})")))?;
    Ok(ip)
}

fn addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| invalid(key, format!("{s:?} is not a host:port socket address")))
}

fn secret(
    key: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(invalid(key, format!("set {key} or {key}_file, not both"))),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|cause| ConfigError::SecretFile {
                key: format!("{key}_file"),
                path: path.clone(),
                cause,
            })?;
            Ok(Some(Secret::new(text.trim_end().to_string())))
        }
        (None, None) => Ok(None),
    }
}

fn required(key: &str, path: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    path.ok_or_else(|| invalid(key, "required in this section"))
}

/// A TLS file error under its key: `tls.cert_file: cannot read /x.pem: ...`.
fn tls_error(section: &str, e: pager_tls::TlsError) -> ConfigError {
    let field = match e.role() {
        pager_tls::FileRole::Cert => "cert_file",
        pager_tls::FileRole::Key => "key_file",
        pager_tls::FileRole::Ca => "ca_file",
    };
    invalid(&format!("{section}.{field}"), e.to_string())
}

/// `[tls]`: both files present and loadable as a server certificate.
fn client_tls(t: Option<RawTls>) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(t) = t else { return Ok(None) };
    let files = pager_tls::TlsFiles {
        cert: Some(required("tls.cert_file", t.cert_file)?),
        key: Some(required("tls.key_file", t.key_file)?),
        ca: None,
    };
    pager_tls::ServerTls::server("client port", files.clone()).map_err(|e| tls_error("tls", e))?;
    Ok(Some(TlsSettings {
        files,
        reload_interval: Duration::from_millis(t.reload_interval_ms),
    }))
}

/// `[cluster.tls]`: all three files present, loadable for both the peer
/// server (requiring client certificates from the CA) and the peer client.
fn peer_tls(t: Option<RawClusterTls>) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(t) = t else { return Ok(None) };
    let files = pager_tls::TlsFiles {
        cert: Some(required("cluster.tls.cert_file", t.cert_file)?),
        key: Some(required("cluster.tls.key_file", t.key_file)?),
        ca: Some(required("cluster.tls.ca_file", t.ca_file)?),
    };
    pager_tls::ServerTls::server("peer server", files.clone())
        .map_err(|e| tls_error("cluster.tls", e))?;
    pager_tls::ClientTls::client("peer client", files.clone())
        .map_err(|e| tls_error("cluster.tls", e))?;
    Ok(Some(TlsSettings {
        files,
        reload_interval: Duration::from_millis(t.reload_interval_ms),
    }))
}

impl RawConfig {
    /// Defaults plus one file, ignoring the environment (to check shipped files).
    pub fn load_file_only(path: &Path) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(Toml::file_exact(path))
            .extract_lossy()
            .map_err(|e| ConfigError::Parse(figment_error(e)))?;
        raw.validate()
    }

    /// Check every section and build the node's configuration. Each section
    /// validates itself (below); this only orders them and checks what spans
    /// sections. The first error wins and names its key.
    pub fn validate(self) -> Result<NodeConfig, ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be 1 or more"));
        }
        if self.region.trim().is_empty() {
            return Err(invalid("region", "must not be empty"));
        }
        let [client_listen, peer_listen, http_listen] = self.listen.validate()?;
        self.cluster.validate_members(self.node_id)?;
        let raft = self
            .raft
            .validate()
            .map_err(|e| invalid("raft", e.to_string()))?;
        let (twilio, twilio_webhook_tokens) = match self.twilio {
            None => (None, Vec::new()),
            Some(t) => {
                let (settings, tokens) = t.validate()?;
                (Some(settings), tokens)
            }
        };
        let smtp = self.smtp.map(RawSmtp::validate).transpose()?;
        let slack = self.slack.map(RawSlack::validate).transpose()?;
        let jira = self.jira.map(RawJira::validate).transpose()?;
        let webhooks = self.webhooks.unwrap_or_default().validate()?;
        let dispatch = self.dispatch.validate()?;
        let bootstrap_admin_token = self.auth.bootstrap_token()?;
        let oidc = self.auth.oidc.clone().map(RawOidc::validate).transpose()?;
        let cluster_secret = self.cluster.secret()?;
        let public_url = self.advertise.validate(http_listen)?;
        self.cluster.validate_member_urls()?;
        let monitor = self.monitor.validate()?;
        self.log.validate()?;
        let client_tls = client_tls(self.tls)?;
        let peer_tls = peer_tls(self.cluster.tls)?;
        let peer_source_ip = self
            .cluster
            .peer_source_ip
            .as_deref()
            .map(source_ip)
            .transpose()?;
        Ok(NodeConfig {
            node_id: self.node_id,
            region: self.region,
            data_dir: self.data_dir,
            client_advertise: self
                .advertise
                .client
                .unwrap_or_else(|| client_listen.to_string()),
            peer_advertise: self
                .advertise
                .peer
                .unwrap_or_else(|| peer_listen.to_string()),
            client_listen,
            peer_listen,
            http_listen,
            bootstrap: self.cluster.bootstrap,
            preferred_regions: self.cluster.preferred_regions,
            client_tls,
            peer_tls,
            peer_source_ip,
            members: self.cluster.members,
            rpc_timeout: Duration::from_millis(self.raft.rpc_timeout_ms),
            raft,
            notify: NotifySettings {
                twilio,
                smtp,
                console: self.console.enabled,
            },
            twilio_webhook_tokens,
            slack,
            jira,
            webhooks,
            events_per_second_per_key: self.dispatch.events_per_second_per_key,
            events_burst_per_key: self.dispatch.events_burst_per_key,
            auth_enabled: self.auth.enabled,
            cluster_secret,
            bootstrap_admin_token,
            oidc,
            public_url,
            dispatch,
            dispatch_concurrency: self.dispatch.concurrency,
            write_timeout: Duration::from_millis(self.dispatch.write_timeout_ms.max(100)),
            monitor,
            keep_resolved: (self.retention.keep_resolved_secs > 0)
                .then(|| Duration::from_secs(self.retention.keep_resolved_secs)),
            retention_check: Duration::from_secs(self.retention.check_every_secs.max(1)),
            log: self.log,
        })
    }
}

impl RawListen {
    /// The client, peer and http addresses, which must differ.
    fn validate(&self) -> Result<[SocketAddr; 3], ConfigError> {
        let ports = [
            addr("listen.client", &self.client)?,
            addr("listen.peer", &self.peer)?,
            addr("listen.http", &self.http)?,
        ];
        if ports[0] == ports[1] || ports[0] == ports[2] || ports[1] == ports[2] {
            return Err(invalid(
                "listen",
                "client, peer and http need distinct addresses",
            ));
        }
        Ok(ports)
    }
}

impl RawCluster {
    /// Member ids unique and non-zero, addresses `host:port`, and a
    /// bootstrapping member list that includes this node.
    fn validate_members(&self, node_id: u64) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if m.id == 0 || !seen.insert(m.id) {
                return Err(invalid(
                    &format!("cluster.members[{i}].id"),
                    "ids must be unique and 1 or more",
                ));
            }
            host_port(&format!("cluster.members[{i}].peer"), &m.peer)?;
            host_port(&format!("cluster.members[{i}].client"), &m.client)?;
        }
        if self.bootstrap && !self.members.is_empty() && !seen.contains(&node_id) {
            return Err(invalid(
                "cluster.members",
                "bootstrap members must include this node_id",
            ));
        }
        Ok(())
    }

    /// Each member's `http` base URL, where given.
    fn validate_member_urls(&self) -> Result<(), ConfigError> {
        for (i, m) in self.members.iter().enumerate() {
            if let Some(u) = &m.http {
                base_url(&format!("cluster.members[{i}].http"), u)?;
            }
        }
        Ok(())
    }

    /// The peer port's shared secret (inline or from a file), at least 16 characters.
    fn secret(&self) -> Result<Option<Secret>, ConfigError> {
        let secret = secret(
            "cluster.secret",
            self.secret.clone(),
            self.secret_file.clone(),
        )?;
        if secret.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(invalid("cluster.secret", "at least 16 characters"));
        }
        Ok(secret)
    }
}

impl RawAdvertise {
    /// The advertised addresses, and this node's public HTTP base URL
    /// (`http://` + `listen.http` when not given).
    fn validate(&self, http_listen: SocketAddr) -> Result<String, ConfigError> {
        for (key, v) in [
            ("advertise.client", &self.client),
            ("advertise.peer", &self.peer),
        ] {
            if let Some(v) = v {
                host_port(key, v)?;
            }
        }
        match &self.http {
            Some(u) => base_url("advertise.http", u),
            None => Ok(format!("http://{http_listen}")),
        }
    }
}

impl RawTwilio {
    /// The account's settings, and the tokens that may sign its webhooks
    /// (current, then the one being rotated out).
    fn validate(self) -> Result<(TwilioSettings, Vec<Secret>), ConfigError> {
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return Err(invalid("twilio.base_url", "must be an http(s) URL"));
        }
        if !self.account_sid.starts_with("AC") || self.account_sid.len() != 34 {
            return Err(invalid(
                "twilio.account_sid",
                "must be AC followed by 32 hex characters",
            ));
        }
        let token = secret("twilio.auth_token", self.auth_token, self.auth_token_file)?
            .ok_or_else(|| invalid("twilio.auth_token", "required (or twilio.auth_token_file)"))?;
        let mut webhook_tokens = vec![token.clone()];
        if let Some(previous) = secret(
            "twilio.previous_auth_token",
            self.previous_auth_token,
            self.previous_auth_token_file,
        )? {
            webhook_tokens.push(previous);
        }
        if self.from.is_none() && self.messaging_service_sid.is_none() {
            return Err(invalid(
                "twilio.from",
                "set twilio.from or twilio.messaging_service_sid",
            ));
        }
        if let Some(from) = &self.from {
            if !pager_core::oncall::is_e164(from) {
                return Err(invalid("twilio.from", "must be an E.164 phone number"));
            }
        }
        let settings = TwilioSettings {
            base_url: self.base_url.trim_end_matches('/').to_string(),
            account_sid: self.account_sid,
            auth_token: token,
            from: self.from,
            messaging_service_sid: self.messaging_service_sid,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
        };
        Ok((settings, webhook_tokens))
    }
}

impl RawSmtp {
    fn validate(self) -> Result<SmtpSettings, ConfigError> {
        let tls = match self.tls.as_str() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            other => {
                return Err(invalid(
                    "smtp.tls",
                    format!("{other:?} is not one of none, starttls, tls"),
                ))
            }
        };
        if self.host.is_empty() {
            return Err(invalid("smtp.host", "must not be empty"));
        }
        if !self.from.contains('@') {
            return Err(invalid("smtp.from", "must be an email address"));
        }
        let password = secret("smtp.password", self.password, self.password_file)?;
        if password.is_some() != self.username.is_some() {
            return Err(invalid(
                "smtp.username",
                "username and password go together",
            ));
        }
        Ok(SmtpSettings {
            host: self.host,
            port: self.port,
            tls,
            username: self.username,
            password,
            from: self.from,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
        })
    }
}

impl RawDispatch {
    fn validate(&self) -> Result<DispatchSettings, ConfigError> {
        if self.concurrency == 0 {
            return Err(invalid("dispatch.concurrency", "must be 1 or more"));
        }
        for (key, v) in [
            ("dispatch.calls_per_second", self.calls_per_second),
            ("dispatch.messages_per_second", self.messages_per_second),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(key, "must be 0 (no pacing) or more"));
            }
        }
        if !self.events_per_second_per_key.is_finite() || self.events_per_second_per_key < 0.0 {
            return Err(invalid(
                "dispatch.events_per_second_per_key",
                "must be 0 (no limit) or more",
            ));
        }
        if self.recipient_burst == 0 {
            return Err(invalid("dispatch.recipient_burst", "must be 1 or more"));
        }
        if !(5..=600).contains(&self.call_timeout_secs) {
            return Err(invalid(
                "dispatch.call_timeout_secs",
                "must be 5 to 600 (Twilio's range)",
            ));
        }
        Ok(DispatchSettings {
            calls_per_second: self.calls_per_second,
            messages_per_second: self.messages_per_second,
            recipient_burst: self.recipient_burst,
            recipient_window: Duration::from_millis(self.recipient_window_ms),
            high_urgency_max_delay: Duration::from_millis(self.high_urgency_max_delay_ms),
            reconcile_grace: Duration::from_millis(self.reconcile_grace_ms),
            call_timeout_secs: self.call_timeout_secs,
            machine_detection: self.machine_detection,
            link_ttl: Duration::from_secs(self.link_ttl_hours.max(1) * 3600),
        })
    }
}

impl RawAuth {
    /// The bootstrap admin token (inline or from a file), at least 16 characters.
    fn bootstrap_token(&self) -> Result<Option<Secret>, ConfigError> {
        let token = secret(
            "auth.bootstrap_admin_token",
            self.bootstrap_admin_token.clone(),
            self.bootstrap_admin_token_file.clone(),
        )?;
        if token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(invalid(
                "auth.bootstrap_admin_token",
                "at least 16 characters",
            ));
        }
        Ok(token)
    }
}

impl RawLog {
    fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be text or json"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn err_of(r: Result<NodeConfig, ConfigError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn member_and_advertised_addresses_may_be_dns_names() {
        let mut raw = RawConfig::default();
        raw.cluster.bootstrap = false;
        raw.advertise.peer = Some("pagerd-0.pagerd-peers.pager.svc.cluster.local:8701".into());
        raw.cluster.members = vec![RawMember {
            id: 2,
            peer: "pagerd-1.pagerd-peers:8701".into(),
            client: "[::1]:8700".into(),
            region: "eu-west".into(),
            http: None,
        }];
        let cfg = raw.clone().validate().expect("names are fine");
        assert_eq!(
            cfg.peer_advertise,
            "pagerd-0.pagerd-peers.pager.svc.cluster.local:8701"
        );
        for (bad, key) in [
            ("pagerd_1:8701", "cluster.members[0].peer"),
            ("pagerd-1:port", "cluster.members[0].peer"),
            ("-pagerd:8701", "cluster.members[0].peer"),
            ("pagerd-1", "cluster.members[0].peer"),
        ] {
            let mut r = raw.clone();
            r.cluster.members[0].peer = bad.into();
            let err = r.validate().expect_err(bad).to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn jira_comes_from_file_and_environment_and_hides_its_token() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "node.toml",
                "[jira]\nbase_url = \"https://example.atlassian.net/\"\nemail = \"bot@example.com\"\n",
            )?;
            jail.create_file("jira_token", "jira-s3cret\n")?;
            jail.set_env("PAGERD_JIRA__API_TOKEN_FILE", "jira_token");
            let cfg = load(Some(Path::new("node.toml"))).map_err(|e| e.to_string())?;
            let j = cfg.jira.as_ref().expect("[jira]");
            assert_eq!(j.base_url, "https://example.atlassian.net");
            assert_eq!(j.api_token.expose(), "jira-s3cret");
            let shown = format!("{cfg:?}");
            assert!(
                !shown.contains("jira-s3cret") && !shown.contains("bot@example.com"),
                "{shown}"
            );
            jail.set_env("PAGERD_JIRA__API_TOKEN", "x");
            let e = err_of(load(Some(Path::new("node.toml"))));
            assert!(e.contains("jira.api_token"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("node.toml", "[jira]\nbase_url = \"https://example.atlassian.net\"\nemail = \"bot@example.com\"\n")?;
            let e = err_of(load(Some(Path::new("node.toml"))));
            assert!(e.starts_with("jira.api_token: required"), "{e}");
            jail.set_env("PAGERD_JIRA__API_TOKEN", "t");
            jail.set_env("PAGERD_JIRA__EMAIL", "nobody");
            let e = err_of(load(Some(Path::new("node.toml"))));
            assert!(e.starts_with("jira.email: "), "{e}");
            Ok(())
        });
    }

    #[test]
    fn webhook_secrets_come_by_subscription_and_are_checked() {
        Jail::expect_with(|jail| {
            jail.create_file("bridge", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")?;
            jail.create_file(
                "node.toml",
                "[webhooks.secret_files]\nbridge = \"bridge\"\n",
            )?;
            jail.set_env(
                "PAGERD_WEBHOOKS__SECRETS__STATUS",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            );
            let cfg = load(Some(Path::new("node.toml"))).map_err(|e| e.to_string())?;
            let names: Vec<&String> = cfg.webhooks.secrets.keys().collect();
            assert_eq!(names, ["bridge", "status"]);
            assert!(
                !format!("{cfg:?}").contains("MfKQ9r8G"),
                "Debug hides secrets"
            );
            jail.set_env(
                "PAGERD_WEBHOOKS__SECRETS__BRIDGE",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            );
            let e = err_of(load(Some(Path::new("node.toml"))));
            assert!(e.contains("webhooks.secrets.bridge"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("PAGERD_WEBHOOKS__SECRETS__BRIDGE", "not base64!");
            let e = err_of(load(None));
            assert!(e.starts_with("webhooks.secrets.bridge: "), "{e}");
            Ok(())
        });
    }

    #[test]
    fn peer_source_ip_is_a_local_address() {
        let with = |ip: &str| {
            let mut raw = RawConfig::default();
            raw.cluster.peer_source_ip = Some(ip.into());
            raw.validate()
        };
        let cfg = with("127.0.0.12").expect("all of 127/8 is local on Linux");
        assert_eq!(cfg.peer_source_ip, Some("127.0.0.12".parse().unwrap()));
        assert_eq!(
            RawConfig::default().validate().unwrap().peer_source_ip,
            None
        );
        // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
        for bad in ["10.0.0.300", "eth0", "0.0.0.0", "224.0.0.1", "192.0.2.7"] {
            let err = err_of(with(bad));
            assert!(err.starts_with("cluster.peer_source_ip: "), "{bad}: {err}");
        }
    }

    #[test]
    fn single_sign_on_needs_an_issuer_url_a_client_and_one_secret() {
        let with = |oidc: RawOidc| {
            let mut raw = RawConfig::default();
            raw.auth.oidc = Some(oidc);
            raw.validate()
        };
        let ok = RawOidc {
            issuer: "https://login.example.com/realms/ops/".into(),
            client_id: "pagerd".into(),
            client_secret: Some("s3cret".into()),
            ..RawOidc::default()
        };
        let cfg = with(ok.clone()).expect("valid").oidc.expect("set");
        assert_eq!(cfg.issuer, "https://login.example.com/realms/ops");
        assert_eq!(
            (cfg.user_claim.as_str(), cfg.scopes.as_str()),
            ("email", "openid email profile")
        );
        assert!(RawConfig::default().validate().unwrap().oidc.is_none());
        let err = |o: RawOidc| with(o).expect_err("refused").to_string();
        assert!(err(RawOidc {
            issuer: "login.example.com".into(),
            ..ok.clone()
        })
        .contains("auth.oidc.issuer"));
        assert!(err(RawOidc {
            client_id: " ".into(),
            ..ok.clone()
        })
        .contains("auth.oidc.client_id"));
        let both = RawOidc {
            client_secret_file: Some("/x".into()),
            ..ok
        };
        assert!(err(both).contains("auth.oidc.client_secret"));
    }

    #[test]
    fn defaults_are_a_single_node_with_console() {
        let cfg = RawConfig::default().validate().unwrap();
        assert_eq!(cfg.node_id, 1);
        assert!(cfg.bootstrap && cfg.members.is_empty());
        assert!(cfg.notify.console && cfg.notify.twilio.is_none());
        assert_eq!(cfg.client_advertise, "127.0.0.1:8700");
    }

    #[test]
    fn file_then_environment_with_double_underscore_nesting() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "node.toml",
                &format!(
                    "node_id = 2\nregion = \"eu-west\"\n[twilio]\naccount_sid = \"{SID}\"\nauth_token = \"from-file\"\nfrom = \"+15550001111\"\n"
                ),
            )?;
            jail.set_env("PAGERD_TWILIO__BASE_URL", "http://127.0.0.1:9/");
            jail.set_env("PAGERD_SMTP__HOST", "mail.example.com");
            jail.set_env("PAGERD_SMTP__FROM", "pagerd@example.com");
            jail.set_env("PAGERD_SMTP__PORT", "2525");
            jail.set_env("PAGERD_CONFIG", "ignored.toml");
            jail.set_env("PAGERD_LOG", "debug");
            let cfg = load(Some(Path::new("node.toml"))).map_err(|e| e.to_string())?;
            assert_eq!((cfg.node_id, cfg.region.as_str()), (2, "eu-west"));
            let t = cfg.notify.twilio.as_ref().unwrap();
            assert_eq!(t.base_url, "http://127.0.0.1:9");
            assert_eq!(t.auth_token.expose(), "from-file");
            assert!(
                !format!("{cfg:?}").contains("from-file"),
                "Debug must redact secrets"
            );
            assert_eq!(cfg.notify.smtp.as_ref().unwrap().port, 2525);
            Ok(())
        });
    }

    #[test]
    fn secrets_from_files_and_not_both() {
        Jail::expect_with(|jail| {
            jail.create_file("token", "s3cret\n")?;
            jail.set_env("PAGERD_TWILIO__ACCOUNT_SID", SID);
            jail.set_env("PAGERD_TWILIO__FROM", "+15550001111");
            jail.set_env("PAGERD_TWILIO__AUTH_TOKEN_FILE", "token");
            let cfg = load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.notify.twilio.unwrap().auth_token.expose(), "s3cret");
            jail.set_env("PAGERD_TWILIO__AUTH_TOKEN", "x");
            let e = err_of(load(None));
            assert!(e.contains("twilio.auth_token"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        Jail::expect_with(|jail| {
            assert!(err_of(load(Some(Path::new("nope.toml")))).contains("nope.toml"));
            jail.create_file("a.toml", "[listen]\nclient = \"not-an-addr\"\n")?;
            assert!(err_of(load(Some(Path::new("a.toml")))).starts_with("listen.client:"));
            jail.create_file("b.toml", "[raft]\nheartbeat_interval_ms = 2000\n")?;
            assert!(err_of(load(Some(Path::new("b.toml")))).starts_with("raft:"));
            jail.create_file("c.toml", "bogus_key = 1\n")?;
            assert!(err_of(load(Some(Path::new("c.toml")))).contains("bogus_key"));
            jail.create_file(
                "d.toml",
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = \"maybe\"\n",
            )?;
            assert!(err_of(load(Some(Path::new("d.toml")))).starts_with("smtp.tls:"));
            Ok(())
        });
    }

    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        for f in [
            "pagerd.toml",
            "cluster/node1.toml",
            "cluster/node2.toml",
            "cluster/node3.toml",
        ] {
            let cfg =
                RawConfig::load_file_only(&root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(cfg.node_id >= 1, "{f}");
        }
    }
}
