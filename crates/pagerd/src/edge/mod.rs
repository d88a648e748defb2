//! The client edge: everything that answers a request from outside the
//! cluster, on any node. Each handler turns what it receives into a
//! `pager-core` command and commits it through [`crate::node::Node::write`];
//! none of it keeps state of its own but the per-key rate limit.
//!
//! - [`grpc`] and [`convert`]: the public gRPC API (Events, Incidents,
//!   Config, OnCall, Cluster, Tokens, Users; health and reflection) and its
//!   protobuf conversions
//! - [`http`]: the HTTP router (health, readiness, metrics, heartbeats) that
//!   mounts the rest
//! - [`compat`]: PagerDuty Events v2 and Alertmanager webhooks
//! - [`webhooks`] and [`links`]: what phones and inboxes send back (Twilio
//!   SMS, voice and status callbacks; signed email links)
//! - [`console`]: the web console (sign-in, incidents, on call, cluster)
//! - [`password`]: console passwords (Argon2id)
//! - [`ratelimit`]: the per-integration-key token bucket
//! - [`slack`]: what Slack sends back (buttons, the `/pagerd` command),
//!   signature-checked and mapped to the document's users

pub mod calendar;
pub mod compat;
pub mod console;
pub mod convert;
pub mod grpc;
pub mod http;
pub mod links;
pub mod password;
pub mod ratelimit;
pub mod slack;
pub mod webhooks;
