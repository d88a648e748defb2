//! A Prometheus histogram of page latency: from the moment a delivery was
//! claimed (its deadline, in practice) to the provider accepting the page,
//! observed by the leader's dispatcher. Lock-free counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in milliseconds.
pub const BUCKETS_MS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket, then the overflow (+Inf only).
    counts: [AtomicU64; BUCKETS_MS.len() + 1],
    sum_ms: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, ms: u64) {
        let i = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Prometheus text for a histogram named `name` (seconds).
    pub fn render(&self, name: &str, help: &str) -> String {
        use std::fmt::Write as _;
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut total = 0;
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            total += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {total}",
                *bound as f64 / 1000.0
            );
        }
        total += self.counts[BUCKETS_MS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        for ms in [10, 60, 60, 2_000_000] {
            h.observe(ms);
        }
        let text = h.render("x", "y");
        assert!(text.contains("x_bucket{le=\"0.05\"} 1\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"0.1\"} 3\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"900\"} 3\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_count 4\n"), "{text}");
        assert!(text.contains("x_sum 2000.13\n"), "{text}");
    }
}
