//! The same log applied on two replicas yields byte-identical state, the
//! invariants hold after every command of random histories, and the effects
//! announce exactly what the runtime must act on (the contract `pagerd`'s
//! dispatcher and scheduler are built on).

use pager_core::command::{Command, Effect, SendResult};
use pager_core::{ContactKind, Event, EventAction, LogMeta, OnCallDoc, PhoneAction, State};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const DOC: &str = r#"
[users.a]
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" }, { name = "e", type = "email", address = "a@example.com" } ]
notification_rules.high = [ { after = "0", contact = "m" }, { after = "20s", contact = "e" } ]
[users.b]
contact_methods = [ { name = "m", type = "voice", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[escalation_policies.p]
repeat = 2
levels = [ { escalate_after = "1m", targets = [ { user = "a" } ] }, { escalate_after = "2m", targets = [ { user = "b" }, { user = "a" } ] } ]
[schedules.day]
time_zone = "Europe/Berlin"
[[schedules.day.layers]]
name = "turns"
start = "2023-11-14T00:00:00"
rotation = "hourly"
users = ["a", "b"]
[teams.t]
members = ["a", "b"]
admins = ["a", "b"]
# The run starts on a Tuesday at 22:13:20 UTC: the report falls inside most runs.
weekly_report = { to = ["t@example.com"], day = "tue", at = "22:20" }
slack_channel = "C0TEAMT0001"
[tiers.one]
ack_sla = "30s"
rca = "required"
rca_due = "2m"
[services.s]
integration_keys = ["key-00000001"]
escalation_policy = "p"
team = "t"
tier = "one"
jira = { project = "OPS" }
[webhooks.w]
url = "https://hooks.example.com/x"
services = ["s"]
"#;

#[derive(Debug, Clone)]
enum Op {
    Trigger(u8),
    Ack(u8),
    Resolve(u8),
    ResolveEvent(u8),
    Tick(u32),
    Outcome(u8, bool, bool),
    NewTerm,
    /// SMS reply (code or bare) from a's phone: ack / resolve / escalate.
    Reply(Option<u8>, u8),
    /// Call status for delivery d: ended unanswered, or answered by a machine.
    CallEnded(u8, bool),
    /// a's SMS replied STOP (false) or START (true).
    SmsHealth(bool),
    /// A permanent 21610 failure of delivery d.
    Unsubscribed(u8),
    /// Forget incidents resolved more than this many ms ago.
    Compact(u32),
    /// Merge incident i into j.
    Merge(u8, u8),
    /// Edit incident i's RCA: short form, full template, repair items
    /// (open or done), or an assignee who may not exist.
    EditRca(u8, u8),
    CompleteRca(u8),
    MarkDuplicate(u8, Option<u8>),
    MoveCard(u8, u8),
    /// Rotate a's calendar feed (or an unknown user's: refused).
    RotateCalendar(bool),
    /// A note for the schedule's next on-call (or an empty one: refused).
    HandoffNote(bool),
    /// b takes the schedule for the next n minutes (shifts move; handoffs replan).
    Override(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6).prop_map(Op::Trigger),
        1 => (1u8..8).prop_map(Op::Ack),
        1 => (1u8..8).prop_map(Op::Resolve),
        1 => (0u8..6).prop_map(Op::ResolveEvent),
        4 => (0u32..200_000).prop_map(Op::Tick),
        3 => (1u8..30, any::<bool>(), any::<bool>()).prop_map(|(d, ok, r)| Op::Outcome(d, ok, r)),
        1 => Just(Op::NewTerm),
        1 => (proptest::option::of(1u8..30), 0u8..3).prop_map(|(d, a)| Op::Reply(d, a)),
        1 => (1u8..30, any::<bool>()).prop_map(|(d, m)| Op::CallEnded(d, m)),
        1 => any::<bool>().prop_map(Op::SmsHealth),
        1 => (1u8..30).prop_map(Op::Unsubscribed),
        1 => (0u32..100_000).prop_map(Op::Compact),
        1 => (1u8..8, 1u8..8).prop_map(|(i, j)| Op::Merge(i, j)),
        2 => (1u8..8, 0u8..5).prop_map(|(i, e)| Op::EditRca(i, e)),
        1 => (1u8..8).prop_map(Op::CompleteRca),
        1 => (1u8..8, proptest::option::of(1u8..8)).prop_map(|(i, o)| Op::MarkDuplicate(i, o)),
        1 => (1u8..8, 0u8..5).prop_map(|(i, s)| Op::MoveCard(i, s)),
        1 => any::<bool>().prop_map(Op::RotateCalendar),
        1 => any::<bool>().prop_map(Op::HandoffNote),
        1 => (1u8..10).prop_map(Op::Override),
    ]
}

fn to_commands(ops: &[Op]) -> Vec<(u64, Command)> {
    let mut at = 1_700_000_000_000u64;
    let mut term = 1;
    let doc = OnCallDoc::from_toml(DOC).unwrap();
    let mut out = vec![(
        term,
        Command::ApplyConfig {
            at,
            doc: Box::new(doc),
        },
    )];
    for op in ops {
        at += 1_000;
        let ev = |action, k: u8| Event {
            routing_key: "key-00000001".into(),
            action,
            dedup_key: format!("k{k}"),
            summary: "s".into(),
            ..Default::default()
        };
        let cmd = match op {
            Op::Trigger(k) => Command::Ingest {
                at,
                event: Box::new(ev(EventAction::Trigger, *k)),
            },
            Op::ResolveEvent(k) => Command::Ingest {
                at,
                event: Box::new(ev(EventAction::Resolve, *k)),
            },
            Op::Ack(i) => Command::Acknowledge {
                at,
                incident: *i as u64,
                by: "x".into(),
            },
            Op::Resolve(i) => Command::Resolve {
                at,
                incident: *i as u64,
                by: "x".into(),
            },
            Op::Tick(d) => {
                at += *d as u64;
                Command::Tick { at }
            }
            Op::Outcome(d, ok, retryable) => Command::Outcome {
                at,
                delivery: *d as u64,
                attempt: 1,
                result: if *ok {
                    SendResult::Sent {
                        provider_id: format!("SM{d}"),
                        reconciled: false,
                    }
                } else {
                    SendResult::Failed {
                        in_doubt: false,
                        retryable: *retryable,
                        code: None,
                        message: "x".into(),
                    }
                },
            },
            Op::Reply(d, a) => Command::PhoneReply {
                at,
                from: "+15550000001".into(),
                via: ContactKind::Sms,
                delivery: d.map(u64::from),
                action: [
                    PhoneAction::Acknowledge,
                    PhoneAction::Resolve,
                    PhoneAction::Escalate,
                ][*a as usize],
            },
            Op::CallEnded(d, machine) => Command::CallStatus {
                at,
                delivery: *d as u64,
                attempt: 1,
                status: if *machine { "completed" } else { "no-answer" }.into(),
                answered_by: if *machine { "machine_end_beep" } else { "" }.into(),
            },
            Op::SmsHealth(reachable) => Command::ContactHealth {
                at,
                method: ContactKind::Sms,
                address: "+15550000001".into(),
                reachable: *reachable,
                reason: "replied STOP".into(),
            },
            Op::Unsubscribed(d) => Command::Outcome {
                at,
                delivery: *d as u64,
                attempt: 1,
                result: SendResult::Failed {
                    retryable: false,
                    in_doubt: false,
                    code: Some(21610),
                    message: "unsubscribed".into(),
                },
            },
            Op::Compact(age) => Command::Compact {
                at,
                resolved_before: at.saturating_sub(*age as u64),
            },
            Op::Merge(i, j) => Command::Merge {
                at,
                incident: *i as u64,
                into: *j as u64,
                by: "a".into(),
            },
            Op::EditRca(i, e) => {
                let mut edit = pager_core::rca::RcaEdit::default();
                let repair = |done| pager_core::rca::RepairItem {
                    title: "fix the disk alert".into(),
                    link: String::new(),
                    done,
                };
                match e {
                    0 => edit.summary = Some("a flapping check".into()),
                    1 => {
                        edit.customer_impact = Some(true);
                        edit.impact = Some("checkout slow".into());
                        edit.findings = Some("a full disk".into());
                        edit.mitigation = Some("a: cleaned up".into());
                    }
                    2 => edit.repairs = Some(vec![repair(false)]),
                    3 => edit.repairs = Some(vec![repair(true)]),
                    _ => edit.assignee = Some(if *i % 2 == 0 { "b" } else { "nobody" }.into()),
                }
                Command::EditRca {
                    at,
                    incident: *i as u64,
                    edit: Box::new(edit),
                    by: "a".into(),
                }
            }
            Op::CompleteRca(i) => Command::CompleteRca {
                at,
                incident: *i as u64,
                by: "a".into(),
            },
            Op::MarkDuplicate(i, of) => Command::MarkDuplicate {
                at,
                incident: *i as u64,
                of: of.map(u64::from),
                by: "a".into(),
            },
            Op::MoveCard(i, s) => Command::MoveCard {
                at,
                incident: *i as u64,
                stage: pager_core::Stage::ALL[*s as usize],
                by: "a".into(),
            },
            Op::RotateCalendar(known) => Command::RotateCalendar {
                at,
                subject: pager_core::command::CalendarSubject::User(
                    if *known { "a" } else { "nobody" }.into(),
                ),
                by: "a".into(),
            },
            Op::HandoffNote(ok) => Command::HandoffNote {
                at,
                schedule: "day".into(),
                text: if *ok { "disk on db1" } else { " " }.into(),
                by: "a".into(),
            },
            Op::Override(n) => Command::AddOverride {
                at,
                schedule: "day".into(),
                over: pager_core::schedule::Override {
                    user: "b".into(),
                    replaces: None,
                    start: at,
                    end: at + u64::from(*n) * 60_000,
                },
                by: "a".into(),
            },
            Op::NewTerm => {
                term += 1;
                Command::Takeover {
                    at,
                    key_seed: String::new(),
                }
            }
        };
        out.push((term, cmd));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn replicas_agree_byte_for_byte(ops in proptest::collection::vec(op(), 1..120)) {
        let cmds = to_commands(&ops);
        let mut a = State::default();
        let mut b = State::default();
        for (i, (term, cmd)) in cmds.iter().enumerate() {
            let meta = LogMeta { index: i as u64 + 1, term: *term };
            let ra = a.apply(meta, cmd);
            a.check_invariants().map_err(TestCaseError::fail)?;
            // Replica b sees the command after a JSON round trip, as over the wire.
            let wire: Command = serde_json::from_slice(&serde_json::to_vec(cmd).unwrap()).unwrap();
            let rb = b.apply(meta, &wire);
            prop_assert_eq!(ra, rb);
        }
        let sa = serde_json::to_vec(&a).unwrap();
        let sb = serde_json::to_vec(&b).unwrap();
        prop_assert_eq!(&sa, &sb);
        // A snapshot restores to an identical state.
        let restored: State = serde_json::from_slice(&sa).unwrap();
        prop_assert_eq!(serde_json::to_vec(&restored).unwrap(), sa);
    }

    /// A work list kept only from effects (`Deliver` adds, a settle removes)
    /// equals, from each term's `Takeover` on, the deliveries pending for that
    /// term: what the dispatcher sends without scanning the state. And a
    /// `WakeAt(t)` comes exactly when the earliest deadline changed to `t`.
    #[test]
    fn effects_announce_every_pending_delivery_and_deadline(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let cmds = to_commands(&ops);
        let mut state = State::default();
        let mut work: BTreeMap<u64, u64> = BTreeMap::new();
        let mut taken_over = 1; // term 1 needs no takeover: nothing was claimed before it
        for (i, (term, cmd)) in cmds.iter().enumerate() {
            let meta = LogMeta { index: i as u64 + 1, term: *term };
            if matches!(cmd, Command::Takeover { .. }) {
                // The new leader starts with an empty list.
                work.clear();
                taken_over = *term;
            }
            let before = state.next_deadline();
            let applied = state.apply(meta, cmd);
            let mut woke = None;
            for effect in &applied.effects {
                match *effect {
                    Effect::Deliver { delivery, term: t } => {
                        prop_assert_eq!(t, *term);
                        work.insert(delivery, t);
                    }
                    Effect::DeliverySent { delivery }
                    | Effect::DeliveryFailed { delivery, .. }
                    | Effect::DeliveryCancelled { delivery } => {
                        work.remove(&delivery);
                    }
                    Effect::WakeAt(t) => woke = Some(t),
                    _ => {}
                }
            }
            let after = state.next_deadline();
            let expected_wake = if after != before { after } else { None };
            prop_assert_eq!(woke, expected_wake);
            if taken_over == *term {
                let pending: BTreeSet<u64> = state
                    .pending_deliveries()
                    .filter(|d| d.claim_term == *term)
                    .map(|d| d.id)
                    .collect();
                let announced: BTreeSet<u64> = work.keys().copied().collect();
                prop_assert_eq!(&announced, &pending);
                // Nothing pending belongs to another term after a takeover.
                prop_assert_eq!(pending.len(), state.pending_deliveries().count());
            }
        }
    }
}
