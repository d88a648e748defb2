//! Instants and spans on the command line: `--at`, `--until`, `--from`, `--to`
//! take an RFC 3339 time (`2026-03-07T09:00:00Z`, `2026-03-07T10:00:00+01:00`)
//! or a span from now (`+30m`, `+1h30m`, `-2d`, `now`). Spans use pagerd's
//! syntax (`pager_core::Span::parse`): whole numbers with `ms`, `s`, `m`, `h`
//! or `d`, run together.
//!
//! Parsing does not read the clock: a relative time stays relative until the
//! command runs ([`When::resolve`]), so parsing is pure and testable.

/// A time given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Milliseconds since the Unix epoch.
    At(u64),
    /// Milliseconds from the moment the command runs (negative: ago).
    FromNow(i64),
}

impl When {
    /// Milliseconds since the epoch, relative times counted from `now_ms`.
    pub fn resolve(self, now_ms: u64) -> u64 {
        match self {
            When::At(ms) => ms,
            When::FromNow(d) if d >= 0 => now_ms.saturating_add(d.unsigned_abs()),
            When::FromNow(d) => now_ms.saturating_sub(d.unsigned_abs()),
        }
    }
}

/// Milliseconds since the epoch by this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Clap value parser for time arguments; see the module docs.
pub fn parse_when(s: &str) -> Result<When, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(When::FromNow(0));
    }
    let relative = |rest: &str, sign: i64| {
        let ms = parse_span(rest)?;
        i64::try_from(ms)
            .map(|ms| When::FromNow(sign * ms))
            .map_err(|_| format!("`{s}`: too far from now"))
    };
    if let Some(rest) = t.strip_prefix('+') {
        return relative(rest, 1);
    }
    if let Some(rest) = t.strip_prefix('-') {
        return relative(rest, -1);
    }
    parse_rfc3339(t).map(When::At).map_err(|why| {
        format!(
            "`{s}` is not an RFC 3339 time such as 2026-03-07T09:00:00Z ({why}) \
             or a span from now such as +30m, +1h30m or -2d"
        )
    })
}

/// A span in pagerd's syntax (`30m`, `1h30m`, `90s`, `0`), in milliseconds:
/// the on-call document's own parser, `pager_core::Span`.
pub fn parse_span(text: &str) -> Result<u64, String> {
    pager_core::Span::parse(text).map(pager_core::Span::millis)
}

