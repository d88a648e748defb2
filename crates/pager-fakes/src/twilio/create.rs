//! `POST Messages.json` and `POST Calls.json`: the checks Twilio makes, and the resources it
//! answers with.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::call::CallLife;
use super::{Checked, RecordedCall, RecordedMessage, Shared, Submission};
use crate::rfc2822;
use pager_notify::twilio::{is_e164, MAX_SMS_BODY, MAX_TWIML};

impl Shared {
    pub(super) fn create_message(&self, request: &Submission) -> Checked {
        let bad = |code: i64, message: String| Err((400, code, message));
        let Some(to) = request.param("To") else {
            return bad(21604, "A 'To' phone number is required.".to_owned());
        };
        let from = request.param("From");
        let service = request.param("MessagingServiceSid");
        if from.is_none() && service.is_none() {
            return bad(21603, "A 'From' phone number is required.".to_owned());
        }
        let body = request.param("Body").unwrap_or_default();
        let has_content = !body.is_empty()
            || request.param("MediaUrl").is_some()
            || request.param("ContentSid").is_some();
        if !has_content {
            return match service {
                Some(_) => bad(
                    21619,
                    "A text message body, media URL or content SID is required.".to_owned(),
                ),
                None => bad(21602, "Message body is required.".to_owned()),
            };
        }
        if !is_message_address(to) {
            return bad(
                21211,
                format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        if utf16_len(body) > MAX_SMS_BODY {
            return bad(
                21617,
                "The concatenated message body exceeds the 1600 character limit.".to_owned(),
            );
        }
        let now = SystemTime::now();
        let mut record = RecordedMessage {
            sid: format!("SM{}", pager_notify::random_hex(32)),
            to: to.to_owned(),
            from: from.map(str::to_owned),
            messaging_service_sid: service.map(str::to_owned),
            body: body.to_owned(),
            params: request.params.clone(),
            received_at: now,
            status: if from.is_none() { "accepted" } else { "queued" }.to_owned(),
            date_sent: None,
            direction: "outbound-api".to_owned(),
            num_media: request
                .params
                .iter()
                .filter(|(k, _)| k == "MediaUrl")
                .count(),
            remote: request.remote,
        };
        // The 201 describes the message as created; what is recorded has moved on at once
        // (unless held), as Twilio hands a message to the carrier within moments.
        let resource = self.message_resource(&record);
        let created = self.board.update(|r| {
            if r.opted_out.contains(to) {
                return false;
            }
            if !r.hold_queued {
                record.status = "sent".to_owned();
                record.date_sent = Some(now);
            }
            r.messages.push(record);
            true
        });
        if !created {
            return bad(
                21610,
                "Attempt to send to unsubscribed recipient".to_owned(),
            );
        }
        Ok((StatusCode::CREATED, resource))
    }

    /// An `api.v2010.account.message` for `message` as it is now.
    pub(super) fn message_resource(&self, message: &RecordedMessage) -> Value {
        let account = &self.account_sid;
        let sid = &message.sid;
        let created = rfc2822(message.received_at);
        json!({
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": created,
            "date_sent": message.date_sent.map(rfc2822),
            "date_updated": message.date_sent.map_or(created, rfc2822),
            "direction": message.direction,
            "error_code": null,
            "error_message": null,
            "from": message.from,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": message.num_media.to_string(),
            "num_segments": segments(&message.body).to_string(),
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": message.status,
            "subresource_uris": {
                "media": format!("/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"),
            },
            "to": message.to,
            "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
        })
    }

    pub(super) fn create_call(self: &Arc<Self>, request: &Submission) -> Checked {
        let bad = |code: i64, message: String| Err((400, code, message));
        let Some(to) = request.param("To") else {
            return bad(21201, "No 'To' number is specified".to_owned());
        };
        let Some(from) = request.param("From") else {
            return bad(21213, "No 'From' number is specified".to_owned());
        };
        let twiml = request.param("Twiml");
        let url = request.param("Url");
        if twiml.is_none() && url.is_none() && request.param("ApplicationSid").is_none() {
            return bad(
                21205,
                "Url parameter is required. For more information, see http://www.twilio.com/docs/api/twiml"
                    .to_owned(),
            );
        }
        if !is_call_address(to) {
            return bad(
                21211,
                format!("The phone number you are attempting to call, {to}, is not valid."),
            );
        }
        if twiml.is_some_and(|t| utf16_len(t) > MAX_TWIML) {
            return bad(
                32018,
                "Twiml size exceeded maximum allowed value of 4000 characters".to_owned(),
            );
        }
        let sid = format!("CA{}", pager_notify::random_hex(32));
        let now = SystemTime::now();
        let date = rfc2822(now);
        let account = &self.account_sid;
        let base = format!("/2010-04-01/Accounts/{account}/Calls/{sid}");
        let resource = json!({
            "account_sid": account,
            "answered_by": null,
            "api_version": "2010-04-01",
            "caller_name": null,
            "date_created": date,
            "date_updated": date,
            "direction": "outbound-api",
            "duration": null,
            "end_time": null,
            "forwarded_from": null,
            "from": from,
            "from_formatted": from,
            "group_sid": null,
            "parent_call_sid": null,
            "phone_number_sid": null,
            "price": null,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": null,
            "status": "queued",
            "subresource_uris": {
                "notifications": format!("{base}/Notifications.json"),
                "recordings": format!("{base}/Recordings.json"),
                "payments": format!("{base}/Payments.json"),
                "events": format!("{base}/Events.json"),
                "siprec": format!("{base}/Siprec.json"),
                "streams": format!("{base}/Streams.json"),
                "transcriptions": format!("{base}/Transcriptions.json"),
                "user_defined_message_subscriptions": format!("{base}/UserDefinedMessageSubscriptions.json"),
                "user_defined_messages": format!("{base}/UserDefinedMessages.json"),
            },
            "to": to,
            "to_formatted": to,
            "trunk_sid": null,
            "uri": format!("{base}.json"),
        });
        let owned = |name: &str| request.param(name).map(str::to_owned);
        let record = RecordedCall {
            sid,
            to: to.to_owned(),
            from: from.to_owned(),
            twiml: twiml.map(str::to_owned),
            url: url.map(str::to_owned),
            timeout: request.param("Timeout").and_then(|t| t.parse().ok()),
            params: request.params.clone(),
            received_at: now,
            method: owned("Method"),
            fallback_url: owned("FallbackUrl"),
            fallback_method: owned("FallbackMethod"),
            status_callback: owned("StatusCallback"),
            status_callback_method: owned("StatusCallbackMethod"),
            status_callback_events: request
                .params
                .iter()
                .filter(|(k, v)| k == "StatusCallbackEvent" && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
            machine_detection: owned("MachineDetection"),
            status: "queued".to_owned(),
            answered_by: None,
            script: None,
            remote: request.remote,
        };
        let life = self.board.update(|r| {
            let mut record = record;
            record.script = r.scripts.get(to).cloned();
            let life = record.script.clone().map(|script| {
                r.lives.insert(record.sid.clone(), CallLife::default());
                (record.clone(), script)
            });
            r.calls.push(record);
            life
        });
        if let Some((call, script)) = life {
            self.start_life(call, script);
        }
        Ok((StatusCode::CREATED, resource))
    }
}

/// E.164, or a channel address such as `whatsapp:+15551234567`.
fn is_message_address(to: &str) -> bool {
    match to.split_once(':') {
        Some((channel, number)) => !channel.is_empty() && is_e164(number),
        None => is_e164(to),
    }
}

/// E.164, a SIP URI or a Twilio Client identity.
fn is_call_address(to: &str) -> bool {
    to.starts_with("sip:") || to.starts_with("client:") || is_e164(to)
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// SMS segments: 160 GSM-7 characters in one, 153 per part when concatenated; 70 and 67 in
/// UCS-2. GSM-7 is approximated by printable ASCII and line breaks.
pub(super) fn segments(body: &str) -> usize {
    let gsm = body
        .chars()
        .all(|c| c == '\n' || c == '\r' || (' '..='~').contains(&c));
    let (len, single, part) = if gsm {
        (body.chars().count(), 160, 153)
    } else {
        (utf16_len(body), 70, 67)
    };
    if len <= single {
        1
    } else {
        len.div_ceil(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_counts() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"x".repeat(160)), 1);
        assert_eq!(segments(&"x".repeat(161)), 2);
        assert_eq!(segments(&"é".repeat(70)), 1);
        assert_eq!(segments(&"é".repeat(71)), 2);
    }

    #[test]
    fn addresses() {
        assert!(is_message_address("+15551234567"));
        assert!(is_message_address("whatsapp:+15551234567"));
        assert!(!is_message_address("5551234567"));
        assert!(is_call_address("client:alice"));
        assert!(!is_call_address("alice"));
    }
}
