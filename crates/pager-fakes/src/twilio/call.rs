//! The life of a call after its `201`, played out against the caller's webhooks as Twilio
//! would, following the [`CallScript`] that [`FakeTwilio::script_calls`](super::FakeTwilio::script_calls) set for the number.
//!
//! | script | status callbacks (`CallStatus`) | TwiML |
//! |---|---|---|
//! | `Answer { digits }` | initiated, ringing, in-progress, completed | `Url` fetched and played; the first `<Gather>` gets `digits` |
//! | `AnswerNoKey` | initiated, ringing, in-progress, completed | played; every `<Gather>` times out |
//! | `Voicemail` | initiated, ringing, in-progress, completed | played with `AnsweredBy` a machine; no key |
//! | `UrlFails { digits }` | initiated, ringing, in-progress, completed | `Url` not contacted, taken as failed: `FallbackUrl` played; its first `<Gather>` gets `digits` |
//! | `NoAnswer` | initiated, ringing, no-answer | none |
//! | `Busy` | initiated, busy | none |
//! | `Failed` | initiated, failed | none |
//!
//! Status callbacks go to `StatusCallback` for the events named in `StatusCallbackEvent`
//! (`initiated`, `ringing`, `answered` → `in-progress`, `completed` → the final status), the
//! final one always. They carry `CallSid`, `AccountSid`, `From`, `To`, `Called`, `Caller`,
//! `CallStatus`, `Direction=outbound-api`, `ApiVersion`, `CallbackSource`, `SequenceNumber`,
//! `Timestamp`, `CallDuration` when completed, and `AnsweredBy` when `MachineDetection` was
//! asked: `human`, or for `Voicemail` `machine_start` (`MachineDetection=Enable`) or
//! `machine_end_beep` (`DetectMessageEnd`), as Twilio's answering machine detection reports.
//!
//! TwiML is fetched with the call's parameters from `Url` (or taken from `Twiml`); when `Url`
//! fails (non-2xx, unreachable, or an answer that is not TwiML), from `FallbackUrl`. The fake
//! plays `<Say>` (recording the text), `<Gather>` (speaking its prompts; the script's digits,
//! cut to `numDigits`, are POSTed as `Digits` to its `action`, resolved against the URL of the
//! document, and the answer played next; without digits it falls through to the next verb),
//! `<Redirect>` (fetched and played) and `<Hangup/>`; other verbs do nothing. At most
//! [`MAX_DOCUMENTS`] documents are fetched per call. Every request carries
//! `X-Twilio-Signature`, computed with the fake's auth token over the exact URL requested.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use reqwest::Url;

use super::twiml_scan::{self, Verb};
use super::{form, RecordedCall, Shared};
use crate::rfc2822;
use pager_notify::signature;

/// A bound on the TwiML documents one call fetches (a `<Redirect>` loop ends there).
pub const MAX_DOCUMENTS: usize = 10;

/// How calls to a number go, from their creation on. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallScript {
    /// A person answers and presses `digits` at the first `<Gather>` (nothing if empty).
    Answer { digits: String },
    /// A person answers and presses nothing.
    AnswerNoKey,
    /// Rings until the timeout.
    NoAnswer,
    /// The line is busy.
    Busy,
    /// The call cannot be placed (e.g. an unreachable number).
    Failed,
    /// An answering machine picks up; nothing is pressed.
    Voicemail,
    /// Answered, but `Url` fails: Twilio turns to `FallbackUrl` (or ends the call if none),
    /// where `digits` are pressed at the first `<Gather>` (nothing if empty).
    UrlFails { digits: String },
}

/// Where a TwiML document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwimlSource {
    /// The call's `Url`, when it connected.
    Url,
    /// The call's `FallbackUrl`, after `Url` failed.
    FallbackUrl,
    /// A `<Gather>`'s `action`, posted with the `Digits` pressed.
    GatherAction,
    /// A `<Redirect>`.
    Redirect,
}

