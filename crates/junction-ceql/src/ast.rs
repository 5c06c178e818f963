//! The syntax tree of a `where` expression and its canonical printing.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Byte offsets of a node in the source text, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
}

/// A field reference: one or more path segments. `address.city` is two segments and walks
/// into the nested object; `` `a.b` `` is one segment whose name holds a dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Field {
    pub segments: Vec<String>,
}

impl Field {
    pub fn new(segments: Vec<String>) -> Self {
        Self { segments }
    }

    /// A field of one segment, named exactly `name` (dots and all).
    pub fn single(name: impl Into<String>) -> Self {
        Self {
            segments: vec![name.into()],
        }
    }

    /// The segments joined with dots, as vendors spell relationship paths
    /// (`Account.Name`). Not reversible when a segment holds a dot; `to_string()` is.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }
}

/// Words the lexer reads as keywords; a field of that name must be backticked.
pub(crate) const KEYWORDS: &[&str] = &[
    "and", "or", "not", "like", "in", "is", "null", "true", "false",
];

pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Whether `segment` can be written without backticks.
pub(crate) fn is_bare_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    match chars.next() {
        Some(c) if is_ident_start(c) => {}
        _ => return false,
    }
    chars.all(is_ident_continue) && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(segment))
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            if is_bare_segment(segment) {
                f.write_str(segment)?;
            } else {
                write!(f, "`{}`", segment.replace('`', "``"))?;
            }
        }
        Ok(())
    }
}

/// Every operator CEQL has. Ordered so sets of them print in a stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Like,
    In,
    IsNull,
    IsNotNull,
    And,
    Or,
    Not,
}

impl Operator {
    pub const ALL: [Operator; 13] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Lt,
        Operator::Gt,
        Operator::Le,
        Operator::Ge,
        Operator::Like,
        Operator::In,
        Operator::IsNull,
        Operator::IsNotNull,
        Operator::And,
        Operator::Or,
        Operator::Not,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Gt => ">",
            Operator::Le => "<=",
            Operator::Ge => ">=",
            Operator::Like => "LIKE",
            Operator::In => "IN",
            Operator::IsNull => "IS NULL",
            Operator::IsNotNull => "IS NOT NULL",
            Operator::And => "AND",
            Operator::Or => "OR",
            Operator::Not => "NOT",
        }
    }

    /// Reads an operator as written in element data or a query: `as_str()` spellings,
    /// case-insensitive, with `<>` for `!=`.
    pub fn from_name(name: &str) -> Option<Operator> {
        let normalized = name.split_whitespace().collect::<Vec<_>>().join(" ");
        if normalized == "<>" {
            return Some(Operator::Ne);
        }
        Operator::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(&normalized))
    }

    /// The comparison operators a `Compare` node may carry.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Operator::Eq | Operator::Ne | Operator::Lt | Operator::Gt | Operator::Le | Operator::Ge
        )
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Operator::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown operator '{name}' (expected one of =, !=, <, >, <=, >=, LIKE, IN, IS NULL, IS NOT NULL, AND, OR, NOT)"
            ))
        })
    }
}

/// A literal value. Dates have no literal of their own: a quoted ISO-8601 date or
/// date-time stays a `String`, and `as_date` recognises it where typing matters.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
    Null,
}

/// A date or an instant read from a quoted literal or a record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
}

impl DateValue {
    /// Reads `YYYY-MM-DD` or an RFC 3339 date-time (`2026-01-01T00:00:00Z`,
    /// `2026-01-01T10:00:00.5+02:00`). A date-time without offset is not an instant and
    /// is not read as one.
    pub fn parse(text: &str) -> Option<DateValue> {
        let bytes = text.as_bytes();
        // Cheap shape check first: evaluation calls this for every string compared.
        if bytes.len() < 10
            || !bytes[..4].iter().all(u8::is_ascii_digit)
            || bytes[4] != b'-'
            || bytes[7] != b'-'
        {
            return None;
        }
        if bytes.len() == 10 {
            return NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(DateValue::Date);
        }
        if !matches!(bytes[10], b'T' | b't') {
            return None;
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(DateValue::DateTime)
    }
}

impl Literal {
    /// The date or date-time a string literal holds, if it is one.
    pub fn as_date(&self) -> Option<DateValue> {
        match self {
            Literal::String(s) => DateValue::parse(s),
            _ => None,
        }
    }

