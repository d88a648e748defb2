//! Civil (wall-clock) time as plain integers, and the text forms of times in
//! the schedule document.
//!
//! A *local* value is milliseconds since 1970-01-01T00:00 on the wall clock of
//! the schedule's zone, as if that zone were UTC. Day arithmetic on it is exact
//! integer arithmetic, so rotations step through calendar days without asking
//! the time zone anything; only the final "which instant is this wall-clock
//! time" goes through [`super::clock`]. Dates to and from local values go
//! through jiff (at offset zero), the one calendar the workspace uses.

use jiff::civil::{DateTime, Time};
use jiff::tz::Offset;
use jiff::Timestamp;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serializer};
use std::fmt;

pub(crate) const SECOND: i64 = 1_000;
pub(crate) const MINUTE: i64 = 60 * SECOND;
pub(crate) const HOUR: i64 = 60 * MINUTE;
pub(crate) const DAY: i64 = 24 * HOUR;

/// Monday = 0 ... Sunday = 6 for a day number (1970-01-01 was a Thursday).
pub(crate) fn weekday(days: i64) -> u8 {
    // rem_euclid(7) is in 0..7, so the cast cannot truncate.
    (days + 3).rem_euclid(7) as u8
}

/// Milliseconds into the day of a time of day.
pub(crate) fn time_ms(t: Time) -> i64 {
    i64::from(t.hour()) * HOUR
        + i64::from(t.minute()) * MINUTE
        + i64::from(t.second()) * SECOND
        + i64::from(t.subsec_nanosecond()) / 1_000_000
}

/// A civil date and time as a local value.
pub(crate) fn local_ms(dt: DateTime) -> i64 {
    // Offset zero turns every civil datetime jiff can hold into an instant.
    Offset::UTC
        .to_timestamp(dt)
        .map_or(i64::MAX, |t| t.as_millisecond())
}

/// A local value as a civil date and time; `None` outside jiff's years
/// -9999..=9999.
pub(crate) fn to_datetime(local: i64) -> Option<DateTime> {
    let at = Timestamp::from_millisecond(local).ok()?;
    Some(Offset::UTC.to_datetime(at))
}

// ---- text forms ----------------------------------------------------------

/// Parse `HH:MM` or `HH:MM:SS`.
pub(crate) fn parse_time(text: &str) -> Result<Time, String> {
    let bad = || format!("invalid time of day {text:?}: expected HH:MM such as \"08:00\"");
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| !two_digits(p)) {
        return Err(bad());
    }
    let num = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<i8>());
    let (h, m, s) = (
        num(0).map_err(|_| bad())?,
        num(1).map_err(|_| bad())?,
        num(2).map_err(|_| bad())?,
    );
    Time::new(h, m, s, 0).map_err(|_| bad())
}

/// Parse a civil date and time, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`
/// (a space may stand for the `T`). An offset or zone is refused: the
/// schedule's `time_zone` says where this wall-clock time is.
pub(crate) fn parse_datetime(text: &str) -> Result<DateTime, String> {
    let bad = || {
        format!(
            "invalid civil date and time {text:?}: expected YYYY-MM-DDTHH:MM:SS \
             such as \"2026-01-05T08:00:00\", without an offset (the schedule's \
             time_zone applies)"
        )
    };
    let (date, time) = text
        .split_once('T')
        .or_else(|| text.split_once(' '))
        .ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3
        || d[0].len() != 4
        || !d[0].bytes().all(|b| b.is_ascii_digit())
        || !two_digits(d[1])
        || !two_digits(d[2])
    {
        return Err(bad());
    }
    let t = parse_time(time).map_err(|_| bad())?;
    let (Ok(y), Ok(m), Ok(day)) = (d[0].parse::<i16>(), d[1].parse::<i8>(), d[2].parse::<i8>())
    else {
        return Err(bad());
    };
    DateTime::new(y, m, day, t.hour(), t.minute(), t.second(), 0).map_err(|_| bad())
}

/// Parse an RFC 3339 instant with an offset (`2026-03-07T00:00:00Z`,
/// `2026-03-07T01:00:00+01:00`) into milliseconds since the epoch.
pub(crate) fn parse_instant(text: &str) -> Result<u64, String> {
    let ts: jiff::Timestamp = text.parse().map_err(|_| {
        format!(
            "invalid instant {text:?}: expected RFC 3339 with an offset such as \
             \"2026-03-07T00:00:00Z\""
        )
    })?;
    u64::try_from(ts.as_millisecond())
        .map_err(|_| format!("invalid instant {text:?}: before 1970-01-01T00:00:00Z"))
}

