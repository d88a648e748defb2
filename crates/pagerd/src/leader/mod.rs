//! The leader's work, and the watch every node keeps on itself. Each loop
//! runs on every node and acts only while this node leads (or, for
//! [`monitor`], whatever it is). Which voter stands first when the leader goes
//! silent is consensus mechanics: `pager_raft::elections`, started beside
//! these in `crate::start`.
//!
//! - [`effects`]: the core's effects of each apply, routed to the loops below
//! - [`scheduler`]: the clock (`Takeover` on election, `Tick` at the next
//!   deadline)
//! - [`dispatcher`] with [`pages`], [`pacer`] and [`latency`]: sending the
//!   deliveries claimed by this term, at the pace providers allow, and the
//!   page-latency histogram
//! - [`retention`]: proposing `Compact` for incidents resolved long ago
//! - [`transfer`]: handing leadership to a preferred region, or away before a
//!   planned stop
//! - [`monitor`]: quorum health, the dead man's switch, the isolation notice

pub mod dispatcher;
pub mod effects;
pub mod latency;
pub mod monitor;
pub mod pacer;
pub mod pages;
pub mod retention;
pub mod scheduler;
pub mod transfer;
