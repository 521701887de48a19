//! SMART `system/` scopes: parsing, what a client may be granted, and which
//! resource types a granted scope string lets its bearer export.
//!
//! Both syntaxes are read: v1 (`system/*.read`, `.write`, `.*`) and v2
//! (`system/Patient.rs`, letters from `cruds` in that order). Exporting is a
//! read and a search, so a scope grants export of its type only when it holds
//! both `r` and `s` (v1 `read` and `*` do). Scopes with query parameters
//! (`system/Observation.rs?category=…`), other contexts (`patient/`, `user/`)
//! and unknown types are never granted: a client gets nothing it could not be
//! held to.

use std::fmt;

use bulk_core::ResourceType;

const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;
/// v2 letters in the order SMART requires, with their bits.
const LETTERS: [(char, u8); 5] = [('c', C), ('r', R), ('u', U), ('d', D), ('s', S)];
const V1_READ: u8 = R | S;
const V1_WRITE: u8 = C | U | D;
const ALL: u8 = C | R | U | D | S;

/// Which syntax a scope was written in; a granted scope is echoed in the
/// syntax it was requested in where it can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    V1,
    V2,
}

/// One `system/` scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope {
    /// `None` is `*`: every type.
    resource: Option<ResourceType>,
    /// Bits of `cruds`; never empty.
    perms: u8,
    syntax: Syntax,
}

impl Scope {
    /// Parses one scope; `None` for anything this service does not grant.
    pub(crate) fn parse(s: &str) -> Option<Scope> {
        let rest = s.strip_prefix("system/")?;
        let (ty, perms) = rest.split_once('.')?;
        let resource = match ty {
            "*" => None,
            name => Some(name.parse::<ResourceType>().ok()?),
        };
        let (perms, syntax) = match perms {
            "read" => (V1_READ, Syntax::V1),
            "write" => (V1_WRITE, Syntax::V1),
            "*" => (ALL, Syntax::V1),
            letters => (parse_letters(letters)?, Syntax::V2),
        };
        Some(Scope { resource, perms, syntax })
    }

    /// Whether this scope lets its bearer export its type(s).
    pub(crate) fn grants_export(&self) -> bool {
        self.perms & V1_READ == V1_READ
    }

    /// What of `self` (requested) `allowed` covers, if anything.
    fn intersect(&self, allowed: &Scope) -> Option<Scope> {
        let resource = match (self.resource, allowed.resource) {
            (None, r) | (r, None) => r,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => return None,
        };
        let perms = self.perms & allowed.perms;
        (perms != 0).then_some(Scope { resource, perms, syntax: self.syntax })
    }
}

/// `cruds` letters, each at most once and in that order.
fn parse_letters(s: &str) -> Option<u8> {
    let mut bits = 0;
    let mut next = 0;
    for ch in s.chars() {
        let i = LETTERS[next..].iter().position(|(l, _)| *l == ch)? + next;
        bits |= LETTERS[i].1;
        next = i + 1;
    }
    (bits != 0).then_some(bits)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = self.resource.map_or("*", |t| t.as_str());
        let v1 = match self.perms {
            V1_READ => Some("read"),
            V1_WRITE => Some("write"),
            ALL => Some("*"),
            _ => None,
        };
        match (self.syntax, v1) {
            (Syntax::V1, Some(word)) => write!(f, "system/{ty}.{word}"),
            _ => {
                let letters: String =
                    LETTERS.iter().filter(|(_, bit)| self.perms & bit != 0).map(|(l, _)| *l).collect();
                write!(f, "system/{ty}.{letters}")
            }
        }
    }
}

/// The scopes granted for a `requested` scope string (space-separated) to a
/// client allowed `allowed`: each requested scope narrowed to what an allowed
/// one covers. Empty when nothing is granted (`invalid_scope`).
pub(crate) fn grant(requested: &str, allowed: &[Scope]) -> Vec<Scope> {
    let mut granted: Vec<Scope> = Vec::new();
    for scope in requested.split_whitespace().filter_map(Scope::parse) {
        for a in allowed {
            if let Some(g) = scope.intersect(a) {
                if !granted.contains(&g) {
                    granted.push(g);
                }
            }
        }
    }
    granted
}