/// One thing that happened in a call's life, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A status callback was made.
    StatusCallback {
        /// The subscribed event: `initiated`, `ringing`, `answered` or `completed`.
        event: String,
        /// `CallStatus` as sent: `initiated`, `ringing`, `in-progress`, `completed`, ….
        call_status: String,
        url: String,
        params: Vec<(String, String)>,
        /// The answer's status, `None` if there was none (connection failed).
        http_status: Option<u16>,
    },
    /// TwiML was asked for (or, with [`CallScript::UrlFails`], taken as failed unasked).
    TwimlRequested {
        source: TwimlSource,
        /// Absolute, as requested.
        url: String,
        /// Form parameters sent (`Digits` for a gather action).
        params: Vec<(String, String)>,
        http_status: Option<u16>,
        /// The document, when the answer was TwiML that the call went on with.
        twiml: Option<String>,
        /// Why the answer was not used, when it was not.
        error: Option<String>,
    },
    /// Words spoken to the callee by a `<Say>` (also those inside a `<Gather>`).
    Said(String),
    /// The call ended with this status; nothing follows.
    Ended { call_status: String },
}

/// A scripted call's record on the board.
#[derive(Debug, Default)]
pub(super) struct CallLife {
    pub(super) events: Vec<CallEvent>,
    /// Set with the last event: [`FakeTwilio::wait_for_call_done`](super::FakeTwilio::wait_for_call_done) waits for it.
    pub(super) done: bool,
}

/// A call's fixed parameters, sent with every webhook request.
struct Call {
    record: RecordedCall,
    account_sid: String,
    answered_by: Option<&'static str>,
    started: Instant,
    sequence: u32,
}

impl Shared {
    /// Play `call`'s life in a task that dies with the fake.
    pub(super) fn start_life(self: &Arc<Self>, call: RecordedCall, script: CallScript) {
        let shared = self.clone();
        let mut lives = self
            .lives
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reap the finished ones so the set does not grow with every call.
        while lives.try_join_next().is_some() {}
        lives.spawn(async move { shared.live(call, script).await });
    }

    async fn live(self: Arc<Self>, record: RecordedCall, script: CallScript) {
        let machine_detection = record.machine_detection.clone();
        let answered_by = machine_detection.as_deref().map(|mode| match script {
            CallScript::Voicemail if mode.eq_ignore_ascii_case("DetectMessageEnd") => {
                "machine_end_beep"
            }
            CallScript::Voicemail => "machine_start",
            _ => "human",
        });
        let mut call = Call {
            record,
            account_sid: self.account_sid.clone(),
            answered_by: None,
            started: Instant::now(),
            sequence: 0,
        };
        self.progress(&mut call, "initiated", "initiated").await;
        let final_status = match script {
            CallScript::Failed => "failed",
            CallScript::Busy => "busy",
            CallScript::NoAnswer => {
                self.progress(&mut call, "ringing", "ringing").await;
                "no-answer"
            }
            CallScript::Answer { .. }
            | CallScript::AnswerNoKey
            | CallScript::Voicemail
            | CallScript::UrlFails { .. } => {
                self.progress(&mut call, "ringing", "ringing").await;
                call.answered_by = answered_by;
                call.started = Instant::now();
                self.progress(&mut call, "answered", "in-progress").await;
                let digits = match &script {
                    CallScript::Answer { digits } | CallScript::UrlFails { digits } => {
                        digits.clone()
                    }
                    _ => String::new(),
                };
                let url_fails = matches!(script, CallScript::UrlFails { .. });
                self.converse(&call, &digits, url_fails).await;
                "completed"
            }
        };
        self.progress(&mut call, "completed", final_status).await;
        let sid = call.record.sid.clone();
        self.board.update(|r| {
            if let Some(life) = r.lives.get_mut(&sid) {
                life.events.push(CallEvent::Ended {
                    call_status: final_status.to_owned(),
                });
                life.done = true;
            }
        });
    }

