//! Property tests: printing round-trips, evaluation and ordering agree with SQLite, and
//! the parsers never panic. `PROPTEST_CASES=100000 cargo test -p junction-ceql --test
//! properties` runs every property at scale; the defaults keep `cargo test` quick.

use std::cell::RefCell;
use std::cmp::Ordering;

use junction_ceql::{
    Direction, Expr, Field, Literal, Operator, OrderBy, Span, compare_records, evaluate, parse,
    parse_fields, parse_order_by, translate,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Number, Value, json};
use sqlx::{Connection, Row, SqliteConnection};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    })
}

fn span() -> Span {
    Span::default()
}

// ---------------------------------------------------------------------------------------
// parse(print(e)) == e

fn any_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,6}",
        Just("and".to_string()),
        Just("Not".to_string()),
        Just("null".to_string()),
        "\\PC{1,6}",
        "[ .`'a-c0-9]{1,5}",
    ]
}

fn any_field() -> impl Strategy<Value = Field> {
    prop::collection::vec(any_segment(), 1..4).prop_map(Field::new)
}

fn any_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        "\\PC{0,8}".prop_map(Literal::String),
        "['`%_ a\\\\\n]{0,6}".prop_map(Literal::String),
        any::<i64>().prop_map(|n| Literal::Number(n.into())),
        any::<u64>().prop_map(|n| Literal::Number(n.into())),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Literal::Number),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
    ]
}

fn any_comparison() -> impl Strategy<Value = Operator> {
    prop::sample::select(vec![
        Operator::Eq,
        Operator::Ne,
        Operator::Lt,
        Operator::Gt,
        Operator::Le,
        Operator::Ge,
    ])
}

fn any_predicate() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (any_field(), any_comparison(), any_literal()).prop_map(|(field, op, value)| {
            Expr::Compare {
                field,
                op,
                value,
                span: span(),
            }
        }),
        (any_field(), "\\PC{0,6}").prop_map(|(field, pattern)| Expr::Like {
            field,
            pattern,
            span: span()
        }),
        (any_field(), prop::collection::vec(any_literal(), 1..4)).prop_map(|(field, values)| {
            Expr::In {
                field,
                values,
                span: span(),
            }
        }),
        (any_field(), any::<bool>()).prop_map(|(field, negated)| Expr::IsNull {
            field,
            negated,
            span: span()
        }),
    ]
}

fn tree(leaf: impl Strategy<Value = Expr> + 'static) -> impl Strategy<Value = Expr> {
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|operands| Expr::And {
                operands,
                span: span()
            }),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|operands| Expr::Or {
                operands,
                span: span()
            }),
            inner.prop_map(|e| Expr::Not {
                operand: Box::new(e),
                span: span()
            }),
        ]
    })
}

