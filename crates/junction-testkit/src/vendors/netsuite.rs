//! NetSuite REST web services: SuiteQL (`POST /services/rest/query/v1/suiteql` with
//! `Prefer: transient` and `{"q": "SELECT …"}`, paged by `limit`/`offset` with
//! `hasMore`) and single records (`GET /services/rest/record/v1/<type>/<id>`), behind
//! OAuth 2.0 bearer tokens (and record collections, `GET /services/rest/record/v1/<type>`,
//! which list ids only), refusing with NetSuite's error body
//! (`{"type","title","status","o:errorDetails":[{"detail","o:errorCode"}]}`).
//!
//! Records are kept as SuiteQL sees them (lower-case column names; customers and
//! contacts dated by `datecreated`, transactions such as opportunities by
//! `createddate`, all by `lastmodifieddate`), their datetimes stored in UTC as
//! `YYYY-MM-DDTHH:MM:SSZ`. A bare datetime column reads as the account's date format
//! (`1/15/2024`, no time), as SuiteQL answers; `TO_CHAR(col, 'YYYY-MM-DD HH24:MI:SS')`
//! reads the whole instant. The SuiteQL understood is the subset a poll or a list sends:
//! `SELECT` columns (`*`, names, `TO_CHAR(…) AS alias`) `FROM` one table, `WHERE`
//! comparisons joined by `AND` against strings, numbers or
//! `TO_TIMESTAMP('…', 'YYYY-MM-DD HH24:MI:SS')`, and `ORDER BY` one column.

use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, seed};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// The only datetime format the stand-in's `TO_CHAR` and `TO_TIMESTAMP` accept.
pub const DATETIME_FORMAT: &str = "YYYY-MM-DD HH24:MI:SS";
const STORED: &str = "%Y-%m-%dT%H:%M:%SZ";
const MAX_LIMIT: usize = 1000;
const QUERY_PATH: &str = "/services/rest/query/v1/suiteql";
const RECORD_PATH: &str = "/services/rest/record/v1/";

/// Settings of the NetSuite stand-in.
#[derive(Debug, Clone)]
pub struct NetSuiteConfig {
    /// The accepted bearer token.
    pub token: String,
    /// Seeded customers, contacts and opportunities (each).
    pub records: usize,
}

impl Default for NetSuiteConfig {
    fn default() -> Self {
        NetSuiteConfig {
            token: "netsuite-8c0e6f1a-2b3d-4e5f-9a0b-1c2d3e4f5a6b".to_owned(),
            records: 30,
        }
    }
}

/// A running NetSuite stand-in.
pub type NetSuiteServer = VendorServer<NetSuite>;

/// The NetSuite vendor: internal ids count up from 1000 across record types.
#[derive(Debug)]
pub struct NetSuite {
    next_id: AtomicU64,
}

/// A datetime as the stand-in stores it.
pub fn stored(at: DateTime<Utc>) -> String {
    at.format(STORED).to_string()
}

fn customer(id: u64, i: usize) -> Value {
    let at = stored(seed::created(i));
    json!({
        "id": id.to_string(), "entityid": seed::company(i), "companyname": seed::company(i),
        "email": seed::email(i), "phone": seed::phone(i), "isinactive": "F",
        "datecreated": at, "lastmodifieddate": at,
    })
}

fn contact(id: u64, i: usize, company: &str) -> Value {
    let at = stored(seed::created(i));
    json!({
        "id": id.to_string(),
        "entityid": format!("{} {}", seed::first_name(i), seed::last_name(i)),
        "firstname": seed::first_name(i), "lastname": seed::last_name(i),
        "email": seed::email(i + 500), "company": company, "isinactive": "F",
        "datecreated": at, "lastmodifieddate": at,
    })
}

fn opportunity(id: u64, i: usize, entity: &str) -> Value {
    let at = stored(seed::created(i));
    json!({
        "id": id.to_string(), "tranid": format!("OPP{:05}", i + 1), "type": "Opprtnty",
        "title": format!("{} renewal", seed::company(i)), "entity": entity,
        "probability": seed::number(i, 3, 100), "createddate": at, "lastmodifieddate": at,
    })
}