    /// The call is now `call_status`: record it, and tell the status callback if subscribed.
    async fn progress(&self, call: &mut Call, event: &str, call_status: &str) {
        let sid = call.record.sid.clone();
        let answered_by = call.answered_by;
        self.board.update(|r| {
            if let Some(recorded) = r.calls.iter_mut().find(|c| c.sid == sid) {
                recorded.status = call_status.to_owned();
                recorded.answered_by = answered_by.map(str::to_owned);
            }
        });
        let Some(url) = call.record.status_callback.clone() else {
            return;
        };
        let subscribed = event == "completed"
            || call
                .record
                .status_callback_events
                .iter()
                .any(|e| e.eq_ignore_ascii_case(event));
        if !subscribed {
            return;
        }
        let mut params = call_params(call, call_status);
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), call.sequence.to_string()));
        params.push(("Timestamp".into(), rfc2822(SystemTime::now())));
        if call_status == "completed" {
            let secs = call.started.elapsed().as_secs().max(1);
            params.push(("CallDuration".into(), secs.to_string()));
        }
        call.sequence += 1;
        let method = call.record.status_callback_method.clone();
        let answer = self.webhook(method.as_deref(), &url, &params).await;
        let http_status = answer.ok().map(|(status, _)| status);
        self.log(
            &sid,
            CallEvent::StatusCallback {
                event: event.to_owned(),
                call_status: call_status.to_owned(),
                url,
                params,
                http_status,
            },
        );
    }

    /// The answered part: fetch TwiML and play it until it ends, hangs up or fails.
    async fn converse(&self, call: &Call, digits: &str, url_fails: bool) {
        let sid = &call.record.sid;
        let params = call_params(call, "in-progress");
        let mut fetched = 0;
        let (mut verbs, mut document_url) = match (&call.record.url, &call.record.twiml) {
            (Some(url), _) => {
                let method = call.record.method.as_deref();
                let first = if url_fails {
                    self.log(
                        sid,
                        CallEvent::TwimlRequested {
                            source: TwimlSource::Url,
                            url: url.clone(),
                            params: params.clone(),
                            http_status: None,
                            twiml: None,
                            error: Some("CallScript::UrlFails: Url taken as failed".to_owned()),
                        },
                    );
                    None
                } else {
                    fetched += 1;
                    self.fetch_twiml(sid, TwimlSource::Url, method, url, &params)
                        .await
                };
                match (first, &call.record.fallback_url) {
                    (Some(found), _) => found,
                    (None, Some(fallback)) => {
                        fetched += 1;
                        let method = call.record.fallback_method.as_deref();
                        let source = TwimlSource::FallbackUrl;
                        match self
                            .fetch_twiml(sid, source, method, fallback, &params)
                            .await
                        {
                            Some(found) => found,
                            None => return,
                        }
                    }
                    // "An application error has occurred": Twilio hangs up.
                    (None, None) => return,
                }
            }
            (None, Some(twiml)) => match twiml_scan::verbs(twiml) {
                Some(verbs) => (verbs, None),
                None => return,
            },
            (None, None) => return,
        };
        // The script's keys are pressed once, at the first `<Gather>`.
        let mut keys_left = !digits.is_empty();
        let mut i = 0;
        while i < verbs.len() {
            let verb = verbs[i].clone();
            i += 1;
            let (source, target, mut extra, method) = match verb {
                Verb::Say(text) => {
                    self.log(sid, CallEvent::Said(text));
                    continue;
                }
                Verb::Gather {
                    action,
                    num_digits,
                    method,
                    says,
                } => {
                    for text in says {
                        self.log(sid, CallEvent::Said(text));
                    }
                    if !keys_left {
                        continue; // No input: on to the next verb.
                    }
                    keys_left = false;
                    let typed: String = match num_digits {
                        Some(n) => digits.chars().take(n).collect(),
                        None => digits.to_owned(),
                    };
                    let target = action.unwrap_or_default();
                    let extra = vec![("Digits".to_owned(), typed)];
                    (TwimlSource::GatherAction, target, extra, method)
                }
                Verb::Redirect { url, method } => (TwimlSource::Redirect, url, Vec::new(), method),
                Verb::Hangup => return,
                Verb::Other(_) => continue,
            };
            if fetched >= MAX_DOCUMENTS {
                return;
            }
            fetched += 1;
            // An empty action means the document's own URL; relative ones resolve against it.
            let Some(url) = resolve(document_url.as_ref(), &target) else {
                return;
            };
            let mut sent = params.clone();
            sent.append(&mut extra);
            match self
                .fetch_twiml(sid, source, method.as_deref(), url.as_str(), &sent)
                .await
            {
                Some((next, next_url)) => {
                    verbs = next;
                    document_url = next_url;
                    i = 0;
                }
                None => return,
            }
        }
    }

    /// Request TwiML from `url`; the verbs and the URL to resolve against, if it answered with
    /// TwiML. Records the request either way.
    async fn fetch_twiml(
        &self,
        sid: &str,
        source: TwimlSource,
        method: Option<&str>,
        url: &str,
        params: &[(String, String)],
    ) -> Option<(Vec<Verb>, Option<Url>)> {
        let answer = self.webhook(method, url, params).await;
        let (http_status, twiml, error, verbs) = match answer {
            Err(err) => (None, None, Some(pager_notify::error_chain(&err)), None),
            Ok((status, _)) if !(200..300).contains(&status) => {
                (Some(status), None, Some(format!("HTTP {status}")), None)
            }
            Ok((status, body)) => match twiml_scan::verbs(&body) {
                Some(verbs) => (Some(status), Some(body), None, Some(verbs)),
                None => (
                    Some(status),
                    None,
                    Some("the answer is not TwiML (no <Response>)".to_owned()),
                    None,
                ),
            },
        };
        self.log(
            sid,
            CallEvent::TwimlRequested {
                source,
                url: url.to_owned(),
                params: params.to_vec(),
                http_status,
                twiml,
                error,
            },
        );
        Some((verbs?, Url::parse(url).ok()))
    }

    /// POST (or GET, if `method` says so) `params` to `url`, signed as Twilio signs; the
    /// answer's status and body, or why there is none.
    pub(super) async fn webhook(
        &self,
        method: Option<&str>,
        url: &str,
        params: &[(String, String)],
    ) -> reqwest::Result<(u16, String)> {
        self.webhook_signed(method, url, params, None).await
    }

    /// [`Shared::webhook`] with `signature` instead of the right one, if given.
    pub(super) async fn webhook_signed(
        &self,
        method: Option<&str>,
        url: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> reqwest::Result<(u16, String)> {
        let get = method.is_some_and(|m| m.eq_ignore_ascii_case("GET"));
        let request = if get {
            let separator = if url.contains('?') { '&' } else { '?' };
            let full = format!("{url}{separator}{}", form::encode(params));
            let signed = signature.map_or_else(
                || signature::sign(&self.auth_token, &full, &[]),
                str::to_owned,
            );
            self.webhooks.get(full).header(signature::HEADER, signed)
        } else {
            let signed = signature.map_or_else(
                || signature::sign(&self.auth_token, url, params),
                str::to_owned,
            );
            self.webhooks
                .post(url)
                .header(signature::HEADER, signed)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form::encode(params))
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok((status, body))
    }

    fn log(&self, sid: &str, event: CallEvent) {
        self.board.update(|r| {
            if let Some(life) = r.lives.get_mut(sid) {
                life.events.push(event);
            }
        });
    }
}

