//! The phone reply protocol, in one place: the reply codes a page advertises
//! (SMS text and voice menu), how an incoming SMS or keypress is read back,
//! and the text a reconciliation searches a provider's message list for.
//!
//! A page to an SMS phone carries `Reply 4 345 ack, 6 345 resolve, 5 345
//! escalate.` where 345 is the delivery id; the phone answers `4 345` (or a
//! bare `4`, for its latest page). A call's keypad menu uses the same digits.
//! The test below renders a page and reads its own instructions back.

use crate::delivery::PhoneAction;

impl PhoneAction {
    /// The digit that asks for this action, by SMS or keypad.
    pub fn key(self) -> char {
        match self {
            PhoneAction::Acknowledge => '4',
            PhoneAction::Resolve => '6',
            PhoneAction::Escalate => '5',
        }
    }

    /// The word an SMS page uses for this action.
    fn word(self) -> &'static str {
        match self {
            PhoneAction::Acknowledge => "ack",
            PhoneAction::Resolve => "resolve",
            PhoneAction::Escalate => "escalate",
        }
    }

    /// The action a key (or its SMS word) asks for.
    fn from_word(word: &str) -> Option<PhoneAction> {
        Some(match word {
            "4" | "A" | "ACK" => PhoneAction::Acknowledge,
            "6" | "R" | "RESOLVE" => PhoneAction::Resolve,
            "5" | "E" | "ESC" | "ESCALATE" => PhoneAction::Escalate,
            _ => return None,
        })
    }
}

const ACTIONS: [PhoneAction; 3] = [
    PhoneAction::Acknowledge,
    PhoneAction::Resolve,
    PhoneAction::Escalate,
];

/// ` Reply 4 345 ack, 6 345 resolve, 5 345 escalate.`: what an SMS page says
/// after its summary (with the leading space).
pub fn sms_instructions(code: u64) -> String {
    let each: Vec<String> = ACTIONS
        .iter()
        .map(|a| format!("{} {code} {}", a.key(), a.word()))
        .collect();
    format!(" Reply {}.", each.join(", "))
}

/// The text only the SMS page of delivery `code` carries: what a new leader
/// searches the provider's message list for before re-sending a page in doubt.
pub fn sms_needle(code: u64) -> String {
    let ack = PhoneAction::Acknowledge;
    format!("Reply {} {code} {}", ack.key(), ack.word())
}

/// The keypad menu a call speaks after the page.
pub const VOICE_MENU: &str =
    "Press 4 to acknowledge. Press 6 to resolve. Press 5 to escalate. Press star to repeat.";

/// The answer to an SMS that asks for nothing pagerd understands.
pub const SMS_HELP: &str = "pagerd: reply 4 <code> to acknowledge, 6 <code> to resolve, 5 <code> to escalate (the code is in the page). A bare 4 acts on your latest page. STOP turns texts off, START on.";

/// Twilio's default opt-out and opt-in keywords.
const OPT_OUT: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const OPT_IN: [&str; 3] = ["START", "YES", "UNSTOP"];

/// What an incoming SMS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsCommand {
    /// An action on the page with this code, or on the phone's latest page.
    Act(PhoneAction, Option<u64>),
    /// An opt-out word on its own (`STOP`, ...): SMS pages to this phone stop.
    OptOut,
    /// An opt-in word on its own (`START`, ...): SMS pages to this phone resume.
    OptIn,
    /// Anything else: the answer is [`SMS_HELP`].
    Help,
}

/// Read an SMS body as a phone types it: `4 123`, ` 6  #77 `, `ack`, `STOP`.
pub fn parse_sms(body: &str) -> SmsCommand {
    let upper = body.trim().to_ascii_uppercase();
    let mut words = upper.split_whitespace();
    let Some(first) = words.next() else {
        return SmsCommand::Help;
    };
    if OPT_OUT.contains(&first) && words.clone().next().is_none() {
        return SmsCommand::OptOut;
    }
    if OPT_IN.contains(&first) && words.clone().next().is_none() {
        return SmsCommand::OptIn;
    }
    let Some(action) = PhoneAction::from_word(first) else {
        return SmsCommand::Help;
    };
    match (words.next(), words.next()) {
        (None, _) => SmsCommand::Act(action, None),
        (Some(code), None) => match code.trim_start_matches('#').parse() {
            Ok(code) => SmsCommand::Act(action, Some(code)),
            Err(_) => SmsCommand::Help,
        },
        _ => SmsCommand::Help,
    }
}

/// A key pressed during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keypress {
    /// A key that asks for an action (4, 6 or 5).
    Act(PhoneAction),
    /// `*`: say the page again.
    Repeat,
    /// Any other key.
    Unknown,
}

/// Read Twilio's `Digits` (one key: the call gathers a single digit).
pub fn parse_keys(digits: &str) -> Keypress {
    match digits {
        "*" => Keypress::Repeat,
        d => ACTIONS
            .into_iter()
            .find(|a| d.len() == 1 && d.starts_with(a.key()))
            .map_or(Keypress::Unknown, Keypress::Act),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::PhoneAction::*;

    #[test]
    fn sms_bodies_parse_as_phones_type_them() {
        assert_eq!(parse_sms("4 123"), SmsCommand::Act(Acknowledge, Some(123)));
        assert_eq!(parse_sms(" 6  #77 "), SmsCommand::Act(Resolve, Some(77)));
        assert_eq!(parse_sms("ack"), SmsCommand::Act(Acknowledge, None));
        assert_eq!(parse_sms("5"), SmsCommand::Act(Escalate, None));
        assert_eq!(parse_sms("stop"), SmsCommand::OptOut);
        assert_eq!(parse_sms("Start"), SmsCommand::OptIn);
        assert_eq!(parse_sms("stop paging me 4"), SmsCommand::Help);
        assert_eq!(parse_sms("4 12x"), SmsCommand::Help);
        assert_eq!(parse_sms(""), SmsCommand::Help);
        assert_eq!(parse_sms("hello"), SmsCommand::Help);
    }

    /// Every instruction a page gives, typed back, asks for what it said.
    #[test]
    fn the_instructions_a_page_gives_read_back_as_their_action() {
        let text = sms_instructions(345);
        assert_eq!(text, " Reply 4 345 ack, 6 345 resolve, 5 345 escalate.");
        for (phrase, action) in text
            .trim()
            .trim_start_matches("Reply ")
            .trim_end_matches('.')
            .split(", ")
            .zip(ACTIONS)
        {
            let typed: Vec<&str> = phrase.split(' ').take(2).collect();
            assert_eq!(
                parse_sms(&typed.join(" ")),
                SmsCommand::Act(action, Some(345))
            );
            // The word alone, as a phone might shorten it, means the same.
            let word = phrase.rsplit(' ').next().unwrap_or_default();
            assert_eq!(parse_sms(word), SmsCommand::Act(action, None));
        }
        assert!(text.contains(&sms_needle(345)));
        assert!(!sms_instructions(3456).contains(&sms_needle(345)));
        for action in ACTIONS {
            let said = format!("Press {} to", action.key());
            assert!(VOICE_MENU.contains(&said), "{said}");
            assert_eq!(parse_keys(&action.key().to_string()), Keypress::Act(action));
        }
        assert_eq!(parse_keys("*"), Keypress::Repeat);
        assert_eq!(parse_keys("9"), Keypress::Unknown);
        assert_eq!(parse_keys("44"), Keypress::Unknown);
    }
}