fn two_digits(p: &str) -> bool {
    p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit())
}

/// `HH:MM`, or `HH:MM:SS` when there are seconds.
pub(crate) fn format_time(t: Time) -> String {
    if t.second() == 0 {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else {
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

pub(crate) fn format_datetime(dt: DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

pub(crate) fn format_instant(ms: u64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(ts.to_string())
}

/// Reads a string, or a TOML date-time literal (`start = 2026-01-05T08:00:00`
/// unquoted) as its text.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a date or time as a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
            let dt =
                toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(dt.to_string())
        }
    }
    d.deserialize_any(Text)
}

/// `#[serde(with)]` for a civil `DateTime` written `"2026-01-05T08:00:00"`.
pub(crate) mod datetime {
    use super::*;

    pub fn serialize<S: Serializer>(v: &DateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_datetime(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
        parse_datetime(&text(d)?).map_err(de::Error::custom)
    }
}

/// `#[serde(with)]` for an optional civil `DateTime`.
pub(crate) mod opt_datetime {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<DateTime>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(dt) => s.serialize_some(&format_datetime(*dt)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime>, D::Error> {
        super::datetime::deserialize(d).map(Some)
    }
}

/// `#[serde(with)]` for a time of day written `"08:00"`.
pub(crate) mod time {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        parse_time(&text(d)?).map_err(de::Error::custom)
    }
}

/// `#[serde(with)]` for an optional time of day.
pub(crate) mod opt_time {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_some(&format_time(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        super::time::deserialize(d).map(Some)
    }
}

/// `#[serde(with)]` for an instant (`Millis`) written in RFC 3339.
pub(crate) mod instant {
    use super::*;
    use serde::ser::Error as _;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        let text = format_instant(*v)
            .ok_or_else(|| S::Error::custom(format!("instant {v} ms is past year 9999")))?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        parse_instant(&text(d)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_agree_with_jiff() {
        let epoch = jiff::civil::date(1970, 1, 1);
        for days in (-800_000..800_000).step_by(997) {
            let date = epoch.checked_add(jiff::Span::new().days(days)).unwrap();
            assert_eq!(weekday(days), date.weekday().to_monday_zero_offset() as u8);
            assert_eq!(local_ms(date.to_datetime(Time::midnight())), days * DAY);
        }
        let end = jiff::civil::datetime(9001, 1, 1, 0, 0, 0, 0);
        assert_eq!(local_ms(end), super::super::timeline::END_OF_TIME);
    }

    #[test]
    fn local_values_round_trip() {
        let dt = jiff::civil::datetime(2026, 3, 8, 2, 30, 15, 0);
        assert_eq!(to_datetime(local_ms(dt)), Some(dt));
        let before = jiff::civil::datetime(1969, 12, 31, 23, 59, 59, 0);
        assert_eq!(local_ms(before), -1000);
        assert_eq!(to_datetime(-1000), Some(before));
    }

    #[test]
    fn text_forms() {
        assert_eq!(parse_time("08:00").map(format_time), Ok("08:00".into()));
        assert_eq!(
            parse_time("23:59:30").map(format_time),
            Ok("23:59:30".into())
        );
        for bad in [
            "8:00",
            "24:00",
            "08:60",
            "08",
            "08:00:00:00",
            "",
            "0800",
            "+8:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        let dt = parse_datetime("2026-01-05T08:00").unwrap();
        assert_eq!(format_datetime(dt), "2026-01-05T08:00:00");
        assert_eq!(parse_datetime("2026-01-05 08:00:00"), Ok(dt));
        for bad in [
            "2026-01-05",
            "2026-02-30T08:00:00",
            "2026-01-05T08:00:00Z",
            "2026-01-05T08:00:00-05:00",
            "26-01-05T08:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_instant("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert!(parse_instant("1969-12-31T23:59:59Z").is_err());
        assert!(parse_instant("2026-03-07T00:00:00").is_err());
        assert_eq!(
            format_instant(1000).as_deref(),
            Some("1970-01-01T00:00:01Z")
        );
    }
}
