//! `_typeFilter`: one `Type?param=value&…` query, parsed at kick-off and
//! evaluated in memory against each resource the worker exports.
//!
//! The supported subset of search is documented in [`table`]. A filter is
//! serialised (in the job record) as its canonical query text and parsed back,
//! so the worker evaluates exactly what the API accepted.

mod canonical;
mod table;

use serde_json::Value;

use crate::fhir_time::{parse_span, Span};
use crate::ResourceType;
pub use table::{Kind, RESULT_PARAMETERS};

/// One `_typeFilter` query: every clause must match (AND).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeFilter {
    resource_type: ResourceType,
    clauses: Vec<Clause>,
}

/// `param=v1,v2`: any value may match (OR).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    param: String,
    kind: Kind,
    values: Vec<Wanted>,
}

/// One parsed value of a clause.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wanted {
    /// An id.
    Id(String),
    /// A token: `system` `None` = any system, `Some("")` = no system; `code` `None` = any code.
    Token { system: Option<String>, code: Option<String> },
    /// A date comparison.
    Date { prefix: Prefix, span: Span },
    /// A reference: `Type/id`, or a bare id (`type_name` `None`).
    Reference { type_name: Option<String>, id: String },
}

/// FHIR search date prefixes this service supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

/// Why a filter was refused; the message names the part at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Malformed: not `Type?param=value`, a bad value, a result parameter.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but not in the supported subset.
    #[error("{0}")]
    NotSupported(String),
}

/// Longest filter we parse.
const MAX_FILTER_LEN: usize = 2048;

impl TypeFilter {
    /// Parses one query, `Type?param=value&param=value`; values may be
    /// percent-encoded (the IG has clients encode each query).
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let p = crate::request::printable;
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError::Invalid("A _typeFilter query is too long".into()));
        }
        let (type_name, query) = text.split_once('?').ok_or_else(|| {
            FilterError::Invalid(format!("_typeFilter '{}' is not of the form Type?param=value", p(text)))
        })?;
        let resource_type: ResourceType = type_name.parse().map_err(|_| {
            FilterError::Invalid(format!("_typeFilter names an unknown resource type '{}'", p(type_name)))
        })?;
        let mut clauses = Vec::new();
        for part in query.split('&').filter(|s| !s.is_empty()) {
            let (name, raw) = part.split_once('=').ok_or_else(|| {
                FilterError::Invalid(format!("_typeFilter parameter '{}' has no value", p(&percent_decode(part))))
            })?;
            let name = percent_decode(name);
            clauses.push(Clause::parse(resource_type, &name, &percent_decode(raw))?);
        }
        if clauses.is_empty() {
            return Err(FilterError::Invalid(format!("_typeFilter '{}' has no search parameters", p(text))));
        }
        Ok(TypeFilter { resource_type, clauses })
    }

    /// The type this filter applies to.
    pub fn resource_type(&self) -> ResourceType {
        self.resource_type
    }

    /// Whether `resource` (of this filter's type) meets every clause.
    pub fn matches(&self, resource: &Value) -> bool {
        resource.get("resourceType").and_then(Value::as_str) == Some(self.resource_type.as_str())
            && self.clauses.iter().all(|c| c.matches(resource))
    }
}

