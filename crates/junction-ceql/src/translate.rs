//! Translation of a `where` expression into what a vendor understands: SOQL, JQL, or the
//! vendor's own filter parameters. Whatever a target cannot say faithfully is refused
//! with `Unsupported` naming the operator or construct, never approximated.

use serde::{Deserialize, Serialize};

use crate::ast::{DateValue, Expr, Field, Literal, Operator};

/// An operator or construct the target cannot express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operator} cannot be translated: {reason}")]
pub struct Unsupported {
    /// The operator (`LIKE`, `OR`, …) or construct (`field name`, `true`, …) refused.
    pub operator: String,
    pub reason: String,
}

impl Unsupported {
    fn new(operator: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            operator: operator.into(),
            reason: reason.into(),
        }
    }
}

fn is_plain_name(segment: &str) -> bool {
    let mut chars = segment.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An f64 never prints with an exponent through `Display`; neither SOQL nor JQL reads one.
fn plain_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string())
    }
}

fn null_comparison(op: Operator) -> Unsupported {
    Unsupported::new(
        op.as_str(),
        "a comparison with null is never true; use IS NULL or IS NOT NULL",
    )
}

/// Infix writer shared by both targets: parentheses around an `AND`/`OR` operand of
/// `AND`/`OR`/`NOT`, since Salesforce requires them whenever operators are mixed.
fn logic(
    expr: &Expr,
    out: &mut String,
    leaf: &impl Fn(&Expr, &mut String) -> Result<(), Unsupported>,
) -> Result<(), Unsupported> {
    let operand = |e: &Expr, out: &mut String| -> Result<(), Unsupported> {
        if matches!(e, Expr::And { .. } | Expr::Or { .. }) {
            out.push('(');
            logic(e, out, leaf)?;
            out.push(')');
            Ok(())
        } else {
            logic(e, out, leaf)
        }
    };
    match expr {
        Expr::And { operands, .. } | Expr::Or { operands, .. } => {
            let joiner = if matches!(expr, Expr::And { .. }) {
                " AND "
            } else {
                " OR "
            };
            for (i, e) in operands.iter().enumerate() {
                if i > 0 {
                    out.push_str(joiner);
                }
                operand(e, out)?;
            }
            Ok(())
        }
        Expr::Not { operand: e, .. } => {
            out.push_str("NOT (");
            logic(e, out, leaf)?;
            out.push(')');
            Ok(())
        }
        _ => leaf(expr, out),
    }
}

/// SOQL `WHERE` text (without the keyword).
///
/// Strings are quoted with Salesforce's backslash escapes; numbers, booleans and
/// ISO-8601 dates and date-times are unquoted literals (`2026-01-01`,
/// `2026-01-01T00:00:00Z`); `IS NULL` is `= null` and `IS NOT NULL` is `!= null`.
/// Salesforce's own null handling applies: its `!=` and `NOT` also match empty fields.
pub fn soql(expr: &Expr) -> Result<String, Unsupported> {
    let mut out = String::new();
    logic(expr, &mut out, &soql_leaf)?;
    Ok(out)
}

fn soql_field(field: &Field) -> Result<String, Unsupported> {
    if field.segments.iter().all(|s| is_plain_name(s)) {
        Ok(field.dotted())
    } else {
        Err(Unsupported::new(
            "field name",
            format!("{field} is not a Salesforce field name (letters, digits and _ only)"),
        ))
    }
}

fn soql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn soql_literal(op: Operator, value: &Literal) -> Result<String, Unsupported> {
    Ok(match value {
        Literal::String(s) => match DateValue::parse(s) {
            Some(DateValue::Date(d)) => d.format("%Y-%m-%d").to_string(),
            Some(DateValue::DateTime(dt)) => {
                let fraction = if dt.timestamp_subsec_nanos() == 0 {
                    ""
                } else {
                    "%.3f"
                };
                let zone = if dt.offset().local_minus_utc() == 0 {
                    "Z"
                } else {
                    "%:z"
                };
                dt.format(&format!("%Y-%m-%dT%H:%M:%S{fraction}{zone}"))
                    .to_string()
            }
            None => soql_string(s),
        },
        Literal::Number(n) => plain_number(n),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => return Err(null_comparison(op)),
    })
}

