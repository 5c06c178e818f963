//! Jira Cloud REST API v3 stand-in (shapes from Atlassian's *Issue search*, *Issues*,
//! *Projects* and *User search* references and the *JQL* reference).
//!
//! - `GET|POST /rest/api/3/search/jql` (the current search: `jql`, `nextPageToken`,
//!   `maxResults` at most 100, `fields`; answers `{"issues","nextPageToken","isLast"}`)
//!   and the older `GET|POST /rest/api/3/search` (`startAt`, `maxResults`; answers
//!   `{"startAt","maxResults","total","issues"}`). Junction's element data uses
//!   `search/jql`; the older one is served for completeness.
//! - JQL is parsed here: `field op value` with `= != > >= < <= ~ !~ IN NOT IN IS EMPTY
//!   IS NOT EMPTY IS NULL IS NOT NULL`, `AND OR NOT`, parentheses, `ORDER BY`. Unknown
//!   fields and what it cannot parse are a 400 `{"errorMessages":[…],"errors":{}}`.
//! - `GET|PUT|DELETE /rest/api/3/issue/{key}` (PUT and DELETE → 204),
//!   `POST /rest/api/3/issue` → 201 `{"id","key","self"}`.
//! - `GET /rest/api/3/project/search` (paged `values`), `GET /rest/api/3/users/search`
//!   (a plain array, `startAt`/`maxResults`).
//! - Auth: HTTP basic `email:api_token` or a bearer token; 401 with Jira's
//!   `errorMessages` body.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::filter::{Expr, Lit, Op, lookup, order};
use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, seed};

const MAX_RESULTS: usize = 100;
const PROJECTS: [(&str, &str); 3] = [
    ("OPS", "Operations"),
    ("WEB", "Website"),
    ("APP", "Mobile App"),
];

/// Settings of the Jira stand-in.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    /// The Atlassian account e-mail.
    pub email: String,
    /// The API token.
    pub api_token: String,
    /// Issues to seed.
    pub issues: usize,
    /// Users to seed.
    pub users: usize,
}

impl Default for JiraConfig {
    fn default() -> Self {
        JiraConfig {
            email: "admin@junction.example.test".to_owned(),
            api_token: "ATATT3xFfGF0-test-token".to_owned(),
            issues: 1050,
            users: 120,
        }
    }
}

/// A running Jira stand-in.
pub type JiraServer = VendorServer<Jira>;

/// The Jira vendor.
#[derive(Debug)]
pub struct Jira {
    next_id: AtomicU64,
}

fn account_id(i: usize) -> String {
    format!("5b10ac8d82e05b22cc7d{i:04}")
}

impl Jira {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: JiraConfig) -> JiraServer {
        let store = Store::new();
        let users = config.users.max(1);
        store.seed(
            "users",
            "accountId",
            (0..users)
                .map(|i| {
                    json!({
                        "accountId": account_id(i),
                        "accountType": "atlassian",
                        "displayName": format!("{} {}", seed::first_name(i), seed::last_name(i)),
                        "emailAddress": if seed::is_null(i, 1, 4) { Value::Null } else { json!(seed::email(i)) },
                        "active": i % 9 != 8,
                        "timeZone": "Europe/Berlin",
                    })
                })
                .collect(),
        );
        store.seed(
            "projects",
            "key",
            PROJECTS
                .iter()
                .enumerate()
                .map(|(i, (key, name))| {
                    json!({ "id": (10_000 + i).to_string(), "key": key, "name": name, "projectTypeKey": "software" })
                })
                .collect(),
        );
        let per_project = config.issues.div_ceil(PROJECTS.len()).max(1);
        store.seed(
            "issues",
            "key",
            (0..config.issues)
                .map(|i| {
                    let (project, _) = PROJECTS[i / per_project];
                    let number = i % per_project + 1;
                    let user = |n: usize| {
                        json!({ "accountId": account_id(n % users), "displayName": format!("{} {}", seed::first_name(n % users), seed::last_name(n % users)) })
                    };
                    json!({
                        "id": (20_000 + i).to_string(),
                        "key": format!("{project}-{number}"),
                        "fields": {
                            "summary": format!("{} fails in {}", seed::choice(&["Login", "Checkout", "Search", "Export"], i, 60), seed::city(i)),
                            "description": if seed::is_null(i, 1, 3) { Value::Null } else {
                                json!({ "type": "doc", "version": 1, "content": [{ "type": "paragraph", "content": [{ "type": "text", "text": "Steps to reproduce." }] }] })
                            },
                            "status": { "name": seed::choice(&["To Do", "In Progress", "Done"], i, 61) },
                            "priority": if seed::is_null(i, 2, 7) { Value::Null } else { json!({ "name": seed::choice(&["Low", "Medium", "High"], i, 62) }) },
                            "issuetype": { "name": seed::choice(&["Bug", "Task", "Story"], i, 63) },
                            "project": { "key": project },
                            "assignee": if seed::is_null(i, 3, 4) { Value::Null } else { user(i * 3) },
                            "reporter": user(i),
                            "labels": if i % 3 == 0 { json!(["customer"]) } else { json!([]) },
                            "created": seed::created(i).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
                            "updated": seed::created(i + 24).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
                        },
                    })
                })
                .collect(),
        );
        VendorServer::spawn(
            Jira {
                next_id: AtomicU64::new(90_000),
            },
            Credential::Basic {
                user: config.email,
                password: config.api_token,
            },
            store,
        )
        .await
    }
}