impl NetSuite {
    /// Starts a stand-in seeded per `config`: `customer`, `contact` and `transaction`
    /// (opportunities) tables of `config.records` rows each.
    pub async fn start(config: NetSuiteConfig) -> NetSuiteServer {
        let store = Store::new();
        let n = config.records;
        let ids = |base: u64| (0..n).map(move |i| (base + i as u64, i));
        store.seed(
            "customer",
            "id",
            ids(1000).map(|(id, i)| customer(id, i)).collect(),
        );
        store.seed(
            "contact",
            "id",
            ids(1000 + n as u64)
                .map(|(id, i)| contact(id, i, &(1000 + i as u64).to_string()))
                .collect(),
        );
        store.seed(
            "transaction",
            "id",
            ids(1000 + 2 * n as u64)
                .map(|(id, i)| opportunity(id, i, &(1000 + i as u64).to_string()))
                .collect(),
        );
        let vendor = NetSuite {
            next_id: AtomicU64::new(1000 + 3 * n as u64),
        };
        VendorServer::spawn(vendor, Credential::Bearer(config.token), store).await
    }
}

/// Record changes between polls, as NetSuite's UI or another integration would make
/// them: the dates move as NetSuite moves them.
pub trait NetSuiteRecords {
    /// Adds a record to `table` (`customer`, `contact` or `transaction`) with these
    /// fields, created and last modified now; returns its internal id.
    fn create(&self, table: &str, fields: Value) -> String;
    /// Changes a record's fields and sets its `lastmodifieddate` to now.
    fn change(&self, table: &str, id: &str, fields: Value);
}

impl NetSuiteRecords for NetSuiteServer {
    fn create(&self, table: &str, fields: Value) -> String {
        let id = self
            .vendor()
            .next_id
            .fetch_add(1, AtomicOrdering::SeqCst)
            .to_string();
        let now = stored(Utc::now());
        let mut record = fields.as_object().cloned().unwrap_or_default();
        record.insert("id".into(), json!(id));
        let created = if table == "transaction" {
            "createddate"
        } else {
            "datecreated"
        };
        record.insert(created.into(), json!(now));
        record.insert("lastmodifieddate".into(), json!(now));
        self.store().insert(table, Value::Object(record));
        id
    }

    fn change(&self, table: &str, id: &str, fields: Value) {
        let mut changes = fields.as_object().cloned().unwrap_or_default();
        changes.insert("lastmodifieddate".into(), json!(stored(Utc::now())));
        assert!(
            self.store().update(table, id, &changes).is_some(),
            "no {table} {id}"
        );
    }
}

/// NetSuite's error body (RFC 9457 problem details with its own `o:errorDetails`).
pub fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    super::json(
        status,
        &json!({
            "type": format!("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.{}.{}",
                status.as_u16() / 100 + 1, status.as_u16() % 100 + 1),
            "title": title,
            "status": status.as_u16(),
            "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
        }),
    )
}

impl Vendor for NetSuite {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !core.authorized(request) {
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_LOGIN",
                "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
            );
        }
        if request.path == QUERY_PATH {
            return suiteql(core, request).unwrap_or_else(|r| r);
        }
        if let Some(rest) = request.path.strip_prefix(RECORD_PATH)
            && request.method == "GET"
        {
            if !rest.contains('/') {
                return collection(core, request, rest).unwrap_or_else(|r| r);
            }
            return record(core, rest);
        }
        error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            &format!("The requested resource {} was not found.", request.path),
        )
    }
}

/// The record types of the record service, their SuiteQL table, and how the record
/// service renames SuiteQL's columns.
fn record_type(name: &str) -> Option<(&'static str, &'static [(&'static str, &'static str)])> {
    const ENTITY: &[(&str, &str)] = &[
        ("entityid", "entityId"),
        ("companyname", "companyName"),
        ("firstname", "firstName"),
        ("lastname", "lastName"),
        ("isinactive", "isInactive"),
        ("datecreated", "dateCreated"),
        ("lastmodifieddate", "lastModifiedDate"),
    ];
    const TRANSACTION: &[(&str, &str)] = &[
        ("tranid", "tranId"),
        ("createddate", "createdDate"),
        ("lastmodifieddate", "lastModifiedDate"),
    ];
    match name {
        "customer" => Some(("customer", ENTITY)),
        "contact" => Some(("contact", ENTITY)),
        "opportunity" => Some(("transaction", TRANSACTION)),
        _ => None,
    }
}

