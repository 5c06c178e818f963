//! Close API v1 stand-in (shapes from Close's *Pagination*, *Authentication with API
//! keys*, *HTTP Response Codes*, *Leads*, *Contacts* and *Opportunities* references).
//!
//! - `GET /api/v1/{lead|contact|opportunity}/` with `_skip`, `_limit` (at most 100;
//!   beyond it a 400), `_fields` and `query` (`field:value` terms, quoted phrases, free
//!   text); answers `{"data":[…],"has_more":bool}`.
//! - `GET|PUT|DELETE /api/v1/{kind}/{id}/` (PUT patches, DELETE answers `{}`),
//!   `POST /api/v1/{kind}/`; `GET /api/v1/me/` (the key's user, what a ping reads).
//! - Auth: HTTP basic with the API key as user and an empty password; 401
//!   `{"error":"The API key you provided is invalid."}`; validation errors are
//!   `{"errors":[],"field-errors":{"field":"message"}}`.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::filter::{Expr, Lit, Op};
use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, seed};

const MAX_LIMIT: usize = 100;

/// Settings of the Close stand-in.
#[derive(Debug, Clone)]
pub struct CloseConfig {
    /// The API key (sent as the basic-auth user).
    pub api_key: String,
    /// Leads, contacts and opportunities each.
    pub records: usize,
}

impl Default for CloseConfig {
    fn default() -> Self {
        CloseConfig {
            api_key: "api_1abcdefGHIJKLmnopqRSTUV.0123456789abcdef".to_owned(),
            records: 1050,
        }
    }
}

/// A running Close stand-in.
pub type CloseServer = VendorServer<Close>;

/// The Close vendor.
#[derive(Debug)]
pub struct Close {
    next_id: AtomicU64,
}

struct Kind {
    name: &'static str,
    prefix: &'static str,
    required: &'static [&'static str],
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "lead",
        prefix: "lead_",
        required: &["name"],
    },
    Kind {
        name: "contact",
        prefix: "cont_",
        required: &["lead_id"],
    },
    Kind {
        name: "opportunity",
        prefix: "oppo_",
        required: &["lead_id"],
    },
];

fn close_id(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:022}")
}

fn maybe(i: usize, salt: u64, every: usize, v: Value) -> Value {
    if seed::is_null(i, salt, every) {
        Value::Null
    } else {
        v
    }
}

impl Close {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: CloseConfig) -> CloseServer {
        let store = Store::new();
        let n = config.records;
        let lead = |i: usize| close_id("lead_", i as u64 + 1);
        store.seed(
            "lead",
            "id",
            (0..n)
                .map(|i| {
                    json!({
                        "id": lead(i),
                        "name": seed::company(i),
                        "display_name": seed::company(i),
                        "description": maybe(i, 1, 4, json!("Met at a fair.")),
                        "url": maybe(i, 2, 5, json!(format!("https://company{}.example.test", i + 1))),
                        "status_label": seed::choice(&["Potential", "Bad Fit", "Qualified", "Customer"], i, 50),
                        "date_created": seed::rfc3339_millis(seed::created(i)).replace('Z', "+00:00"),
                        "date_updated": seed::rfc3339_millis(seed::created(i + 24)).replace('Z', "+00:00"),
                    })
                })
                .collect(),
        );
        store.seed(
            "contact",
            "id",
            (0..n)
                .map(|i| {
                    json!({
                        "id": close_id("cont_", i as u64 + 1),
                        "lead_id": lead(i % n.max(1)),
                        "name": format!("{} {}", seed::first_name(i), seed::last_name(i)),
                        "title": maybe(i, 1, 3, json!("CTO")),
                        "emails": match seed::is_null(i, 2, 9) {
                            true => json!([]),
                            false => json!([{ "type": "office", "email": seed::email(i) }]),
                        },
                        "phones": match seed::phone(i) {
                            Some(p) => json!([{ "type": "office", "phone": p }]),
                            None => json!([]),
                        },
                        "date_created": seed::rfc3339_millis(seed::created(i)).replace('Z', "+00:00"),
                        "date_updated": seed::rfc3339_millis(seed::created(i + 24)).replace('Z', "+00:00"),
                    })
                })
                .collect(),
        );
        store.seed(
            "opportunity",
            "id",
            (0..n)
                .map(|i| {
                    json!({
                        "id": close_id("oppo_", i as u64 + 1),
                        "lead_id": lead(i % n.max(1)),
                        "note": maybe(i, 1, 3, json!("Wants a discount.")),
                        "value": maybe(i, 2, 6, json!(seed::number(i, 51, 1_000_000))),
                        "value_period": "one_time",
                        "value_currency": "USD",
                        "status_type": seed::choice(&["active", "won", "lost"], i, 52),
                        "confidence": seed::number(i, 53, 101),
                        "date_created": seed::rfc3339_millis(seed::created(i)).replace('Z', "+00:00"),
                        "date_updated": seed::rfc3339_millis(seed::created(i + 24)).replace('Z', "+00:00"),
                    })
                })
                .collect(),
        );
        VendorServer::spawn(
            Close {
                next_id: AtomicU64::new(900_000),
            },
            Credential::Basic {
                user: config.api_key,
                password: String::new(),
            },
            store,
        )
        .await
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    super::json(status, &json!({ "error": message }))
}

