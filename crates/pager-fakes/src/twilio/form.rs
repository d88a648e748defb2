//! `application/x-www-form-urlencoded`, both ways, as Twilio reads request bodies and query
//! strings and writes its `*_page_uri`s.

/// Into ordered pairs: `+` is a space, `%XX` a byte, and a malformed escape is kept as it is.
/// The name ends at the first `=`, so an unescaped `DateSent>=2024-01-02` is the pair
/// (`DateSent>`, `2024-01-02`), as at Twilio.
pub(crate) fn parse(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Pairs as a query string: unreserved characters as they are, space as `+`, the rest `%XX`
/// (Twilio's `first_page_uri` has `To=%2B1555…&DateSent%3E=2008-01-02`).
pub(crate) fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, key.as_ref());
        out.push('=');
        encode_into(&mut out, value.as_ref());
    }
    out
}

fn encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(input.get(i + 1)), hex(input.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    let d = *digit?;
    (d as char).to_digit(16).and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            parse(b"To=%2B15551234567&Body=a+b%26c%3D%E2%9C%93&Empty=&Bare&Bad=%zz%4"),
            vec![
                ("To".into(), "+15551234567".into()),
                ("Body".into(), "a b&c=✓".into()),
                ("Empty".into(), String::new()),
                ("Bare".into(), String::new()),
                ("Bad".into(), "%zz%4".into()),
            ]
        );
        assert_eq!(
            parse(b"DateSent>=2024-01-02&DateSent%3C=2024-01-03"),
            vec![
                ("DateSent>".into(), "2024-01-02".into()),
                ("DateSent<".into(), "2024-01-03".into()),
            ]
        );
    }

    #[test]
    fn encoding_round_trips() {
        let pairs = [
            ("To", "+1555 ✓"),
            ("DateSent>", "2008-01-02"),
            ("a&b", "c=d"),
        ];
        let encoded = encode(&pairs);
        assert_eq!(
            encoded,
            "To=%2B1555+%E2%9C%93&DateSent%3E=2008-01-02&a%26b=c%3Dd"
        );
        let decoded = parse(encoded.as_bytes());
        let expected: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(decoded, expected);
    }
}
