//! Raft timings: the node config's `[raft]` section, validated into an `openraft::Config`.

use serde::{Deserialize, Serialize};

/// Largest snapshot piece sent in one `InstallSnapshot` RPC. Chunks travel as JSON arrays of
/// numbers (up to 4 bytes of JSON per byte), so 1 MiB stays well below the peer message limit.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;

/// Raft timings and log-compaction thresholds of one node.
///
/// The defaults suit a LAN or a single region (round trips under ~5 ms): heartbeat 100 ms,
/// election timeout 400–800 ms. A follower stands only after the old leader's lease
/// (`election_timeout_max`) *and* its own random timeout have passed without a heartbeat, so
/// failover takes 1.2–1.75 s and a follower waits at least 12 heartbeats before it stands.
///
/// Across regions, every timeout must cover the round trip with room to spare: openraft uses the
/// heartbeat interval as the timeout of each `AppendEntries` RPC, and the minimum election
/// timeout as the timeout of each `Vote` RPC. docs/OPERATIONS.md ("Election timeouts") has a
/// table by round trip; for ~100 ms: heartbeat 300 ms, election timeout 1200–2400 ms,
/// `rpc_timeout_ms` 3000, failover about 4.5 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTimings {
    /// How often the leader sends heartbeats; also each `AppendEntries` RPC's timeout.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in `[min, max)` starts an election.
    pub election_timeout_min_ms: u64,
    /// See `election_timeout_min_ms`.
    pub election_timeout_max_ms: u64,
    /// Timeout for sending one snapshot chunk, and the default for peer RPCs without their own.
    pub rpc_timeout_ms: u64,
    /// Build a snapshot after this many entries were applied since the last one.
    pub snapshot_every_entries: u64,
    /// Log entries kept after a snapshot covers them, so a briefly lagging peer catches up from
    /// the log instead of a full snapshot.
    pub max_in_snapshot_log_to_keep: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            rpc_timeout_ms: 1000,
            snapshot_every_entries: 5000,
            max_in_snapshot_log_to_keep: 1000,
        }
    }
}

/// A rule of [`RaftTimings`] that the configured values break.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    #[error("heartbeat_interval_ms must be greater than 0")]
    HeartbeatZero,
    #[error(
        "heartbeat_interval_ms ({heartbeat_interval_ms}) must be less than \
         election_timeout_min_ms ({election_timeout_min_ms})"
    )]
    HeartbeatNotBelowElection {
        heartbeat_interval_ms: u64,
        election_timeout_min_ms: u64,
    },
    #[error("election_timeout_min_ms ({min}) must be less than election_timeout_max_ms ({max})")]
    ElectionRange { min: u64, max: u64 },
    #[error("rpc_timeout_ms must be greater than 0")]
    RpcTimeoutZero,
    #[error("snapshot_every_entries must be greater than 0")]
    SnapshotEveryZero,
    #[error("openraft rejected the config: {0}")]
    Openraft(Box<openraft::ConfigError>),
}

impl RaftTimings {
    /// Check every rule and build the openraft config; the first broken rule is returned.
    pub fn validate(&self) -> Result<openraft::Config, TimingsError> {
        if self.heartbeat_interval_ms == 0 {
            return Err(TimingsError::HeartbeatZero);
        }
        if self.heartbeat_interval_ms >= self.election_timeout_min_ms {
            return Err(TimingsError::HeartbeatNotBelowElection {
                heartbeat_interval_ms: self.heartbeat_interval_ms,
                election_timeout_min_ms: self.election_timeout_min_ms,
            });
        }
        if self.election_timeout_min_ms >= self.election_timeout_max_ms {
            return Err(TimingsError::ElectionRange {
                min: self.election_timeout_min_ms,
                max: self.election_timeout_max_ms,
            });
        }
        if self.rpc_timeout_ms == 0 {
            return Err(TimingsError::RpcTimeoutZero);
        }
        if self.snapshot_every_entries == 0 {
            return Err(TimingsError::SnapshotEveryZero);
        }

        let defaults = openraft::Config::default();
        let config = openraft::Config {
            cluster_name: "pagerd".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.rpc_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            // openraft: should exceed the snapshot interval, or a snapshot may not fix the lag.
            replication_lag_threshold: defaults
                .replication_lag_threshold
                .max(self.snapshot_every_entries.saturating_mul(2)),
            ..defaults
        };
        config
            .validate()
            .map_err(|e| TimingsError::Openraft(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = RaftTimings::default().validate().unwrap();
        assert_eq!(config.heartbeat_interval, 100);
        assert_eq!(config.election_timeout_min, 400);
        assert_eq!(config.election_timeout_max, 800);
    }

    #[test]
    fn wan_values_are_valid() {
        let wan = RaftTimings {
            heartbeat_interval_ms: 400,
            election_timeout_min_ms: 2500,
            election_timeout_max_ms: 5000,
            rpc_timeout_ms: 3000,
            ..RaftTimings::default()
        };
        wan.validate().unwrap();
    }

    #[test]
    fn each_rule_has_its_error() {
        let base = RaftTimings::default();
        let check = |t: RaftTimings| t.validate().unwrap_err();

        assert_eq!(
            check(RaftTimings {
                heartbeat_interval_ms: 0,
                ..base.clone()
            }),
            TimingsError::HeartbeatZero
        );
        assert_eq!(
            check(RaftTimings {
                heartbeat_interval_ms: 400,
                ..base.clone()
            }),
            TimingsError::HeartbeatNotBelowElection {
                heartbeat_interval_ms: 400,
                election_timeout_min_ms: 400
            }
        );
        assert_eq!(
            check(RaftTimings {
                election_timeout_max_ms: 400,
                ..base.clone()
            }),
            TimingsError::ElectionRange { min: 400, max: 400 }
        );
        assert_eq!(
            check(RaftTimings {
                rpc_timeout_ms: 0,
                ..base.clone()
            }),
            TimingsError::RpcTimeoutZero
        );
        assert_eq!(
            check(RaftTimings {
                snapshot_every_entries: 0,
                ..base
            }),
            TimingsError::SnapshotEveryZero
        );
    }

    #[test]
    fn error_names_the_values() {
        let err = RaftTimings {
            election_timeout_min_ms: 900,
            election_timeout_max_ms: 800,
            ..RaftTimings::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "election_timeout_min_ms (900) must be less than election_timeout_max_ms (800)"
        );
    }
}