    /// The literal as a JSON value (a date stays a string).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Literal::String(s) => serde_json::Value::String(s.clone()),
            Literal::Number(n) => serde_json::Value::Number(n.clone()),
            Literal::Bool(b) => serde_json::Value::Bool(*b),
            Literal::Null => serde_json::Value::Null,
        }
    }
}

/// Reads a JSON-shaped number. Integers stay exact when they fit 64 bits; anything else
/// goes through Rust's correctly rounded `f64` parsing, so printing and re-reading a
/// number gives it back bit for bit. Non-finite results are not numbers.
pub(crate) fn parse_number(text: &str) -> Option<serde_json::Number> {
    let body = text.strip_prefix('-').unwrap_or(text);
    if !body.starts_with(|c: char| c.is_ascii_digit())
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(u.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

pub(crate) fn quote_ceql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => f.write_str(&quote_ceql_string(s)),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// A `where` expression. `And` and `Or` are n-ary (two or more operands): a chain
/// `a AND b AND c` is one node, so long chains do not make deep trees, and a
/// parenthesized group inside a chain stays its own node.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `field op value` with `op` one of `=`, `!=`, `<`, `>`, `<=`, `>=`.
    Compare {
        field: Field,
        op: Operator,
        value: Literal,
        span: Span,
    },
    /// `field LIKE 'pattern'`.
    Like {
        field: Field,
        pattern: String,
        span: Span,
    },
    /// `field IN (v, …)`, at least one value.
    In {
        field: Field,
        values: Vec<Literal>,
        span: Span,
    },
    /// `field IS NULL`, or `field IS NOT NULL` when `negated`.
    IsNull {
        field: Field,
        negated: bool,
        span: Span,
    },
    And {
        operands: Vec<Expr>,
        span: Span,
    },
    Or {
        operands: Vec<Expr>,
        span: Span,
    },
    Not {
        operand: Box<Expr>,
        span: Span,
    },
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Compare { span, .. }
            | Expr::Like { span, .. }
            | Expr::In { span, .. }
            | Expr::IsNull { span, .. }
            | Expr::And { span, .. }
            | Expr::Or { span, .. }
            | Expr::Not { span, .. } => *span,
        }
    }

    /// The operator at the root of this node.
    pub fn operator(&self) -> Operator {
        match self {
            Expr::Compare { op, .. } => *op,
            Expr::Like { .. } => Operator::Like,
            Expr::In { .. } => Operator::In,
            Expr::IsNull { negated: false, .. } => Operator::IsNull,
            Expr::IsNull { negated: true, .. } => Operator::IsNotNull,
            Expr::And { .. } => Operator::And,
            Expr::Or { .. } => Operator::Or,
            Expr::Not { .. } => Operator::Not,
        }
    }

    /// The field a predicate tests; `None` for `AND`, `OR` and `NOT`.
    pub fn field(&self) -> Option<&Field> {
        match self {
            Expr::Compare { field, .. }
            | Expr::Like { field, .. }
            | Expr::In { field, .. }
            | Expr::IsNull { field, .. } => Some(field),
            _ => None,
        }
    }

    fn children(&self) -> &[Expr] {
        match self {
            Expr::And { operands, .. } | Expr::Or { operands, .. } => operands,
            Expr::Not { operand, .. } => std::slice::from_ref(&**operand),
            _ => &[],
        }
    }

    fn walk(&self, visit: &mut impl FnMut(&Expr)) {
        visit(self);
        for child in self.children() {
            child.walk(visit);
        }
    }

    /// Every operator used anywhere in the expression.
    pub fn operators(&self) -> BTreeSet<Operator> {
        let mut out = BTreeSet::new();
        self.walk(&mut |e| {
            out.insert(e.operator());
        });
        out
    }

    /// Every field tested, in canonical CEQL notation (`Name`, `address.city`, `` `a.b` ``).
    pub fn fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.walk(&mut |e| {
            if let Some(field) = e.field() {
                out.insert(field.to_string());
            }
        });
        out
    }

    /// Equality of meaning: the same tree, whatever the spans.
    pub fn eq_ignoring_spans(&self, other: &Expr) -> bool {
        self.without_spans() == other.without_spans()
    }

    /// A copy with every span zeroed, for comparing trees.
    pub fn without_spans(&self) -> Expr {
        let span = Span::default();
        match self {
            Expr::Compare {
                field, op, value, ..
            } => Expr::Compare {
                field: field.clone(),
                op: *op,
                value: value.clone(),
                span,
            },
            Expr::Like { field, pattern, .. } => Expr::Like {
                field: field.clone(),
                pattern: pattern.clone(),
                span,
            },
            Expr::In { field, values, .. } => Expr::In {
                field: field.clone(),
                values: values.clone(),
                span,
            },
            Expr::IsNull { field, negated, .. } => Expr::IsNull {
                field: field.clone(),
                negated: *negated,
                span,
            },
            Expr::And { operands, .. } => Expr::And {
                operands: operands.iter().map(Expr::without_spans).collect(),
                span,
            },
            Expr::Or { operands, .. } => Expr::Or {
                operands: operands.iter().map(Expr::without_spans).collect(),
                span,
            },
            Expr::Not { operand, .. } => Expr::Not {
                operand: Box::new(operand.without_spans()),
                span,
            },
        }
    }
}

