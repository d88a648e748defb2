//! Per-integration-key event rate limit: a token bucket per routing key on
//! each node (an alert source that loops must not starve the others). Local
//! to the node that takes the event, not replicated: with N nodes a source
//! spreading its events could reach N times the rate, which is still bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct KeyLimiter {
    /// Tokens added per second; 0 disables the limit.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Keys remembered at most; idle full buckets are dropped past it.
const MAX_KEYS: usize = 100_000;

impl KeyLimiter {
    pub fn new(per_second: f64, burst: u32) -> KeyLimiter {
        KeyLimiter {
            rate: per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one event for `key` at `now`: Ok, or how long until one fits.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = KeyLimiter::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("k", t0), Ok(()));
        }
        let wait = l.take("k", t0).expect_err("over the burst");
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(l.take("other", t0), Ok(()), "keys are independent");
        assert_eq!(l.take("k", t0 + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let l = KeyLimiter::new(0.0, 1);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| l.take("k", t0).is_ok()));
    }
}