/// A Jira error response.
pub fn jira_error(status: StatusCode, messages: &[&str], errors: Value) -> Response {
    super::json(
        status,
        &json!({ "errorMessages": messages, "errors": errors }),
    )
}

fn bad_jql(message: &str) -> Response {
    jira_error(StatusCode::BAD_REQUEST, &[message], json!({}))
}

fn issue_missing() -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

impl Vendor for Jira {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !core.authorized(request) {
            return jira_error(
                StatusCode::UNAUTHORIZED,
                &["You are not authenticated. Authentication required to perform this operation."],
                json!({}),
            );
        }
        let segments = request.segments();
        let method = request.method.as_str();
        match (segments.as_slice(), method) {
            (["rest", "api", "3", "search", "jql"], "GET" | "POST") => search(core, request, true),
            (["rest", "api", "3", "search"], "GET" | "POST") => search(core, request, false),
            (["rest", "api", "3", "issue"], "POST") => self.create(core, request),
            (["rest", "api", "3", "issue", key], "GET") => match find_issue(core, key) {
                Some(issue) => super::json(StatusCode::OK, &render(core, &issue, None)),
                None => issue_missing(),
            },
            (["rest", "api", "3", "issue", key], "PUT") => update(core, request, key),
            (["rest", "api", "3", "issue", key], "DELETE") => match find_issue(core, key) {
                Some(issue) => {
                    let key = issue["key"].as_str().unwrap_or_default().to_owned();
                    core.store.delete("issues", &key);
                    StatusCode::NO_CONTENT.into_response()
                }
                None => issue_missing(),
            },
            (["rest", "api", "3", "project", "search"], "GET") => projects(core, request),
            (["rest", "api", "3", "users", "search"], "GET") => users(core, request),
            _ => jira_error(StatusCode::NOT_FOUND, &["Not found"], json!({})),
        }
    }
}

fn find_issue(core: &Core, key_or_id: &str) -> Option<Value> {
    if let Some(issue) = core.store.get("issues", key_or_id) {
        return Some((*issue).clone());
    }
    core.store
        .all("issues")
        .into_iter()
        .find(|i| i["id"] == key_or_id)
        .map(|i| (*i).clone())
}

