//! Content negotiation of the error format: does the request's `Accept` strictly prefer
//! `application/problem+json` to `application/json`?
//!
//! The parse follows RFC 9110 §12.5.1: a comma-separated list of media ranges, each with
//! optional parameters and a `q` weight (0 to 1, at most three decimals, default 1). For each
//! of the two formats the weight is that of the most specific range that matches it (the exact
//! type beats `application/*`, which beats `*/*`); among ranges of equal specificity the
//! highest weight counts. Media type parameters other than `q` (`charset=utf-8`) do not change
//! the match. A format no range matches has weight 0.
//!
//! The answer is "problem" only when problem+json's weight is strictly greater than JSON's: a
//! tie (no `Accept`, `*/*`, `application/*`, both listed at the same weight) keeps the
//! envelope, and so does a header that does not parse (a range without a `/`, a `q` that is not
//! a number in 0–1, bytes that are not visible ASCII): the envelope is the default and a
//! client that sends garbage gets the default.

use http::header::ACCEPT;
use http::{HeaderMap, HeaderValue};

/// The two formats the layer can answer in, as `(type, subtype)`.
const JSON: (&str, &str) = ("application", "json");
const PROBLEM: (&str, &str) = ("application", "problem+json");

/// Whether `headers` carry an `Accept` that strictly prefers `application/problem+json` to
/// `application/json`. Every `Accept` header counts, as one list.
pub(crate) fn prefers_problem(headers: &HeaderMap) -> bool {
    prefers_problem_in(headers.get_all(ACCEPT))
}

/// A request's `Accept`, kept for the error response that may need it.
///
/// Only an error response is negotiated, so the parse waits for one: a request keeps its
/// `Accept` value (a clone of a `HeaderValue` is a reference count), and a success never parses
/// it. A request with several `Accept` headers, which is rare, is parsed at once rather than
/// keeping a list.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptAccept(Kept);

#[derive(Debug, Clone, Default)]
enum Kept {
    /// No `Accept`: nothing prefers problem details.
    #[default]
    Absent,
    /// The one `Accept` header, not parsed yet.
    One(HeaderValue),
    /// Several `Accept` headers, already parsed.
    Parsed(bool),
}

impl KeptAccept {
    /// Keeps the `Accept` of `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        if headers.is_empty() {
            // A lookup hashes the name even in an empty map.
            return KeptAccept(Kept::Absent);
        }
        let mut values = headers.get_all(ACCEPT).iter();
        KeptAccept(match (values.next(), values.next()) {
            (None, _) => Kept::Absent,
            (Some(one), None) => Kept::One(one.clone()),
            (Some(_), Some(_)) => Kept::Parsed(prefers_problem(headers)),
        })
    }

    /// [`prefers_problem`] of the request's headers.
    pub(crate) fn prefers_problem(&self) -> bool {
        match &self.0 {
            Kept::Absent => false,
            Kept::One(value) => prefers_problem_in([value]),
            Kept::Parsed(prefers) => *prefers,
        }
    }
}

/// [`prefers_problem`] of the `Accept` values `values`, read as one list.
fn prefers_problem_in<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> bool {
    let mut json = Weight::default();
    let mut problem = Weight::default();
    for value in values {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for element in value.split(',') {
            let element = element.trim();
            // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
            if element.is_empty() {
                continue;
            }
            let Some(range) = MediaRange::parse(element) else {
                return false;
            };
            json.offer(range.specificity(JSON), range.q);
            problem.offer(range.specificity(PROBLEM), range.q);
        }
    }
    problem.q() > json.q()
}

/// The weight a format gets: that of its most specific matching range.
#[derive(Debug, Default, Clone, Copy)]
struct Weight {
    /// (specificity, q in thousandths) of the best range so far; `None` when none matched.
    best: Option<(u8, u16)>,
}

impl Weight {
    fn offer(&mut self, specificity: u8, q: u16) {
        if specificity == 0 {
            return;
        }
        match self.best {
            Some((s, _)) if s > specificity => {}
            Some((s, best_q)) if s == specificity && best_q >= q => {}
            _ => self.best = Some((specificity, q)),
        }
    }

    fn q(self) -> u16 {
        self.best.map_or(0, |(_, q)| q)
    }
}

/// One element of an `Accept` list.
#[derive(Debug, PartialEq, Eq)]
struct MediaRange<'a> {
    ty: &'a str,
    subtype: &'a str,
    /// The weight in thousandths: 1000 for `q=1`.
    q: u16,
}

impl<'a> MediaRange<'a> {
    fn parse(element: &'a str) -> Option<Self> {
        let mut pieces = element.split(';');
        let (ty, subtype) = pieces.next()?.trim().split_once('/')?;
        if !is_token(ty) || !is_token(subtype) || (ty == "*" && subtype != "*") {
            return None;
        }
        let mut q = 1000;
        for param in pieces {
            let (name, value) = param.trim().split_once('=')?;
            let (name, value) = (name.trim_end(), value.trim_start());
            if !is_token(name) || value.is_empty() {
                return None;
            }
            if name.eq_ignore_ascii_case("q") {
                q = parse_q(value)?;
                // What follows `q` are accept extensions, which say nothing about the type.
                break;
            }
        }
        Some(MediaRange { ty, subtype, q })
    }

