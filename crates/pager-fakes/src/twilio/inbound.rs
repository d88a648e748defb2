//! Incoming SMS: the fake receives a text from a phone and POSTs it to the number's webhook as
//! Twilio's incoming-message webhook does, signed, and keeps Twilio's default opt-out rules.
//!
//! The webhook request carries `MessageSid`, `SmsSid`, `SmsMessageSid`, `AccountSid`, `From`,
//! `To`, `Body`, `NumMedia=0`, `NumSegments`, `SmsStatus=received`, `ApiVersion`, and for an
//! opt-out keyword `OptOutType` (`STOP`, `START` or `HELP`).
//!
//! Opt-out: a body that is one of `STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT`
//! (any case, surrounding blanks ignored) unsubscribes its sender: creating a message to that
//! number then fails with `400`, code 21610, until the number texts `START`, `YES` or `UNSTOP`.
//! `HELP` and `INFO` only set `OptOutType=HELP`. (Twilio keys opt-outs by sender and recipient
//! pair; the fake by recipient alone, since it has one sender.)

use std::time::SystemTime;

use super::create::segments;
use super::{RecordedMessage, Shared};

/// Twilio's default opt-out keywords.
pub const STOP_KEYWORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Twilio's default opt-in keywords.
pub const START_KEYWORDS: [&str; 3] = ["START", "YES", "UNSTOP"];
/// Twilio's default help keywords.
pub const HELP_KEYWORDS: [&str; 2] = ["HELP", "INFO"];

/// `OptOutType` for a body, if it is a keyword.
pub(super) fn opt_out_type(body: &str) -> Option<&'static str> {
    let word = body.trim();
    let is = |keywords: &[&str]| keywords.iter().any(|k| k.eq_ignore_ascii_case(word));
    if is(&STOP_KEYWORDS) {
        Some("STOP")
    } else if is(&START_KEYWORDS) {
        Some("START")
    } else if is(&HELP_KEYWORDS) {
        Some("HELP")
    } else {
        None
    }
}

impl Shared {
    /// Receive a text from `from` to `to` and deliver it to `webhook_url`; with `forged`, the
    /// request does not come from Twilio: nothing is recorded and the signature is `forged`.
    pub(super) async fn inbound_sms(
        &self,
        webhook_url: &str,
        from: &str,
        to: &str,
        body: &str,
        forged: Option<&str>,
    ) -> reqwest::Result<(u16, String)> {
        let sid = format!("SM{}", pager_notify::random_hex(32));
        let opt_out = opt_out_type(body);
        let segments = segments(body).to_string();
        let mut params: Vec<(String, String)> = [
            ("SmsMessageSid", sid.as_str()),
            ("NumMedia", "0"),
            ("SmsSid", sid.as_str()),
            ("SmsStatus", "received"),
            ("Body", body),
            ("To", to),
            ("NumSegments", segments.as_str()),
            ("MessageSid", sid.as_str()),
            ("AccountSid", self.account_sid.as_str()),
            ("From", from),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let Some(kind) = opt_out {
            params.push(("OptOutType".to_owned(), kind.to_owned()));
        }
        if forged.is_none() {
            let now = SystemTime::now();
            let record = RecordedMessage {
                sid,
                to: to.to_owned(),
                from: Some(from.to_owned()),
                messaging_service_sid: None,
                body: body.to_owned(),
                params: params.clone(),
                received_at: now,
                status: "received".to_owned(),
                date_sent: Some(now),
                direction: "inbound".to_owned(),
                num_media: 0,
                remote: None,
            };
            self.board.update(|r| {
                match opt_out {
                    Some("STOP") => {
                        r.opted_out.insert(from.to_owned());
                    }
                    Some("START") => {
                        r.opted_out.remove(from);
                    }
                    _ => {}
                }
                r.inbound.push(record);
            });
        }
        self.webhook_signed(None, webhook_url, &params, forged)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        assert_eq!(opt_out_type("STOP"), Some("STOP"));
        assert_eq!(opt_out_type(" stopall\n"), Some("STOP"));
        assert_eq!(opt_out_type("Unsubscribe"), Some("STOP"));
        assert_eq!(opt_out_type("quit"), Some("STOP"));
        assert_eq!(opt_out_type("yes"), Some("START"));
        assert_eq!(opt_out_type("UNSTOP"), Some("START"));
        assert_eq!(opt_out_type("info"), Some("HELP"));
        assert_eq!(opt_out_type("stop it"), None);
        assert_eq!(opt_out_type("ACK 12"), None);
    }
}
