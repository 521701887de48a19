//! FHIR `date`, `dateTime` and `instant` values as time ranges, for `_since`,
//! `_until` and the date comparisons of `_typeFilter`.
//!
//! A FHIR time value stands for the whole span of its precision: `2020` is all
//! of 2020, `2020-03-01T10:00Z` one minute. Comparisons (FHIR search's `eq`,
//! `gt`, …) are between such spans, so each value is parsed to a half-open
//! range `[lo, hi)` in nanoseconds since the Unix epoch. A value without a
//! time zone (a date, or a search value without one) is taken as UTC.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Nanoseconds in one day.
const DAY_NS: i128 = 86_400 * 1_000_000_000;

/// The span a FHIR time value stands for: `[lo, hi)`, nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First instant inside the span.
    pub lo: i128,
    /// First instant after the span.
    pub hi: i128,
}

impl Span {
    /// A span open on either side (a `Period` without `start` or `end`).
    pub const UNBOUNDED: Span = Span { lo: i128::MIN, hi: i128::MAX };
}

/// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or `YYYY-MM-DDThh:mm[:ss[.f…]][Z|±hh:mm]`
/// (a FHIR `date`, `dateTime` or `instant`, or a search value) to its span.
pub fn parse_span(s: &str) -> Option<Span> {
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut fields = date_part.split('-');
    let year = digits(fields.next()?, 4)?;
    let month = match fields.next() {
        Some(m) => Some(digits(m, 2)?),
        None => None,
    };
    let day = match fields.next() {
        Some(d) => Some(digits(d, 2)?),
        None => None,
    };
    if fields.next().is_some() || year == 0 {
        return None;
    }
    let month_enum = Month::try_from(u8::try_from(month.unwrap_or(1)).ok()?).ok()?;
    let first = Date::from_calendar_date(year as i32, month_enum, u8::try_from(day.unwrap_or(1)).ok()?).ok()?;
    let lo_date = first.midnight().assume_utc().unix_timestamp_nanos();
    let Some(time_part) = time_part else {
        let days = match (month, day) {
            (None, _) => i128::from(time::util::days_in_year(year as i32)),
            (Some(_), None) => i128::from(month_enum.length(year as i32)),
            (Some(_), Some(_)) => 1,
        };
        return Some(Span { lo: lo_date, hi: lo_date + days * DAY_NS });
    };
    day?;
    let (clock, offset) = split_zone(time_part)?;
    let (time, width) = parse_clock(clock)?;
    let at = PrimitiveDateTime::new(first, time).assume_offset(offset.unwrap_or(UtcOffset::UTC));
    let lo = at.unix_timestamp_nanos();
    Some(Span { lo, hi: lo + width })
}

/// Parses a FHIR `instant`: a full date and time with a time zone; seconds
/// may be omitted (a `dateTime` to the minute) but the zone may not.
pub fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    let (_, time_part) = s.split_once('T')?;
    let (_, offset) = split_zone(time_part)?;
    offset?;
    let span = parse_span(s)?;
    OffsetDateTime::from_unix_timestamp_nanos(span.lo).ok()
}

/// Splits `hh:mm…` from its zone designator; `None` zone when there is none.
fn split_zone(t: &str) -> Option<(&str, Option<UtcOffset>)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, Some(UtcOffset::UTC)));
    }
    match t.rfind(['+', '-']) {
        Some(i) => {
            let (clock, zone) = t.split_at(i);
            let sign: i8 = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            let (h, m) = (digits(h, 2)?, digits(m, 2)?);
            if h > 14 || m > 59 {
                return None;
            }
            let offset = UtcOffset::from_hms(sign * h as i8, sign * m as i8, 0).ok()?;
            Some((clock, Some(offset)))
        }
        None => Some((t, None)),
    }
}

