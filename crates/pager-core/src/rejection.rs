//! Why a command or an event was refused: the one error type of the domain.
//!
//! Its own module so that the rows that validate themselves ([`crate::event`])
//! and the commands that carry them ([`crate::command`]) both use it without
//! depending on each other.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a command changed nothing. `pagerd` maps these to gRPC codes in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// A field of the command or event is wrong.
    Invalid {
        /// The field at fault (`summary`, `until`, `targets`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something the command names does not exist.
    NotFound {
        /// The field that names it.
        field: String,
        /// What was not found (`incident`, `token "ci"`).
        what: String,
    },
    /// The on-call document does not validate; nothing was applied.
    ConfigInvalid {
        /// Every problem found, sorted by path.
        problems: Vec<crate::oncall::Problem>,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            Rejection::NotFound { field, what } => write!(f, "{field}: {what} not found"),
            Rejection::ConfigInvalid { problems } => {
                write!(f, "{} problem(s) in the on-call document", problems.len())?;
                for p in problems {
                    write!(f, "; {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Rejection {}