fn soql_leaf(expr: &Expr, out: &mut String) -> Result<(), Unsupported> {
    match expr {
        Expr::Compare {
            field, op, value, ..
        } => {
            let text = format!(
                "{} {} {}",
                soql_field(field)?,
                op.as_str(),
                soql_literal(*op, value)?
            );
            out.push_str(&text);
        }
        Expr::Like { field, pattern, .. } => {
            let text = format!("{} LIKE {}", soql_field(field)?, soql_string(pattern));
            out.push_str(&text);
        }
        Expr::In { field, values, .. } => {
            let values = values
                .iter()
                .map(|v| soql_literal(Operator::In, v))
                .collect::<Result<Vec<_>, _>>()?;
            let text = format!("{} IN ({})", soql_field(field)?, values.join(", "));
            out.push_str(&text);
        }
        Expr::IsNull { field, negated, .. } => {
            let op = if *negated { "!=" } else { "=" };
            let text = format!("{} {op} null", soql_field(field)?);
            out.push_str(&text);
        }
        _ => logic(expr, out, &soql_leaf)?,
    }
    Ok(())
}

/// JQL text.
///
/// Strings are double-quoted with backslash escapes, numbers bare, dates as
/// `"YYYY-MM-DD"`. `LIKE '%text%'` becomes `~ "text"` (JQL's contains); other patterns,
/// date-times (JQL reads times in the user's time zone), booleans and nested paths have
/// no faithful JQL and are refused. `IS NULL` is `IS EMPTY`.
pub fn jql(expr: &Expr) -> Result<String, Unsupported> {
    let mut out = String::new();
    logic(expr, &mut out, &jql_leaf)?;
    Ok(out)
}

fn jql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn jql_field(field: &Field) -> Result<String, Unsupported> {
    match field.segments.as_slice() {
        [name] if is_plain_name(name) => Ok(name.clone()),
        [name] => Ok(jql_string(name)),
        _ => Err(Unsupported::new(
            "field name",
            format!("JQL has no nested fields like {field}"),
        )),
    }
}

fn jql_literal(op: Operator, value: &Literal) -> Result<String, Unsupported> {
    match value {
        Literal::String(s) => match DateValue::parse(s) {
            Some(DateValue::Date(d)) => Ok(format!("\"{}\"", d.format("%Y-%m-%d"))),
            Some(DateValue::DateTime(_)) => Err(Unsupported::new(
                "date-time",
                format!(
                    "JQL reads times in the Jira user's time zone, so '{s}' cannot be sent faithfully; compare with a date"
                ),
            )),
            None => Ok(jql_string(s)),
        },
        Literal::Number(n) => Ok(plain_number(n)),
        Literal::Bool(b) => Err(Unsupported::new(b.to_string(), "JQL has no boolean values")),
        Literal::Null => Err(null_comparison(op)),
    }
}

fn jql_leaf(expr: &Expr, out: &mut String) -> Result<(), Unsupported> {
    match expr {
        Expr::Compare {
            field, op, value, ..
        } => {
            let text = format!(
                "{} {} {}",
                jql_field(field)?,
                op.as_str(),
                jql_literal(*op, value)?
            );
            out.push_str(&text);
        }
        Expr::Like { field, pattern, .. } => {
            let text = pattern
                .strip_prefix('%')
                .and_then(|p| p.strip_suffix('%'))
                .filter(|t| !t.is_empty() && !t.contains(['%', '_']))
                .ok_or_else(|| {
                    Unsupported::new(
                        "LIKE",
                        format!(
                            "JQL's ~ only finds contained text, so only patterns like '%text%' translate, not '{pattern}'"
                        ),
                    )
                })?;
            let text = format!("{} ~ {}", jql_field(field)?, jql_string(text));
            out.push_str(&text);
        }
        Expr::In { field, values, .. } => {
            let values = values
                .iter()
                .map(|v| jql_literal(Operator::In, v))
                .collect::<Result<Vec<_>, _>>()?;
            let text = format!("{} IN ({})", jql_field(field)?, values.join(", "));
            out.push_str(&text);
        }
        Expr::IsNull { field, negated, .. } => {
            let not = if *negated { " NOT" } else { "" };
            let text = format!("{} IS{not} EMPTY", jql_field(field)?);
            out.push_str(&text);
        }
        _ => logic(expr, out, &jql_leaf)?,
    }
    Ok(())
}

/// One filter parameter a vendor offers, declared in element data: the field (CEQL
/// notation), the operators it serves there, and the query parameter that carries the
/// value. `{"field": "email", "operators": ["="], "parameter": "email"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterRule {
    pub field: String,
    pub operators: Vec<Operator>,
    pub parameter: String,
}

