//! The leader's sender. Its work list is what the applied effects say is
//! pending ([`crate::leader::effects`]); for each delivery on it claimed by its
//! own term and not yet in flight, it confirms it still holds a quorum and
//! starts one task per page: reconcile (an SMS in doubt), wait for its
//! slot (pacing), take a send permit, re-check, send, propose the `Outcome`.
//! Retries, backoff and fall-through are decisions of `apply`, not of this
//! loop.
//!
//! Fencing: only deliveries whose `claim_term` equals this node's current
//! leader term are sent, and only after `ensure_linearizable` confirmed the
//! term still leads a quorum (again, if the page waited long for its slot or
//! permit). A confirmation is dated from when it was asked, and checked once
//! more just before the request leaves, so a process stopped and woken seconds
//! later sends nothing on a check from before its sleep. A deposed leader
//! cannot commit, so it can claim nothing new.
//!
//! Reconciliation: a delivery in doubt (an earlier leader claimed it and
//! never recorded an outcome, or the last request's answer was lost) is, for
//! SMS, first looked up at Twilio after a short grace: a message to that
//! number since the claim whose body carries the delivery's reply code means
//! the page is out, and the outcome is recorded as `Sent { reconciled }`
//! instead of texting again. Voice and email cannot be looked up that way and
//! are re-sent (a duplicate call beats a missed one).

use crate::leader::effects::Claim;
use crate::leader::outbound::{self, Clients, Outbound, INTEGRATION_PERMITS};
use crate::leader::pages::{self, Urls};
use crate::leader::{jira, slack, webhook};
use crate::node::{now_ms, Node};
use pager_core::delivery::Purpose;
use pager_core::{Command, ContactKind, DeliveryId, DeliveryStatus, SendResult, Urgency};
use pager_notify::{mask, Method, Notifier, Page};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How soon pages that could not go out are tried again.
const RETRY_UNSENT: Duration = Duration::from_millis(200);
/// A page that waited longer than this after its batch's quorum check
/// confirms leadership again before it goes out.
const FENCE_FRESH: Duration = Duration::from_millis(500);

/// (delivery, attempt, term) being sent by this node.
type InFlight = Arc<Mutex<HashSet<(u64, u32, u64)>>>;

/// Twilio statuses of a message that did not reach the phone.
const NOT_DELIVERED: [&str; 3] = ["failed", "undelivered", "canceled"];

/// The sending loop and what it owns: its work list, the sends in flight, the
/// send permits and the channel on which ended sends hand their delivery back.
pub struct Dispatcher {
    node: Arc<Node>,
    notifier: Notifier,
    /// The integrations' clients (`[slack]`, `[jira]`).
    clients: Clients,
    claims: mpsc::UnboundedReceiver<Claim>,
    shutdown: watch::Receiver<bool>,
    work: WorkList,
    in_flight: InFlight,
    permits: Arc<Semaphore>,
    /// Integration requests' own permits: a hung provider holds none of the pages'.
    integration_permits: Arc<Semaphore>,
    // Sends that ended hand their delivery back: still pending (unsent, or an
    // outcome that did not commit) means it goes again, as the work list says.
    ended_tx: mpsc::UnboundedSender<(DeliveryId, u64)>,
    ended: mpsc::UnboundedReceiver<(DeliveryId, u64)>,
}

impl Dispatcher {
    pub fn new(
        node: Arc<Node>,
        notifier: Notifier,
        claims: mpsc::UnboundedReceiver<Claim>,
        shutdown: watch::Receiver<bool>,
    ) -> Dispatcher {
        let permits = Arc::new(Semaphore::new(node.cfg.dispatch_concurrency));
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let clients = Clients::from_config(&node.cfg);
        Dispatcher {
            node,
            notifier,
            clients,
            claims,
            shutdown,
            work: WorkList::default(),
            in_flight: Arc::default(),
            permits,
            integration_permits: Arc::new(Semaphore::new(INTEGRATION_PERMITS)),
            ended_tx,
            ended,
        }
    }

