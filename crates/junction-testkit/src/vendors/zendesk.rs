//! Zendesk Support API v2 stand-in (shapes from Zendesk's *Tickets*, *Users*,
//! *Organizations*, *Search* references and *Pagination* / *Errors* guides).
//!
//! - `GET /api/v2/{tickets|users|organizations}.json` with cursor pagination
//!   (`page[size]` at most 100, `page[after]`, `page[before]`; answers `meta.has_more`,
//!   `meta.after_cursor`, `meta.before_cursor`, `links.next`, `links.prev`) or offset
//!   pagination (`page`, `per_page` at most 100; answers `next_page`, `previous_page`,
//!   `count`). Mixing the two is refused.
//! - `GET|PUT|DELETE /api/v2/{kind}/{id}.json`, `POST /api/v2/{kind}.json`: bodies are
//!   envelopes (`{"ticket":{…}}`); DELETE → 204.
//! - `GET /api/v2/search.json?query=` with `type:`, `field:value`, `field>value`,
//!   `field<value`, quoted phrases and free text; offset-paged `results` with
//!   `result_type`.
//! - Auth: HTTP basic `{email}/token:{api_token}` or a bearer token; 401
//!   `{"error":"Couldn't authenticate you"}`; other errors `{"error","description"}`.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::filter::{Expr, Lit, Op, lookup};
use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, seed};

const MAX_PAGE: usize = 100;

/// Settings of the Zendesk stand-in.
#[derive(Debug, Clone)]
pub struct ZendeskConfig {
    /// The agent e-mail of the API token credential.
    pub email: String,
    /// The API token.
    pub api_token: String,
    /// Tickets to seed (users and organizations get a share of it).
    pub tickets: usize,
}

impl Default for ZendeskConfig {
    fn default() -> Self {
        ZendeskConfig {
            email: "agent@junction.example.test".to_owned(),
            api_token: "zd-api-token-0123456789".to_owned(),
            tickets: 1050,
        }
    }
}

impl ZendeskConfig {
    /// The basic credential Zendesk expects for an API token.
    pub fn credential(&self) -> Credential {
        Credential::Basic {
            user: format!("{}/token", self.email),
            password: self.api_token.clone(),
        }
    }
}

/// A running Zendesk stand-in.
pub type ZendeskServer = VendorServer<Zendesk>;

/// The Zendesk vendor.
#[derive(Debug)]
pub struct Zendesk {
    next_id: AtomicU64,
}

struct Kind {
    plural: &'static str,
    singular: &'static str,
    required: &'static str,
}

const KINDS: [Kind; 3] = [
    Kind {
        plural: "tickets",
        singular: "ticket",
        required: "subject",
    },
    Kind {
        plural: "users",
        singular: "user",
        required: "name",
    },
    Kind {
        plural: "organizations",
        singular: "organization",
        required: "name",
    },
];

fn maybe(i: usize, salt: u64, every: usize, v: Value) -> Value {
    if seed::is_null(i, salt, every) {
        Value::Null
    } else {
        v
    }
}

impl Zendesk {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: ZendeskConfig) -> ZendeskServer {
        let store = Store::new();
        let users = config.tickets.max(1);
        let orgs = (config.tickets / 4).max(1);
        store.seed(
            "organizations",
            "id",
            (0..orgs)
                .map(|i| {
                    json!({
                        "id": 360_000 + i as u64,
                        "url": "",
                        "name": seed::company(i),
                        "details": maybe(i, 1, 5, json!(format!("{} office", seed::city(i)))),
                        "domain_names": [format!("company{}.example.test", i + 1)],
                        "created_at": seed::rfc3339(seed::created(i)),
                        "updated_at": seed::rfc3339(seed::created(i + 24)),
                    })
                })
                .collect(),
        );
        store.seed(
            "users",
            "id",
            (0..users)
                .map(|i| {
                    json!({
                        "id": 370_000 + i as u64,
                        "name": format!("{} {}", seed::first_name(i), seed::last_name(i)),
                        "email": maybe(i, 1, 10, json!(seed::email(i))),
                        "phone": seed::phone(i),
                        "role": seed::choice(&["end-user", "agent", "admin"], i, 40),
                        "organization_id": maybe(i, 2, 6, json!(360_000 + (i % orgs) as u64)),
                        "active": true,
                        "created_at": seed::rfc3339(seed::created(i)),
                        "updated_at": seed::rfc3339(seed::created(i + 24)),
                    })
                })
                .collect(),
        );
        store.seed(
            "tickets",
            "id",
            (0..config.tickets)
                .map(|i| {
                    json!({
                        "id": 1 + i as u64,
                        "subject": format!("Ticket {}: {} printer jam", i + 1, seed::city(i)),
                        "description": "It stopped working.",
                        "status": seed::choice(&["new", "open", "pending", "solved"], i, 41),
                        "priority": maybe(i, 1, 5, json!(seed::choice(&["low", "normal", "high", "urgent"], i, 42))),
                        "type": maybe(i, 2, 3, json!("incident")),
                        "requester_id": 370_000 + (i % users) as u64,
                        "assignee_id": maybe(i, 3, 4, json!(370_000 + ((i * 7) % users) as u64)),
                        "organization_id": maybe(i, 4, 6, json!(360_000 + (i % orgs) as u64)),
                        "tags": if i % 2 == 0 { json!(["printer"]) } else { json!([]) },
                        "created_at": seed::rfc3339(seed::created(i)),
                        "updated_at": seed::rfc3339(seed::created(i + 24)),
                    })
                })
                .collect(),
        );
        VendorServer::spawn(
            Zendesk {
                next_id: AtomicU64::new(900_000),
            },
            config.credential(),
            store,
        )
        .await
    }
}