    /// How specifically this range names `(ty, subtype)`: 3 exactly, 2 as `ty/*`, 1 as `*/*`,
    /// 0 not at all. Types are case-insensitive.
    fn specificity(&self, (ty, subtype): (&str, &str)) -> u8 {
        let ty_matches = self.ty.eq_ignore_ascii_case(ty);
        match (self.ty, self.subtype) {
            ("*", "*") => 1,
            (_, "*") if ty_matches => 2,
            (_, sub) if ty_matches && sub.eq_ignore_ascii_case(subtype) => 3,
            _ => 0,
        }
    }
}

/// RFC 9110 §12.4.2: `0`, `0.` to `0.999`, `1`, `1.` to `1.000`; in thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 `token`: one or more of the visible ASCII characters but delimiters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn prefers(accept: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        let now = prefers_problem(&headers);
        assert_eq!(
            KeptAccept::of(&headers).prefers_problem(),
            now,
            "kept and parsed later: {accept:?}"
        );
        now
    }

    #[test]
    fn problem_json_is_chosen_only_when_strictly_preferred() {
        assert!(prefers(&["application/problem+json"]));
        assert!(prefers(&[
            "application/problem+json, application/json;q=0.9"
        ]));
        assert!(prefers(&[
            "application/json;q=0.5, application/problem+json"
        ]));
        assert!(prefers(&[
            "application/problem+json",
            "application/json;q=0.1"
        ]));
        assert!(prefers(&["application/problem+json, */*;q=0.8"]));
        assert!(prefers(&["APPLICATION/Problem+JSON"]));
        assert!(prefers(&[
            "application/problem+json;q=0.2, application/*;q=0.1"
        ]));
    }

    #[test]
    fn ties_and_preferences_for_json_keep_the_envelope() {
        assert!(!prefers(&[]));
        assert!(!prefers(&[""]));
        assert!(!prefers(&["*/*"]));
        assert!(!prefers(&["application/*"]));
        assert!(!prefers(&["application/json"]));
        assert!(!prefers(&["application/json, application/problem+json"]));
        assert!(!prefers(&[
            "application/problem+json;q=0.5, application/json;q=0.5"
        ]));
        assert!(!prefers(&[
            "application/problem+json;q=0.5, application/json"
        ]));
        assert!(!prefers(&["application/problem+json;q=0"]));
        assert!(!prefers(&["text/html,application/xhtml+xml,*/*;q=0.8"]));
        // The more specific range wins over a higher weight of a broader one.
        assert!(!prefers(&[
            "application/problem+json;q=0.1, application/*;q=0.9"
        ]));
    }

    #[test]
    fn the_most_specific_range_sets_a_formats_weight() {
        // JSON is named at 0.3, so `*/*` at 1 does not lift it; problem+json gets `*/*`'s 1.
        assert!(prefers(&["application/json;q=0.3, */*"]));
        // problem+json excluded explicitly, though `*/*` would accept it.
        assert!(!prefers(&["*/*, application/problem+json;q=0"]));
    }

    #[test]
    fn a_malformed_accept_keeps_the_envelope() {
        for bad in [
            "application/problem+json;q=2",
            "application/problem+json;q=0.1234",
            "application/problem+json;q=",
            "application/problem+json;q=abc",
            "application/problem+json;q=-1",
            "application/problem+json;q",
            "problem+json",
            "*/problem+json",
            "application/problem+json, /json;q=0.1",
            "application/problem json",
            "application/problem+json;=1",
        ] {
            assert!(!prefers(&[bad]), "{bad}");
        }
        let mut headers = HeaderMap::new();
        let latin1 = HeaderValue::from_bytes(b"application/problem+json;x=\xe9").unwrap();
        headers.insert(ACCEPT, latin1);
        assert!(!prefers_problem(&headers));
        assert!(!KeptAccept::of(&headers).prefers_problem());
    }

    #[test]
    fn one_accept_is_kept_unparsed_and_several_are_parsed_at_once() {
        let mut headers = HeaderMap::new();
        assert!(matches!(KeptAccept::of(&headers).0, Kept::Absent));
        headers.insert(ACCEPT, HeaderValue::from_static("application/problem+json"));
        let kept = KeptAccept::of(&headers);
        assert!(matches!(&kept.0, Kept::One(v) if v == "application/problem+json"));
        assert!(kept.prefers_problem());
        headers.append(ACCEPT, HeaderValue::from_static("application/json;q=0.1"));
        assert!(matches!(KeptAccept::of(&headers).0, Kept::Parsed(true)));
    }

    #[test]
    fn other_parameters_and_extensions_are_allowed() {
        assert!(prefers(&[
            "application/problem+json;charset=utf-8;q=1;ext=1, application/json;q=0.5"
        ]));
        assert!(prefers(&[
            "application/problem+json ; q=0.9 , application/json ; q=0.8"
        ]));
        assert!(prefers(&[", application/problem+json,,"]));
    }

    #[test]
    fn q_values_parse_to_thousandths() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1."), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0.001"), Some(1));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("1.001"), None);
        assert_eq!(parse_q(".5"), None);
        assert_eq!(parse_q("00.5"), None);
    }
}