    pub async fn run(mut self) {
        let mut metrics = self.node.raft.metrics();
        let mut took_over = self.node.leader.takeover_term.subscribe();
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            while let Ok(claim) = self.claims.try_recv() {
                self.work.take(claim);
            }
            while let Ok((delivery, term)) = self.ended.try_recv() {
                self.work.take(Claim::Deliver { delivery, term });
            }
            self.work.forget_before(metrics.borrow().current_term);
            let mut unsent = false;
            if let Some(term) = self.node.leader_term() {
                // Nothing goes out before this process's takeover committed.
                if *took_over.borrow_and_update() == term {
                    unsent = self.dispatch(term).await;
                }
            }
            // Pages that could not go out (leadership not confirmed) are retried
            // on an interval too: on an idle cluster no new apply would wake us.
            let retry = async {
                if unsent {
                    tokio::time::sleep(RETRY_UNSENT).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = retry => {}
                _ = self.node.leader.sends.retry.notified() => {}
                Some(claim) = self.claims.recv() => self.work.take(claim),
                Some((delivery, term)) = self.ended.recv() => {
                    self.work.take(Claim::Deliver { delivery, term })
                }
                _ = took_over.changed() => {}
                _ = metrics.changed() => {}
                _ = self.shutdown.changed() => {}
            }
        }
    }
}

/// The deliveries the effects said are pending, with the term that claimed
/// each, oldest first. On a follower it mirrors the leader's; entries of
/// terms older than the current one are forgotten (a new leader's `Takeover`
/// claims everything unsettled again).
#[derive(Debug, Default)]
struct WorkList(BTreeMap<DeliveryId, u64>);

impl WorkList {
    fn take(&mut self, claim: Claim) {
        match claim {
            Claim::Deliver { delivery, term } => {
                self.0.insert(delivery, term);
            }
            Claim::Settled { delivery } => {
                self.0.remove(&delivery);
            }
        }
    }

    fn forget_before(&mut self, term: u64) {
        self.0.retain(|_, t| *t >= term);
    }
}

/// One page to send, with what its task needs to know.
struct Job {
    page: Page,
    /// A request to an integration (Slack, Jira) instead of a page through the notifier.
    outbound: Option<Outbound>,
    attempt: u32,
    /// Reconcile before sending (SMS in doubt), not before `reconcile_from` (wall ms).
    reconcile: Option<(u64, u64)>,
    high_urgency: bool,
    /// When the delivery's current attempt was claimed (wall ms).
    claimed_at: u64,
}

impl Dispatcher {
    /// The pages to send for `term`: deliveries on the work list it claimed,
    /// still pending and not in flight. Entries settled since leave the list;
    /// those of other terms stay.
    fn jobs(&mut self, term: u64) -> Vec<Job> {
        let node = &self.node;
        let urls = Urls {
            public: node.cfg.public_url.clone(),
            fallback: node.fallback_http_url(),
        };
        let grace = node.cfg.dispatch.reconcile_grace.as_millis() as u64;
        let mut busy = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // Sends of an earlier term of ours settle or get re-claimed; forget them.
        busy.retain(|k| k.2 == term);
        let now = now_ms();
        let work = &mut self.work;
        node.read(|s| {
            let mut jobs = Vec::new();
            work.0.retain(|&id, &mut claimed_by| {
                if claimed_by != term {
                    return true;
                }
                let Some(d) = s
                    .deliveries
                    .get(&id)
                    .filter(|d| d.status == DeliveryStatus::Pending && d.claim_term == term)
                else {
                    return false; // settled since: its own effect follows or came first
                };
                if busy.contains(&(d.id, d.attempt, term)) {
                    return false; // the task in flight hands it back when it ends
                }
                let reconcile = (d.in_doubt
                    && matches!(
                        d.method,
                        ContactKind::Sms | ContactKind::Slack | ContactKind::Jira
                    ))
                .then_some((d.claimed_at, d.updated_at + grace));
                if let Purpose::Chat { .. } | Purpose::Ticket { .. } | Purpose::Webhook { .. } =
                    d.purpose
                {
                    let text = s.incidents.get(&d.incident).map(|i| i.summary.clone());
                    let outbound = match d.purpose {
                        Purpose::Ticket { .. } => {
                            jira::build(s, d, &urls.public).map(Outbound::Jira)
                        }
                        Purpose::Webhook { .. } => {
                            webhook::build(s, d, &urls.public).map(Outbound::Webhook)
                        }
                        _ => slack::build(s, d, &urls.public, "").map(Outbound::Slack),
                    };
                    jobs.push(Job {
                        page: integration_page(d, text.unwrap_or_default()),
                        outbound,
                        attempt: d.attempt,
                        reconcile,
                        high_urgency: false,
                        claimed_at: d.claimed_at,
                    });
                    return true;
                }
                let standalone = match d.purpose {
                    Purpose::Page
                    | Purpose::Chat { .. }
                    | Purpose::Ticket { .. }
                    | Purpose::Webhook { .. } => None,
                    Purpose::Test => Some(pages::build_test(&node.cfg, &urls, d)),
                    Purpose::Invite { .. } => Some(pages::build_invite(&urls, s, d, now)),
                    Purpose::RcaReminder { incident, .. } => {
                        Some(pages::build_rca_reminder(&urls, s, incident, d))
                    }
                    Purpose::Handoff { .. }
                    | Purpose::ShiftReminder { .. }
                    | Purpose::ShiftsMoved { .. } => Some(pages::build_shift_email(s, d)),
                    Purpose::WeeklyReport { .. } => {
                        Some(pages::build_weekly_report(&urls, s, d, now))
                    }
                };
                if let Some(page) = standalone {
                    let outbound =
                        slack::build(s, d, &urls.public, &page.text).map(Outbound::Slack);
                    jobs.push(Job {
                        page,
                        outbound,
                        attempt: d.attempt,
                        reconcile,
                        high_urgency: false,
                        claimed_at: d.claimed_at,
                    });
                    return true;
                }
                let Some(inc) = s.incidents.get(&d.incident) else {
                    return false;
                };
                let page = pages::build(&node.cfg, &urls, s, inc, d, now);
                let outbound = slack::build(s, d, &urls.public, &page.text).map(Outbound::Slack);
                jobs.push(Job {
                    page,
                    outbound,
                    attempt: d.attempt,
                    reconcile,
                    high_urgency: inc.urgency == Urgency::High && !d.shadow,
                    claimed_at: d.claimed_at,
                });
                true
            });
            jobs
        })
    }