/// A record type's collection: ids and links only, paged like SuiteQL.
fn collection(core: &Core, request: &RecordedRequest, kind: &str) -> Result<Response, Response> {
    let Some((table, _)) = record_type(kind) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_RCRD_TYPE",
            &format!("Invalid record type: {kind}."),
        ));
    };
    let number = |name: &str, default: usize| -> Result<usize, Response> {
        super::number_param(request, name)
            .map(|n| n.unwrap_or(default))
            .map_err(bad)
    };
    let limit = number("limit", MAX_LIMIT)?.clamp(1, MAX_LIMIT);
    let offset = number("offset", 0)?;
    let rows: Vec<_> = core
        .store
        .all(table)
        .into_iter()
        .filter(|r| table != "transaction" || r["type"] == "Opprtnty")
        .collect();
    let (start, end) = super::page_bounds(rows.len(), offset, limit);
    let items: Vec<Value> = rows[start..end]
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default();
            json!({"links": [{"rel": "self", "href": format!("{}{RECORD_PATH}{kind}/{id}", core.base_url())}], "id": id})
        })
        .collect();
    Ok(super::json(
        StatusCode::OK,
        &json!({
            "links": [], "count": items.len(), "hasMore": end < rows.len(), "items": items,
            "offset": offset, "totalResults": rows.len(),
        }),
    ))
}

fn record(core: &Core, rest: &str) -> Response {
    let mut segments = rest.split('/');
    let (Some(kind), Some(id), None) = (segments.next(), segments.next(), segments.next()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "The stand-in serves single records only.",
        );
    };
    let Some((table, renames)) = record_type(kind) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_RCRD_TYPE",
            &format!("Invalid record type: {kind}."),
        );
    };
    let found = core
        .store
        .get(table, id)
        .filter(|r| table != "transaction" || r["type"] == "Opprtnty");
    let Some(found) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            &format!("Record with id {id} of type {kind} was not found."),
        );
    };
    let mut out = Map::new();
    out.insert(
        "links".into(),
        json!([{"rel": "self", "href": format!("{}{RECORD_PATH}{kind}/{id}", core.base_url())}]),
    );
    for (k, v) in found.as_object().into_iter().flatten() {
        if table == "transaction" && k == "type" {
            continue;
        }
        let name = renames
            .iter()
            .find(|(from, _)| from == k)
            .map_or(k.as_str(), |(_, to)| to);
        out.insert(name.to_owned(), v.clone());
    }
    super::json(StatusCode::OK, &Value::Object(out))
}

fn bad(detail: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER",
        &format!("Invalid search query. {}", detail.into()),
    )
}

fn suiteql(core: &Core, request: &RecordedRequest) -> Result<Response, Response> {
    if request.method != "POST" {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_REQUEST",
            "SuiteQL queries are sent with POST.",
        ));
    }
    if !request
        .header("prefer")
        .is_some_and(|p| p.eq_ignore_ascii_case("transient"))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_HEADER",
            "The request must include the header 'Prefer: transient'.",
        ));
    }
    let q = request
        .json()
        .and_then(|b| b.get("q").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| bad("The request body must be a JSON object with the query in 'q'."))?;
    let number = |name: &str, default: usize| -> Result<usize, Response> {
        super::number_param(request, name)
            .map(|n| n.unwrap_or(default))
            .map_err(bad)
    };
    let limit = number("limit", MAX_LIMIT)?;
    let offset = number("offset", 0)?;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!("The limit must be between 1 and {MAX_LIMIT}.")));
    }
    let query = parse(&q).map_err(bad)?;
    let rows = run(&core.store, &query).map_err(bad)?;
    let total = rows.len();
    let (start, end) = super::page_bounds(total, offset, limit);
    let has_more = end < total;
    let link = |at: usize| {
        super::absolute(
            core,
            QUERY_PATH,
            &[("limit", limit.to_string()), ("offset", at.to_string())],
        )
    };
    let mut links = vec![json!({"rel": "self", "href": link(offset)})];
    if has_more {
        links.insert(0, json!({"rel": "next", "href": link(end)}));
    }
    let items: Vec<Value> = rows[start..end].to_vec();
    Ok(super::json(
        StatusCode::OK,
        &json!({
            "links": links, "count": items.len(), "hasMore": has_more, "items": items,
            "offset": offset, "totalResults": total,
        }),
    ))
}

/// One selected column.
#[derive(Debug, PartialEq)]
enum Column {
    All,
    Plain(String),
    /// `TO_CHAR(column, format) AS alias`.
    Formatted {
        column: String,
        alias: String,
    },
}

#[derive(Debug, PartialEq)]
enum Operand {
    Text(String),
    Number(f64),
    Timestamp(String),
}

#[derive(Debug, PartialEq)]
struct Condition {
    column: String,
    operator: String,
    operand: Operand,
}