#[test]
fn printing_then_parsing_gives_back_the_same_expression() {
    let result = runner(512).run(&tree(any_predicate()), |expr| {
        let printed = expr.to_string();
        let reparsed = parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{printed:?} does not parse: {e}")))?;
        prop_assert!(
            reparsed.eq_ignoring_spans(&expr),
            "{printed:?} reparsed as {reparsed:?}"
        );
        prop_assert_eq!(reparsed.to_string(), printed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// evaluate and compare_records agree with SQLite.
//
// The reference is SQLite because it is an independent, widely used implementation of
// exactly the semantics CEQL documents: SQL three-valued logic, NULL comparisons that are
// unknown, IN with NULLs, LIKE with % and _ that ignores ASCII case, and BINARY text
// ordering. The generators keep to where both are meant to coincide: each field has one
// type, literals match it, strings are ASCII without digits (so none reads as a number or
// date), and dates share one format so that text order is time order.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Real,
    Text,
    Date,
    DateTime,
    Bool,
}

/// The schema: name as CEQL writes it, path segments, column, type.
const COLUMNS: &[(&str, &[&str], Kind)] = &[
    ("n", &["n"], Kind::Int),
    ("x", &["x"], Kind::Real),
    ("s", &["s"], Kind::Text),
    ("d", &["d"], Kind::Date),
    ("t", &["t"], Kind::DateTime),
    ("b", &["b"], Kind::Bool),
    ("addr.city", &["addr", "city"], Kind::Text),
];

fn value_of(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Int => (-4i64..5).prop_map(Value::from).boxed(),
        Kind::Real => prop::sample::select(vec![-1.5, 0.0, 0.25, 2.0, 3.75])
            .prop_map(Value::from)
            .boxed(),
        Kind::Text => "[abAB%_ ]{0,3}".prop_map(Value::from).boxed(),
        Kind::Date => (1u32..6)
            .prop_map(|d| Value::from(format!("2026-01-0{d}")))
            .boxed(),
        Kind::DateTime => (0u32..4, 0u32..3)
            .prop_map(|(h, m)| Value::from(format!("2026-01-01T0{h}:{m}0:00Z")))
            .boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::from).boxed(),
    }
}

fn literal_of(kind: Kind) -> BoxedStrategy<Literal> {
    let typed = match kind {
        // Numbers of the other numeric kind too: SQLite and CEQL both compare them by value.
        Kind::Int | Kind::Real => prop_oneof![
            (-4i64..5).prop_map(|n| Literal::Number(n.into())),
            prop::sample::select(vec![-1.5, 0.25, 2.0, 3.75])
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(Literal::Number),
        ]
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(Literal::Bool).boxed(),
        _ => value_of(kind)
            .prop_map(|v| Literal::String(v.as_str().unwrap_or_default().to_string()))
            .boxed(),
    };
    prop_oneof![9 => typed, 1 => Just(Literal::Null)].boxed()
}

fn typed_predicate() -> impl Strategy<Value = Expr> {
    (0..COLUMNS.len()).prop_flat_map(|i| {
        let (_, segments, kind) = COLUMNS[i];
        let field = Field::new(segments.iter().map(|s| s.to_string()).collect());
        let mut options: Vec<BoxedStrategy<Expr>> = vec![
            (Just(field.clone()), any_comparison(), literal_of(kind))
                .prop_map(|(field, op, value)| Expr::Compare {
                    field,
                    op,
                    value,
                    span: span(),
                })
                .boxed(),
            (
                Just(field.clone()),
                prop::collection::vec(literal_of(kind), 1..4),
            )
                .prop_map(|(field, values)| Expr::In {
                    field,
                    values,
                    span: span(),
                })
                .boxed(),
            (Just(field.clone()), any::<bool>())
                .prop_map(|(field, negated)| Expr::IsNull {
                    field,
                    negated,
                    span: span(),
                })
                .boxed(),
        ];
        if kind == Kind::Text {
            options.push(
                (Just(field), "[abAB%_]{0,4}")
                    .prop_map(|(field, pattern)| Expr::Like {
                        field,
                        pattern,
                        span: span(),
                    })
                    .boxed(),
            );
        }
        prop::strategy::Union::new(options)
    })
}

/// One record: each column present with a value, present as null, or missing.
fn record(id: i64) -> impl Strategy<Value = Value> {
    let columns: Vec<_> = COLUMNS
        .iter()
        .map(|&(_, _, kind)| {
            prop_oneof![
                6 => value_of(kind).prop_map(Some),
                1 => Just(Some(Value::Null)),
                1 => Just(None),
            ]
        })
        .collect();
    columns.prop_map(move |values| {
        let mut record = json!({ "id": id });
        for ((_, segments, _), value) in COLUMNS.iter().zip(values) {
            let Some(value) = value else { continue };
            let mut at = &mut record;
            for segment in &segments[..segments.len() - 1] {
                at = at
                    .as_object_mut()
                    .map(|o| o.entry(*segment).or_insert_with(|| json!({})))
                    .expect("records are objects");
            }
            at[segments[segments.len() - 1]] = value;
        }
        record
    })
}

fn records() -> impl Strategy<Value = Vec<Value>> {
    (0usize..10).prop_flat_map(|n| (0..n as i64).map(record).collect::<Vec<_>>())
}

fn sql_literal(literal: &Literal) -> String {
    match literal {
        Literal::String(s) => format!("'{}'", s.replace('\'', "''")),
        Literal::Number(n) => n.to_string(),
        Literal::Bool(b) => i32::from(*b).to_string(),
        Literal::Null => "NULL".into(),
    }
}

fn sql_column(field: &Field) -> String {
    format!("\"{}\"", field.dotted())
}

fn sql(expr: &Expr) -> String {
    let join = |operands: &[Expr], op: &str| {
        operands
            .iter()
            .map(|e| format!("({})", sql(e)))
            .collect::<Vec<_>>()
            .join(op)
    };
    match expr {
        Expr::Compare {
            field, op, value, ..
        } => format!(
            "{} {} {}",
            sql_column(field),
            op.as_str(),
            sql_literal(value)
        ),
        Expr::Like { field, pattern, .. } => {
            format!(
                "{} LIKE {}",
                sql_column(field),
                sql_literal(&Literal::String(pattern.clone()))
            )
        }
        Expr::In { field, values, .. } => format!(
            "{} IN ({})",
            sql_column(field),
            values
                .iter()
                .map(sql_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expr::IsNull { field, negated, .. } => format!(
            "{} IS {}NULL",
            sql_column(field),
            if *negated { "NOT " } else { "" }
        ),
        Expr::And { operands, .. } => join(operands, " AND "),
        Expr::Or { operands, .. } => join(operands, " OR "),
        Expr::Not { operand, .. } => format!("NOT ({})", sql(operand)),
    }
}

struct Reference {
    rt: tokio::runtime::Runtime,
    conn: RefCell<SqliteConnection>,
}

impl Reference {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let conn = rt.block_on(async {
            let mut conn = SqliteConnection::connect("sqlite::memory:")
                .await
                .expect("in-memory SQLite");
            sqlx::query(
                r#"create table t (id integer primary key, n integer, x real, s text, d text, t text, b integer, "addr.city" text)"#,
            )
            .execute(&mut conn)
            .await
            .expect("create table");
            conn
        });
        Self {
            rt,
            conn: RefCell::new(conn),
        }
    }

    /// Loads `records` and returns the ids `query` (SQL after `from t`) selects, in order.
    fn ids(&self, records: &[Value], query: &str) -> Result<Vec<i64>, sqlx::Error> {
        let mut conn = self.conn.borrow_mut();
        self.rt.block_on(async {
            sqlx::query("delete from t").execute(&mut *conn).await?;
            for r in records {
                let text = |path: &[&str]| {
                    path.iter()
                        .try_fold(r, |v, s| v.get(*s))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                sqlx::query(r#"insert into t (id, n, x, s, d, t, b, "addr.city") values ($1, $2, $3, $4, $5, $6, $7, $8)"#)
                    .bind(r["id"].as_i64())
                    .bind(r.get("n").and_then(Value::as_i64))
                    .bind(r.get("x").and_then(Value::as_f64))
                    .bind(text(&["s"]))
                    .bind(text(&["d"]))
                    .bind(text(&["t"]))
                    .bind(r.get("b").and_then(Value::as_bool))
                    .bind(text(&["addr", "city"]))
                    .execute(&mut *conn)
                    .await?;
            }
            // The text is built from generated literals, quoted by `sql_literal`.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select id from t {query}")))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(|row| row.try_get::<i64, _>(0)).collect()
        })
    }
}

#[test]
fn evaluation_agrees_with_sqlite_on_random_queries_and_records() {
    let reference = Reference::new();
    let strategy = (tree(typed_predicate()), records());
    let result = runner(256).run(&strategy, |(expr, records)| {
        let query = format!("where {} order by id", sql(&expr));
        let want = reference
            .ids(&records, &query)
            .map_err(|e| TestCaseError::fail(format!("{query}: {e}")))?;
        let got: Vec<i64> = records
            .iter()
            .filter(|r| evaluate(&expr, r))
            .filter_map(|r| r["id"].as_i64())
            .collect();
        prop_assert_eq!(got, want, "{} over {:?}", expr, records);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn any_order() -> impl Strategy<Value = OrderBy> {
    prop::collection::vec(
        (
            0..COLUMNS.len(),
            prop::sample::select(vec![Direction::Asc, Direction::Desc]),
        ),
        1..4,
    )
    .prop_map(|keys| {
        OrderBy(
            keys.into_iter()
                .map(|(i, d)| (COLUMNS[i].0.to_string(), d))
                .collect(),
        )
    })
}

#[test]
fn ordering_agrees_with_sqlite_nulls_last_ascending() {
    let reference = Reference::new();
    let result = runner(256).run(&(any_order(), records()), |(order, mut records)| {
        let keys: Vec<String> = order
            .0
            .iter()
            .map(|(name, direction)| match direction {
                Direction::Asc => format!("\"{name}\" asc nulls last"),
                Direction::Desc => format!("\"{name}\" desc nulls first"),
            })
            .collect();
        let query = format!("order by {}, id", keys.join(", "));
        let want = reference
            .ids(&records, &query)
            .map_err(|e| TestCaseError::fail(format!("{query}: {e}")))?;
        let mut tie_broken = order.clone();
        tie_broken.0.push(("id".into(), Direction::Asc));
        records.sort_by(|a, b| compare_records(&tie_broken, a, b));
        let got: Vec<i64> = records.iter().filter_map(|r| r["id"].as_i64()).collect();
        prop_assert_eq!(got, want, "{:?}", order);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn sorting_mixed_kinds_is_a_total_order() {
    // `sort_by` may panic on an inconsistent order; values of every kind must not cause one.
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "(2026-0[1-2]-0[1-3](T0[0-2]:00:00(Z|\\+01:00))?)|[0-9a-z]{0,3}".prop_map(Value::from),
        Just(json!([1])),
        Just(json!({"a": 1})),
    ];
    let strategy = prop::collection::vec(value, 0..40);
    let order = parse_order_by("v desc").expect("parses");
    let result = runner(256).run(&strategy, |values| {
        let mut records: Vec<Value> = values.into_iter().map(|v| json!({ "v": v })).collect();
        records.sort_by(|a, b| compare_records(&order, a, b));
        for pair in records.windows(2) {
            prop_assert_ne!(
                compare_records(&order, &pair[0], &pair[1]),
                Ordering::Greater
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// The parsers never panic, and what they accept round-trips and translates without panic.

const PIECES: &[&str] = &[
    "(",
    ")",
    "NOT",
    "not",
    "AND",
    "OR",
    "a",
    "b.c",
    "`x.y`",
    "`",
    "'",
    "''",
    "'s''t'",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "LIKE",
    "'%a%'",
    "IN",
    "IS",
    "NULL",
    "true",
    "false",
    "-1.5e3",
    "1e",
    "-",
    "42",
    ",",
    ".",
    "é",
    "\u{0}",
    "asc",
    "desc",
    "'2026-01-01T00:00:00Z'",
];

fn ceql_like_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(PIECES),
            prop::sample::select(vec!["", " ", "\t"]),
        ),
        0..40,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(p, sep)| format!("{p}{sep}"))
            .collect()
    })
}

fn check_any_text(text: &str) -> Result<(), TestCaseError> {
    let chars = text.chars().count();
    match parse(text) {
        Ok(expr) => {
            let printed = expr.to_string();
            let reparsed = parse(&printed)
                .map_err(|e| TestCaseError::fail(format!("{printed:?} does not parse: {e}")))?;
            prop_assert!(reparsed.eq_ignoring_spans(&expr), "{:?}", text);
            let span = expr.span();
            prop_assert!(span.start <= span.end && span.end <= text.len());
            prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
            let _ = evaluate(&expr, &json!({"a": 1, "b": {"c": "x"}, "x.y": null}));
            let _ = translate::soql(&expr);
            let _ = translate::jql(&expr);
            let _ = translate::parameters(&expr, &[]);
        }
        Err(e) => prop_assert!(e.column >= 1 && e.column <= chars + 1, "{:?}: {}", text, e),
    }
    for result in [
        parse_order_by(text).map(|_| ()),
        parse_fields(text).map(|_| ()),
    ] {
        if let Err(e) = result {
            prop_assert!(e.column >= 1 && e.column <= chars + 1, "{:?}: {}", text, e);
        }
    }
    Ok(())
}

#[test]
fn parsing_arbitrary_text_never_panics() {
    let result = runner(2048).run(&any::<String>(), |text| check_any_text(&text));
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn parsing_ceql_like_token_soup_never_panics() {
    let result = runner(4096).run(&ceql_like_text(), |text| check_any_text(&text));
    if let Err(e) = result {
        panic!("{e}");
    }
}