/// Canonical CEQL: keywords upper-case, one space around operators, strings re-escaped,
/// and parentheses exactly where the tree needs them (an `AND`/`OR` operand of `AND`,
/// `OR` or `NOT`), so that `parse(&e.to_string())` gives `e` back, spans aside.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn operand(f: &mut fmt::Formatter<'_>, e: &Expr) -> fmt::Result {
            match e {
                Expr::And { .. } | Expr::Or { .. } => write!(f, "({e})"),
                _ => write!(f, "{e}"),
            }
        }
        match self {
            Expr::Compare {
                field, op, value, ..
            } => write!(f, "{field} {op} {value}"),
            Expr::Like { field, pattern, .. } => {
                write!(f, "{field} LIKE {}", quote_ceql_string(pattern))
            }
            Expr::In { field, values, .. } => {
                write!(f, "{field} IN (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Expr::IsNull { field, negated, .. } => {
                let not = if *negated { " NOT" } else { "" };
                write!(f, "{field} IS{not} NULL")
            }
            Expr::And { operands, .. } | Expr::Or { operands, .. } => {
                let joiner = if matches!(self, Expr::And { .. }) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, e) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    operand(f, e)?;
                }
                Ok(())
            }
            Expr::Not { operand: e, .. } => {
                f.write_str("NOT ")?;
                operand(f, e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_iso_dates_and_offset_date_times_read_as_dates() {
        let date = |s: &str| Literal::String(s.into()).as_date();
        assert!(matches!(date("2026-01-31"), Some(DateValue::Date(_))));
        assert!(matches!(
            date("2026-01-01T00:00:00Z"),
            Some(DateValue::DateTime(_))
        ));
        assert!(matches!(
            date("2026-01-01T10:00:00.123-08:00"),
            Some(DateValue::DateTime(_))
        ));
        for not_a_date in [
            "2026-13-01",
            "2026-02-30",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "26-01-01",
            "yesterday",
        ] {
            assert_eq!(date(not_a_date), None, "{not_a_date}");
        }
        assert_eq!(Literal::Number(20260101.into()).as_date(), None);
    }

    #[test]
    fn operators_read_their_own_spellings_in_any_case() {
        for op in Operator::ALL {
            assert_eq!(Operator::from_name(op.as_str()), Some(op));
            assert_eq!(Operator::from_name(&op.as_str().to_lowercase()), Some(op));
        }
        assert_eq!(Operator::from_name("<>"), Some(Operator::Ne));
        assert_eq!(
            Operator::from_name("is  not\tnull"),
            Some(Operator::IsNotNull)
        );
        assert_eq!(Operator::from_name("~"), None);
    }

    #[test]
    fn fields_print_bare_only_when_they_read_back_as_names() {
        let printed = |segments: &[&str]| {
            Field::new(segments.iter().map(|s| s.to_string()).collect()).to_string()
        };
        assert_eq!(printed(&["Account", "Name"]), "Account.Name");
        assert_eq!(printed(&["a.b"]), "`a.b`");
        assert_eq!(printed(&["Story Points"]), "`Story Points`");
        assert_eq!(printed(&["and"]), "`and`");
        assert_eq!(printed(&["1st"]), "`1st`");
        assert_eq!(printed(&["a`b"]), "`a``b`");
        assert_eq!(printed(&["Créé__c"]), "Créé__c");
    }
}