    /// Start a task for each of [`Self::jobs`]. True when pages could not go
    /// out (leadership not confirmed): they stay on the list and are tried
    /// again.
    async fn dispatch(&mut self, term: u64) -> bool {
        let jobs = self.jobs(term);
        let Dispatcher {
            node,
            notifier,
            clients,
            work,
            in_flight,
            permits,
            integration_permits,
            ended_tx: ended,
            ..
        } = self;
        if jobs.is_empty() {
            return false;
        }
        // Fence: this term must still lead a quorum before anything goes out.
        let confirmed = match confirm_leadership(node).await {
            Ok(asked) => asked,
            Err(e) => {
                warn!(node = node.id(), term, cause = %e, "not sending: leadership not confirmed");
                return true;
            }
        };
        for job in jobs {
            let id = job.page.delivery_id;
            // Off the list while in flight: the task hands it back when it ends.
            work.0.remove(&id);
            let key = (id, job.attempt, term);
            if !in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key)
            {
                continue;
            }
            let (node, notifier, clients, in_flight, ended) = (
                node.clone(),
                notifier.clone(),
                clients.clone(),
                in_flight.clone(),
                ended.clone(),
            );
            let permits = match job.outbound {
                Some(_) => integration_permits.clone(),
                None => permits.clone(),
            };
            tokio::spawn(async move {
                let recorded =
                    send_one(&node, &notifier, &clients, &permits, job, term, confirmed).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                // Skipped (leadership unconfirmed, a hand-over draining sends):
                // look again later, or an idle cluster would never wake us.
                if !recorded {
                    tokio::time::sleep(RETRY_UNSENT).await;
                }
                // Fails only once the dispatcher has stopped.
                let _ = ended.send((id, term));
            });
        }
        false
    }
}

