//! The commands, one module per variant of [`crate::cli::Command`]: each
//! holds its clap arguments, its `run` (the gRPC calls) and its printing
//! (`human` text and `json`). What several commands share is in [`common`];
//! the generic printing (tables, `key  value` blocks, timestamps) is in
//! [`crate::output`].

pub mod apply;
pub mod calendar;
pub mod cluster;
pub mod common;
pub mod completions;
pub mod config;
pub mod diff;
pub mod event;
pub mod handoff;
pub mod incident;
pub mod oncall;
pub mod rca;
pub mod report;
pub mod schedule;
pub mod simulate;
pub mod token;
pub mod user;
pub mod webhook;
