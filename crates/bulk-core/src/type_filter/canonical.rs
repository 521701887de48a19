//! The canonical text of a filter: what it is serialised as in the job
//! record, and parses back to the same filter.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Prefix, Span, TypeFilter, Wanted};

/// Escapes what would change a value's meaning when the query is parsed again.
fn percent_encode(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '%' | '&' | '=' | ',' | '?') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

impl fmt::Display for TypeFilter {
    /// The canonical query: parsing it again gives the same filter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("{}?", self.resource_type);
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            percent_encode(&c.param, &mut out);
            out.push('=');
            for (j, w) in c.values.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                percent_encode(&canonical_value(w), &mut out);
            }
        }
        f.write_str(&out)
    }
}

fn canonical_value(w: &Wanted) -> String {
    match w {
        Wanted::Id(id) => id.clone(),
        Wanted::Token { system: None, code: Some(c) } => c.clone(),
        Wanted::Token { system, code } => {
            format!("{}|{}", system.as_deref().unwrap_or(""), code.as_deref().unwrap_or(""))
        }
        Wanted::Date { prefix, span } => {
            let p = match prefix {
                Prefix::Eq => "eq",
                Prefix::Ne => "ne",
                Prefix::Gt => "gt",
                Prefix::Lt => "lt",
                Prefix::Ge => "ge",
                Prefix::Le => "le",
            };
            format!("{p}{}", span_text(span))
        }
        Wanted::Reference { type_name: Some(t), id } => format!("{t}/{id}"),
        Wanted::Reference { type_name: None, id } => id.clone(),
    }
}

/// A span as the FHIR value of the same precision, so it parses back to itself.
fn span_text(span: &Span) -> String {
    use time::OffsetDateTime;
    let at = |ns: i128| OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let lo = at(span.lo);
    let width = span.hi - span.lo;
    let date = format!("{:04}-{:02}-{:02}", lo.year(), u8::from(lo.month()), lo.day());
    let day_ns = 86_400 * 1_000_000_000i128;
    if width % day_ns == 0 && (lo.unix_timestamp_nanos() % day_ns) == 0 {
        let days = width / day_ns;
        if days == i128::from(time::util::days_in_year(lo.year())) && lo.ordinal() == 1 {
            return format!("{:04}", lo.year());
        }
        if days == i128::from(lo.month().length(lo.year())) && lo.day() == 1 {
            return format!("{:04}-{:02}", lo.year(), u8::from(lo.month()));
        }
        if days == 1 {
            return date;
        }
    }
    let clock = format!("{date}T{:02}:{:02}", lo.hour(), lo.minute());
    match width {
        60_000_000_000 => format!("{clock}Z"),
        1_000_000_000 => format!("{clock}:{:02}Z", lo.second()),
        w => {
            let digits = 9 - (w.max(1).ilog10() as usize).min(9);
            let frac = format!("{:09}", lo.nanosecond());
            format!("{clock}:{:02}.{}Z", lo.second(), &frac[..digits.max(1)])
        }
    }
}

impl Serialize for TypeFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TypeFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TypeFilter::parse(&text).map_err(serde::de::Error::custom)
    }
}
