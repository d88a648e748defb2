//! Who led which term, and since when, read from the nodes' own logs.
//!
//! pagerd's scheduler logs `became leader: proposing takeover node=N term=T` (INFO) as soon as
//! it sees its node lead a term, before the `Takeover` that must commit before the node sends
//! any page; a node restarted into the same term logs it again. With the default text format
//! the line starts with an RFC 3339 UTC timestamp taken by the node's clock, the same clock the
//! fake providers stamp pages with (one machine). The log lags the election itself by the
//! scheduler's reaction time, so an [`Election::at`] is a little *after* the moment the node
//! became leader; it is never after its first page.

use crate::cluster::Cluster;
use std::time::SystemTime;

/// The line pagerd logs when a node finds itself leader of a term.
pub const MARKER: &str = "became leader: proposing takeover";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Election {
    pub term: u64,
    pub node: u64,
    /// When the node logged it (the first time, for that node and term).
    pub at: SystemTime,
}

/// Every election in node `node`'s log `text`, in log order (repeats of a term included).
pub fn parse_log(node: u64, text: &str) -> Vec<Election> {
    text.lines()
        .filter(|l| l.contains(MARKER))
        .filter_map(|l| {
            let at = parse_rfc3339(l.split_whitespace().next()?)?;
            let term = field(l, "term")?;
            // The line names its node; a line about another node would be a harness mix-up.
            (field(l, "node")? == node).then_some(Election { term, node, at })
        })
        .collect()
}

/// Every node's elections, the first line per (node, term), ordered by time.
pub fn from_cluster(cluster: &Cluster) -> anyhow::Result<Vec<Election>> {
    let mut all = Vec::new();
    for id in cluster.ids() {
        all.extend(parse_log(id, &cluster.log(id)?));
    }
    Ok(first_per_term(all))
}

/// Keep the earliest record of each (node, term), ordered by time.
pub fn first_per_term(mut all: Vec<Election>) -> Vec<Election> {
    all.sort_by_key(|e| (e.node, e.term, e.at));
    all.dedup_by_key(|e| (e.node, e.term));
    all.sort_by_key(|e| (e.at, e.term));
    all
}

/// `key=<number>` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `2026-11-21T19:57:00.221892Z` (UTC, any number of fraction digits), as
/// tracing writes it: a `T` between date and time and a `Z`, nothing else.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    if s.as_bytes().get(10) != Some(&b'T') || !s.ends_with('Z') {
        return None;
    }
    let at: jiff::Timestamp = s.parse().ok()?;
    Some(SystemTime::from(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::epoch_ms;

    #[test]
    fn timestamps_as_tracing_writes_them() {
        let t = parse_rfc3339("2023-08-24T05:01:45.123456Z").expect("parses");
        assert_eq!(epoch_ms(t), 1_692_853_305_123);
        let leap = parse_rfc3339("2000-02-29T00:00:00Z").expect("parses");
        assert_eq!(epoch_ms(leap), 951_782_400_000);
        assert_eq!(
            epoch_ms(parse_rfc3339("1970-01-01T00:00:00.5Z").unwrap()),
            500
        );
        assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-08-24 05:01:45Z"), None);
    }

    #[test]
    fn elections_are_read_from_a_node_log() {
        let log = "\
2026-11-21T19:57:00.221892Z  INFO pagerd::scheduler: became leader: proposing takeover node=1 term=1
2026-11-21T19:57:00.300000Z  INFO pagerd::dispatcher: page sent node=1 term=1 delivery=3
2026-11-21T19:57:02.082053Z  INFO pagerd::scheduler: became leader: proposing takeover node=1 term=1
2026-11-21T19:57:13.188893Z  INFO pagerd::scheduler: became leader: proposing takeover node=1 term=3
";
        let got = parse_log(1, log);
        assert_eq!(
            got.iter().map(|e| e.term).collect::<Vec<_>>(),
            vec![1, 1, 3]
        );
        assert!(parse_log(2, log).is_empty(), "lines of another node");
        let firsts = first_per_term(got.clone());
        assert_eq!(firsts.len(), 2);
        assert_eq!(firsts[0], got[0]);
    }
}
