//! Time as data: instants are milliseconds since the Unix epoch, stamped by the
//! Raft leader into each command. Nothing here reads a clock.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// `ms` as RFC 3339 UTC with seconds (`2026-11-21T13:43:10Z`), for messages.
/// Counted on the civil calendar (whose range ends at 9999-12-31T23:59:59,
/// later than jiff's timestamps); instants past it print as that second.
pub fn rfc3339(ms: Millis) -> String {
    const LAST: &str = "9999-12-31T23:59:59Z";
    let epoch = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);
    let Ok(secs) = i64::try_from(ms / 1000) else {
        return LAST.to_owned();
    };
    match epoch.checked_add(jiff::SignedDuration::from_secs(secs)) {
        Ok(at) => at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => LAST.to_owned(),
    }
}

/// A span of time written in config as `"90s"`, `"5m"`, `"1h30m"` or `"0"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub Millis);

impl Span {
    /// No time at all, written `"0"`.
    pub const ZERO: Span = Span(0);

    /// `s` seconds (saturating).
    pub fn from_secs(s: u64) -> Span {
        Span(s.saturating_mul(1000))
    }

    /// `m` minutes (saturating).
    pub fn from_mins(m: u64) -> Span {
        Span(m.saturating_mul(60_000))
    }

    /// The span in milliseconds.
    pub fn millis(self) -> Millis {
        self.0
    }

    /// Parse `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"` and sums like `"1h30m"`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let t = text.trim();
        if t == "0" {
            return Ok(Span::ZERO);
        }
        if t.is_empty() {
            return Err("empty duration".into());
        }
        let mut total: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(format!("invalid duration {text:?}: expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let per = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => {
                    return Err(format!(
                        "invalid duration {text:?}: unit must be ms, s, m, h or d"
                    ))
                }
            };
            total = n
                .checked_mul(per)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0");
        }
        for (unit, per) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= per {
                write!(f, "{}{}", ms / per, unit)?;
                ms %= per;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for (text, ms) in [
            ("0", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(Span::parse(text), Ok(Span(ms)), "{text}");
            assert_eq!(Span::parse(&Span(ms).to_string()), Ok(Span(ms)));
        }
    }

    #[test]
    fn formats_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_268_666_180), "2026-11-21T13:44:26Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800_000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "5x", "5 m", "-1s", "99999999999999999999s"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }
}