#[derive(Debug, PartialEq)]
struct Query {
    columns: Vec<Column>,
    table: String,
    conditions: Vec<Condition>,
    order: Option<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Symbol(String),
}

fn tokenize(q: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("An unterminated string literal.".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => break,
                    Some(&c) => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Text(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect();
            tokens.push(Token::Number(
                raw.parse().map_err(|_| format!("A bad number {raw}."))?,
            ));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(
                chars[start..i].iter().collect::<String>().to_lowercase(),
            ));
        } else if matches!(c, '>' | '<' | '!') && chars.get(i + 1) == Some(&'=') {
            tokens.push(Token::Symbol(format!("{c}=")));
            i += 2;
        } else if matches!(c, '(' | ')' | ',' | '*' | '=' | '>' | '<' | '.') {
            tokens.push(Token::Symbol(c.to_string()));
            i += 1;
        } else {
            return Err(format!("Unexpected character '{c}'."));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn expect_word(&mut self, word: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Word(w)) if w == word => Ok(()),
            other => Err(format!(
                "Expected {} but found {other:?}.",
                word.to_uppercase()
            )),
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Symbol(s)) if s == symbol => Ok(()),
            other => Err(format!("Expected '{symbol}' but found {other:?}.")),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(format!("Expected a name but found {other:?}.")),
        }
    }

    fn format(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Text(f)) if f == DATETIME_FORMAT => Ok(()),
            other => Err(format!(
                "The stand-in knows the format '{DATETIME_FORMAT}' only, not {other:?}."
            )),
        }
    }

    fn column(&mut self) -> Result<Column, String> {
        if self.peek() == Some(&Token::Symbol("*".into())) {
            self.at += 1;
            return Ok(Column::All);
        }
        let name = self.name()?;
        if name != "to_char" {
            return Ok(Column::Plain(name));
        }
        self.expect_symbol("(")?;
        let column = self.name()?;
        self.expect_symbol(",")?;
        self.format()?;
        self.expect_symbol(")")?;
        self.expect_word("as")?;
        let alias = self.name()?;
        Ok(Column::Formatted { column, alias })
    }

    fn condition(&mut self) -> Result<Condition, String> {
        let column = self.name()?;
        let operator = match self.next() {
            Some(Token::Symbol(s)) if ["=", "!=", "<", ">", "<=", ">="].contains(&s.as_str()) => s,
            other => return Err(format!("Expected a comparison but found {other:?}.")),
        };
        let operand = match self.next() {
            Some(Token::Text(t)) => Operand::Text(t),
            Some(Token::Number(n)) => Operand::Number(n),
            Some(Token::Word(w)) if w == "to_timestamp" => {
                self.expect_symbol("(")?;
                let Some(Token::Text(value)) = self.next() else {
                    return Err("TO_TIMESTAMP takes a string.".into());
                };
                self.expect_symbol(",")?;
                self.format()?;
                self.expect_symbol(")")?;
                let at = NaiveDateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S")
                    .map_err(|_| format!("'{value}' does not match '{DATETIME_FORMAT}'."))?;
                Operand::Timestamp(at.format(STORED).to_string())
            }
            other => return Err(format!("Expected a value but found {other:?}.")),
        };
        Ok(Condition {
            column,
            operator,
            operand,
        })
    }
}

fn parse(q: &str) -> Result<Query, String> {
    let mut p = Parser {
        tokens: tokenize(q)?,
        at: 0,
    };
    p.expect_word("select")?;
    let mut columns = vec![p.column()?];
    while p.peek() == Some(&Token::Symbol(",".into())) {
        p.at += 1;
        columns.push(p.column()?);
    }
    p.expect_word("from")?;
    let table = p.name()?;
    let mut conditions = Vec::new();
    if p.is_word("where") {
        p.at += 1;
        conditions.push(p.condition()?);
        while p.is_word("and") {
            p.at += 1;
            conditions.push(p.condition()?);
        }
    }
    let mut order = None;
    if p.is_word("order") {
        p.at += 1;
        p.expect_word("by")?;
        let column = p.name()?;
        let descending = if p.is_word("desc") {
            p.at += 1;
            true
        } else {
            if p.is_word("asc") {
                p.at += 1;
            }
            false
        };
        order = Some((column, descending));
    }
    if let Some(extra) = p.peek() {
        return Err(format!("Unexpected {extra:?}."));
    }
    Ok(Query {
        columns,
        table,
        conditions,
        order,
    })
}

fn is_stored_datetime(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, STORED)
        .ok()
        .map(|at| at.and_utc())
}