/// A Zendesk error response.
pub fn zd_error(status: StatusCode, error: &str, description: &str) -> Response {
    super::json(
        status,
        &json!({ "error": error, "description": description }),
    )
}

fn not_found() -> Response {
    zd_error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found")
}

fn invalid(description: &str) -> Response {
    zd_error(
        StatusCode::BAD_REQUEST,
        "InvalidPaginationParameter",
        description,
    )
}

impl Vendor for Zendesk {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !core.authorized(request) {
            return super::json(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "Couldn't authenticate you" }),
            );
        }
        let segments = request.segments();
        let method = request.method.as_str();
        match segments.as_slice() {
            ["api", "v2", "search.json"] if method == "GET" => search(core, request),
            ["api", "v2", last] => {
                let Some(kind) = KINDS
                    .iter()
                    .find(|k| last.strip_suffix(".json") == Some(k.plural))
                else {
                    return not_found();
                };
                match method {
                    "GET" => list(core, request, kind),
                    "POST" => self.create(core, request, kind),
                    _ => not_found(),
                }
            }
            ["api", "v2", plural, file] => {
                let Some(kind) = KINDS.iter().find(|k| k.plural == *plural) else {
                    return not_found();
                };
                let Some(id) = file.strip_suffix(".json") else {
                    return not_found();
                };
                match method {
                    "GET" => match core.store.get(kind.plural, id) {
                        Some(record) => envelope(core, kind, &record, StatusCode::OK),
                        None => not_found(),
                    },
                    "PUT" => update(core, request, kind, id),
                    "DELETE" => {
                        if core.store.delete(kind.plural, id) {
                            StatusCode::NO_CONTENT.into_response()
                        } else {
                            not_found()
                        }
                    }
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    }
}

fn with_url(core: &Core, kind: &Kind, record: &Value) -> Value {
    let mut record = record.clone();
    let id = record.get("id").cloned().unwrap_or(Value::Null);
    record["url"] = json!(format!(
        "{}/api/v2/{}/{id}.json",
        core.base_url(),
        kind.plural
    ));
    record
}

fn envelope(core: &Core, kind: &Kind, record: &Value, status: StatusCode) -> Response {
    let mut body = Map::new();
    body.insert(kind.singular.to_owned(), with_url(core, kind, record));
    super::json(status, &Value::Object(body))
}

fn cursor(id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("id:{id}"))
}

fn uncursor(cursor: &str) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("id:")?
        .parse()
        .ok()
}

fn id_of(record: &Value) -> u64 {
    record.get("id").and_then(Value::as_u64).unwrap_or_default()
}