impl Clause {
    fn parse(t: ResourceType, name: &str, raw: &str) -> Result<Clause, FilterError> {
        let p = crate::request::printable;
        if RESULT_PARAMETERS.contains(&name) {
            return Err(FilterError::Invalid(format!(
                "Search result parameter '{}' is not allowed in _typeFilter",
                p(name)
            )));
        }
        if let Some((param, modifier)) = name.split_once(':') {
            return Err(FilterError::NotSupported(format!(
                "_typeFilter modifier ':{}' of '{}' is not supported",
                p(modifier),
                p(param)
            )));
        }
        let kind = table::lookup(t.as_str(), name).ok_or_else(|| {
            FilterError::NotSupported(format!("_typeFilter search parameter '{}' is not supported for {t}", p(name)))
        })?;
        let bad = |why: &str| FilterError::Invalid(format!("_typeFilter {t}?{}: {why}", p(name)));
        let mut values = Vec::new();
        for v in raw.split(',') {
            if v.is_empty() {
                return Err(bad("empty value"));
            }
            values.push(match kind {
                Kind::Id => Wanted::Id(v.to_owned()),
                Kind::Token(_) => match v.split_once('|') {
                    None => Wanted::Token { system: None, code: Some(v.to_owned()) },
                    Some((_, "")) if v == "|" => return Err(bad("empty token")),
                    Some((s, "")) => Wanted::Token { system: Some(s.to_owned()), code: None },
                    Some((s, c)) => Wanted::Token { system: Some(s.to_owned()), code: Some(c.to_owned()) },
                },
                Kind::Date(_) => {
                    let (prefix, rest) = split_prefix(v);
                    let prefix = prefix.map_err(|pre| {
                        FilterError::NotSupported(format!(
                            "_typeFilter date prefix '{}' of '{}' is not supported",
                            p(pre),
                            p(name)
                        ))
                    })?;
                    let span = parse_span(rest).ok_or_else(|| bad("not a FHIR date or dateTime"))?;
                    Wanted::Date { prefix, span }
                }
                Kind::Reference(_) => parse_reference(name, v).ok_or_else(|| bad("not a reference"))?,
            });
        }
        Ok(Clause { param: name.to_owned(), kind, values })
    }

    fn matches(&self, resource: &Value) -> bool {
        match self.kind {
            Kind::Id => {
                let id = resource.get("id").and_then(Value::as_str);
                self.values.iter().any(|w| matches!(w, Wanted::Id(v) if Some(v.as_str()) == id))
            }
            Kind::Token(paths) => {
                let codings = collect(resource, paths).into_iter().flat_map(codings).collect::<Vec<_>>();
                self.values.iter().any(|w| codings.iter().any(|c| token_matches(w, c)))
            }
            Kind::Date(paths) => {
                let spans: Vec<Span> = collect(resource, paths).into_iter().filter_map(span_of).collect();
                self.values.iter().any(|w| spans.iter().any(|s| date_matches(w, s)))
            }
            Kind::Reference(paths) => {
                let refs: Vec<&str> = collect(resource, paths)
                    .into_iter()
                    .filter_map(|v| v.get("reference").and_then(Value::as_str))
                    .collect();
                self.values.iter().any(|w| refs.iter().any(|r| reference_matches(w, r)))
            }
        }
    }
}

/// `gt2020` → (`Gt`, `2020`); an unsupported two-letter prefix is the error.
fn split_prefix(v: &str) -> (Result<Prefix, &str>, &str) {
    let (head, rest) = v.split_at(v.len().min(2));
    let prefix = match head {
        "eq" => Prefix::Eq,
        "ne" => Prefix::Ne,
        "gt" => Prefix::Gt,
        "lt" => Prefix::Lt,
        "ge" => Prefix::Ge,
        "le" => Prefix::Le,
        "sa" | "eb" | "ap" => return (Err(head), rest),
        _ => return (Ok(Prefix::Eq), v),
    };
    (Ok(prefix), rest)
}

fn parse_reference(param: &str, v: &str) -> Option<Wanted> {
    let valid_id = |id: &str| crate::request::is_fhir_id(id);
    match v.split_once('/') {
        Some((t, id)) if t.parse::<ResourceType>().is_ok() && valid_id(id) => (param != "patient" || t == "Patient")
            .then(|| Wanted::Reference { type_name: Some(t.into()), id: id.into() }),
        Some(_) => None,
        None if valid_id(v) => {
            Some(Wanted::Reference { type_name: (param == "patient").then(|| "Patient".into()), id: v.into() })
        }
        None => None,
    }
}