/// The granted scopes as the token response's and the token's `scope`.
pub(crate) fn to_scope_string(granted: &[Scope]) -> String {
    granted.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

/// The types a scope string lets its bearer export: `None` for every type
/// (`system/*.read` or alike), else the listed types (possibly none).
pub(crate) fn exportable_types(scope: &str) -> Option<Vec<ResourceType>> {
    let mut types = Vec::new();
    for s in scope.split_whitespace().filter_map(Scope::parse).filter(Scope::grants_export) {
        match s.resource {
            None => return None,
            Some(t) if !types.contains(&t) => types.push(t),
            Some(_) => {}
        }
    }
    types.sort();
    Some(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str]) -> Vec<Scope> {
        list.iter().map(|s| Scope::parse(s).expect("valid scope")).collect()
    }

    fn granted(requested: &str, allow: &[&str]) -> String {
        to_scope_string(&grant(requested, &allowed(allow)))
    }

    #[test]
    fn v1_and_v2_system_scopes_parse_and_round_trip() {
        for s in ["system/*.read", "system/*.rs", "system/Patient.read", "system/Observation.rs", "system/*.*"] {
            assert_eq!(Scope::parse(s).expect(s).to_string(), s);
        }
        assert_eq!(Scope::parse("system/*.cruds").expect("v2").to_string(), "system/*.cruds");
    }

    #[test]
    fn other_contexts_unknown_types_bad_letters_and_query_scopes_are_not_scopes_we_grant() {
        for s in [
            "patient/*.read",
            "user/Patient.rs",
            "system/Nope.read",
            "system/*.sr",
            "system/*.rr",
            "system/*.x",
            "system/*.",
            "system/Observation.rs?category=laboratory",
            "launch",
            "openid",
        ] {
            assert!(Scope::parse(s).is_none(), "{s}");
        }
    }

    #[test]
    fn a_requested_scope_the_client_is_allowed_is_granted_as_requested() {
        assert_eq!(granted("system/*.read", &["system/*.read"]), "system/*.read");
        assert_eq!(granted("system/*.rs", &["system/*.read"]), "system/*.rs");
        assert_eq!(granted("system/Patient.read", &["system/*.read"]), "system/Patient.read");
    }

    #[test]
    fn a_wildcard_request_is_narrowed_to_the_types_the_client_is_allowed() {
        assert_eq!(
            granted("system/*.read", &["system/Patient.rs", "system/Consent.read"]),
            "system/Patient.read system/Consent.read"
        );
        assert_eq!(granted("system/*.*", &["system/*.read"]), "system/*.read");
        assert_eq!(granted("system/*.cruds", &["system/*.read"]), "system/*.rs");
    }

    #[test]
    fn scopes_the_client_is_not_allowed_are_dropped_and_none_left_is_empty() {
        assert_eq!(granted("system/Patient.read system/Consent.read", &["system/Patient.read"]), "system/Patient.read");
        assert_eq!(granted("system/Consent.read", &["system/Patient.read"]), "");
        assert_eq!(granted("patient/*.read launch", &["system/*.read"]), "");
        assert_eq!(granted("system/*.write", &["system/*.read"]), "");
        assert_eq!(granted("", &["system/*.read"]), "");
    }

    #[test]
    fn write_only_scopes_grant_no_export() {
        assert_eq!(exportable_types("system/*.write"), Some(vec![]));
        assert_eq!(exportable_types("system/Patient.cud"), Some(vec![]));
        assert_eq!(exportable_types("system/Patient.r"), Some(vec![]), "read without search is not an export");
    }

    #[test]
    fn exportable_types_follow_the_granted_scopes() {
        assert_eq!(exportable_types("system/*.read"), None);
        assert_eq!(exportable_types("system/Patient.read system/*.rs"), None);
        assert_eq!(
            exportable_types("system/Patient.read system/Consent.rs system/Patient.rs"),
            Some(vec![ResourceType::CONSENT, ResourceType::PATIENT])
        );
    }
}
