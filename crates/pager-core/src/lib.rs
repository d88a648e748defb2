//! pager-core: the paging domain as a pure, deterministic state machine.
//! (Being written; the public names below are stable.)

use serde::{Deserialize, Serialize};

/// Position of a committed command in the Raft log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogMeta {
    pub index: u64,
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Tick { at: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Entries with no command (blank, membership) and commands with nothing to say.
    Noop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    WakeAt(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub response: Response,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub last_applied: LogMeta,
}

impl State {
    pub fn apply(&mut self, meta: LogMeta, _cmd: &Command) -> Applied {
        self.last_applied = meta;
        Applied { response: Response::Noop, effects: vec![] }
    }
}
