//! From a replicated delivery to the [`Page`] the notifier sends: the words
//! (pager-core's `render`), and the URLs only a running node knows — the
//! call's TwiML endpoint and its fallback on another member, the status
//! callback, the email's signed links.

use crate::config::NodeConfig;
use crate::edge::links::{self, Claims, LinkAction};
use pager_core::render::{self, EmailLinks};
use pager_core::{ContactKind, Delivery, Incident, Millis, State};
use pager_notify::twilio::VoiceCall;
use pager_notify::{Method, Page};

/// URLs of the cluster's public HTTP endpoints.
#[derive(Debug, Clone)]
pub struct Urls {
    /// This node's.
    pub public: String,
    /// Another member's, for a call's `FallbackUrl`.
    pub fallback: Option<String>,
}

pub fn method(kind: ContactKind) -> Method {
    match kind {
        ContactKind::Sms => Method::Sms,
        ContactKind::Voice => Method::Voice,
        ContactKind::Email => Method::Email,
        // Both go out through pager-outbound, never the notifier; the
        // method only labels them in logs.
        ContactKind::Slack | ContactKind::Jira | ContactKind::Webhook => Method::Slack,
    }
}

/// TwiML endpoint of a delivery's call.
pub fn voice_path(delivery: u64, attempt: u32) -> String {
    format!("/twilio/voice/{delivery}?a={attempt}")
}

pub fn build(
    cfg: &NodeConfig,
    urls: &Urls,
    state: &State,
    incident: &Incident,
    d: &Delivery,
    now: Millis,
) -> Page {
    let method = method(d.method);
    let subject = render::subject(incident);
    let (text, html, voice) = match d.method {
        // The notification text; the dispatcher adds the message's blocks.
        ContactKind::Sms | ContactKind::Slack | ContactKind::Jira | ContactKind::Webhook => {
            (render::sms(incident, d), None, None)
        }
        ContactKind::Voice => {
            let path = voice_path(d.id, d.attempt);
            let call = VoiceCall {
                url: format!("{}{path}", urls.public),
                fallback_url: urls.fallback.as_ref().map(|f| format!("{f}{path}")),
                status_callback: Some(format!(
                    "{}/twilio/status?d={}&a={}",
                    urls.public, d.id, d.attempt
                )),
                timeout_secs: cfg.dispatch.call_timeout_secs,
                machine_detection: cfg.dispatch.machine_detection,
            };
            (render::voice(incident, d), None, Some(call))
        }
        ContactKind::Email => {
            let links = email_links(cfg, urls, state, incident, d, now);
            (
                render::email_text(incident, d, links.as_ref()),
                Some(render::email_html(incident, d, links.as_ref())),
                None,
            )
        }
    };
    Page {
        delivery_id: d.id,
        method,
        address: d.address.clone(),
        subject,
        text,
        html,
        voice,
    }
}

/// The page of a test delivery (`TestPage`): the words say it is a test and
/// carry no reply codes or links; a call says them and hangs up.
pub fn build_test(cfg: &NodeConfig, urls: &Urls, d: &Delivery) -> Page {
    let words = render::test_page(d);
    let voice = (d.method == ContactKind::Voice).then(|| {
        let path = voice_path(d.id, d.attempt);
        VoiceCall {
            url: format!("{}{path}", urls.public),
            fallback_url: urls.fallback.as_ref().map(|f| format!("{f}{path}")),
            status_callback: Some(format!(
                "{}/twilio/status?d={}&a={}",
                urls.public, d.id, d.attempt
            )),
            timeout_secs: cfg.dispatch.call_timeout_secs,
            machine_detection: cfg.dispatch.machine_detection,
        }
    });
    Page {
        delivery_id: d.id,
        method: method(d.method),
        address: d.address.clone(),
        subject: words.subject,
        html: (d.method == ContactKind::Email).then(|| {
            format!(
                "<!DOCTYPE html><html><body><p>{}</p></body></html>",
                render::html(&words.text)
            )
        }),
        text: words.text,
        voice,
    }
}