fn list(core: &Core, request: &RecordedRequest, kind: &Kind) -> Response {
    let cursor_mode = request.query.iter().any(|(k, _)| k.starts_with("page["));
    let offset_mode = request.param("page").is_some() || request.param("per_page").is_some();
    if cursor_mode && offset_mode {
        return invalid(
            "Cursor pagination parameters (page[...]) cannot be combined with page or per_page",
        );
    }
    let records = core.store.all(kind.plural);
    let path = format!("/api/v2/{}.json", kind.plural);
    let mut body = Map::new();
    if cursor_mode {
        let size = match request.param("page[size]").map(str::parse::<usize>) {
            None => MAX_PAGE,
            Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => return invalid(&format!("page[size] must be between 1 and {MAX_PAGE}")),
        };
        let (start, end) = if let Some(after) = request.param("page[after]") {
            let Some(id) = uncursor(after) else {
                return invalid("page[after] is not a valid cursor");
            };
            let start = records.partition_point(|r| id_of(r) <= id);
            (start, (start + size).min(records.len()))
        } else if let Some(before) = request.param("page[before]") {
            let Some(id) = uncursor(before) else {
                return invalid("page[before] is not a valid cursor");
            };
            let end = records.partition_point(|r| id_of(r) < id);
            (end.saturating_sub(size), end)
        } else {
            (0, size.min(records.len()))
        };
        let items: Vec<Value> = records[start..end]
            .iter()
            .map(|r| with_url(core, kind, r))
            .collect();
        let has_more = end < records.len();
        let after = (end > start).then(|| cursor(id_of(&records[end - 1])));
        let before = (end > start).then(|| cursor(id_of(&records[start])));
        let link = |name: &str, c: &Option<String>| match c {
            Some(c) => json!(super::absolute(
                core,
                &path,
                &[("page[size]", size.to_string()), (name, c.clone())]
            )),
            None => Value::Null,
        };
        body.insert(kind.plural.to_owned(), Value::Array(items));
        body.insert(
            "meta".into(),
            json!({ "has_more": has_more, "after_cursor": after, "before_cursor": before }),
        );
        body.insert(
            "links".into(),
            json!({
                "next": if has_more { link("page[after]", &after) } else { Value::Null },
                "prev": if start > 0 { link("page[before]", &before) } else { Value::Null },
            }),
        );
    } else {
        let per_page = match request.param("per_page").map(str::parse::<usize>) {
            None => MAX_PAGE,
            Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => return invalid(&format!("per_page must be between 1 and {MAX_PAGE}")),
        };
        let page = match request.param("page").map(str::parse::<usize>) {
            None => 1,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => return invalid("page must be a positive integer"),
        };
        let (start, end) = super::page_bounds(records.len(), (page - 1) * per_page, per_page);
        let items: Vec<Value> = records[start..end]
            .iter()
            .map(|r| with_url(core, kind, r))
            .collect();
        let link = |p: usize| {
            json!(super::absolute(
                core,
                &path,
                &[("page", p.to_string()), ("per_page", per_page.to_string())]
            ))
        };
        body.insert(kind.plural.to_owned(), Value::Array(items));
        body.insert(
            "next_page".into(),
            if end < records.len() {
                link(page + 1)
            } else {
                Value::Null
            },
        );
        body.insert(
            "previous_page".into(),
            if page > 1 {
                link(page - 1)
            } else {
                Value::Null
            },
        );
        body.insert("count".into(), json!(records.len()));
    }
    super::json(StatusCode::OK, &Value::Object(body))
}

fn unwrap_envelope(request: &RecordedRequest, kind: &Kind) -> Result<Map<String, Value>, Response> {
    let Some(body) = request.json() else {
        return Err(zd_error(
            StatusCode::BAD_REQUEST,
            "InvalidJSON",
            "The request body is not valid JSON",
        ));
    };
    match body.get(kind.singular) {
        Some(Value::Object(fields)) => Ok(fields.clone()),
        _ => Err(zd_error(
            StatusCode::BAD_REQUEST,
            "InvalidValue",
            &format!(
                "Expected a \"{}\" object in the request body",
                kind.singular
            ),
        )),
    }
}

fn record_invalid(field: &str, message: &str) -> Response {
    super::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": { field: [{ "description": message, "error": "BlankValue" }] },
        }),
    )
}

impl Zendesk {
    fn create(&self, core: &Core, request: &RecordedRequest, kind: &Kind) -> Response {
        let mut fields = match unwrap_envelope(request, kind) {
            Ok(f) => f,
            Err(response) => return response,
        };
        // A ticket's subject may come from its first comment, as Zendesk allows.
        if kind.singular == "ticket"
            && !fields.contains_key("subject")
            && let Some(body) = fields.get("comment").and_then(|c| c.get("body")).cloned()
        {
            fields.insert("subject".into(), body);
        }
        if fields
            .get(kind.required)
            .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
        {
            let label = if kind.required == "subject" {
                "Subject"
            } else {
                "Name"
            };
            return record_invalid(kind.required, &format!("{label}: cannot be blank"));
        }
        let id = self.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        let now = seed::rfc3339(chrono::Utc::now());
        fields.remove("comment");
        fields.insert("id".into(), json!(id));
        fields.insert("created_at".into(), json!(now));
        fields.insert("updated_at".into(), json!(now));
        if kind.singular == "ticket" {
            fields.entry("status").or_insert(json!("new"));
        }
        let record = Value::Object(fields);
        core.store.insert(kind.plural, record.clone());
        envelope(core, kind, &record, StatusCode::CREATED)
    }
}