fn parameter_value(op: Operator, value: &Literal) -> Result<String, Unsupported> {
    Ok(match value {
        Literal::String(s) => s.clone(),
        Literal::Number(n) => plain_number(n),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => return Err(null_comparison(op)),
    })
}

fn conjuncts<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::And { operands, .. } => operands.iter().for_each(|e| conjuncts(e, out)),
        other => out.push(other),
    }
}

/// Query parameters for a vendor that filters by parameters: the expression must be a
/// conjunction (`AND` only) of predicates each declared by a rule. Values go out raw
/// (strings unquoted, `IN` lists comma-joined, `IS [NOT] NULL` as `true`). A parameter
/// needed twice is refused, since vendors do not agree on what a repeated one means.
pub fn parameters(expr: &Expr, rules: &[FilterRule]) -> Result<Vec<(String, String)>, Unsupported> {
    let mut leaves = Vec::new();
    conjuncts(expr, &mut leaves);
    let mut out: Vec<(String, String)> = Vec::new();
    for leaf in leaves {
        let op = leaf.operator();
        let Some(field) = leaf.field() else {
            return Err(Unsupported::new(
                op.as_str(),
                "this vendor's filters can only be combined with AND",
            ));
        };
        let name = field.to_string();
        let rule = rules
            .iter()
            .find(|r| r.field == name && r.operators.contains(&op))
            .ok_or_else(|| {
                let served: Vec<&str> = rules
                    .iter()
                    .filter(|r| r.field == name)
                    .flat_map(|r| r.operators.iter().map(|o| o.as_str()))
                    .collect();
                let reason = if served.is_empty() {
                    format!("{name} cannot be filtered on")
                } else {
                    format!("{name} can only be filtered with {}", served.join(", "))
                };
                Unsupported::new(op.as_str(), reason)
            })?;
        let value = match leaf {
            Expr::Compare { value, .. } => parameter_value(op, value)?,
            Expr::Like { pattern, .. } => pattern.clone(),
            Expr::In { values, .. } => values
                .iter()
                .map(|v| parameter_value(op, v))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => "true".to_string(),
        };
        if out.iter().any(|(p, _)| *p == rule.parameter) {
            return Err(Unsupported::new(
                op.as_str(),
                format!(
                    "the filter parameter '{}' would be needed twice",
                    rule.parameter
                ),
            ));
        }
        out.push((rule.parameter.clone(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn soql_of(q: &str) -> Result<String, Unsupported> {
        soql(&parse(q).expect("parses"))
    }

    fn jql_of(q: &str) -> Result<String, Unsupported> {
        jql(&parse(q).expect("parses"))
    }

    #[test]
    fn soql_leaves_dates_numbers_and_booleans_unquoted_and_escapes_strings() {
        assert_eq!(
            soql_of("LastModifiedDate > '2026-01-01T00:00:00Z' AND CloseDate <= '2026-02-03' AND Amount >= 1.5e3 AND IsWon = true")
                .expect("translates"),
            "LastModifiedDate > 2026-01-01T00:00:00Z AND CloseDate <= 2026-02-03 AND Amount >= 1500 AND IsWon = true"
        );
        assert_eq!(
            soql_of(r"Name = 'Churro''s \ Test' OR Account.Name <> 'x'").expect("translates"),
            r"Name = 'Churro\'s \\ Test' OR Account.Name != 'x'"
        );
        assert_eq!(
            soql_of("d = '2026-01-01T10:00:00.25+02:00'").expect("translates"),
            "d = 2026-01-01T10:00:00.250+02:00"
        );
    }

    #[test]
    fn soql_writes_like_in_null_tests_and_parenthesized_logic() {
        assert_eq!(
            soql_of(
                "Name LIKE 'Ac%' AND (Type IN ('a', 'b') OR Id IS NULL) AND NOT Phone IS NOT NULL"
            )
            .expect("translates"),
            "Name LIKE 'Ac%' AND (Type IN ('a', 'b') OR Id = null) AND NOT (Phone != null)"
        );
        assert_eq!(
            soql_of("NOT (a = 1 OR b = 2)").expect("translates"),
            "NOT (a = 1 OR b = 2)"
        );
    }

    #[test]
    fn soql_refuses_null_comparisons_and_odd_field_names() {
        let e = soql_of("a = null").expect_err("refused");
        assert_eq!(e.operator, "=");
        assert!(e.reason.contains("IS NULL"), "{e}");
        let e = soql_of("`a b` = 1").expect_err("refused");
        assert_eq!(e.operator, "field name");
        assert!(soql_of("a IN (1, null)").is_err());
    }

    #[test]
    fn jql_translates_comparisons_contains_in_and_empty() {
        assert_eq!(
            jql_of(r#"project = 'JR' AND summary LIKE '%disk "full"%' AND priority IN ('High', 'Low') AND resolution IS NULL AND votes > 2 AND created >= '2026-01-01' AND NOT `Story Points` IS NOT NULL"#)
                .expect("translates"),
            r#"project = "JR" AND summary ~ "disk \"full\"" AND priority IN ("High", "Low") AND resolution IS EMPTY AND votes > 2 AND created >= "2026-01-01" AND NOT ("Story Points" IS NOT EMPTY)"#
        );
        assert_eq!(
            jql_of("a = 1 OR (b = 2 AND c != 3)").expect("translates"),
            "a = 1 OR (b = 2 AND c != 3)"
        );
    }

    #[test]
    fn jql_refuses_what_it_cannot_say_faithfully() {
        for (q, operator) in [
            ("summary LIKE 'disk%'", "LIKE"),
            ("summary LIKE '%a_b%'", "LIKE"),
            ("summary LIKE '%%'", "LIKE"),
            ("created > '2026-01-01T00:00:00Z'", "date-time"),
            ("flagged = true", "true"),
            ("a != null", "!="),
            ("fields.summary = 'x'", "field name"),
        ] {
            let e = jql_of(q).expect_err(q);
            assert_eq!(e.operator, operator, "{q}: {e}");
        }
    }

    fn rules() -> Vec<FilterRule> {
        serde_json::from_value(serde_json::json!([
            {"field": "email", "operators": ["="], "parameter": "email"},
            {"field": "status", "operators": ["=", "in"], "parameter": "status"},
            {"field": "updated", "operators": [">", ">="], "parameter": "updated_after"},
            {"field": "phone", "operators": ["IS NOT NULL"], "parameter": "has_phone"},
        ]))
        .expect("rules deserialize")
    }

    #[test]
    fn parameters_serve_conjunctions_of_declared_filters() {
        let e = parse("email = 'a@b.c' AND (status IN ('open', 'won') AND updated > '2026-01-01') AND phone IS NOT NULL")
            .expect("parses");
        assert_eq!(
            parameters(&e, &rules()).expect("translates"),
            vec![
                ("email".to_string(), "a@b.c".to_string()),
                ("status".to_string(), "open,won".to_string()),
                ("updated_after".to_string(), "2026-01-01".to_string()),
                ("has_phone".to_string(), "true".to_string()),
            ]
        );
    }

    #[test]
    fn parameters_refuse_undeclared_operators_or_and_repeats() {
        let cases = [
            (
                "email LIKE '%a%'",
                "LIKE",
                "email can only be filtered with =",
            ),
            ("name = 'x'", "=", "name cannot be filtered on"),
            (
                "email = 'a' OR status = 'b'",
                "OR",
                "only be combined with AND",
            ),
            ("NOT email = 'a'", "NOT", "only be combined with AND"),
            ("status = 'a' AND status = 'b'", "=", "needed twice"),
            ("email = null", "=", "IS NULL"),
        ];
        for (q, operator, reason) in cases {
            let e = parameters(&parse(q).expect("parses"), &rules()).expect_err(q);
            assert_eq!(e.operator, operator, "{q}");
            assert!(e.reason.contains(reason), "{q}: {e}");
        }
    }

    #[test]
    fn filter_rules_read_operators_by_their_spelling() {
        let rule: FilterRule = serde_json::from_str(
            r#"{"field":"a","operators":["<>","is null","LIKE"],"parameter":"p"}"#,
        )
        .expect("deserializes");
        assert_eq!(
            rule.operators,
            vec![Operator::Ne, Operator::IsNull, Operator::Like]
        );
        assert_eq!(
            serde_json::to_string(&rule).expect("serializes"),
            r#"{"field":"a","operators":["!=","IS NULL","LIKE"],"parameter":"p"}"#
        );
        assert!(
            serde_json::from_str::<FilterRule>(
                r#"{"field":"a","operators":["~"],"parameter":"p"}"#
            )
            .is_err()
        );
    }
}