fn render(core: &Core, issue: &Value, fields: Option<&[String]>) -> Value {
    let mut out = issue.clone();
    out["self"] = json!(format!(
        "{}/rest/api/3/issue/{}",
        core.base_url(),
        issue["id"].as_str().unwrap_or_default()
    ));
    if let (Some(wanted), Some(Value::Object(all))) = (fields, issue.get("fields")) {
        let picked: Map<String, Value> = if wanted.iter().any(|f| f == "*all" || f == "*navigable")
        {
            all.clone()
        } else {
            all.iter()
                .filter(|(k, _)| wanted.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        out["fields"] = Value::Object(picked);
    }
    out
}

struct SearchParams {
    jql: String,
    max: usize,
    start: usize,
    token: Option<String>,
    fields: Option<Vec<String>>,
}

fn search_params(request: &RecordedRequest) -> Result<SearchParams, String> {
    let body = if request.method == "POST" {
        match request.json() {
            Some(Value::Object(body)) => Some(body),
            _ => return Err("The request body must be a JSON object.".to_owned()),
        }
    } else {
        None
    };
    let get = |name: &str| -> Option<Value> {
        match &body {
            Some(body) => body.get(name).cloned(),
            None => request.param(name).map(|v| json!(v)),
        }
    };
    let number = |name: &str| -> Result<Option<usize>, String> {
        match get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or(format!("{name} must be a non-negative integer")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("{name} must be a non-negative integer")),
            Some(_) => Err(format!("{name} must be a non-negative integer")),
        }
    };
    let fields = match get("fields") {
        None => None,
        Some(Value::String(s)) => Some(s.split(',').map(|f| f.trim().to_owned()).collect()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        Some(_) => return Err("fields must be a list of field names".to_owned()),
    };
    Ok(SearchParams {
        jql: get("jql")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        max: number("maxResults")?.unwrap_or(50).min(MAX_RESULTS),
        start: number("startAt")?.unwrap_or(0),
        token: get("nextPageToken").and_then(|v| v.as_str().map(str::to_owned)),
        fields,
    })
}

fn search(core: &Core, request: &RecordedRequest, enhanced: bool) -> Response {
    let params = match search_params(request) {
        Ok(p) => p,
        Err(message) => return bad_jql(&message),
    };
    if enhanced && params.jql.trim().is_empty() {
        return bad_jql(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
        );
    }
    let query = match parse_jql(&params.jql) {
        Ok(q) => q,
        Err(message) => return bad_jql(&message),
    };
    let mut matched: Vec<_> = core
        .store
        .all("issues")
        .into_iter()
        .filter(|issue| {
            query
                .filter
                .as_ref()
                .is_none_or(|f| f.matches_with(issue, &issue_field))
        })
        .collect();
    if !query.order.is_empty() {
        matched.sort_by(|a, b| {
            for (field, desc) in &query.order {
                let x = issue_field(a, field).unwrap_or(&Value::Null);
                let y = issue_field(b, field).unwrap_or(&Value::Null);
                let o = if field == "key" {
                    key_order(a, b)
                } else {
                    order(x, y)
                };
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let max = params.max.max(1);
    let fields = params.fields.as_deref();
    if enhanced {
        let start = match &params.token {
            None => 0,
            Some(token) => match URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
            {
                Some(n) => n,
                None => return bad_jql("The provided next page token is invalid or expired."),
            },
        };
        let (start, end) = super::page_bounds(matched.len(), start, max);
        let issues: Vec<Value> = matched[start..end]
            .iter()
            .map(|i| render(core, i, fields.or(Some(&[String::from("id")][..]))))
            .collect();
        let mut body = json!({ "issues": issues, "isLast": end >= matched.len() });
        if end < matched.len() {
            body["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(format!("offset:{end}")));
        }
        super::json(StatusCode::OK, &body)
    } else {
        let (start, end) = super::page_bounds(matched.len(), params.start, max);
        let issues: Vec<Value> = matched[start..end]
            .iter()
            .map(|i| render(core, i, fields))
            .collect();
        super::json(
            StatusCode::OK,
            &json!({ "expand": "schema,names", "startAt": params.start, "maxResults": max, "total": matched.len(), "issues": issues }),
        )
    }
}

fn key_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let split = |v: &Value| {
        let key = v["key"].as_str().unwrap_or_default().to_owned();
        let (p, n) = key.split_once('-').unwrap_or((&key, "0"));
        (p.to_owned(), n.parse::<u64>().unwrap_or_default())
    };
    split(a).cmp(&split(b))
}

// JQL names → where the value sits in an issue.
const FIELDS: [(&str, &str); 13] = [
    ("project", "fields.project.key"),
    ("status", "fields.status.name"),
    ("priority", "fields.priority.name"),
    ("issuetype", "fields.issuetype.name"),
    ("type", "fields.issuetype.name"),
    ("assignee", "fields.assignee.accountId"),
    ("reporter", "fields.reporter.accountId"),
    ("summary", "fields.summary"),
    ("labels", "fields.labels"),
    ("created", "fields.created"),
    ("updated", "fields.updated"),
    ("key", "key"),
    ("text", "fields.summary"),
];

fn issue_field<'a>(issue: &'a Value, field: &str) -> Option<&'a Value> {
    let path = FIELDS.iter().find(|(n, _)| *n == field).map(|(_, p)| *p)?;
    lookup(issue, path)
}

struct Jql {
    filter: Option<Expr>,
    order: Vec<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Sym(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "Error in the JQL Query: The quoted string '{s}' has not been completed. (line 1, character {})",
                            i + 1
                        ));
                    }
                    Some('\\') => {
                        if let Some(&n) = chars.get(i + 1) {
                            s.push(n);
                        }
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&o) => {
                        s.push(o);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Quoted(s));
        } else if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':') {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.' | '/' | ':'))
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "!=" => "!=",
                "!~" => "!~",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    '=' => "=",
                    '~' => "~",
                    '<' => "<",
                    '>' => ">",
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    other => {
                        return Err(format!(
                            "Error in the JQL Query: The character '{other}' is a reserved JQL character. You must enclose it in a string or use the escape '\\u{:04x}' instead. (line 1, character {})",
                            other as u32,
                            i + 1
                        ));
                    }
                },
            };
            i += sym.len();
            out.push(Tok::Sym(sym));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn sym(&mut self, sym: &str) -> bool {
        match self.peek() {
            Some(Tok::Sym(s)) if *s == sym => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn unexpected(&self, expecting: &str) -> String {
        let found = match self.peek() {
            None => "the end of the query".to_owned(),
            Some(Tok::Word(w)) => format!("'{w}'"),
            Some(Tok::Quoted(q)) => format!("\"{q}\""),
            Some(Tok::Sym(s)) => format!("'{s}'"),
        };
        format!("Error in the JQL Query: Expecting {expecting} but got {found}.")
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.sym("(") {
            let inner = self.or()?;
            if !self.sym(")") {
                return Err(self.unexpected("')'"));
            }
            return Ok(inner);
        }
        self.clause()
    }

    fn field(&mut self) -> Result<String, String> {
        let name = match self.peek() {
            Some(Tok::Word(w)) => w.to_lowercase(),
            Some(Tok::Quoted(q)) => q.to_lowercase(),
            _ => return Err(self.unexpected("a field name")),
        };
        if FIELDS.iter().all(|(n, _)| *n != name) {
            let shown = match self.peek() {
                Some(Tok::Word(w) | Tok::Quoted(w)) => w.clone(),
                _ => name,
            };
            return Err(format!(
                "Field '{shown}' does not exist or you do not have permission to view it."
            ));
        }
        self.pos += 1;
        Ok(name)
    }

    fn value(&mut self, field: &str) -> Result<Lit, String> {
        let raw = match self.peek() {
            Some(Tok::Word(w))
                if w.eq_ignore_ascii_case("EMPTY") || w.eq_ignore_ascii_case("NULL") =>
            {
                self.pos += 1;
                return Ok(Lit::Null);
            }
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Quoted(q)) => q.clone(),
            _ => return Err(self.unexpected("either a value, 'EMPTY' or a list of values")),
        };
        self.pos += 1;
        if matches!(field, "created" | "updated") {
            let normalized = raw.replace('/', "-");
            let date = NaiveDate::parse_from_str(normalized.get(..10).unwrap_or(&normalized), "%Y-%m-%d")
                .map_err(|_| format!("Date value '{raw}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."))?;
            let time = normalized.get(11..).filter(|t| !t.is_empty());
            return Ok(match time {
                None => Lit::Date(date),
                Some(t) => {
                    let time = chrono::NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| {
                        format!("Date value '{raw}' for field '{field}' is invalid.")
                    })?;
                    Lit::DateTime(date.and_time(time).and_utc())
                }
            });
        }
        Ok(Lit::Str(raw))
    }

    fn clause(&mut self) -> Result<Expr, String> {
        let field = self.field()?;
        let cond = |op, values| Expr::Cond {
            field: field.clone(),
            op,
            values,
        };
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !(self.keyword("EMPTY") || self.keyword("NULL")) {
                return Err(self.unexpected("'EMPTY' or 'NULL'"));
            }
            return Ok(cond(
                if negated { Op::IsNotNull } else { Op::IsNull },
                Vec::new(),
            ));
        }
        let in_op = if self.keyword("IN") {
            Some(Op::In)
        } else if self.keyword("NOT") {
            if !self.keyword("IN") {
                return Err(self.unexpected("'IN'"));
            }
            Some(Op::NotIn)
        } else {
            None
        };
        if let Some(op) = in_op {
            if !self.sym("(") {
                return Err(self.unexpected("'('"));
            }
            let mut values = vec![self.value(&field)?];
            while self.sym(",") {
                values.push(self.value(&field)?);
            }
            if !self.sym(")") {
                return Err(self.unexpected("')'"));
            }
            if op == Op::NotIn {
                return Ok(Expr::And(
                    Box::new(cond(op, values)),
                    Box::new(cond(Op::IsNotNull, Vec::new())),
                ));
            }
            return Ok(cond(op, values));
        }
        let op = match self.peek() {
            Some(Tok::Sym(s)) => match *s {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "~" => Op::Contains,
                "!~" => Op::NotContains,
                _ => return Err(self.unexpected("an operator")),
            },
            _ => return Err(self.unexpected("operator but got")),
        };
        self.pos += 1;
        if matches!(op, Op::Contains | Op::NotContains)
            && !matches!(field.as_str(), "summary" | "text")
        {
            return Err(format!(
                "The operator '{}' is not supported by the '{field}' field.",
                if op == Op::Contains { "~" } else { "!~" }
            ));
        }
        let value = self.value(&field)?;
        if value == Lit::Null {
            return Ok(cond(
                if op == Op::Ne {
                    Op::IsNotNull
                } else {
                    Op::IsNull
                },
                Vec::new(),
            ));
        }
        // `~` matches words; a trailing `*` is a prefix wildcard.
        let value = match (op, value) {
            (Op::Contains | Op::NotContains, Lit::Str(s)) => {
                Lit::Str(s.trim_end_matches('*').to_owned())
            }
            (_, v) => v,
        };
        // Unlike SQL, JQL's negative operators never match an empty field.
        if matches!(op, Op::Ne | Op::NotContains) {
            return Ok(Expr::And(
                Box::new(cond(op, vec![value])),
                Box::new(cond(Op::IsNotNull, Vec::new())),
            ));
        }
        Ok(cond(op, vec![value]))
    }
}

