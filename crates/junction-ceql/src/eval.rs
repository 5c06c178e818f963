//! Evaluation of a `where` expression, ordering and projection over JSON records, for
//! vendors that cannot filter or sort themselves.
//!
//! Typing rules (SQL semantics, three-valued):
//! - A field is looked up by its path segments through nested objects; a missing field,
//!   or a path through a non-object, is null.
//! - A comparison involving null (a null field or the literal `null`) is *unknown*: so
//!   `x = null` and `x != null` are never true; use `IS NULL` / `IS NOT NULL`.
//! - Numbers compare numerically. A number and a string that reads as a number (`"42"`)
//!   compare numerically too.
//! - Two strings that both read as ISO-8601 dates (`2026-01-01`) or RFC 3339 date-times
//!   (`2026-01-01T00:00:00Z`, any offset) compare as dates: date-times as instants, and
//!   a date-time against a date-only value by the date-time's UTC date.
//! - Other strings compare by code point, case-sensitively. Booleans: `false < true`.
//! - Values of kinds that do not compare (a string and a boolean, an array or object and
//!   anything) are *unknown*, like null.
//! - `LIKE` matches a string value against a pattern where `%` is any run of characters
//!   and `_` one character, ignoring case (as Salesforce and most vendors do). A non-string
//!   value is *unknown*.
//! - `IN` is true when one listed value is equal; otherwise unknown if the value or a
//!   listed value is null, else false.
//! - `AND`, `OR`, `NOT` follow SQL's three-valued logic (`NOT unknown` is unknown) and
//!   a record matches only when the whole expression is true.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Number, Value};

use crate::ast::{DateValue, Expr, Field, Literal, Operator, parse_number};
use crate::parse::{Direction, OrderBy, parse_field};

/// Whether `record` matches `expr`; see the module documentation for the typing rules.
pub fn evaluate(expr: &Expr, record: &Value) -> bool {
    eval(expr, record) == Some(true)
}