/// A span for display, largest units first: `0s`, `90s` → `1m30s`,
/// `1h5m`, `2d3h`; milliseconds only under a second (`250ms`), cut above.
pub fn format_span(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = if ms >= 1_000 { ms - ms % 1_000 } else { ms };
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= per {
            out.push_str(&format!("{}{unit}", rest / per));
            rest %= per;
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T` may be `t` or a
/// space, `Z` may be `z`) to milliseconds since the epoch; fractions finer
/// than a millisecond are cut. A leap second (`:60`) reads as `:59.999`.
pub fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        let part = s
            .get(range)
            .filter(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| format!("bad {what}"))?;
        part.parse::<i64>().map_err(|_| format!("bad {what}"))
    };
    let sep = |i: usize, ok: &[u8], what: &str| -> Result<(), String> {
        match b.get(i) {
            Some(c) if ok.contains(c) => Ok(()),
            _ => Err(format!("expected {what} at position {}", i + 1)),
        }
    };
    if b.len() < 20 {
        return Err("too short".into());
    }
    let year = num(0..4, "year")?;
    sep(4, b"-", "'-'")?;
    let month = num(5..7, "month")?;
    sep(7, b"-", "'-'")?;
    let day = num(8..10, "day")?;
    sep(10, b"Tt ", "'T'")?;
    let hour = num(11..13, "hour")?;
    sep(13, b":", "':'")?;
    let minute = num(14..16, "minute")?;
    sep(16, b":", "':'")?;
    let second = num(17..19, "second")?;
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err("bad fraction of a second".into());
        }
        for (k, c) in b[i + 1..i + 1 + digits.min(3)].iter().enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][k];
        }
        i += 1 + digits;
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let h = num(i + 1..i + 3, "offset hours")?;
            sep(i + 3, b":", "':' in the offset")?;
            let m = num(i + 4..i + 6, "offset minutes")?;
            if h > 23 || m > 59 {
                return Err("offset out of range".into());
            }
            let off = h * 60 + m;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return Err("expected Z or an offset such as +01:00 at the end".into()),
    };
    if !(1..=12).contains(&month) {
        return Err("month out of range".into());
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range".into());
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range".into());
    }
    let (second, millis) = if second == 60 {
        (59, 999)
    } else {
        (second, millis)
    };
    let secs = days_from_civil(year, month, day)? * 86_400 + hour * 3600 + minute * 60 + second
        - offset_min * 60;
    let ms = secs
        .checked_mul(1000)
        .and_then(|v| v.checked_add(millis))
        .ok_or("out of range")?;
    u64::try_from(ms).map_err(|_| "before 1970".to_owned())
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date the caller checked.
fn days_from_civil(y: i64, m: i64, d: i64) -> Result<i64, String> {
    let (Ok(y), Ok(m), Ok(d)) = (i16::try_from(y), i8::try_from(m), i8::try_from(d)) else {
        return Err("out of range".to_owned());
    };
    let date = jiff::civil::Date::new(y, m, d).map_err(|_| "out of range".to_owned())?;
    let since = date.duration_since(jiff::civil::date(1970, 1, 1));
    Ok(since.as_secs().div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::rfc3339;

    const T0: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn rfc3339_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Ok(T0));
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Ok(T0));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), Ok(T0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123Z"), Ok(T0 + 123));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.5Z"), Ok(T0 + 500));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Ok(T0 + 123)
        );
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20+01:00"), Ok(T0));
        assert_eq!(parse_rfc3339("2023-11-14T17:43:20-04:30"), Ok(T0));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z"), Ok(1_483_228_799_999));
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59Z"),
            Ok(253_402_300_799_000)
        );
    }

    #[test]
    fn rfc3339_round_trips_with_the_printer() {
        for ms in [
            0,
            951_868_799_000,
            T0,
            4_107_542_400_000,
            253_402_300_799_000,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Ok(ms), "{}", rfc3339(ms));
        }
        // Every day of four centuries, at noon.
        for day in 0..146_097u64 {
            let ms = day * 86_400_000 + 43_200_000;
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Ok(ms));
        }
    }

    #[test]
    fn rfc3339_rejects() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20+01:00x",
            "2023-13-14T22:13:20Z",
            "2023-02-29T00:00:00Z",
            "2023-11-31T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:20.Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "２０２３-11-14T22:13:20Z",
            "yesterday at noon Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spans_as_pagerd_reads_them() {
        assert_eq!(parse_span("0"), Ok(0));
        assert_eq!(parse_span("30m"), Ok(1_800_000));
        assert_eq!(parse_span("1h30m"), Ok(5_400_000));
        assert_eq!(parse_span("2d"), Ok(172_800_000));
        assert_eq!(parse_span("90s"), Ok(90_000));
        assert_eq!(parse_span("250ms"), Ok(250));
        for bad in ["", "m", "30", "30x", "1h 30m", "99999999999999999999d"] {
            assert!(parse_span(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn when_absolute_or_relative() {
        assert_eq!(parse_when("now"), Ok(When::FromNow(0)));
        assert_eq!(parse_when("+30m"), Ok(When::FromNow(1_800_000)));
        assert_eq!(parse_when("-1h"), Ok(When::FromNow(-3_600_000)));
        assert_eq!(parse_when("2023-11-14T22:13:20Z"), Ok(When::At(T0)));
        let err = parse_when("tomorrow").unwrap_err();
        assert!(err.contains("RFC 3339") && err.contains("+30m"), "{err}");
        assert!(parse_when("+30").is_err());

        assert_eq!(When::FromNow(60_000).resolve(T0), T0 + 60_000);
        assert_eq!(When::FromNow(-60_000).resolve(T0), T0 - 60_000);
        assert_eq!(When::FromNow(-60_000).resolve(1), 0);
        assert_eq!(When::At(5).resolve(T0), 5);
    }

    #[test]
    fn spans_for_display() {
        assert_eq!(format_span(0), "0s");
        assert_eq!(format_span(60_000), "1m");
        assert_eq!(format_span(90_000), "1m30s");
        assert_eq!(format_span(3_900_000), "1h5m");
        assert_eq!(format_span(183_600_000), "2d3h");
        assert_eq!(format_span(250), "250ms");
        assert_eq!(format_span(21_076_619), "5h51m16s");
        for ms in [1, 999, 60_000, 5_400_000, 183_600_000, 1_000] {
            assert_eq!(parse_span(&format_span(ms)), Ok(ms));
        }
    }
}