fn parse_jql(src: &str) -> Result<Jql, String> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    let filter = if p.peek().is_none()
        || matches!(p.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("ORDER"))
    {
        None
    } else {
        Some(p.or()?)
    };
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        if !p.keyword("BY") {
            return Err(p.unexpected("'BY'"));
        }
        loop {
            let field = p.field()?;
            let desc = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            order.push((field, desc));
            if !p.sym(",") {
                break;
            }
        }
    }
    if p.peek().is_some() {
        return Err(p.unexpected("'AND', 'OR' or 'ORDER BY'"));
    }
    Ok(Jql { filter, order })
}

fn issue_fields(request: &RecordedRequest) -> Result<Map<String, Value>, Response> {
    match request.json() {
        Some(Value::Object(body)) => match body.get("fields") {
            Some(Value::Object(fields)) => Ok(fields.clone()),
            _ => Err(jira_error(
                StatusCode::BAD_REQUEST,
                &["The request body must have a \"fields\" object."],
                json!({}),
            )),
        },
        _ => Err(jira_error(
            StatusCode::BAD_REQUEST,
            &["The request body is not valid JSON."],
            json!({}),
        )),
    }
}

const KNOWN_FIELDS: [&str; 8] = [
    "summary",
    "description",
    "project",
    "issuetype",
    "priority",
    "assignee",
    "labels",
    "status",
];

