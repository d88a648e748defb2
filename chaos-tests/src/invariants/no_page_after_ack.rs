//! No page after an acknowledgement committed beyond the one in flight: once `Acknowledge`
//! returned (so the acknowledgement committed no later than that), at most `allowed` more
//! pages of that incident may reach a provider: a send the leader started before it applied
//! the acknowledgement.

use super::Violation;
use crate::history::{epoch_ms, Acked};
use crate::pages::ObservedPage;

pub const NAME: &str = "no-page-after-ack";

pub fn check(acks: &[Acked], observed: &[ObservedPage], allowed: usize) -> Vec<Violation> {
    let mut out = Vec::new();
    for ack in acks {
        let after: Vec<&ObservedPage> = observed
            .iter()
            .filter(|p| p.incident == Some(ack.incident) && p.received_at > ack.returned_at)
            .collect();
        if after.len() > allowed {
            let list: Vec<String> = after
                .iter()
                .map(|p| {
                    format!(
                        "{} to {} at {} ms",
                        p.channel.as_str(),
                        p.to,
                        epoch_ms(p.received_at)
                    )
                })
                .collect();
            out.push(Violation {
                invariant: NAME,
                detail: format!(
                    "incident {} acknowledged (committed by {} ms, index {}) then paged {} times, {allowed} allowed: {}",
                    ack.incident,
                    epoch_ms(ack.returned_at),
                    ack.commit_index,
                    after.len(),
                    list.join(", ")
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::from_epoch_ms;
    use crate::pages::PageChannel;

    #[test]
    fn one_page_in_flight_is_allowed_two_are_not() {
        let ack = Acked {
            incident: 4,
            commit_index: 30,
            returned_at: from_epoch_ms(10_000),
        };
        let page = |incident, at| ObservedPage {
            channel: PageChannel::Sms,
            to: "+15550100001".into(),
            incident: Some(incident),
            received_at: from_epoch_ms(at),
            sent_at: from_epoch_ms(at),
            delivery: None,
            sender: None,
        };
        let observed = [page(4, 9_000), page(4, 10_100), page(5, 11_000)];
        assert!(check(std::slice::from_ref(&ack), &observed, 1).is_empty());
        let more = [page(4, 10_100), page(4, 12_000)];
        assert_eq!(check(&[ack], &more, 1).len(), 1);
    }
}
