//! The kick-off's `Prefer` and `Accept` headers.

/// How the client asked unsupported parameters to be treated (`Prefer: handling=…`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Handling {
    /// Refuse the request (the default).
    #[default]
    Strict,
    /// Ignore what is not supported and report it in the manifest's `error` files.
    Lenient,
}

/// What a kick-off's `Prefer` headers ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    /// `respond-async` was asked for.
    pub respond_async: bool,
    /// `handling=lenient` or `handling=strict`; strict when absent.
    pub handling: Handling,
}

/// Parses every `Prefer` header value (RFC 7240): comma-separated
/// preferences, each `name[=value][;param…]`, names and our values compared
/// without regard to case, values possibly quoted. Unknown preferences are
/// ignored, as RFC 7240 asks; of a repeated preference the first counts.
pub fn parse_prefer<'a>(values: impl IntoIterator<Item = &'a str>) -> Preferences {
    let mut prefs = Preferences::default();
    let mut saw_handling = false;
    for value in values {
        for preference in split_outside_quotes(value, ',') {
            let head = split_outside_quotes(preference, ';').into_iter().next().unwrap_or_default();
            let (name, val) = match head.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
                None => (head.trim(), None),
            };
            if name.eq_ignore_ascii_case("respond-async") {
                prefs.respond_async = true;
            } else if name.eq_ignore_ascii_case("handling") && !saw_handling {
                match val.map(str::to_ascii_lowercase).as_deref() {
                    Some("lenient") => prefs.handling = Handling::Lenient,
                    Some("strict") => prefs.handling = Handling::Strict,
                    _ => continue,
                }
                saw_handling = true;
            }
        }
    }
    prefs
}

/// Whether the `Accept` header values allow a FHIR JSON answer (the
/// OperationOutcome of a refused kick-off). No header at all is fine: the IG
/// lets a server treat it as `application/fhir+json`.
pub fn accepts_fhir_json<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    let mut ranges = values.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|r| !r.is_empty()).peekable();
    if ranges.peek().is_none() {
        return true;
    }
    ranges.any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        !refused && matches!(media.as_str(), "*/*" | "application/*" | "application/fhir+json" | "application/json")
    })
}

/// Splits on `sep` except inside double quotes (where `\` escapes).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_async_and_handling_are_found_among_other_preferences() {
        let p = parse_prefer(["respond-async, handling=lenient"]);
        assert_eq!(p, Preferences { respond_async: true, handling: Handling::Lenient });
        let p = parse_prefer(["return=minimal", "  Handling = \"LENIENT\" ; x=1 ,RESPOND-ASYNC"]);
        assert_eq!(p, Preferences { respond_async: true, handling: Handling::Lenient });
        let p = parse_prefer(["wait=10;foo=\"a,handling=lenient\""]);
        assert_eq!(p, Preferences::default(), "a quoted comma does not start a preference");
    }

    #[test]
    fn strict_is_the_default_and_the_first_handling_wins() {
        assert_eq!(parse_prefer([]), Preferences::default());
        assert_eq!(parse_prefer(["respond-async"]).handling, Handling::Strict);
        assert_eq!(parse_prefer(["handling=strict, handling=lenient"]).handling, Handling::Strict);
        assert_eq!(parse_prefer(["handling=bogus, handling=lenient"]).handling, Handling::Lenient);
        assert_eq!(parse_prefer(["handling"]).handling, Handling::Strict);
    }

    #[test]
    fn fhir_json_json_wildcards_and_no_accept_header_are_acceptable() {
        for ok in [
            vec![],
            vec![""],
            vec!["*/*"],
            vec!["application/fhir+json"],
            vec!["application/json"],
            vec!["Application/FHIR+JSON; charset=utf-8"],
            vec!["text/html, application/json;q=0.5"],
            vec!["text/html", "application/*"],
        ] {
            assert!(accepts_fhir_json(ok.clone()), "{ok:?}");
        }
    }

    #[test]
    fn other_media_types_or_a_refused_json_are_not_acceptable() {
        for bad in [
            vec!["text/html"],
            vec!["application/xml"],
            vec!["application/fhir+xml, text/*"],
            vec!["application/fhir+json;q=0"],
            vec!["application/fhir+ndjson"],
        ] {
            assert!(!accepts_fhir_json(bad.clone()), "{bad:?}");
        }
    }
}