fn check_known(fields: &Map<String, Value>) -> Result<(), Response> {
    let unknown: Map<String, Value> = fields
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| {
            (
                k.clone(),
                json!(format!(
                    "Field '{k}' cannot be set. It is not on the appropriate screen, or unknown."
                )),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(jira_error(
            StatusCode::BAD_REQUEST,
            &[],
            Value::Object(unknown),
        ))
    }
}

impl Jira {
    fn create(&self, core: &Core, request: &RecordedRequest) -> Response {
        let mut fields = match issue_fields(request) {
            Ok(f) => f,
            Err(r) => return r,
        };
        if let Err(r) = check_known(&fields) {
            return r;
        }
        let mut errors = Map::new();
        if fields
            .get("summary")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errors.insert(
                "summary".into(),
                json!("You must specify a summary of the issue."),
            );
        }
        let project = fields
            .get("project")
            .and_then(|p| p.get("key"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match &project {
            Some(key) if PROJECTS.iter().any(|(k, _)| k == key) => {}
            _ => {
                errors.insert("project".into(), json!("Specify a valid project ID or key"));
            }
        }
        if fields
            .get("issuetype")
            .and_then(|t| t.get("name").or_else(|| t.get("id")))
            .is_none()
        {
            errors.insert("issuetype".into(), json!("Specify an issue type"));
        }
        if !errors.is_empty() {
            return jira_error(StatusCode::BAD_REQUEST, &[], Value::Object(errors));
        }
        let project = project.unwrap_or_default();
        let n = self.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        let id = n.to_string();
        let key = format!("{project}-{n}");
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string();
        fields.entry("status").or_insert(json!({ "name": "To Do" }));
        for optional in ["priority", "assignee", "description"] {
            fields.entry(optional).or_insert(Value::Null);
        }
        fields.entry("labels").or_insert(json!([]));
        fields.insert("created".into(), json!(now));
        fields.insert("updated".into(), json!(now));
        core.store
            .insert("issues", json!({ "id": id, "key": key, "fields": fields }));
        super::json(
            StatusCode::CREATED,
            &json!({ "id": id, "key": key, "self": format!("{}/rest/api/3/issue/{id}", core.base_url()) }),
        )
    }
}

fn update(core: &Core, request: &RecordedRequest, key: &str) -> Response {
    let Some(issue) = find_issue(core, key) else {
        return issue_missing();
    };
    let changes = match issue_fields(request) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = check_known(&changes) {
        return r;
    }
    if changes
        .get("summary")
        .is_some_and(|s| s.as_str().is_none_or(str::is_empty))
    {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &[],
            json!({ "summary": "You must specify a summary of the issue." }),
        );
    }
    let key = issue["key"].as_str().unwrap_or_default().to_owned();
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string();
    core.store.modify("issues", &key, |record| {
        if let Some(Value::Object(fields)) = record.get_mut("fields") {
            fields.extend(changes);
            fields.insert("updated".into(), json!(now));
        }
    });
    StatusCode::NO_CONTENT.into_response()
}

fn paging(request: &RecordedRequest, default_max: usize) -> Result<(usize, usize), Response> {
    let start = super::number_param(request, "startAt")
        .map_err(|m| bad_jql(&m))?
        .unwrap_or(0);
    let max = super::number_param(request, "maxResults")
        .map_err(|m| bad_jql(&m))?
        .unwrap_or(default_max);
    Ok((start, max.clamp(1, default_max)))
}

fn projects(core: &Core, request: &RecordedRequest) -> Response {
    let (start, max) = match paging(request, 50) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = core.store.all("projects");
    let (s, e) = super::page_bounds(all.len(), start, max);
    let values: Vec<Value> = all[s..e].iter().map(|p| (**p).clone()).collect();
    let mut body = json!({
        "self": super::absolute(core, "/rest/api/3/project/search", &[("startAt", start.to_string()), ("maxResults", max.to_string())]),
        "maxResults": max,
        "startAt": start,
        "total": all.len(),
        "isLast": e >= all.len(),
        "values": values,
    });
    if e < all.len() {
        body["nextPage"] = json!(super::absolute(
            core,
            "/rest/api/3/project/search",
            &[("startAt", e.to_string()), ("maxResults", max.to_string())]
        ));
    }
    super::json(StatusCode::OK, &body)
}

fn users(core: &Core, request: &RecordedRequest) -> Response {
    let (start, max) = match paging(request, 1000) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = core.store.all("users");
    let (s, e) = super::page_bounds(all.len(), start, max);
    let values: Vec<Value> = all[s..e].iter().map(|u| (**u).clone()).collect();
    super::json(StatusCode::OK, &Value::Array(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jql_parses_the_subset_and_refuses_the_rest() {
        for ok in [
            "project = OPS AND status IN (\"To Do\", \"In Progress\") ORDER BY created DESC",
            "assignee IS EMPTY OR (priority != High AND summary ~ \"login*\")",
            "created >= \"2024/01/05\" AND NOT labels = customer",
            "ORDER BY key",
            "",
        ] {
            assert!(parse_jql(ok).is_ok(), "{ok}: {:?}", parse_jql(ok).err());
        }
        for bad in [
            "project = ",
            "nosuchfield = 1",
            "status ~ Done",
            "summary ~ \"unterminated",
            "project = OPS AND",
            "created > \"yesterday\"",
            "project == OPS",
        ] {
            assert!(parse_jql(bad).is_err(), "{bad}");
        }
    }
}