async fn send_one(
    node: &Node,
    notifier: &Notifier,
    clients: &Clients,
    permits: &Semaphore,
    job: Job,
    term: u64,
    confirmed: Instant,
) -> bool {
    let Job {
        page,
        outbound,
        attempt,
        reconcile,
        high_urgency,
        claimed_at,
    } = job;
    let id = page.delivery_id;
    if let (Some((since, not_before)), Some(job)) = (reconcile, &outbound) {
        if job.findable() {
            let wait = not_before.saturating_sub(now_ms());
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            if !still_sendable(node, id, attempt, term) {
                return false;
            }
            let provider = job.provider();
            match job.find_sent(clients, since).await {
                Ok(Some(provider_id)) => {
                    info!(node = node.id(), delivery = id, provider, %provider_id,
                        "in-doubt integration request found done: not sending again");
                    let result = SendResult::Sent {
                        provider_id,
                        reconciled: true,
                    };
                    record_outcome(node, id, attempt, term, result).await;
                    return true;
                }
                Ok(None) => info!(
                    node = node.id(),
                    delivery = id,
                    provider,
                    "in-doubt integration request not done: sending"
                ),
                Err(e) => warn!(node = node.id(), delivery = id, provider, cause = %e,
                    "cannot look up an in-doubt integration request: sending (may duplicate)"),
            }
        }
    } else if let (Some((since, not_before)), None) = (reconcile, &outbound) {
        let wait = not_before.saturating_sub(now_ms());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if !still_sendable(node, id, attempt, term) {
            return false;
        }
        // Lookups count against the send concurrency: a new leader may
        // have hundreds to make, and Twilio limits concurrent requests.
        let found = {
            let Ok(_permit) = permits.acquire().await else {
                return false;
            };
            reconcile_sms(node, notifier, &page, since).await
        };
        if let Some(sid) = found {
            let result = SendResult::Sent {
                provider_id: sid,
                reconciled: true,
            };
            record_outcome(node, id, attempt, term, result).await;
            return true;
        }
    }
    if outbound.is_none() {
        let now = Instant::now();
        let slot = node
            .leader
            .pacer
            .reserve(page.method, &page.address, high_urgency, now);
        if slot > now {
            tokio::time::sleep_until(slot).await;
            node.leader.pacer.dequeued(page.method);
        }
    }
    let Ok(_permit) = permits.acquire().await else {
        return false;
    };
    // Waiting for a slot or a permit can take long under load: the incident
    // may have been acknowledged, or this node deposed, in the meantime.
    if !still_sendable(node, id, attempt, term) {
        return false;
    }
    let mut confirmed = confirmed;
    if confirmed.elapsed() > FENCE_FRESH {
        match confirm_leadership(node).await {
            Ok(asked) => confirmed = asked,
            Err(e) => {
                warn!(node = node.id(), term, delivery = id, cause = %e, "not sending: leadership not confirmed");
                return false;
            }
        }
    }
    // A hand-over is draining sends: leave this one claimed; the next leader
    // re-claims and sends it (not sent twice: it was never sent here).
    let Some(_sending) = node.leader.sends.start() else {
        return false;
    };
    // Last look before the request leaves: a process stopped (SIGSTOP, a VM
    // frozen) since its check wakes up here with the check long stale.
    if confirmed.elapsed() > FENCE_FRESH {
        warn!(
            node = node.id(),
            term,
            delivery = id,
            "not sending: leadership check went stale"
        );
        return false;
    }
    if let Some(job) = &outbound {
        let provider = job.provider();
        let result = match job.send(clients).await {
            Ok(provider_id) => {
                info!(node = node.id(), term, delivery = id, attempt, provider,
                    to = %mask::address(&page.address), %provider_id, "integration request sent");
                SendResult::Sent {
                    provider_id,
                    reconciled: false,
                }
            }
            Err(e) => {
                let class = outbound::class(&e);
                node.leader.integration_failed(provider, class);
                warn!(node = node.id(), term, delivery = id, attempt, provider,
                    to = %mask::address(&page.address), class, in_doubt = e.in_doubt,
                    cause = %e.message, "integration request failed");
                let (result, wait) = outbound::failure(provider, &e);
                if let Some(wait) = wait {
                    // The provider's Retry-After, honoured before the retry is
                    // planned; waited without a send permit or a place among the
                    // sends a hand-over drains, so nothing queues behind it.
                    drop(_sending);
                    drop(_permit);
                    tokio::time::sleep(wait).await;
                }
                result
            }
        };
        record_outcome(node, id, attempt, term, result).await;
        return true;
    }
    let result = match notifier.send(&page).await {
        Ok(sent) => {
            node.leader
                .page_latency
                .observe(now_ms().saturating_sub(claimed_at));
            info!(node = node.id(), term, delivery = id, attempt, method = ?page.method,
                to = %mask::address(&page.address), provider_id = %sent.provider_id, "page sent");
            SendResult::Sent {
                provider_id: sent.provider_id,
                reconciled: false,
            }
        }
        Err(e) => {
            warn!(node = node.id(), term, delivery = id, attempt, method = ?page.method,
                to = %mask::address(&page.address), code = ?e.code, retryable = e.retryable, cause = %e.message, "page failed");
            SendResult::Failed {
                retryable: e.retryable,
                in_doubt: e.in_doubt,
                code: e.code,
                message: e.message,
            }
        }
    };
    record_outcome(node, id, attempt, term, result).await;
    true
}

