//! Twilio's webhook signature, the `X-Twilio-Signature` header on every request Twilio makes to
//! our URLs (call status, TwiML, gathered digits, incoming SMS), and how to check it.
//!
//! Twilio's algorithm for a form-encoded POST: start from the full URL Twilio requested
//! (scheme, host, port if any, path and query string, exactly as configured), append every
//! POST parameter as its name followed by its value, with no separators, parameters sorted by
//! name (byte order, case-sensitive; repeated names sorted by value), compute HMAC-SHA1 keyed
//! with the account's auth token, and encode it in standard base64 with padding.
//!
//! Checked against Twilio's documented example (token `12345`,
//! `https://mycompany.com/myapp.php?foo=1&bar=2` and a `CallSid`, `Caller`, `Digits`, `From`,
//! `To` call) in the tests below.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The header Twilio puts the signature in.
pub const HEADER: &str = "X-Twilio-Signature";

/// The signature Twilio computes for a POST of `params` to `url` with `auth_token`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url, params))
}

/// Whether `header` is the signature of this request under any of `auth_tokens` (the current
/// token, and the previous one while a rotation is under way). Empty tokens never match. The
/// comparison is constant-time.
///
/// `url` must be the URL as Twilio was told it, which a server behind a proxy has to rebuild
/// from its public address. Like Twilio's helper libraries, the URL is also tried without a
/// default port that it names (`:443` for https, `:80` for http) and with the default port
/// added when it names none, since Twilio signs some requests one way and some the other.
pub fn verify(auth_tokens: &[&str], url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    let urls = url_variants(url);
    let mut ok = subtle::Choice::from(0u8);
    for token in auth_tokens.iter().filter(|t| !t.is_empty()) {
        for url in urls.iter().flatten() {
            let expected = mac(token, url, params);
            if expected.len() == claimed.len() {
                ok |= expected.as_slice().ct_eq(&claimed);
            }
        }
    }
    ok.into()
}

/// The string Twilio signs: the URL, then each parameter's name and value, sorted.
fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut text = String::with_capacity(
        url.len() + params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
    );
    text.push_str(url);
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    text
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length");
    };
    mac.update(signed_text(url, params).as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `url` as given, and the same with its default port removed or added (if it has one).
fn url_variants(url: &str) -> [Option<String>; 2] {
    let default_port = if url.starts_with("https://") {
        ":443"
    } else if url.starts_with("http://") {
        ":80"
    } else {
        return [Some(url.to_owned()), None];
    };
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return [Some(url.to_owned()), None];
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    // A port follows the last colon, unless that colon is inside an IPv6 literal.
    let has_port = authority
        .rfind(':')
        .is_some_and(|i| !authority[i..].contains(']'));
    let other = if authority.ends_with(default_port) {
        let cut = authority_end - default_port.len();
        format!("{}{}", &url[..cut], &url[authority_end..])
    } else if !has_port {
        format!(
            "{}{default_port}{}",
            &url[..authority_end],
            &url[authority_end..]
        )
    } else {
        return [Some(url.to_owned()), None];
    };
    [Some(url.to_owned()), Some(other)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn doc_params(caller: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn twilios_documented_examples() {
        // Twilio's docs have shown this request with three different callers over the years;
        // the signatures were recomputed with an independent HMAC-SHA1 (Python's `hmac`).
        for (caller, signature) in [
            ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
            ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
        ] {
            let params = doc_params(caller);
            assert_eq!(sign("12345", DOC_URL, &params), signature, "{caller}");
            assert!(verify(&["12345"], DOC_URL, &params, signature));
        }
    }

    #[test]
    fn the_signed_text_is_url_then_sorted_names_and_values() {
        let params = vec![
            ("b".to_owned(), "2".to_owned()),
            ("B".to_owned(), "x".to_owned()),
            ("a".to_owned(), "z".to_owned()),
            ("a".to_owned(), "y".to_owned()),
        ];
        assert_eq!(
            signed_text("https://h/p?q=1", &params),
            "https://h/p?q=1Bxayazb2"
        );
    }

    #[test]
    fn order_of_parameters_does_not_matter() {
        let params = doc_params("+12349013030");
        let mut reversed = params.clone();
        reversed.reverse();
        assert_eq!(
            sign("12345", DOC_URL, &params),
            sign("12345", DOC_URL, &reversed)
        );
    }

    #[test]
    fn tampering_is_detected() {
        let params = doc_params("+12349013030");
        let signature = sign("12345", DOC_URL, &params);
        let mut changed = params.clone();
        changed[2].1 = "1235".to_owned();
        assert!(!verify(&["12345"], DOC_URL, &changed, &signature));
        let mut added = params.clone();
        added.push(("Extra".to_owned(), String::new()));
        assert!(!verify(&["12345"], DOC_URL, &added, &signature));
        assert!(!verify(
            &["12345"],
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            &signature
        ));
        assert!(!verify(&["54321"], DOC_URL, &params, &signature));
        assert!(!verify(&["12345"], DOC_URL, &params, ""));
        assert!(!verify(&["12345"], DOC_URL, &params, "not base64!"));
        assert!(!verify(&["12345"], DOC_URL, &params, "AAAA"));
        assert!(!verify(&[], DOC_URL, &params, &signature));
        assert!(!verify(
            &[""],
            DOC_URL,
            &params,
            &sign("", DOC_URL, &params)
        ));
    }

    #[test]
    fn either_token_verifies_during_rotation() {
        let params = doc_params("+12349013030");
        let old = sign("old-token", DOC_URL, &params);
        let new = sign("new-token", DOC_URL, &params);
        assert!(verify(&["new-token", "old-token"], DOC_URL, &params, &old));
        assert!(verify(&["new-token", "old-token"], DOC_URL, &params, &new));
        assert!(!verify(&["new-token"], DOC_URL, &params, &old));
    }

    #[test]
    fn default_ports_are_tried_both_ways() {
        let params = doc_params("+12349013030");
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let signature = sign("12345", with_port, &params);
        assert!(verify(&["12345"], DOC_URL, &params, &signature));
        let signature = sign("12345", DOC_URL, &params);
        assert!(verify(&["12345"], with_port, &params, &signature));
        // Another port is another URL.
        let other = sign(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &params,
        );
        assert!(!verify(&["12345"], DOC_URL, &params, &other));
    }

    #[test]
    fn url_variants_handle_odd_urls() {
        assert_eq!(
            url_variants("http://127.0.0.1:8080/x"),
            [Some("http://127.0.0.1:8080/x".to_owned()), None]
        );
        assert_eq!(
            url_variants("http://h?x=1"),
            [
                Some("http://h?x=1".to_owned()),
                Some("http://h:80?x=1".to_owned())
            ]
        );
        assert_eq!(
            url_variants("https://[::1]/x"),
            [
                Some("https://[::1]/x".to_owned()),
                Some("https://[::1]:443/x".to_owned())
            ]
        );
        assert_eq!(
            url_variants("ftp://h/x"),
            [Some("ftp://h/x".to_owned()), None]
        );
    }
}
