//! A small filter model the stand-ins' own query parsers (SOQL, JQL, HubSpot filter
//! groups, Zendesk and Close search) compile to, and its evaluation over JSON records.
//! It is written apart from Junction's CEQL code on purpose: a stand-in that shared
//! Junction's parser would agree with Junction's mistakes.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// A typed literal from a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Text.
    Str(String),
    /// A number.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A calendar date.
    Date(NaiveDate),
    /// An instant.
    DateTime(DateTime<Utc>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal (text compares case-insensitively).
    Eq,
    /// Not equal; a null field is "not equal" to any non-null literal.
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// SQL `LIKE` with `%` and `_`, case-insensitive; a literal `%` or `_` in the
    /// pattern is written U+0001 or U+0002.
    Like,
    /// Case-insensitive substring (JQL `~`, HubSpot `CONTAINS_TOKEN`).
    Contains,
    /// Case-insensitive "not a substring".
    NotContains,
    /// Equal to one of the values.
    In,
    /// Equal to none of the values (a null field qualifies).
    NotIn,
    /// The field is null or missing.
    IsNull,
    /// The field has a value.
    IsNotNull,
}

/// A boolean filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `field op values` (one value except for `In`/`NotIn`, none for the null tests).
    Cond {
        /// The record field (dotted paths go into nested objects).
        field: String,
        /// The comparison.
        op: Op,
        /// The literals.
        values: Vec<Lit>,
    },
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Negation.
    Not(Box<Expr>),
}

/// Looks a field up: top-level key, else a dotted path.
pub fn lookup<'a>(record: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(value) = record.get(field) {
        return Some(value);
    }
    let mut current = record;
    for part in field.split('.') {
        current = current.get(part)?;
    }
    Some(current)
}

impl Expr {
    /// Whether the record matches.
    pub fn matches(&self, record: &Value) -> bool {
        self.matches_with(record, &|r, f| lookup(r, f))
    }

    /// Whether the record matches, with a custom field lookup.
    pub fn matches_with<'a>(
        &self,
        record: &'a Value,
        find: &dyn Fn(&'a Value, &str) -> Option<&'a Value>,
    ) -> bool {
        match self {
            Expr::And(a, b) => a.matches_with(record, find) && b.matches_with(record, find),
            Expr::Or(a, b) => a.matches_with(record, find) || b.matches_with(record, find),
            Expr::Not(e) => !e.matches_with(record, find),
            Expr::Cond { field, op, values } => {
                let value = find(record, field).unwrap_or(&Value::Null);
                test(value, *op, values)
            }
        }
    }
}

fn test(value: &Value, op: Op, values: &[Lit]) -> bool {
    let is_null = value.is_null();
    let first = values.first().unwrap_or(&Lit::Null);
    match op {
        Op::IsNull => is_null,
        Op::IsNotNull => !is_null,
        Op::Eq if *first == Lit::Null => is_null,
        Op::Ne if *first == Lit::Null => !is_null,
        _ if is_null => matches!(op, Op::Ne | Op::NotIn | Op::NotContains),
        Op::Eq => compare(value, first) == Some(Ordering::Equal),
        Op::Ne => compare(value, first) != Some(Ordering::Equal),
        Op::Lt => compare(value, first) == Some(Ordering::Less),
        Op::Le => matches!(
            compare(value, first),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Gt => compare(value, first) == Some(Ordering::Greater),
        Op::Ge => matches!(
            compare(value, first),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::In => values
            .iter()
            .any(|v| compare(value, v) == Some(Ordering::Equal)),
        Op::NotIn => !values
            .iter()
            .any(|v| compare(value, v) == Some(Ordering::Equal)),
        Op::Like => match (value, first) {
            (Value::String(s), Lit::Str(p)) => {
                // A pattern's escaped `%`/`_` arrive as U+0001/U+0002 (see `Op::Like`); the
                // text's own `%`/`_` are mapped the same way so only those match them.
                let text = s.to_lowercase().replace('%', "\u{1}").replace('_', "\u{2}");
                like(&text, &p.to_lowercase())
            }
            _ => false,
        },
        Op::Contains | Op::NotContains => {
            let hit = match (value, first) {
                (Value::String(s), Lit::Str(p)) => s.to_lowercase().contains(&p.to_lowercase()),
                (Value::Array(items), lit) => items
                    .iter()
                    .any(|item| compare(item, lit) == Some(Ordering::Equal)),
                _ => false,
            };
            hit == (op == Op::Contains)
        }
    }
}

/// Compares a record value with a literal; `None` when they do not compare.
pub fn compare(value: &Value, lit: &Lit) -> Option<Ordering> {
    match (value, lit) {
        (Value::Number(n), Lit::Num(l)) => n.as_f64()?.partial_cmp(l),
        (Value::String(s), Lit::Num(l)) => s.parse::<f64>().ok()?.partial_cmp(l),
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::String(s), Lit::Str(l)) => Some(s.to_lowercase().cmp(&l.to_lowercase())),
        (Value::Number(n), Lit::Str(l)) => Some(n.to_string().cmp(l)),
        (Value::String(s), Lit::Date(d)) => Some(parse_date(s)?.cmp(d)),
        (Value::String(s), Lit::DateTime(t)) => Some(parse_instant(s)?.cmp(t)),
        _ => None,
    }
}

/// Orders two record values (nulls first, then numbers, text, others).
pub fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => match (parse_instant(x), parse_instant(y)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.to_lowercase().cmp(&y.to_lowercase()),
        },
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// A date from `2024-01-31` or the date part of a date-time.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// An instant from RFC 3339, Salesforce's `2024-01-31T10:00:00.000+0000`, or a bare
/// date (midnight UTC).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if s.len() == 10 {
        return parse_date(s)?.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

// SQL LIKE on chars: `%` any run, `_` any one char.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == t[ti])) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_handles_wildcards() {
        assert!(like("acme 1 inc", "acme%"));
        assert!(like("acme 1 inc", "%1%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
        let cond = |p: &str| Expr::Cond {
            field: "a".into(),
            op: Op::Like,
            values: vec![Lit::Str(p.into())],
        };
        let record = |v: &str| serde_json::json!({ "a": v });
        assert!(cond("x\u{2}%").matches(&record("X_y")));
        assert!(!cond("x\u{2}%").matches(&record("Xzy")));
        assert!(cond("x_%").matches(&record("Xzy")));
    }

    #[test]
    fn nulls_only_match_null_tests_and_negations() {
        let record = serde_json::json!({ "a": null, "b": 3 });
        let cond = |field: &str, op, v: Lit| Expr::Cond {
            field: field.into(),
            op,
            values: vec![v],
        };
        assert!(cond("a", Op::Eq, Lit::Null).matches(&record));
        assert!(!cond("a", Op::Eq, Lit::Num(3.0)).matches(&record));
        assert!(cond("a", Op::Ne, Lit::Num(3.0)).matches(&record));
        assert!(cond("b", Op::Ge, Lit::Num(3.0)).matches(&record));
        assert!(!cond("missing", Op::Lt, Lit::Num(3.0)).matches(&record));
    }
}