/// Every value at the dotted `paths` (through arrays; `name[x]` collects the choice elements).
fn collect<'a>(resource: &'a Value, paths: &[&str]) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for path in paths {
        let mut current = vec![resource];
        for step in path.split('.') {
            let mut next = Vec::new();
            for v in current {
                let Some(obj) = v.as_object() else { continue };
                if let Some(prefix) = step.strip_suffix("[x]") {
                    for (k, child) in obj {
                        if k.strip_prefix(prefix).is_some_and(|s| s.starts_with(|c: char| c.is_ascii_uppercase())) {
                            next.push(child);
                        }
                    }
                } else if let Some(child) = obj.get(step) {
                    next.push(child);
                }
            }
            current =
                next.into_iter().flat_map(|v| v.as_array().map(|a| a.iter().collect()).unwrap_or(vec![v])).collect();
        }
        out.extend(current);
    }
    out
}

/// A searchable coding: (system, code); system `None` for a plain `code` element.
type Coding<'a> = (Option<&'a str>, Option<&'a str>);

fn codings(v: &Value) -> Vec<Coding<'_>> {
    fn one(c: &Value) -> Coding<'_> {
        (Some(c.get("system").and_then(Value::as_str).unwrap_or("")), c.get("code").and_then(Value::as_str))
    }
    match v {
        Value::String(s) => vec![(None, Some(s.as_str()))],
        Value::Object(o) => match o.get("coding").and_then(Value::as_array) {
            Some(list) => list.iter().map(one).collect(),
            None => vec![one(v)],
        },
        _ => vec![],
    }
}

fn token_matches(w: &Wanted, (system, code): &Coding<'_>) -> bool {
    let Wanted::Token { system: ws, code: wc } = w else { return false };
    // A plain `code` element's system is implicit: only its code is compared.
    let system_ok = match (ws, system) {
        (None, _) | (_, None) => true,
        (Some(want), Some(have)) => want == have,
    };
    let code_ok = match wc {
        None => true,
        Some(want) => *code == Some(want.as_str()),
    };
    system_ok && code_ok
}

/// The span of a date/dateTime/instant string or a `Period`.
fn span_of(v: &Value) -> Option<Span> {
    match v {
        Value::String(s) => parse_span(s),
        Value::Object(o) if o.contains_key("start") || o.contains_key("end") => {
            let start = o.get("start").and_then(Value::as_str).map(parse_span);
            let end = o.get("end").and_then(Value::as_str).map(parse_span);
            Some(Span {
                lo: match start {
                    Some(s) => s?.lo,
                    None => Span::UNBOUNDED.lo,
                },
                hi: match end {
                    Some(e) => e?.hi,
                    None => Span::UNBOUNDED.hi,
                },
            })
        }
        _ => None,
    }
}

/// FHIR search semantics over spans: `eq` means the resource's span lies
/// within the value's; `gt` that the resource's span reaches past the
/// value's end; `ge` either; and the mirror images for `lt`/`le`.
fn date_matches(w: &Wanted, r: &Span) -> bool {
    let Wanted::Date { prefix, span: p } = w else { return false };
    let within = p.lo <= r.lo && r.hi <= p.hi;
    match prefix {
        Prefix::Eq => within,
        Prefix::Ne => !within,
        Prefix::Gt => r.hi > p.hi,
        Prefix::Lt => r.lo < p.lo,
        Prefix::Ge => r.hi > p.hi || within,
        Prefix::Le => r.lo < p.lo || within,
    }
}

fn reference_matches(w: &Wanted, reference: &str) -> bool {
    let Wanted::Reference { type_name, id } = w else { return false };
    let mut segments = reference.rsplit('/');
    let (Some(have_id), Some(have_type)) = (segments.next(), segments.next()) else { return false };
    have_id == id && type_name.as_deref().is_none_or(|t| t == have_type)
}

/// Decodes `%XX` escapes (not `+`: in a FHIR query a `+` is a time-zone sign more often than a space).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a `_typeFilter` parameter value into its queries. Queries are
/// joined by commas, but a comma also separates the values of one search
/// parameter (`code=a,b`), so a comma starts a new query only when what
/// follows it looks like `Type?`.
pub fn split_queries(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in value.match_indices(',') {
        let rest = &value[i + 1..];
        let starts_query = rest.split_once('?').is_some_and(|(t, _)| {
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()) && t.as_bytes()[0].is_ascii_uppercase()
        });
        if starts_query {
            out.push(&value[start..i]);
            start = i + 1;
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests;