fn field_errors(errors: Value) -> Response {
    super::json(
        StatusCode::BAD_REQUEST,
        &json!({ "errors": [], "field-errors": errors }),
    )
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Empty query: The object you are looking for does not exist.",
    )
}

impl Vendor for Close {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !core.authorized(request) {
            return error(
                StatusCode::UNAUTHORIZED,
                "The API key you provided is invalid.",
            );
        }
        let segments = request.segments();
        let method = request.method.as_str();
        if segments == ["api", "v1", "me"] && method == "GET" {
            return super::json(StatusCode::OK, &me());
        }
        let (kind, id) = match segments.as_slice() {
            ["api", "v1", kind] => (*kind, None),
            ["api", "v1", kind, id] => (*kind, Some(*id)),
            _ => return not_found(),
        };
        let Some(kind) = KINDS.iter().find(|k| k.name == kind) else {
            return not_found();
        };
        match (id, method) {
            (None, "GET") => list(core, request, kind),
            (None, "POST") => self.create(core, request, kind),
            (Some(id), "GET") => match core.store.get(kind.name, id) {
                Some(record) => super::json(StatusCode::OK, &fields(&record, request)),
                None => not_found(),
            },
            (Some(id), "PUT") => update(core, request, kind, id),
            (Some(id), "DELETE") => {
                if core.store.delete(kind.name, id) {
                    super::json(StatusCode::OK, &json!({}))
                } else {
                    not_found()
                }
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed."),
        }
    }
}

// The user the API key belongs to, as `GET /me/` describes it.
fn me() -> Value {
    json!({
        "id": "user_0000000000000000000001",
        "email": "owner@junction.example.test",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "organizations": [{ "id": "orga_0000000000000000000001", "name": "Junction Test" }],
        "date_created": "2024-01-01T00:00:00.000000+00:00",
    })
}

fn fields(record: &Value, request: &RecordedRequest) -> Value {
    match request.param("_fields") {
        Some(list) => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            let mut out = Map::new();
            for name in wanted {
                if let Some(v) = record.get(name) {
                    out.insert(name.to_owned(), v.clone());
                }
            }
            Value::Object(out)
        }
        None => record.clone(),
    }
}