fn compare(value: &Value, operand: &Operand) -> Option<Ordering> {
    match (value, operand) {
        (Value::String(s), Operand::Text(t) | Operand::Timestamp(t)) => Some(s.as_str().cmp(t)),
        (Value::Number(n), Operand::Number(m)) => n.as_f64()?.partial_cmp(m),
        (Value::String(s), Operand::Number(m)) => s.parse::<f64>().ok()?.partial_cmp(m),
        _ => None,
    }
}

fn matches(record: &Value, condition: &Condition) -> bool {
    let value = record.get(&condition.column).unwrap_or(&Value::Null);
    let Some(ordering) = compare(value, &condition.operand) else {
        return false;
    };
    match condition.operator.as_str() {
        "=" => ordering.is_eq(),
        "!=" => ordering.is_ne(),
        "<" => ordering.is_lt(),
        ">" => ordering.is_gt(),
        "<=" => ordering.is_le(),
        _ => ordering.is_ge(),
    }
}

/// A column's value as SuiteQL answers it: a datetime as the account's date format.
fn plain(value: &Value) -> Value {
    match value.as_str().and_then(is_stored_datetime) {
        Some(at) => json!(at.format("%-m/%-d/%Y").to_string()),
        None => value.clone(),
    }
}

fn run(store: &Store, query: &Query) -> Result<Vec<Value>, String> {
    if !["customer", "contact", "transaction"].contains(&query.table.as_str()) {
        return Err(format!("Unknown identifier '{}'.", query.table));
    }
    let records = store.all(&query.table);
    // A table's columns are those any of its rows has; a row without one holds null.
    let known: HashSet<&String> = records
        .iter()
        .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys()))
        .collect();
    let named = query
        .conditions
        .iter()
        .map(|c| &c.column)
        .chain(query.order.iter().map(|(c, _)| c))
        .chain(query.columns.iter().filter_map(|c| match c {
            Column::All => None,
            Column::Plain(name) => Some(name),
            Column::Formatted { column, .. } => Some(column),
        }));
    for column in named {
        if !known.contains(column) {
            return Err(format!("Unknown identifier '{column}'."));
        }
    }
    let mut rows: Vec<&Value> = records
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| query.conditions.iter().all(|c| matches(r, c)))
        .collect();
    if let Some((column, descending)) = &query.order {
        rows.sort_by(|a, b| {
            let ordering = match (a.get(column), b.get(column)) {
                (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
                (Some(Value::Number(x)), Some(Value::Number(y))) => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            };
            if *descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    Ok(rows
        .into_iter()
        .map(|record| row(record, &query.columns))
        .collect())
}

/// One answered row: the selected columns, empty ones left out as SuiteQL does.
fn row(record: &Value, columns: &[Column]) -> Value {
    let mut out = Map::new();
    out.insert("links".into(), json!([]));
    for column in columns {
        match column {
            Column::All => {
                for (k, v) in record.as_object().into_iter().flatten() {
                    out.insert(k.clone(), plain(v));
                }
            }
            Column::Plain(name) => {
                let value = record.get(name).unwrap_or(&Value::Null);
                out.insert(name.clone(), plain(value));
            }
            Column::Formatted { column, alias } => {
                let value = record.get(column).unwrap_or(&Value::Null);
                let shown = match value.as_str().and_then(is_stored_datetime) {
                    Some(at) => json!(at.format("%Y-%m-%d %H:%M:%S").to_string()),
                    None => value.clone(),
                };
                out.insert(alias.clone(), shown);
            }
        }
    }
    out.retain(|_, v| !v.is_null());
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_query_parses_into_columns_conditions_and_order() {
        let q = parse(
            "SELECT id, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS lastmodifieddate \
             FROM transaction WHERE type = 'Opprtnty' AND lastmodifieddate >= \
             TO_TIMESTAMP('2026-11-26 21:00:05', 'YYYY-MM-DD HH24:MI:SS') ORDER BY lastmodifieddate",
        )
        .unwrap();
        assert_eq!(q.table, "transaction");
        assert_eq!(q.columns.len(), 2);
        assert_eq!(
            q.conditions[1].operand,
            Operand::Timestamp("2026-11-26T21:00:05Z".into())
        );
        assert_eq!(q.order, Some(("lastmodifieddate".into(), false)));
        assert!(parse("SELECT id FROM customer WHERE").is_err());
        assert!(parse("SELECT TO_CHAR(x, 'DD.MM.YYYY') AS y FROM customer").is_err());
    }
}