/// Three-valued evaluation: `None` is SQL's unknown.
fn eval(expr: &Expr, record: &Value) -> Option<bool> {
    match expr {
        Expr::Compare {
            field, op, value, ..
        } => {
            let ordering = compare(lookup(record, field), value)?;
            Some(match op {
                Operator::Eq => ordering == Ordering::Equal,
                Operator::Ne => ordering != Ordering::Equal,
                Operator::Lt => ordering == Ordering::Less,
                Operator::Gt => ordering == Ordering::Greater,
                Operator::Le => ordering != Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        Expr::Like { field, pattern, .. } => match lookup(record, field) {
            Value::String(s) => Some(like(s, pattern)),
            _ => None,
        },
        Expr::In { field, values, .. } => {
            let found = lookup(record, field);
            let mut unknown = false;
            for value in values {
                match compare(found, value) {
                    Some(Ordering::Equal) => return Some(true),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
            if unknown { None } else { Some(false) }
        }
        Expr::IsNull { field, negated, .. } => Some(lookup(record, field).is_null() != *negated),
        Expr::And { operands, .. } => {
            let mut result = Some(true);
            for operand in operands {
                match eval(operand, record) {
                    Some(false) => return Some(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Expr::Or { operands, .. } => {
            let mut result = Some(false);
            for operand in operands {
                match eval(operand, record) {
                    Some(true) => return Some(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        Expr::Not { operand, .. } => eval(operand, record).map(|b| !b),
    }
}

static NULL: Value = Value::Null;

/// The value at `field`'s path, or null.
pub fn lookup<'a>(record: &'a Value, field: &Field) -> &'a Value {
    let mut current = record;
    for segment in &field.segments {
        match current.as_object().and_then(|o| o.get(segment)) {
            Some(next) => current = next,
            _ => return &NULL,
        }
    }
    current
}

fn number_from_str(s: &str) -> Option<Number> {
    // Only JSON-shaped numbers: "NaN", "inf" or "0x10" are strings, not numbers.
    parse_number(s.trim())
}

fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn compare_dates(a: DateValue, b: DateValue) -> Ordering {
    match (a, b) {
        (DateValue::Date(x), DateValue::Date(y)) => x.cmp(&y),
        (DateValue::DateTime(x), DateValue::DateTime(y)) => x.cmp(&y),
        (DateValue::DateTime(x), DateValue::Date(y)) => x.with_timezone(&Utc).date_naive().cmp(&y),
        (DateValue::Date(x), DateValue::DateTime(y)) => x.cmp(&y.with_timezone(&Utc).date_naive()),
    }
}

/// How a record value compares with a literal, or `None` when SQL would say unknown.
fn compare(found: &Value, literal: &Literal) -> Option<Ordering> {
    match (found, literal) {
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::Number(a), Literal::Number(b)) => compare_numbers(a, b),
        (Value::Number(a), Literal::String(b)) => compare_numbers(a, &number_from_str(b)?),
        (Value::String(a), Literal::Number(b)) => compare_numbers(&number_from_str(a)?, b),
        (Value::String(a), Literal::String(b)) => {
            match (DateValue::parse(a), DateValue::parse(b)) {
                (Some(x), Some(y)) => Some(compare_dates(x, y)),
                _ => Some(a.as_str().cmp(b.as_str())),
            }
        }
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// SQL `LIKE` without escapes, ignoring case: `%` any run, `_` one character.
/// Greedy matching with one backtrack point per `%`: linear memory, and at worst
/// text length × pattern length steps, whatever the pattern.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().map(fold).collect();
    let pattern: Vec<char> = pattern.chars().map(fold).collect();
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('%') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '_' || c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

/// A total order over JSON values for sorting. Kinds first: booleans, numbers, dates
/// (date-only values as midnight UTC), other strings, arrays and objects (by their JSON
/// text), then null. Numeric strings sort as strings here: mixing kinds by value would
/// not be a total order, and sorting needs one.
#[derive(Debug, PartialEq, PartialOrd)]
enum SortKey {
    Bool(bool),
    Number(TotalF64),
    Date(DateTime<Utc>),
    String(String),
    Other(String),
    Null,
}

#[derive(Debug, PartialEq)]
struct TotalF64(f64);

impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.0.total_cmp(&other.0))
    }
}

fn sort_key(value: &Value) -> SortKey {
    match value {
        Value::Null => SortKey::Null,
        Value::Bool(b) => SortKey::Bool(*b),
        Value::Number(n) => SortKey::Number(TotalF64(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => match DateValue::parse(s) {
            Some(DateValue::DateTime(d)) => SortKey::Date(d.with_timezone(&Utc)),
            Some(DateValue::Date(d)) => SortKey::Date(midnight(d)),
            None => SortKey::String(s.clone()),
        },
        other => SortKey::Other(other.to_string()),
    }
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn field_of(name: &str) -> Field {
    // A name that is not valid CEQL is taken as a literal top-level key.
    parse_field(name).unwrap_or_else(|_| Field::single(name))
}

/// Orders two records by `order`: ascending puts nulls (and missing fields) last,
/// descending is the exact reverse. Kinds sort as `SortKey` describes.
pub fn compare_records(order: &OrderBy, a: &Value, b: &Value) -> Ordering {
    for (name, direction) in &order.0 {
        let field = field_of(name);
        let ordering = sort_key(lookup(a, &field))
            .partial_cmp(&sort_key(lookup(b, &field)))
            .unwrap_or(Ordering::Equal);
        let ordering = match direction {
            Direction::Asc => ordering,
            Direction::Desc => ordering.reverse(),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Keeps only the named fields of `record` (names in CEQL notation; a path keeps the
/// nested value with its enclosing objects). Missing fields are left out; a record that
/// is not an object is returned as is.
pub fn project(fields: &[String], record: &Value) -> Value {
    if !record.is_object() {
        return record.clone();
    }
    let mut out = Map::new();
    for name in fields {
        let field = field_of(name);
        let value = lookup(record, &field);
        if value.is_null() && !has_path(record, &field) {
            continue;
        }
        insert_path(&mut out, &field.segments, value.clone());
    }
    Value::Object(out)
}

fn has_path(record: &Value, field: &Field) -> bool {
    let mut current = record;
    for segment in &field.segments {
        match current.as_object().and_then(|o| o.get(segment)) {
            Some(next) => current = next,
            None => return false,
        }
    }
    true
}

fn insert_path(out: &mut Map<String, Value>, segments: &[String], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        out.insert(first.clone(), value);
        return;
    }
    let entry = out
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = entry {
        insert_path(inner, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, parse_order_by};
    use serde_json::json;

    fn matches(query: &str, record: &Value) -> bool {
        evaluate(&parse(query).expect("parses"), record)
    }

    #[test]
    fn each_comparison_operator_compares_numbers_strings_and_booleans() {
        let r = json!({"n": 5, "s": "abc", "b": true});
        for (q, want) in [
            ("n = 5", true),
            ("n != 5", false),
            ("n <> 4", true),
            ("n < 6", true),
            ("n < 5", false),
            ("n > 4.5", true),
            ("n <= 5", true),
            ("n >= 5.5", false),
            ("s = 'abc'", true),
            ("s = 'ABC'", false),
            ("s < 'abd'", true),
            ("s > 'ab'", true),
            ("b = true", true),
            ("b > false", true),
            ("b != true", false),
        ] {
            assert_eq!(matches(q, &r), want, "{q}");
        }
    }

    #[test]
    fn a_number_and_a_numeric_string_compare_numerically() {
        assert!(matches("n = '10'", &json!({"n": 10})));
        assert!(matches("n > 9", &json!({"n": "10"})));
        assert!(
            !matches("n > '9'", &json!({"n": "10"})),
            "two strings compare as strings"
        );
        assert!(!matches("n = 1", &json!({"n": "one"})));
        assert!(
            !matches("NOT n = 1", &json!({"n": "one"})),
            "incomparable is unknown"
        );
    }

    #[test]
    fn dates_compare_as_instants_and_date_only_by_date() {
        let r = json!({"at": "2026-01-01T10:00:00+02:00", "day": "2026-03-04"});
        assert!(matches("at = '2026-01-01T08:00:00Z'", &r));
        assert!(matches("at > '2026-01-01T07:59:59.999Z'", &r));
        assert!(matches("at = '2026-01-01'", &r));
        assert!(matches("at < '2026-01-02'", &r));
        assert!(matches("day = '2026-03-04T23:00:00Z'", &r));
        assert!(
            !matches("day > '2026-03-03T23:59:59-05:00'", &r),
            "that is 04:59 UTC on 03-04, the same date"
        );
    }

    #[test]
    fn like_matches_wildcards_ignoring_case() {
        let r = json!({"s": "Churro's Test", "n": 5});
        for (q, want) in [
            ("s LIKE 'churro%'", true),
            ("s LIKE '%TEST'", true),
            ("s LIKE '%o_s%'", true),
            ("s LIKE 'Churro'", false),
            ("s LIKE '%'", true),
            ("s LIKE '_hurro''s test'", true),
            ("s LIKE '%x%'", false),
            ("n LIKE '5'", false),
        ] {
            assert_eq!(matches(q, &r), want, "{q}");
        }
        assert!(like(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            "%a%a%a%a%a%a%a%a%b"
        ));
        assert!(!like(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "%a%a%a%a%a%a%a%a%b"
        ));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
    }

    #[test]
    fn in_is_true_on_any_equal_value_and_unknown_with_nulls() {
        let r = json!({"s": "b", "n": null});
        assert!(matches("s IN ('a', 'b')", &r));
        assert!(!matches("s IN ('a', 'c')", &r));
        assert!(matches("NOT s IN ('a', 'c')", &r));
        assert!(
            !matches("NOT s IN ('a', null)", &r),
            "unknown, so NOT is unknown too"
        );
        assert!(!matches("n IN (1, 2)", &r));
        assert!(!matches("NOT n IN (1, 2)", &r));
    }

    #[test]
    fn null_and_missing_fields_only_match_is_null() {
        let r = json!({"a": null, "o": {"x": 1}});
        assert!(matches("a IS NULL", &r));
        assert!(matches("missing IS NULL", &r));
        assert!(matches("o.y IS NULL", &r));
        assert!(matches("o.x.deeper IS NULL", &r));
        assert!(matches("o IS NOT NULL", &r));
        assert!(!matches("a = null", &r));
        assert!(!matches("a != null", &r));
        assert!(!matches("a != 1", &r));
        assert!(!matches("NOT a = 1", &r));
        assert!(!matches("missing < 1", &r));
    }

    #[test]
    fn logic_follows_three_valued_sql() {
        let r = json!({"a": 1, "n": null});
        assert!(matches("a = 1 OR n = 1", &r), "true OR unknown");
        assert!(!matches("a = 1 AND n = 1", &r), "true AND unknown");
        assert!(
            matches("NOT (a = 2 AND n = 1)", &r),
            "NOT (false AND unknown)"
        );
        assert!(!matches("NOT (a = 1 AND n = 1)", &r), "NOT unknown");
        assert!(matches("NOT NOT a = 1", &r));
    }

    #[test]
    fn paths_walk_nested_objects_and_backticks_name_dotted_keys() {
        let r = json!({"address": {"city": "Oslo"}, "a.b": 2});
        assert!(matches("address.city = 'Oslo'", &r));
        assert!(matches("`a.b` = 2", &r));
        assert!(!matches("a.b = 2", &r));
    }

    #[test]
    fn records_sort_by_keys_with_nulls_last_ascending() {
        let order = parse_order_by("n asc, s desc").expect("parses");
        let mut records = vec![
            json!({"n": null, "s": "a"}),
            json!({"n": 2, "s": "a"}),
            json!({"s": "z"}),
            json!({"n": 1, "s": "a"}),
            json!({"n": 1, "s": "b"}),
        ];
        records.sort_by(|a, b| compare_records(&order, a, b));
        assert_eq!(
            records,
            vec![
                json!({"n": 1, "s": "b"}),
                json!({"n": 1, "s": "a"}),
                json!({"n": 2, "s": "a"}),
                json!({"s": "z"}),
                json!({"n": null, "s": "a"}),
            ]
        );
        let desc = parse_order_by("d desc").expect("parses");
        let mut dates = [
            json!({"d": "2026-01-02"}),
            json!({}),
            json!({"d": "2026-01-01T23:00:00-05:00"}),
        ];
        dates.sort_by(|a, b| compare_records(&desc, a, b));
        assert_eq!(dates[0], json!({}), "nulls first when descending");
        assert_eq!(
            dates[1],
            json!({"d": "2026-01-01T23:00:00-05:00"}),
            "04:00Z on the 2nd"
        );
    }

    #[test]
    fn projection_keeps_named_fields_and_nested_paths() {
        let r = json!({"Id": 1, "Name": "x", "address": {"city": "Oslo", "zip": "0150"}, "a.b": 3, "n": null});
        let fields = crate::parse::parse_fields("Id,address.city,`a.b`,n,missing,address.none")
            .expect("parses");
        assert_eq!(
            project(&fields, &r),
            json!({"Id": 1, "address": {"city": "Oslo"}, "a.b": 3, "n": null})
        );
        assert_eq!(project(&fields, &json!([1])), json!([1]));
    }
}
