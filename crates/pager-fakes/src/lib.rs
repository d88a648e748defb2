//! Test doubles for the providers pagerd cannot reach from a test: [`twilio::FakeTwilio`], an HTTP server that
//! answers like Twilio's Messages and Calls endpoints (creating and listing messages, playing
//! scripted calls against our webhooks, delivering incoming SMS, keeping opt-outs), and
//! [`smtp::SmtpServer`], a real SMTP server (mailin-embedded) that can be stopped and started
//! again on the same port. Both record what they accepted, take injected faults, and let a test
//! wait for N records (or a call's end) without sleeping.
//!
//! A dev-only crate (`publish = false`): pager-notify, pagerd and chaos-tests take it as a
//! dev-dependency or, for the chaos binaries, a dependency; the product crates never do.

pub mod jira;
pub mod oidc;
pub mod slack;
pub mod smtp;
pub mod twilio;
pub mod webhooks;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::error::Elapsed;

/// State shared between a fake's server side (which records) and the test (which reads and
/// waits). The mutex is held only to copy in or out, never across an await; every change bumps
/// `version`, which is what waiters sleep on.
#[derive(Debug)]
struct Board<S> {
    state: Mutex<S>,
    version: watch::Sender<u64>,
}

impl<S> Board<S> {
    fn new(state: S) -> Board<S> {
        Board {
            state: Mutex::new(state),
            version: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        // A panic while holding the lock leaves plain data behind: still worth reading.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<R>(&self, change: impl FnOnce(&mut S) -> R) -> R {
        let result = change(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
        result
    }

    /// Wait until `check` returns something, re-checking after every update.
    async fn wait<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&S) -> Option<T>,
    ) -> Result<T, Elapsed> {
        let mut changes = self.version.subscribe();
        tokio::time::timeout(timeout, async move {
            loop {
                changes.borrow_and_update();
                if let Some(found) = check(&self.lock()) {
                    return found;
                }
                if changes.changed().await.is_err() {
                    // Cannot happen while `self` (the sender) is alive; wait for the timeout.
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
    }
}

/// `Thu, 24 Aug 2023 05:01:45 +0000`, the RFC 2822 form of Twilio's `date_*` fields.
pub(crate) fn rfc2822(time: SystemTime) -> String {
    let at = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rfc2822_dates() {
        assert_eq!(rfc2822(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let at = UNIX_EPOCH + Duration::from_secs(1_692_853_305);
        assert_eq!(rfc2822(at), "Thu, 24 Aug 2023 05:01:45 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc2822(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