/// The email of an invitation (`Invite`): the signed link that sets the
/// user's password, made at send time with the cluster's link key.
pub fn build_invite(urls: &Urls, state: &State, d: &Delivery, now: Millis) -> Page {
    let (role, version) = match d.purpose {
        pager_core::delivery::Purpose::Invite { role, version } => (role, version),
        _ => (pager_core::TokenRole::Responder, u64::MAX),
    };
    let claims = crate::edge::console::invite::Claims {
        user: d.user.clone(),
        role,
        version,
        expires: now + crate::edge::console::invite::TTL_MS,
    };
    let link = crate::edge::console::invite::link(state.link_key.expose(), &urls.public, &claims)
        .unwrap_or_else(|| format!("{}/login", urls.public));
    let words = render::invite(d, &link, &pager_core::time::rfc3339(claims.expires));
    Page {
        delivery_id: d.id,
        method: method(d.method),
        address: d.address.clone(),
        subject: words.subject,
        html: Some(format!(
            "<!DOCTYPE html><html><body><p>{}</p><p><a href=\"{}\">Choose your password</a></p></body></html>",
            render::html(&words.text),
            render::html(&link)
        )),
        text: words.text,
        voice: None,
    }
}

/// A handoff summary, shift reminder or shifts-moved email, in the words
/// `State::shift_email` gives them when the email is sent.
pub fn build_shift_email(state: &State, d: &Delivery) -> Page {
    let words = state.shift_email(d).unwrap_or_else(|| render::PageText {
        subject: "[pagerd] On call".into(),
        text: "Your on-call shifts: see the console.\n".into(),
    });
    plain_email(d, words)
}

/// A team's weekly page review email, from the roll-ups as they are now.
pub fn build_weekly_report(urls: &Urls, state: &State, d: &Delivery, now: Millis) -> Page {
    let words = state
        .weekly_email(d, now, &urls.public)
        .unwrap_or_else(|| render::PageText {
            subject: "[pagerd] Weekly page review".into(),
            text: "See the console's reports.\n".into(),
        });
    plain_email(d, words)
}

/// An email of plain text (its HTML part keeps the lines, wrapped on a phone).
fn plain_email(d: &Delivery, words: render::PageText) -> Page {
    Page {
        delivery_id: d.id,
        method: method(d.method),
        address: d.address.clone(),
        subject: words.subject,
        html: Some(format!(
            "<!DOCTYPE html><html><body><pre style=\"white-space:pre-wrap;font-family:inherit\">{}</pre></body></html>",
            render::html(&words.text)
        )),
        text: words.text,
        voice: None,
    }
}

/// The email of an overdue-RCA reminder, linking to the RCA's console page.
/// The record is read at send time; a reminder whose record is gone (it
/// cannot be, while the reminder is pending) still says which incident.
pub fn build_rca_reminder(urls: &Urls, state: &State, incident: u64, d: &Delivery) -> Page {
    let link = format!("{}/rcas/{incident}", urls.public);
    let words = match state.rcas.get(&incident) {
        Some(rca) => render::rca_reminder(d, rca, &link),
        None => render::PageText {
            subject: format!("[pagerd] RCA to write: incident {incident}"),
            text: format!("The RCA of incident #{incident} needs writing:\n{link}\n"),
        },
    };
    Page {
        delivery_id: d.id,
        method: method(d.method),
        address: d.address.clone(),
        subject: words.subject,
        html: Some(format!(
            "<!DOCTYPE html><html><body><p>{}</p><p><a href=\"{}\">Open the RCA</a></p></body></html>",
            render::html(&words.text),
            render::html(&link)
        )),
        text: words.text,
        voice: None,
    }
}

fn email_links(
    cfg: &NodeConfig,
    urls: &Urls,
    state: &State,
    incident: &Incident,
    d: &Delivery,
    now: Millis,
) -> Option<EmailLinks> {
    let key = state.link_key.expose();
    let expires = now + cfg.dispatch.link_ttl.as_millis() as u64;
    let link = |action| {
        let claims = Claims {
            incident: incident.id,
            action,
            user: d.user.clone(),
            expires,
        };
        links::sign(key, &claims)
            .ok()
            .map(|t| format!("{}/v1/links/{t}", urls.public))
    };
    Some(EmailLinks {
        acknowledge: link(LinkAction::Ack)?,
        resolve: link(LinkAction::Resolve)?,
    })
}
