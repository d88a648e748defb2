//! Masked addresses for logs, console lines and error messages.
//!
//! Masks are fixed-width, so they do not reveal the length of what they hide. What stays visible
//! is enough to tell two responders apart in a log: the start of the country code and the last
//! four digits of a phone, the first letter and the domain of an email address.

const PHONE_MASK: &str = "*******";
const EMAIL_MASK: &str = "****";

/// `+15551234567` → `+1*******4567`; `whatsapp:+15551234567` → `whatsapp:+1*******4567`.
pub fn phone(number: &str) -> String {
    if let Some((channel, rest)) = number.split_once(':') {
        return format!("{channel}:{}", phone(rest));
    }
    let chars: Vec<char> = number.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        10.. => (2, 4),
        6..=9 => (2, 2),
        _ => (0, 0),
    };
    let mut masked: String = chars[..head].iter().collect();
    masked.push_str(PHONE_MASK);
    masked.extend(&chars[n - tail..]);
    masked
}

/// `alice@example.com` → `a****@example.com`.
pub fn email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}{EMAIL_MASK}@{domain}")
        }
        None => EMAIL_MASK.to_owned(),
    }
}

/// [`email`] for anything with an `@`, [`phone`] for the rest.
pub fn address(address: &str) -> String {
    if address.contains('@') {
        email(address)
    } else {
        phone(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_odd_inputs_reveal_little_and_never_panic() {
        assert_eq!(phone(""), "*******");
        assert_eq!(phone("+123"), "*******");
        assert_eq!(phone("+4412345"), "+4*******45");
        assert_eq!(phone("+١٢٣٤٥٦٧٨٩٠١"), "+١*******٨٩٠١");
        assert_eq!(email("@example.com"), "****@example.com");
        assert_eq!(email("é@x"), "é****@x");
        assert_eq!(email("nobody"), "****");
        assert_eq!(address("sip:alice@example.com"), "s****@example.com");
    }
}
