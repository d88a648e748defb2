//! When the leader may send each page: an account-wide rate per method
//! (Twilio starts 1 call per second per account by default) and a
//! per-recipient throttle (a storm of 1,000 incidents must not become 1,000
//! texts in a minute to one phone) that never holds a high-urgency page back
//! longer than a bound.
//!
//! Leader-local and not replicated: pacing decides *when* a claimed delivery
//! goes out, never *whether*. A new leader starts with empty buckets.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

use crate::config::DispatchSettings;
use pager_notify::Method;

#[derive(Debug)]
pub struct Pacer {
    calls_interval: Option<Duration>,
    messages_interval: Option<Duration>,
    burst: usize,
    window: Duration,
    high_max_delay: Duration,
    inner: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    /// Next free account slot per method.
    next_call: Option<Instant>,
    next_message: Option<Instant>,
    /// Send instants per recipient (past and reserved), sorted, within the window.
    recent: HashMap<String, VecDeque<Instant>>,
    /// Pages holding a slot in the future.
    queued: HashMap<&'static str, usize>,
}

fn interval(per_second: f64) -> Option<Duration> {
    (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second))
}

impl Pacer {
    pub fn new(s: &DispatchSettings) -> Pacer {
        Pacer {
            calls_interval: interval(s.calls_per_second),
            messages_interval: interval(s.messages_per_second),
            burst: s.recipient_burst.max(1) as usize,
            window: s.recipient_window,
            high_max_delay: s.high_urgency_max_delay,
            inner: Mutex::new(Slots::default()),
        }
    }

    /// Reserve the instant at which a page to `address` by `method` may go
    /// out (now or later). Call [`Pacer::done`] with the method once it went.
    pub fn reserve(
        &self,
        method: Method,
        address: &str,
        high_urgency: bool,
        now: Instant,
    ) -> Instant {
        let mut slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Per recipient: the burst-th most recent send must be a window ago.
        let key = format!("{}:{address}", method.as_str());
        let recent = slots.recent.entry(key.clone()).or_default();
        while recent.front().is_some_and(|t| *t + self.window <= now) {
            recent.pop_front();
        }
        let mut at = now;
        if recent.len() >= self.burst {
            let free = recent[recent.len() - self.burst] + self.window;
            at = at.max(free);
            if high_urgency {
                at = at.min(now + self.high_max_delay);
            }
        }
        // Account-wide pacing per method.
        let (next, step) = match method {
            Method::Voice => (&mut slots.next_call, self.calls_interval),
            Method::Sms => (&mut slots.next_message, self.messages_interval),
            Method::Email | Method::Slack => (&mut None, None),
        };
        if let Some(step) = step {
            let slot = next.map_or(at, |n| n.max(at));
            *next = Some(slot + step);
            at = slot;
        }
        let recent = slots.recent.entry(key).or_default();
        // Kept sorted: a high-urgency page may take a slot before queued ones.
        let pos = recent.partition_point(|t| *t <= at);
        recent.insert(pos, at);
        if at > now {
            *slots.queued.entry(method.as_str()).or_default() += 1;
        }
        at
    }

    /// A page that waited for its slot left the queue.
    pub fn dequeued(&self, method: Method) {
        let mut slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = slots.queued.get_mut(method.as_str()) {
            *n = n.saturating_sub(1);
        }
    }

    /// Pages waiting for their slot, per method.
    pub fn queued(&self) -> Vec<(&'static str, usize)> {
        let slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = slots.queued.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cps: f64, burst: u32, window_ms: u64, high_ms: u64) -> DispatchSettings {
        DispatchSettings {
            calls_per_second: cps,
            messages_per_second: 0.0,
            recipient_burst: burst,
            recipient_window: Duration::from_millis(window_ms),
            high_urgency_max_delay: Duration::from_millis(high_ms),
            reconcile_grace: Duration::ZERO,
            call_timeout_secs: 30,
            machine_detection: true,
            link_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn calls_are_spaced_account_wide() {
        let p = Pacer::new(&settings(1.0, 100, 60_000, 5_000));
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..3)
            .map(|i| p.reserve(Method::Voice, &format!("+1555000000{i}"), true, t0) - t0)
            .collect();
        assert_eq!(
            slots,
            vec![
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2)
            ]
        );
        // SMS is not paced by default.
        assert_eq!(p.reserve(Method::Sms, "+15550000000", true, t0), t0);
        assert_eq!(p.queued(), vec![("voice", 2)]);
    }

    #[test]
    fn a_recipient_burst_waits_for_the_window_but_high_urgency_only_for_the_bound() {
        let p = Pacer::new(&settings(0.0, 2, 60_000, 5_000));
        let t0 = Instant::now();
        let to = "+15550000001";
        assert_eq!(p.reserve(Method::Sms, to, false, t0), t0);
        assert_eq!(p.reserve(Method::Sms, to, false, t0), t0);
        // Third low-urgency page: when the first leaves the window.
        assert_eq!(
            p.reserve(Method::Sms, to, false, t0),
            t0 + Duration::from_secs(60)
        );
        // A high-urgency page waits at most 5 s.
        assert_eq!(
            p.reserve(Method::Sms, to, true, t0),
            t0 + Duration::from_secs(5)
        );
        // Another recipient is not held back.
        assert_eq!(p.reserve(Method::Sms, "+15550000002", false, t0), t0);
    }
}