/// `hh:mm[:ss[.f…]]` to a time of day and the width of its precision in ns.
fn parse_clock(c: &str) -> Option<(Time, i128)> {
    let mut parts = c.splitn(3, ':');
    let hour = digits(parts.next()?, 2)?;
    let minute = digits(parts.next()?, 2)?;
    let (second, nanos, width) = match parts.next() {
        None => (0, 0, 60 * 1_000_000_000),
        Some(sec) => {
            let (whole, frac) = match sec.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (sec, None),
            };
            let second = digits(whole, 2)?;
            match frac {
                None => (second, 0, 1_000_000_000),
                Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
                    let scale = 10u32.pow(9 - f.len() as u32);
                    let nanos = f.parse::<u32>().ok()? * scale;
                    (second, nanos, i128::from(scale))
                }
                Some(_) => return None,
            }
        }
    };
    let time = Time::from_hms_nano(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, second as u8, nanos).ok()?;
    Some((time, width))
}

/// Exactly `n` ASCII digits, as a number.
fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> i128 {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .expect("rfc3339")
            .unix_timestamp_nanos()
    }

    #[test]
    fn a_year_month_or_day_spans_the_whole_period_in_utc() {
        assert_eq!(parse_span("2020"), Some(Span { lo: ns("2020-01-01T00:00:00Z"), hi: ns("2021-01-01T00:00:00Z") }));
        assert_eq!(
            parse_span("2020-02"),
            Some(Span { lo: ns("2020-02-01T00:00:00Z"), hi: ns("2020-03-01T00:00:00Z") })
        );
        assert_eq!(
            parse_span("2019-12-31"),
            Some(Span { lo: ns("2019-12-31T00:00:00Z"), hi: ns("2020-01-01T00:00:00Z") })
        );
        assert_eq!(parse_span("9999").map(|s| s.hi - s.lo), Some(365 * DAY_NS));
    }

    #[test]
    fn a_date_time_spans_its_precision_and_honours_its_zone() {
        let minute = parse_span("2020-03-01T10:00+02:00").expect("minute");
        assert_eq!(minute, Span { lo: ns("2020-03-01T08:00:00Z"), hi: ns("2020-03-01T08:01:00Z") });
        let second = parse_span("2020-03-01T10:00:05Z").expect("second");
        assert_eq!(second.hi - second.lo, 1_000_000_000);
        let milli = parse_span("2020-03-01T10:00:05.123-05:00").expect("milli");
        assert_eq!(milli.lo, ns("2020-03-01T15:00:05.123Z"));
        assert_eq!(milli.hi - milli.lo, 1_000_000);
        assert_eq!(parse_span("2020-03-01T10:00:05").map(|s| s.lo), Some(ns("2020-03-01T10:00:05Z")));
    }

    #[test]
    fn malformed_or_impossible_values_are_refused() {
        for bad in [
            "",
            "20",
            "2020-2",
            "2020-13",
            "2020-02-30",
            "2020-01-01T",
            "2020-01-01T25:00Z",
            "2020-01-01T10Z",
            "2020-01-01T10:00:61Z",
            "2020-01-01T10:00:00.Z",
            "2020-01-01T10:00:00.1234567890Z",
            "2020-01-01T10:00:00+15:00",
            "2020-01-01T10:00:00+0100",
            "yesterday",
            "2020-01-01-01",
            "0000",
            "2020-01T10:00Z",
            "+2020",
        ] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_instant_needs_a_time_and_a_zone() {
        assert_eq!(
            parse_instant("2020-01-01T00:00:00Z").map(|t| t.unix_timestamp_nanos()),
            Some(ns("2020-01-01T00:00:00Z"))
        );
        assert!(parse_instant("2020-01-01T00:00:00.5+01:00").is_some());
        assert!(parse_instant("2020-01-01T00:00Z").is_some());
        assert!(parse_instant("2020-01-01").is_none());
        assert!(parse_instant("2020-01-01T00:00:00").is_none());
        assert!(parse_instant("2020").is_none());
    }
}
