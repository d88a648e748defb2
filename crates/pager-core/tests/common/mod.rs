//! A replicated log in miniature for exact-effect tests: commands applied in
//! order at increasing indexes, invariants checked after every one.

#![allow(dead_code)]

use pager_core::command::{Command, Effect, Response};
use pager_core::delivery::Delivery;
use pager_core::{Event, LogMeta, OnCallDoc, SendResult, State};

pub struct Log {
    pub state: State,
    pub index: u64,
    /// The term of the entries applied next (a test raises it for a new leader).
    pub term: u64,
}

impl Log {
    /// A state with `doc` applied at `at` (version 1); the document must be valid.
    pub fn with_doc(doc: &str, at: u64) -> Log {
        let mut log = Log {
            state: State::default(),
            index: 0,
            term: 1,
        };
        let doc = OnCallDoc::from_toml(doc).expect("fixture parses");
        assert_eq!(doc.validate(), vec![]);
        let (r, _) = log.apply(Command::ApplyConfig {
            at,
            doc: Box::new(doc),
        });
        assert_eq!(r, Response::ConfigApplied { version: 1 });
        log
    }

    pub fn apply(&mut self, cmd: Command) -> (Response, Vec<Effect>) {
        self.index += 1;
        let applied = self.state.apply(
            LogMeta {
                index: self.index,
                term: self.term,
            },
            &cmd,
        );
        self.state
            .check_invariants()
            .expect("invariants hold after every apply");
        (applied.response, applied.effects)
    }

    /// Ingest `event` at `at`; the incident it opened or joined.
    pub fn open(&mut self, at: u64, event: Event) -> u64 {
        let mut cmd = Command::Ingest {
            at: 0,
            event: Box::new(event),
        };
        cmd.stamp(at);
        match self.apply(cmd).0 {
            Response::Event {
                incident: Some(incident),
                ..
            } => incident,
            r => panic!("trigger: {r:?}"),
        }
    }

    /// The outcome of `d`'s current attempt.
    pub fn outcome(&mut self, at: u64, d: &Delivery, result: SendResult) -> Response {
        self.apply(Command::Outcome {
            at,
            delivery: d.id,
            attempt: d.attempt,
            result,
        })
        .0
    }
}