// Close's search syntax, reduced to `field:value`, `field:"a phrase"` and free text.
fn parse_query(query: &str) -> Result<(Vec<Expr>, Vec<String>), String> {
    let mut conditions = Vec::new();
    let mut text = Vec::new();
    let mut rest = query.trim();
    while !rest.is_empty() {
        let (term, tail) = if let Some(colon) = rest
            .find(':')
            .filter(|&c| !rest[..c].contains(char::is_whitespace) && c > 0)
        {
            let field = &rest[..colon];
            let after = &rest[colon + 1..];
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| format!("Unterminated quote in query at '{rest}'"))?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if value.is_empty() {
                return Err(format!("Missing value for '{field}' in query"));
            }
            conditions.push(Expr::Cond {
                field: field.to_owned(),
                op: Op::Eq,
                values: vec![Lit::Str(value.to_owned())],
            });
            (None, tail)
        } else if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("Unterminated quote in query at '{rest}'"))?;
            (Some(&quoted[..end]), &quoted[end + 1..])
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (Some(&rest[..end]), &rest[end..])
        };
        if let Some(term) = term {
            text.push(term.to_lowercase());
        }
        rest = tail.trim_start();
    }
    Ok((conditions, text))
}

fn list(core: &Core, request: &RecordedRequest, kind: &Kind) -> Response {
    let skip = match super::number_param(request, "_skip") {
        Ok(n) => n.unwrap_or(0),
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let limit = match super::number_param(request, "_limit") {
        Ok(None) => MAX_LIMIT,
        Ok(Some(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Ok(Some(n)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("_limit must be between 1 and {MAX_LIMIT} (got {n})"),
            );
        }
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let (conditions, text) = match request.param("query").map(parse_query) {
        None => (Vec::new(), Vec::new()),
        Some(Ok(parsed)) => parsed,
        Some(Err(message)) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let mut matched = Vec::new();
    for record in core.store.all(kind.name) {
        let ok = conditions.iter().all(|c| c.matches(&record))
            && text
                .iter()
                .all(|t| record.to_string().to_lowercase().contains(t.as_str()));
        if ok {
            matched.push(record);
        }
    }
    let (start, end) = super::page_bounds(matched.len(), skip, limit);
    let data: Vec<Value> = matched[start..end]
        .iter()
        .map(|r| fields(r, request))
        .collect();
    super::json(
        StatusCode::OK,
        &json!({ "data": data, "has_more": end < matched.len() }),
    )
}

fn body_object(request: &RecordedRequest) -> Result<Map<String, Value>, Response> {
    match request.json() {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
        )),
    }
}

impl Close {
    fn create(&self, core: &Core, request: &RecordedRequest, kind: &Kind) -> Response {
        let mut record = match body_object(request) {
            Ok(f) => f,
            Err(response) => return response,
        };
        let missing: Map<String, Value> = kind
            .required
            .iter()
            .filter(|f| record.get(**f).is_none_or(Value::is_null))
            .map(|f| ((*f).to_owned(), json!("This field is required.")))
            .collect();
        if !missing.is_empty() {
            return field_errors(Value::Object(missing));
        }
        if let Some(lead) = record.get("lead_id").and_then(Value::as_str)
            && kind.name != "lead"
            && core.store.get("lead", lead).is_none()
        {
            return field_errors(json!({ "lead_id": "Object does not exist." }));
        }
        let id = close_id(
            kind.prefix,
            self.next_id.fetch_add(1, AtomicOrdering::Relaxed),
        );
        let now = seed::rfc3339_millis(chrono::Utc::now()).replace('Z', "+00:00");
        record.insert("id".into(), json!(id));
        record.insert("date_created".into(), json!(now));
        record.insert("date_updated".into(), json!(now));
        let record = Value::Object(record);
        core.store.insert(kind.name, record.clone());
        super::json(StatusCode::OK, &record)
    }
}

fn update(core: &Core, request: &RecordedRequest, kind: &Kind, id: &str) -> Response {
    let mut changes = match body_object(request) {
        Ok(f) => f,
        Err(response) => return response,
    };
    if changes.contains_key("id") {
        return field_errors(json!({ "id": "This field is read-only." }));
    }
    for required in kind.required {
        if changes.get(*required).is_some_and(Value::is_null) {
            return field_errors(json!({ *required: "This field may not be null." }));
        }
    }
    changes.insert(
        "date_updated".into(),
        json!(seed::rfc3339_millis(chrono::Utc::now()).replace('Z', "+00:00")),
    );
    match core.store.update(kind.name, id, &changes) {
        Some(record) => super::json(StatusCode::OK, &record),
        None => not_found(),
    }
}