/// Confirm this node still leads a quorum; the confirmation holds from when it
/// was asked, not from when the answer came. A check asked just before the
/// process was stopped may be answered by acknowledgements the peers sent
/// then, read only when the process wakes, seconds after a new leader was
/// elected: dated by the answer, a stale check would look fresh. (A check
/// that itself took longer than [`FENCE_FRESH`] is caught by the look just
/// before the request leaves.)
async fn confirm_leadership(node: &Node) -> Result<Instant, String> {
    let asked = Instant::now();
    node.raft
        .ensure_linearizable()
        .await
        .map(|_| asked)
        .map_err(|e| e.to_string())
}

/// The [`Page`] an integration request is logged as (never sent through the notifier).
fn integration_page(d: &pager_core::Delivery, text: String) -> Page {
    Page {
        delivery_id: d.id,
        method: Method::Slack,
        address: d.address.clone(),
        subject: String::new(),
        text,
        html: None,
        voice: None,
    }
}

/// Lookups tried before sending anyway when Twilio keeps answering 429 / 5xx.
const LOOKUP_TRIES: u32 = 3;

/// The SID of the message an earlier attempt got out, if Twilio has it.
async fn reconcile_sms(
    node: &Node,
    notifier: &Notifier,
    page: &Page,
    since: u64,
) -> Option<String> {
    debug_assert_eq!(page.method, Method::Sms);
    let needle = pager_core::reply::sms_needle(page.delivery_id);
    let mut tries = 1;
    let mut backoff = Duration::from_millis(250);
    let answer = loop {
        match notifier.find_sms(&page.address, since, &needle).await {
            Err(e) if e.retryable && tries < LOOKUP_TRIES => {
                tries += 1;
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            answer => break answer,
        }
    };
    match answer {
        Ok(Some(found)) if !NOT_DELIVERED.contains(&found.status.as_str()) => {
            info!(node = node.id(), delivery = page.delivery_id, sid = %found.sid, status = %found.status,
                to = %mask::address(&page.address), "in-doubt SMS found at twilio: not sending again");
            Some(found.sid)
        }
        Ok(found) => {
            info!(node = node.id(), delivery = page.delivery_id, found = ?found.map(|f| f.status),
                "in-doubt SMS not out: sending");
            None
        }
        Err(e) => {
            // Cannot tell: a duplicate beats a missed page.
            warn!(node = node.id(), delivery = page.delivery_id, cause = %e.message,
                "cannot look up an in-doubt SMS: sending (may duplicate)");
            None
        }
    }
}

/// The delivery is still pending in this attempt, claimed by `term`, and this
/// node still believes it leads `term` (the quorum was confirmed for the batch).
fn still_sendable(node: &Node, delivery: u64, attempt: u32, term: u64) -> bool {
    node.leader_term() == Some(term)
        && node.read(|s| {
            s.deliveries.get(&delivery).is_some_and(|d| {
                d.status == pager_core::DeliveryStatus::Pending
                    && d.attempt == attempt
                    && d.claim_term == term
            })
        })
}

/// Propose the outcome, retrying while this node still leads `term`. If
/// leadership is lost the delivery stays unsettled and the next leader
/// re-claims it (in doubt: reconciled if it can be, else a counted duplicate).
async fn record_outcome(node: &Node, delivery: u64, attempt: u32, term: u64, result: SendResult) {
    let cmd = Command::Outcome {
        at: 0,
        delivery,
        attempt,
        result,
    };
    let mut backoff = Duration::from_millis(20);
    loop {
        match node.propose_in_term(term, cmd.clone()).await {
            Ok(_) => return,
            Err(e) if node.leader_term() == Some(term) => {
                error!(node = node.id(), delivery, cause = %e, "outcome not committed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                warn!(node = node.id(), delivery, cause = %e, "lost leadership before the outcome committed");
                return;
            }
        }
    }
}