fn update(core: &Core, request: &RecordedRequest, kind: &Kind, id: &str) -> Response {
    let mut changes = match unwrap_envelope(request, kind) {
        Ok(f) => f,
        Err(response) => return response,
    };
    changes.remove("id");
    changes.remove("comment");
    changes.insert(
        "updated_at".into(),
        json!(seed::rfc3339(chrono::Utc::now())),
    );
    match core.store.update(kind.plural, id, &changes) {
        Some(record) => envelope(core, kind, &record, StatusCode::OK),
        None => not_found(),
    }
}

// Splits a search query into terms, keeping quoted phrases whole.
fn terms(query: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in query.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err("unbalanced quotes in the search query".to_owned());
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn search(core: &Core, request: &RecordedRequest) -> Response {
    let Some(query) = request.param("query").filter(|q| !q.trim().is_empty()) else {
        return zd_error(
            StatusCode::BAD_REQUEST,
            "InvalidValue",
            "Parameter query is required",
        );
    };
    let terms = match terms(query) {
        Ok(t) => t,
        Err(message) => return zd_error(StatusCode::BAD_REQUEST, "InvalidValue", &message),
    };
    let mut types: Vec<&Kind> = Vec::new();
    let mut conditions: Vec<Expr> = Vec::new();
    let mut text: Vec<String> = Vec::new();
    for term in terms {
        let split = term
            .char_indices()
            .find(|(_, c)| matches!(c, ':' | '<' | '>'))
            .map(|(i, c)| {
                (
                    term[..i].to_owned(),
                    c,
                    term[i + 1..].trim_matches('"').to_owned(),
                )
            });
        match split {
            Some((field, ':', value)) if field == "type" => {
                match KINDS.iter().find(|k| k.singular == value) {
                    Some(kind) => types.push(kind),
                    None => {
                        return zd_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidValue",
                            &format!("Unknown search type: {value}"),
                        );
                    }
                }
            }
            Some((field, sep, value)) if !field.is_empty() => {
                let lit = match value.parse::<f64>() {
                    Ok(n) => Lit::Num(n),
                    Err(_) => Lit::Str(value),
                };
                let op = match sep {
                    '<' => Op::Lt,
                    '>' => Op::Gt,
                    _ => Op::Eq,
                };
                let field = if field == "tags" || field == "tag" {
                    "tags".to_owned()
                } else {
                    field
                };
                let op = if field == "tags" { Op::Contains } else { op };
                conditions.push(Expr::Cond {
                    field,
                    op,
                    values: vec![lit],
                });
            }
            _ => text.push(term.trim_matches('"').to_lowercase()),
        }
    }
    let kinds: Vec<&Kind> = if types.is_empty() {
        KINDS.iter().collect()
    } else {
        types
    };
    let mut results = Vec::new();
    for kind in kinds {
        for record in core.store.all(kind.plural) {
            let fields_match = conditions
                .iter()
                .all(|c| c.matches_with(&record, &|r, f| lookup(r, f)));
            let text_match = text.iter().all(|t| {
                record.as_object().is_some_and(|o| {
                    o.values()
                        .any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(t)))
                })
            });
            if fields_match && text_match {
                let mut item = with_url(core, kind, &record);
                item["result_type"] = json!(kind.singular);
                results.push(item);
            }
        }
    }
    let per_page = request
        .param("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(MAX_PAGE)
        .clamp(1, MAX_PAGE);
    let page = request
        .param("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let (start, end) = super::page_bounds(results.len(), (page - 1) * per_page, per_page);
    let next = (end < results.len()).then(|| {
        super::absolute(
            core,
            "/api/v2/search.json",
            &[
                ("query", query.to_owned()),
                ("page", (page + 1).to_string()),
                ("per_page", per_page.to_string()),
            ],
        )
    });
    super::json(
        StatusCode::OK,
        &json!({
            "results": results[start..end],
            "count": results.len(),
            "next_page": next,
            "previous_page": Value::Null,
        }),
    )
}