/// What Twilio sends about the call with every voice webhook.
fn call_params(call: &Call, call_status: &str) -> Vec<(String, String)> {
    let record = &call.record;
    let mut params: Vec<(String, String)> = [
        ("AccountSid", call.account_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", record.sid.as_str()),
        ("CallStatus", call_status),
        ("Called", record.to.as_str()),
        ("Caller", record.from.as_str()),
        ("Direction", "outbound-api"),
        ("From", record.from.as_str()),
        ("To", record.to.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if let Some(answered_by) = call.answered_by {
        params.push(("AnsweredBy".into(), answered_by.into()));
    }
    params
}

/// `target` resolved against the document's URL; an empty target is the document's URL.
fn resolve(document: Option<&Url>, target: &str) -> Option<Url> {
    match document {
        Some(base) if target.is_empty() => Some(base.clone()),
        Some(base) => base.join(target).ok(),
        None => Url::parse(target).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_against_the_document() {
        let base = Url::parse("http://127.0.0.1:9/voice/answer?d=7").ok();
        let resolved = |t: &str| resolve(base.as_ref(), t).map(String::from);
        assert_eq!(
            resolved("").as_deref(),
            Some("http://127.0.0.1:9/voice/answer?d=7")
        );
        assert_eq!(
            resolved("ack?x=1").as_deref(),
            Some("http://127.0.0.1:9/voice/ack?x=1")
        );
        assert_eq!(
            resolved("/other").as_deref(),
            Some("http://127.0.0.1:9/other")
        );
        assert_eq!(
            resolved("https://h.example/x").as_deref(),
            Some("https://h.example/x")
        );
        assert_eq!(resolve(None, "relative"), None);
    }
}
